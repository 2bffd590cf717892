/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_gather.h — the gather behind pdckpt_mpi_save / pdckpt_mpi_gather: dist_gather.c builds
 * the merged tree and moves the data along the merge plan of src/formats/distcp/dist_merge.c.
 */
#ifndef PDK_DIST_GATHER_H
#define PDK_DIST_GATHER_H

#include "dist_internal.h"

/* A streamed gather (dist_stream.c): on the one writing rank, every received tensor of at least
 * `min_bytes` is a placeholder in the merged tree — a tensor whose data pointer lies in a
 * reserved, never-touched address range — and its bytes are pulled from the sending rank chunk
 * by chunk while the format writer hands the placeholder to the output, so the writer holds
 * `chunk` bytes twice at most instead of the whole state.  Smaller tensors move before (they
 * may be copied into the writer's buffers).  Every rank derives the same list from the same
 * skeletons, so the senders know what not to send in the transfer phase. */
typedef struct pdk_stream_item {
    const uint8_t *addr; /* placeholder address */
    uint64_t       n_bytes, got;
    int            src;
    uint64_t       ordinal;
} pdk_stream_item;

typedef struct pdk_stream {
    uint64_t         min_bytes; /* 0: no streaming */
    uint64_t         chunk;     /* bytes per pulled message */
    uint8_t         *base;      /* the reserved range */
    size_t           map_len, used;
    pdk_stream_item *items; /* in address order */
    size_t           n_items, cap_items;
    const void     **send_data; /* this rank's tensors by ordinal (the caller's memory) */
    uint64_t        *send_bytes;
    size_t           n_send;
} pdk_stream;

/* Received tensors of `min_bytes` and more are streamed (chunks: half of `group_bytes`, at
 * most 4 MiB, so at most group_bytes are in flight). */
void          pdk_stream_init(pdk_stream *s, uint64_t min_bytes, uint64_t group_bytes);
void          pdk_stream_free(pdk_stream *s);
bool          pdk_stream_takes(const pdk_stream *s, uint64_t n_bytes);
pdckpt_status pdk_stream_reserve(pdk_stream *s, uint64_t total, pdckpt_error *err);
/* A placeholder for tensor `ordinal` of rank `src` (described by `desc`). */
pdckpt_status pdk_stream_placeholder(pdk_stream *s, int src, uint64_t ordinal,
                                     const pdk_tensor_desc *desc, const pdckpt_allocator *a,
                                     pdckpt_value **out, pdckpt_error *err);
/* On the writing rank: writes `tree` through the format writer into `out_ops`/`out_self`,
 * pulling every placeholder's bytes; then releases every sender (also on failure). */
pdckpt_status pdk_stream_write(pdk_dist *d, pdk_stream *s, const pdckpt_value *tree,
                               const pdckpt_save_options *save, const pdckpt_sink_ops *out_ops,
                               void *out_self, pdckpt_error *err);
/* On the writing rank when it cannot write at all: releases every sender. */
void pdk_stream_release(pdk_dist *d);
/* On every other rank: serves the writer's requests until it is done. */
pdckpt_status pdk_stream_serve(pdk_dist *d, const pdk_stream *s, pdckpt_error *err);
/* A plain new file (O_EXCL) as a sink: synced on commit when durable, removed on abort. */
typedef struct pdk_file_out {
    int         fd;
    bool        durable;
    const char *path;
} pdk_file_out;
extern const pdckpt_sink_ops pdk_file_out_ops;
pdckpt_status pdk_file_out_open(pdk_file_out *f, const char *path, bool durable, pdckpt_error *err);

/* Runs the gather: on ranks in `targets` (sorted, unique) `*merged` receives the merged tree.
 * With `stream` (min_bytes > 0, one target) large received tensors are placeholders (above). */
pdckpt_status pdk_gather_run(pdk_dist *d, const pdckpt_value *state, bool opt, const int *targets,
                             size_t n_targets, uint64_t group_bytes, const pdckpt_allocator *alloc,
                             pdk_stream *stream, pdckpt_value **merged, uint64_t *rounds,
                             pdckpt_error *err);

#endif /* PDK_DIST_GATHER_H */
