/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proto_wire.c — the protobuf wire codec pdckpt needs for TensorDesc: varints, tags, skipping
 * unknown fields (spec binary-and-static-formats.md §6.1 "Decoder rules").  Groups (wire types 3/4)
 * never occur in Paddle's messages and are refused.
 */
#include "pdk_format.h"

pdckpt_status pdk_pb_varint(pdk_cursor *cur, uint64_t *out, const char *what) {
    uint64_t v = 0;
    size_t   start = cur->pos;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (cur->pos >= cur->len)
            return pdk_cur_fail_at(cur, start, PDCKPT_ERR_FORMAT,
                                   "truncated varint in %s: expected more bytes, found end", what);
        uint8_t byte = cur->base[cur->pos++];
        if (shift == 63 && byte > 1)
            return pdk_cur_fail_at(cur, start, PDCKPT_ERR_FORMAT,
                                   "varint in %s: expected at most 64 bits, found more", what);
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = v;
            return PDCKPT_OK;
        }
    }
    return pdk_cur_fail_at(cur, start, PDCKPT_ERR_FORMAT,
                           "varint in %s: expected at most 10 bytes, found more", what);
}

pdckpt_status pdk_pb_tag(pdk_cursor *cur, uint32_t *field, uint32_t *wire) {
    if (cur->pos >= cur->len) {
        *field = 0;
        *wire = 0;
        return PDCKPT_OK;
    }
    size_t   start = cur->pos;
    uint64_t key = 0;
    PDK_TRY(pdk_pb_varint(cur, &key, "field tag"));
    if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff)
        return pdk_cur_fail_at(cur, start, PDCKPT_ERR_FORMAT,
                               "expected a protobuf field number 1..2^29-1, found %llu",
                               (unsigned long long)(key >> 3));
    *field = (uint32_t)(key >> 3);
    *wire = (uint32_t)(key & 7);
    return PDCKPT_OK;
}

pdckpt_status pdk_pb_skip(pdk_cursor *cur, uint32_t wire) {
    uint64_t n;
    switch (wire) {
    case PDK_PB_VARINT: return pdk_pb_varint(cur, &n, "skipped field");
    case PDK_PB_I64: return pdk_cur_skip(cur, 8, "skipped 64-bit field");
    case PDK_PB_I32: return pdk_cur_skip(cur, 4, "skipped 32-bit field");
    case PDK_PB_LEN:
        PDK_TRY(pdk_pb_varint(cur, &n, "field length"));
        return pdk_cur_skip(cur, n, "skipped length-delimited field");
    default: return pdk_cur_fail(cur, "expected protobuf wire type 0, 1, 2 or 5, found %u", wire);
    }
}

size_t pdk_pb_put_varint(uint8_t *buf, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        buf[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    buf[n++] = (uint8_t)v;
    return n;
}
