/* SPDX-License-Identifier: Apache-2.0 */
/*
 * byte_buf.c — see byte_buf.h.
 */
#include "byte_buf.h"

#include <stdlib.h>
#include <string.h>

/* Room for n more bytes. */
static void reserve(tu_buf *b, size_t n) {
    if (b->len + n <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n) cap *= 2;
    b->data = realloc(b->data, cap);
    if (!b->data) abort();
    b->cap = cap;
}

void tu_buf_put(tu_buf *b, const void *p, size_t n) {
    reserve(b, n);
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
}

void tu_buf_u8(tu_buf *b, uint8_t v) {
    tu_buf_put(b, &v, 1);
}

void tu_buf_le(tu_buf *b, uint64_t v, unsigned width) {
    uint8_t out[8];
    for (unsigned i = 0; i < width && i < 8; i++) out[i] = (uint8_t)(v >> (8 * i));
    tu_buf_put(b, out, width < 8 ? width : 8);
}

void tu_buf_u32le(tu_buf *b, uint32_t v) {
    tu_buf_le(b, v, 4);
}

void tu_buf_u64le(tu_buf *b, uint64_t v) {
    tu_buf_le(b, v, 8);
}

void tu_buf_fill(tu_buf *b, uint8_t byte, size_t n) {
    reserve(b, n);
    if (n) memset(b->data + b->len, byte, n);
    b->len += n;
}

void tu_buf_free(tu_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}
