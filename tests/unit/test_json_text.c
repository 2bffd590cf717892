/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_json_text.c — the one JSON string writer at its edges, under ASan: strings cut inside a
 * UTF-8 sequence (read from exactly-sized heap copies, so a read past the end is caught), every
 * single byte in every mode, empty and NULL input, and a writer that fails.  The comparison with
 * Python's json module over many strings is tests/py/test_json_text.py.
 */
#include "check.h"

#include <stdlib.h>
#include <string.h>

typedef struct text {
    char   buf[256];
    size_t len;
    int    calls, fail_at; /* fail the fail_at-th write (0: never) */
} text;

static pdckpt_status put(void *self, const void *bytes, size_t len, pdckpt_error *err) {
    text *t = self;
    (void)err;
    if (++t->calls == t->fail_at) return PDCKPT_ERR_IO;
    if (t->len + len >= sizeof t->buf) return PDCKPT_ERR_LIMIT;
    memcpy(t->buf + t->len, bytes, len);
    t->len += len;
    t->buf[t->len] = '\0';
    return PDCKPT_OK;
}

/* Quotes `n` bytes of `s` from an exactly-sized heap copy; returns the status. */
static pdckpt_status quote(const char *s, size_t n, unsigned flags, text *out, pdckpt_error *err) {
    char *copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    memset(out, 0, sizeof *out);
    pdckpt_status st = pdckpt_json_write_string(copy, n, flags, put, out, err);
    free(copy);
    return st;
}

static void test_spellings(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    text         t;
    const char   s[] = "a\"\\\n\t\x01\x7f\xc3\x9f\xf0\x9f\x98\x80";
    CHECK_OK(quote(s, sizeof s - 1, 0, &t, &err), &err);
    CHECK_STR(t.buf, "\"a\\\"\\\\\\u000a\\u0009\\u0001\x7f\xc3\x9f\xf0\x9f\x98\x80\"");
    CHECK_OK(quote(s, sizeof s - 1, PDCKPT_JSON_SHORT, &t, &err), &err);
    CHECK_STR(t.buf, "\"a\\\"\\\\\\n\\t\\u0001\x7f\xc3\x9f\xf0\x9f\x98\x80\"");
    CHECK_OK(quote(s, sizeof s - 1, PDCKPT_JSON_SHORT | PDCKPT_JSON_ASCII, &t, &err), &err);
    CHECK_STR(t.buf, "\"a\\\"\\\\\\n\\t\\u0001\\u007f\\u00df\\ud83d\\ude00\"");
    CHECK_OK(quote("", 0, PDCKPT_JSON_ASCII, &t, &err), &err);
    CHECK_STR(t.buf, "\"\"");
    memset(&t, 0, sizeof t);
    CHECK_OK(pdckpt_json_write_string(NULL, 0, 0, put, &t, &err), &err);
    CHECK_STR(t.buf, "\"\"");
}

static void test_cut_and_bad_utf8(void) {
    static const char *const cut[] = {"\xc3",          "\xe4\xb8", "\xf0\x9f\x98",
                                      "x\xed\xa0\x80", "\x80",     "\xff"};
    for (size_t i = 0; i < sizeof cut / sizeof *cut; i++) {
        pdckpt_error err = PDCKPT_ERROR_INIT;
        text         t;
        size_t       n = strlen(cut[i]);
        CHECK_STATUS(quote(cut[i], n, PDCKPT_JSON_ASCII, &t, &err), PDCKPT_ERR_ARGUMENT, &err);
        CHECK_EQ_INT(err.offset, cut[i][0] == 'x' ? 1 : 0);
        CHECK_OK(quote(cut[i], n, PDCKPT_JSON_SHORT, &t, &err), &err); /* copied as they are */
        CHECK_EQ_INT(t.len, n + 2);
    }
}

static void test_every_byte(void) {
    for (unsigned flags = 0; flags < 4; flags++)
        for (int b = 0; b < 256; b++) {
            pdckpt_error  err = PDCKPT_ERROR_INIT;
            text          t;
            char          c = (char)b;
            pdckpt_status st = quote(&c, 1, flags, &t, &err);
            bool bad = (flags & PDCKPT_JSON_ASCII) && b >= 0x80; /* a lone byte is not UTF-8 */
            CHECK(st == (bad ? PDCKPT_ERR_ARGUMENT : PDCKPT_OK));
            if (!bad) CHECK(t.len >= 3 && t.buf[0] == '"' && t.buf[t.len - 1] == '"');
        }
}

static void test_failing_writer_and_arguments(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    text         t = {.fail_at = 2};
    CHECK(pdckpt_json_write_string("ab\ncd", 5, 0, put, &t, &err) == PDCKPT_ERR_IO);
    CHECK_EQ_INT(t.len, 1); /* the opening quote, then the failed write stopped it */
    CHECK_STATUS(pdckpt_json_write_string(NULL, 1, 0, put, &t, &err), PDCKPT_ERR_ARGUMENT, &err);
    pdckpt_error err2 = PDCKPT_ERROR_INIT;
    CHECK_STATUS(pdckpt_json_write_string("a", 1, 0, NULL, NULL, &err2), PDCKPT_ERR_ARGUMENT,
                 &err2);
}

/* The command line's --json: what a terminal must not be handed is escaped, bytes that are not
 * UTF-8 become the lone surrogates Python's surrogateescape reads back to them. */
static void test_display_mode(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    text         t;
    const char   s[] =
        "\x1b]0;t\x07\x7f\xc2\x9b\xe2\x80\xae\xe2\x80\xa8\xe6\x9d\x83\xff\xed\xa0\x80\\";
    CHECK_OK(quote(s, sizeof s - 1, PDCKPT_JSON_DISPLAY, &t, &err), &err);
    CHECK_STR(t.buf,
              "\"\\u001b]0;t\\u0007\\u007f\\u009b\\u202e\\u2028\xe6\x9d\x83\\udcff\\udced\\udca0"
              "\\udc80\\\\\"");
    CHECK_OK(quote(s, sizeof s - 1, PDCKPT_JSON_DISPLAY | PDCKPT_JSON_ASCII, &t, &err), &err);
    CHECK_STR(t.buf, "\"\\u001b]0;t\\u0007\\u007f\\u009b\\u202e\\u2028\\u6743\\udcff\\udced\\udca0"
                     "\\udc80\\\\\"");
    CHECK_OK(quote("a\xe6", 2, PDCKPT_JSON_DISPLAY, &t, &err), &err); /* cut: the byte alone */
    CHECK_STR(t.buf, "\"a\\udce6\"");
}

int main(void) {
    RUN(test_spellings);
    RUN(test_display_mode);
    RUN(test_cut_and_bad_utf8);
    RUN(test_every_byte);
    RUN(test_failing_writer_and_arguments);
    return CHECK_SUMMARY();
}
