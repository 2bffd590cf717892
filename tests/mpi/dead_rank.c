/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dead_rank.c — the program tests/py/test_dist.py runs under `mpirun --enable-recovery` (the
 * launcher then lets the job live on when a rank dies, as Open MPI 4.1 does nothing else to tell
 * the others): 3 ranks save with the default 600 s timeout; the last rank is killed (SIGKILL)
 * inside its write.  Each survivor prints one line "rank R: status S after T s: message" for
 * that save and for a second one the dead rank never joins, then leaves without MPI_Finalize
 * (which would wait for the dead rank).
 */
#include <pdckpt_mpi.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static pdckpt_status die(void *self, const void *bytes, size_t len, pdckpt_error *err) {
    (void)self, (void)bytes, (void)len, (void)err;
    raise(SIGKILL);
    return PDCKPT_OK;
}

static const pdckpt_sink_ops dying = {PDCKPT_SINK_OPS_VERSION, die, NULL, NULL};

static void save(const pdckpt_value *state, const char *path, const pdckpt_mpi_options *o, int rank,
                 const char *which) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    double        t0 = now();
    pdckpt_status st = pdckpt_mpi_save(MPI_COMM_WORLD, state, path, o, &err);
    printf("%s: rank %d: status %s after %.2f s: %s\n", which, rank, pdckpt_status_name(st),
           now() - t0, err.message);
    fflush(stdout);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc < 2) return 2;
    pdckpt_value *state = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT), *t = NULL;
    int64_t       dims[2] = {64, 64};
    char          key[32];
    if (pdckpt_tensor_new(NULL, PDCKPT_DTYPE_FLOAT32, 2, dims, &t, NULL) != PDCKPT_OK) return 3;
    snprintf(key, sizeof key, "w%d", rank);
    pdckpt_dict_set(state, key, t, NULL);
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT; /* timeout_s: the default 600 s */
    o.save.durable = false;
    if (rank == size - 1) o.sink_ops = &dying;
    save(state, argv[1], &o, rank, "first");
    o.sink_ops = NULL;
    save(state, argv[1], &o, rank, "second");
    _exit(0);
}
