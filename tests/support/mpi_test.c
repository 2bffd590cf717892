/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mpi_test.c — see mpi_test.h.
 */
#define _GNU_SOURCE
#include "mpi_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int         mt_rank, mt_size;
static char shared_dir[4096];

void mt_init(int *argc, char ***argv) {
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &mt_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &mt_size);
}

int mt_finish_with(int failed) {
    int all = 0;
    MPI_Allreduce(&failed, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (mt_rank == 0 && shared_dir[0]) tu_rmtree(shared_dir);
    MPI_Finalize();
    return all ? 1 : 0;
}

const char *mt_shared_dir(void) {
    if (!shared_dir[0]) {
        if (mt_rank == 0) {
            char *d = tu_tempdir();
            snprintf(shared_dir, sizeof shared_dir, "%s", d ? d : "");
            free(d);
        }
        MPI_Bcast(shared_dir, sizeof shared_dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    }
    return shared_dir;
}

const char *mt_path(const char *dir, const char *name) {
    static char bufs[4][4200];
    static int  next;
    char       *b = bufs[next++ & 3];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

pdckpt_value *mt_tensor(pdckpt_dtype dtype, int32_t n_dims, const int64_t *dims, unsigned seed) {
    pdckpt_value *t = tu_random_tensor(dtype, n_dims, dims, seed);
    if (!t) {
        fprintf(stderr, "rank %d: cannot make a tensor\n", mt_rank);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    return t;
}

void mt_set(pdckpt_value *dict, const char *key, pdckpt_value *value) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    if (!value || pdckpt_dict_set(dict, key, value, &err) != PDCKPT_OK) {
        fprintf(stderr, "rank %d: cannot set %s: %s\n", mt_rank, key, err.message);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
}

pdckpt_value *mt_dict(void) {
    return pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
}

void mt_barrier(MPI_Comm comm) {
    MPI_Request req;
    int         done = 0;
    MPI_Ibarrier(comm, &req);
    for (;;) {
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (done) return;
        struct timespec ts = {0, 500000};
        nanosleep(&ts, NULL);
    }
}

double mt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t status_kb(const char *field) {
    FILE    *f = fopen("/proc/self/status", "r");
    char     line[256];
    uint64_t kb = 0;
    size_t   n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0) kb = strtoull(line + n, NULL, 10);
    if (f) fclose(f);
    return kb * 1024;
}

uint64_t mt_peak_rss(void) {
    return status_kb("VmHWM:");
}
uint64_t mt_current_rss(void) {
    return status_kb("VmRSS:");
}

void mt_reset_peak(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}
