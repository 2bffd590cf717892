/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_dist_mpiio.c — one combined file written by 4 ranks with MPI-IO: byte for byte what a
 * single process writes for the union of their tensors (every dtype, 0-d, empty, LoD, nested
 * names, a tensor held by two ranks, a 6 MB tensor); failures on one rank leave the previous
 * file and no temporary behind.  The same for one .pdparams pickle (a flat dict; 1 MiB and larger
 * tensors written by their owners at offsets the coordinator's layout pass found): byte for byte
 * the single-process save of the dict the ranks' dicts merge into.
 */
#include "mpi_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pdckpt_dtype dtypes[] = {
    PDCKPT_DTYPE_BOOL,          PDCKPT_DTYPE_UINT8,      PDCKPT_DTYPE_INT8,
    PDCKPT_DTYPE_INT16,         PDCKPT_DTYPE_INT32,      PDCKPT_DTYPE_INT64,
    PDCKPT_DTYPE_FLOAT16,       PDCKPT_DTYPE_BFLOAT16,   PDCKPT_DTYPE_FLOAT32,
    PDCKPT_DTYPE_FLOAT64,       PDCKPT_DTYPE_COMPLEX64,  PDCKPT_DTYPE_COMPLEX128,
    PDCKPT_DTYPE_FLOAT8_E4M3FN, PDCKPT_DTYPE_FLOAT8_E5M2};
#define N_TENSORS 40

/* Tensor i of the global state, and the rank that holds it. */
static pdckpt_value *tensor_i(int i, char *name, size_t cap) {
    pdckpt_dtype dt = dtypes[i % (int)(sizeof dtypes / sizeof dtypes[0])];
    int64_t      dims[3] = {1 + i % 5, 1 + i % 3, 2};
    int32_t      n_dims = i % 4;
    if (i == 7) dims[0] = 0; /* empty */
    snprintf(name, cap, "layer_%02d.w_%d", i, i % 3);
    if (i == 11) dims[0] = 6 << 20, n_dims = 1, dt = PDCKPT_DTYPE_UINT8; /* 6 MB */
    pdckpt_value *t = mt_tensor(dt, n_dims, dims, 5000 + (unsigned)i);
    if (i == 13) { /* a LoD tensor */
        pdckpt_value_free(t);
        t = mt_tensor(PDCKPT_DTYPE_FLOAT32, 2, (int64_t[]){5, 2}, 77);
        const uint64_t  l0[] = {0, 2, 5};
        const uint64_t *levels[] = {l0};
        const uint64_t  lens[] = {3};
        pdckpt_tensor_set_lod(t, 1, levels, lens, NULL);
    }
    return t;
}

/* This rank's part: tensors i with i % size == rank, nested under "block" for i >= 30, and
 * "dup.w" on ranks 1 and 3. */
static pdckpt_value *local_state(int rank, int size, bool all) {
    pdckpt_value *d = mt_dict(), *block = mt_dict();
    char          name[64];
    for (int i = 0; i < N_TENSORS; i++) {
        if (!all && i % size != rank) {
            continue;
        }
        pdckpt_value *t = tensor_i(i, name, sizeof name);
        mt_set(i >= 30 ? block : d, name, t);
    }
    mt_set(d, "block", block);
    if (all || rank == 1 || rank == 3)
        mt_set(d, "dup.w", mt_tensor(PDCKPT_DTYPE_FLOAT32, 2, (int64_t[]){3, 3}, 99));
    mt_set(d, "StructuredToParameterName@@", mt_dict()); /* metadata, skipped like the core does */
    return d;
}

static void test_equals_single_process(void) {
    const char        *dir = mt_shared_dir();
    const char        *path = mt_path(dir, "all.pdiparams");
    pdckpt_value      *mine = local_state(mt_rank, mt_size, false);
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    CHECK_OK(pdckpt_mpi_save_combined(MPI_COMM_WORLD, mine, path, &o, &err), &err);
    if (mt_rank == 1) { /* any rank can check: the file is shared */
        pdckpt_value       *all = local_state(0, mt_size, true);
        pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
        so.format = PDCKPT_FORMAT_COMBINED;
        so.skip_non_tensors = true; /* the MPI writer flattens "block" the way this asks for */
        void  *want = NULL;
        size_t want_len = 0, got_len = 0;
        CHECK_OK(pdckpt_save_memory(all, &so, &want, &want_len, &err), &err);
        void *got = tu_read_file(path, &got_len);
        CHECK(got && want && got_len == want_len && memcmp(got, want, want_len) == 0);
        CHECK(want_len > (6u << 20));
        free(got);
        pdckpt_free(NULL, want, want_len);
        pdckpt_value_free(all);
    }
    mt_barrier(MPI_COMM_WORLD);
    CHECK_EQ_INT(tu_count_entries(dir, "."), 2); /* no temporaries */
    pdckpt_value_free(mine);
}

static void test_failures_keep_previous(void) {
    const char        *dir = mt_shared_dir();
    const char        *path = mt_path(dir, "all.pdiparams");
    size_t             before_len = 0, after_len = 0;
    void              *before = tu_read_file(path, &before_len);
    pdckpt_value      *mine = local_state(mt_rank, mt_size, false);
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    if (mt_rank == 2) mt_set(mine, "bad", mt_tensor(PDCKPT_DTYPE_UINT16, 1, (int64_t[]){2}, 1));
    pdckpt_status st = pdckpt_mpi_save_combined(MPI_COMM_WORLD, mine, path, &o, &err);
    CHECK_EQ_INT(st, PDCKPT_ERR_UNSUPPORTED);
    CHECK(strncmp(err.message, "rank 2: tensor 'bad'", 20) == 0);
    pdckpt_dict_remove(mine, "bad");
    if (mt_rank == 3) mt_set(mine, "dup.w", mt_tensor(PDCKPT_DTYPE_FLOAT32, 1, (int64_t[]){9}, 1));
    st = pdckpt_mpi_save_combined(MPI_COMM_WORLD, mine, path, &o, &err);
    CHECK_EQ_INT(st, PDCKPT_ERR_MISMATCH);
    void *after = tu_read_file(path, &after_len);
    CHECK(before && after && before_len == after_len && memcmp(before, after, before_len) == 0);
    mt_barrier(MPI_COMM_WORLD);
    CHECK_EQ_INT(tu_count_entries(dir, "."), 2);
    free(before);
    free(after);
    pdckpt_value_free(mine);
}

/* A rank's flat dict for the pickle: its share of the tensors (no LoD: pickles hold arrays), two
 * large ones, and "dup.w" on ranks 1 and 3 with different values (rank 3's wins the merge). */
static pdckpt_value *pickle_state(int rank, int size) {
    pdckpt_value *d = mt_dict();
    char          name[64];
    for (int i = 0; i < N_TENSORS; i++) {
        if (i % size != rank || i == 13) continue;
        pdckpt_value      *t = tensor_i(i, name, sizeof name);
        pdckpt_tensor_view v;
        pdckpt_tensor_get(t, &v); /* a pickle holds float8 as int8 bits: say so, as a user must */
        if (v.dtype == PDCKPT_DTYPE_FLOAT8_E4M3FN || v.dtype == PDCKPT_DTYPE_FLOAT8_E5M2)
            pdckpt_tensor_reinterpret(t, PDCKPT_DTYPE_INT8, NULL);
        mt_set(d, name, t);
    }
    if (rank == 1 || rank == 3)
        mt_set(d, "dup.w", mt_tensor(PDCKPT_DTYPE_FLOAT32, 2, (int64_t[]){3, 3}, 90 + rank));
    if (rank == 0)
        mt_set(d, "big.w", mt_tensor(PDCKPT_DTYPE_FLOAT32, 2, (int64_t[]){512, 1024}, 7));
    if (rank == size - 1)
        mt_set(d, "big.h", mt_tensor(PDCKPT_DTYPE_BFLOAT16, 2, (int64_t[]){768, 1000}, 8));
    return d;
}

static void test_pickle_equals_single_process(void) {
    const char        *path = mt_path(mt_shared_dir(), "all.pdparams");
    pdckpt_value      *mine = pickle_state(mt_rank, mt_size);
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    CHECK_OK(pdckpt_mpi_save_combined(MPI_COMM_WORLD, mine, path, &o, &err), &err);
    if (mt_rank == 0) { /* dict.update over the ranks, in rank order, then one save */
        pdckpt_value *merged = mt_dict();
        for (int r = 0; r < mt_size; r++) {
            pdckpt_value *part = pickle_state(r, mt_size);
            for (size_t i = 0; i < pdckpt_value_len(part); i++)
                mt_set(merged, pdckpt_value_get_string(pdckpt_dict_key_at(part, i), NULL),
                       pdckpt_value_retain(pdckpt_value_at_mut(part, i)));
            pdckpt_value_free(part);
        }
        pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
        so.format = PDCKPT_FORMAT_PICKLE;
        void  *want = NULL;
        size_t want_len = 0, got_len = 0;
        CHECK_OK(pdckpt_save_memory(merged, &so, &want, &want_len, &err), &err);
        void *got = tu_read_file(path, &got_len);
        CHECK(got && want && got_len == want_len && memcmp(got, want, want_len) == 0);
        CHECK(want_len > (3u << 20));
        free(got);
        pdckpt_free(NULL, want, want_len);
        pdckpt_value_free(merged);
    }
    /* Protocol 2 (value-dependent lengths) and nested dicts are refused on every rank. */
    o.save.protocol = 2;
    CHECK_EQ_INT(pdckpt_mpi_save_combined(MPI_COMM_WORLD, mine, path, &o, &err),
                 PDCKPT_ERR_ARGUMENT);
    o.save.protocol = 4;
    if (mt_rank == 1) mt_set(mine, "nested", mt_dict());
    CHECK_EQ_INT(pdckpt_mpi_save_combined(MPI_COMM_WORLD, mine, path, &o, &err),
                 PDCKPT_ERR_ARGUMENT);
    CHECK(strncmp(err.message, "rank 1: ", 8) == 0);
    mt_barrier(MPI_COMM_WORLD);
    CHECK_EQ_INT(tu_count_entries(mt_shared_dir(), "."), 2);
    pdckpt_value_free(mine);
}

int main(int argc, char **argv) {
    mt_init(&argc, &argv);
    RUN(test_equals_single_process);
    RUN(test_failures_keep_previous);
    RUN(test_pickle_equals_single_process);
    return mt_finish();
}
