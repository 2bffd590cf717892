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
 * (lookup, overlap, copy, resharding) treats them as ordinary pieces.  pdk_run_boxes is the one
 * cutter: the save's tiling check (dist_tiling.c) cuts runs with it too.
 */
#include "pdk_distcp.h"

#include <stdlib.h>
#include <string.h>

pdckpt_status pdk_run_boxes(int32_t n, const int64_t *shape, int64_t begin, int64_t end,
                            pdk_run_box_fn fn, void *ctx, pdckpt_error *err) {
    if (n == 0) return begin < end ? fn(ctx, NULL, NULL, 0, err) : PDCKPT_OK;
    int64_t stride[PDCKPT_MAX_DIMS], off[PDCKPT_MAX_DIMS], box[PDCKPT_MAX_DIMS];
    stride[n - 1] = 1;
    for (int32_t d = n - 1; d > 0; d--) stride[d - 1] = stride[d] * shape[d];
    /* at each position the largest aligned block that starts there and fits */
    for (int64_t pos = begin; pos < end;) {
        int32_t d = 0; /* the outermost dim whose whole sub-blocks start here and fit */
        while (pos % stride[d] != 0 || pos + stride[d] > end) d++;
        int64_t idx = (pos / stride[d]) % shape[d];
        int64_t k = (end - pos) / stride[d];
        if (k > shape[d] - idx) k = shape[d] - idx;
        for (int32_t i = 0; i < n; i++) {
            off[i] = i <= d ? (pos / stride[i]) % shape[i] : 0;
            box[i] = i < d ? 1 : i == d ? k : shape[i];
        }
        PDK_TRY(fn(ctx, off, box, pos - begin, err));
        pos += k * stride[d];
    }
    return PDCKPT_OK;
}

/* The boxes cut from a key's runs so far (room for PDK_RUN_MAX_BOXES per run). */
typedef struct cut {
    pdk_piece       *out;
    size_t           n_out;
    int32_t          n_dims;
    const pdk_piece *from; /* the run being cut */
} cut;

static pdckpt_status emit(void *ctx, const int64_t *off, const int64_t *shape, int64_t at,
                          pdckpt_error *err) {
    cut       *c = ctx;
    int32_t    n = c->n_dims;
    pdk_piece *p = &c->out[c->n_out];
    *p = *c->from;
    if (!(p->offset = malloc(2 * ((size_t)n + 1) * sizeof *p->offset)))
        return pdk_fail_nomem(err, "metadata index");
    p->shape = p->offset + n + 1;
    for (int32_t d = 0; d < n; d++) {
        p->offset[d] = c->from->offset[d] + off[d];
        p->shape[d] = shape[d];
    }
    p->flat_at = at;
    c->n_out++;
    return PDCKPT_OK;
}

/* An empty run (Paddle's stage 3 gives one to a rank past the parameter's end) covers nothing:
 * it stays in the index as an empty box, so its data file still lists the key (a combined file's
 * tensors are matched to their keys by position). */
static pdckpt_status emit_empty(cut *c, pdckpt_error *err) {
    int64_t zero[PDCKPT_MAX_DIMS] = {0};
    return c->n_dims > 0 ? emit(c, zero, zero, 0, err) : PDCKPT_OK;
}

static pdckpt_status check_run(const pdk_key_meta *km, const pdk_piece *p, const char *source,
                               pdckpt_error *err) {
    int64_t volume = pdk_box_volume(km->n_dims, p->shape);
    /* volume saturates at INT64_MAX: a box past 2^62 elements would overflow the strides */
    if (volume > INT64_MAX / 2)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, source, -1,
                        "metadata: expected the box of a flattened piece of '%s' to hold "
                        "fewer than 2^62 elements",
                        km->key);
    if (p->flat_begin < 0 || p->flat_begin > p->flat_end || p->flat_end > volume)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, source, -1,
                        "metadata: a flattened piece of '%s' has the run [%lld, %lld) of a "
                        "box of %lld elements",
                        km->key, (long long)p->flat_begin, (long long)p->flat_end,
                        (long long)volume);
    return PDCKPT_OK;
}

static pdckpt_status count_box(void *ctx, const int64_t *off, const int64_t *shape, int64_t at,
                               pdckpt_error *err) {
    (void)off, (void)shape, (void)at, (void)err;
    ++*(uint64_t *)ctx;
    return PDCKPT_OK;
}

/* What cutting the runs of `km` adds to the index (a box per dense box, with its offset and
 * shape), checked against what is left of `*left`: a run of a box of many dims is a few bytes of
 * metadata but up to 2 x n_dims - 1 boxes of 16 x (n_dims + 1) bytes each. */
static pdckpt_status charge_key(const pdk_key_meta *km, uint64_t *left, const char *source,
                                pdckpt_error *err) {
    uint64_t boxes = 0;
    for (size_t i = 0; i < km->n_pieces; i++) {
        const pdk_piece *p = &km->pieces[i];
        if (!p->flat) continue;
        PDK_TRY(check_run(km, p, source, err));
        if (p->flat_begin == p->flat_end)
            boxes++;
        else
            PDK_TRY(pdk_run_boxes(km->n_dims, p->shape, p->flat_begin, p->flat_end, count_box,
                                  &boxes, err));
    }
    uint64_t bytes = boxes * (sizeof(pdk_piece) + 2 * ((uint64_t)km->n_dims + 1) * sizeof(int64_t));
    if (bytes > *left)
        return pdk_fail(err, PDCKPT_ERR_LIMIT, source, -1,
                        "metadata: the flattened pieces of '%s' make %llu boxes (%llu bytes of "
                        "index), more than the %llu bytes max_alloc_bytes leaves",
                        km->key, (unsigned long long)boxes, (unsigned long long)bytes,
                        (unsigned long long)*left);
    *left -= bytes;
    return PDCKPT_OK;
}

static pdckpt_status unflatten_key(pdk_key_meta *km, const char *source, pdckpt_error *err) {
    size_t n_flat = 0;
    for (size_t i = 0; i < km->n_pieces; i++) n_flat += km->pieces[i].flat;
    if (n_flat == 0) return PDCKPT_OK;
    cut c = {calloc(km->n_pieces + n_flat * PDK_RUN_MAX_BOXES(km->n_dims), sizeof *c.out), 0,
             km->n_dims, NULL};
    if (!c.out) return pdk_fail_nomem(err, "metadata index");
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 0; i < km->n_pieces && st == PDCKPT_OK; i++) {
        pdk_piece *p = &km->pieces[i];
        if (!p->flat) {
            c.out[c.n_out++] = *p;
            p->offset = NULL; /* moved */
            continue;
        }
        c.from = p;
        st = check_run(km, p, source, err);
        if (st == PDCKPT_OK && p->flat_begin == p->flat_end)
            st = emit_empty(&c, err);
        else if (st == PDCKPT_OK)
            st = pdk_run_boxes(km->n_dims, p->shape, p->flat_begin, p->flat_end, emit, &c, err);
    }
    for (size_t i = 0; i < km->n_pieces; i++) free(km->pieces[i].offset);
    free(km->pieces);
    km->pieces = c.out;
    km->n_pieces = c.n_out;
    return st;
}

pdckpt_status pdk_meta_unflatten(pdk_meta_index *ix, uint64_t max_bytes, const char *source,
                                 pdckpt_error *err) {
    for (size_t k = 0; k < ix->n_keys; k++)
        PDK_TRY(charge_key(&ix->keys[k], &max_bytes, source, err));
    for (size_t k = 0; k < ix->n_keys; k++) PDK_TRY(unflatten_key(&ix->keys[k], source, err));
    return PDCKPT_OK;
}
