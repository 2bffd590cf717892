/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_dist_save.c — pdckpt_mpi_save / pdckpt_mpi_gather under mpirun (4 ranks): gather_to one
 * rank, two ranks, all and none; params and opt (master_weights merged key by key, the writer's
 * LR_Scheduler, non-tensor leaves); group bounds from 1 KiB to 3 GiB, checked on the wire with
 * PMPI wrappers (what each rank posts per round, and that only writing ranks receive); files in
 * safetensors / combined / vars-dir; and failures (a failing sink, bad input, mismatched
 * arguments) that every rank reports identically while previous files stay intact.
 */
#include "mpi_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- what goes over the wire (PMPI) ---- */

static uint64_t wire_posted, wire_max_round, wire_recv_total, wire_sent_total, wire_rounds;

int MPI_Irecv(void *buf, int count, MPI_Datatype type, int src, int tag, MPI_Comm comm,
              MPI_Request *req) {
    int size = 0;
    PMPI_Type_size(type, &size);
    wire_posted += (uint64_t)size * (uint64_t)count;
    wire_recv_total += (uint64_t)size * (uint64_t)count;
    return PMPI_Irecv(buf, count, type, src, tag, comm, req);
}

int MPI_Isend(const void *buf, int count, MPI_Datatype type, int dst, int tag, MPI_Comm comm,
              MPI_Request *req) {
    int size = 0;
    PMPI_Type_size(type, &size);
    wire_sent_total += (uint64_t)size * (uint64_t)count;
    return PMPI_Isend(buf, count, type, dst, tag, comm, req);
}

int MPI_Testall(int n, MPI_Request reqs[], int *flag, MPI_Status statuses[]) {
    int rc = PMPI_Testall(n, reqs, flag, statuses);
    if (*flag && wire_posted) { /* a round of receives completed */
        if (wire_posted > wire_max_round) wire_max_round = wire_posted;
        wire_rounds++;
        wire_posted = 0;
    }
    return rc;
}

static void wire_reset(void) {
    wire_posted = wire_max_round = wire_recv_total = wire_sent_total = wire_rounds = 0;
}

/* ---- states every rank can rebuild for any rank ---- */

static pdckpt_value *params_state(int r, bool tensors_only) {
    pdckpt_value *d = mt_dict();
    char          key[64];
    mt_set(d, "shared.w_0", mt_tensor(PDCKPT_DTYPE_FLOAT32, 2, (int64_t[]){3, 4}, 100 + r));
    snprintf(key, sizeof key, "r%d.w_0", r);
    mt_set(d, key, mt_tensor(PDCKPT_DTYPE_FLOAT32, 2, (int64_t[]){r + 2, 3}, 200 + r));
    snprintf(key, sizeof key, "r%d.b_0", r);
    mt_set(d, key, mt_tensor(PDCKPT_DTYPE_INT64, 1, (int64_t[]){5}, 300 + r));
    snprintf(key, sizeof key, "r%d.scalar", r);
    mt_set(d, key, mt_tensor(PDCKPT_DTYPE_FLOAT64, 0, NULL, 400 + r));
    snprintf(key, sizeof key, "r%d.empty", r);
    mt_set(d, key, mt_tensor(PDCKPT_DTYPE_FLOAT32, 2, (int64_t[]){0, 4}, 0));
    snprintf(key, sizeof key, "r%d.big", r);
    mt_set(d, key, mt_tensor(PDCKPT_DTYPE_UINT8, 1, (int64_t[]){5000 + 3000 * r}, 500 + r));
    if (!tensors_only) {
        mt_set(d, "epoch", pdckpt_value_new_int(NULL, 10 + r));
        pdckpt_value *meta = mt_dict();
        mt_set(meta, "rank", pdckpt_value_new_int(NULL, r));
        mt_set(meta, "tag", pdckpt_value_new_string(NULL, r % 2 ? "odd" : "even", SIZE_MAX));
        mt_set(d, "meta", meta);
    }
    return d;
}

static pdckpt_value *opt_state(int r) {
    pdckpt_value *d = mt_dict();
    char          key[64];
    snprintf(key, sizeof key, "p%d_moment1_0", r);
    mt_set(d, key, mt_tensor(PDCKPT_DTYPE_FLOAT32, 2, (int64_t[]){4, 2}, 600 + r));
    mt_set(d, "shared_moment1_0", mt_tensor(PDCKPT_DTYPE_FLOAT32, 1, (int64_t[]){6}, 700 + r));
    snprintf(key, sizeof key, "p%d_beta1_pow_acc_0", r);
    mt_set(d, key, mt_tensor(PDCKPT_DTYPE_FLOAT32, 1, (int64_t[]){1}, 800 + r));
    pdckpt_value *mw = mt_dict();
    snprintf(key, sizeof key, "p%d", r);
    mt_set(mw, key, mt_tensor(PDCKPT_DTYPE_FLOAT32, 2, (int64_t[]){4, 2}, 900 + r));
    mt_set(mw, "shared", mt_tensor(PDCKPT_DTYPE_FLOAT32, 1, (int64_t[]){6}, 1000 + r));
    mt_set(d, "master_weights", mw);
    if (r != 2) { /* rank 2 has no scheduler: as a writer it writes none (Paddle's own rule) */
        pdckpt_value *lr = mt_dict();
        mt_set(lr, "last_epoch", pdckpt_value_new_int(NULL, r));
        mt_set(lr, "last_lr", pdckpt_value_new_float(NULL, 0.5 / (r + 1)));
        mt_set(d, "LR_Scheduler", lr);
    }
    return d;
}

static pdckpt_value *state_of(int r, bool opt, bool tensors_only) {
    return opt ? opt_state(r) : params_state(r, tensors_only);
}

/* Paddle's merge, written the plain way: dict.update over ranks in order, master_weights
 * updated key by key and put last, then the writer's own LR_Scheduler (none if it has none). */
static pdckpt_value *expected_merge(int t, bool opt, bool tensors_only) {
    pdckpt_value *m = mt_dict();
    for (int s = 0; s < mt_size; s++) {
        pdckpt_value *st = state_of(s, opt, tensors_only);
        for (size_t i = 0; i < pdckpt_value_len(st); i++) {
            const char   *key = pdckpt_value_get_string(pdckpt_dict_key_at(st, i), NULL);
            pdckpt_value *v = pdckpt_value_at_mut(st, i);
            if (opt && strcmp(key, "master_weights") == 0) {
                pdckpt_value *mw = pdckpt_dict_get_mut(m, key);
                if (!mw) mt_set(m, key, mw = mt_dict());
                for (size_t j = 0; j < pdckpt_value_len(v); j++)
                    mt_set(mw, pdckpt_value_get_string(pdckpt_dict_key_at(v, j), NULL),
                           pdckpt_value_retain(pdckpt_value_at_mut(v, j)));
            } else if (!opt || strcmp(key, "LR_Scheduler") != 0) {
                mt_set(m, key, pdckpt_value_retain(v));
            }
        }
        pdckpt_value_free(st);
    }
    if (opt) {
        pdckpt_value *mw = pdckpt_dict_get_mut(m, "master_weights");
        pdckpt_value_retain(mw);
        pdckpt_dict_remove(m, "master_weights");
        mt_set(m, "master_weights", mw);
        pdckpt_value *own = state_of(t, true, false);
        pdckpt_value *lr = pdckpt_dict_get_mut(own, "LR_Scheduler");
        if (lr) mt_set(m, "LR_Scheduler", pdckpt_value_retain(lr));
        pdckpt_value_free(own);
    }
    return m;
}

/* Bytes of the tensors under `v` (what a writer receives for a winning entry). */
static uint64_t tree_bytes(const pdckpt_value *v) {
    pdckpt_tensor_view tv;
    if (pdckpt_tensor_get(v, &tv)) return tv.n_bytes;
    uint64_t n = 0;
    for (size_t i = 0; i < pdckpt_value_len(v); i++) n += tree_bytes(pdckpt_value_at(v, i));
    return n;
}

/* Bytes target t receives from other ranks under the merge rules (params only). */
static uint64_t expected_received(int t) {
    uint64_t      n = 0;
    pdckpt_value *m = expected_merge(t, false, false);
    for (int s = 0; s < mt_size; s++) {
        if (s == t) continue;
        pdckpt_value *st = params_state(s, false);
        for (size_t i = 0; i < pdckpt_value_len(st); i++) {
            const char *key = pdckpt_value_get_string(pdckpt_dict_key_at(st, i), NULL);
            int         last = s;
            for (int u = s + 1; u < mt_size; u++) {
                pdckpt_value *su = params_state(u, false);
                if (pdckpt_dict_get(su, key)) last = u;
                pdckpt_value_free(su);
            }
            if (last == s) n += tree_bytes(pdckpt_value_at(st, i));
        }
        pdckpt_value_free(st);
    }
    pdckpt_value_free(m);
    return n;
}

static bool in_list(int r, const int *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (list[i] == r) return true;
    return false;
}

static void gather_case(bool opt, const int *targets, size_t n_targets, uint64_t group) {
    pdckpt_value      *state = state_of(mt_rank, opt, false), *merged = NULL;
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    o.gather_to = targets;
    o.n_gather_to = n_targets;
    o.state_type = opt ? PDCKPT_MPI_OPT : PDCKPT_MPI_PARAMS;
    o.max_grouped_size = group;
    pdckpt_error err = PDCKPT_ERROR_INIT;
    wire_reset();
    CHECK_OK(pdckpt_mpi_gather(MPI_COMM_WORLD, state, &o, &merged, &err), &err);
    bool target = in_list(mt_rank, targets, n_targets);
    CHECK(target == (merged != NULL));
    if (target && merged) {
        pdckpt_value *want = expected_merge(mt_rank, opt, false);
        CHECK(pdckpt_value_equal(merged, want));
        pdckpt_value_free(want);
    }
    /* Only writers receive; no round carries more than the bound. */
    uint64_t bound = group ? group : PDCKPT_MPI_DEFAULT_GROUP;
    CHECK(wire_max_round <= bound);
    if (!target) CHECK_EQ_INT(wire_recv_total, 0);
    if (target && !opt) {
        uint64_t want = expected_received(mt_rank);
        CHECK_EQ_INT(wire_recv_total, want);
        CHECK(wire_rounds >= (want + bound - 1) / bound);
    }
    uint64_t sent = 0, received = 0;
    MPI_Allreduce(&wire_sent_total, &sent, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(&wire_recv_total, &received, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    CHECK_EQ_INT(sent, received);
    pdckpt_value_free(merged);
    pdckpt_value_free(state);
}

static void test_gather_params(void) {
    static const int      one[] = {0}, two[] = {3, 1}, all[] = {0, 1, 2, 3};
    static const uint64_t groups[] = {1024, 10 << 10, 0, UINT64_C(3) << 30};
    for (size_t g = 0; g < 4; g++) {
        gather_case(false, one, 1, groups[g]);
        gather_case(false, two, 2, groups[g]);
    }
    gather_case(false, all, (size_t)(mt_size < 4 ? mt_size : 4), 4096);
}

static void test_gather_opt(void) {
    static const int one[] = {2}, two[] = {0, 3};
    gather_case(true, one, 1, 1024);
    gather_case(true, two, 2, 0);
    /* The merged optimizer state: rank 2 has no scheduler and writes none (the others' are
     * not its own). */
    pdckpt_value *want = expected_merge(2, true, false);
    CHECK(!pdckpt_dict_get(want, "LR_Scheduler"));
    CHECK_EQ_INT(pdckpt_value_len(pdckpt_dict_get(want, "master_weights")), mt_size + 1);
    pdckpt_value_free(want);
}

/* ---- files ---- */

static void check_file(const char *path, const pdckpt_value *want, pdckpt_format format) {
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.format = format;
    const char *names[64];
    size_t      n = pdckpt_value_len(want);
    for (size_t i = 0; i < n && i < 64; i++)
        names[i] = pdckpt_value_get_string(pdckpt_dict_key_at(want, i), NULL);
    if (format == PDCKPT_FORMAT_COMBINED) { /* combined files hold names in byte order */
        for (size_t i = 1; i < n; i++)
            for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
                const char *t = names[j];
                names[j] = names[j - 1];
                names[j - 1] = t;
            }
        lo.names = names;
        lo.n_names = n;
    }
    pdckpt_value *got = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_load_file(path, &lo, &got, NULL, &err), &err);
    CHECK_EQ_INT(pdckpt_value_len(got), n);
    for (size_t i = 0; got && i < n; i++) {
        const char         *key = pdckpt_value_get_string(pdckpt_dict_key_at(want, i), NULL);
        const pdckpt_value *g = pdckpt_dict_get(got, key);
        CHECK(g && pdckpt_value_equal(g, pdckpt_value_at(want, i)));
    }
    pdckpt_value_free(got);
}

static void test_save_files(void) {
    const char        *dir = mt_shared_dir();
    pdckpt_value      *state = params_state(mt_rank, true);
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    static const int   zero[] = {0}, pair[] = {1, 2};
    o.gather_to = zero;
    o.n_gather_to = 1;
    o.max_grouped_size = 2048;
    CHECK_OK(pdckpt_mpi_save(MPI_COMM_WORLD, state, mt_path(dir, "merged.safetensors"), &o, &err),
             &err);
    o.gather_to = pair;
    o.n_gather_to = 2;
    CHECK_OK(pdckpt_mpi_save(MPI_COMM_WORLD, state, mt_path(dir, "m{rank}.pdiparams"), &o, &err),
             &err);
    o.n_gather_to = 0;
    CHECK_OK(pdckpt_mpi_save(MPI_COMM_WORLD, state, mt_path(dir, "own.safetensors"), &o, &err),
             &err);
    CHECK_OK(pdckpt_mpi_save(MPI_COMM_WORLD, state, mt_path(dir, "vars/"), &o, &err), &err);
    MPI_Barrier(MPI_COMM_WORLD);
    pdckpt_value *merged = expected_merge(0, false, true);
    char          name[64];
    if (mt_rank == 0) check_file(mt_path(dir, "merged.safetensors"), merged, PDCKPT_FORMAT_AUTO);
    snprintf(name, sizeof name, "m%d.pdiparams", mt_rank);
    CHECK_EQ_INT(tu_file_exists(mt_path(dir, name)), mt_rank == 1 || mt_rank == 2);
    if (mt_rank == 1 || mt_rank == 2)
        check_file(mt_path(dir, name), merged, PDCKPT_FORMAT_COMBINED);
    snprintf(name, sizeof name, "own.rank%d.safetensors", mt_rank);
    check_file(mt_path(dir, name), state, PDCKPT_FORMAT_AUTO);
    snprintf(name, sizeof name, "vars.rank%d/", mt_rank);
    check_file(mt_path(dir, name), state, PDCKPT_FORMAT_VARS_DIR);
    CHECK_EQ_INT(tu_count_entries(dir, "."), 2); /* "." and "..": no temporaries left */
    pdckpt_value_free(merged);
    pdckpt_value_free(state);
}

/* ---- failures ---- */

static pdckpt_status failing_write(void *self, const void *bytes, size_t len, pdckpt_error *err) {
    (void)self;
    (void)bytes;
    (void)len;
    snprintf(err->message, sizeof err->message, "injected: the disk is full");
    err->status = PDCKPT_ERR_IO;
    return PDCKPT_ERR_IO;
}

static const pdckpt_sink_ops failing_ops = {PDCKPT_SINK_OPS_VERSION, failing_write, NULL, NULL};

static void *snapshot(const char *path, size_t *len) {
    return tu_read_file(path, len);
}

static void expect_failure(pdckpt_status got, pdckpt_status want, const pdckpt_error *err,
                           const char *rank_text) {
    CHECK_EQ_INT(got, want);
    CHECK_EQ_INT(err->status, want);
    CHECK(strstr(err->message, rank_text) == err->message);
    /* Every rank holds the very same record. */
    char first[sizeof err->message];
    memcpy(first, err->message, sizeof first);
    MPI_Bcast(first, sizeof first, MPI_CHAR, 0, MPI_COMM_WORLD);
    CHECK(strcmp(first, err->message) == 0);
}

static void test_failures_keep_previous_files(void) {
    const char        *dir = mt_shared_dir();
    pdckpt_value      *state = params_state(mt_rank, true);
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_mpi_save(MPI_COMM_WORLD, state, mt_path(dir, "keep.pdiparams"), &o, &err),
             &err);
    char name[64];
    snprintf(name, sizeof name, "keep.rank%d.pdiparams", mt_rank);
    size_t        before_len = 0, after_len = 0;
    void         *before = snapshot(mt_path(dir, name), &before_len);
    pdckpt_value *next = params_state(mt_rank + 10, true); /* different bytes */
    /* 1. Rank 2 writes through a sink that fails. */
    if (mt_rank == 2) o.sink_ops = &failing_ops;
    pdckpt_status st =
        pdckpt_mpi_save(MPI_COMM_WORLD, next, mt_path(dir, "keep.pdiparams"), &o, &err);
    expect_failure(st, PDCKPT_ERR_IO, &err, "rank 2: ");
    CHECK(strstr(err.message, "injected: the disk is full") != NULL);
    if (!strstr(err.message, "injected")) fprintf(stderr, "message: %s\n", err.message);
    o.sink_ops = NULL;
    /* 2. Rank 1 holds a dtype the combined format cannot store. */
    if (mt_rank == 1) mt_set(next, "bad", mt_tensor(PDCKPT_DTYPE_UINT16, 1, (int64_t[]){3}, 1));
    st = pdckpt_mpi_save(MPI_COMM_WORLD, next, mt_path(dir, "keep.pdiparams"), &o, &err);
    expect_failure(st, PDCKPT_ERR_UNSUPPORTED, &err, "rank 1: ");
    /* 3. Ranks disagree about gather_to. */
    int target = mt_rank == 0 ? 0 : 1;
    o.gather_to = &target;
    o.n_gather_to = 1;
    st = pdckpt_mpi_save(MPI_COMM_WORLD, next, mt_path(dir, "keep.pdiparams"), &o, &err);
    CHECK_EQ_INT(st, PDCKPT_ERR_MISMATCH);
    /* 4. A bad argument on one rank only. */
    o.n_gather_to = 0;
    o.max_grouped_size = mt_rank == 3 ? 10 : 0;
    st = pdckpt_mpi_save(MPI_COMM_WORLD, next, mt_path(dir, "keep.pdiparams"), &o, &err);
    expect_failure(st, PDCKPT_ERR_ARGUMENT, &err, "rank 3: ");
    void *after = snapshot(mt_path(dir, name), &after_len);
    CHECK(before && after && before_len == after_len && memcmp(before, after, before_len) == 0);
    MPI_Barrier(MPI_COMM_WORLD);
    CHECK_EQ_INT(tu_count_entries(dir, ".pdckpt") + tu_count_entries(dir, ".keep"), 0);
    free(before);
    free(after);
    pdckpt_value_free(next);
    pdckpt_value_free(state);
}

static void test_parse_size_and_paths(void) {
    uint64_t     v = 0;
    pdckpt_error err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_mpi_parse_size("3G", &v, &err), &err);
    CHECK_EQ_INT(v, UINT64_C(3) << 30);
    CHECK_OK(pdckpt_mpi_parse_size("512M", &v, &err), &err);
    CHECK_EQ_INT(v, UINT64_C(512) << 20);
    CHECK_OK(pdckpt_mpi_parse_size("10K", &v, &err), &err);
    CHECK_EQ_INT(v, 10240);
    CHECK_OK(pdckpt_mpi_parse_size("4096", &v, &err), &err);
    CHECK_EQ_INT(v, 4096);
    CHECK_EQ_INT(pdckpt_mpi_parse_size("3GB", &v, &err), PDCKPT_ERR_ARGUMENT);
    CHECK_EQ_INT(pdckpt_mpi_parse_size("G", &v, &err), PDCKPT_ERR_ARGUMENT);
    CHECK_EQ_INT(pdckpt_mpi_parse_size("99999999999999999999", &v, &err), PDCKPT_ERR_ARGUMENT);
    char out[256];
    CHECK_OK(pdckpt_mpi_rank_path("a/b/m.pdparams", 3, 4, out, sizeof out, &err), &err);
    CHECK_STR(out, "a/b/m.rank3.pdparams");
    CHECK_OK(pdckpt_mpi_rank_path("a.b/m", 1, 4, out, sizeof out, &err), &err);
    CHECK_STR(out, "a.b/m.rank1");
    CHECK_OK(pdckpt_mpi_rank_path("out/", 2, 4, out, sizeof out, &err), &err);
    CHECK_STR(out, "out.rank2/");
    CHECK_OK(pdckpt_mpi_rank_path("x/{rank}_{rank}.pdopt", 7, 8, out, sizeof out, &err), &err);
    CHECK_STR(out, "x/7_7.pdopt");
    CHECK_OK(pdckpt_mpi_rank_path("m.pdparams", 0, 1, out, sizeof out, &err), &err);
    CHECK_STR(out, "m.pdparams");
}

/* params_state with tensors of 1.25 MiB, which a gather to one writer streams (issue 20): one
 * per rank and one on every rank (the last rank's wins). */
static pdckpt_value *streamed_state(int r) {
    pdckpt_value *d = params_state(r, false);
    char          key[64];
    snprintf(key, sizeof key, "r%d.huge", r);
    mt_set(d, key, mt_tensor(PDCKPT_DTYPE_FLOAT32, 2, (int64_t[]){320, 1024}, 600 + r));
    mt_set(d, "shared.huge", mt_tensor(PDCKPT_DTYPE_FLOAT32, 1, (int64_t[]){330000}, 700 + r));
    return d;
}

/* streamed.pdparams gathered to rank 0 in 1 MiB groups (512 KiB chunks), and the merge as one
 * process writes it (dict.update over ranks). */
static void keep_streamed(const char *dir) {
    static const int   zero[] = {0};
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    pdckpt_value      *mine = streamed_state(mt_rank);
    o.max_grouped_size = UINT64_C(1) << 20;
    o.gather_to = zero;
    o.n_gather_to = 1;
    CHECK_OK(pdckpt_mpi_save(MPI_COMM_WORLD, mine, mt_path(dir, "streamed.pdparams"), &o, &err),
             &err);
    pdckpt_value_free(mine);
    if (mt_rank != 0) return;
    pdckpt_value *want = mt_dict();
    for (int s = 0; s < mt_size; s++) {
        pdckpt_value *st = streamed_state(s);
        for (size_t i = 0; i < pdckpt_value_len(st); i++)
            mt_set(want, pdckpt_value_get_string(pdckpt_dict_key_at(st, i), NULL),
                   pdckpt_value_retain(pdckpt_value_at_mut(st, i)));
        pdckpt_value_free(st);
    }
    CHECK_OK(pdckpt_save_file(want, mt_path(dir, "expected_streamed.pdparams"), NULL, &err), &err);
    pdckpt_value_free(want);
}

/* For tests/py/test_dist.py (PDCKPT_DIST_KEEP=DIR): the gathered .pdparams (rank 0) and .pdopt
 * files (ranks 1 and 2, 1 KiB groups) that real Paddle must load, beside what one process
 * writes for the expected merge. */
static void keep_files(const char *dir) {
    static const int   zero[] = {0}, pair[] = {1, 2};
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    pdckpt_value      *params = params_state(mt_rank, false), *opt = opt_state(mt_rank);
    o.max_grouped_size = 1024;
    o.gather_to = zero;
    o.n_gather_to = 1;
    CHECK_OK(pdckpt_mpi_save(MPI_COMM_WORLD, params, mt_path(dir, "params.pdparams"), &o, &err),
             &err);
    o.gather_to = pair;
    o.n_gather_to = 2;
    o.state_type = PDCKPT_MPI_OPT;
    CHECK_OK(pdckpt_mpi_save(MPI_COMM_WORLD, opt, mt_path(dir, "opt{rank}.pdopt"), &o, &err), &err);
    char name[64];
    snprintf(name, sizeof name, "expected_opt%d.pdopt", mt_rank);
    pdckpt_value *want = expected_merge(mt_rank, true, false);
    if (mt_rank == 1 || mt_rank == 2)
        CHECK_OK(pdckpt_save_file(want, mt_path(dir, name), NULL, &err), &err);
    pdckpt_value_free(want);
    want = expected_merge(0, false, false);
    if (mt_rank == 0)
        CHECK_OK(pdckpt_save_file(want, mt_path(dir, "expected_params.pdparams"), NULL, &err),
                 &err);
    pdckpt_value_free(want);
    pdckpt_value_free(params);
    pdckpt_value_free(opt);
    keep_streamed(dir);
}

int main(int argc, char **argv) {
    mt_init(&argc, &argv);
    if (mt_size != 4) {
        fprintf(stderr, "run with 4 ranks\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    const char *keep = getenv("PDCKPT_DIST_KEEP");
    if (keep) {
        keep_files(keep);
        return mt_finish();
    }
    RUN(test_parse_size_and_paths);
    RUN(test_gather_params);
    RUN(test_gather_opt);
    RUN(test_save_files);
    RUN(test_failures_keep_previous_files);
    return mt_finish();
}
