/* SPDX-License-Identifier: Apache-2.0 */
/*
 * block_cache.c — the default allocator's large blocks (a loaded file's bytes, a resharded box),
 * and the few freed ones kept for the next load.  A load fills fresh memory: a 340 MB file faults
 * in 83k pages, and the C library returns any freed chunk over 32 MiB to the kernel, so a process
 * that loads checkpoints in a loop paid those faults on every load — while `paddle.load`, whose
 * tensors are each under 32 MiB, had its memory back from the C library already faulted in.
 * A freed block is kept (MADV_FREE: the kernel may still take its pages back under memory
 * pressure, and a reuse then faults in zero pages as a fresh block would), at most BLOCKS_KEPT of
 * them and 1/8 of physical memory in all (PDCKPT_BLOCK_CACHE=<bytes> sets the cap, 0 turns the
 * cache off); pdckpt_trim_memory() hands them all back.
 */
#define _GNU_SOURCE
#include "pdk_core.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PDK_UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define PDK_UNDER_ASAN 1
#endif

#define BLOCKS_KEPT 4

typedef struct block {
    void  *data;
    size_t len; /* the mapping's length, a multiple of the page size */
} block;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t  setup_once = PTHREAD_ONCE_INIT;
static size_t          cap_bytes;

static void lock_cache(void) {
    pthread_mutex_lock(&cache_lock);
}
static void unlock_cache(void) {
    pthread_mutex_unlock(&cache_lock);
}

/* The cap, and the lock held across fork() so that a child never inherits it taken. */
static void setup(void) {
    pthread_atfork(lock_cache, unlock_cache, unlock_cache);
    const char *env = getenv("PDCKPT_BLOCK_CACHE");
    if (env && *env) {
        char              *end;
        unsigned long long v = strtoull(env, &end, 10);
        cap_bytes = *end ? 0 : (size_t)v;
        return;
    }
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    cap_bytes = pages > 0 && page > 0 ? (size_t)pages / 8 * (size_t)page : 0;
}

static size_t page_round(size_t size) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return size > SIZE_MAX - page ? 0 : (size + page - 1) / page * page;
}

/* kept[0, n_kept) oldest first. */
static block  kept[BLOCKS_KEPT];
static int    n_kept;
static size_t kept_bytes;

static block drop_kept(int i) {
    block b = kept[i];
    kept_bytes -= b.len;
    for (n_kept--; i < n_kept; i++) kept[i] = kept[i + 1];
    return b;
}

/* The kept block that serves `len` bytes best: the smallest at least that long, else the largest
 * (grown by mremap, its head already faulted in); -1 when none is kept. */
static int best_kept(size_t len) {
    int fit = -1, largest = -1;
    for (int i = 0; i < n_kept; i++) {
        if (kept[i].len >= len && (fit < 0 || kept[i].len < kept[fit].len)) fit = i;
        if (largest < 0 || kept[i].len > kept[largest].len) largest = i;
    }
    return fit >= 0 ? fit : largest;
}

/* A kept block resized to exactly `len` bytes, or NULL. */
static void *take_kept(size_t len) {
    lock_cache();
    int   i = best_kept(len);
    block b = i >= 0 ? drop_kept(i) : (block){NULL, 0};
    unlock_cache();
    if (!b.data || b.len == len) return b.data;
    if (b.len > len) { /* the tail is not needed: give it back now */
        munmap((char *)b.data + len, b.len - len);
        return b.data;
    }
    void *grown = mremap(b.data, b.len, len, MREMAP_MAYMOVE);
    if (grown != MAP_FAILED) return grown;
    munmap(b.data, b.len);
    return NULL;
}

void *pdk_block_get(size_t size, size_t *len) {
    size_t want = page_round(size);
    if (!want) return NULL;
    pthread_once(&setup_once, setup);
    void *p = take_kept(want);
    if (!p) p = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    *len = want;
    return p;
}

/* Keeps the block when it fits under the cap, the oldest kept blocks making room. */
static bool keep(void *data, size_t len) {
    pthread_once(&setup_once, setup);
    if (len > cap_bytes) return false;
#ifdef MADV_FREE
    if (madvise(data, len, MADV_FREE) != 0) return false;
#endif
    block out[BLOCKS_KEPT];
    int   n_out = 0;
    lock_cache();
    while (n_kept == BLOCKS_KEPT || kept_bytes + len > cap_bytes) out[n_out++] = drop_kept(0);
    kept[n_kept++] = (block){data, len};
    kept_bytes += len;
    unlock_cache();
    for (int i = 0; i < n_out; i++) munmap(out[i].data, out[i].len);
    return true;
}

void pdk_block_put(void *data, size_t len) {
    if (data && !keep(data, len)) munmap(data, len);
}

void pdk_block_drop_tail(void *data, size_t len, size_t used) {
    size_t from = page_round(used);
    if (data && from && from < len) madvise((char *)data + from, len - from, MADV_DONTNEED);
}

bool pdk_block_cache_on(size_t size) {
#ifdef PDK_UNDER_ASAN
    (void)size; /* blocks would hide overflows from the sanitizer's allocator */
    return false;
#else
    return size >= PDK_BLOCK_MIN;
#endif
}

void pdckpt_trim_memory(void) {
    block out[BLOCKS_KEPT];
    int   n_out = 0;
    lock_cache();
    while (n_kept) out[n_out++] = drop_kept(0);
    unlock_cache();
    for (int i = 0; i < n_out; i++) munmap(out[i].data, out[i].len);
}
