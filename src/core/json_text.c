/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json_text.c — the one place that knows how a string is written as JSON text (pdckpt.h, "JSON
 * text").  Every JSON writer of the library and the command line quotes through it.  jansson is
 * not used here although it is linked: its encoder writes \u escapes in upper case and leaves DEL
 * as it is, where huggingface_hub's json.dump writes "\u00df" and "\u007f" (an index must be the
 * same bytes), and it refuses bytes that are not UTF-8, which the CLI must still show (a pickle
 * may carry a lone surrogate in a name).
 */
#include "cursor.h"

#include <stdio.h>
#include <string.h>

/* The two-character escape JSON has for these bytes, else NULL (all but the first two are
 * optional: \u00xx says the same). */
static const char *short_escape(uint8_t c) {
    switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\b': return "\\b";
    case '\f': return "\\f";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    default: return NULL;
    }
}

/* Whether byte `c` is copied without a look at the character it starts. */
static bool plain_byte(uint8_t c, unsigned flags) {
    if (c < 0x20 || c == '"' || c == '\\') return false;
    return c < 0x7f || !(flags & (PDCKPT_JSON_ASCII | PDCKPT_JSON_DISPLAY));
}

/* What to write for the character at `s` (one plain_byte did not pass) into `out`: its length, or
 * -1 when ASCII output needs a code point and the bytes are not UTF-8; *used = the bytes it
 * stands for.  In display mode a printable character is copied as it is. */
static int escape(const uint8_t *s, size_t left, unsigned flags, char out[16], size_t *used) {
    const char *e = short_escape(s[0]);
    *used = 1;
    if (e && (s[0] == '"' || s[0] == '\\' || (flags & PDCKPT_JSON_SHORT))) {
        memcpy(out, e, 3); /* two characters and the NUL */
        return 2;
    }
    if (s[0] < 0x20) return snprintf(out, 16, "\\u%04x", s[0]);
    size_t n = pdk_utf8_seq(s, left);
    if (n == 0 && (flags & PDCKPT_JSON_DISPLAY)) return snprintf(out, 16, "\\udc%02x", s[0]);
    if (n == 0) return -1;
    *used = n;
    uint32_t cp = pdk_utf8_code_point(s, n);
    if (!(flags & PDCKPT_JSON_ASCII) && !pdk_display_escapes(cp)) {
        memcpy(out, s, n);
        return (int)n;
    }
    if (cp < 0x10000) return snprintf(out, 16, "\\u%04x", (unsigned)cp);
    cp -= 0x10000;
    return snprintf(out, 16, "\\u%04x\\u%04x", 0xd800u + (cp >> 10), 0xdc00u + (cp & 0x3ffu));
}

pdckpt_status pdckpt_json_write_string(const char *s, size_t len, unsigned flags,
                                       pdckpt_write_fn write, void *self, pdckpt_error *err) {
    if ((!s && len) || !write)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "pdckpt_json_write_string: expected a string and a writer, found NULL");
    const uint8_t *p = (const uint8_t *)s;
    size_t         run = 0, i = 0; /* bytes [run, i) are copied as they are */
    PDK_TRY(write(self, "\"", 1, err));
    while (i < len) {
        uint8_t c = p[i];
        if (plain_byte(c, flags)) {
            i++;
            continue;
        }
        char   esc[16];
        size_t used;
        int    n = escape(p + i, len - i, flags, esc, &used);
        if (n < 0)
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, (int64_t)i,
                            "expected UTF-8 text for ASCII-only JSON, found byte 0x%02x", c);
        if (i > run) PDK_TRY(write(self, s + run, i - run, err));
        PDK_TRY(write(self, esc, (size_t)n, err));
        i += used;
        run = i;
    }
    if (len > run) PDK_TRY(write(self, s + run, len - run, err));
    return write(self, "\"", 1, err);
}
