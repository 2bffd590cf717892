/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_unflatten.c — Paddle's flattened pieces (issue 20).  Paddle 3's sharding v2 stores a
 * parameter's shard as a 1-D tensor: the run [start, end) (LocalTensorMetadata.flattened_range)
 * of the row-major flattening of the box (global_offset, local_shape) the metadata names; the
 * ranks that share a box hold consecutive runs of it (paddle/distributed/flex_checkpoint/dcp/
 * load_state_dict.py restore_unflattened_state_dict).  A run of a row-major box is a union of at
 * most 2 x n_dims - 1 dense boxes, each contiguous in the run (a partial first row, whole rows,
 * a partial last row, recursively), so the index holds a flattened piece as those boxes — each
 * with the element of the stored 1-D tensor it starts at — and every reader of the index
 * (lookup, overlap, copy, resharding) treats them as ordinary pieces.
 */
#include "pdk_distcp.h"

#include <stdlib.h>
#include <string.h>

/* The boxes cut from runs so far (room for 2 x n_dims - 1 per run). */
typedef struct cut {
    pdk_piece *out;
    size_t     n_out;
    int32_t    n_dims;
} cut;

static pdckpt_status emit(cut *c, const pdk_piece *from, const int64_t *off, const int64_t *shape,
                          int64_t at, pdckpt_error *err) {
    int32_t    n = c->n_dims;
    pdk_piece *p = &c->out[c->n_out];
    *p = *from;
    if (!(p->offset = malloc(2 * ((size_t)n + 1) * sizeof *p->offset)))
        return pdk_fail_nomem(err, "metadata index");
    p->shape = p->offset + n + 1;
    for (int32_t d = 0; d < n; d++) {
        p->offset[d] = from->offset[d] + off[d];
        p->shape[d] = shape[d];
    }
    p->flat_at = at;
    c->n_out++;
    return PDCKPT_OK;
}

/* The boxes of the run [flat_begin, flat_end) of box p (n >= 1 dims): at each position the
 * largest aligned block that fits, its offset within the box and where it starts in the run. */
static pdckpt_status cut_run(cut *c, const pdk_piece *p, pdckpt_error *err) {
    int32_t n = c->n_dims;
    int64_t stride[PDCKPT_MAX_DIMS], off[PDCKPT_MAX_DIMS], shape[PDCKPT_MAX_DIMS];
    stride[n - 1] = 1;
    for (int32_t d = n - 1; d > 0; d--) stride[d - 1] = stride[d] * p->shape[d];
    for (int64_t pos = p->flat_begin; pos < p->flat_end;) {
        int32_t d = 0; /* the outermost dim whose whole sub-blocks start here and fit */
        while (pos % stride[d] != 0 || pos + stride[d] > p->flat_end) d++;
        int64_t idx = (pos / stride[d]) % p->shape[d];
        int64_t k = (p->flat_end - pos) / stride[d];
        if (k > p->shape[d] - idx) k = p->shape[d] - idx;
        for (int32_t i = 0; i < n; i++) {
            off[i] = i <= d ? (pos / stride[i]) % p->shape[i] : 0;
            shape[i] = i < d ? 1 : i == d ? k : p->shape[i];
        }
        PDK_TRY(emit(c, p, off, shape, pos - p->flat_begin, err));
        pos += k * stride[d];
    }
    return PDCKPT_OK;
}

static pdckpt_status check_run(const pdk_key_meta *km, const pdk_piece *p, const char *source,
                               pdckpt_error *err) {
    int64_t volume = pdk_box_volume(km->n_dims, p->shape);
    /* volume saturates at INT64_MAX: a box past 2^62 elements would overflow cut_run's strides */
    if (volume > INT64_MAX / 2)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, source, -1,
                        "metadata: expected the box of a flattened piece of '%s' to hold "
                        "fewer than 2^62 elements",
                        km->key);
    if (p->flat_begin < 0 || p->flat_begin >= p->flat_end || p->flat_end > volume)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, source, -1,
                        "metadata: a flattened piece of '%s' has the run [%lld, %lld) of a "
                        "box of %lld elements",
                        km->key, (long long)p->flat_begin, (long long)p->flat_end,
                        (long long)volume);
    return PDCKPT_OK;
}

static pdckpt_status unflatten_key(pdk_key_meta *km, const char *source, pdckpt_error *err) {
    size_t n_flat = 0;
    for (size_t i = 0; i < km->n_pieces; i++) n_flat += km->pieces[i].flat;
    if (n_flat == 0) return PDCKPT_OK;
    size_t per = km->n_dims > 0 ? 2 * (size_t)km->n_dims - 1 : 1;
    cut    c = {calloc(km->n_pieces + n_flat * per, sizeof *c.out), 0, km->n_dims};
    if (!c.out) return pdk_fail_nomem(err, "metadata index");
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 0; i < km->n_pieces && st == PDCKPT_OK; i++) {
        pdk_piece *p = &km->pieces[i];
        if (!p->flat) {
            c.out[c.n_out++] = *p;
            p->offset = NULL; /* moved */
            continue;
        }
        st = check_run(km, p, source, err);
        if (st == PDCKPT_OK && km->n_dims == 0) st = emit(&c, p, NULL, NULL, 0, err);
        if (st == PDCKPT_OK && km->n_dims > 0) st = cut_run(&c, p, err);
    }
    for (size_t i = 0; i < km->n_pieces; i++) free(km->pieces[i].offset);
    free(km->pieces);
    km->pieces = c.out;
    km->n_pieces = c.n_out;
    return st;
}

pdckpt_status pdk_meta_unflatten(pdk_meta_index *ix, const char *source, pdckpt_error *err) {
    for (size_t k = 0; k < ix->n_keys; k++) PDK_TRY(unflatten_key(&ix->keys[k], source, err));
    return PDCKPT_OK;
}
