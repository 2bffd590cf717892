/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_gather.c — issue 20's gather numbers, under mpirun (bench/dist_scale.sh runs it): every
 * rank holds STATE_MIB of float32 tensors (TENSOR_MIB each, distinct keys); the same state is
 * written (a) gathered to rank 0 (pdckpt_mpi_save, gather_to = {0}, a .pdparams pickle) with the
 * default group size, (b) the same with max_grouped_size = 1M, and (c) as one file by every rank
 * with MPI-IO (pdckpt_mpi_save_combined, .pdparams).  Prints one JSON line: seconds of each, the
 * writer's peak RSS growth (VmHWM, reset before each save) in MiB, and issue 20's memory
 * criterion for (b): the writer's peak RSS over (largest tensor + 1 MiB + its RSS before the
 * save), which must stay <= 1.2.
 *
 *   mpirun -n 4 --oversubscribe build/bench/pdckpt_bench_dist_gather DIR [STATE_MIB] [TENSOR_MIB]
 */
#include "bench_clock.h"

#include <pdckpt_mpi.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int rank, size;

static void reset_peak(void) {
    int fd = open("/proc/self/clear_refs", O_WRONLY);
    if (fd >= 0) {
        if (write(fd, "5", 1) != 1) perror("clear_refs");
        close(fd);
    }
}

static pdckpt_value *state_of(uint64_t state_mib, uint64_t tensor_mib) {
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    for (uint64_t i = 0; i < state_mib / tensor_mib; i++) {
        char          key[64];
        pdckpt_value *t = NULL;
        int64_t       dims[2] = {(int64_t)tensor_mib * 256, 1024};
        snprintf(key, sizeof key, "r%d.layer_%llu.w_0", rank, (unsigned long long)i);
        if (pdckpt_tensor_new(NULL, PDCKPT_DTYPE_FLOAT32, 2, dims, &t, NULL) != PDCKPT_OK) abort();
        memset(pdckpt_tensor_data_mut(t), rank + (int)i, tensor_mib << 20);
        pdckpt_dict_set(d, key, t, NULL);
    }
    return d;
}

typedef enum { GATHER, MPIIO } how;

static double base_mib, hwm_mib; /* rank 0's RSS before the last save and its peak during it */

/* Seconds of one save, and the writer's (rank 0's) peak growth in MiB. */
static double run(how h, const pdckpt_value *state, const char *path, uint64_t group,
                  double *peak_mib) {
    static const int   root = 0;
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    o.save.durable = false; /* the transfer is measured, not the disk's sync */
    o.max_grouped_size = group;
    if (h == GATHER) o.gather_to = &root, o.n_gather_to = 1;
    MPI_Barrier(MPI_COMM_WORLD);
    reset_peak();
    uint64_t      base = bench_status_kib("VmRSS:");
    double        t0 = bench_wall();
    pdckpt_status st = h == GATHER
                           ? pdckpt_mpi_save(MPI_COMM_WORLD, state, path, &o, &err)
                           : pdckpt_mpi_save_combined(MPI_COMM_WORLD, state, path, &o, &err);
    double        took = bench_wall() - t0;
    if (st != PDCKPT_OK) {
        fprintf(stderr, "rank %d: %s\n", rank, err.message);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    base_mib = (double)base / 1024.0;
    hwm_mib = (double)bench_status_kib("VmHWM:") / 1024.0;
    *peak_mib = hwm_mib - base_mib;
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) unlink(path);
    return took;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [STATE_MIB] [TENSOR_MIB]\n", argv[0]);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    uint64_t      state_mib = argc > 2 ? strtoull(argv[2], NULL, 10) : 64;
    uint64_t      tensor_mib = argc > 3 ? strtoull(argv[3], NULL, 10) : 4;
    pdckpt_value *state = state_of(state_mib, tensor_mib);
    char          gathered[4200], combined[4200];
    snprintf(gathered, sizeof gathered, "%s/gathered.pdparams", argv[1]);
    snprintf(combined, sizeof combined, "%s/combined.pdparams", argv[1]);
    double p_default, p_small, p_io;
    double t_default = run(GATHER, state, gathered, 0, &p_default);
    double t_small = run(GATHER, state, gathered, 1u << 20, &p_small);
    double bound = hwm_mib / ((double)tensor_mib + 1.0 + base_mib);
    double t_io = run(MPIIO, state, combined, 0, &p_io);
    if (rank == 0)
        printf("{\"ranks\": %d, \"state_mib_per_rank\": %llu, \"tensor_mib\": %llu, "
               "\"gather_s\": %.3f, \"gather_1m_s\": %.3f, \"mpiio_s\": %.3f, "
               "\"ratio\": %.2f, \"ratio_1m\": %.2f, \"writer_peak_mib\": %.1f, "
               "\"writer_peak_1m_mib\": %.1f, \"mpiio_writer_peak_mib\": %.1f, "
               "\"writer_peak_1m_over_bound\": %.3f}\n",
               size, (unsigned long long)state_mib, (unsigned long long)tensor_mib, t_default,
               t_small, t_io, t_default / t_io, t_small / t_io, p_default, p_small, p_io, bound);
    pdckpt_value_free(state);
    MPI_Finalize();
    return 0;
}
