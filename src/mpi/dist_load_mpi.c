/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_load_mpi.c — pdckpt_mpi_load_sharded: the coordinator reads the metadata's index
 * (src/formats/distcp/dist_load.c) and broadcasts its compact form; every rank then loads its own
 * boxes with the local loader, and all agree on the outcome.
 */
#include "dist_internal.h"

#include <string.h>

static pdckpt_status local_checks(const pdk_dist *d, const char *dir,
                                  const pdckpt_shard_request *reqs, size_t n,
                                  const pdckpt_mpi_options *o, pdckpt_value **out,
                                  pdckpt_error *err) {
    if (!dir || !out || (n && !reqs))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "dir, requests or out is NULL");
    if (o->coordinator < 0 || o->coordinator >= d->size)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "coordinator %d is not in the job",
                        o->coordinator);
    return PDCKPT_OK;
}

static pdckpt_status shared_index(pdk_dist *d, const char *dir, const pdckpt_mpi_options *o,
                                  pdk_meta_index *ix, pdckpt_error *err) {
    pdk_blob      compact = {0};
    int64_t       id = -1;
    char          path[4200] = "";
    bool          coord = d->rank == o->coordinator;
    pdckpt_status st = coord ? pdk_distcp_read_index(dir, o->unique_id, o->load.max_alloc_bytes,
                                                     &id, ix, &compact, path, sizeof path, err)
                             : PDCKPT_OK;
    st = pdk_dist_agree(d, st, err);
    if (st == PDCKPT_OK) st = pdk_dist_bcast(d, &id, sizeof id, o->coordinator, err);
    if (st == PDCKPT_OK) st = pdk_dist_bcast_blob(d, &compact, o->coordinator, err);
    if (st == PDCKPT_OK && !coord) st = pdk_meta_path(dir, id, path, sizeof path, err);
    if (st == PDCKPT_OK && !coord)
        st = pdk_meta_index_decode(compact.data, compact.len, path, ix, err);
    pdk_blob_free(&compact);
    return st;
}

pdckpt_status pdckpt_mpi_load_sharded(MPI_Comm comm, const char *dir,
                                      const pdckpt_shard_request *requests, size_t n_requests,
                                      const pdckpt_mpi_options *opts, pdckpt_value **out,
                                      pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    opts = pdk_mpi_begin(opts, &err, &local);
    if (out) *out = NULL;
    pdk_dist       d;
    pdk_meta_index ix = {0};
    pdckpt_value  *result = NULL;
    PDK_TRY(pdk_dist_open(comm, opts, &d, err));
    pdckpt_status st = local_checks(&d, dir, requests, n_requests, opts, out, err);
    st = pdk_dist_agree(&d, st, err);
    if (st == PDCKPT_OK) {
        uint64_t h = pdk_hash_bytes(0, dir, strlen(dir));
        h = pdk_hash_bytes(h, &opts->unique_id, sizeof opts->unique_id);
        st = pdk_dist_same(&d, pdk_hash_bytes(h, &opts->coordinator, sizeof opts->coordinator),
                           "dir, unique_id and coordinator", err);
    }
    if (st == PDCKPT_OK) st = pdk_dist_agree(&d, shared_index(&d, dir, opts, &ix, err), err);
    if (st == PDCKPT_OK) {
        st = pdk_distcp_load(&ix, dir, &opts->load, requests, n_requests, false, &result, err);
        st = pdk_dist_agree(&d, st, err);
    }
    if (st == PDCKPT_OK)
        *out = result;
    else
        pdckpt_value_free(result);
    pdk_meta_index_free(&ix);
    pdk_dist_close(&d);
    return st;
}
