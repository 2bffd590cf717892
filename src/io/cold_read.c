/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cold_read.c — reads a large file that is not in the page cache with O_DIRECT: the disk writes
 * straight into the load's buffer.  A buffered read of a cold file pays twice in CPU: the page
 * cache's own pages (allocated, charged, inserted, then copied out of) and the buffer's; on a
 * CPU-bound machine that copy, not the disk, sets the pace (docs/speed.md, "Cold loads and
 * O_DIRECT").  Several readers take 16 MiB chunks in file order, so the disk always has requests
 * queued and sees one ascending stream.  A file mostly in the page cache keeps the buffered read
 * (a copy from memory is faster than the disk), and so does a file system that refuses O_DIRECT:
 * the first refusal turns the flag off and the same pread runs buffered.  The file is left as
 * uncached as it was: a second load of it reads the disk again.  Hence opt-in:
 * PDCKPT_DIRECT_READ=1 in the environment (pdk_direct_enabled).
 */
#define _GNU_SOURCE /* O_DIRECT */
#include "pdk_io.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* cachestat(2) (Linux 6.5): how much of a file range is in the page cache, without mapping it.
 * The number is the same on every architecture that has the unified syscall table. */
#if defined(__linux__) && !defined(__NR_cachestat) && (defined(__x86_64__) || defined(__aarch64__))
#define __NR_cachestat 451
#endif

struct pdk_cachestat_range {
    uint64_t off, len;
};
struct pdk_cachestat {
    uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

bool pdk_cached_bytes(int fd, size_t size, size_t *cached) {
#ifdef __NR_cachestat
    struct pdk_cachestat_range range = {0, size};
    struct pdk_cachestat       cs = {0, 0, 0, 0, 0};
    long                       page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || syscall(__NR_cachestat, fd, &range, &cs, 0) != 0) return false;
    *cached = cs.nr_cache > size / (size_t)page ? size : (size_t)(cs.nr_cache * (uint64_t)page);
    return true;
#else
    (void)fd, (void)size, (void)cached;
    return false;
#endif
}

bool pdk_direct_pays(size_t size, uintptr_t base, size_t n_places, bool known, size_t cached) {
    return size >= PDK_DIRECT_MIN_BYTES && base % PDK_DIRECT_ALIGN == 0 && n_places == 0 && known &&
           cached <= size / 8;
}

/* Opt-in: a file read with O_DIRECT stays out of the page cache, so a process that loads one
 * file again (an evaluation loop, a script run twice) never gets the warm read, and ranks of one
 * node loading the same file each read the disk -- on a slow or shared file system those cost
 * far more than the CPU a cold buffered read spends on the page cache's pages. */
bool pdk_direct_enabled(void) {
    const char *env = getenv("PDCKPT_DIRECT_READ");
    return env && strcmp(env, "1") == 0;
}

unsigned pdk_direct_readers(uint32_t threads) {
    return threads == 0 ? PDK_DIRECT_READERS : threads > 64 ? 64 : (unsigned)threads;
}

#define CHUNK ((size_t)16 << 20)

typedef struct direct_job {
    int           fd;
    uint8_t      *base;
    size_t        end; /* the aligned part: [0, end) */
    atomic_size_t next;
    atomic_int    err;   /* errno of the first failure, 0 */
    atomic_bool   ended; /* the file ended early */
} direct_job;

/* One pread of [x, x + len); a refusal of O_DIRECT turns it off for the descriptor (every other
 * reader's next pread is then buffered too: same bytes) and reads again. */
static ssize_t pread_direct(direct_job *j, size_t x, size_t len) {
    for (;;) {
        ssize_t n = pread(j->fd, j->base + x, len, (off_t)x);
        if (n >= 0 || errno != EINVAL) return n;
        int fl = fcntl(j->fd, F_GETFL);
        if (fl < 0 || !(fl & O_DIRECT)) return -1;
        if (fcntl(j->fd, F_SETFL, fl & ~O_DIRECT) != 0) return -1;
    }
}

static void *direct_run(void *arg) {
    direct_job *j = arg;
    while (!atomic_load(&j->err) && !atomic_load(&j->ended)) {
        size_t x = atomic_fetch_add(&j->next, CHUNK);
        if (x >= j->end) break;
        size_t end = j->end - x < CHUNK ? j->end : x + CHUNK;
        while (x < end) {
            ssize_t n = pread_direct(j, x, end - x);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return atomic_store(&j->err, errno), NULL;
            if (n == 0) return atomic_store(&j->ended, true), NULL;
            x += (size_t)n;
        }
    }
    return NULL;
}

/* The tail after the last aligned block (its length is not a block's), buffered. */
static int read_tail(int fd, uint8_t *base, size_t from, size_t size, bool *ended) {
    while (from < size) {
        ssize_t n = pread(fd, base + from, size - from, (off_t)from);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno;
        if (n == 0) return *ended = true, 0;
        from += (size_t)n;
    }
    return 0;
}

int pdk_read_direct(int fd, uint8_t *base, size_t size, unsigned readers, bool *ended) {
    *ended = false;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_DIRECT) != 0) return -1; /* not here: buffered */
    direct_job j = {fd, base, size & ~(size_t)(PDK_DIRECT_ALIGN - 1), 0, 0, false};
    pthread_t  helpers[64];
    unsigned   started = 0;
    if (readers > 64) readers = 64;
    while (started + 1 < readers && pthread_create(&helpers[started], NULL, direct_run, &j) == 0)
        started++;
    direct_run(&j);
    for (unsigned i = 0; i < started; i++) pthread_join(helpers[i], NULL);
    /* the descriptor as it came: a retried read of a changed file may go buffered */
    if (fcntl(fd, F_SETFL, fl) != 0 && !atomic_load(&j.err)) return errno;
    if (atomic_load(&j.err)) return atomic_load(&j.err);
    if (atomic_load(&j.ended)) return *ended = true, 0;
    return read_tail(fd, base, j.end, size, ended);
}
