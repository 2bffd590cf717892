/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_sharded_runs.c — sharded saves of Paddle's flattened pieces (sharding v2 and stage 3: the
 * run [begin, end) of a box's row-major flattening, held as a 1-D tensor) through the
 * step-by-step API (pdckpt_sharded_describe_runs, _plan_new, _write, _plan_commit), ranks
 * simulated in one process:
 *   - runs of a whole tensor, of tensor-parallel boxes, a replicated run (stored once), an empty
 *     run (not stored) and runs that cover only part of their box beside a plain box: the
 *     metadata lists them as Paddle's save_state_dict does (is_flattened, flattened_range, the
 *     box as local_shape) and the checkpoint loads back bit for bit, whole and as other boxes;
 *   - runs that overlap (each other, or a box) or leave a hole are MISMATCH naming the key; a
 *     run outside its box or held by a tensor of another length is ARGUMENT;
 *   - many runs of one tensor and of many tensors plan (4,096 runs here).
 *   test_sharded_runs RUNS  prints how long planning RUNS runs takes, one tensor cut in RUNS
 *                           runs and sqrt(RUNS) tensors cut in sqrt(RUNS) (bench: no assertion)
 */
#include "check.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RANKS 3
#define MAX_KEYS  6

static char *dir;

/* The pieces of a simulated job, rank by rank. */
typedef struct job {
    pdckpt_shard     shards[MAX_RANKS][MAX_KEYS];
    pdckpt_shard_run runs[MAX_RANKS][MAX_KEYS];
    pdckpt_value    *owned[MAX_RANKS][MAX_KEYS];
    int64_t          dims[MAX_RANKS][MAX_KEYS][3][PDCKPT_MAX_DIMS]; /* global, offset, box */
    size_t           n[MAX_RANKS];
} job;

static void job_free(job *j) {
    for (int r = 0; r < MAX_RANKS; r++)
        for (size_t k = 0; k < j->n[r]; k++) pdckpt_value_free(j->owned[r][k]);
    memset(j, 0, sizeof *j);
}

/* The elements [b, e) of the row-major flattening of box (off, box) of `full`, as a 1-D tensor. */
static pdckpt_value *run_of(const pdckpt_value *full, const int64_t *off, const int64_t *box,
                            int64_t b, int64_t e) {
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    pdckpt_value      *slice = NULL, *run = NULL;
    pdckpt_tensor_view v;
    int64_t            len = e - b;
    CHECK_OK(pdckpt_shard_slice(full, off, box, &slice, &err), &err);
    CHECK(pdckpt_tensor_get(slice, &v));
    CHECK_OK(pdckpt_tensor_new(NULL, v.dtype, 1, &len, &run, &err), &err);
    size_t elem = pdckpt_dtype_size(v.dtype);
    if (len > 0)
        memcpy(pdckpt_tensor_data_mut(run), (const uint8_t *)v.data + b * elem, len * elem);
    pdckpt_value_free(slice);
    return run;
}

/* Rank r holds the run [b, e) of box (off, box) of `full` under `key` (flat false: the box). */
static void add(job *j, int r, const char *key, const pdckpt_value *full, const int64_t *off,
                const int64_t *box, bool flat, int64_t b, int64_t e) {
    pdckpt_tensor_view v;
    CHECK(pdckpt_tensor_get(full, &v));
    size_t   k = j->n[r]++;
    int64_t *g = j->dims[r][k][0], *o = j->dims[r][k][1], *s = j->dims[r][k][2];
    memcpy(g, v.dims, (size_t)v.n_dims * sizeof *g);
    memcpy(o, off, (size_t)v.n_dims * sizeof *o);
    memcpy(s, box, (size_t)v.n_dims * sizeof *s);
    pdckpt_error err = PDCKPT_ERROR_INIT;
    if (flat) {
        j->owned[r][k] = run_of(full, off, box, b, e);
    } else {
        CHECK_OK(pdckpt_shard_slice(full, off, box, &j->owned[r][k], &err), &err);
    }
    j->shards[r][k] = (pdckpt_shard){key, j->owned[r][k], g, o};
    j->runs[r][k] = (pdckpt_shard_run){flat, v.n_dims, s, b, e};
}

/* Describe, plan, write and commit; the first failing step's status (err says why). */
static pdckpt_status save(job *j, int n_ranks, int64_t *id, pdckpt_error *err) {
    uint8_t             *desc[MAX_RANKS] = {0};
    size_t               len[MAX_RANKS] = {0};
    pdckpt_sharded_plan *plan = NULL;
    pdckpt_status        st = PDCKPT_OK;
    for (int r = 0; r < n_ranks && st == PDCKPT_OK; r++)
        st =
            pdckpt_sharded_describe_runs(j->shards[r], j->runs[r], j->n[r], &desc[r], &len[r], err);
    if (st == PDCKPT_OK)
        st = pdckpt_sharded_plan_new(dir, -1, PDCKPT_FORMAT_AUTO, false,
                                     (const uint8_t *const *)desc, len, n_ranks, &plan, err);
    for (int r = 0; r < n_ranks && st == PDCKPT_OK; r++) {
        uint8_t *a;
        size_t   n;
        CHECK_OK(pdckpt_sharded_plan_assignment(plan, r, &a, &n, err), err);
        st = pdckpt_sharded_write(a, n, j->shards[r], j->n[r], dir, NULL, err);
        pdckpt_free(NULL, a, n);
    }
    if (st == PDCKPT_OK) *id = pdckpt_sharded_plan_id(plan);
    if (st == PDCKPT_OK) st = pdckpt_sharded_plan_commit(plan, 0, err);
    for (int r = 0; r < n_ranks; r++) pdckpt_free(NULL, desc[r], len[r]);
    pdckpt_sharded_plan_free(plan);
    return st;
}

/* ---- the metadata ---- */

static bool ints_are(const pdckpt_value *t, int32_t n, const int64_t *want) {
    if (pdckpt_value_len(t) != (size_t)n) return false;
    for (int32_t i = 0; i < n; i++) {
        int64_t x;
        if (!pdckpt_value_get_int(pdckpt_value_at(t, (size_t)i), &x) || x != want[i]) return false;
    }
    return true;
}

/* storage_metadata lists `key`'s flattened run [b, e) of the box (off, box) in `file`, and
 * state_dict_metadata the same piece. */
static bool lists_run(const pdckpt_value *meta, const char *key, int32_t n, const int64_t *off,
                      const int64_t *box, int64_t b, int64_t e, const char *file) {
    const pdckpt_value *storage = pdckpt_dict_get(meta, "storage_metadata");
    const int64_t       run[2] = {b, e};
    bool                stored = false, described = false, flat = false;
    for (size_t i = 0; i < pdckpt_value_len(storage); i++) {
        const pdckpt_value *item = pdckpt_value_at(storage, i), *ix = pdckpt_value_at(item, 0);
        stored |= strcmp(pdckpt_value_get_string(pdckpt_value_at(ix, 0), NULL), key) == 0 &&
                  ints_are(pdckpt_value_at(ix, 1), n, off) &&
                  pdckpt_value_get_bool(pdckpt_value_at(ix, 2), &flat) && flat &&
                  ints_are(pdckpt_value_at(ix, 3), 2, run) &&
                  pdckpt_value_kind(pdckpt_value_at(ix, 4)) == PDCKPT_KIND_NONE &&
                  ints_are(pdckpt_value_at(ix, 5), n, box) &&
                  strcmp(pdckpt_value_get_string(pdckpt_value_at(item, 1), NULL), file) == 0;
    }
    const pdckpt_value *list = pdckpt_dict_get(pdckpt_dict_get(meta, "state_dict_metadata"), key);
    for (size_t i = 0; i < pdckpt_value_len(list); i++) {
        const pdckpt_value *m = pdckpt_value_at(list, i);
        described |= ints_are(pdckpt_dict_get(m, "global_offset"), n, off) &&
                     ints_are(pdckpt_dict_get(m, "local_shape"), n, box) &&
                     pdckpt_value_get_bool(pdckpt_dict_get(m, "is_flattened"), &flat) && flat &&
                     ints_are(pdckpt_dict_get(m, "flattened_range"), 2, run);
    }
    return stored && described;
}

static size_t pieces_of(const pdckpt_value *meta, const char *key) {
    return pdckpt_value_len(pdckpt_dict_get(pdckpt_dict_get(meta, "state_dict_metadata"), key));
}

/* ---- round trip ---- */

static const int64_t W[2] = {5, 7}, V[3] = {3, 4, 5}, Z2[2] = {0, 0}, Z3[3] = {0, 0, 0};

static void expect_box(int64_t id, const char *key, const pdckpt_value *full, int32_t n,
                       const int64_t *off, const int64_t *shape) {
    pdckpt_error         err = PDCKPT_ERROR_INIT;
    pdckpt_value        *got = NULL, *want = NULL;
    pdckpt_shard_request q = {key, n, off, shape};
    CHECK_OK(pdckpt_sharded_load(dir, id, &q, 1, NULL, &got, &err), &err);
    CHECK_OK(pdckpt_shard_slice(full, off, shape, &want, &err), &err);
    CHECK(pdckpt_value_equal(pdckpt_dict_get(got, key), want));
    pdckpt_value_free(got);
    pdckpt_value_free(want);
}

/* w: sharding v2 over the whole tensor (runs 0..18, 18..35) and rank 2 in the padding (an empty
 * run, as stage 3 makes); v: two tensor-parallel boxes, the first cut in two runs; dup: one run
 * on every rank (a replica); mix: rows 0-1 a plain box, the rest as runs of the whole tensor
 * that do not cover it (only the dense boxes tile). */
static void build(job *j, const pdckpt_value *w, const pdckpt_value *v, const pdckpt_value *dup,
                  const pdckpt_value *mix) {
    add(j, 0, "w", w, Z2, W, true, 0, 18);
    add(j, 1, "w", w, Z2, W, true, 18, 35);
    add(j, 2, "w", w, Z2, W, true, 35, 35);
    const int64_t top[3] = {2, 4, 5}, low_off[3] = {2, 0, 0}, low[3] = {1, 4, 5};
    add(j, 0, "v", v, Z3, top, true, 0, 17);
    add(j, 1, "v", v, Z3, top, true, 17, 40);
    add(j, 2, "v", v, low_off, low, true, 0, 20);
    for (int r = 0; r < 3; r++) add(j, r, "dup", dup, Z2, W, true, 0, 35);
    const int64_t rows[2] = {2, 7};
    add(j, 0, "mix", mix, Z2, rows, false, 0, 0);
    add(j, 1, "mix", mix, Z2, W, true, 14, 30);
    add(j, 2, "mix", mix, Z2, W, true, 30, 35);
}

static void test_round_trip(void) {
    pdckpt_value *w = tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, W, 1);
    pdckpt_value *v = tu_random_tensor(PDCKPT_DTYPE_FLOAT64, 3, V, 2);
    pdckpt_value *dup = tu_random_tensor(PDCKPT_DTYPE_BFLOAT16, 2, W, 3);
    pdckpt_value *mix = tu_random_tensor(PDCKPT_DTYPE_INT32, 2, W, 4);
    job           j = {0};
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    int64_t       id = -1;
    build(&j, w, v, dup, mix);
    CHECK_OK(save(&j, 3, &id, &err), &err);
    pdckpt_value *back = NULL, *meta = NULL;
    CHECK_OK(pdckpt_sharded_load(dir, id, NULL, 0, NULL, &back, &err), &err);
    CHECK(pdckpt_value_equal(pdckpt_dict_get(back, "w"), w));
    CHECK(pdckpt_value_equal(pdckpt_dict_get(back, "v"), v));
    CHECK(pdckpt_value_equal(pdckpt_dict_get(back, "dup"), dup));
    CHECK(pdckpt_value_equal(pdckpt_dict_get(back, "mix"), mix));
    pdckpt_value_free(back);
    const int64_t rows[2] = {3, 7}, at[2] = {1, 0}, col[3] = {3, 2, 5}, col_at[3] = {0, 1, 0};
    expect_box(id, "w", w, 2, at, rows);
    expect_box(id, "v", v, 3, col_at, col);
    expect_box(id, "mix", mix, 2, at, rows);
    CHECK_OK(pdckpt_sharded_read_metadata(dir, id, &meta, NULL, &err), &err);
    CHECK(lists_run(meta, "w", 2, Z2, W, 0, 18, "0_0.distcp"));
    CHECK(lists_run(meta, "w", 2, Z2, W, 18, 35, "1_0.distcp"));
    CHECK_EQ_INT(pieces_of(meta, "w"), 2); /* the empty run is not stored */
    const int64_t top[3] = {2, 4, 5}, low_off[3] = {2, 0, 0}, low[3] = {1, 4, 5};
    CHECK(lists_run(meta, "v", 3, Z3, top, 17, 40, "1_0.distcp"));
    CHECK(lists_run(meta, "v", 3, low_off, low, 0, 20, "2_0.distcp"));
    CHECK_EQ_INT(pieces_of(meta, "dup"), 1); /* written once, by the least loaded rank */
    CHECK(lists_run(meta, "dup", 2, Z2, W, 0, 35, "1_0.distcp"));
    CHECK(lists_run(meta, "mix", 2, Z2, W, 14, 30, "1_0.distcp"));
    CHECK_EQ_INT(pieces_of(meta, "mix"), 3);
    pdckpt_value_free(meta);
    job_free(&j);
    pdckpt_value_free(w), pdckpt_value_free(v), pdckpt_value_free(dup), pdckpt_value_free(mix);
}

/* ---- refusals ---- */

static void expect_refused(job *j, pdckpt_status want, const char *text) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    int64_t      id = -1;
    CHECK_EQ_INT(save(j, 2, &id, &err), want);
    CHECK(strstr(err.message, text) != NULL);
    if (!strstr(err.message, text)) fprintf(stderr, "message: %s\n", err.message);
    job_free(j);
}

static void test_refused(void) {
    pdckpt_value *w = tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, W, 5);
    const int64_t rows[2] = {2, 7};
    job           j = {0};
    add(&j, 0, "w", w, Z2, W, true, 0, 18);
    add(&j, 1, "w", w, Z2, W, true, 17, 35);
    expect_refused(&j, PDCKPT_ERR_MISMATCH,
                   "key 'w': the flattened runs [0, 18) of rank 0 and [17, 35) of rank 1 of one "
                   "box overlap");
    add(&j, 0, "w", w, Z2, W, true, 0, 18);
    add(&j, 1, "w", w, Z2, W, true, 19, 35);
    expect_refused(&j, PDCKPT_ERR_MISMATCH, "key 'w': the pieces cover 34 of its 35 elements");
    add(&j, 0, "w", w, Z2, W, false, 0, 0); /* the whole box, and a run of it */
    add(&j, 1, "w", w, Z2, W, true, 3, 4);
    expect_refused(&j, PDCKPT_ERR_MISMATCH, "key 'w': the flattened run [3, 4) of rank 1 overlaps");
    add(&j, 0, "w", w, Z2, rows, false, 0, 0); /* rows 0-1, and a run reaching into row 1 */
    add(&j, 1, "w", w, Z2, W, true, 13, 35);
    expect_refused(&j, PDCKPT_ERR_MISMATCH, "key 'w': the pieces of ranks");
    add(&j, 0, "w", w, Z2, W, true, 0, 18);
    add(&j, 1, "w", w, Z2, W, true, 18, 35);
    j.runs[1][0].end = 36; /* past its box */
    expect_refused(&j, PDCKPT_ERR_ARGUMENT, "the flattened run [18, 36) is not inside its box");
    add(&j, 0, "w", w, Z2, W, true, 0, 18);
    add(&j, 1, "w", w, Z2, W, true, 18, 35);
    j.runs[1][0].begin = 20; /* 17 elements held for a run of 15 */
    expect_refused(&j, PDCKPT_ERR_ARGUMENT, "must be held by a 1-D tensor of 15 elements");
    add(&j, 0, "w", w, Z2, W, true, 0, 35);
    pdckpt_value_free(j.owned[0][0]); /* a run held by a 2-D tensor */
    pdckpt_error err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_shard_slice(w, Z2, W, &j.owned[0][0], &err), &err);
    j.shards[0][0].tensor = j.owned[0][0];
    expect_refused(&j, PDCKPT_ERR_ARGUMENT, "not one of 2 dims");
    pdckpt_value_free(w);
}

/* ---- many runs ---- */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* `keys` tensors of [rows, 24] float32, each cut by `ranks` ranks into runs of 64 elements (the
 * last one longer: it ends the tensor), which cross rows; `hole`: the last run one short, so only
 * the general check (the runs as dense boxes) can tell.  The plan's status; *secs how long
 * plan_new took. */
static pdckpt_status plan_many(int ranks, int keys, bool hole, double *secs, pdckpt_error *err) {
    const int64_t n = 64, cols = 24, rows = ((int64_t)ranks * n + cols - 1) / cols;
    const int64_t shape[2] = {rows, cols}, zero[2] = {0, 0};
    int64_t       last_len = rows * cols - (ranks - 1) * n - hole;
    pdckpt_value *run = NULL, *last = NULL;
    char(*names)[32] = calloc((size_t)keys, sizeof *names);
    pdckpt_shard     *shards = calloc((size_t)keys, sizeof *shards);
    pdckpt_shard_run *runs = calloc((size_t)keys, sizeof *runs);
    uint8_t         **desc = calloc((size_t)ranks, sizeof *desc);
    size_t           *len = calloc((size_t)ranks, sizeof *len);
    CHECK(names && shards && runs && desc && len);
    CHECK_OK(pdckpt_tensor_new(NULL, PDCKPT_DTYPE_FLOAT32, 1, &n, &run, err), err);
    CHECK_OK(pdckpt_tensor_new(NULL, PDCKPT_DTYPE_FLOAT32, 1, &last_len, &last, err), err);
    for (int k = 0; k < keys; k++) snprintf(names[k], sizeof names[k], "layer.%d.w", k);
    for (int r = 0; r < ranks; r++) {
        int64_t b = (int64_t)r * n, e = r == ranks - 1 ? b + last_len : b + n;
        for (int k = 0; k < keys; k++) {
            shards[k] = (pdckpt_shard){names[k], r == ranks - 1 ? last : run, shape, zero};
            runs[k] = (pdckpt_shard_run){true, 2, shape, b, e};
        }
        CHECK_OK(pdckpt_sharded_describe_runs(shards, runs, (size_t)keys, &desc[r], &len[r], err),
                 err);
    }
    pdckpt_sharded_plan *plan = NULL;
    double               t0 = now();
    pdckpt_status        st = pdckpt_sharded_plan_new(
               dir, -1, PDCKPT_FORMAT_AUTO, false, (const uint8_t *const *)desc, len, ranks, &plan, err);
    *secs = now() - t0;
    pdckpt_sharded_plan_free(plan);
    for (int r = 0; r < ranks; r++) pdckpt_free(NULL, desc[r], len[r]);
    free(names), free(shards), free(runs), free(desc), free(len);
    pdckpt_value_free(run), pdckpt_value_free(last);
    return st;
}

static void test_many_runs(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    double       secs;
    CHECK_OK(plan_many(4096, 1, false, &secs, &err), &err);
    CHECK_OK(plan_many(64, 64, false, &secs, &err), &err);
    CHECK_EQ_INT(plan_many(64, 64, true, &secs, &err), PDCKPT_ERR_MISMATCH);
    CHECK(strstr(err.message, "'layer.") && strstr(err.message, "cover"));
}

int main(int argc, char **argv) {
    dir = tu_tempdir();
    if (argc > 1) { /* the timing: one tensor of N runs (also with a hole), sqrt(N) of sqrt(N) */
        int          n = atoi(argv[1]), s = (int)sqrt((double)n);
        double       one, holed, many;
        pdckpt_error err = PDCKPT_ERROR_INIT;
        CHECK_OK(plan_many(n, 1, false, &one, &err), &err);
        CHECK_EQ_INT(plan_many(n, 1, true, &holed, &err), PDCKPT_ERR_MISMATCH);
        CHECK_OK(plan_many(s, s, false, &many, &err), &err);
        printf("{\"runs\": %d, \"one_tensor_s\": %.4f, \"with_hole_s\": %.4f, \"tensors\": %d, "
               "\"many_s\": %.4f}\n",
               n, one, holed, s, many);
    } else {
        RUN(test_round_trip);
        RUN(test_refused);
        RUN(test_many_runs);
    }
    tu_rmtree(dir);
    free(dir);
    return CHECK_SUMMARY();
}
