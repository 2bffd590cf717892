/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sink.c — the buffering every sink shares: small writes collect in one buffer, writes at least
 * half a buffer long go straight to the backend (no double copy of tensor data), and progress is
 * reported every PROGRESS_STEP bytes.
 */
#include "pdk_io.h"

#include <string.h>

#define PROGRESS_STEP (16u << 20)

pdckpt_status pdk_sink_init(pdk_sink *sink, const pdk_sink_ops *ops, const pdckpt_allocator *a,
                            const char *name, size_t buf_cap, pdckpt_error *err) {
    memset(sink, 0, sizeof *sink);
    sink->ops = ops;
    sink->alloc = a;
    sink->name = name;
    if (buf_cap) {
        sink->buf = pdk_alloc_aligned(a, buf_cap, 4096);
        if (!sink->buf) return pdk_fail_nomem(err, "write buffer");
        sink->buf_cap = buf_cap;
    }
    return PDCKPT_OK;
}

void pdk_sink_set_progress(pdk_sink *sink, pdckpt_progress_fn fn, void *ctx, uint64_t total) {
    sink->progress = fn;
    sink->progress_ctx = ctx;
    sink->progress_total = total;
    sink->progress_next = PROGRESS_STEP;
}

static pdckpt_status flush(pdk_sink *sink, pdckpt_error *err) {
    if (sink->buf_len == 0) return PDCKPT_OK;
    size_t n = sink->buf_len;
    sink->buf_len = 0;
    return sink->ops->emit(sink, sink->buf, n, err);
}

static pdckpt_status report(pdk_sink *sink, pdckpt_error *err) {
    if (!sink->progress || sink->written < sink->progress_next) return PDCKPT_OK;
    sink->progress_next = sink->written + PROGRESS_STEP;
    if (sink->progress(sink->progress_ctx, sink->written, sink->progress_total))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, sink->name, -1, "cancelled");
    return PDCKPT_OK;
}

pdckpt_status pdk_sink_write_chunk(void *sink, const void *bytes, uint64_t len, pdckpt_error *err) {
    return pdk_sink_write(sink, bytes, (size_t)len, err);
}

pdckpt_status pdk_sink_write(pdk_sink *sink, const void *bytes, size_t len, pdckpt_error *err) {
    if (len == 0) return PDCKPT_OK;
    sink->written += len;
    if (sink->buf_cap == 0 || len >= sink->buf_cap / 2) {
        PDK_TRY(flush(sink, err));
        PDK_TRY(sink->ops->emit(sink, bytes, len, err));
        return report(sink, err);
    }
    if (sink->buf_len + len > sink->buf_cap) PDK_TRY(flush(sink, err));
    memcpy(sink->buf + sink->buf_len, bytes, len);
    sink->buf_len += len;
    return report(sink, err);
}

static void sink_free(pdk_sink *sink) {
    pdk_free(sink->alloc, sink->buf, sink->buf_cap);
    sink->ops->destroy(sink);
}

pdckpt_status pdk_sink_commit(pdk_sink *sink, pdckpt_error *err) {
    pdckpt_status st = flush(sink, err);
    if (st == PDCKPT_OK) st = sink->ops->finish(sink, err);
    if (st == PDCKPT_OK && sink->progress &&
        sink->progress(sink->progress_ctx, sink->written, sink->progress_total))
        st = PDCKPT_OK; /* already durable: cancelling after the fact changes nothing */
    if (st != PDCKPT_OK) sink->ops->discard(sink);
    sink_free(sink);
    return st;
}

void pdk_sink_abort(pdk_sink *sink) {
    if (!sink) return;
    sink->ops->discard(sink);
    sink_free(sink);
}
