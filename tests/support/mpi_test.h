/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mpi_test.h — helpers for the C tests that run under mpirun: MPI start/finish with a job-wide
 * verdict, a directory every rank shares, deterministic tensors any rank can recreate, and
 * small tree builders.
 */
#ifndef PDCKPT_MPI_TEST_H
#define PDCKPT_MPI_TEST_H

#include <pdckpt_mpi.h>
#include <stdio.h>

#include "check.h"
#include "test_util.h"

extern int mt_rank, mt_size;

void mt_init(int *argc, char ***argv);
/* Agrees on a job-wide verdict from every rank's failure count, finalizes MPI; the exit code. */
int mt_finish_with(int failed);
/* Prints this rank's summary (check.h's counters live in the test's own file) and finishes. */
static inline int mt_finish(void) {
    printf("rank %d: ", mt_rank);
    int failed = CHECK_SUMMARY();
    fflush(stdout);
    return mt_finish_with(failed + check_failures_);
}
/* A fresh directory (rank 0 creates it, every rank gets its path); removed by mt_finish. */
const char *mt_shared_dir(void);
/* `dir`/`name` in static storage (4 rotating buffers). */
const char *mt_path(const char *dir, const char *name);
/* A tensor whose bytes depend only on `seed` (see tu_random_tensor). */
pdckpt_value *mt_tensor(pdckpt_dtype dtype, int32_t n_dims, const int64_t *dims, unsigned seed);
/* dict[key] = value (transferred); aborts the test on failure. */
void          mt_set(pdckpt_value *dict, const char *key, pdckpt_value *value);
pdckpt_value *mt_dict(void);
/* A barrier on `comm` that sleeps while it waits (blocking MPI barriers spin, and the ranks
 * still working need the CPU on an oversubscribed machine). */
void mt_barrier(MPI_Comm comm);
/* Seconds on a monotonic clock. */
double mt_now(void);
/* Peak resident set since the last mt_reset_peak, in bytes (VmHWM). */
uint64_t mt_peak_rss(void);
uint64_t mt_current_rss(void);
void     mt_reset_peak(void);

#endif
