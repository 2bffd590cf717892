/* SPDX-License-Identifier: Apache-2.0 */
/*
 * buffer.c — refcounted owners of tensor memory (allocations and file mappings).
 * Tensors, NumPy arrays and DLPack capsules hold references, so data loaded zero-copy stays valid
 * after the tree that produced it is gone.  Counts are atomic: buffers cross threads (async save,
 * Python's GC).
 */
#include "pdk_core.h"

#include <stdatomic.h>
#include <string.h>

struct pdckpt_buffer {
    atomic_size_t           refs;
    void                   *data;
    size_t                  size;
    bool                    mapped;
    const pdckpt_allocator *alloc;
    pdk_buffer_destroy_fn   destroy; /* NULL: data is an allocation from `alloc` */
    void                   *ctx;
};

static pdckpt_buffer *buffer_shell(const pdckpt_allocator *a) {
    pdckpt_buffer *b = pdk_alloc(a, sizeof *b);
    if (!b) return NULL;
    atomic_init(&b->refs, 1);
    b->alloc = a;
    b->data = NULL;
    b->size = 0;
    b->mapped = false;
    b->destroy = NULL;
    b->ctx = NULL;
    return b;
}

static void block_destroy(void *ctx, void *data, size_t size) {
    (void)size; /* the block's own length travels in ctx */
    pdk_block_put(data, (size_t)(uintptr_t)ctx);
}

/* A large block of the default allocator: from the block cache (block_cache.c), its pages
 * possibly faulted in by an earlier load already. */
static bool alloc_block(pdckpt_buffer *b, size_t size) {
    size_t len = 0;
    b->data = pdk_block_get(size, &len);
    if (!b->data) return false;
    b->destroy = block_destroy;
    b->ctx = (void *)(uintptr_t)len;
    return true;
}

pdckpt_buffer *pdk_buffer_new_alloc(const pdckpt_allocator *a, size_t size, bool zero) {
    pdckpt_buffer *b = buffer_shell(a);
    if (!b) return NULL;
    if ((!a || !a->alloc) && pdk_block_cache_on(size) && alloc_block(b, size)) {
        if (zero) memset(b->data, 0, size);
        b->size = size;
        return b;
    }
    b->data = pdk_alloc_aligned(a, size, PDK_DATA_ALIGN);
    if (!b->data) {
        pdk_free(a, b, sizeof *b);
        return NULL;
    }
    if (zero && size) memset(b->data, 0, size);
    b->size = size;
    return b;
}

pdckpt_buffer *pdk_buffer_new_custom(const pdckpt_allocator *a, void *data, size_t size,
                                     bool mapped, pdk_buffer_destroy_fn destroy, void *ctx) {
    pdckpt_buffer *b = buffer_shell(a);
    if (!b) return NULL;
    b->data = data;
    b->size = size;
    b->mapped = mapped;
    b->destroy = destroy;
    b->ctx = ctx;
    return b;
}

pdckpt_buffer *pdckpt_buffer_retain(pdckpt_buffer *buffer) {
    if (buffer) atomic_fetch_add_explicit(&buffer->refs, 1, memory_order_relaxed);
    return buffer;
}

void pdckpt_buffer_release(pdckpt_buffer *buffer) {
    if (!buffer) return;
    if (atomic_fetch_sub_explicit(&buffer->refs, 1, memory_order_acq_rel) != 1) return;
    if (buffer->destroy)
        buffer->destroy(buffer->ctx, buffer->data, buffer->size);
    else
        pdk_free(buffer->alloc, buffer->data, buffer->size);
    pdk_free(buffer->alloc, buffer, sizeof *buffer);
}

bool pdckpt_buffer_is_mapped(const pdckpt_buffer *buffer) {
    return buffer && buffer->mapped;
}

void *pdk_buffer_data(const pdckpt_buffer *buffer) {
    return buffer ? buffer->data : NULL;
}

size_t pdk_buffer_size(const pdckpt_buffer *buffer) {
    return buffer ? buffer->size : 0;
}

void pdk_buffer_drop_tail(pdckpt_buffer *buffer, size_t used) {
    if (buffer && buffer->destroy == block_destroy && used < buffer->size)
        pdk_block_drop_tail(buffer->data, (size_t)(uintptr_t)buffer->ctx, used);
}

size_t pdk_buffer_refs(const pdckpt_buffer *buffer) {
    return buffer ? atomic_load_explicit(&buffer->refs, memory_order_acquire) : 0;
}
