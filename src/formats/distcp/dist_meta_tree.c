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

static pdckpt_value *int_tuple(const pdckpt_allocator *a, int32_t n, const int64_t *v) {
    pdckpt_value *t = pdckpt_value_new_container(a, PDCKPT_KIND_TUPLE);
    for (int32_t i = 0; t && i < n; i++)
        if (pdckpt_value_append(t, pdckpt_value_new_int(a, v[i]), NULL) != PDCKPT_OK) {
            pdckpt_value_free(t);
            return NULL;
        }
    return t;
}

static pdckpt_status set(pdckpt_value *d, const char *key, pdckpt_value *v, pdckpt_error *err) {
    if (!v) return pdk_fail_nomem(err, "metadata");
    return pdckpt_dict_set(d, key, v, err);
}

static pdckpt_status append(pdckpt_value *c, pdckpt_value *v, pdckpt_error *err) {
    if (!v) return pdk_fail_nomem(err, "metadata");
    return pdckpt_value_append(c, v, err);
}

/* flattened_range: (start, end) of a flattened piece (Paddle's tuple), None otherwise. */
static pdckpt_value *flat_range(const pdckpt_allocator *a, const pdk_meta_piece *p) {
    int64_t run[2] = {p->flat_begin, p->flat_end};
    return p->flat ? int_tuple(a, 2, run) : pdckpt_value_new_none(a);
}

static pdckpt_status local_meta(const pdckpt_allocator *a, const pdk_meta_piece *p,
                                pdckpt_value *list, pdckpt_error *err) {
    pdckpt_value *m = pdckpt_value_new_container(a, PDCKPT_KIND_DICT);
    if (!m) return pdk_fail_nomem(err, "metadata");
    pdckpt_status st = set(m, "global_offset", int_tuple(a, p->n_dims, p->offset), err);
    if (st == PDCKPT_OK) st = set(m, "local_shape", int_tuple(a, p->n_dims, p->shape), err);
    if (st == PDCKPT_OK)
        st =
            set(m, "dtype", pdckpt_value_new_string(a, pdckpt_dtype_name(p->dtype), SIZE_MAX), err);
    if (st == PDCKPT_OK) st = set(m, "global_shape", int_tuple(a, p->n_dims, p->global_shape), err);
    if (st == PDCKPT_OK) st = set(m, "is_flattened", pdckpt_value_new_bool(a, p->flat), err);
    if (st == PDCKPT_OK) st = set(m, "flattened_range", flat_range(a, p), err);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(m);
        return st;
    }
    return pdckpt_value_append(list, m, err);
}

static pdckpt_status storage_item(const pdckpt_allocator *a, const pdk_meta_piece *p,
                                  pdckpt_value *list, pdckpt_error *err) {
    pdckpt_value *index = pdckpt_value_new_container(a, PDCKPT_KIND_TUPLE);
    pdckpt_value *item = pdckpt_value_new_container(a, PDCKPT_KIND_TUPLE);
    if (!index || !item) {
        pdckpt_value_free(index);
        pdckpt_value_free(item);
        return pdk_fail_nomem(err, "metadata");
    }
    pdckpt_status st = append(index, pdckpt_value_new_string(a, p->key, SIZE_MAX), err);
    if (st == PDCKPT_OK) st = append(index, int_tuple(a, p->n_dims, p->offset), err);
    if (st == PDCKPT_OK) st = append(index, pdckpt_value_new_bool(a, p->flat), err);
    if (st == PDCKPT_OK) st = append(index, flat_range(a, p), err);
    if (st == PDCKPT_OK) st = append(index, pdckpt_value_new_none(a), err); /* replica_id */
    if (st == PDCKPT_OK) st = append(index, int_tuple(a, p->n_dims, p->shape), err);
    st = st == PDCKPT_OK ? pdckpt_value_append(item, index, err) : (pdckpt_value_free(index), st);
    if (st == PDCKPT_OK) st = append(item, pdckpt_value_new_string(a, p->file, SIZE_MAX), err);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(item);
        return st;
    }
    return pdckpt_value_append(list, item, err);
}

static pdckpt_status add_piece(const pdckpt_allocator *a, pdckpt_value *sdm, pdckpt_value *storage,
                               pdckpt_value *mapping, const pdk_meta_piece *p, pdckpt_error *err) {
    pdckpt_value *list = pdckpt_dict_get_mut(sdm, p->key);
    if (!list) {
        PDK_TRY(set(sdm, p->key, list = pdckpt_value_new_container(a, PDCKPT_KIND_LIST), err));
        pdckpt_value *path = pdckpt_value_new_container(a, PDCKPT_KIND_TUPLE);
        PDK_TRY(set(mapping, p->key, path, err));
        PDK_TRY(append(path, pdckpt_value_new_string(a, p->key, SIZE_MAX), err));
    }
    PDK_TRY(local_meta(a, p, list, err));
    return storage_item(a, p, storage, err);
}

pdckpt_status pdk_meta_tree_new(const pdckpt_allocator *a, const pdk_meta_piece *pieces, size_t n,
                                pdckpt_value **out, pdckpt_error *err) {
    pdckpt_value *root = pdckpt_value_new_container(a, PDCKPT_KIND_DICT);
    pdckpt_value *sdm = pdckpt_value_new_container(a, PDCKPT_KIND_DICT);
    pdckpt_value *storage = pdckpt_value_new_container(a, PDCKPT_KIND_LIST);
    pdckpt_value *mapping = pdckpt_value_new_container(a, PDCKPT_KIND_DICT);
    pdckpt_status st =
        root && sdm && storage && mapping ? PDCKPT_OK : pdk_fail_nomem(err, "metadata");
    for (size_t i = 0; i < n && st == PDCKPT_OK; i++)
        st = add_piece(a, sdm, storage, mapping, &pieces[i], err);
    if (st == PDCKPT_OK) st = set(root, "state_dict_metadata", sdm, err), sdm = NULL;
    if (st == PDCKPT_OK) st = set(root, "storage_metadata", storage, err), storage = NULL;
    if (st == PDCKPT_OK) st = set(root, "flat_mapping", mapping, err), mapping = NULL;
    pdckpt_value_free(sdm);
    pdckpt_value_free(storage);
    pdckpt_value_free(mapping);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(root);
        return st;
    }
    *out = root;
    return PDCKPT_OK;
}

/* ---- reading ---- */

typedef struct reader {
    const char     *source;
    pdckpt_error   *err;
    pdk_meta_index *ix;
    pdk_piece     **table; /* (key, offset) -> piece, open addressing */
    const char    **table_keys;
    size_t          n_slots;
    size_t         *file_slots; /* file name -> index + 1, open addressing */
    size_t          n_file_slots;
} reader;

static pdckpt_status bad(reader *r, const char *what) {
    return pdk_fail(r->err, PDCKPT_ERR_FORMAT, r->source, -1, "metadata: expected %s", what);
}

/* A tuple (or list) of ints; n_dims < 0 takes its length. */
static pdckpt_status get_ints(reader *r, const pdckpt_value *v, int32_t *n_dims, int64_t *out,
                              const char *what) {
    pdckpt_kind k = pdckpt_value_kind(v);
    size_t      n = pdckpt_value_len(v);
    if ((k != PDCKPT_KIND_TUPLE && k != PDCKPT_KIND_LIST) || n > PDCKPT_MAX_DIMS ||
        (*n_dims >= 0 && n != (size_t)*n_dims))
        return bad(r, what);
    for (size_t i = 0; i < n; i++)
        if (!pdckpt_value_get_int(pdckpt_value_at(v, i), &out[i]) || out[i] < 0)
            return bad(r, what);
    *n_dims = (int32_t)n;
    return PDCKPT_OK;
}

/* is_flattened and flattened_range (start, end) of a LocalTensorMetadata / LocalTensorIndex;
 * flat_begin -1 for a piece that is not flattened (dist_unflatten.c has the meaning). */
static pdckpt_status get_flat(reader *r, const pdckpt_value *is_flat, const pdckpt_value *range,
                              pdk_piece *p) {
    int32_t two = 2;
    int64_t run[2];
    p->flat = false;
    p->flat_begin = p->flat_end = -1;
    if (!is_flat || !pdckpt_value_get_bool(is_flat, &p->flat) || !p->flat) return PDCKPT_OK;
    PDK_TRY(get_ints(r, range, &two, run, "a flattened_range (start, end)"));
    p->flat_begin = run[0];
    p->flat_end = run[1];
    return PDCKPT_OK;
}

static pdckpt_status get_piece(reader *r, pdk_key_meta *km, const pdckpt_value *m, pdk_piece *p) {
    if (pdckpt_value_kind(m) != PDCKPT_KIND_DICT) return bad(r, "LocalTensorMetadata dicts");
    PDK_TRY(
        get_flat(r, pdckpt_dict_get(m, "is_flattened"), pdckpt_dict_get(m, "flattened_range"), p));
    int64_t off[PDCKPT_MAX_DIMS], shape[PDCKPT_MAX_DIMS], global[PDCKPT_MAX_DIMS];
    int32_t n = -1;
    PDK_TRY(get_ints(r, pdckpt_dict_get(m, "global_offset"), &n, off, "a global_offset tuple"));
    PDK_TRY(get_ints(r, pdckpt_dict_get(m, "local_shape"), &n, shape, "a local_shape tuple"));
    const char  *dt = pdckpt_value_get_string(pdckpt_dict_get(m, "dtype"), NULL);
    pdckpt_dtype dtype = dt ? pdckpt_dtype_from_name(dt) : PDCKPT_DTYPE_INVALID;
    if (dtype == PDCKPT_DTYPE_INVALID) return bad(r, "a known dtype name");
    const pdckpt_value *g = pdckpt_dict_get(m, "global_shape");
    bool                has_global = g && pdckpt_value_kind(g) != PDCKPT_KIND_NONE;
    if (has_global) PDK_TRY(get_ints(r, g, &n, global, "a global_shape tuple"));
    if (km->n_pieces == 0) {
        km->dtype = dtype;
        km->n_dims = n;
        km->global_shape = calloc((size_t)n + 1, sizeof *km->global_shape);
        if (!km->global_shape) return pdk_fail_nomem(r->err, "metadata");
        if (has_global) memcpy(km->global_shape, global, (size_t)n * sizeof *global);
    }
    if (dtype != km->dtype || n != km->n_dims ||
        (has_global && memcmp(global, km->global_shape, (size_t)n * sizeof *global) != 0))
        return pdk_fail(r->err, PDCKPT_ERR_FORMAT, r->source, -1,
                        "metadata: pieces of '%s' disagree on dtype or global shape", km->key);
    for (int32_t d = 0; d < n; d++) /* both >= 0: their sum must not wrap (hostile metadata) */
        if (off[d] > INT64_MAX / 2 || shape[d] > INT64_MAX / 2 - off[d])
            return bad(r, "a piece's global_offset + local_shape below 2^62");
    for (int32_t d = 0; d < n && !has_global; d++) /* old metadata: the extent of the pieces */
        if (off[d] + shape[d] > km->global_shape[d]) km->global_shape[d] = off[d] + shape[d];
    p->offset = malloc(2 * ((size_t)n + 1) * sizeof *p->offset);
    if (!p->offset) return pdk_fail_nomem(r->err, "metadata");
    p->shape = p->offset + n + 1;
    memcpy(p->offset, off, (size_t)n * sizeof *off);
    memcpy(p->shape, shape, (size_t)n * sizeof *shape);
    km->n_pieces++;
    return PDCKPT_OK;
}

/* A string without a NUL inside: C code would see only its start ("0_0.distcp\0x" would name
 * 0_0.distcp), so such a key or file name is refused, not shortened. */
static const char *whole_string(const pdckpt_value *v) {
    size_t      n = 0;
    const char *s = pdckpt_value_get_string(v, &n);
    return s && strlen(s) == n ? s : NULL;
}

static pdckpt_status get_key(reader *r, const pdckpt_value *key, const pdckpt_value *list,
                             pdk_key_meta *km) {
    const char *k = whole_string(key);
    if (!k || pdckpt_value_kind(key) != PDCKPT_KIND_STRING) return bad(r, "string keys");
    if (pdckpt_value_kind(list) != PDCKPT_KIND_LIST || pdckpt_value_len(list) == 0)
        return bad(r, "a non-empty list of pieces per key");
    if (!(km->key = strdup(k))) return pdk_fail_nomem(r->err, "metadata");
    km->pieces = calloc(pdckpt_value_len(list), sizeof *km->pieces);
    if (!km->pieces) return pdk_fail_nomem(r->err, "metadata");
    for (size_t i = 0; i < pdckpt_value_len(list); i++)
        PDK_TRY(get_piece(r, km, pdckpt_value_at(list, i), &km->pieces[i]));
    for (size_t i = 0; i < km->n_pieces; i++)
        for (int32_t d = 0; d < km->n_dims; d++)
            if (km->pieces[i].offset[d] + km->pieces[i].shape[d] > km->global_shape[d])
                return pdk_fail(r->err, PDCKPT_ERR_FORMAT, r->source, -1,
                                "metadata: a piece of '%s' lies outside its global shape", km->key);
    return PDCKPT_OK;
}

/* ---- (key, offset) -> piece ---- */

/* Pieces are found by (key, offset, start of the flattened run): flattened pieces of one box
 * share its offset. */
static uint64_t piece_hash(const char *key, int32_t n, const int64_t *off, int64_t flat) {
    uint64_t h = pdk_table_hash(pdk_table_hash(0, key, strlen(key)), off, (size_t)n * sizeof *off);
    return pdk_table_hash(h, &flat, sizeof flat);
}

static size_t find_slot(reader *r, const char *key, int32_t n, const int64_t *off, int64_t flat) {
    size_t mask = r->n_slots - 1;
    for (size_t i = (size_t)piece_hash(key, n, off, flat) & mask;; i = (i + 1) & mask) {
        if (!r->table[i]) return i;
        if (strcmp(r->table_keys[i], key) == 0 && r->table[i]->flat_begin == flat &&
            memcmp(r->table[i]->offset, off, (size_t)n * sizeof *off) == 0)
            return i;
    }
}

static pdckpt_status build_table(reader *r) {
    size_t total = 0;
    for (size_t k = 0; k < r->ix->n_keys; k++) total += r->ix->keys[k].n_pieces;
    r->n_slots = 16;
    while (r->n_slots < total * 2) r->n_slots *= 2;
    r->table = calloc(r->n_slots, sizeof *r->table);
    r->table_keys = calloc(r->n_slots, sizeof *r->table_keys);
    if (!r->table || !r->table_keys) return pdk_fail_nomem(r->err, "metadata index");
    for (size_t k = 0; k < r->ix->n_keys; k++) {
        pdk_key_meta *km = &r->ix->keys[k];
        for (size_t i = 0; i < km->n_pieces; i++) {
            size_t s =
                find_slot(r, km->key, km->n_dims, km->pieces[i].offset, km->pieces[i].flat_begin);
            if (r->table[s])
                return pdk_fail(r->err, PDCKPT_ERR_FORMAT, r->source, -1,
                                "metadata: two pieces of '%s' start at the same offset", km->key);
            r->table[s] = &km->pieces[i];
            r->table_keys[s] = km->key;
        }
    }
    return PDCKPT_OK;
}

static pdckpt_status intern_file(reader *r, const char *name, pdk_piece *p) {
    pdk_meta_index *ix = r->ix;
    size_t          n = strlen(name), mask = r->n_file_slots - 1, i;
    if (n == 0 || n > 255 || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return bad(r, "plain file names inside the checkpoint directory");
    for (i = (size_t)pdk_table_hash(0, name, n) & mask; r->file_slots[i]; i = (i + 1) & mask)
        if (strcmp(ix->files[r->file_slots[i] - 1], name) == 0) break;
    if (!r->file_slots[i]) {
        if (ix->n_files * 2 >= r->n_file_slots) return bad(r, "fewer file names");
        char **grown = realloc(ix->files, (ix->n_files + 1) * sizeof *grown);
        if (!grown) return pdk_fail_nomem(r->err, "metadata");
        ix->files = grown;
        if (!(ix->files[ix->n_files] = strdup(name))) return pdk_fail_nomem(r->err, "metadata");
        r->file_slots[i] = ++ix->n_files;
    }
    p->file_ix = r->file_slots[i] - 1;
    p->file = ix->files[p->file_ix];
    return PDCKPT_OK;
}

static pdckpt_status get_storage_item(reader *r, const pdckpt_value *index,
                                      const pdckpt_value *file) {
    pdckpt_kind k = pdckpt_value_kind(index);
    size_t      n = pdckpt_value_len(index);
    const char *key = whole_string(pdckpt_value_at(index, 0));
    const char *name = whole_string(file);
    if ((k != PDCKPT_KIND_TUPLE && k != PDCKPT_KIND_LIST) || n < 2 || !key || !name)
        return bad(r, "storage_metadata items (LocalTensorIndex, file name)");
    int64_t replica = 0, off[PDCKPT_MAX_DIMS];
    if (n >= 5 && pdckpt_value_get_int(pdckpt_value_at(index, 4), &replica) && replica > 0)
        return PDCKPT_OK; /* an extra replica: the main copy (replica 0 or None) is read */
    const pdk_key_meta *km = pdk_meta_find(r->ix, key);
    int32_t             dims = km ? km->n_dims : -1;
    PDK_TRY(get_ints(r, pdckpt_value_at(index, 1), &dims, off, "a LocalTensorIndex offset"));
    pdk_piece flat = {0};
    if (n >= 4) PDK_TRY(get_flat(r, pdckpt_value_at(index, 2), pdckpt_value_at(index, 3), &flat));
    size_t s = km ? find_slot(r, key, dims, off, n >= 4 ? flat.flat_begin : -1) : 0;
    if (!km || !r->table[s])
        return pdk_fail(r->err, PDCKPT_ERR_FORMAT, r->source, -1,
                        "metadata: storage_metadata names a piece of '%s' that "
                        "state_dict_metadata does not have",
                        key);
    return intern_file(r, name, r->table[s]);
}

static pdckpt_status get_storage(reader *r, const pdckpt_value *storage) {
    pdckpt_kind k = pdckpt_value_kind(storage);
    bool        dict = k == PDCKPT_KIND_DICT;
    if (!dict && k != PDCKPT_KIND_LIST) return bad(r, "storage_metadata as a dict or a list");
    r->n_file_slots = 16;
    while (r->n_file_slots < pdckpt_value_len(storage) * 2) r->n_file_slots *= 2;
    if (!(r->file_slots = calloc(r->n_file_slots, sizeof *r->file_slots)))
        return pdk_fail_nomem(r->err, "metadata index");
    for (size_t i = 0; i < pdckpt_value_len(storage); i++) {
        const pdckpt_value *item = pdckpt_value_at(storage, i);
        if (!dict &&
            (pdckpt_value_len(item) != 2 || (pdckpt_value_kind(item) != PDCKPT_KIND_TUPLE &&
                                             pdckpt_value_kind(item) != PDCKPT_KIND_LIST)))
            return bad(r, "storage_metadata items (index, file)");
        const pdckpt_value *index =
            dict ? pdckpt_dict_key_at(storage, i) : pdckpt_value_at(item, 0);
        const pdckpt_value *file = dict ? item : pdckpt_value_at(item, 1);
        PDK_TRY(get_storage_item(r, index, file));
    }
    return PDCKPT_OK;
}

static pdckpt_status check_files(reader *r) {
    for (size_t k = 0; k < r->ix->n_keys; k++)
        for (size_t i = 0; i < r->ix->keys[k].n_pieces; i++)
            if (!r->ix->keys[k].pieces[i].file)
                return pdk_fail(r->err, PDCKPT_ERR_FORMAT, r->source, -1,
                                "metadata: a piece of '%s' has no file in storage_metadata",
                                r->ix->keys[k].key);
    return PDCKPT_OK;
}

pdckpt_status pdk_meta_index_build(const pdckpt_value *meta, const char *source,
                                   pdk_meta_index *out, pdckpt_error *err) {
    memset(out, 0, sizeof *out);
    reader              r = {source, err, out, NULL, NULL, 0, NULL, 0};
    const pdckpt_value *sdm = pdckpt_dict_get(meta, "state_dict_metadata");
    const pdckpt_value *storage = pdckpt_dict_get(meta, "storage_metadata");
    pdckpt_status       st = pdckpt_value_kind(sdm) == PDCKPT_KIND_DICT && storage
                                 ? PDCKPT_OK
                                 : bad(&r, "state_dict_metadata and storage_metadata");
    if (st == PDCKPT_OK) {
        out->keys = calloc(pdckpt_value_len(sdm) + 1, sizeof *out->keys);
        if (!out->keys) st = pdk_fail_nomem(err, "metadata index");
    }
    for (size_t i = 0; st == PDCKPT_OK && i < pdckpt_value_len(sdm); i++) {
        out->n_keys++;
        st = get_key(&r, pdckpt_dict_key_at(sdm, i), pdckpt_value_at(sdm, i), &out->keys[i]);
    }
    if (st == PDCKPT_OK) st = pdk_meta_index_keys(out, source, err);
    if (st == PDCKPT_OK) st = build_table(&r);
    if (st == PDCKPT_OK) st = get_storage(&r, storage);
    if (st == PDCKPT_OK) st = check_files(&r);
    if (st == PDCKPT_OK) st = pdk_meta_unflatten(out, source, err);
    if (st == PDCKPT_OK) st = pdk_meta_index_sort(out, source, err);
    free(r.table);
    free(r.table_keys);
    free(r.file_slots);
    if (st != PDCKPT_OK) pdk_meta_index_free(out);
    return st;
}

void pdk_meta_index_free(pdk_meta_index *ix) {
    for (size_t k = 0; k < ix->n_keys; k++) {
        for (size_t i = 0; i < ix->keys[k].n_pieces; i++) free(ix->keys[k].pieces[i].offset);
        free(ix->keys[k].pieces);
        free(ix->keys[k].reach);
        free(ix->keys[k].global_shape);
        free(ix->keys[k].key);
    }
    free(ix->keys);
    free(ix->slots);
    for (size_t i = 0; i < ix->n_files; i++) free(ix->files[i]);
    free(ix->files);
    memset(ix, 0, sizeof *ix);
}
