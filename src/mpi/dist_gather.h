/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_gather.h — the gather behind pdckpt_mpi_save / pdckpt_mpi_gather: dist_gather.c builds
 * the merged tree and moves the data along the merge plan of src/formats/distcp/dist_merge.c.
 */
#ifndef PDK_DIST_GATHER_H
#define PDK_DIST_GATHER_H

#include "dist_internal.h"

/* Runs the gather: on ranks in `targets` (sorted, unique) `*merged` receives the merged tree. */
pdckpt_status pdk_gather_run(pdk_dist *d, const pdckpt_value *state, bool opt, const int *targets,
                             size_t n_targets, uint64_t group_bytes, const pdckpt_allocator *alloc,
                             pdckpt_value **merged, uint64_t *rounds, pdckpt_error *err);

#endif /* PDK_DIST_GATHER_H */
