/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cursor.h — the bounded little-endian reader every parser uses to touch file bytes.  Each read
 * checks the remaining length first and, on failure, records a FORMAT error at the exact offset
 * naming what was being read ("expected 8 bytes for LoD level count, found 3").
 */
#ifndef PDK_CURSOR_H
#define PDK_CURSOR_H

#include "pdk_core.h"

typedef struct pdk_cursor {
    const uint8_t *base;
    size_t         len;
    size_t         pos;
    uint64_t       origin; /* offset of base[0] within the source, for error offsets */
    const char    *source; /* file name for errors */
    pdckpt_error  *err;
} pdk_cursor;

void pdk_cur_init(pdk_cursor *cur, const void *base, size_t len, const char *source,
                  pdckpt_error *err);
/* A cursor over the next `len` bytes of `parent` (which must have them), sharing its error. */
void pdk_cur_sub(pdk_cursor *sub, const pdk_cursor *parent, size_t len);

static inline size_t pdk_cur_left(const pdk_cursor *cur) {
    return cur->len - cur->pos;
}
static inline uint64_t pdk_cur_offset(const pdk_cursor *cur) {
    return cur->origin + cur->pos;
}
static inline const uint8_t *pdk_cur_ptr(const pdk_cursor *cur) {
    return cur->base + cur->pos;
}

/* Records an error at absolute cursor position `pos` (use cur->pos for "here"). */
pdckpt_status pdk_cur_fail_at(const pdk_cursor *cur, size_t pos, pdckpt_status status,
                              const char *fmt, ...) PDK_PRINTF(4, 5);
/* FORMAT error at the current position. */
pdckpt_status pdk_cur_fail(const pdk_cursor *cur, const char *fmt, ...) PDK_PRINTF(2, 3);

/* Each reader names `what` it reads, for the truncation message. */
pdckpt_status pdk_cur_need(const pdk_cursor *cur, uint64_t n, const char *what);
pdckpt_status pdk_cur_u8(pdk_cursor *cur, uint8_t *out, const char *what);
pdckpt_status pdk_cur_u32le(pdk_cursor *cur, uint32_t *out, const char *what);
pdckpt_status pdk_cur_i32le(pdk_cursor *cur, int32_t *out, const char *what);
pdckpt_status pdk_cur_u64le(pdk_cursor *cur, uint64_t *out, const char *what);
pdckpt_status pdk_cur_bytes(pdk_cursor *cur, uint64_t n, const uint8_t **out, const char *what);
pdckpt_status pdk_cur_skip(pdk_cursor *cur, uint64_t n, const char *what);

/* Names in files are UTF-8 text: the length of the well-formed sequence at s (RFC 3629: no
 * overlongs, no surrogates, at most U+10FFFF), 0 when the bytes are not one. */
size_t pdk_utf8_seq(const uint8_t *s, size_t left);
/* Whether s[0..n) is UTF-8 text; *bad_at = offset of the first bad byte (n when valid). */
bool pdk_utf8_valid(const uint8_t *s, size_t n, size_t *bad_at);
/* The code point of the `n`-byte sequence at s (one pdk_utf8_seq accepted). */
uint32_t pdk_utf8_code_point(const uint8_t *s, size_t n);
/* Whether pdckpt_display_text shows code point `cp` as an escape (display_text.c: C0, DEL, C1,
 * bidi controls, line and paragraph separators); the JSON writer's display mode asks it too. */
bool pdk_display_escapes(uint32_t cp);

/* Explicit little-endian loads and stores (file bytes are never cast to structs). */
static inline uint32_t pdk_load_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t pdk_load_u64le(const uint8_t *p) {
    return (uint64_t)pdk_load_u32le(p) | (uint64_t)pdk_load_u32le(p + 4) << 32;
}
static inline void pdk_store_u32le(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void pdk_store_u64le(uint8_t *p, uint64_t v) {
    pdk_store_u32le(p, (uint32_t)v);
    pdk_store_u32le(p + 4, (uint32_t)(v >> 32));
}

#endif /* PDK_CURSOR_H */
