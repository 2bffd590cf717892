/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_display_text.c — the display-safe rendering of names from files (pdckpt_display_text,
 * pdckpt_display_width) at its edges, under ASan: inputs are exactly-sized heap copies (a read
 * past the end is caught), cut and malformed UTF-8, every single byte, every code point of the
 * BMP's first part, buffers too small, and the idempotence error messages rely on.
 */
#include "check.h"

#include <stdlib.h>
#include <string.h>

/* The rendering of s[0..n) (from an exactly-sized heap copy) into a static buffer. */
static const char *shown(const char *s, size_t n, unsigned flags) {
    static char out[512];
    char       *copy = malloc(n ? n : 1);
    if (n) memcpy(copy, s, n);
    size_t len = pdckpt_display_text(s ? copy : NULL, n, flags, out, sizeof out);
    free(copy);
    CHECK(len == strlen(out)); /* everything fitted, and the return is its length */
    return out;
}

#define SHOWN(lit)      shown(lit, sizeof lit - 1, 0)
#define SHOWN_KEEP(lit) shown(lit, sizeof lit - 1, PDCKPT_DISPLAY_KEEP_BACKSLASH)

static void test_printable_text_is_unchanged(void) {
    CHECK_STR(SHOWN(""), "");
    CHECK_STR(shown(NULL, 0, 0), "");
    CHECK_STR(SHOWN("linear_0.w_0 ~!@#$%^&*()[]{}'\"/"), "linear_0.w_0 ~!@#$%^&*()[]{}'\"/");
    CHECK_STR(SHOWN("\xe6\x9d\x83\xe9\x87\x8d.w_0"), "\xe6\x9d\x83\xe9\x87\x8d.w_0"); /* 权重.w_0 */
    CHECK_STR(SHOWN("gr\xc3\xb6\xc3\x9f"
                    "e"),
              "gr\xc3\xb6\xc3\x9f"
              "e");
    CHECK_STR(SHOWN("\xf0\x9f\x98\x80"), "\xf0\x9f\x98\x80"); /* a 4-byte sequence, U+1F600 */
    CHECK_STR(SHOWN("\xc2\xa0\xc2\xa9"), "\xc2\xa0\xc2\xa9"); /* U+00A0, U+00A9: past C1 */
}

static void test_controls_are_escaped(void) {
    CHECK_STR(SHOWN("ok\x1b[31mRED\x1b]0;pwned\x07\nfake"),
              "ok\\x1b[31mRED\\x1b]0;pwned\\x07\\nfake");
    CHECK_STR(SHOWN("\r\t\x7f\x01"), "\\r\\t\\x7f\\x01");
    CHECK_STR(SHOWN("a\0b"), "a\\x00b");                                   /* a NUL inside a name */
    CHECK_STR(SHOWN("\xc2\x85\xc2\x9b\xc2\x9f"), "\\u0085\\u009b\\u009f"); /* C1, as UTF-8 */
    CHECK_STR(SHOWN("b\xe2\x80\xae"
                    "evil"),
              "b\\u202eevil"); /* RLO */
    CHECK_STR(SHOWN("\xd8\x9c\xe2\x80\x8e\xe2\x80\x8f"), "\\u061c\\u200e\\u200f");
    CHECK_STR(SHOWN("\xe2\x80\xaa\xe2\x81\xa6\xe2\x81\xa9"), "\\u202a\\u2066\\u2069");
    CHECK_STR(SHOWN("\xe2\x80\xa8\xe2\x80\xa9"), "\\u2028\\u2029");     /* line, paragraph sep. */
    CHECK_STR(SHOWN("\x1b\x1b\n\xe2\x80\xae"), "\\x1b\\x1b\\n\\u202e"); /* all escapes */
}

static void test_bytes_that_are_not_utf8(void) {
    CHECK_STR(SHOWN("a\xe6\x9d"), "a\\xe6\\x9d"); /* cut inside a sequence */
    CHECK_STR(SHOWN("\xe6\x9d"
                    "b"),
              "\\xe6\\x9db");                                     /* cut, then ASCII */
    CHECK_STR(SHOWN("\xc0\xaf"), "\\xc0\\xaf");                   /* overlong '/' */
    CHECK_STR(SHOWN("\xe0\x80\xaf"), "\\xe0\\x80\\xaf");          /* overlong, 3 bytes */
    CHECK_STR(SHOWN("\xc1\x9b"), "\\xc1\\x9b");                   /* overlong '[' */
    CHECK_STR(SHOWN("\xed\xa0\x80"), "\\xed\\xa0\\x80");          /* an encoded surrogate */
    CHECK_STR(SHOWN("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80"); /* past U+10FFFF */
    CHECK_STR(SHOWN("\xff\xfe\x80"), "\\xff\\xfe\\x80");
    CHECK_STR(SHOWN("\x9b"
                    "31m"),
              "\\x9b31m"); /* a raw 8-bit CSI byte */
}

static void test_backslash(void) {
    CHECK_STR(SHOWN("a\\x1b"), "a\\\\x1b"); /* a name spelling an escape stays distinguishable */
    CHECK_STR(SHOWN_KEEP("a\\x1b"), "a\\x1b");
    CHECK_STR(SHOWN_KEEP("a\x1b\xe2\x80\xae\xff"), "a\\x1b\\u202e\\xff");
}

/* Every byte alone: printable ASCII comes out as it is, the rest as an escape of ASCII only. */
static void test_every_byte(void) {
    for (int b = 0; b < 256; b++) {
        char        c = (char)b;
        const char *out = shown(&c, 1, 0);
        if (b >= 0x20 && b < 0x7f && b != '\\') {
            CHECK(out[0] == c && out[1] == '\0');
            continue;
        }
        CHECK(out[0] == '\\');
        for (const char *p = out; *p; p++) CHECK(*p >= 0x20 && *p < 0x7f);
    }
}

/* Every code point up to U+3000 as UTF-8: the ones to escape as \uhhhh, the rest copied. */
static void test_code_points(void) {
    for (uint32_t cp = 0x80; cp < 0x3000; cp++) {
        char   utf8[4];
        size_t n = cp < 0x800 ? 2 : 3;
        if (n == 2) {
            utf8[0] = (char)(0xc0 | cp >> 6);
            utf8[1] = (char)(0x80 | (cp & 0x3f));
        } else {
            utf8[0] = (char)(0xe0 | cp >> 12);
            utf8[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
            utf8[2] = (char)(0x80 | (cp & 0x3f));
        }
        bool escaped = cp <= 0x9f || cp == 0x61c || cp == 0x200e || cp == 0x200f ||
                       (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
                       cp == 0x2028 || cp == 0x2029;
        const char *out = shown(utf8, n, 0);
        if (escaped) {
            char want[16];
            snprintf(want, sizeof want, "\\u%04x", (unsigned)cp);
            CHECK_STR(out, want);
        } else {
            CHECK(strlen(out) == n && memcmp(out, utf8, n) == 0);
        }
    }
}

/* Messages are rendered again by outer layers: with backslashes kept, a second pass is a no-op. */
static void test_idempotent_for_messages(void) {
    const char *inputs[] = {"a\x1b]0;t\x07", "\xff\xed\xa0\x80", "b\xe2\x80\xae\\n", "\xc2\x9b",
                            "\xe6\x9d\x83"};
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
        char once[128];
        pdckpt_display_text(inputs[i], strlen(inputs[i]), PDCKPT_DISPLAY_KEEP_BACKSLASH, once,
                            sizeof once);
        CHECK_STR(shown(once, strlen(once), PDCKPT_DISPLAY_KEEP_BACKSLASH), once);
    }
}

static void test_small_buffers_cut_whole_pieces(void) {
    char buf[8];
    CHECK_EQ_INT(pdckpt_display_text("\x1b\x1b", 2, 0, NULL, 0), 8); /* the length alone */
    CHECK_EQ_INT(pdckpt_display_text("\x1b\x1b", 2, 0, buf, 7), 8);
    CHECK_STR(buf, "\\x1b"); /* not "\x1b\x": an escape is never cut */
    CHECK_EQ_INT(pdckpt_display_text("a\xe6\x9d\x83", 4, 0, buf, 3), 4);
    CHECK_STR(buf, "a"); /* nor a character */
    CHECK_EQ_INT(pdckpt_display_text("abc", 3, 0, buf, 1), 3);
    CHECK_STR(buf, "");
    CHECK_EQ_INT(pdckpt_display_text("abc", 3, 0, buf, 4), 3);
    CHECK_STR(buf, "abc");
}

static void test_width(void) {
    CHECK_EQ_INT(pdckpt_display_width("", 0), 0);
    CHECK_EQ_INT(pdckpt_display_width("abc", 3), 3);
    CHECK_EQ_INT(pdckpt_display_width("\\x1b", 4), 4); /* an escape: its text */
    CHECK_EQ_INT(pdckpt_display_width("\xe6\x9d\x83\xe9\x87\x8d.w", 8), 6); /* 权重.w: wide */
    CHECK_EQ_INT(pdckpt_display_width("e\xcc\x81", 3), 1); /* e + combining acute */
    CHECK_EQ_INT(pdckpt_display_width("\xc3\xb6", 2), 1);
    CHECK_EQ_INT(pdckpt_display_width("\xf0\x9f\x98\x80", 4), 2); /* an emoji */
    CHECK_EQ_INT(pdckpt_display_width("\xff", 1), 1);             /* not text: one column */
}

int main(void) {
    RUN(test_printable_text_is_unchanged);
    RUN(test_controls_are_escaped);
    RUN(test_bytes_that_are_not_utf8);
    RUN(test_backslash);
    RUN(test_every_byte);
    RUN(test_code_points);
    RUN(test_idempotent_for_messages);
    RUN(test_small_buffers_cut_whole_pieces);
    RUN(test_width);
    return CHECK_SUMMARY();
}
