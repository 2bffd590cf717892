/* SPDX-License-Identifier: Apache-2.0 */
/*
 * byte_buf.h — the C tests' one byte builder: a growable buffer that tests append raw bytes and
 * little-endian integers to, to make files of any shape (pickles, TNUM containers, protobuf
 * messages in pb_build.h), including ones Paddle would never write.  Independent of the
 * library's own writers.  Aborts when memory runs out.
 */
#ifndef PDCKPT_BYTE_BUF_H
#define PDCKPT_BYTE_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct tu_buf {
    uint8_t *data;
    size_t   len, cap;
} tu_buf;

void tu_buf_put(tu_buf *b, const void *p, size_t n);
void tu_buf_u8(tu_buf *b, uint8_t v);
/* `v` little-endian in `width` bytes (1 to 8). */
void tu_buf_le(tu_buf *b, uint64_t v, unsigned width);
void tu_buf_u32le(tu_buf *b, uint32_t v);
void tu_buf_u64le(tu_buf *b, uint64_t v);
/* n bytes of `byte`. */
void tu_buf_fill(tu_buf *b, uint8_t byte, size_t n);
void tu_buf_free(tu_buf *b);

#endif
