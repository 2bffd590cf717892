/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_tiling.c — do the distinct pieces of one key tile its global box exactly (no overlap, no
 * hole)?  In n log n on sorted intervals (issue 20; the pairwise check was quadratic): first a
 * grid test — on every dimension the pieces' intervals, sorted, partition [0, global) and a
 * start always has the same length — which holds for every layout Paddle and `pdckpt dist shard`
 * produce: distinct pieces that are cells of a grid with as many cells as pieces cover it
 * exactly once.  Anything else falls back to an overlap sweep (dist_sweep.c: n log n when at
 * most two dims are cut), then checks the covered volume.
 * Paddle's flattened pieces (runs of a box's row-major flattening, sharding v2) come first: the
 * runs of one box, sorted by start, must not overlap each other (nor a piece that is that box);
 * when they cover the box exactly -- as sharding v2 and stage 3 cut it -- they count as the box,
 * in linear time; otherwise each run counts as the dense boxes it is made of (pdk_run_boxes,
 * the cutter the loader uses), so any mix of runs and boxes that tiles the tensor passes.  A
 * failure is MISMATCH naming the key: the ranks' pieces do not fit together.  Memory: the
 * intervals (linear), and the dense boxes of runs, held to a bound in the key's own pieces
 * (LIMIT naming the key beyond it).
 */
#include "pdk_distcp.h"

#include <stdlib.h>
#include <string.h>

typedef struct interval {
    int64_t off, len;
} interval;

static int cmp_interval(const void *a, const void *b) {
    const interval *x = a, *y = b;
    if (x->off != y->off) return x->off < y->off ? -1 : 1;
    return (x->len > y->len) - (x->len < y->len);
}

/* The number of cells dim d is cut into, or 0 when the intervals do not partition it. */
static size_t grid_cells(pdk_shard_rec **b, size_t n, int32_t d, interval *tmp) {
    for (size_t i = 0; i < n; i++) tmp[i] = (interval){b[i]->offset[d], b[i]->shape[d]};
    qsort(tmp, n, sizeof *tmp, cmp_interval);
    size_t  cells = 0;
    int64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && tmp[i].off == tmp[i - 1].off) {
            if (tmp[i].len != tmp[i - 1].len) return 0;
            continue;
        }
        if (tmp[i].off != at || tmp[i].len <= 0) return 0;
        at += tmp[i].len;
        cells++;
    }
    return at == b[0]->global[d] ? cells : 0;
}

static bool is_grid(pdk_shard_rec **b, size_t n, interval *tmp) {
    size_t product = 1;
    for (int32_t d = 0; d < b[0]->n_dims; d++) {
        size_t cells = grid_cells(b, n, d, tmp);
        if (cells == 0 || product > n / cells) return false;
        product *= cells;
    }
    return product == n;
}

static int64_t add_sat(int64_t a, int64_t b) {
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

/* ---- flattened runs ---- */

static bool same_box(const pdk_shard_rec *x, const pdk_shard_rec *y) {
    return pdk_box_equal(x->n_dims, x->offset, x->shape, y->offset, y->shape);
}

/* The runs of one box, b[i..*end) (sorted by start; after the box itself when it is a piece
 * too): overlaps are refused; *exact when the non-empty ones cover the box end to end. */
static pdckpt_status scan_runs(pdk_shard_rec **b, size_t i, size_t n, size_t *end, bool *exact,
                               size_t *n_runs, pdckpt_error *err) {
    const pdk_shard_rec *box =
        i > 0 && !b[i - 1]->flat && same_box(b[i - 1], b[i]) ? b[i - 1] : NULL;
    const pdk_shard_rec *prev = NULL;
    int64_t              at = 0;
    *n_runs = 0;
    for (*end = i; *end < n && b[*end]->flat && same_box(b[*end], b[i]); (*end)++) {
        const pdk_shard_rec *x = b[*end];
        if (x->flat_begin == x->flat_end) continue; /* empty: covers nothing */
        if (box && pdk_box_volume(box->n_dims, box->shape) > 0)
            return pdk_fail(err, PDCKPT_ERR_MISMATCH, NULL, -1,
                            "key '%s': the flattened run [%lld, %lld) of rank %d overlaps the "
                            "piece of rank %d (the same box)",
                            x->key, (long long)x->flat_begin, (long long)x->flat_end, x->rank,
                            box->rank);
        if (prev && x->flat_begin < prev->flat_end)
            return pdk_fail(err, PDCKPT_ERR_MISMATCH, NULL, -1,
                            "key '%s': the flattened runs [%lld, %lld) of rank %d and [%lld, %lld) "
                            "of rank %d of one box overlap",
                            x->key, (long long)prev->flat_begin, (long long)prev->flat_end,
                            prev->rank, (long long)x->flat_begin, (long long)x->flat_end, x->rank);
        if (x->flat_begin != at) at = -1; /* a hole: only the dense boxes can tell */
        if (at >= 0) at = x->flat_end;
        prev = x;
        (*n_runs)++;
    }
    *exact = *n_runs > 0 && at == pdk_box_volume(b[i]->n_dims, b[i]->shape);
    return PDCKPT_OK;
}

/* The pieces a tiling is checked on: boxes, and runs as their box or their dense boxes. */
typedef struct tiles {
    pdk_shard_rec      **list;
    size_t               n;
    pdk_shard_rec       *cuts; /* the dense boxes of runs that do not cover their box */
    int64_t             *dims; /* 2 x PDCKPT_MAX_DIMS per cut: offset, shape */
    size_t               n_cuts;
    const pdk_shard_rec *run; /* the run being cut */
} tiles;

static pdckpt_status add_cut(void *ctx, const int64_t *off, const int64_t *shape, int64_t at,
                             pdckpt_error *err) {
    (void)at, (void)err;
    tiles         *t = ctx;
    pdk_shard_rec *c = &t->cuts[t->n_cuts];
    size_t         n = (size_t)t->run->n_dims;
    int64_t       *d = t->dims + t->n_cuts++ * 2 * n;
    *c = *t->run;
    c->offset = d, c->shape = d + n, c->flat = false;
    for (int32_t i = 0; i < c->n_dims; i++) {
        c->offset[i] = t->run->offset[i] + off[i];
        c->shape[i] = shape[i];
    }
    t->list[t->n++] = c;
    return PDCKPT_OK;
}

/* One pass over b: boxes kept, each box's runs as the box or cut (when `t->cuts` is set; without
 * it only counts the cuts needed). */
static pdckpt_status place_runs(pdk_shard_rec **b, size_t n, tiles *t, size_t *need,
                                pdckpt_error *err) {
    *need = 0;
    for (size_t i = 0, j; i < n; i = j) {
        bool   exact = false;
        size_t n_runs = 0;
        if (!b[i]->flat) {
            if (t->list) t->list[t->n++] = b[i];
            j = i + 1;
            continue;
        }
        PDK_TRY(scan_runs(b, i, n, &j, &exact, &n_runs, err));
        if (exact && t->list) t->list[t->n++] = b[i];
        if (exact || n_runs == 0) continue;
        *need += n_runs * PDK_RUN_MAX_BOXES(b[i]->n_dims);
        for (size_t r = i; t->cuts && r < j; r++) {
            t->run = b[r];
            PDK_TRY(pdk_run_boxes(b[r]->n_dims, b[r]->shape, b[r]->flat_begin, b[r]->flat_end,
                                  add_cut, t, err));
        }
    }
    return PDCKPT_OK;
}

static bool has_runs(pdk_shard_rec **b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (b[i]->flat) return true;
    return false;
}

/* The dense boxes of runs that do not cover their box are held only within PDK_TILING_FACTOR x
 * what the key's pieces take themselves (a record and its dims each) + PDK_TILING_BASE: a run
 * cuts into up to 2 x n_dims - 1 boxes, so many runs of a many-dim box with holes between them
 * would otherwise take ~90 times their descriptions (docs/distributed.md). */
#define PDK_TILING_FACTOR 8
#define PDK_TILING_BASE   (UINT64_C(64) << 20)

static pdckpt_status check_room(pdk_shard_rec **boxes, size_t n, size_t need, pdckpt_error *err) {
    uint64_t dims = (uint64_t)boxes[0]->n_dims * sizeof(int64_t);
    uint64_t cuts = need * (sizeof(pdk_shard_rec) + 2 * dims + sizeof(pdk_shard_rec *));
    uint64_t room = PDK_TILING_BASE + PDK_TILING_FACTOR * n * (sizeof(pdk_shard_rec) + 3 * dims);
    if (cuts <= room) return PDCKPT_OK;
    return pdk_fail(err, PDCKPT_ERR_LIMIT, NULL, -1,
                    "key '%s': checking that its flattened runs tile it would take %llu bytes "
                    "(%zu dense boxes of runs that do not cover their box), more than %llu (%d "
                    "times its pieces + 64 MiB)",
                    boxes[0]->key, (unsigned long long)cuts, need, (unsigned long long)room,
                    PDK_TILING_FACTOR);
}

/* The boxes to tile with: `boxes` itself when no piece is a run. */
static pdckpt_status tiles_of(pdk_shard_rec **boxes, size_t n, tiles *t, pdckpt_error *err) {
    size_t need;
    if (!has_runs(boxes, n)) return t->list = boxes, t->n = n, PDCKPT_OK;
    PDK_TRY(place_runs(boxes, n, t, &need, err));
    PDK_TRY(check_room(boxes, n, need, err));
    t->list = malloc((n + need + 1) * sizeof *t->list);
    t->cuts = need ? malloc(need * sizeof *t->cuts) : NULL;
    t->dims = need ? malloc(need * 2 * (size_t)boxes[0]->n_dims * sizeof *t->dims + 1) : NULL;
    if (!t->list || (need && (!t->cuts || !t->dims)))
        return pdk_fail_nomem(err, "the tiling check");
    return place_runs(boxes, n, t, &need, err);
}

/* `boxes` (n may be 0: only empty runs) tile the global box of k's key. */
static pdckpt_status check_boxes(const pdk_shard_rec *k, pdk_shard_rec **boxes, size_t n,
                                 pdckpt_error *err) {
    int64_t total = pdk_box_volume(k->n_dims, k->global), covered = 0;
    size_t  kept = 0;
    for (size_t i = 0; i < n; i++) /* empty pieces cover nothing and overlap nothing */
        if (pdk_box_volume(k->n_dims, boxes[i]->shape) > 0) boxes[kept++] = boxes[i];
    for (size_t i = 0; i < kept; i++)
        covered = add_sat(covered, pdk_box_volume(k->n_dims, boxes[i]->shape));
    if (kept == 0 || k->n_dims == 0) {
        if (kept > 1) /* distinct boxes of a 0-d tensor cannot exist: all are the same */
            return pdk_fail(err, PDCKPT_ERR_MISMATCH, NULL, -1, "key '%s': pieces overlap", k->key);
    } else {
        interval *tmp = malloc(kept * sizeof *tmp);
        if (!tmp) return pdk_fail_nomem(err, "the tiling check");
        bool grid = is_grid(boxes, kept, tmp);
        free(tmp);
        if (!grid) PDK_TRY(pdk_tiling_overlap(boxes, kept, err));
    }
    if (covered != total)
        return pdk_fail(err, PDCKPT_ERR_MISMATCH, NULL, -1,
                        "key '%s': the pieces cover %lld of its %lld elements", k->key,
                        (long long)covered, (long long)total);
    return PDCKPT_OK;
}

pdckpt_status pdk_check_tiling(pdk_shard_rec **boxes, size_t n, pdckpt_error *err) {
    tiles         t = {0};
    pdckpt_status st = tiles_of(boxes, n, &t, err);
    if (st == PDCKPT_OK) st = check_boxes(boxes[0], t.list, t.n, err);
    if (t.list != boxes) free(t.list);
    free(t.cuts);
    free(t.dims);
    return st;
}
