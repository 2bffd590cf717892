/* SPDX-License-Identifier: Apache-2.0 */
/*
 * alloc.c — allocation through the caller's allocator (or the C library when there is none),
 * plus overflow-checked size arithmetic.  No global allocator hook exists on purpose: the
 * allocator travels in the options of every call (docs/DESIGN.md).
 */
#include "pdk_core.h"

#include <stdlib.h>
#include <string.h>

void *pdk_alloc_aligned(const pdckpt_allocator *a, size_t size, size_t alignment) {
    if (size == 0) size = 1;
    if (a && a->alloc) return a->alloc(a->ctx, size, alignment);
    if (alignment <= 16) return malloc(size);
    size_t rounded = (size + alignment - 1) & ~(alignment - 1);
    if (rounded < size) return NULL;
    return aligned_alloc(alignment, rounded);
}

void *pdk_alloc(const pdckpt_allocator *a, size_t size) {
    return pdk_alloc_aligned(a, size, 16);
}

void *pdk_calloc(const pdckpt_allocator *a, size_t count, size_t size) {
    uint64_t total;
    if (!pdk_mul_u64(count, size, &total) || total > SIZE_MAX) return NULL;
    void *p = pdk_alloc(a, (size_t)total);
    if (p) memset(p, 0, (size_t)total);
    return p;
}

void pdk_free(const pdckpt_allocator *a, void *ptr, size_t size) {
    if (!ptr) return;
    if (a && a->free) {
        a->free(a->ctx, ptr, size == 0 ? 1 : size);
        return;
    }
    free(ptr);
}

void pdckpt_free(const pdckpt_allocator *allocator, void *ptr, size_t size) {
    pdk_free(allocator, ptr, size);
}

pdckpt_status pdk_grow(const pdckpt_allocator *a, void **array, size_t *cap, size_t need,
                       size_t elem, pdckpt_error *err) {
    if (need <= *cap) return PDCKPT_OK;
    size_t new_cap = *cap ? *cap : 4;
    while (new_cap < need) {
        if (new_cap > SIZE_MAX / 2) return pdk_fail_nomem(err, "array");
        new_cap *= 2;
    }
    uint64_t bytes;
    if (!pdk_mul_u64(new_cap, elem, &bytes) || bytes > SIZE_MAX)
        return pdk_fail_nomem(err, "array");
    void *grown = pdk_alloc(a, (size_t)bytes);
    if (!grown) return pdk_fail_nomem(err, "array");
    if (*array) {
        memcpy(grown, *array, *cap * elem);
        pdk_free(a, *array, *cap * elem);
    }
    *array = grown;
    *cap = new_cap;
    return PDCKPT_OK;
}

char *pdk_strndup(const pdckpt_allocator *a, const char *s, size_t len) {
    if (len == SIZE_MAX) return NULL;
    char *copy = pdk_alloc(a, len + 1);
    if (!copy) return NULL;
    if (len) memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

void pdk_strfree(const pdckpt_allocator *a, char *s) {
    if (s) pdk_free(a, s, strlen(s) + 1);
}

bool pdk_mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}

bool pdk_add_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}
