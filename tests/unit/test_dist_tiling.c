/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_dist_tiling.c — the save's tiling check (pdk_check_tiling) on flattened runs that do not
 * cover their box: each is cut into its dense boxes (up to 2 x n_dims - 1), which the check then
 * holds.  Within a bound in the key's own pieces (8 times their records + 64 MiB): 1,000 runs of
 * a 61-dim box with a gap after each are refused with LIMIT naming the key before any box is
 * cut (they were cut into 121,000 boxes of 1 KiB each, then swept pairwise: minutes), while
 * 20,000 runs of a 2-D box with one gap are still checked and found not to cover it.
 * Boxes that are not a grid: 50,000 bricks that all span dim 0 (the pairwise sweep compared
 * every pair: 1.25e9 comparisons) and random guillotine tilings, whole, with a box moved and
 * with a box dropped, against a brute-force pairwise check (boxes distinct, as the plan makes
 * them).
 */
#include "check.h"
#include "formats/distcp/pdk_distcp.h"

#include <stdlib.h>
#include <string.h>

/* `n` runs of one box of `n_dims` dims (global = box = `extent` on every dim): run i is
 * [i * step + skip, (i + 1) * step - gap). */
static pdckpt_status check_runs(size_t n, int32_t n_dims, int64_t extent, int64_t step,
                                int64_t skip, int64_t gap, pdckpt_error *err) {
    pdk_shard_rec  *recs = calloc(n, sizeof *recs);
    pdk_shard_rec **order = calloc(n, sizeof *order);
    int64_t        *dims = calloc(3 * (size_t)n_dims, sizeof *dims);
    CHECK(recs && order && dims);
    for (int32_t d = 0; d < n_dims; d++) dims[d] = dims[2 * n_dims + d] = extent;
    for (size_t i = 0; i < n; i++) {
        recs[i] = (pdk_shard_rec){"w",
                                  PDCKPT_DTYPE_FLOAT32,
                                  n_dims,
                                  dims,
                                  dims + n_dims,
                                  dims + 2 * n_dims,
                                  true,
                                  (int64_t)i * step + skip,
                                  (int64_t)(i + 1) * step - gap,
                                  (int)i,
                                  0,
                                  i};
        order[i] = &recs[i];
    }
    pdckpt_status st = pdk_check_tiling(order, n, err);
    free(recs), free(order), free(dims);
    return st;
}

static void test_deep_runs_with_holes_are_held_to_a_bound(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    int64_t      step = ((int64_t)1 << 61) / 1000; /* (2,)*61: 2^61 elements */
    CHECK_STATUS(check_runs(1000, 61, 2, step, 1, 1, &err), PDCKPT_ERR_LIMIT, &err);
    CHECK(strstr(err.message, "key 'w'") && strstr(err.message, "tile"));
}

static void test_shallow_runs_with_a_hole_are_still_checked(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    /* a [1200, 1200] box as 20,000 runs of 61 elements crossing rows, 3 apart */
    CHECK_STATUS(check_runs(20000, 2, 1200, 64, 3, 0, &err), PDCKPT_ERR_MISMATCH, &err);
    CHECK(strstr(err.message, "key 'w'") && strstr(err.message, "cover"));
}

/* A box of `n_dims` dims (at most 3) in the pieces `recs` (dims from `dims`, 9 each). */
static void set_box(pdk_shard_rec *r, int64_t *dims, int32_t n_dims, const int64_t *global,
                    const int64_t *off, const int64_t *shape, int rank) {
    for (int32_t d = 0; d < n_dims; d++)
        dims[d] = global[d], dims[3 + d] = off[d], dims[6 + d] = shape[d];
    *r = (pdk_shard_rec){
        "w", PDCKPT_DTYPE_FLOAT32, n_dims, dims, dims + 3, dims + 6, false, 0, 0, rank,
        0,   (size_t)rank};
}

static void test_bricks_spanning_dim_0_are_checked_in_n_log_n(void) {
    enum { ROWS = 25000 };
    size_t          n = 2 * ROWS;
    pdk_shard_rec  *recs = calloc(n, sizeof *recs);
    pdk_shard_rec **order = calloc(n, sizeof *order);
    int64_t        *dims = calloc(9 * n, sizeof *dims);
    CHECK(recs && order && dims);
    int64_t global[3] = {2, ROWS, 3};
    for (size_t i = 0; i < n; i++) { /* row r: [0, 1) + [1, 3) when even, [0, 2) + [2, 3) odd */
        int64_t row = (int64_t)i / 2, cut = 1 + row % 2, left = i % 2 == 0;
        int64_t off[3] = {0, row, left ? 0 : cut}, shape[3] = {2, 1, left ? cut : 3 - cut};
        set_box(&recs[i], dims + 9 * i, 3, global, off, shape, (int)i);
        order[i] = &recs[i];
    }
    pdckpt_error err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdk_check_tiling(order, n, &err), &err);
    recs[n - 1].offset[2] = 1; /* the last row's right brick over its left one (and a hole) */
    recs[n - 1].shape[2] = 2;
    for (size_t i = 0; i < n; i++) order[i] = &recs[i];
    CHECK_STATUS(pdk_check_tiling(order, n, &err), PDCKPT_ERR_MISMATCH, &err);
    CHECK(strstr(err.message, "key 'w': the pieces of ranks") && strstr(err.message, "overlap"));
    free(recs), free(order), free(dims);
}

/* Cuts box i of `recs` in two along a random dim, `left` times more (guillotine tiling). */
static size_t guillotine(int64_t (*box)[6], size_t n, size_t cap, int32_t n_dims) {
    while (n < cap) {
        size_t  i = (size_t)rand() % n;
        int32_t d = rand() % n_dims;
        if (box[i][3 + d] < 2) continue;
        int64_t at = 1 + rand() % (box[i][3 + d] - 1);
        memcpy(box[n], box[i], sizeof box[i]);
        box[n][d] += at, box[n][3 + d] -= at, box[i][3 + d] = at;
        n++;
    }
    return n;
}

static bool brute_tiles(int64_t (*box)[6], size_t n, int32_t n_dims, const int64_t *global) {
    int64_t total = 1, covered = 0, o[3], s[3];
    for (int32_t d = 0; d < n_dims; d++) total *= global[d];
    for (size_t i = 0; i < n; i++) {
        covered += pdk_box_volume(n_dims, box[i] + 3);
        for (size_t j = 0; j < i; j++)
            if (pdk_box_overlap(n_dims, box[i], box[i] + 3, box[j], box[j] + 3, o, s)) return false;
    }
    return covered == total;
}

/* The plan hands the check distinct boxes only (a replica is one piece). */
static bool seen_before(int64_t (*box)[6], size_t i, int32_t n_dims) {
    for (size_t j = 0; j < i; j++)
        if (pdk_box_equal(n_dims, box[i], box[i] + 3, box[j], box[j] + 3)) return true;
    return false;
}

static void test_random_tilings_against_brute_force(void) {
    enum { MAX = 40 };
    int64_t       box[MAX][6], dims[MAX * 9];
    pdk_shard_rec recs[MAX], *order[MAX];
    int           seen[2] = {0, 0};
    srand(2026);
    for (int round = 0; round < 3000; round++) {
        int32_t n_dims = 1 + round % 3;
        int64_t global[3] = {1 + rand() % 6, 1 + rand() % 6, 1 + rand() % 6};
        memset(box, 0, sizeof box);
        for (int32_t d = 0; d < n_dims; d++) box[0][3 + d] = global[d];
        int64_t vol = pdk_box_volume(n_dims, global);
        size_t n = guillotine(box, 1, 1 + (size_t)rand() % (size_t)(vol < MAX ? vol : MAX), n_dims);
        if (round % 3 == 1) { /* move a box by one along a dim, inside the global box */
            int32_t d = rand() % n_dims;
            size_t  i = (size_t)rand() % n;
            box[i][d] += box[i][d] > 0 ? -1 : (box[i][d] + box[i][3 + d] < global[d]);
        } else if (round % 3 == 2 && n > 1) {
            box[rand() % (int)n][3] = 0; /* an empty box: a hole */
        }
        size_t kept = 0;
        for (size_t i = 0; i < n; i++)
            if (pdk_box_volume(n_dims, box[i] + 3) > 0 && !seen_before(box, i, n_dims)) {
                set_box(&recs[kept], dims + 9 * kept, n_dims, global, box[i], box[i] + 3, (int)i);
                order[kept] = &recs[kept], kept++;
            }
        bool          want = brute_tiles(box, n, n_dims, global);
        pdckpt_error  err = PDCKPT_ERROR_INIT;
        pdckpt_status st = kept ? pdk_check_tiling(order, kept, &err) : PDCKPT_ERR_MISMATCH;
        CHECK(want == (st == PDCKPT_OK));
        if (st != PDCKPT_OK) CHECK(err.status == PDCKPT_ERR_MISMATCH || !kept);
        seen[want]++;
    }
    CHECK(seen[0] > 500 && seen[1] > 500);
}

int main(void) {
    RUN(test_bricks_spanning_dim_0_are_checked_in_n_log_n);
    RUN(test_random_tilings_against_brute_force);
    RUN(test_deep_runs_with_holes_are_held_to_a_bound);
    RUN(test_shallow_runs_with_a_hole_are_still_checked);
    return CHECK_SUMMARY();
}
