/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_dist_memory.c — the memory bound of a gathered save under mpirun (4 ranks, 24 MiB of
 * state each, gather_to rank 0): peak resident memory (VmHWM, reset before the save) grows on a
 * rank that only sends by its metadata and MPI's transport buffers, never by its state (sends
 * go straight from tensor memory); on the writing rank by what it receives and writes (every
 * received tensor is allocated once, where the data lands; its own tensors are not copied).
 * Paddle's all_gather_object would hold every rank's pickled groups on every rank.  The same
 * holds with small and large groups; the numbers are printed for the report.
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

static void run_case(uint64_t group) {
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
    CHECK_OK(pdckpt_mpi_save(MPI_COMM_WORLD, state, mt_path(dir, "merged.safetensors"), &o, &err),
             &err);
    uint64_t growth = mt_peak_rss() - base;
    uint64_t own = (uint64_t)TENSORS * TENSOR_MIB << 20;
    uint64_t received = own * (uint64_t)(mt_size - 1);
    uint64_t all[4] = {0};
    MPI_Gather(&growth, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (mt_rank == 0) {
        printf("group %llu KiB: state per rank %llu MiB; peak growth: writer %.1f MiB (receives "
               "%.0f MiB), senders %.1f / %.1f / %.1f MiB\n",
               (unsigned long long)(group >> 10), (unsigned long long)(own >> 20),
               all[0] / 1048576.0, received / 1048576.0, all[1] / 1048576.0, all[2] / 1048576.0,
               all[3] / 1048576.0);
        /* The writer: what it receives, plus at most 8 MiB (write buffer, metadata, MPI). */
        CHECK(growth <= received + SHADOW(received) + (8u << 20));
    } else {
        /* A sender: no copy of its state, at most 8 MiB of metadata and transport buffers. */
        CHECK(growth <= (8u << 20));
        CHECK(growth < own / 2);
    }
    pdckpt_value_free(state);
}

static void test_gather_memory(void) {
    run_case(UINT64_C(1) << 20); /* 1 MiB groups: 72 rounds */
    run_case(UINT64_C(3) << 30); /* 3 GiB: one round */
}

int main(int argc, char **argv) {
    mt_init(&argc, &argv);
    if (mt_size != 4) {
        fprintf(stderr, "run with 4 ranks\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    RUN(test_gather_memory);
    return mt_finish();
}
