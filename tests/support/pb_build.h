/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pb_build.h — a tiny protobuf encoder for tests: builds ProgramDesc bytes field by field (spec
 * binary-and-static-formats.md §6.1) so tests can make programs with any shape, including ones
 * Paddle would never write.  Independent of the library's own protobuf code.
 */
#ifndef PDCKPT_PB_BUILD_H
#define PDCKPT_PB_BUILD_H

#include "byte_buf.h"

void tu_pb_varint(tu_buf *b, uint64_t v);
void tu_pb_uint(tu_buf *b, unsigned field, uint64_t v);               /* varint field */
void tu_pb_bytes(tu_buf *b, unsigned field, const void *p, size_t n); /* length-delimited */
void tu_pb_str(tu_buf *b, unsigned field, const char *s);
void tu_pb_msg(tu_buf *b, unsigned field, const tu_buf *sub); /* frees sub */

/* Appends VarDesc `name` (field 3 of a BlockDesc): kind (7 lod_tensor, 8 selected_rows, 9 feed,
 * ...), element dtype code (-1: no TensorDesc), dims, persistable (-1: field absent). */
void tu_pb_var(tu_buf *block, const char *name, int kind, int dtype, int n_dims,
               const int64_t *dims, int persistable);
/* Appends an OpDesc (field 4 of a BlockDesc) of `type` with one input slot and one output slot
 * (NULL: none) and an int attribute "col" (< 0: none). */
void tu_pb_op(tu_buf *block, const char *type, const char *in_slot, const char *in_arg,
              const char *out_slot, const char *out_arg, int col);
/* Wraps `block` (vars/ops already in it) into BlockDesc idx/parent and appends it to `program`
 * (field 1).  Frees block. */
void tu_pb_block(tu_buf *program, int idx, int parent, tu_buf *block);
/* Appends ProgramDesc.version (field 4). */
void tu_pb_version(tu_buf *program, int64_t version);

#endif
