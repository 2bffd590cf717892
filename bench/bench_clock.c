/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE /* MAP_ANONYMOUS, MADV_HUGEPAGE */
#include "bench_clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double seconds(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double bench_wall(void) {
    return seconds(CLOCK_MONOTONIC);
}

double bench_cpu(void) {
    return seconds(CLOCK_PROCESS_CPUTIME_ID);
}

uint64_t bench_status_kib(const char *field) {
    FILE    *f = fopen("/proc/self/status", "r");
    char     line[256];
    uint64_t kib = 0;
    size_t   n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0) kib = strtoull(line + n, NULL, 10);
    if (f) fclose(f);
    return kib;
}

void bench_recycle_memory(size_t bytes) {
    void *p = bytes ? mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                    : MAP_FAILED;
    if (p != MAP_FAILED) {
#ifdef MADV_HUGEPAGE
        (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
        memset(p, 1, bytes);
        munmap(p, bytes);
    }
    FILE *f = fopen("/proc/self/clear_refs", "w"); /* "5": the peak RSS restarts from here */
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}
