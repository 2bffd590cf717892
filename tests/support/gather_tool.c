/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gather_tool.c — paddle.distributed.save(state, OUT, gather_to=[T], state_type=S) done by
 * pdckpt: under mpirun, rank r loads IN_r (IN with "%d" replaced by r) and every rank calls
 * pdckpt_mpi_save with gather_to T.  tests/py/test_dist_gather_paddle.py compares OUT with what
 * Paddle's own _gather_state_dict and paddle.save make of the same per-rank files.
 *
 *   mpirun -n N pdckpt_gather_tool IN_PATTERN OUT TARGET opt|params numpy.core|numpy._core
 */
#include <pdckpt_mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(int rank, char **argv) {
    char path[4096];
    snprintf(path, sizeof path, argv[1], rank);
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    pdckpt_value      *state = NULL;
    pdckpt_status      st = pdckpt_load_file(path, NULL, &state, NULL, &err);
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    int                target = atoi(argv[3]);
    o.gather_to = &target;
    o.n_gather_to = 1;
    o.state_type = strcmp(argv[4], "opt") == 0 ? PDCKPT_MPI_OPT : PDCKPT_MPI_PARAMS;
    o.save.durable = false;
    o.save.numpy_module =
        strcmp(argv[5], "numpy._core") == 0 ? PDCKPT_NUMPY__CORE : PDCKPT_NUMPY_CORE;
    if (st == PDCKPT_OK) st = pdckpt_mpi_save(MPI_COMM_WORLD, state, argv[2], &o, &err);
    if (st != PDCKPT_OK) fprintf(stderr, "rank %d: %s\n", rank, err.message);
    pdckpt_value_free(state);
    return st == PDCKPT_OK ? 0 : 1;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int rc = argc == 6 ? run(rank, argv) : 2;
    if (argc != 6)
        fprintf(stderr, "usage: %s IN_PATTERN OUT TARGET opt|params NUMPY_MODULE\n", argv[0]);
    MPI_Finalize();
    return rc;
}
