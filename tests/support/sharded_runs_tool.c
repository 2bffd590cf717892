/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sharded_runs_tool.c — a sharded save of Paddle's flattened pieces over MPI
 * (pdckpt_mpi_save_sharded_runs), for tests/py/test_paddle_sharded.py, which loads the result in
 * pdckpt and in real Paddle.  Under mpirun with N ranks, rank r holds (float32, element i of the
 * row-major flattening of each global tensor = base + i):
 *   "w" [5, 7]  base 0     the run r of N balanced runs of the whole box (sharding v2)
 *   "u" [4, 6]  base 100   the box of rows (r % 2) * 2 .. + 2, cut into runs among the ranks
 *                          that hold that box (tensor parallel x sharding)
 *   "b" [6, 3]  base 1000  rows of an N-way row split, as plain boxes
 *
 *   mpirun -n N pdckpt_sharded_runs_tool DIR
 */
#include <pdckpt_mpi.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define N_KEYS 3

typedef struct piece {
    int64_t global[2], offset[2], box[2];
} piece;

/* The elements [b, e) of the flattening of the box (p->offset, p->box) of a global float32
 * tensor whose element i is base + i: a 1-D run, or (box) the whole box with its shape. */
static pdckpt_value *run_tensor(const piece *p, int64_t b, int64_t e, float base, bool box) {
    int64_t       len = e - b;
    pdckpt_value *t = NULL;
    if (pdckpt_tensor_new(NULL, PDCKPT_DTYPE_FLOAT32, box ? 2 : 1, box ? p->box : &len, &t, NULL) !=
        PDCKPT_OK)
        return NULL;
    float *data = pdckpt_tensor_data_mut(t);
    for (int64_t k = b; k < e; k++) {
        int64_t row = p->offset[0] + k / p->box[1], col = p->offset[1] + k % p->box[1];
        data[k - b] = base + (float)(row * p->global[1] + col);
    }
    return t;
}

static int run(int rank, int size, const char *dir) {
    static const char *keys[N_KEYS] = {"w", "u", "b"};
    piece              p[N_KEYS] = {
                     {{5, 7}, {0, 0}, {5, 7}}, {{4, 6}, {0, 0}, {2, 6}}, {{6, 3}, {0, 0}, {0, 3}}};
    int64_t b[N_KEYS] = {0}, e[N_KEYS] = {0}, len;
    pdckpt_shard_split(35, size, rank, &b[0], &len), e[0] = b[0] + len;
    int members = (size - rank % 2 + 1) / 2; /* the ranks holding u's box rank % 2 */
    p[1].offset[0] = (rank % 2) * 2;
    pdckpt_shard_split(12, members, rank / 2, &b[1], &len), e[1] = b[1] + len;
    pdckpt_shard_split(6, size, rank, &p[2].offset[0], &p[2].box[0]);
    e[2] = p[2].box[0] * 3;
    pdckpt_mpi_shard shards[N_KEYS];
    pdckpt_shard_run runs[N_KEYS];
    pdckpt_value    *owned[N_KEYS];
    for (int k = 0; k < N_KEYS; k++) {
        owned[k] = run_tensor(&p[k], b[k], e[k], k == 0 ? 0.0f : k == 1 ? 100.0f : 1000.0f, k == 2);
        shards[k] = (pdckpt_mpi_shard){keys[k], owned[k], p[k].global, p[k].offset};
        runs[k] = (pdckpt_shard_run){k < 2, 2, p[k].box, b[k], e[k]};
    }
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    o.save.durable = false;
    pdckpt_status st =
        pdckpt_mpi_save_sharded_runs(MPI_COMM_WORLD, shards, runs, N_KEYS, dir, &o, NULL, &err);
    if (st != PDCKPT_OK) fprintf(stderr, "rank %d: %s\n", rank, err.message);
    for (int k = 0; k < N_KEYS; k++) pdckpt_value_free(owned[k]);
    return st == PDCKPT_OK ? 0 : 1;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int rc = argc == 2 ? run(rank, size, argv[1]) : 2;
    if (argc != 2) fprintf(stderr, "usage: %s DIR\n", argv[0]);
    MPI_Finalize();
    return rc;
}
