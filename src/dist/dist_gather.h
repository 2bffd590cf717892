/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_gather.h — the gather behind pdckpt_mpi_save / pdckpt_mpi_gather, shared by its two
 * halves: dist_merge.c (skeletons and the merge plan) and dist_gather.c (building the merged tree
 * and moving the data).
 */
#ifndef PDK_DIST_GATHER_H
#define PDK_DIST_GATHER_H

#include "dist_internal.h"

/* One merge unit of a rank's state: a top-level key, or (parent >= 0) a key of the
 * master_weights dict at entries[parent].  Its tensors are ordinals [first, first + count). */
typedef struct pdk_skel_entry {
    const char    *key; /* borrowed from the gathered bytes, not NUL-terminated */
    size_t         key_len;
    int32_t        parent;
    bool           merged; /* master_weights whose keys merge one by one */
    uint64_t       first, count;
    const uint8_t *tree; /* the encoded value (NULL when merged) */
    size_t         tree_len;
} pdk_skel_entry;

typedef struct pdk_skel {
    char             source[64];
    uint64_t         n_tensors;
    pdk_tensor_desc *descs;
    bool             is_dict;
    pdk_skel_entry  *entries;
    size_t           n_entries, cap_entries;
} pdk_skel;

pdckpt_status pdk_skel_encode(const pdckpt_value *state, bool opt, pdk_blob *out,
                              pdk_tensor_list *tl, pdckpt_error *err);
pdckpt_status pdk_skel_parse(const uint8_t *data, size_t len, int rank, pdk_skel *sk,
                             pdckpt_error *err);
void          pdk_skel_free(pdk_skel *sk);

struct kslot;
typedef struct pdk_merge_plan {
    pdk_skel     *skels; /* one per rank */
    int           n_ranks;
    bool          opt;
    bool          mw_merged;
    bool          same_keys; /* opt: every rank has the same top-level keys in the same order */
    struct kslot *slots;
    size_t        n_slots;
    pdckpt_error *err;
} pdk_merge_plan;

pdckpt_status pdk_merge_plan_build(pdk_merge_plan *p, pdckpt_error *err);
void          pdk_merge_plan_free(pdk_merge_plan *p);
/* The rank whose value of `e` ends up in `target`'s merged state. */
int pdk_merge_winner(const pdk_merge_plan *p, int target, const pdk_skel_entry *e);

/* Gives the merged state on a writing rank (whose own state is `local`) the shape
 * paddle.distributed.save gives it: for opt, when the ranks' top-level keys differ,
 * _gather_state_dict's -- tensors named by their keys, master_weights then the writer's own
 * LR_Scheduler (none when it has none) last -- and when they are the same, the writer's own
 * state; the name table the union of the ranks' (every merged top-level tensor). */
pdckpt_status pdk_merge_finish(const pdk_merge_plan *p, const pdckpt_value *local,
                               pdckpt_value *merged, const pdckpt_allocator *alloc,
                               pdckpt_error *err);

/* Runs the gather: on ranks in `targets` (sorted, unique) `*merged` receives the merged tree. */
pdckpt_status pdk_gather_run(pdk_dist *d, const pdckpt_value *state, bool opt, const int *targets,
                             size_t n_targets, uint64_t group_bytes, const pdckpt_allocator *alloc,
                             pdckpt_value **merged, uint64_t *rounds, pdckpt_error *err);

#endif /* PDK_DIST_GATHER_H */
