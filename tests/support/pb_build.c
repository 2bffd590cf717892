/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pb_build.c — see pb_build.h.
 */
#include "pb_build.h"

#include <stdlib.h>
#include <string.h>

void tu_pb_varint(tu_buf *b, uint64_t v) {
    uint8_t out[10];
    size_t  n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    tu_buf_put(b, out, n);
}

void tu_pb_uint(tu_buf *b, unsigned field, uint64_t v) {
    tu_pb_varint(b, (uint64_t)field << 3);
    tu_pb_varint(b, v);
}

void tu_pb_bytes(tu_buf *b, unsigned field, const void *p, size_t n) {
    tu_pb_varint(b, (uint64_t)field << 3 | 2);
    tu_pb_varint(b, n);
    tu_buf_put(b, p, n);
}

void tu_pb_str(tu_buf *b, unsigned field, const char *s) {
    tu_pb_bytes(b, field, s, strlen(s));
}

void tu_pb_msg(tu_buf *b, unsigned field, const tu_buf *sub) {
    tu_pb_bytes(b, field, sub->data, sub->len);
    tu_buf_free((tu_buf *)sub);
}

void tu_pb_var(tu_buf *block, const char *name, int kind, int dtype, int n_dims,
               const int64_t *dims, int persistable) {
    tu_buf var = {0}, type = {0}, tensor = {0}, lod = {0};
    tu_pb_str(&var, 1, name);
    tu_pb_uint(&type, 1, (uint64_t)kind);
    if (dtype >= 0) {
        tu_pb_uint(&tensor, 1, (uint64_t)dtype);
        for (int i = 0; i < n_dims; i++) tu_pb_uint(&tensor, 2, (uint64_t)dims[i]);
        if (kind == 7) {
            tu_pb_msg(&lod, 1, &tensor);
            tu_pb_uint(&lod, 2, 0);
            tu_pb_msg(&type, 3, &lod);
        } else {
            tu_pb_msg(&type, kind == 8 ? 2 : kind == 13 ? 4 : 10, &tensor);
        }
    }
    tu_pb_msg(&var, 2, &type);
    if (persistable >= 0) tu_pb_uint(&var, 3, (uint64_t)persistable);
    tu_pb_msg(block, 3, &var);
}

static void slot(tu_buf *op, unsigned field, const char *param, const char *arg) {
    tu_buf var = {0};
    tu_pb_str(&var, 1, param);
    tu_pb_str(&var, 2, arg);
    tu_pb_msg(op, field, &var);
}

void tu_pb_op(tu_buf *block, const char *type, const char *in_slot, const char *in_arg,
              const char *out_slot, const char *out_arg, int col) {
    tu_buf op = {0};
    if (in_slot) slot(&op, 1, in_slot, in_arg);
    if (out_slot) slot(&op, 2, out_slot, out_arg);
    tu_pb_str(&op, 3, type);
    if (col >= 0) {
        tu_buf attr = {0};
        tu_pb_str(&attr, 1, "col");
        tu_pb_uint(&attr, 2, 0); /* INT */
        tu_pb_uint(&attr, 3, (uint64_t)col);
        tu_pb_msg(&op, 4, &attr);
    }
    tu_pb_msg(block, 4, &op);
}

void tu_pb_block(tu_buf *program, int idx, int parent, tu_buf *block) {
    tu_buf b = {0};
    tu_pb_uint(&b, 1, (uint64_t)(int64_t)idx);
    tu_pb_uint(&b, 2, (uint64_t)(int64_t)parent);
    tu_buf_put(&b, block->data, block->len);
    tu_buf_free(block);
    tu_pb_msg(program, 1, &b);
}

void tu_pb_version(tu_buf *program, int64_t version) {
    tu_buf v = {0};
    tu_pb_uint(&v, 1, (uint64_t)version);
    tu_pb_msg(program, 4, &v);
}
