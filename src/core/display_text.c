/* SPDX-License-Identifier: Apache-2.0 */
/*
 * display_text.c — the one place that knows how text from a file is shown to a person (pdckpt.h,
 * "Display-safe text"; docs/RELIABILITY.md).  A name in a checkpoint is the file author's choice:
 * printed raw, it may carry terminal escapes (colours, OSC window titles and clipboard writes,
 * title reports some terminals type back as input), newlines that forge output lines, or bidi
 * controls that reorder what the reader sees.  Those become visible escapes here; printable text,
 * ASCII or not, stays as it is so that names in any script remain readable.
 */
#include "cursor.h"

#include <stdio.h>
#include <string.h>

bool pdk_display_escapes(uint32_t cp) {
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) ||      /* C0, DEL, C1 */
           cp == 0x061c || cp == 0x200e || cp == 0x200f || /* bidi marks */
           (cp >= 0x202a && cp <= 0x202e) ||               /* bidi embeddings and overrides */
           (cp >= 0x2066 && cp <= 0x2069) ||               /* bidi isolates */
           cp == 0x2028 || cp == 0x2029;                   /* line and paragraph separators */
}

typedef struct display_out {
    char  *buf;
    size_t cap;
    size_t len;     /* of the whole rendering */
    size_t written; /* bytes in buf: whole pieces only */
    bool   cut;
} display_out;

static void put(display_out *o, const char *s, size_t n) {
    if (!o->cut && o->written + n < o->cap) {
        memcpy(o->buf + o->written, s, n);
        o->written += n;
    } else {
        o->cut = true; /* nothing after a piece that did not fit: the text ends cleanly */
    }
    o->len += n;
}

/* The escape for one byte below 0x80 or one that is not UTF-8. */
static void put_byte_escape(display_out *o, uint8_t c) {
    char esc[8];
    if (c == '\n' || c == '\r' || c == '\t') {
        esc[0] = '\\';
        esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
        put(o, esc, 2);
        return;
    }
    snprintf(esc, sizeof esc, "\\x%02x", c);
    put(o, esc, 4);
}

size_t pdckpt_display_text(const char *s, size_t len, unsigned flags, char *buf, size_t cap) {
    display_out    o = {buf, buf ? cap : 0, 0, 0, false};
    const uint8_t *p = (const uint8_t *)s;
    for (size_t i = 0; s && i < len;) {
        size_t n = pdk_utf8_seq(p + i, len - i);
        if (n == 0) {
            put_byte_escape(&o, p[i++]);
            continue;
        }
        uint32_t cp = pdk_utf8_code_point(p + i, n);
        if (cp == '\\' && !(flags & PDCKPT_DISPLAY_KEEP_BACKSLASH)) {
            put(&o, "\\\\", 2);
        } else if (pdk_display_escapes(cp) && cp < 0x80) {
            put_byte_escape(&o, (uint8_t)cp);
        } else if (pdk_display_escapes(cp)) {
            char esc[16]; /* the code points escaped are all below U+10000 */
            snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
            put(&o, esc, 6);
        } else {
            put(&o, s + i, n);
        }
        i += n;
    }
    if (o.cap) buf[o.written] = '\0';
    return o.len;
}

typedef struct cp_range {
    uint32_t lo, hi;
} cp_range;

/* East Asian wide and fullwidth blocks (two columns), coarsely, as terminals draw them. */
static const cp_range wide[] = {
    {0x1100, 0x115f}, {0x2e80, 0x303e},   {0x3041, 0x33ff},   {0x3400, 0x4dbf},   {0x4e00, 0x9fff},
    {0xa000, 0xa4cf}, {0xac00, 0xd7a3},   {0xf900, 0xfaff},   {0xfe30, 0xfe4f},   {0xff00, 0xff60},
    {0xffe0, 0xffe6}, {0x1f300, 0x1f64f}, {0x1f900, 0x1f9ff}, {0x20000, 0x3fffd},
};
/* Combining marks and zero-width characters (no column of their own). */
static const cp_range zero[] = {
    {0x0300, 0x036f}, {0x0483, 0x0489}, {0x0591, 0x05bd}, {0x0610, 0x061a},
    {0x064b, 0x065f}, {0x1ab0, 0x1aff}, {0x1dc0, 0x1dff}, {0x200b, 0x200d},
    {0x20d0, 0x20ff}, {0xfe00, 0xfe0f}, {0xfe20, 0xfe2f}, {0xe0100, 0xe01ef},
};

static bool in_ranges(uint32_t cp, const cp_range *r, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (cp >= r[i].lo && cp <= r[i].hi) return true;
    return false;
}

size_t pdckpt_display_width(const char *text, size_t len) {
    const uint8_t *p = (const uint8_t *)text;
    size_t         cols = 0;
    for (size_t i = 0; text && i < len;) {
        size_t n = pdk_utf8_seq(p + i, len - i);
        if (n == 0) { /* not display-safe text: count the byte as one column */
            cols++;
            i++;
            continue;
        }
        uint32_t cp = pdk_utf8_code_point(p + i, n);
        cols += in_ranges(cp, zero, sizeof zero / sizeof zero[0])   ? 0
                : in_ranges(cp, wide, sizeof wide / sizeof wide[0]) ? 2
                                                                    : 1;
        i += n;
    }
    return cols;
}
