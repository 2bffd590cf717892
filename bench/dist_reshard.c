/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_reshard.c — issue 20's reshard numbers, under mpirun (bench/dist_scale.sh runs it): the
 * ranks save a sharded checkpoint of TENSORS float32 tensors of ROWS x COLS, split in row bands
 * (one band per rank), then load it back on the same ranks as row bands (the same topology),
 * row bands shifted by half a band (each overlaps two stored pieces), column bands and a block
 * grid (2 x size/2), on the copy path (zero_copy off: every byte lands in the caller's memory)
 * and zero-copy (the loaded bytes are then read once, so a lazy mapping is not timed as free).
 * ROUNDS rounds, the layouts taking turns within each (warm page cache).  Prints one JSON line:
 * per path and layout the median and best wall seconds, the median CPU seconds of all ranks
 * (which a busy machine disturbs less) and their ratios to the same-topology load, and the
 * median page faults of all ranks in a load (how many of the boxes' pages were fresh: the C
 * library's heap reuses some of the previous load's freed boxes and not others, and half of a
 * same-topology load is its box's first touch; bench/NOTES.md).
 *
 *   mpirun -n 4 --oversubscribe build/bench/pdckpt_bench_dist_reshard DIR [TENSORS] [ROWS] [COLS]
 */
#include "bench_clock.h"

#include <pdckpt_mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static int     rank, size;
static int64_t n_tensors = 8, rows = 2048, cols = 2048;

static void die(const char *what, const pdckpt_error *err) {
    fprintf(stderr, "rank %d: %s: %s\n", rank, what, err->message);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

static void save(const char *dir) {
    int64_t           global[2] = {rows, cols}, parts[2] = {size, 1};
    pdckpt_mpi_shard *shards = calloc((size_t)n_tensors, sizeof *shards);
    char(*keys)[32] = calloc((size_t)n_tensors, sizeof *keys);
    int64_t off[2], shape[2];
    pdckpt_shard_box(2, global, parts, rank, off, shape);
    pdckpt_error err = PDCKPT_ERROR_INIT;
    for (int64_t i = 0; i < n_tensors; i++) {
        pdckpt_value *t = NULL;
        if (pdckpt_tensor_new(NULL, PDCKPT_DTYPE_FLOAT32, 2, shape, &t, &err) != PDCKPT_OK)
            die("tensor", &err);
        float *f = pdckpt_tensor_data_mut(t);
        for (int64_t e = 0; e < shape[0] * shape[1]; e++) f[e] = (float)(e + i + rank);
        snprintf(keys[i], sizeof keys[i], "layer_%lld.w_0", (long long)i);
        shards[i] = (pdckpt_mpi_shard){keys[i], t, global, off};
    }
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    o.save.durable = false;
    if (pdckpt_mpi_save_sharded(MPI_COMM_WORLD, shards, (size_t)n_tensors, dir, &o, NULL, &err) !=
        PDCKPT_OK)
        die("save", &err);
    for (int64_t i = 0; i < n_tensors; i++) pdckpt_value_free((pdckpt_value *)shards[i].tensor);
    free(shards);
    free(keys);
}

/* Sums one float per 64 bytes: every cache line of the loaded bytes is read. */
static double touch(const pdckpt_value *out) {
    double sum = 0;
    for (size_t i = 0; i < pdckpt_value_len(out); i++) {
        pdckpt_tensor_view v;
        pdckpt_tensor_get(pdckpt_value_at(out, i), &v);
        const float *f = v.data;
        for (uint64_t e = 0; e < v.n_bytes / 4; e += 16) sum += f[e];
    }
    return sum;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* This process's minor page faults so far. */
static double faults(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_minflt;
}

/* One load's figures: wall seconds (barrier to barrier), CPU seconds and page faults of all
 * ranks together. */
typedef struct sample {
    double wall, cpu, faults;
} sample;

/* One load of every tensor's box of layout `parts` (NULL: row bands shifted by half a band, the
 * last rank's by minus half). */
static sample load(const char *dir, const int64_t *parts, bool zero_copy) {
    int64_t             global[2] = {rows, cols}, off[2], shape[2], band[2] = {size, 1};
    pdckpt_mpi_request *reqs = calloc((size_t)n_tensors, sizeof *reqs);
    char(*keys)[32] = calloc((size_t)n_tensors, sizeof *keys);
    pdckpt_shard_box(2, global, parts ? parts : band, rank, off, shape);
    if (!parts) off[0] += rank < size - 1 ? shape[0] / 2 : -shape[0] / 2;
    for (int64_t i = 0; i < n_tensors; i++) {
        snprintf(keys[i], sizeof keys[i], "layer_%lld.w_0", (long long)i);
        reqs[i] = (pdckpt_mpi_request){keys[i], 2, off, shape};
    }
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    o.load.zero_copy = zero_copy;
    pdckpt_value *out = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = bench_wall(), c0 = bench_cpu(), f0 = faults();
    if (pdckpt_mpi_load_sharded(MPI_COMM_WORLD, dir, reqs, (size_t)n_tensors, &o, &out, &err) !=
        PDCKPT_OK)
        die("load", &err);
    volatile double sink = zero_copy ? touch(out) : 0;
    (void)sink;
    double mine[2] = {bench_cpu() - c0, faults() - f0}, all[2];
    MPI_Barrier(MPI_COMM_WORLD);
    sample got = {bench_wall() - t0, 0, 0};
    MPI_Allreduce(mine, all, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    got.cpu = all[0];
    got.faults = all[1];
    pdckpt_value_free(out);
    free(reqs);
    free(keys);
    return got;
}

#define ROUNDS  15
#define LAYOUTS 4

/* t[z][l][r], c[z][l][r], f[z][l][r]: wall seconds, CPU seconds and page faults of path z (copy,
 * zero-copy), layout l (same, shifted rows, columns, blocks), round r.  The layouts take turns
 * within a round, so a burst of other jobs on the machine falls on all of them alike. */
static void run_rounds(const char *dir, double t[2][LAYOUTS][ROUNDS], double c[2][LAYOUTS][ROUNDS],
                       double f[2][LAYOUTS][ROUNDS]) {
    int64_t        row[2] = {size, 1}, col[2] = {1, size}, block[2] = {2, size / 2};
    const int64_t *parts[LAYOUTS] = {row, NULL, col, block};
    for (int r = 0; r < ROUNDS; r++)
        for (int z = 0; z < 2; z++)
            for (int l = 0; l < LAYOUTS; l++) {
                sample s = load(dir, parts[l], z);
                t[z][l][r] = s.wall;
                c[z][l][r] = s.cpu;
                f[z][l][r] = s.faults;
            }
}

/* One JSON object per path: best and median wall seconds of each layout, median CPU seconds and
 * page faults, the ratios of the medians (and of the bests) to the same-topology load, and the
 * ratios of median CPU seconds. */
static void report(double t[2][LAYOUTS][ROUNDS], double c[2][LAYOUTS][ROUNDS],
                   double f[2][LAYOUTS][ROUNDS]) {
    static const char *name[LAYOUTS] = {"same", "row", "col", "block"};
    printf("{\"ranks\": %d, \"tensors\": %lld, \"rows\": %lld, \"cols\": %lld, "
           "\"rounds\": %d",
           size, (long long)n_tensors, (long long)rows, (long long)cols, ROUNDS);
    for (int z = 0; z < 2; z++) {
        double best[LAYOUTS], med[LAYOUTS], cpu[LAYOUTS], flt[LAYOUTS];
        for (int l = 0; l < LAYOUTS; l++) {
            best[l] = t[z][l][0];
            for (int r = 1; r < ROUNDS; r++) best[l] = t[z][l][r] < best[l] ? t[z][l][r] : best[l];
            med[l] = median(t[z][l], ROUNDS);
            cpu[l] = median(c[z][l], ROUNDS);
            flt[l] = median(f[z][l], ROUNDS);
        }
        printf(", \"%s\": {", z ? "zero_copy" : "copy");
        for (int l = 0; l < LAYOUTS; l++)
            printf("%s\"%s_s\": %.4f, \"%s_best_s\": %.4f, \"%s_cpu_s\": %.4f, \"%s_faults\": %.0f",
                   l ? ", " : "", name[l], med[l], name[l], best[l], name[l], cpu[l], name[l],
                   flt[l]);
        for (int l = 1; l < LAYOUTS; l++)
            printf(", \"%s_ratio\": %.2f, \"%s_best_ratio\": %.2f, \"%s_cpu_ratio\": %.2f", name[l],
                   med[l] / med[0], name[l], best[l] / best[0], name[l], cpu[l] / cpu[0]);
        printf("}");
    }
    printf("}\n");
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc < 2 || size % 2) {
        fprintf(stderr, "usage: %s DIR [TENSORS] [ROWS] [COLS] (an even number of ranks)\n",
                argv[0]);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    if (argc > 2) n_tensors = strtoll(argv[2], NULL, 10);
    if (argc > 3) rows = strtoll(argv[3], NULL, 10);
    if (argc > 4) cols = strtoll(argv[4], NULL, 10);
    save(argv[1]);
    static double t[2][LAYOUTS][ROUNDS], c[2][LAYOUTS][ROUNDS], f[2][LAYOUTS][ROUNDS];
    run_rounds(argv[1], t, c, f);
    if (rank == 0) report(t, c, f);
    MPI_Finalize();
    return 0;
}
