/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_sharded.c — saving a sharded checkpoint (spec §5.1-5.3, Paddle's flex checkpoint).
 * The steps without MPI (describe, plan, write, commit) are dist_save_steps.c's, shared with the
 * step-by-step API a job drives over its own collectives; this file adds the collectives.
 * Every rank describes its pieces (key, dtype, global shape, offset, local shape) and sends the
 * descriptions to the coordinator alone, which plans (dist_shard_plan.c: checks, dedup, writers)
 * and sends each rank back only the list of its pieces it writes: no rank but the coordinator
 * holds more than its own records, and the plan is linear or n log n in the pieces (issue 20).
 * Commit order is crash-safe (dist_lifecycle.c): every data file is written atomically and
 * synced, all ranks agree, and only then does the coordinator write the metadata, atomically —
 * a checkpoint id without metadata is incomplete and is never loaded; re-saving a committed id
 * writes new file names, so the previous checkpoint of that id stays whole until the new
 * metadata replaces it.
 */
#include "dist_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the plan, on the coordinator ---- */

/* Gathers every rank's descriptions on the coordinator, which plans; every rank gets back the
 * list of its pieces it writes. */
static pdckpt_status make_plan(pdk_dist *d, int coord, const pdk_blob *mine, pdk_shard_plan *p,
                               pdk_blob *list, pdckpt_error *err) {
    pdk_blob      all = {0}, lists = {0};
    size_t       *offs = NULL, *list_offs = NULL;
    pdckpt_status st = pdk_dist_gather(d, mine, coord, &all, &offs, err);
    if (st == PDCKPT_OK && d->rank == coord) {
        st = pdk_shard_plan_read(&all, offs, d->size, p, err);
        if (st == PDCKPT_OK) st = pdk_shard_plan_build(p, d->size, err);
        if (st == PDCKPT_OK) st = pdk_shard_plan_write_lists(p, d->size, &lists, &list_offs, err);
    }
    pdk_blob_free(&all);
    st = pdk_dist_agree(d, st, err);
    if (st == PDCKPT_OK) st = pdk_dist_scatter(d, &lists, list_offs, coord, list, err);
    free(offs);
    free(list_offs);
    pdk_blob_free(&lists);
    return st;
}

/* ---- writing ---- */

static pdckpt_status write_data(const pdk_dist *d, const pdk_shard_plan *p, const pdk_blob *list,
                                const pdckpt_mpi_shard *shards, size_t n, const char *dir,
                                const pdckpt_save_options *save, pdckpt_error *err) {
    pdckpt_value *tree = pdckpt_value_new_container(save->allocator, PDCKPT_KIND_DICT);
    if (!tree) return pdk_fail_nomem(err, "the data file tree");
    pdckpt_status st =
        pdk_shard_build_tree(list->data, list->len, shards, n, save->allocator, tree, err);
    char name[64], path[4200];
    pdk_shard_data_name(p, d->rank, name, sizeof name);
    if (st == PDCKPT_OK && pdckpt_value_len(tree) > 0) {
        pdckpt_save_options o = *save;
        o.format = p->format;
        st = pdk_path_join(dir, name, path, sizeof path, err);
        if (st == PDCKPT_OK) st = pdk_dist_data_target(path, err);
        if (st == PDCKPT_OK) st = pdk_save_path_inner(tree, path, &o, err);
    }
    pdckpt_value_free(tree);
    return st;
}

static pdckpt_status local_checks(const pdk_dist *d, const pdckpt_mpi_options *o, const char *dir,
                                  pdckpt_format *format, pdckpt_error *err) {
    *format = o->data_format == PDCKPT_FORMAT_AUTO ? PDCKPT_FORMAT_PICKLE : o->data_format;
    if (!pdk_data_file_ext(*format))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "data files can be safetensors, pickle, combined or vars-dir, not %s",
                        pdckpt_format_name(*format));
    if (!dir) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "dir is NULL");
    if (o->coordinator < 0 || o->coordinator >= d->size)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "coordinator %d is not in the job",
                        o->coordinator);
    return PDCKPT_OK;
}

static uint64_t args_hash(const char *dir, const pdckpt_mpi_options *o, pdckpt_format format) {
    uint64_t h = pdk_hash_bytes(0, dir, strlen(dir));
    h = pdk_hash_bytes(h, &o->unique_id, sizeof o->unique_id);
    h = pdk_hash_bytes(h, &o->keep_last, sizeof o->keep_last);
    h = pdk_hash_bytes(h, &o->coordinator, sizeof o->coordinator);
    return pdk_hash_bytes(h, &format, sizeof format);
}

/* The coordinator prepares the directory and picks the id and file numbers; all ranks get them. */
static pdckpt_status prepare(pdk_dist *d, const char *dir, const pdckpt_mpi_options *o,
                             pdk_shard_plan *p, pdckpt_error *err) {
    int64_t       got[2] = {-1, 0};
    pdckpt_status st = d->rank == o->coordinator
                           ? pdk_lifecycle_prepare(dir, o->unique_id, d->size, o->save.durable,
                                                   &got[0], &got[1], err)
                           : PDCKPT_OK;
    st = pdk_dist_agree(d, st, err);
    if (st == PDCKPT_OK) st = pdk_dist_bcast(d, got, sizeof got, o->coordinator, err);
    p->id = got[0];
    p->file_base = got[1];
    return st;
}

/* pdckpt:long-function — the commit protocol, step by step, each step agreed by all ranks. */
pdckpt_status pdckpt_mpi_save_sharded(MPI_Comm comm, const pdckpt_mpi_shard *shards,
                                      size_t n_shards, const char *dir,
                                      const pdckpt_mpi_options *opts, int64_t *out_id,
                                      pdckpt_error *err) {
    return pdckpt_mpi_save_sharded_runs(comm, shards, NULL, n_shards, dir, opts, out_id, err);
}

pdckpt_status pdckpt_mpi_save_sharded_runs(MPI_Comm comm, const pdckpt_mpi_shard *shards,
                                           const pdckpt_shard_run *runs, size_t n_shards,
                                           const char *dir, const pdckpt_mpi_options *opts,
                                           int64_t *out_id, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    opts = pdk_mpi_begin(opts, &err, &local);
    pdk_dist       d;
    pdk_shard_plan p = {0};
    pdk_blob       mine = {0}, list = {0};
    PDK_TRY(pdk_dist_open(comm, opts, &d, err));
    bool          coord = d.rank == opts->coordinator;
    pdckpt_status st = local_checks(&d, opts, dir, &p.format, err);
    if (st == PDCKPT_OK) st = pdk_shard_describe(shards, runs, n_shards, &mine, err);
    st = pdk_dist_agree(&d, st, err);
    if (st == PDCKPT_OK)
        st = pdk_dist_same(&d, args_hash(dir, opts, p.format),
                           "dir, unique_id, keep_last, coordinator and data_format", err);
    if (st == PDCKPT_OK) st = prepare(&d, dir, opts, &p, err);
    if (st == PDCKPT_OK) st = make_plan(&d, opts->coordinator, &mine, &p, &list, err);
    pdk_blob_free(&mine);
    if (st == PDCKPT_OK) /* 1. every data file, atomically and durably */
        st = pdk_dist_agree(&d, write_data(&d, &p, &list, shards, n_shards, dir, &opts->save, err),
                            err);
    if (st == PDCKPT_OK) /* 2. only then the metadata that makes the checkpoint complete */
        st = pdk_dist_agree(
            &d, coord ? pdk_shard_write_meta(&p, dir, opts->save.durable, err) : PDCKPT_OK, err);
    if (st == PDCKPT_OK && coord) /* 3. what the commit superseded (best effort) */
        pdk_lifecycle_after_commit(dir, p.id, p.file_base, d.size, opts->keep_last,
                                   opts->save.durable);
    if (st == PDCKPT_OK && out_id) *out_id = p.id;
    pdk_shard_plan_free(&p);
    pdk_blob_free(&list);
    pdk_dist_close(&d);
    return st;
}
