/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_tiling.c — do the distinct pieces of one key tile its global box exactly (no overlap, no
 * hole)?  In n log n on sorted intervals (issue 20; the pairwise check was quadratic): first a
 * grid test — on every dimension the pieces' intervals, sorted, partition [0, global) and a
 * start always has the same length — which holds for every layout Paddle and `pdckpt dist shard`
 * produce: distinct pieces that are cells of a grid with as many cells as pieces cover it
 * exactly once.  Anything else falls back to a sweep along dimension 0 that compares a piece
 * only with the pieces whose dim-0 interval is still open, then checks the covered volume.
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

static int cmp_start(const void *a, const void *b) {
    const pdk_shard_rec *x = *(pdk_shard_rec *const *)a, *y = *(pdk_shard_rec *const *)b;
    return (x->offset[0] > y->offset[0]) - (x->offset[0] < y->offset[0]);
}

/* Pieces sorted by dim-0 start; `open` holds those whose dim-0 interval reaches the current one. */
static pdckpt_status sweep(pdk_shard_rec **b, size_t n, pdk_shard_rec **open, pdckpt_error *err) {
    qsort(b, n, sizeof *b, cmp_start);
    size_t  n_open = 0;
    int64_t o[PDCKPT_MAX_DIMS], s[PDCKPT_MAX_DIMS];
    for (size_t i = 0; i < n; i++) {
        const pdk_shard_rec *x = b[i];
        size_t               kept = 0;
        for (size_t j = 0; j < n_open; j++) {
            const pdk_shard_rec *y = open[j];
            if (y->offset[0] + y->shape[0] <= x->offset[0]) continue; /* closed */
            if (pdk_box_overlap(x->n_dims, y->offset, y->shape, x->offset, x->shape, o, s))
                return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                                "key '%s': the pieces of ranks %d and %d overlap", x->key, y->rank,
                                x->rank);
            open[kept++] = open[j];
        }
        open[kept++] = b[i];
        n_open = kept;
    }
    return PDCKPT_OK;
}

static int64_t add_sat(int64_t a, int64_t b) {
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

pdckpt_status pdk_check_tiling(pdk_shard_rec **boxes, size_t n, pdckpt_error *err) {
    const pdk_shard_rec *k = boxes[0];
    int64_t              total = pdk_box_volume(k->n_dims, k->global), covered = 0;
    size_t               kept = 0;
    for (size_t i = 0; i < n; i++) /* empty pieces cover nothing and overlap nothing */
        if (pdk_box_volume(k->n_dims, boxes[i]->shape) > 0) boxes[kept++] = boxes[i];
    for (size_t i = 0; i < kept; i++)
        covered = add_sat(covered, pdk_box_volume(k->n_dims, boxes[i]->shape));
    if (kept == 0 || k->n_dims == 0) {
        if (kept > 1) /* distinct boxes of a 0-d tensor cannot exist: all are the same */
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "key '%s': pieces overlap", k->key);
    } else {
        void *tmp =
            malloc(kept * (sizeof(interval) > sizeof(void *) ? sizeof(interval) : sizeof(void *)));
        if (!tmp) return pdk_fail_nomem(err, "the tiling check");
        pdckpt_status st = is_grid(boxes, kept, tmp) ? PDCKPT_OK : sweep(boxes, kept, tmp, err);
        free(tmp);
        PDK_TRY(st);
    }
    if (covered != total)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "key '%s': the pieces cover %lld of its %lld elements", k->key,
                        (long long)covered, (long long)total);
    return PDCKPT_OK;
}
