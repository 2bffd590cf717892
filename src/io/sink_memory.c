/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sink_memory.c — sinks without a file: growable memory (save-to-bytes, the seeds' dirname=None
 * mode), byte counting (sizes before emitting), and the caller's own ops table.
 */
#include "pdk_io.h"

#include <string.h>

typedef struct memory_sink {
    pdk_sink base;
    uint8_t *data;
    size_t   len;
    size_t   cap;
} memory_sink;

static pdckpt_status memory_emit(pdk_sink *sink, const void *bytes, size_t len, pdckpt_error *err) {
    memory_sink *ms = (memory_sink *)sink;
    if (len > SIZE_MAX - ms->len) return pdk_fail_nomem(err, "output bytes");
    if (ms->len + len > ms->cap) {
        size_t cap = ms->cap ? ms->cap : 4096;
        while (cap < ms->len + len) cap = cap > SIZE_MAX / 2 ? ms->len + len : cap * 2;
        uint8_t *grown = pdk_alloc_aligned(sink->alloc, cap, PDK_DATA_ALIGN);
        if (!grown) return pdk_fail_nomem(err, "output bytes");
        if (ms->len) memcpy(grown, ms->data, ms->len);
        pdk_free(sink->alloc, ms->data, ms->cap);
        ms->data = grown;
        ms->cap = cap;
    }
    memcpy(ms->data + ms->len, bytes, len);
    ms->len += len;
    return PDCKPT_OK;
}

static pdckpt_status memory_finish(pdk_sink *sink, pdckpt_error *err) {
    (void)sink;
    (void)err;
    return PDCKPT_OK;
}

static void memory_discard(pdk_sink *sink) {
    memory_sink *ms = (memory_sink *)sink;
    pdk_free(sink->alloc, ms->data, ms->cap);
    ms->data = NULL;
    ms->len = ms->cap = 0;
}

static void memory_destroy(pdk_sink *sink) {
    memory_discard(sink);
    pdk_free(sink->alloc, sink, sizeof(memory_sink));
}

static const pdk_sink_ops memory_ops = {memory_emit, memory_finish, memory_discard, memory_destroy};

pdckpt_status pdk_sink_open_memory(const pdckpt_allocator *a, pdk_sink **out, pdckpt_error *err) {
    memory_sink *ms = pdk_calloc(a, 1, sizeof *ms);
    if (!ms) return pdk_fail_nomem(err, "memory sink");
    pdk_sink_init(&ms->base, &memory_ops, a, "<memory>", 0, err);
    *out = &ms->base;
    return PDCKPT_OK;
}

pdckpt_status pdk_sink_memory_take(pdk_sink *sink, void **data, size_t *len, pdckpt_error *err) {
    memory_sink *ms = (memory_sink *)sink;
    if (ms->data && ms->len < ms->cap) { /* shrink so the caller frees exactly `len` bytes */
        uint8_t *exact = pdk_alloc_aligned(sink->alloc, ms->len, PDK_DATA_ALIGN);
        if (!exact) {
            pdk_sink_abort(sink);
            return pdk_fail_nomem(err, "output bytes");
        }
        memcpy(exact, ms->data, ms->len);
        pdk_free(sink->alloc, ms->data, ms->cap);
        ms->data = exact;
        ms->cap = ms->len;
    }
    *data = ms->data;
    *len = ms->len;
    ms->data = NULL;
    ms->len = ms->cap = 0;
    pdk_sink_abort(sink);
    return PDCKPT_OK;
}

/* ---- counting ---- */

static pdckpt_status count_emit(pdk_sink *sink, const void *bytes, size_t len, pdckpt_error *err) {
    (void)sink;
    (void)bytes;
    (void)len;
    (void)err;
    return PDCKPT_OK;
}

static void count_discard(pdk_sink *sink) {
    (void)sink;
}

static void count_destroy(pdk_sink *sink) {
    pdk_free(sink->alloc, sink, sizeof *sink);
}

static const pdk_sink_ops count_ops = {count_emit, memory_finish, count_discard, count_destroy};

pdckpt_status pdk_sink_open_counting(const pdckpt_allocator *a, pdk_sink **out, pdckpt_error *err) {
    pdk_sink *sink = pdk_alloc(a, sizeof *sink);
    if (!sink) return pdk_fail_nomem(err, "counting sink");
    pdk_sink_init(sink, &count_ops, a, "<count>", 0, err);
    *out = sink;
    return PDCKPT_OK;
}

/* ---- the caller's ops ---- */

typedef struct callback_sink {
    pdk_sink               base;
    const pdckpt_sink_ops *user;
    void                  *self;
} callback_sink;

static pdckpt_status callback_emit(pdk_sink *sink, const void *bytes, size_t len,
                                   pdckpt_error *err) {
    callback_sink *cs = (callback_sink *)sink;
    pdckpt_status  st = cs->user->write(cs->self, bytes, len, err);
    if (st != PDCKPT_OK && err && err->status == PDCKPT_OK)
        pdk_fail(err, st, "<sink>", -1, "sink write failed");
    return st == PDCKPT_OK ? PDCKPT_OK : err ? err->status : st;
}

static pdckpt_status callback_finish(pdk_sink *sink, pdckpt_error *err) {
    callback_sink *cs = (callback_sink *)sink;
    if (!cs->user->commit) return PDCKPT_OK;
    pdckpt_status st = cs->user->commit(cs->self, err);
    if (st != PDCKPT_OK && err && err->status == PDCKPT_OK)
        pdk_fail(err, st, "<sink>", -1, "sink commit failed");
    return st;
}

static void callback_discard(pdk_sink *sink) {
    callback_sink *cs = (callback_sink *)sink;
    if (cs->user->abort) cs->user->abort(cs->self);
}

static void callback_destroy(pdk_sink *sink) {
    pdk_free(sink->alloc, sink, sizeof(callback_sink));
}

static const pdk_sink_ops callback_ops = {callback_emit, callback_finish, callback_discard,
                                          callback_destroy};

pdckpt_status pdk_sink_open_callback(const pdckpt_sink_ops *ops, void *self,
                                     const pdckpt_allocator *a, pdk_sink **out, pdckpt_error *err) {
    if (!ops || ops->version < 1 || !ops->write)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, "<sink>", -1,
                        "sink ops need version >= 1 and a write function");
    callback_sink *cs = pdk_calloc(a, 1, sizeof *cs);
    if (!cs) return pdk_fail_nomem(err, "callback sink");
    cs->user = ops;
    cs->self = self;
    pdckpt_status st = pdk_sink_init(&cs->base, &callback_ops, a, "<sink>", 1u << 20, err);
    if (st != PDCKPT_OK) {
        pdk_free(a, cs, sizeof *cs);
        return st;
    }
    *out = &cs->base;
    return PDCKPT_OK;
}
