/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_meta_build.c — the sharded checkpoint's metadata read into its index (pdk_meta_index),
 * checking every piece: the records both readers produce (Paddle's pickled LocalTensorMetadata /
 * LocalTensorIndex objects as the pickle reader builds them, dist_meta_read.c; the tree's dicts
 * and tuples, dist_meta_tree.c) parsed by one set of rules, and the index built from them: every
 * piece checked against its key's dtype and global shape, every storage entry matched to a piece,
 * file names kept inside the directory.
 */
#include "pdk_distcp.h"

#include <stdlib.h>
#include <string.h>

static pdckpt_status bad_at(const char *source, pdckpt_error *err, const char *what) {
    return pdk_fail(err, PDCKPT_ERR_FORMAT, source, -1, "metadata: expected %s", what);
}

/* ---- records ---- */

/* A tuple (or list) of ints; n_dims < 0 takes its length. */
static pdckpt_status get_ints(const char *source, pdckpt_error *err, const pdckpt_value *v,
                              int32_t *n_dims, int64_t *out, const char *what) {
    pdckpt_kind k = pdckpt_value_kind(v);
    size_t      n = pdckpt_value_len(v);
    if ((k != PDCKPT_KIND_TUPLE && k != PDCKPT_KIND_LIST) || n > PDCKPT_MAX_DIMS ||
        (*n_dims >= 0 && n != (size_t)*n_dims))
        return bad_at(source, err, what);
    for (size_t i = 0; i < n; i++)
        if (!pdckpt_value_get_int(pdckpt_value_at(v, i), &out[i]) || out[i] < 0)
            return bad_at(source, err, what);
    *n_dims = (int32_t)n;
    return PDCKPT_OK;
}

/* is_flattened and flattened_range (start, end) (dist_unflatten.c has the meaning). */
static pdckpt_status get_flat(const char *source, pdckpt_error *err, const pdckpt_value *is_flat,
                              const pdckpt_value *range, pdk_meta_rec *rec) {
    int32_t two = 2;
    int64_t run[2];
    rec->flat = false;
    rec->flat_begin = rec->flat_end = -1;
    if (!is_flat || !pdckpt_value_get_bool(is_flat, &rec->flat) || !rec->flat) return PDCKPT_OK;
    PDK_TRY(get_ints(source, err, range, &two, run, "a flattened_range (start, end)"));
    rec->flat_begin = run[0];
    rec->flat_end = run[1];
    return PDCKPT_OK;
}

size_t pdk_meta_rec_size(const pdk_meta_rec *rec) {
    return sizeof *rec + (rec->is_index ? 2 : 3) * (size_t)rec->n_dims * sizeof(int64_t);
}

pdckpt_status pdk_meta_rec_piece(const pdckpt_value *m, const char *source, pdk_meta_rec *out,
                                 pdckpt_error *err) {
    if (pdckpt_value_kind(m) != PDCKPT_KIND_DICT)
        return bad_at(source, err, "LocalTensorMetadata dicts");
    memset(out, 0, sizeof *out);
    PDK_TRY(get_flat(source, err, pdckpt_dict_get(m, "is_flattened"),
                     pdckpt_dict_get(m, "flattened_range"), out));
    int32_t n = -1;
    PDK_TRY(get_ints(source, err, pdckpt_dict_get(m, "global_offset"), &n, out->dims,
                     "a global_offset tuple"));
    PDK_TRY(get_ints(source, err, pdckpt_dict_get(m, "local_shape"), &n, out->dims + n,
                     "a local_shape tuple"));
    out->n_dims = n;
    const pdckpt_value *dt = pdckpt_dict_get(m, "dtype");
    const char         *name = pdckpt_value_get_string(dt, NULL);
    out->dtype = name ? pdckpt_dtype_from_name(name) : PDCKPT_DTYPE_INVALID;
    if (dt && out->dtype == PDCKPT_DTYPE_INVALID) return bad_at(source, err, "a known dtype name");
    const pdckpt_value *g = pdckpt_dict_get(m, "global_shape");
    out->has_global = g && pdckpt_value_kind(g) != PDCKPT_KIND_NONE;
    if (out->has_global)
        PDK_TRY(get_ints(source, err, g, &n, out->dims + 2 * n, "a global_shape tuple"));
    for (int32_t d = 0; d < n; d++) /* both >= 0: their sum must not wrap (hostile metadata) */
        if (out->dims[d] > INT64_MAX / 2 || out->dims[n + d] > INT64_MAX / 2 - out->dims[d])
            return bad_at(source, err, "a piece's global_offset + local_shape below 2^62");
    return PDCKPT_OK;
}

/* A string without a NUL inside: C code would see only its start ("0_0.distcp\0x" would name
 * 0_0.distcp), so such a key or file name is refused, not shortened. */
static const char *whole_string(const pdckpt_value *v) {
    size_t      n = 0;
    const char *s = pdckpt_value_get_string(v, &n);
    return s && strlen(s) == n ? s : NULL;
}

/* The fields of a LocalTensorIndex, from its dict or the tree's tuple (absent ones: NULL). */
static const pdckpt_value *index_field(const pdckpt_value *m, bool tuple, size_t i) {
    static const char *const names[] = {"tensor_key",      "global_offset", "is_flattened",
                                        "flattened_range", "replica_id",    "local_shape"};
    if (!tuple) return pdckpt_dict_get(m, names[i]);
    return i < pdckpt_value_len(m) ? pdckpt_value_at(m, i) : NULL;
}

pdckpt_status pdk_meta_rec_index(const pdckpt_value *m, bool tuple, const char *source,
                                 pdk_meta_rec *out, pdckpt_error *err) {
    pdckpt_kind k = pdckpt_value_kind(m);
    memset(out, 0, sizeof *out);
    out->is_index = true;
    out->key = whole_string(index_field(m, tuple, 0));
    if ((tuple ? k != PDCKPT_KIND_TUPLE && k != PDCKPT_KIND_LIST : k != PDCKPT_KIND_DICT) ||
        (tuple && pdckpt_value_len(m) < 2) || !out->key)
        return bad_at(source, err, "storage_metadata items (LocalTensorIndex, file name)");
    out->has_replica = pdckpt_value_get_int(index_field(m, tuple, 4), &out->replica);
    if (!out->has_replica) out->replica = 0; /* None (or absent): the only copy */
    int32_t n = -1;
    PDK_TRY(get_ints(source, err, index_field(m, tuple, 1), &n, out->dims,
                     "a LocalTensorIndex offset"));
    out->n_dims = n;
    const pdckpt_value *shape = index_field(m, tuple, 5);
    out->has_shape = shape && pdckpt_value_kind(shape) != PDCKPT_KIND_NONE;
    if (out->has_shape)
        PDK_TRY(get_ints(source, err, shape, &n, out->dims + n, "a LocalTensorIndex local_shape"));
    return get_flat(source, err, index_field(m, tuple, 2), index_field(m, tuple, 3), out);
}

/* ---- the index ---- */

struct pdk_meta_builder {
    const char     *source;
    pdckpt_error   *err;
    pdk_meta_index *ix;
    pdk_piece     **table; /* (key, offset) -> piece, open addressing */
    const char    **table_keys;
    size_t          n_slots;
    size_t         *file_slots; /* file name -> index + 1, open addressing */
    size_t          n_file_slots;
    uint64_t        max_flat_bytes; /* what the flattened pieces' boxes may take */
    pdk_meta_list  *list;           /* NULL: pieces and entries are not kept as listed */
};

static pdckpt_status bad(pdk_meta_builder *r, const char *what) {
    return bad_at(r->source, r->err, what);
}

/* ---- the list (pdk_meta_build_keep) ---- */

static bool room(void **items, size_t *cap, size_t n, size_t more, size_t size) {
    if (n + more <= *cap) return true;
    size_t want = *cap ? *cap : 256;
    while (want < n + more) want *= 2;
    void *grown = realloc(*items, want * size);
    if (!grown) return false;
    *items = grown, *cap = want;
    return true;
}

/* Appends a piece (entry: false) or an entry of key `key` from record `m`. */
static pdckpt_status keep_item(pdk_meta_builder *r, bool entry, size_t key, size_t file,
                               const pdk_meta_rec *m, const int64_t *shape) {
    pdk_meta_list  *l = r->list;
    size_t          n = (size_t)m->n_dims, *len = entry ? &l->n_entries : &l->n_pieces;
    pdk_meta_item **items = entry ? &l->entries : &l->pieces;
    if (!room((void **)items, entry ? &l->cap_entries : &l->cap_pieces, *len, 1, sizeof **items) ||
        !room((void **)&l->dims, &l->cap_dims, l->n_dims, 2 * n, sizeof *l->dims))
        return pdk_fail_nomem(r->err, "metadata listing");
    (*items)[(*len)++] =
        (pdk_meta_item){key,           file,           l->n_dims,     m->n_dims,   m->flat,
                        shape != NULL, m->has_replica, m->flat_begin, m->flat_end, m->replica};
    memcpy(l->dims + l->n_dims, m->dims, n * sizeof *l->dims);
    if (shape) memcpy(l->dims + l->n_dims + n, shape, n * sizeof *l->dims);
    l->n_dims += (shape ? 2 : 1) * n;
    return PDCKPT_OK;
}

void pdk_meta_list_free(pdk_meta_list *l) {
    bool keep_pieces = l->keep_pieces;
    free(l->pieces);
    free(l->entries);
    free(l->dims);
    pdckpt_value_free(l->flat_mapping);
    memset(l, 0, sizeof *l);
    l->keep_pieces = keep_pieces;
}

uint64_t pdk_meta_list_cost(const pdk_meta_list *l) {
    return (uint64_t)(l->cap_pieces + l->cap_entries) * sizeof(pdk_meta_item) +
           (uint64_t)l->cap_dims * sizeof *l->dims;
}

void pdk_meta_build_keep(pdk_meta_builder *b, pdk_meta_list *list) {
    if (b) b->list = list;
}

/* ---- pieces ---- */

static pdckpt_status add_piece(pdk_meta_builder *r, pdk_key_meta *km, const pdk_meta_rec *m,
                               pdk_piece *p) {
    int32_t        n = m->n_dims;
    const int64_t *off = m->dims, *shape = m->dims + n, *global = m->dims + 2 * n;
    if (m->dtype == PDCKPT_DTYPE_INVALID) return bad(r, "a known dtype name");
    p->flat = m->flat, p->flat_begin = m->flat_begin, p->flat_end = m->flat_end;
    if (km->n_pieces == 0) {
        km->dtype = m->dtype;
        km->n_dims = n;
        km->global_shape = calloc((size_t)n + 1, sizeof *km->global_shape);
        if (!km->global_shape) return pdk_fail_nomem(r->err, "metadata");
        if (m->has_global) memcpy(km->global_shape, global, (size_t)n * sizeof *global);
    }
    if (m->dtype != km->dtype || n != km->n_dims ||
        (m->has_global && memcmp(global, km->global_shape, (size_t)n * sizeof *global) != 0))
        return pdk_fail(r->err, PDCKPT_ERR_FORMAT, r->source, -1,
                        "metadata: pieces of '%s' disagree on dtype or global shape", km->key);
    for (int32_t d = 0; d < n && !m->has_global; d++) /* old metadata: the extent of the pieces */
        if (off[d] + shape[d] > km->global_shape[d]) km->global_shape[d] = off[d] + shape[d];
    p->offset = malloc(2 * ((size_t)n + 1) * sizeof *p->offset);
    if (!p->offset) return pdk_fail_nomem(r->err, "metadata");
    p->shape = p->offset + n + 1;
    memcpy(p->offset, off, (size_t)n * sizeof *off);
    memcpy(p->shape, shape, (size_t)n * sizeof *shape);
    km->n_pieces++;
    if (!r->list || !r->list->keep_pieces) return PDCKPT_OK;
    return keep_item(r, false, (size_t)(km - r->ix->keys), 0, m, shape);
}

pdckpt_status pdk_meta_build_begin(const char *source, size_t n_keys, pdk_meta_index *out,
                                   pdk_meta_builder **b, pdckpt_error *err) {
    memset(out, 0, sizeof *out);
    if (!(*b = calloc(1, sizeof **b))) return pdk_fail_nomem(err, "metadata index");
    **b = (pdk_meta_builder){source, err, out, NULL, NULL, 0, NULL, 0, UINT64_MAX};
    out->keys = calloc(n_keys + 1, sizeof *out->keys);
    return out->keys ? PDCKPT_OK : pdk_fail_nomem(err, "metadata index");
}

pdckpt_status pdk_meta_build_key(pdk_meta_builder *r, const pdckpt_value *key, size_t n_pieces,
                                 pdk_meta_piece_fn piece, void *ctx) {
    pdk_key_meta *km = &r->ix->keys[r->ix->n_keys++];
    const char   *k = whole_string(key);
    if (!k || pdckpt_value_kind(key) != PDCKPT_KIND_STRING) return bad(r, "string keys");
    if (n_pieces == 0) return bad(r, "a non-empty list of pieces per key");
    if (!(km->key = strdup(k))) return pdk_fail_nomem(r->err, "metadata");
    km->pieces = calloc(n_pieces, sizeof *km->pieces);
    if (!km->pieces) return pdk_fail_nomem(r->err, "metadata");
    for (size_t i = 0; i < n_pieces; i++) {
        const pdk_meta_rec *m = piece(ctx, i, r->err);
        if (!m) return r->err->status;
        PDK_TRY(add_piece(r, km, m, &km->pieces[i]));
    }
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

static size_t find_slot(pdk_meta_builder *r, const char *key, int32_t n, const int64_t *off,
                        int64_t flat) {
    size_t mask = r->n_slots - 1;
    for (size_t i = (size_t)piece_hash(key, n, off, flat) & mask;; i = (i + 1) & mask) {
        if (!r->table[i]) return i;
        if (strcmp(r->table_keys[i], key) == 0 && r->table[i]->flat_begin == flat &&
            memcmp(r->table[i]->offset, off, (size_t)n * sizeof *off) == 0)
            return i;
    }
}

static pdckpt_status build_table(pdk_meta_builder *r) {
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

static pdckpt_status intern_file(pdk_meta_builder *r, const char *name, pdk_piece *p,
                                 size_t *file_ix) {
    pdk_meta_index *ix = r->ix;
    size_t          n = strlen(name), mask = r->n_file_slots - 1, i;
    if (n == 0 || n > 255 || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return pdk_fail(r->err, PDCKPT_ERR_FORMAT, r->source, -1,
                        "metadata: expected plain file names inside the checkpoint directory, "
                        "found '%s'",
                        name);
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
    *file_ix = r->file_slots[i] - 1;
    if (!p) return PDCKPT_OK;
    p->file_ix = r->file_slots[i] - 1;
    p->file = ix->files[p->file_ix];
    return PDCKPT_OK;
}

pdckpt_status pdk_meta_build_storage(pdk_meta_builder *r, size_t n_entries) {
    PDK_TRY(pdk_meta_index_keys(r->ix, r->source, r->err));
    PDK_TRY(build_table(r));
    r->n_file_slots = 16;
    while (r->n_file_slots < n_entries * 2) r->n_file_slots *= 2;
    if (!(r->file_slots = calloc(r->n_file_slots, sizeof *r->file_slots)))
        return pdk_fail_nomem(r->err, "metadata index");
    return PDCKPT_OK;
}

const char *pdk_meta_file_name(const pdckpt_value *file) {
    return whole_string(file);
}

pdckpt_status pdk_meta_build_entry(pdk_meta_builder *r, const pdk_meta_rec *index,
                                   const char *name) {
    if (!name) return bad(r, "storage_metadata items (LocalTensorIndex, file name)");
    const pdk_key_meta *km = pdk_meta_find(r->ix, index->key);
    bool                extra = index->replica > 0; /* never read, but its file is named */
    if (km && index->n_dims != km->n_dims) return bad(r, "a LocalTensorIndex offset");
    size_t s = km ? find_slot(r, index->key, km->n_dims, index->dims, index->flat_begin) : 0;
    if (!km || (!extra && !r->table[s]))
        return pdk_fail(r->err, PDCKPT_ERR_FORMAT, r->source, -1,
                        "metadata: storage_metadata names a piece of '%s' that "
                        "state_dict_metadata does not have",
                        index->key);
    size_t file = 0;
    PDK_TRY(intern_file(r, name, extra ? NULL : r->table[s], &file));
    if (!r->list) return PDCKPT_OK;
    /* its local_shape; Paddle 2.6's index has none: its piece's */
    const int64_t *shape = index->has_shape ? index->dims + index->n_dims
                           : !extra         ? r->table[s]->shape
                                            : NULL;
    return keep_item(r, true, (size_t)(km - r->ix->keys), file, index, shape);
}

static pdckpt_status check_files(pdk_meta_builder *r) {
    for (size_t k = 0; k < r->ix->n_keys; k++)
        for (size_t i = 0; i < r->ix->keys[k].n_pieces; i++)
            if (!r->ix->keys[k].pieces[i].file)
                return pdk_fail(r->err, PDCKPT_ERR_FORMAT, r->source, -1,
                                "metadata: a piece of '%s' has no file in storage_metadata",
                                r->ix->keys[k].key);
    return PDCKPT_OK;
}

pdckpt_status pdk_meta_build_end(pdk_meta_builder *r, pdckpt_status st) {
    if (!r) return st;
    if (st == PDCKPT_OK) st = check_files(r);
    if (st == PDCKPT_OK) st = pdk_meta_unflatten(r->ix, r->max_flat_bytes, r->source, r->err);
    if (st == PDCKPT_OK) st = pdk_meta_index_sort(r->ix, r->source, r->err);
    free(r->table);
    free(r->table_keys);
    free(r->file_slots);
    if (st != PDCKPT_OK) pdk_meta_index_free(r->ix);
    free(r);
    return st;
}

void pdk_meta_build_limit(pdk_meta_builder *b, uint64_t max_bytes) {
    if (b) b->max_flat_bytes = max_bytes;
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
