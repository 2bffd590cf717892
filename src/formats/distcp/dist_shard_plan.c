/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_shard_plan.c — the plan of a sharded save (spec §5.1-5.3), computed by the coordinator
 * alone from every rank's piece descriptions: pieces of a key must agree on dtype and global
 * shape and tile it exactly; a piece held by several ranks is written once, by the rank Paddle's
 * balanced_dedup_key_in_dict picks (candidate files in name order, the least loaded wins).
 * Paddle's flattened pieces (sharding v2: runs of a box's row-major flattening) are pieces too,
 * told apart by their run as Paddle's LocalTensorIndex tells them apart.
 * Every step is linear or n log n in the pieces (issue 20): one sort groups records by key and
 * box, tiling is checked on sorted intervals (a grid test per dimension, a sweep for irregular
 * layouts), and each piece's candidate writers are its run in that order.
 */
#include "pdk_distcp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pdk_shard_plan_free(pdk_shard_plan *p) {
    for (size_t i = 0; i < p->n_recs; i++) {
        free(p->recs[i].key);
        free(p->recs[i].global);
    }
    free(p->recs);
    free(p->pieces);
    free(p->order);
    memset(p, 0, sizeof *p);
}

/* A flattened piece's run [begin, end) of its box's flattening (the box under 2^62 elements). */
static pdckpt_status read_run(pdk_rd *r, pdk_shard_rec *rec) {
    uint8_t  flat;
    uint64_t begin = 0, end = 0;
    PDK_TRY(pdk_rd_flagged_pair(r, &flat, &begin, &end, "a run's start", "a run's end"));
    int64_t volume = pdk_box_volume(rec->n_dims, rec->shape);
    if (flat && (volume > INT64_MAX / 2 || begin > end || end > (uint64_t)volume))
        return pdk_rd_fail(r, "expected a run inside its box of '%s'", rec->key);
    rec->flat = flat;
    rec->flat_begin = (int64_t)begin, rec->flat_end = (int64_t)end;
    return PDCKPT_OK;
}

static pdckpt_status read_rec(pdk_rd *r, pdk_shard_rec *rec) {
    uint8_t dtype, n_dims;
    PDK_TRY(pdk_rd_strdup(r, &rec->key, "a key"));
    PDK_TRY(pdk_rd_u8(r, &dtype, "dtype"));
    PDK_TRY(pdk_rd_u8(r, &n_dims, "dims count"));
    if (dtype == 0 || dtype >= PDCKPT_DTYPE_COUNT || n_dims > PDCKPT_MAX_DIMS)
        return pdk_rd_fail(r, "expected a dtype and at most %d dims", PDCKPT_MAX_DIMS);
    rec->dtype = (pdckpt_dtype)dtype;
    rec->n_dims = n_dims;
    rec->global = malloc(3 * ((size_t)n_dims + 1) * sizeof *rec->global);
    if (!rec->global) return pdk_fail_nomem(r->err, "shard descriptions");
    rec->offset = rec->global + n_dims + 1;
    rec->shape = rec->offset + n_dims + 1;
    for (int32_t d = 0; d < n_dims; d++) {
        uint64_t g, o, s;
        PDK_TRY(pdk_rd_u64(r, &g, "a global dim"));
        PDK_TRY(pdk_rd_u64(r, &o, "an offset"));
        PDK_TRY(pdk_rd_u64(r, &s, "a local dim"));
        if (g > (uint64_t)INT64_MAX || o > g || s > g - o) return pdk_rd_fail(r, "bad piece box");
        rec->global[d] = (int64_t)g, rec->offset[d] = (int64_t)o, rec->shape[d] = (int64_t)s;
    }
    return read_run(r, rec);
}

pdckpt_status pdk_shard_plan_read(const pdk_blob *all, const size_t *offs, int size,
                                  pdk_shard_plan *p, pdckpt_error *err) {
    size_t cap = 0;
    for (int rank = 0; rank < size; rank++) {
        char source[64];
        snprintf(source, sizeof source, "rank %d's shard descriptions", rank);
        pdk_rd   r = {all->data + offs[rank], offs[rank + 1] - offs[rank], 0, source, err};
        uint64_t n;
        PDK_TRY(pdk_rd_count(&r, &n, 11, "shards"));
        if (p->n_recs + n > cap) {
            cap = (p->n_recs + (size_t)n) * 2;
            pdk_shard_rec *grown = realloc(p->recs, cap * sizeof *grown);
            if (!grown) return pdk_fail_nomem(err, "shard descriptions");
            p->recs = grown;
        }
        for (uint64_t i = 0; i < n; i++) {
            pdk_shard_rec *rec = &p->recs[p->n_recs++];
            memset(rec, 0, sizeof *rec);
            rec->rank = rank;
            rec->local = (size_t)i;
            rec->piece = SIZE_MAX; /* none, unless a stored piece claims it */
            PDK_TRY(read_rec(&r, rec));
        }
    }
    return PDCKPT_OK;
}

/* ---- grouping: one sort by key, box, rank ---- */

static int cmp_rec(const void *a, const void *b) {
    const pdk_shard_rec *x = *(pdk_shard_rec *const *)a, *y = *(pdk_shard_rec *const *)b;
    int                  c = strcmp(x->key, y->key);
    if (c) return c;
    if (x->n_dims != y->n_dims) return x->n_dims - y->n_dims;
    for (int32_t d = 0; d < x->n_dims; d++) {
        if (x->offset[d] != y->offset[d]) return x->offset[d] < y->offset[d] ? -1 : 1;
        if (x->shape[d] != y->shape[d]) return x->shape[d] < y->shape[d] ? -1 : 1;
    }
    if (x->flat != y->flat) return x->flat ? 1 : -1; /* a box before its runs, by start */
    if (x->flat_begin != y->flat_begin) return x->flat_begin < y->flat_begin ? -1 : 1;
    if (x->flat_end != y->flat_end) return x->flat_end < y->flat_end ? -1 : 1;
    if (x->rank != y->rank) return x->rank - y->rank;
    return (x->local > y->local) - (x->local < y->local);
}

/* One piece, as Paddle's LocalTensorIndex tells pieces apart: box and flattened run. */
static bool same_piece(const pdk_shard_rec *x, const pdk_shard_rec *y) {
    return x->n_dims == y->n_dims &&
           pdk_box_equal(x->n_dims, x->offset, x->shape, y->offset, y->shape) &&
           x->flat == y->flat && x->flat_begin == y->flat_begin && x->flat_end == y->flat_end;
}

/* A piece that holds nothing: an empty box or run. */
static bool holds_nothing(const pdk_shard_rec *x) {
    return x->flat ? x->flat_begin == x->flat_end : pdk_box_volume(x->n_dims, x->shape) == 0;
}

static int cmp_first_seen(const void *a, const void *b) {
    const pdk_shard_rec *x = ((const pdk_shard_piece *)a)->first;
    const pdk_shard_rec *y = ((const pdk_shard_piece *)b)->first;
    if (x->rank != y->rank) return x->rank - y->rank;
    return (x->local > y->local) - (x->local < y->local);
}

/* The distinct boxes of one key (order[from..to)), one record each, for the tiling check. */
static pdckpt_status distinct_boxes(pdk_shard_rec **order, size_t from, size_t to,
                                    pdk_shard_rec ***out, size_t *n, pdckpt_error *err) {
    const pdk_shard_rec *k = order[from];
    *n = 0;
    for (size_t i = from; i < to; i++) {
        const pdk_shard_rec *x = order[i];
        if (x->dtype != k->dtype || x->n_dims != k->n_dims ||
            memcmp(x->global, k->global, (size_t)k->n_dims * sizeof *k->global) != 0)
            return pdk_fail(err, PDCKPT_ERR_MISMATCH, NULL, -1,
                            "key '%s': ranks %d and %d disagree on dtype or global shape", k->key,
                            k->rank, x->rank);
        if (i > from && same_piece(order[i - 1], x)) continue; /* a replica */
        (*out)[(*n)++] = order[i];
    }
    return PDCKPT_OK;
}

/* Checks every key, finds the distinct pieces and orders them by first appearance, as Paddle
 * iterates them (rank by rank, each rank's keys in order).  Each piece keeps its run of
 * records (its replicas, by rank) in p->order for the writer choice. */
static pdckpt_status group_pieces(pdk_shard_plan *p, pdckpt_error *err) {
    pdk_shard_rec **boxes = malloc((p->n_recs ? p->n_recs : 1) * sizeof *boxes);
    if (!boxes) return pdk_fail_nomem(err, "the shard plan");
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 0, j; i < p->n_recs && st == PDCKPT_OK; i = j) {
        for (j = i + 1; j < p->n_recs && strcmp(p->order[j]->key, p->order[i]->key) == 0; j++)
            continue;
        size_t n = 0;
        st = distinct_boxes(p->order, i, j, &boxes, &n, err);
        if (st == PDCKPT_OK) st = pdk_check_tiling(boxes, n, err);
    }
    free(boxes);
    return st;
}

static pdckpt_status collect_pieces(pdk_shard_plan *p, pdckpt_error *err) {
    p->pieces = calloc(p->n_recs ? p->n_recs : 1, sizeof *p->pieces);
    if (!p->pieces) return pdk_fail_nomem(err, "the shard plan");
    bool kept_for_key = false;
    for (size_t i = 0, j; i < p->n_recs; i = j) {
        pdk_shard_rec **o = p->order;
        for (j = i + 1;
             j < p->n_recs && strcmp(o[j]->key, o[i]->key) == 0 && same_piece(o[j], o[i]); j++)
            continue;
        if (i == 0 || strcmp(o[i - 1]->key, o[i]->key) != 0) kept_for_key = false;
        /* Empty pieces (a rank past the end of a short dim, an empty run) hold nothing: they are
         * not stored, except one for a tensor that is empty as a whole, so its dtype and shape
         * survive.  (Paddle 3.3 stores an empty run, and its own load then returns zeros for
         * the whole tensor: docs/distributed.md.)  They still count in the writers' loads, as
         * Paddle counts them, so every stored piece is in the file Paddle would pick. */
        bool empty = holds_nothing(o[i]);
        bool all_empty = pdk_box_volume(o[i]->n_dims, o[i]->global) == 0;
        bool stored = !empty || (all_empty && !kept_for_key);
        kept_for_key |= stored;
        p->pieces[p->n_pieces++] = (pdk_shard_piece){o[i], i, j, -1, stored};
    }
    if (p->n_pieces > 1) qsort(p->pieces, p->n_pieces, sizeof *p->pieces, cmp_first_seen);
    return PDCKPT_OK;
}

/* ---- writers: Paddle's balanced_dedup_key_in_dict ---- */

typedef struct named_rank {
    char name[64];
    int  rank;
} named_rank;

static int cmp_named(const void *a, const void *b) {
    return strcmp(((const named_rank *)a)->name, ((const named_rank *)b)->name);
}

/* Candidates in file-name order, the least loaded wins: name order is one sort of the ranks. */
static pdckpt_status assign_writers(pdk_shard_plan *p, int size, pdckpt_error *err) {
    uint64_t   *load = calloc((size_t)size, sizeof *load);
    int        *name_pos = calloc((size_t)size, sizeof *name_pos);
    named_rank *names = calloc((size_t)size, sizeof *names);
    if (!load || !name_pos || !names) {
        free(load), free(name_pos), free(names);
        return pdk_fail_nomem(err, "the shard plan");
    }
    for (int r = 0; r < size; r++) {
        pdk_shard_data_name(p, r, names[r].name, sizeof names[r].name);
        names[r].rank = r;
    }
    qsort(names, (size_t)size, sizeof *names, cmp_named);
    for (int i = 0; i < size; i++) name_pos[names[i].rank] = i;
    for (size_t k = 0; k < p->n_pieces; k++) {
        pdk_shard_piece *pc = &p->pieces[k];
        int              best = -1;
        for (size_t i = pc->run_from; i < pc->run_to; i++) {
            const pdk_shard_rec *r = p->order[i];
            if (best < 0 || load[r->rank] < load[best] ||
                (load[r->rank] == load[best] && name_pos[r->rank] < name_pos[best]))
                best = r->rank;
        }
        pc->writer = best;
        load[best]++;
        if (!pc->stored) continue; /* counted, not stored: still in the list for its key's place */
        for (size_t i = pc->run_from; i < pc->run_to; i++) p->order[i]->piece = k;
    }
    free(load), free(name_pos), free(names);
    return PDCKPT_OK;
}

void pdk_shard_data_name(const pdk_shard_plan *p, int rank, char *out, size_t cap) {
    int64_t number = p->file_base + (p->numbers ? p->numbers[rank] : rank);
    snprintf(out, cap, "%lld_%lld%s", (long long)number, (long long)p->id,
             pdk_data_file_ext(p->format));
}

pdckpt_status pdk_shard_plan_build(pdk_shard_plan *p, int size, pdckpt_error *err) {
    p->order = malloc((p->n_recs ? p->n_recs : 1) * sizeof *p->order);
    if (!p->order) return pdk_fail_nomem(err, "the shard plan");
    for (size_t i = 0; i < p->n_recs; i++) p->order[i] = &p->recs[i];
    if (p->n_recs > 1) qsort(p->order, p->n_recs, sizeof *p->order, cmp_rec);
    PDK_TRY(group_pieces(p, err));
    PDK_TRY(collect_pieces(p, err));
    return assign_writers(p, size, err);
}

static bool writes(const pdk_shard_plan *p, const pdk_shard_rec *r) {
    return r->piece != SIZE_MAX && p->pieces[r->piece].writer == r->rank;
}

/* Per rank: the count and local indices (ascending) of the pieces it writes, back to back in
 * one pass (records are in rank order, each rank's in local order). */
pdckpt_status pdk_shard_plan_write_lists(const pdk_shard_plan *p, int size, pdk_blob *out,
                                         size_t **offsets, pdckpt_error *err) {
    *offsets = calloc((size_t)size + 1, sizeof **offsets);
    if (!*offsets) return pdk_fail_nomem(err, "the write lists");
    size_t i = 0;
    for (int r = 0; r < size; r++) {
        uint64_t n = 0;
        for (size_t j = i; j < p->n_recs && p->recs[j].rank == r; j++) n += writes(p, &p->recs[j]);
        pdk_blob_u64(out, n);
        for (; i < p->n_recs && p->recs[i].rank == r; i++)
            if (writes(p, &p->recs[i])) pdk_blob_u64(out, p->recs[i].local);
        (*offsets)[r + 1] = out->len;
    }
    return pdk_blob_check(out, err, "the write lists");
}
