/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_dist_tiling.c — the save's tiling check (pdk_check_tiling) on flattened runs that do not
 * cover their box: each is cut into its dense boxes (up to 2 x n_dims - 1), which the check then
 * holds.  Within a bound in the key's own pieces (8 times their records + 64 MiB): 1,000 runs of
 * a 61-dim box with a gap after each are refused with LIMIT naming the key before any box is
 * cut (they were cut into 121,000 boxes of 1 KiB each, then swept pairwise: minutes), while
 * 20,000 runs of a 2-D box with one gap are still checked and found not to cover it.
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

int main(void) {
    RUN(test_deep_runs_with_holes_are_held_to_a_bound);
    RUN(test_shallow_runs_with_a_hole_are_still_checked);
    return CHECK_SUMMARY();
}
