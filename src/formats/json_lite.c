/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json_lite.c — see json_lite.h.  RFC 8259 strings (escapes, surrogate pairs, no raw control
 * characters), non-negative integers without leading zeros, and a depth-limited skip.
 */
#include "json_lite.h"

#include <stdio.h>
#include <string.h>

void pdk_json_ws(pdk_cursor *cur) {
    while (cur->pos < cur->len) {
        uint8_t c = cur->base[cur->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        cur->pos++;
    }
}

bool pdk_json_accept(pdk_cursor *cur, char c) {
    pdk_json_ws(cur);
    if (cur->pos < cur->len && cur->base[cur->pos] == (uint8_t)c) {
        cur->pos++;
        return true;
    }
    return false;
}

pdckpt_status pdk_json_expect(pdk_cursor *cur, char c, const char *context) {
    if (pdk_json_accept(cur, c)) return PDCKPT_OK;
    if (cur->pos >= cur->len)
        return pdk_cur_fail(cur, "expected '%c' %s, found the end of the JSON text", c, context);
    uint8_t got = cur->base[cur->pos];
    if (got >= 0x20 && got < 0x7f)
        return pdk_cur_fail(cur, "expected '%c' %s, found '%c'", c, context, got);
    return pdk_cur_fail(cur, "expected '%c' %s, found byte 0x%02x", c, context, got);
}

static int hex_digit(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static pdckpt_status hex4(pdk_cursor *cur, uint32_t *out) {
    PDK_TRY(pdk_cur_need(cur, 4, "\\u escape"));
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(cur->base[cur->pos + (size_t)i]);
        if (d < 0) return pdk_cur_fail(cur, "expected 4 hex digits after \\u");
        v = v << 4 | (uint32_t)d;
    }
    cur->pos += 4;
    *out = v;
    return PDCKPT_OK;
}

static size_t put_utf8(uint8_t *dst, uint32_t cp) {
    if (cp < 0x80) {
        dst[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (uint8_t)(0xc0 | cp >> 6);
        dst[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (uint8_t)(0xe0 | cp >> 12);
        dst[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        dst[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    dst[0] = (uint8_t)(0xf0 | cp >> 18);
    dst[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    dst[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    dst[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

static pdckpt_status unicode_escape(pdk_cursor *cur, uint8_t *dst, size_t *n) {
    size_t   at = cur->pos - 2;
    uint32_t cp;
    PDK_TRY(hex4(cur, &cp));
    if (cp >= 0xd800 && cp <= 0xdbff) {
        uint32_t low;
        if (pdk_cur_left(cur) < 6 || cur->base[cur->pos] != '\\' || cur->base[cur->pos + 1] != 'u')
            return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT,
                                   "expected a low surrogate after \\u%04x", cp);
        cur->pos += 2;
        PDK_TRY(hex4(cur, &low));
        if (low < 0xdc00 || low > 0xdfff)
            return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT,
                                   "expected a low surrogate, found \\u%04x", low);
        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
    } else if (cp >= 0xdc00 && cp <= 0xdfff) {
        return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT, "unpaired low surrogate \\u%04x", cp);
    }
    *n += put_utf8(dst + *n, cp);
    return PDCKPT_OK;
}

static pdckpt_status escape(pdk_cursor *cur, uint8_t *dst, size_t *n) {
    uint8_t e;
    PDK_TRY(pdk_cur_u8(cur, &e, "string escape"));
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char       *hit = e ? strchr(from, e) : NULL;
    if (hit) {
        dst[(*n)++] = (uint8_t)to[hit - from];
        return PDCKPT_OK;
    }
    if (e == 'u') return unicode_escape(cur, dst, n);
    return pdk_cur_fail_at(cur, cur->pos - 2, PDCKPT_ERR_FORMAT, "invalid escape '\\%c'", e);
}

/* A multi-byte character (its lead byte just consumed): JSON text is UTF-8, and a name that is
 * not would be written back into files that refuse it. */
static pdckpt_status utf8_char(pdk_cursor *cur, size_t end, uint8_t *dst, size_t *n) {
    size_t at = cur->pos - 1, k = pdk_utf8_seq(cur->base + at, end - at);
    if (k == 0)
        return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT,
                               "expected UTF-8 text inside a string, found byte 0x%02x",
                               cur->base[at]);
    memcpy(dst + *n, cur->base + at, k);
    *n += k;
    cur->pos = at + k;
    return PDCKPT_OK;
}

bool pdk_json_plain(pdk_cursor *cur, const char **text, size_t *len) {
    pdk_json_ws(cur);
    size_t start = cur->pos + 1, end = start;
    if (cur->pos >= cur->len || cur->base[cur->pos] != '"') return false;
    for (uint8_t c; end < cur->len && (c = cur->base[end]) != '"'; end++)
        if (c < 0x20 || c >= 0x80 || c == '\\') return false;
    if (end >= cur->len) return false;
    *text = (const char *)cur->base + start;
    *len = end - start;
    cur->pos = end + 1;
    return true;
}

pdckpt_status pdk_json_string(pdk_cursor *cur, const pdckpt_allocator *a, char **out, size_t *len) {
    const char *plain;
    if (pdk_json_plain(cur, &plain, len)) { /* a safetensors header's names: one allocation */
        *out = pdk_strndup(a, plain, *len);
        return *out ? PDCKPT_OK : pdk_fail_nomem(cur->err, "string");
    }
    PDK_TRY(pdk_json_expect(cur, '"', "to start a string"));
    size_t start = cur->pos, end = start;
    while (end < cur->len && cur->base[end] != '"') end += cur->base[end] == '\\' ? 2 : 1;
    if (end >= cur->len)
        return pdk_cur_fail_at(cur, start - 1, PDCKPT_ERR_FORMAT, "unterminated string");
    /* Decoded text is never longer than its escaped form. */
    uint8_t *dst = pdk_alloc(a, end - start + 1);
    if (!dst) return pdk_fail_nomem(cur->err, "string");
    size_t        n = 0;
    pdckpt_status st = PDCKPT_OK;
    while (st == PDCKPT_OK && cur->pos < end) {
        uint8_t c = cur->base[cur->pos++];
        if (c == '\\')
            st = escape(cur, dst, &n);
        else if (c < 0x20)
            st = pdk_cur_fail_at(cur, cur->pos - 1, PDCKPT_ERR_FORMAT,
                                 "control character 0x%02x inside a string", c);
        else if (c < 0x80)
            dst[n++] = c;
        else
            st = utf8_char(cur, end, dst, &n);
    }
    if (st != PDCKPT_OK) {
        pdk_free(a, dst, end - start + 1);
        return st;
    }
    cur->pos = end + 1;
    dst[n] = '\0';
    /* Re-home into an exact-size block so the caller can free with len + 1. */
    char *exact = pdk_strndup(a, (const char *)dst, n);
    pdk_free(a, dst, end - start + 1);
    if (!exact) return pdk_fail_nomem(cur->err, "string");
    *out = exact;
    *len = n;
    return PDCKPT_OK;
}

pdckpt_status pdk_json_uint(pdk_cursor *cur, uint64_t *out, const char *what) {
    pdk_json_ws(cur);
    size_t   start = cur->pos;
    uint64_t v = 0;
    while (cur->pos < cur->len && cur->base[cur->pos] >= '0' && cur->base[cur->pos] <= '9') {
        uint8_t d = cur->base[cur->pos] - '0';
        if (!pdk_mul_u64(v, 10, &v) || !pdk_add_u64(v, d, &v))
            return pdk_cur_fail_at(cur, start, PDCKPT_ERR_FORMAT, "%s overflows 64 bits", what);
        cur->pos++;
    }
    size_t digits = cur->pos - start;
    if (digits == 0) return pdk_cur_fail(cur, "expected a non-negative integer for %s", what);
    if (digits > 1 && cur->base[start] == '0')
        return pdk_cur_fail_at(cur, start, PDCKPT_ERR_FORMAT, "%s has a leading zero", what);
    if (cur->pos < cur->len &&
        (cur->base[cur->pos] == '.' || cur->base[cur->pos] == 'e' || cur->base[cur->pos] == 'E'))
        return pdk_cur_fail(cur, "expected an integer for %s, found a fraction or exponent", what);
    *out = v;
    return PDCKPT_OK;
}

static pdckpt_status skip_literal(pdk_cursor *cur) {
    static const char *const words[] = {"true", "false", "null"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if (pdk_cur_left(cur) >= n && memcmp(cur->base + cur->pos, words[i], n) == 0) {
            cur->pos += n;
            return PDCKPT_OK;
        }
    }
    size_t start = cur->pos;
    if (cur->pos < cur->len && cur->base[cur->pos] == '-') cur->pos++;
    while (cur->pos < cur->len && strchr("0123456789.eE+-", cur->base[cur->pos]) &&
           cur->base[cur->pos])
        cur->pos++;
    if (cur->pos == start) return pdk_cur_fail(cur, "expected a JSON value");
    return PDCKPT_OK;
}

pdckpt_status pdk_json_skip(pdk_cursor *cur, int max_depth) {
    if (max_depth <= 0) return pdk_cur_fail(cur, "JSON nested too deeply");
    pdk_json_ws(cur);
    if (pdk_cur_left(cur) == 0) return pdk_cur_fail(cur, "expected a JSON value, found end");
    uint8_t c = cur->base[cur->pos];
    if (c == '"') {
        char  *s;
        size_t n;
        PDK_TRY(pdk_json_string(cur, NULL, &s, &n));
        pdk_free(NULL, s, n + 1);
        return PDCKPT_OK;
    }
    if (c != '[' && c != '{') return skip_literal(cur);
    cur->pos++;
    char close = c == '[' ? ']' : '}';
    if (pdk_json_accept(cur, close)) return PDCKPT_OK;
    do {
        if (close == '}') {
            PDK_TRY(pdk_json_skip(cur, max_depth - 1));
            PDK_TRY(pdk_json_expect(cur, ':', "after an object key"));
        }
        PDK_TRY(pdk_json_skip(cur, max_depth - 1));
    } while (pdk_json_accept(cur, ','));
    return pdk_json_expect(cur, close, "to close a container");
}

static pdckpt_status to_sink(void *sink, const void *bytes, size_t len, pdckpt_error *err) {
    return pdk_sink_write(sink, bytes, len, err);
}

/* JSON text is UTF-8 (RFC 8259): refused here, naming the sink, before anything is written. */
static pdckpt_status write_utf8(pdk_sink *sink, const char *s, size_t len, unsigned flags,
                                pdckpt_error *err) {
    size_t bad;
    if (!pdk_utf8_valid((const uint8_t *)s, len, &bad)) /* e.g. a lone surrogate from a pickle */
        return pdk_fail(err, PDCKPT_ERR_UNSUPPORTED, sink->name, -1,
                        "'%.*s...': JSON text must be UTF-8, found byte 0x%02x at %zu", (int)bad, s,
                        (uint8_t)s[bad], bad);
    return pdckpt_json_write_string(s, len, flags, to_sink, sink, err);
}

pdckpt_status pdk_json_write_string(pdk_sink *sink, const char *s, size_t len, pdckpt_error *err) {
    return write_utf8(sink, s, len, PDCKPT_JSON_SHORT, err);
}

pdckpt_status pdk_json_write_ascii(pdk_sink *sink, const char *s, size_t len, pdckpt_error *err) {
    return write_utf8(sink, s, len, PDCKPT_JSON_SHORT | PDCKPT_JSON_ASCII, err);
}
