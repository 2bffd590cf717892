/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_block_cache.c — large buffers of the default allocator come from block_cache.c: a freed
 * block is reused by the next buffer of its size (the same memory, no fresh pages), a smaller
 * request takes a kept block's head, a larger one grows the largest kept block, every byte of a
 * reused block is writable, pdckpt_trim_memory hands the kept blocks back, and small buffers or
 * buffers of a caller's allocator never use blocks.  Under ASan the cache is off (its blocks
 * would hide overflows from the sanitizer) and the test checks that instead.
 */
#include "check.h"
#include "core/pdk_core.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MIB ((size_t)1 << 20)

/* A buffer of `size` bytes with every byte written, released; returns where its data was. */
static uintptr_t fill_and_release(size_t size) {
    pdckpt_buffer *b = pdk_buffer_new_alloc(NULL, size, false);
    CHECK(b != NULL);
    if (!b) return 0;
    uint8_t *d = pdk_buffer_data(b);
    CHECK(((uintptr_t)d & (PDK_DATA_ALIGN - 1)) == 0);
    memset(d, 0xa5, size);
    CHECK(d[0] == 0xa5 && d[size - 1] == 0xa5);
    pdckpt_buffer_release(b);
    return (uintptr_t)d;
}

static void test_freed_block_is_reused(void) {
    pdckpt_trim_memory();
    uintptr_t first = fill_and_release(40 * MIB);
    uintptr_t again = fill_and_release(40 * MIB);
    if (pdk_block_cache_on(40 * MIB))
        CHECK(again == first);
    else
        CHECK(!pdk_block_cache_on(PDK_BLOCK_MIN)); /* off for every size, not just this one */
}

static void test_smaller_takes_head_larger_grows(void) {
    pdckpt_trim_memory();
    uintptr_t big = fill_and_release(64 * MIB);
    uintptr_t head = fill_and_release(40 * MIB); /* the 64 MiB block, its tail handed back */
    if (pdk_block_cache_on(40 * MIB)) CHECK(head == big);
    fill_and_release(56 * MIB); /* the 40 MiB block grown (it may move): every byte writable */
    pdckpt_trim_memory();
}

static void test_zeroed_reuse_is_zero(void) {
    pdckpt_trim_memory();
    fill_and_release(36 * MIB); /* leaves 0xa5 in a kept block */
    pdckpt_buffer *b = pdk_buffer_new_alloc(NULL, 36 * MIB, true);
    CHECK(b != NULL);
    if (!b) return;
    const uint8_t *d = pdk_buffer_data(b);
    size_t         nonzero = 0;
    for (size_t i = 0; i < 36 * MIB; i += 4096) nonzero += d[i] != 0 || d[i + 4095] != 0;
    CHECK_EQ_INT(nonzero, 0);
    pdckpt_buffer_release(b);
}

static void test_trim_and_eviction(void) {
    /* More blocks than are kept: the oldest go, nothing leaks (ASan/LSan would say). */
    for (int i = 0; i < 7; i++) fill_and_release((33 + (size_t)i) * MIB);
    pdckpt_trim_memory();
    pdckpt_trim_memory(); /* twice is harmless */
}

static void *counting_alloc(void *ctx, size_t size, size_t alignment) {
    (*(int *)ctx)++;
    return aligned_alloc(alignment < 16 ? 16 : alignment, (size + 63) & ~(size_t)63);
}
static void counting_free(void *ctx, void *ptr, size_t size) {
    (void)ctx, (void)size;
    free(ptr);
}

static void test_small_and_caller_allocations_bypass_blocks(void) {
    CHECK(!pdk_block_cache_on(PDK_BLOCK_MIN - 1));
    int              calls = 0;
    pdckpt_allocator a = {counting_alloc, counting_free, &calls};
    pdckpt_buffer   *b = pdk_buffer_new_alloc(&a, 40 * MIB, false);
    CHECK(b != NULL);
    CHECK_EQ_INT(calls, 2); /* the shell and the data, both the caller's */
    pdckpt_buffer_release(b);
}

int main(void) {
    RUN(test_freed_block_is_reused);
    RUN(test_smaller_takes_head_larger_grows);
    RUN(test_zeroed_reuse_is_zero);
    RUN(test_trim_and_eviction);
    RUN(test_small_and_caller_allocations_bypass_blocks);
    return CHECK_SUMMARY();
}
