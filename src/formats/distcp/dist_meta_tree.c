/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_meta_tree.c — the metadata tree of a sharded checkpoint (spec §5.2, Paddle's Metadata):
 *   state_dict_metadata  {key: [LocalTensorMetadata as a dict: global_offset, local_shape, dtype,
 *                               global_shape, is_flattened, flattened_range], ...}
 *   storage_metadata     [(LocalTensorIndex as a tuple: tensor_key, global_offset, is_flattened,
 *                          flattened_range, replica_id, local_shape), file_name), ...]
 *   flat_mapping         {key: (key,)}
 * storage_metadata is Paddle's dict as a list of (index, file) items (dist_meta.c converts from
 * and to Paddle's dict keyed by LocalTensorIndex objects); a dict with tuple keys is read too.  The
 * reader checks every piece against its key's global shape, and that file names stay inside the
 * directory.
 */
#include "pdk_distcp.h"

#include <stdlib.h>
#include <string.h>

/* ---- building ---- */

/* How leaves are made: new, from the allocator (a save's tree), or shared from a pool (the tree
 * pdckpt_sharded_read_metadata returns: dist_meta_pool.c). */
typedef struct tree_mk {
    const pdckpt_allocator *a;
    pdk_meta_pool          *pool;
} tree_mk;

static pdckpt_value *int_tuple(const tree_mk *m, int32_t n, const int64_t *v) {
    if (m->pool) return pdk_meta_pool_ints(m->pool, n, v);
    pdckpt_value *t = pdckpt_value_new_container(m->a, PDCKPT_KIND_TUPLE);
    for (int32_t i = 0; t && i < n; i++)
        if (pdckpt_value_append(t, pdckpt_value_new_int(m->a, v[i]), NULL) != PDCKPT_OK) {
            pdckpt_value_free(t);
            return NULL;
        }
    return t;
}

static pdckpt_value *str(const tree_mk *m, const char *s) {
    return m->pool ? pdk_meta_pool_str(m->pool, s) : pdckpt_value_new_string(m->a, s, SIZE_MAX);
}

static pdckpt_value *none(const tree_mk *m) {
    return m->pool ? pdk_meta_pool_none(m->pool) : pdckpt_value_new_none(m->a);
}

static pdckpt_value *boolean(const tree_mk *m, bool b) {
    return m->pool ? pdk_meta_pool_bool(m->pool, b) : pdckpt_value_new_bool(m->a, b);
}

static pdckpt_value *int_of(const tree_mk *m, int64_t v) {
    return m->pool ? pdk_meta_pool_int(m->pool, v) : pdckpt_value_new_int(m->a, v);
}

static pdckpt_status set(const tree_mk *m, pdckpt_value *d, const char *key, pdckpt_value *v,
                         pdckpt_error *err) {
    if (!v) return pdk_fail_nomem(err, "metadata");
    if (!m->pool) return pdckpt_dict_set(d, key, v, err);
    pdckpt_value *k = pdk_meta_pool_str(m->pool, key);
    if (!k) return pdckpt_value_free(v), pdk_fail_nomem(err, "metadata");
    return pdckpt_dict_set_value(d, k, v, err);
}

static pdckpt_status append(pdckpt_value *c, pdckpt_value *v, pdckpt_error *err) {
    if (!v) return pdk_fail_nomem(err, "metadata");
    return pdckpt_value_append(c, v, err);
}

/* flattened_range: (start, end) of a flattened piece (Paddle's tuple), None otherwise. */
static pdckpt_value *flat_range(const tree_mk *m, const pdk_meta_piece *p) {
    int64_t run[2] = {p->flat_begin, p->flat_end};
    return p->flat ? int_tuple(m, 2, run) : none(m);
}

static pdckpt_status local_meta(const tree_mk *m, const pdk_meta_piece *p, pdckpt_value *list,
                                pdckpt_error *err) {
    pdckpt_value *d = pdckpt_value_new_container(m->a, PDCKPT_KIND_DICT);
    if (!d) return pdk_fail_nomem(err, "metadata");
    pdckpt_status st = set(m, d, "global_offset", int_tuple(m, p->n_dims, p->offset), err);
    if (st == PDCKPT_OK) st = set(m, d, "local_shape", int_tuple(m, p->n_dims, p->shape), err);
    if (st == PDCKPT_OK) st = set(m, d, "dtype", str(m, pdckpt_dtype_name(p->dtype)), err);
    if (st == PDCKPT_OK)
        st = set(m, d, "global_shape", int_tuple(m, p->n_dims, p->global_shape), err);
    if (st == PDCKPT_OK) st = set(m, d, "is_flattened", boolean(m, p->flat), err);
    if (st == PDCKPT_OK) st = set(m, d, "flattened_range", flat_range(m, p), err);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(d);
        return st;
    }
    return pdckpt_value_append(list, d, err);
}

/* (index tuple, file) of `p`; replica_id None unless `replica`, local_shape None without a shape.
 */
static pdckpt_status storage_item(const tree_mk *m, const pdk_meta_piece *p, const int64_t *replica,
                                  pdckpt_value *list, pdckpt_error *err) {
    pdckpt_value *index = pdckpt_value_new_container(m->a, PDCKPT_KIND_TUPLE);
    pdckpt_value *item = pdckpt_value_new_container(m->a, PDCKPT_KIND_TUPLE);
    if (!index || !item) {
        pdckpt_value_free(index);
        pdckpt_value_free(item);
        return pdk_fail_nomem(err, "metadata");
    }
    pdckpt_status st = append(index, str(m, p->key), err);
    if (st == PDCKPT_OK) st = append(index, int_tuple(m, p->n_dims, p->offset), err);
    if (st == PDCKPT_OK) st = append(index, boolean(m, p->flat), err);
    if (st == PDCKPT_OK) st = append(index, flat_range(m, p), err);
    if (st == PDCKPT_OK) st = append(index, replica ? int_of(m, *replica) : none(m), err);
    if (st == PDCKPT_OK)
        st = append(index, p->shape ? int_tuple(m, p->n_dims, p->shape) : none(m), err);
    st = st == PDCKPT_OK ? pdckpt_value_append(item, index, err) : (pdckpt_value_free(index), st);
    if (st == PDCKPT_OK) st = append(item, str(m, p->file), err);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(item);
        return st;
    }
    return pdckpt_value_append(list, item, err);
}

static pdckpt_status add_piece(const tree_mk *m, pdckpt_value *sdm, pdckpt_value *storage,
                               pdckpt_value *mapping, const pdk_meta_piece *p, pdckpt_error *err) {
    pdckpt_value *list = pdckpt_dict_get_mut(sdm, p->key);
    if (!list) {
        PDK_TRY(
            set(m, sdm, p->key, list = pdckpt_value_new_container(m->a, PDCKPT_KIND_LIST), err));
        pdckpt_value *path = pdckpt_value_new_container(m->a, PDCKPT_KIND_TUPLE);
        PDK_TRY(set(m, mapping, p->key, path, err));
        PDK_TRY(append(path, str(m, p->key), err));
    }
    if (p->key_only) return PDCKPT_OK;
    PDK_TRY(local_meta(m, p, list, err));
    return storage_item(m, p, NULL, storage, err);
}

/* Metadata's three parts set into its root when `st` is OK; each part the root did not take is
 * freed, and the root too on a failure. */
static pdckpt_status assembled(pdckpt_status st, pdckpt_value *root, pdckpt_value *sdm,
                               pdckpt_value *storage, pdckpt_value *mapping, pdckpt_value **out,
                               pdckpt_error *err) {
    tree_mk m = {NULL, NULL}; /* the root's three keys: new strings */
    if (st == PDCKPT_OK) st = set(&m, root, "state_dict_metadata", sdm, err), sdm = NULL;
    if (st == PDCKPT_OK) st = set(&m, root, "storage_metadata", storage, err), storage = NULL;
    if (st == PDCKPT_OK) st = set(&m, root, "flat_mapping", mapping, err), mapping = NULL;
    pdckpt_value_free(sdm);
    pdckpt_value_free(storage);
    pdckpt_value_free(mapping);
    if (st != PDCKPT_OK) root = (pdckpt_value_free(root), NULL);
    *out = root;
    return st;
}

pdckpt_status pdk_meta_tree_new(const pdckpt_allocator *a, const pdk_meta_piece *pieces, size_t n,
                                pdckpt_value **out, pdckpt_error *err) {
    pdckpt_value *root = pdckpt_value_new_container(a, PDCKPT_KIND_DICT);
    pdckpt_value *sdm = pdckpt_value_new_container(a, PDCKPT_KIND_DICT);
    pdckpt_value *storage = pdckpt_value_new_container(a, PDCKPT_KIND_LIST);
    pdckpt_value *mapping = pdckpt_value_new_container(a, PDCKPT_KIND_DICT);
    pdckpt_status st =
        root && sdm && storage && mapping ? PDCKPT_OK : pdk_fail_nomem(err, "metadata");
    tree_mk m = {a, NULL};
    for (size_t i = 0; i < n && st == PDCKPT_OK; i++)
        st = add_piece(&m, sdm, storage, mapping, &pieces[i], err);
    return assembled(st, root, sdm, storage, mapping, out, err);
}

/* ---- the tree of a file's metadata, from its listing (pdckpt_sharded_read_metadata) ---- */

/* Item `it` of the list as a piece of the tree's builder. */
static pdk_meta_piece listed(const pdk_meta_index *ix, const pdk_meta_list *l,
                             const pdk_meta_item *it, bool entry) {
    const pdk_key_meta *km = &ix->keys[it->key];
    const int64_t      *dims = l->dims + it->dims;
    return (pdk_meta_piece){km->key,
                            km->dtype,
                            it->n_dims,
                            km->global_shape,
                            dims,
                            it->has_shape ? dims + it->n_dims : NULL,
                            entry ? ix->files[it->file] : NULL,
                            it->flat,
                            it->flat_begin,
                            it->flat_end};
}

static pdckpt_status listed_pieces(const tree_mk *m, const pdk_meta_index *ix,
                                   const pdk_meta_list *l, pdckpt_value *sdm, pdckpt_error *err) {
    pdckpt_value *list = NULL;
    for (size_t i = 0; i < l->n_pieces; i++) {
        const pdk_meta_item *it = &l->pieces[i];
        pdk_meta_piece       p = listed(ix, l, it, false);
        if (i == 0 || it->key != l->pieces[i - 1].key)
            PDK_TRY(
                set(m, sdm, p.key, list = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST), err));
        PDK_TRY(local_meta(m, &p, list, err));
    }
    return PDCKPT_OK;
}

pdckpt_status pdk_meta_tree_from_list(const pdk_meta_index *ix, const pdk_meta_list *l,
                                      pdckpt_value **out, pdckpt_error *err) {
    pdckpt_value *root = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_value *sdm = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_value *storage = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST);
    pdckpt_value *mapping = l->flat_mapping ? pdckpt_value_retain(l->flat_mapping)
                                            : pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    tree_mk       m = {NULL, pdk_meta_pool_new()};
    pdckpt_status st =
        root && sdm && storage && mapping && m.pool ? PDCKPT_OK : pdk_fail_nomem(err, "metadata");
    if (st == PDCKPT_OK) st = listed_pieces(&m, ix, l, sdm, err);
    for (size_t i = 0; i < l->n_entries && st == PDCKPT_OK; i++) {
        pdk_meta_piece p = listed(ix, l, &l->entries[i], true);
        st = storage_item(&m, &p, l->entries[i].has_replica ? &l->entries[i].replica : NULL,
                          storage, err);
    }
    pdk_meta_pool_free(m.pool); /* the tree holds what it shares */
    return assembled(st, root, sdm, storage, mapping, out, err);
}

/* ---- reading: the tree's dicts and tuples as records (dist_meta_build.c) ---- */

typedef struct tree_key {
    const pdckpt_value *list;
    const char         *source;
    pdk_meta_rec       *rec; /* PDK_META_REC_MAX bytes */
} tree_key;

static const pdk_meta_rec *tree_piece(void *ctx, size_t i, pdckpt_error *err) {
    tree_key *t = ctx;
    return pdk_meta_rec_piece(pdckpt_value_at(t->list, i), t->source, t->rec, err) == PDCKPT_OK
               ? t->rec
               : NULL;
}

static pdckpt_status tree_storage(pdk_meta_builder *b, const pdckpt_value *storage,
                                  const char *source, pdk_meta_rec *rec, pdckpt_error *err) {
    pdckpt_kind k = pdckpt_value_kind(storage);
    bool        dict = k == PDCKPT_KIND_DICT;
    if (!dict && k != PDCKPT_KIND_LIST)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, source, -1,
                        "metadata: expected storage_metadata as a dict or a list");
    PDK_TRY(pdk_meta_build_storage(b, pdckpt_value_len(storage)));
    for (size_t i = 0; i < pdckpt_value_len(storage); i++) {
        const pdckpt_value *item = pdckpt_value_at(storage, i);
        if (!dict &&
            (pdckpt_value_len(item) != 2 || (pdckpt_value_kind(item) != PDCKPT_KIND_TUPLE &&
                                             pdckpt_value_kind(item) != PDCKPT_KIND_LIST)))
            return pdk_fail(err, PDCKPT_ERR_FORMAT, source, -1,
                            "metadata: expected storage_metadata items (index, file)");
        const pdckpt_value *index =
            dict ? pdckpt_dict_key_at(storage, i) : pdckpt_value_at(item, 0);
        PDK_TRY(pdk_meta_rec_index(index, true, source, rec, err));
        PDK_TRY(pdk_meta_build_entry(b, rec,
                                     pdk_meta_file_name(dict ? item : pdckpt_value_at(item, 1))));
    }
    return PDCKPT_OK;
}

pdckpt_status pdk_meta_index_build(const pdckpt_value *meta, const char *source,
                                   pdk_meta_index *out, pdckpt_error *err) {
    return pdk_meta_index_build_limited(meta, source, UINT64_MAX, out, err);
}

pdckpt_status pdk_meta_index_build_limited(const pdckpt_value *meta, const char *source,
                                           uint64_t max_bytes, pdk_meta_index *out,
                                           pdckpt_error *err) {
    const pdckpt_value *sdm = pdckpt_dict_get(meta, "state_dict_metadata");
    const pdckpt_value *storage = pdckpt_dict_get(meta, "storage_metadata");
    pdk_meta_builder   *b = NULL;
    pdk_meta_rec       *rec = malloc(PDK_META_REC_MAX);
    pdckpt_status       st =
        pdckpt_value_kind(sdm) == PDCKPT_KIND_DICT && storage
                  ? PDCKPT_OK
                  : pdk_fail(err, PDCKPT_ERR_FORMAT, source, -1,
                             "metadata: expected state_dict_metadata and storage_metadata");
    if (st == PDCKPT_OK && !rec) st = pdk_fail_nomem(err, "metadata index");
    if (st == PDCKPT_OK) st = pdk_meta_build_begin(source, pdckpt_value_len(sdm), out, &b, err);
    pdk_meta_build_limit(b, max_bytes);
    for (size_t i = 0; st == PDCKPT_OK && i < pdckpt_value_len(sdm); i++) {
        tree_key t = {pdckpt_value_at(sdm, i), source, rec};
        if (pdckpt_value_kind(t.list) != PDCKPT_KIND_LIST) t.list = NULL; /* refused as empty */
        st = pdk_meta_build_key(b, pdckpt_dict_key_at(sdm, i), pdckpt_value_len(t.list), tree_piece,
                                &t);
    }
    if (st == PDCKPT_OK) st = tree_storage(b, storage, source, rec, err);
    free(rec);
    return pdk_meta_build_end(b, st);
}
