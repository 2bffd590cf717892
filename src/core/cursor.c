/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cursor.c — bounded reads for parsers (see cursor.h).  The truncation message format is part of
 * the golden diagnostics in tests/golden: "truncated <what>: expected N bytes, found M".
 */
#include "cursor.h"

#include <string.h>

void pdk_cur_init(pdk_cursor *cur, const void *base, size_t len, const char *source,
                  pdckpt_error *err) {
    cur->base = base;
    cur->len = len;
    cur->pos = 0;
    cur->origin = 0;
    cur->source = source;
    cur->err = err;
}

void pdk_cur_sub(pdk_cursor *sub, const pdk_cursor *parent, size_t len) {
    *sub = *parent;
    sub->base = parent->base + parent->pos;
    sub->origin = parent->origin + parent->pos;
    sub->len = len;
    sub->pos = 0;
}

pdckpt_status pdk_cur_fail_at(const pdk_cursor *cur, size_t pos, pdckpt_status status,
                              const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pdckpt_status st =
        pdk_failv(cur->err, status, cur->source, (int64_t)(cur->origin + pos), fmt, ap);
    va_end(ap);
    return st;
}

pdckpt_status pdk_cur_fail(const pdk_cursor *cur, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pdckpt_status st =
        pdk_failv(cur->err, PDCKPT_ERR_FORMAT, cur->source, (int64_t)pdk_cur_offset(cur), fmt, ap);
    va_end(ap);
    return st;
}

pdckpt_status pdk_cur_need(const pdk_cursor *cur, uint64_t n, const char *what) {
    if (n <= pdk_cur_left(cur)) return PDCKPT_OK;
    return pdk_cur_fail(cur, "truncated %s: expected %llu bytes, found %llu", what,
                        (unsigned long long)n, (unsigned long long)pdk_cur_left(cur));
}

pdckpt_status pdk_cur_u8(pdk_cursor *cur, uint8_t *out, const char *what) {
    PDK_TRY(pdk_cur_need(cur, 1, what));
    *out = cur->base[cur->pos++];
    return PDCKPT_OK;
}

pdckpt_status pdk_cur_u32le(pdk_cursor *cur, uint32_t *out, const char *what) {
    PDK_TRY(pdk_cur_need(cur, 4, what));
    *out = pdk_load_u32le(cur->base + cur->pos);
    cur->pos += 4;
    return PDCKPT_OK;
}

pdckpt_status pdk_cur_i32le(pdk_cursor *cur, int32_t *out, const char *what) {
    uint32_t u;
    PDK_TRY(pdk_cur_u32le(cur, &u, what));
    memcpy(out, &u, sizeof u);
    return PDCKPT_OK;
}

pdckpt_status pdk_cur_u64le(pdk_cursor *cur, uint64_t *out, const char *what) {
    PDK_TRY(pdk_cur_need(cur, 8, what));
    *out = pdk_load_u64le(cur->base + cur->pos);
    cur->pos += 8;
    return PDCKPT_OK;
}

pdckpt_status pdk_cur_bytes(pdk_cursor *cur, uint64_t n, const uint8_t **out, const char *what) {
    PDK_TRY(pdk_cur_need(cur, n, what));
    *out = cur->base + cur->pos;
    cur->pos += (size_t)n;
    return PDCKPT_OK;
}

pdckpt_status pdk_cur_skip(pdk_cursor *cur, uint64_t n, const char *what) {
    const uint8_t *ignored;
    return pdk_cur_bytes(cur, n, &ignored, what);
}

size_t pdk_utf8_seq(const uint8_t *s, size_t left) {
    uint8_t c = s[0];
    size_t  len = c < 0x80                 ? 1
                  : c >= 0xC2 && c <= 0xDF ? 2
                  : c >= 0xE0 && c <= 0xEF ? 3
                  : c >= 0xF0 && c <= 0xF4 ? 4
                                           : 0;
    if (len == 0 || len > left) return 0;
    for (size_t k = 1; k < len; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    /* the second byte's range rules out overlongs, surrogates and code points past U+10FFFF */
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] > 0x8F))
        return 0;
    return len;
}

uint32_t pdk_utf8_code_point(const uint8_t *s, size_t n) {
    uint32_t cp = n == 1 ? s[0] : s[0] & (0x7fu >> n);
    for (size_t i = 1; i < n; i++) cp = cp << 6 | (s[i] & 0x3fu);
    return cp;
}

bool pdk_utf8_valid(const uint8_t *s, size_t n, size_t *bad_at) {
    size_t i = 0, k;
    while (i < n && (k = pdk_utf8_seq(s + i, n - i)) != 0) i += k;
    *bad_at = i;
    return i == n;
}
