/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_list.c — a sharded checkpoint's metadata as its file lists it (pdckpt_sharded_list:
 * `pdckpt ls`; pdckpt_sharded_read_metadata's tree): the one metadata decode (dist_meta_read.c)
 * with the builder keeping every piece and entry in the file's order beside the index, within the
 * budget.  No value tree of Paddle's objects is built.
 */
#include "pdk_distcp.h"

#include <stdlib.h>
#include <string.h>

struct pdckpt_sharded_listing {
    pdk_meta_index ix;
    pdk_meta_list  list;
};

static pdckpt_status list_checkpoint(const char *dir, int64_t id, uint64_t max_alloc_bytes,
                                     pdckpt_sharded_listing *l, int64_t *got, pdckpt_error *err) {
    pdk_blob      bytes = {0};
    char          path[4200];
    pdckpt_status st = pdk_distcp_read_meta_bytes(dir, id, got, &bytes, NULL, err);
    if (st == PDCKPT_OK) st = pdk_meta_path(dir, *got, path, sizeof path, err);
    if (st == PDCKPT_OK)
        st = pdk_meta_decode_index(&bytes, path, max_alloc_bytes, &l->ix, &l->list, NULL, err);
    pdk_blob_free(&bytes);
    return st;
}

pdckpt_status pdckpt_sharded_list(const char *dir, int64_t id, uint64_t max_alloc_bytes,
                                  pdckpt_sharded_listing **out, int64_t *out_id,
                                  pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!dir || !out) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "dir or out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out) return pdk_fail_nomem(err, "listing");
    int64_t       got = -1;
    pdckpt_status st = list_checkpoint(dir, id, max_alloc_bytes, *out, &got, err);
    if (st != PDCKPT_OK) {
        free(*out); /* the decode freed what it built */
        *out = NULL;
    } else if (out_id) {
        *out_id = got;
    }
    return st;
}

size_t pdckpt_sharded_listing_n_tensors(const pdckpt_sharded_listing *l) {
    return l ? l->ix.n_keys : 0;
}

bool pdckpt_sharded_listing_tensor_at(const pdckpt_sharded_listing *l, size_t i,
                                      pdckpt_sharded_tensor_info *out) {
    if (!l || !out || i >= l->ix.n_keys) return false;
    const pdk_key_meta *km = &l->ix.keys[i];
    *out = (pdckpt_sharded_tensor_info){km->key, km->dtype, km->n_dims, km->global_shape};
    return true;
}

size_t pdckpt_sharded_listing_n_pieces(const pdckpt_sharded_listing *l) {
    return l ? l->list.n_entries : 0;
}

bool pdckpt_sharded_listing_piece_at(const pdckpt_sharded_listing *l, size_t i,
                                     pdckpt_sharded_piece_info *out) {
    if (!l || !out || i >= l->list.n_entries) return false;
    const pdk_meta_item *it = &l->list.entries[i];
    const int64_t       *dims = l->list.dims + it->dims;
    *out = (pdckpt_sharded_piece_info){l->ix.keys[it->key].key,
                                       l->ix.files[it->file],
                                       it->n_dims,
                                       dims,
                                       it->has_shape ? dims + it->n_dims : NULL,
                                       it->flat,
                                       it->flat ? it->flat_begin : 0,
                                       it->flat ? it->flat_end : 0,
                                       it->has_replica,
                                       it->has_replica ? it->replica : 0};
    return true;
}

void pdckpt_sharded_listing_free(pdckpt_sharded_listing *l) {
    if (!l) return;
    pdk_meta_index_free(&l->ix);
    pdk_meta_list_free(&l->list);
    free(l);
}

pdckpt_status pdckpt_sharded_read_metadata(const char *dir, int64_t id, pdckpt_value **metadata,
                                           int64_t *out_id, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!dir || !metadata)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "dir or metadata is NULL");
    *metadata = NULL;
    pdckpt_sharded_listing l = {.list.keep_pieces = true};
    int64_t                got = -1;
    pdckpt_status          st = list_checkpoint(dir, id, 0, &l, &got, err);
    if (st == PDCKPT_OK) st = pdk_meta_tree_from_list(&l.ix, &l.list, metadata, err);
    if (st == PDCKPT_OK && out_id) *out_id = got;
    pdk_meta_index_free(&l.ix);
    pdk_meta_list_free(&l.list);
    return st;
}
