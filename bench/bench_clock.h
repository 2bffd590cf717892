/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_clock.h — what the C benchmarks measure a step with: wall time, the process's CPU time
 * and its memory figures from /proc.  Shared by the benchmarks only (a benchmark does not link
 * the test harness, which has its own).
 */
#ifndef PDCKPT_BENCH_CLOCK_H
#define PDCKPT_BENCH_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Seconds on the monotonic clock. */
double bench_wall(void);
/* CPU seconds of the whole process (every thread): on a shared machine, what a step cost rather
 * than how long it waited for a CPU. */
double bench_cpu(void);
/* A "Name:  N kB" field of /proc/self/status (VmRSS:, VmHWM:) in KiB, 0 when absent. */
uint64_t bench_status_kib(const char *field);
/* Before a timed save: touches `bytes` of fresh anonymous memory (2 MiB pages asked for) and
 * frees it, then resets the peak RSS to the current one.  Every save of the benchmark, in every
 * table (bench_child.py's recycle_memory does the same), starts so: on a VM whose balloon reports
 * free memory to the host, what a save writes into the page cache otherwise lands on pages the
 * host dropped, and the save pays their refetch, or not, by what its own input's preparation
 * happened to free (bench/NOTES.md). */
void bench_recycle_memory(size_t bytes);

#endif /* PDCKPT_BENCH_CLOCK_H */
