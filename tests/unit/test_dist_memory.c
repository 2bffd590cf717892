/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_dist_memory.c — the memory bound of a gathered save under mpirun (4 ranks, 24 MiB of
 * state each, gather_to rank 0): peak resident memory (VmHWM, reset before the save) grows on a
 * rank that only sends by its metadata and MPI's transport buffers, never by its state (sends
 * go straight from tensor memory); on the writing rank by two chunks of at most half a group,
 * never by what it receives (issue 20: received tensors are streamed into the file while it is
 * written, safetensors, pickle and .pdiparams alike; its own tensors are not copied), and the
 * file holds every rank's tensors bit for bit.  Paddle's all_gather_object would hold every
 * rank's pickled groups on every rank.  The numbers are printed for the report.
 */
#include "mpi_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define SHADOW(n) ((n) / 8) /* ASan keeps one shadow byte per 8 bytes allocated */
#else
#define SHADOW(n) 0
#endif

#define TENSORS    24
#define TENSOR_MIB 1

static pdckpt_value *state_of(int rank) {
    pdckpt_value *d = mt_dict();
    char          key[64];
    for (int i = 0; i < TENSORS; i++) {
        snprintf(key, sizeof key, "r%d.layer_%d.w_0", rank, i);
        mt_set(d, key,
               mt_tensor(PDCKPT_DTYPE_FLOAT32, 2, (int64_t[]){256 * TENSOR_MIB, 1024},
                         (unsigned)(rank * 100 + i)));
    }
    return d;
}

/* The writer's file is byte for byte what a single-process save of every rank's tensors (in
 * rank order: the keys are distinct) writes, though the received ones were streamed. */
static void check_file(const char *path) {
    pdckpt_value *all = mt_dict();
    for (int r = 0; r < mt_size; r++) {
        pdckpt_value *part = state_of(r);
        for (size_t i = 0; i < pdckpt_value_len(part); i++)
            mt_set(all, pdckpt_value_get_string(pdckpt_dict_key_at(part, i), NULL),
                   pdckpt_value_retain((pdckpt_value *)pdckpt_value_at(part, i)));
        pdckpt_value_free(part);
    }
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    so.format = pdckpt_format_from_path(path);
    void  *want = NULL;
    size_t want_len = 0;
    CHECK_OK(pdckpt_save_memory(all, &so, &want, &want_len, &err), &err);
    FILE    *f = fopen(path, "rb");
    uint8_t *got = malloc(want_len + 1);
    size_t   got_len = f && got ? fread(got, 1, want_len + 1, f) : 0;
    CHECK(got_len == want_len && memcmp(got, want, want_len) == 0);
    if (f) fclose(f);
    free(got);
    pdckpt_free(NULL, want, want_len);
    pdckpt_value_free(all);
}

static void run_case(uint64_t group, const char *name) {
    const char        *dir = mt_shared_dir();
    pdckpt_value      *state = state_of(mt_rank);
    static const int   root = 0;
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    o.gather_to = &root;
    o.n_gather_to = 1;
    o.max_grouped_size = group;
    o.save.durable = false;
    pdckpt_error err = PDCKPT_ERROR_INIT;
    mt_barrier(MPI_COMM_WORLD);
    mt_reset_peak();
    uint64_t base = mt_current_rss();
    CHECK_OK(pdckpt_mpi_save(MPI_COMM_WORLD, state, mt_path(dir, name), &o, &err), &err);
    uint64_t peak = mt_peak_rss(); /* RSS counters lag: the peak may read below the base */
    uint64_t growth = peak > base ? peak - base : 0;
    if (mt_rank == 0) check_file(mt_path(dir, name));
    uint64_t own = (uint64_t)TENSORS * TENSOR_MIB << 20;
    uint64_t received = own * (uint64_t)(mt_size - 1);
    uint64_t all[4] = {0};
    MPI_Gather(&growth, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (mt_rank == 0) {
        printf(
            "%s, group %llu KiB: state per rank %llu MiB; peak growth: writer %.1f MiB (receives "
            "%.0f MiB), senders %.1f / %.1f / %.1f MiB\n",
            name, (unsigned long long)(group >> 10), (unsigned long long)(own >> 20),
            all[0] / 1048576.0, received / 1048576.0, all[1] / 1048576.0, all[2] / 1048576.0,
            all[3] / 1048576.0);
        /* The writer streams what it receives: two chunks of at most half a group (4 MiB
         * at most), plus at most 8 MiB (write buffers, metadata, MPI) — never the state. */
        uint64_t chunks = group < (8u << 20) ? group : (8u << 20);
        CHECK(growth <= chunks + SHADOW(chunks) + (8u << 20));
        CHECK(growth < received / 4);
    } else {
        /* A sender: no copy of its state, at most 8 MiB of metadata and transport buffers. */
        CHECK(growth <= (8u << 20));
        CHECK(growth < own / 2);
    }
    pdckpt_value_free(state);
}

/* The writer's output fails in the middle of a streamed tensor (a pull is in flight): every rank
 * gets that error, nobody waits for a timeout, and the next streamed save works. */
static pdckpt_status failing_write(void *self, const void *bytes, size_t len, pdckpt_error *err) {
    (void)bytes;
    uint64_t *left = self;
    if (len > *left) {
        err->status = PDCKPT_ERR_IO;
        snprintf(err->message, sizeof err->message, "the test's sink is full");
        return PDCKPT_ERR_IO;
    }
    *left -= len;
    return PDCKPT_OK;
}

static const pdckpt_sink_ops failing_ops = {PDCKPT_SINK_OPS_VERSION, failing_write, NULL, NULL};

static void test_writer_fails_mid_stream(void) {
    pdckpt_value      *state = state_of(mt_rank);
    static const int   root = 0;
    uint64_t           left = (UINT64_C(24) << 20) + (UINT64_C(5) << 19); /* inside rank 1's */
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    o.gather_to = &root;
    o.n_gather_to = 1;
    o.max_grouped_size = UINT64_C(1) << 20;
    o.timeout_s = 60;
    o.save.format = PDCKPT_FORMAT_SAFETENSORS;
    o.sink_ops = &failing_ops;
    o.sink_self = &left;
    double        t0 = mt_now();
    pdckpt_status st = pdckpt_mpi_save(MPI_COMM_WORLD, state, NULL, &o, &err);
    CHECK(st == PDCKPT_ERR_IO && strstr(err.message, "rank 0: ") && mt_now() - t0 < 30);
    o.sink_ops = NULL;
    err = (pdckpt_error)PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_mpi_save(MPI_COMM_WORLD, state, mt_path(mt_shared_dir(), "after.safetensors"),
                             &o, &err),
             &err);
    pdckpt_value_free(state);
}

static void test_gather_memory(void) {
    run_case(UINT64_C(1) << 20, "merged.safetensors"); /* 1 MiB groups */
    run_case(UINT64_C(3) << 30, "merged.safetensors"); /* 3 GiB: 4 MiB chunks */
    run_case(UINT64_C(1) << 20, "merged.pdparams");    /* paddle.save's pickle, protocol 4 */
    run_case(UINT64_C(1) << 20, "merged.pdiparams");
}

int main(int argc, char **argv) {
    mt_init(&argc, &argv);
    if (mt_size != 4) {
        fprintf(stderr, "run with 4 ranks\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    RUN(test_gather_memory);
    RUN(test_writer_fails_mid_stream);
    return mt_finish();
}
