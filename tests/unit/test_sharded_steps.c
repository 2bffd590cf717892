/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_sharded_steps.c — a sharded save driven step by step without MPI (pdckpt_sharded_describe,
 * _plan_new, _plan_assignment, _write, _plan_commit: what pdckpt.distributed runs over Paddle's
 * process group), three ranks simulated in one process: the checkpoint loads back bit for bit,
 * replicas are stored once, nothing is complete before the commit, an uncommitted re-save of an id
 * leaves the previous checkpoint whole and is swept by the next plan, and broken bytes from another
 * rank (descriptions, assignments) are refused with what was expected, and a symbolic link planted
 * at a data file's name is never written through.
 */
#include "check.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RANKS 3

static char         *dir;
static const int64_t W_SHAPE[2] = {7, 4}, B_SHAPE[1] = {5}, S_SHAPE[1] = {2};

typedef struct rank_state {
    pdckpt_value *pieces[3];
    int64_t       offset[3][2];
    pdckpt_shard  shards[3];
    size_t        n;
} rank_state;

/* Rank r: its row band of w (Paddle's balanced split), all of b, and s on rank 0 only. */
static void make_rank(rank_state *rs, int r, const pdckpt_value *w, const pdckpt_value *b,
                      const pdckpt_value *s) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    int64_t      parts[2] = {RANKS, 1}, shape[2];
    memset(rs, 0, sizeof *rs);
    pdckpt_shard_box(2, W_SHAPE, parts, r, rs->offset[0], shape);
    CHECK_OK(pdckpt_shard_slice(w, rs->offset[0], shape, &rs->pieces[0], &err), &err);
    rs->shards[0] = (pdckpt_shard){"w", rs->pieces[0], W_SHAPE, rs->offset[0]};
    rs->shards[1] = (pdckpt_shard){"b", b, NULL, NULL};
    rs->shards[2] = (pdckpt_shard){"s", s, S_SHAPE, NULL};
    rs->n = r == 0 ? 3 : 2;
}

static void free_rank(rank_state *rs) {
    pdckpt_value_free(rs->pieces[0]);
}

/* Describe, plan, write every rank; commit when asked.  Returns the id. */
static int64_t save(rank_state *ranks, int64_t id, bool commit) {
    pdckpt_error         err = PDCKPT_ERROR_INIT;
    uint8_t             *desc[RANKS];
    size_t               len[RANKS];
    pdckpt_sharded_plan *plan = NULL;
    for (int r = 0; r < RANKS; r++)
        CHECK_OK(pdckpt_sharded_describe(ranks[r].shards, ranks[r].n, &desc[r], &len[r], &err),
                 &err);
    CHECK_OK(pdckpt_sharded_plan_new(dir, id, PDCKPT_FORMAT_AUTO, false,
                                     (const uint8_t *const *)desc, len, RANKS, &plan, &err),
             &err);
    for (int r = 0; r < RANKS; r++) {
        uint8_t *a;
        size_t   n;
        CHECK_OK(pdckpt_sharded_plan_assignment(plan, r, &a, &n, &err), &err);
        CHECK_OK(pdckpt_sharded_write(a, n, ranks[r].shards, ranks[r].n, dir, NULL, &err), &err);
        pdckpt_free(NULL, a, n);
        pdckpt_free(NULL, desc[r], len[r]);
    }
    int64_t got = pdckpt_sharded_plan_id(plan);
    if (commit) {
        if (got == 0 && id < 0) CHECK(!pdckpt_sharded_is_checkpoint(dir)); /* not before it */
        CHECK_OK(pdckpt_sharded_plan_commit(plan, 0, &err), &err);
        CHECK_EQ_INT(pdckpt_sharded_plan_commit(plan, 0, &err), PDCKPT_ERR_ARGUMENT); /* once */
    }
    pdckpt_sharded_plan_free(plan);
    return got;
}

/* pdckpt_sharded_read_metadata's tree shares its repeated leaves (dict keys, dtypes, a key's
 * global shape, key and file names) rather than making each anew: the same content, ~3x less
 * memory (bench/NOTES.md). */
static void expect_compact_tree(const pdckpt_value *meta) {
    const pdckpt_value *w = pdckpt_dict_get(pdckpt_dict_get(meta, "state_dict_metadata"), "w");
    CHECK_EQ_INT(pdckpt_value_len(w), 3);
    const pdckpt_value *p0 = pdckpt_value_at(w, 0), *p1 = pdckpt_value_at(w, 1);
    const pdckpt_value *dtype = pdckpt_dict_get(p0, "dtype"),
                       *shape = pdckpt_dict_get(p0, "global_shape");
    CHECK_STR(pdckpt_value_get_string(dtype, NULL), "float32");
    int64_t rows = 0, cols = 0;
    CHECK(pdckpt_value_get_int(pdckpt_value_at(shape, 0), &rows) && rows == 7);
    CHECK(pdckpt_value_get_int(pdckpt_value_at(shape, 1), &cols) && cols == 4);
    CHECK(dtype == pdckpt_dict_get(p1, "dtype") && pdckpt_value_shared(dtype));
    CHECK(shape == pdckpt_dict_get(p1, "global_shape"));
    CHECK(pdckpt_dict_key_at(p0, 0) == pdckpt_dict_key_at(p1, 0));
    const pdckpt_value *storage = pdckpt_dict_get(meta, "storage_metadata");
    const pdckpt_value *names[5];
    size_t              n_w = 0;
    for (size_t i = 0; i < pdckpt_value_len(storage); i++) {
        const pdckpt_value *key =
            pdckpt_value_at(pdckpt_value_at(pdckpt_value_at(storage, i), 0), 0);
        if (strcmp(pdckpt_value_get_string(key, NULL), "w") == 0) names[n_w++] = key;
    }
    CHECK(n_w == 3 && names[0] == names[1] && names[1] == names[2]);
}

static void expect_loads(int64_t id, const pdckpt_value *w, const pdckpt_value *b,
                         const pdckpt_value *s) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *back = NULL;
    CHECK_OK(pdckpt_sharded_load(dir, id, NULL, 0, NULL, &back, &err), &err);
    CHECK(pdckpt_value_equal(pdckpt_dict_get(back, "w"), w));
    CHECK(pdckpt_value_equal(pdckpt_dict_get(back, "b"), b));
    CHECK(pdckpt_value_equal(pdckpt_dict_get(back, "s"), s));
    pdckpt_value_free(back);
    pdckpt_value *meta = NULL; /* w's three bands, b and s once each */
    CHECK_OK(pdckpt_sharded_read_metadata(dir, id, &meta, NULL, &err), &err);
    CHECK_EQ_INT(pdckpt_value_len(pdckpt_dict_get(meta, "storage_metadata")), 5);
    expect_compact_tree(meta);
    pdckpt_value_free(meta);
}

static void test_round_trip_and_uncommitted_resave(void) {
    pdckpt_value *w = tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, W_SHAPE, 1);
    pdckpt_value *b = tu_random_tensor(PDCKPT_DTYPE_BFLOAT16, 1, B_SHAPE, 2);
    pdckpt_value *s = tu_random_tensor(PDCKPT_DTYPE_INT64, 1, S_SHAPE, 3);
    pdckpt_value *w2 = tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, W_SHAPE, 4);
    rank_state    ranks[RANKS], again[RANKS];
    for (int r = 0; r < RANKS; r++) make_rank(&ranks[r], r, w, b, s);
    for (int r = 0; r < RANKS; r++) make_rank(&again[r], r, w2, b, s);
    CHECK_EQ_INT(save(ranks, -1, true), 0);
    expect_loads(0, w, b, s);
    int files = tu_count_entries(dir, "");
    /* A re-save of id 0 whose commit never comes (a rank died): id 0 is still the old one. */
    CHECK_EQ_INT(save(again, 0, false), 0);
    CHECK(tu_count_entries(dir, "") > files);
    expect_loads(0, w, b, s);
    /* The next plan sweeps the uncommitted files; its commit replaces id 0 and its old files. */
    CHECK_EQ_INT(save(again, 0, true), 0);
    expect_loads(0, w2, b, s);
    CHECK_EQ_INT(tu_count_entries(dir, ""), files);
    CHECK_EQ_INT(save(ranks, -1, true), 1);
    expect_loads(1, w, b, s);
    for (int r = 0; r < RANKS; r++) free_rank(&ranks[r]), free_rank(&again[r]);
    pdckpt_value_free(w), pdckpt_value_free(b), pdckpt_value_free(s), pdckpt_value_free(w2);
}

static void expect_plan_refused(const uint8_t *d1, size_t n1, const char *what) {
    pdckpt_error         err = PDCKPT_ERROR_INIT;
    pdckpt_shard         one = {"x", NULL, NULL, NULL};
    int64_t              dims[1] = {4};
    pdckpt_value        *t = tu_random_tensor(PDCKPT_DTYPE_UINT8, 1, dims, 5);
    uint8_t             *d0;
    size_t               n0;
    pdckpt_sharded_plan *plan = NULL;
    one.tensor = t;
    CHECK_OK(pdckpt_sharded_describe(&one, 1, &d0, &n0, &err), &err);
    const uint8_t *descs[2] = {d0, d1};
    size_t         lens[2] = {n0, n1};
    CHECK(pdckpt_sharded_plan_new(dir, -1, PDCKPT_FORMAT_AUTO, false, descs, lens, 2, &plan,
                                  &err) != PDCKPT_OK);
    CHECK(plan == NULL);
    CHECK(strstr(err.message, what) || strstr(err.source, what));
    pdckpt_free(NULL, d0, n0);
    pdckpt_value_free(t);
}

static void test_broken_bytes_refused(void) {
    uint8_t huge[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f}; /* a count, no records */
    expect_plan_refused(huge, sizeof huge, "rank 1's shard descriptions");
    expect_plan_refused(huge, 3, "rank 1's shard descriptions");
    /* Both ranks say they hold all of x, in different dtypes. */
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    int64_t       dims[1] = {4};
    pdckpt_value *t = tu_random_tensor(PDCKPT_DTYPE_INT8, 1, dims, 6);
    pdckpt_shard  one = {"x", t, NULL, NULL};
    uint8_t      *d;
    size_t        n;
    CHECK_OK(pdckpt_sharded_describe(&one, 1, &d, &n, &err), &err);
    expect_plan_refused(d, n, "x");
    pdckpt_free(NULL, d, n);
    /* Assignments: truncated, or naming a piece this rank does not have. */
    pdckpt_value *tree = NULL;
    char          path[512];
    pdckpt_format f;
    uint8_t       bad[25] = {0};
    CHECK_EQ_INT(
        pdckpt_sharded_data_file(bad, 10, &one, 1, dir, &tree, path, sizeof path, &f, &err),
        PDCKPT_ERR_FORMAT);
    bad[16] = PDCKPT_FORMAT_PICKLE;
    bad[17] = 1; /* one piece ... */
    CHECK_EQ_INT(
        pdckpt_sharded_data_file(bad, sizeof bad, &one, 1, dir, &tree, path, sizeof path, &f, &err),
        PDCKPT_ERR_FORMAT); /* ... whose index is missing */
    CHECK(tree == NULL);
    /* Two pieces of one key on a rank. */
    pdckpt_shard twice[2] = {one, one};
    CHECK_EQ_INT(pdckpt_sharded_describe(twice, 2, &d, &n, &err), PDCKPT_ERR_ARGUMENT);
    pdckpt_value_free(t);
}

/* A link at "0_0.distcp" (the name rank 0 writes in a fresh directory) to a file outside: the
 * atomic save used to follow it and replace that file (found by trying it). */
static void test_link_at_data_file_not_followed(void) {
    char ck[4096], link[4200], victim[4200];
    snprintf(ck, sizeof ck, "%s/linked", dir);
    snprintf(link, sizeof link, "%s/0_0.distcp", ck);
    snprintf(victim, sizeof victim, "%s/victim.txt", dir);
    CHECK(mkdir(ck, 0777) == 0);
    FILE *f = fopen(victim, "w");
    CHECK(f && fputs("not a checkpoint\n", f) >= 0 && fclose(f) == 0);
    CHECK(symlink(victim, link) == 0);
    pdckpt_error         err = PDCKPT_ERROR_INIT;
    int64_t              dims[1] = {4};
    pdckpt_value        *t = tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 1, dims, 7);
    pdckpt_shard         one = {"x", t, NULL, NULL};
    uint8_t             *d, *a;
    size_t               n, an;
    pdckpt_sharded_plan *plan = NULL;
    CHECK_OK(pdckpt_sharded_describe(&one, 1, &d, &n, &err), &err);
    const uint8_t *descs[1] = {d};
    CHECK_OK(pdckpt_sharded_plan_new(ck, -1, PDCKPT_FORMAT_AUTO, false, descs, &n, 1, &plan, &err),
             &err);
    CHECK_OK(pdckpt_sharded_plan_assignment(plan, 0, &a, &an, &err), &err);
    CHECK_EQ_INT(pdckpt_sharded_write(a, an, &one, 1, ck, NULL, &err), PDCKPT_ERR_ARGUMENT);
    CHECK(strstr(err.message, "symbolic link"));
    struct stat st;
    CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(stat(victim, &st) == 0 && st.st_size == 17); /* unchanged */
    CHECK_EQ_INT(tu_count_entries(ck, ""), 3);         /* ., .. and the link: no temporary */
    pdckpt_free(NULL, a, an);
    pdckpt_free(NULL, d, n);
    pdckpt_sharded_plan_free(plan);
    pdckpt_value_free(t);
}

int main(void) {
    dir = tu_tempdir();
    RUN(test_round_trip_and_uncommitted_resave);
    RUN(test_broken_bytes_refused);
    RUN(test_link_at_data_file_not_followed);
    tu_rmtree(dir);
    free(dir);
    return CHECK_SUMMARY();
}
