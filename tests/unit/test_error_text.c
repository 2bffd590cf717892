/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_error_text.c — error messages keep their tail whatever a file's names are
 * (src/core/error_text.c): every conversion as printf does it; a 10 KB name of control bytes
 * cut in its middle so "expected ..." survives; two long names share the room; a prefix on a
 * full message; a long source path in pdckpt_error_format; UTF-8 never split.
 */
#include "check.h"
#include "core/pdk_core.h"

#include <stdio.h>
#include <string.h>

static char hostile[10001];

static void make_hostile(void) {
    for (size_t i = 0; i < sizeof hostile - 1; i++) hostile[i] = (char)(1 + i % 30);
    hostile[sizeof hostile - 1] = '\0';
}

static bool display_safe(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
    return true;
}

static bool ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

static void test_conversions_as_printf(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    char         want[512];
    snprintf(want, sizeof want,
             "%zu %d %llu %lld %u %02x %.*s %c %.1f %016llx %ld %05u %% %.3s %s %p|%-6s|%x",
             (size_t)7, -3, 18446744073709551615ull, -9223372036854775807ll - 1, 4000000000u, 10, 3,
             "abcdef", 'q', 2.25, 0xabcull, -5l, 42u, "xyzw", "plain", (void *)0x10, "ab", 255u);
    pdk_fail(&err, PDCKPT_ERR_FORMAT, "f", 3,
             "%zu %d %llu %lld %u %02x %.*s %c %.1f %016llx %ld %05u %% %.3s %s %p|%-6s|%x",
             (size_t)7, -3, 18446744073709551615ull, -9223372036854775807ll - 1, 4000000000u, 10, 3,
             "abcdef", 'q', 2.25, 0xabcull, -5l, 42u, "xyzw", "plain", (void *)0x10, "ab", 255u);
    CHECK_STR(err.message, want);
}

static void test_a_hostile_name_keeps_the_tail(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    pdk_fail(&err, PDCKPT_ERR_FORMAT, "x.pdparams", 77, "tensor '%s': expected 8 bytes, found %d",
             hostile, 4);
    CHECK(ends_with(err.message, "': expected 8 bytes, found 4"));
    CHECK(strncmp(err.message, "tensor '\\x01\\x02", 16) == 0);
    CHECK(strstr(err.message, " bytes...]") != NULL);
    CHECK(display_safe(err.message) && strlen(err.message) < sizeof err.message);
    char line[1200];
    pdckpt_error_format(&err, line, sizeof line);
    CHECK(strncmp(line, "x.pdparams: offset 77: tensor '", 31) == 0);
    CHECK(ends_with(line, "expected 8 bytes, found 4"));
}

static void test_two_long_names_share_the_room(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    pdk_fail(&err, PDCKPT_ERR_MISMATCH, NULL, -1, "'%s' vs '%s' (short '%s'): expected equal",
             hostile, hostile + 5000, "kept whole");
    CHECK(ends_with(err.message, "(short 'kept whole'): expected equal"));
    const char *second = strstr(err.message, "' vs '");
    CHECK(second && strstr(second + 6, " bytes...]") != NULL &&
          strstr(err.message, " bytes...]") < second);
}

static void test_a_prefix_on_a_full_message(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    char         inner[600];
    memset(inner, 'a', sizeof inner);
    memcpy(inner + sizeof inner - 20, ": expected the end", 19);
    pdk_fail(&err, PDCKPT_ERR_FORMAT, NULL, 5, "%s", inner);
    pdk_error_prefix(&err, "variable '%s': ", hostile);
    CHECK(strncmp(err.message, "variable '\\x01", 14) == 0);
    CHECK(ends_with(err.message, ": expected the end"));
    CHECK(display_safe(err.message) && strlen(err.message) < sizeof err.message);
}

static void test_a_long_source_keeps_offset_and_message(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    pdk_fail(&err, PDCKPT_ERR_FORMAT, hostile, 123, "expected a pickle opcode, found 0xff");
    char line[1200], small[160];
    pdckpt_error_format(&err, line, sizeof line);
    CHECK(ends_with(line, ": offset 123: expected a pickle opcode, found 0xff"));
    CHECK(strstr(line, " bytes...]") != NULL && display_safe(line));
    pdckpt_error_format(&err, small, sizeof small);
    CHECK(ends_with(small, ": offset 123: expected a pickle opcode, found 0xff"));
}

static void test_utf8_is_not_split(void) {
    static char name[6001];
    for (size_t i = 0; i < 6000; i += 2) memcpy(name + i, "\xc3\xa9", 2); /* é */
    pdckpt_error err = PDCKPT_ERROR_INIT;
    pdk_fail(&err, PDCKPT_ERR_FORMAT, NULL, -1, "key '%s': expected a tensor", name);
    CHECK(strstr(err.message, "\\x") == NULL);
    CHECK(ends_with(err.message, "\xc3\xa9': expected a tensor"));
}

int main(void) {
    make_hostile();
    RUN(test_conversions_as_printf);
    RUN(test_a_hostile_name_keeps_the_tail);
    RUN(test_two_long_names_share_the_room);
    RUN(test_a_prefix_on_a_full_message);
    RUN(test_a_long_source_keeps_offset_and_message);
    RUN(test_utf8_is_not_split);
    return CHECK_SUMMARY();
}
