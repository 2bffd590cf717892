/* SPDX-License-Identifier: Apache-2.0 */
/*
 * relayout.c — aligns the tensors of a loaded tree inside the buffer the file was read into.
 * Formats such as Paddle's pickles and combined files put each tensor's bytes right after a
 * header of any length, so tensors read in place start at arbitrary addresses; consumers that
 * take the memory as it is (Paddle through DLPack, vectorised kernels) want aligned data.
 * Copying each tensor out would double the memory of a load; instead the payloads are moved
 * down, in file order, over the headers that are no longer needed: one pass of memmove, no new
 * pages, and the buffer stays the only allocation.
 */
#include "pdk_value.h"

#include <stdlib.h>
#include <string.h>

typedef struct rl_item {
    pdk_tensor *t;
} rl_item;

typedef struct rl_walk {
    const pdckpt_allocator *a;
    pdckpt_buffer          *buf;
    rl_item                *items;
    size_t                  n, cap;
    uint64_t                budget; /* visits left: a shared-value DAG cannot make this slow */
    bool                    give_up;
} rl_walk;

static void push(rl_walk *w, pdk_tensor *t) {
    if (w->n == w->cap) {
        size_t   cap = w->cap ? w->cap * 2 : 256;
        rl_item *grown = pdk_alloc(w->a, cap * sizeof *grown);
        if (!grown) {
            w->give_up = true;
            return;
        }
        if (w->n) memcpy(grown, w->items, w->n * sizeof *grown);
        pdk_free(w->a, w->items, w->cap * sizeof *w->items);
        w->items = grown;
        w->cap = cap;
    }
    w->items[w->n++].t = t;
}

static void collect(rl_walk *w, pdckpt_value *v, unsigned depth) {
    if (!v || w->give_up) return;
    if (depth > PDCKPT_MAX_WALK_DEPTH || w->budget-- == 0) {
        w->give_up = true;
        return;
    }
    switch (v->kind) {
    case PDCKPT_KIND_TENSOR:
        if (v->u.t->buffer == w->buf) push(w, v->u.t);
        if (pdckpt_tensor_origin(v) != v) /* it holds the buffer too, over the same range */
            collect(w, (pdckpt_value *)pdckpt_tensor_origin(v), depth + 1);
        return;
    case PDCKPT_KIND_OBJECT:
        collect(w, v->u.o->args, depth + 1);
        collect(w, v->u.o->state, depth + 1);
        collect(w, v->u.o->items, depth + 1);
        return;
    case PDCKPT_KIND_LIST:
    case PDCKPT_KIND_TUPLE:
    case PDCKPT_KIND_SET:
    case PDCKPT_KIND_DICT:
        for (size_t i = 0; i < v->u.c.len; i++) {
            if (v->u.c.keys) collect(w, v->u.c.keys[i], depth + 1);
            collect(w, v->u.c.items[i], depth + 1);
        }
        return;
    default: return;
    }
}

/* File order; one tensor reached twice (a shared value) sorts next to itself. */
static int by_address(const void *pa, const void *pb) {
    const pdk_tensor *a = ((const rl_item *)pa)->t, *b = ((const rl_item *)pb)->t;
    uintptr_t         x = (uintptr_t)a->data, y = (uintptr_t)b->data;
    if (x != y) return x < y ? -1 : 1;
    if (a->n_bytes != b->n_bytes) return a->n_bytes < b->n_bytes ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* Drops repeats of one tensor; false when the holders do not add up (someone else holds the
 * buffer) or two different ranges overlap (then no order of moves is safe). */
static bool dedupe_and_check(rl_walk *w, size_t held) {
    size_t kept = 0;
    for (size_t i = 0; i < w->n; i++)
        if (kept == 0 || w->items[kept - 1].t != w->items[i].t) w->items[kept++] = w->items[i];
    w->n = kept;
    if (pdk_buffer_refs(w->buf) != kept + held) return false;
    const uint8_t *end = NULL;
    for (size_t i = 0; i < w->n; i++) {
        const pdk_tensor *t = w->items[i].t, *prev = i ? w->items[i - 1].t : NULL;
        if (!t->n_bytes) continue;
        bool same = prev && prev->data == t->data && prev->n_bytes == t->n_bytes;
        if (!same && end && (const uint8_t *)t->data < end) return false;
        end = (const uint8_t *)t->data + t->n_bytes;
    }
    return true;
}

/* The end of group [i, ...) and the index after it (one range reached by several tensors). */
static size_t group_end(const rl_walk *w, size_t i) {
    const pdk_tensor *t = w->items[i].t;
    size_t            j = i + 1;
    while (j < w->n && w->items[j].t->data == t->data && w->items[j].t->n_bytes == t->n_bytes) j++;
    return j;
}

static uint8_t *align_up(uint8_t *p) {
    return (uint8_t *)(((uintptr_t)p + PDK_DATA_ALIGN - 1) & ~(uintptr_t)(PDK_DATA_ALIGN - 1));
}

/* Packs the ranges, each at the next aligned place, into dst[] (one per item), and returns how
 * many leading items move: all if the packing fits the buffer, else the longest prefix whose
 * packing ends before the first range left in place. */
static size_t plan(const rl_walk *w, uint8_t **dst) {
    uint8_t       *p = pdk_buffer_data(w->buf);
    const uint8_t *limit = p + pdk_buffer_size(w->buf);
    size_t         moved = 0;
    for (size_t i = 0; i < w->n;) {
        size_t         j = group_end(w, i), n = (size_t)w->items[i].t->n_bytes;
        const uint8_t *src = w->items[i].t->data;
        bool           stays = src >= p && ((uintptr_t)src & (PDK_DATA_ALIGN - 1)) == 0;
        /* zero-size tensors (NULL data) sort first; an aligned range that the packing has not
         * reached stays (a placed read put it there: pdk_input_open_placed) */
        uint8_t *at = !n ? NULL : stays ? p + (src - p) : align_up(p);
        if (n && src >= p) moved = i; /* prefix [0, i) safe */
        for (size_t k = i; k < j; k++) dst[k] = at;
        if (n) p = at + n;
        i = j;
    }
    return p <= limit ? w->n : moved;
}

/* Moves the first `m` items to dst[]: ranges that go down in file order, then those that go up
 * in reverse order.  Targets keep the file order and never overlap, so a range going down can
 * only land on sources already moved, and one going up only on sources not yet reached. */
static size_t move_planned(rl_walk *w, uint8_t **dst, size_t m) {
    for (size_t i = 0; i < m; i = group_end(w, i))
        if (dst[i] && dst[i] < (uint8_t *)w->items[i].t->data)
            memmove(dst[i], w->items[i].t->data, (size_t)w->items[i].t->n_bytes);
    for (size_t i = m; i-- > 0;)
        if (dst[i] && dst[i] > (uint8_t *)w->items[i].t->data &&
            (i + 1 == m || w->items[i + 1].t->data != w->items[i].t->data))
            memmove(dst[i], w->items[i].t->data, (size_t)w->items[i].t->n_bytes);
    size_t aligned = 0;
    for (size_t i = 0; i < m; i++)
        if (dst[i]) w->items[i].t->data = dst[i], aligned++;
    return aligned;
}

static size_t move_all(rl_walk *w) {
    uint8_t **dst = pdk_alloc(w->a, w->n * sizeof *dst);
    if (!dst) return 0;
    size_t aligned = move_planned(w, dst, plan(w, dst));
    pdk_free(w->a, dst, w->n * sizeof *dst);
    return aligned;
}

/* The end of the last tensor's bytes, from the buffer's start: past it the file's opcodes and
 * names (W2: 8 of its 106 MiB, under tensors that keep the buffer) are read by nothing now. */
static size_t used_bytes(const rl_walk *w) {
    const uint8_t *base = pdk_buffer_data(w->buf), *end = base;
    for (size_t i = 0; i < w->n; i++) {
        const uint8_t *e = (const uint8_t *)w->items[i].t->data + w->items[i].t->n_bytes;
        if (w->items[i].t->n_bytes && e > end) end = e;
    }
    return (size_t)(end - base);
}

size_t pdk_tree_relayout(pdckpt_value *root, pdckpt_buffer *buf, size_t held) {
    if (!root || !buf || pdckpt_buffer_is_mapped(buf)) return 0;
    rl_walk w = {.a = root->alloc, .buf = buf, .budget = pdk_buffer_size(buf) + (1u << 20)};
    collect(&w, root, 0);
    size_t aligned = 0;
    if (!w.give_up && w.n) {
        qsort(w.items, w.n, sizeof *w.items, by_address);
        if (dedupe_and_check(&w, held)) {
            aligned = move_all(&w);
            pdk_buffer_drop_tail(buf, used_bytes(&w));
        }
    }
    pdk_free(w.a, w.items, w.cap * sizeof *w.items);
    return aligned;
}
