/* SPDX-License-Identifier: Apache-2.0 */
/*
 * random.c — the one source of random values (temporary names, rank tags, the hash seed of
 * table_hash.c): getrandom, or where that fails (a seccomp filter, an old kernel) the clock, the
 * pid and ASLR's addresses mixed -- weaker, but still unknown to whoever wrote a file.
 */
#include "pdk_core.h"

#include <stdint.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

uint64_t pdk_random_u64(void) {
    uint64_t value = 0;
    if (getrandom(&value, sizeof value, GRND_NONBLOCK) == (ssize_t)sizeof value && value)
        return value;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t words[4] = {(uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec, (uint64_t)getpid(),
                         (uint64_t)(uintptr_t)&ts ^ (uint64_t)(uintptr_t)&pdk_random_u64};
    return XXH3_64bits(words, sizeof words) | 1;
}
