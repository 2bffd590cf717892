/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_sweep.c — do non-empty boxes of one key overlap?  The tiling check's fallback for pieces
 * that are not a grid (dist_tiling.c), n log n where at most two dims are cut: a dim that every
 * box spans whole cannot separate two boxes, so only the cut dims count.  A sweep along the
 * first cut dim (events sorted, a box's end before another's start at one coordinate) keeps the
 * boxes open there as a coverage count over the second cut dim's compressed coordinates, in a
 * segment tree with range add and range max: a box whose interval already has a count > 0
 * overlaps an open box.  Three cut dims or more: the pairwise sweep along the first cut dim
 * (quadratic only when many boxes are open at once along it).  An overlap is MISMATCH naming
 * the key and the ranks of two overlapping boxes.
 */
#include "pdk_distcp.h"

#include <stdlib.h>

typedef struct event {
    int64_t at;
    size_t  box;
    int     opens; /* 0: an end, sorted before a start at the same coordinate */
} event;

typedef struct sweep_ctx {
    pdk_shard_rec **b;
    size_t          n;
    int32_t         x, y; /* the sweep's dim, the counted dim (-1: none) */
    int64_t        *coords;
    size_t          n_coords;
    int32_t        *max, *add; /* the segment tree over cells [0, n_coords - 1) */
} sweep_ctx;

static int cmp_event(const void *a, const void *b) {
    const event *p = a, *q = b;
    if (p->at != q->at) return p->at < q->at ? -1 : 1;
    if (p->opens != q->opens) return p->opens - q->opens;
    return (p->box > q->box) - (p->box < q->box);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static pdckpt_status overlap_error(const pdk_shard_rec *y, const pdk_shard_rec *x,
                                   pdckpt_error *err) {
    return pdk_fail(err, PDCKPT_ERR_MISMATCH, NULL, -1,
                    "key '%s': the pieces of ranks %d and %d overlap", x->key, y->rank, x->rank);
}

/* Box i overlaps an open box: find one (linear, once) to name it. */
static pdckpt_status name_overlap(const sweep_ctx *c, size_t i, pdckpt_error *err) {
    const pdk_shard_rec *x = c->b[i];
    int64_t              o[PDCKPT_MAX_DIMS], s[PDCKPT_MAX_DIMS];
    for (size_t j = 0; j < c->n; j++)
        if (j != i &&
            pdk_box_overlap(x->n_dims, c->b[j]->offset, c->b[j]->shape, x->offset, x->shape, o, s))
            return overlap_error(c->b[j], x, err);
    return overlap_error(x, x, err); /* not reached: the count saw one */
}

/* Adds v to cells [lo, hi) of node k (cells [from, to)); returns the max over [lo, hi) before. */
static int32_t tree_add(sweep_ctx *c, size_t k, size_t from, size_t to, size_t lo, size_t hi,
                        int32_t v) {
    if (hi <= from || to <= lo) return 0;
    if (lo <= from && to <= hi) {
        int32_t before = c->max[k];
        c->max[k] += v, c->add[k] += v;
        return before;
    }
    size_t  mid = from + (to - from) / 2;
    int32_t l = tree_add(c, 2 * k, from, mid, lo, hi, v);
    int32_t r = tree_add(c, 2 * k + 1, mid, to, lo, hi, v);
    int32_t a = c->max[2 * k], bb = c->max[2 * k + 1];
    c->max[k] = (a > bb ? a : bb) + c->add[k];
    return (l > r ? l : r) + c->add[k];
}

static size_t cell_of(const sweep_ctx *c, int64_t at) {
    const int64_t *p = bsearch(&at, c->coords, c->n_coords, sizeof at, cmp_i64);
    return (size_t)(p - c->coords);
}

/* The box's cells [lo, hi) on the counted dim (one cell when there is none). */
static void cells(const sweep_ctx *c, const pdk_shard_rec *r, size_t *lo, size_t *hi) {
    if (c->y < 0) {
        *lo = 0, *hi = 1;
        return;
    }
    *lo = cell_of(c, r->offset[c->y]);
    *hi = cell_of(c, r->offset[c->y] + r->shape[c->y]);
}

static pdckpt_status run_events(sweep_ctx *c, event *ev, pdckpt_error *err) {
    size_t n_cells = c->y < 0 ? 1 : c->n_coords - 1;
    for (size_t i = 0; i < 2 * c->n; i++) {
        size_t lo, hi;
        cells(c, c->b[ev[i].box], &lo, &hi);
        if (!ev[i].opens) {
            tree_add(c, 1, 0, n_cells, lo, hi, -1);
            continue;
        }
        /* the max over [lo, hi) before adding: a range add's return is that max (the node's
         * pending adds above it included) */
        if (tree_add(c, 1, 0, n_cells, lo, hi, 1) > 0) return name_overlap(c, ev[i].box, err);
    }
    return PDCKPT_OK;
}

static pdckpt_status count_sweep(sweep_ctx *c, pdckpt_error *err) {
    size_t        n = c->n;
    event        *ev = malloc(2 * n * sizeof *ev);
    pdckpt_status st = PDCKPT_OK;
    c->coords = malloc(2 * n * sizeof *c->coords);
    c->max = calloc(8 * n, sizeof *c->max);
    c->add = calloc(8 * n, sizeof *c->add);
    if (!ev || !c->coords || !c->max || !c->add) st = pdk_fail_nomem(err, "the tiling check");
    for (size_t i = 0; i < n && st == PDCKPT_OK; i++) {
        const pdk_shard_rec *r = c->b[i];
        ev[2 * i] = (event){r->offset[c->x], i, 1};
        ev[2 * i + 1] = (event){r->offset[c->x] + r->shape[c->x], i, 0};
        if (c->y >= 0) {
            c->coords[2 * i] = r->offset[c->y];
            c->coords[2 * i + 1] = r->offset[c->y] + r->shape[c->y];
        }
    }
    if (st == PDCKPT_OK && c->y >= 0) {
        qsort(c->coords, 2 * n, sizeof *c->coords, cmp_i64);
        c->n_coords = 0;
        for (size_t i = 0; i < 2 * n; i++)
            if (i == 0 || c->coords[i] != c->coords[i - 1]) c->coords[c->n_coords++] = c->coords[i];
    }
    if (st == PDCKPT_OK) {
        qsort(ev, 2 * n, sizeof *ev, cmp_event);
        st = run_events(c, ev, err);
    }
    free(ev), free(c->coords), free(c->max), free(c->add);
    return st;
}

static _Thread_local int32_t sweep_dim_tls; /* cmp_start's dim */

static int cmp_start(const void *a, const void *b) {
    const pdk_shard_rec *x = *(pdk_shard_rec *const *)a, *y = *(pdk_shard_rec *const *)b;
    int32_t              d = sweep_dim_tls;
    return (x->offset[d] > y->offset[d]) - (x->offset[d] < y->offset[d]);
}

/* Pieces sorted by their start on dim d; `open` holds those whose interval there reaches the
 * current one. */
static pdckpt_status pairwise_sweep(pdk_shard_rec **b, size_t n, int32_t d, pdckpt_error *err) {
    pdk_shard_rec **open = malloc(n * sizeof *open);
    if (!open) return pdk_fail_nomem(err, "the tiling check");
    sweep_dim_tls = d;
    qsort(b, n, sizeof *b, cmp_start);
    size_t  n_open = 0;
    int64_t o[PDCKPT_MAX_DIMS], s[PDCKPT_MAX_DIMS];
    for (size_t i = 0; i < n; i++) {
        const pdk_shard_rec *x = b[i];
        size_t               kept = 0;
        for (size_t j = 0; j < n_open; j++) {
            const pdk_shard_rec *y = open[j];
            if (y->offset[d] + y->shape[d] <= x->offset[d]) continue; /* closed */
            if (pdk_box_overlap(x->n_dims, y->offset, y->shape, x->offset, x->shape, o, s)) {
                free(open);
                return overlap_error(y, x, err);
            }
            open[kept++] = open[j];
        }
        open[kept++] = b[i];
        n_open = kept;
    }
    free(open);
    return PDCKPT_OK;
}

pdckpt_status pdk_tiling_overlap(pdk_shard_rec **b, size_t n, pdckpt_error *err) {
    int32_t cut[3], n_cut = 0;
    for (int32_t d = 0; d < b[0]->n_dims && n_cut < 3; d++)
        for (size_t i = 0; i < n; i++)
            if (b[i]->offset[d] != 0 || b[i]->shape[d] != b[i]->global[d]) {
                cut[n_cut++] = d;
                break;
            }
    if (n_cut == 0) return n > 1 ? overlap_error(b[0], b[1], err) : PDCKPT_OK;
    if (n_cut == 3) return pairwise_sweep(b, n, cut[0], err);
    sweep_ctx c = {b, n, cut[0], n_cut == 2 ? cut[1] : -1, NULL, 0, NULL, NULL};
    return count_sweep(&c, err);
}
