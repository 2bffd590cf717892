/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_plan.c — shard geometry (spec pickle-and-distributed-formats.md §5.3-5.4): Paddle's
 * balanced_split, the box a piece of a sharding grid holds, box intersections, and the strided
 * copy of one box between two C-order arrays.  A copy moves whole contiguous runs: the innermost
 * dimensions the box covers completely on both sides merge into one memcpy, so a row-sharded
 * piece is one copy and a column slice is one copy per row.
 */
#include "pdk_distcp.h"

#include <string.h>

void pdckpt_shard_split(int64_t n, int64_t parts, int64_t index, int64_t *offset, int64_t *len) {
    if (n < 0) n = 0;
    if (parts < 1) parts = 1;
    int64_t chunk = n / parts + (n % parts != 0); /* ceil: every piece but the last */
    int64_t begin = index * chunk;
    if (index < 0 || begin > n) begin = n;
    int64_t size = n - begin < chunk ? n - begin : chunk;
    *offset = begin;
    *len = size < 0 ? 0 : size;
}

void pdckpt_shard_box(int32_t n_dims, const int64_t *global_shape, const int64_t *parts,
                      int64_t index, int64_t *offset, int64_t *shape) {
    int64_t pieces = 1;
    for (int32_t d = 0; d < n_dims; d++) pieces *= parts[d] > 0 ? parts[d] : 1;
    int64_t rest = pieces > 0 ? index % pieces : 0;
    if (rest < 0) rest += pieces;
    for (int32_t d = n_dims - 1; d >= 0; d--) { /* row-major: the last dim varies fastest */
        int64_t p = parts[d] > 0 ? parts[d] : 1;
        pdckpt_shard_split(global_shape[d], p, rest % p, &offset[d], &shape[d]);
        rest /= p;
    }
}

int64_t pdk_box_volume(int32_t n_dims, const int64_t *shape) {
    int64_t v = 1;
    for (int32_t d = 0; d < n_dims; d++) {
        if (shape[d] <= 0) return 0;
        if (v > INT64_MAX / shape[d]) return INT64_MAX;
        v *= shape[d];
    }
    return v;
}

bool pdk_box_equal(int32_t n_dims, const int64_t *a_off, const int64_t *a_shape,
                   const int64_t *b_off, const int64_t *b_shape) {
    for (int32_t d = 0; d < n_dims; d++)
        if (a_off[d] != b_off[d] || a_shape[d] != b_shape[d]) return false;
    return true;
}

bool pdk_box_overlap(int32_t n_dims, const int64_t *a_off, const int64_t *a_shape,
                     const int64_t *b_off, const int64_t *b_shape, int64_t *off, int64_t *shape) {
    for (int32_t d = 0; d < n_dims; d++) {
        int64_t begin = a_off[d] > b_off[d] ? a_off[d] : b_off[d];
        int64_t a_end = a_off[d] + a_shape[d], b_end = b_off[d] + b_shape[d];
        int64_t end = a_end < b_end ? a_end : b_end;
        if (end <= begin) return false;
        off[d] = begin;
        shape[d] = end - begin;
    }
    return true;
}

/* Byte offset of element `at` in a C-order array of `shape`. */
static uint64_t linear_offset(int32_t n_dims, const int64_t *shape, const int64_t *at,
                              size_t elem) {
    uint64_t off = 0;
    for (int32_t d = 0; d < n_dims; d++) off = off * (uint64_t)shape[d] + (uint64_t)at[d];
    return off * elem;
}

void pdk_box_copy(int32_t n_dims, size_t elem, const void *src, const int64_t *src_shape,
                  const int64_t *src_off, void *dst, const int64_t *dst_shape,
                  const int64_t *dst_off, const int64_t *shape) {
    if (n_dims == 0) {
        memcpy(dst, src, elem);
        return;
    }
    if (pdk_box_volume(n_dims, shape) == 0) return;
    /* The run: dims j..n-1, where every dim after j is covered whole on both sides. */
    int32_t  j = n_dims - 1;
    uint64_t run = (uint64_t)shape[j];
    while (j > 0 && shape[j] == src_shape[j] && shape[j] == dst_shape[j])
        run *= (uint64_t)shape[--j];
    int64_t idx[PDCKPT_MAX_DIMS] = {0}, s_at[PDCKPT_MAX_DIMS], d_at[PDCKPT_MAX_DIMS];
    for (;;) {
        for (int32_t d = 0; d < n_dims; d++) {
            s_at[d] = src_off[d] + (d < j ? idx[d] : 0);
            d_at[d] = dst_off[d] + (d < j ? idx[d] : 0);
        }
        memcpy((uint8_t *)dst + linear_offset(n_dims, dst_shape, d_at, elem),
               (const uint8_t *)src + linear_offset(n_dims, src_shape, s_at, elem), run * elem);
        int32_t d = j - 1; /* odometer over the dims before the run */
        while (d >= 0 && ++idx[d] == shape[d]) idx[d--] = 0;
        if (d < 0) return;
    }
}

pdckpt_status pdckpt_shard_slice(const pdckpt_value *tensor, const int64_t *offset,
                                 const int64_t *shape, pdckpt_value **out, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    pdckpt_tensor_view v;
    if (!out || !offset || !shape || !pdckpt_tensor_get(tensor, &v))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "expected a tensor, a box and out");
    *out = NULL;
    for (int32_t d = 0; d < v.n_dims; d++)
        if (offset[d] < 0 || shape[d] < 0 || offset[d] > v.dims[d] ||
            shape[d] > v.dims[d] - offset[d])
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                            "dim %d: a box of %lld at %lld does not fit %lld", (int)d,
                            (long long)shape[d], (long long)offset[d], (long long)v.dims[d]);
    size_t elem = pdckpt_dtype_size(v.dtype);
    /* Contiguous: the dims after some j are whole and the dims before j have size 1. */
    int32_t j = v.n_dims - 1;
    while (j > 0 && shape[j] == v.dims[j]) j--;
    bool contiguous = true;
    for (int32_t d = 0; d < j; d++) contiguous &= shape[d] == 1;
    if (contiguous || pdk_box_volume(v.n_dims, shape) == 0) {
        bool           empty = pdk_box_volume(v.n_dims, shape) == 0 || v.n_bytes == 0;
        const uint8_t *at =
            empty ? NULL : (const uint8_t *)v.data + linear_offset(v.n_dims, v.dims, offset, elem);
        return pdckpt_tensor_new_in_buffer(NULL, v.dtype, v.n_dims, shape, v.buffer, at, out, err);
    }
    PDK_TRY(pdckpt_tensor_new(NULL, v.dtype, v.n_dims, shape, out, err));
    int64_t zero[PDCKPT_MAX_DIMS] = {0};
    pdk_box_copy(v.n_dims, elem, v.data, v.dims, offset, pdckpt_tensor_data_mut(*out), shape, zero,
                 shape);
    return PDCKPT_OK;
}
