/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_meta.c — the sharded checkpoint's metadata (spec §5.1-5.2): built as a value tree with the
 * fields of Paddle's Metadata dataclass (state_dict_metadata, storage_metadata, flat_mapping),
 * read back into an index of every key's pieces and the file holding each, and stored on disk
 * as Paddle stores it: "<id>.metadata", a protocol-4 pickle of
 * paddle.distributed.flex_checkpoint.dcp.metadata.Metadata (checked against Paddle 3.3.1's
 * save_state_dict).  Every dataclass is pickled as NEWOBJ with no arguments plus BUILD of its
 * field dict; storage_metadata is a dict keyed by LocalTensorIndex objects.
 *
 * In memory, LocalTensorMetadata is its field dict and storage_metadata a list of
 * (LocalTensorIndex fields as a tuple in declaration order, file) items (dist_meta_tree.c); the
 * two functions below convert between that tree and Paddle's objects.  Reading never runs
 * anything: the pickle VM returns classes as opaque objects, and only these three names from
 * Paddle's two metadata modules are accepted.
 */
#include "pdk_distcp.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define META_MODULE     PDK_META_MODULE
#define META_MODULE_OLD PDK_META_MODULE_OLD

static const char *const index_fields[] = {"tensor_key",      "global_offset", "is_flattened",
                                           "flattened_range", "replica_id",    "local_shape"};
enum { N_INDEX_FIELDS = sizeof index_fields / sizeof index_fields[0] };

pdckpt_status pdk_meta_path(const char *dir, int64_t id, char *out, size_t cap, pdckpt_error *err) {
    char name[64];
    snprintf(name, sizeof name, "%lld" PDK_META_SUFFIX, (long long)id);
    return pdk_path_join(dir, name, out, cap, err);
}

/* ---- tree -> Paddle's objects -> pickle ---- */

/* cls.__new__(cls) then BUILD(state): how pickle stores a dataclass.  `state` is transferred;
 * NULL when out of memory. */
static pdckpt_value *dataclass(const pdckpt_allocator *a, const char *name, pdckpt_value *state) {
    pdckpt_value *args = state ? pdckpt_value_new_container(a, PDCKPT_KIND_TUPLE) : NULL;
    if (!args) {
        pdckpt_value_free(state);
        return NULL;
    }
    return pdckpt_value_new_object(a, PDCKPT_OBJECT_NEWOBJ, META_MODULE, name, args, state);
}

static pdckpt_value *tensor_metadata_to_paddle(const pdckpt_allocator *a, const pdckpt_value *sdm) {
    pdckpt_value *out = pdckpt_value_new_container(a, PDCKPT_KIND_DICT);
    for (size_t i = 0; out && i < pdckpt_value_len(sdm); i++) {
        const pdckpt_value *pieces = pdckpt_value_at(sdm, i);
        pdckpt_value       *list = pdckpt_value_new_container(a, PDCKPT_KIND_LIST);
        for (size_t j = 0; list && j < pdckpt_value_len(pieces); j++) {
            pdckpt_value *m = pdckpt_value_retain((pdckpt_value *)pdckpt_value_at(pieces, j));
            if (pdckpt_value_append(list, dataclass(a, "LocalTensorMetadata", m), NULL) !=
                PDCKPT_OK)
                list = (pdckpt_value_free(list), NULL);
        }
        pdckpt_value *key = pdckpt_value_retain((pdckpt_value *)pdckpt_dict_key_at(sdm, i));
        if (!list || pdckpt_dict_set_value(out, key, list, NULL) != PDCKPT_OK)
            out = (pdckpt_value_free(out), NULL);
    }
    return out;
}

/* (index tuple, file) items -> {LocalTensorIndex(...): file}. */
static pdckpt_value *storage_to_paddle(const pdckpt_allocator *a, const pdckpt_value *storage) {
    pdckpt_value *out = pdckpt_value_new_container(a, PDCKPT_KIND_DICT);
    for (size_t i = 0; out && i < pdckpt_value_len(storage); i++) {
        const pdckpt_value *item = pdckpt_value_at(storage, i);
        const pdckpt_value *index = pdckpt_value_at(item, 0);
        pdckpt_value       *fields = pdckpt_value_new_container(a, PDCKPT_KIND_DICT);
        for (size_t f = 0; fields && f < N_INDEX_FIELDS; f++) {
            pdckpt_value *v = pdckpt_value_retain((pdckpt_value *)pdckpt_value_at(index, f));
            if (!v || pdckpt_dict_set(fields, index_fields[f], v, NULL) != PDCKPT_OK)
                fields = (pdckpt_value_free(fields), NULL);
        }
        pdckpt_value *key = dataclass(a, "LocalTensorIndex", fields);
        pdckpt_value *file = pdckpt_value_retain((pdckpt_value *)pdckpt_value_at(item, 1));
        if (!key || pdckpt_dict_set_value(out, key, file, NULL) != PDCKPT_OK)
            out = (pdckpt_value_free(out), NULL);
    }
    return out;
}

static pdckpt_value *metadata_to_paddle(const pdckpt_allocator *a, const pdckpt_value *meta) {
    pdckpt_value *state = pdckpt_value_new_container(a, PDCKPT_KIND_DICT);
    pdckpt_value *parts[3] = {
        tensor_metadata_to_paddle(a, pdckpt_dict_get(meta, "state_dict_metadata")),
        storage_to_paddle(a, pdckpt_dict_get(meta, "storage_metadata")),
        pdckpt_value_retain((pdckpt_value *)pdckpt_dict_get(meta, "flat_mapping"))};
    static const char *const names[3] = {"state_dict_metadata", "storage_metadata", "flat_mapping"};
    bool                     ok = state != NULL;
    for (int i = 0; i < 3; i++) /* dict_set takes the part even when it fails */
        ok = ok ? pdckpt_dict_set(state, names[i], parts[i], NULL) == PDCKPT_OK
                : (pdckpt_value_free(parts[i]), false);
    if (!ok) {
        pdckpt_value_free(state);
        return NULL;
    }
    return dataclass(a, "Metadata", state);
}

pdckpt_status pdk_meta_encode(const pdckpt_value *meta, const pdckpt_allocator *a, pdk_blob *out,
                              pdckpt_error *err) {
    pdckpt_value *paddle = metadata_to_paddle(a, meta);
    if (!paddle) return pdk_fail_nomem(err, "metadata");
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_PICKLE;
    so.protocol = 4; /* what Paddle's pickle.dump writes */
    void         *bytes = NULL;
    size_t        len = 0;
    pdckpt_status st = pdk_save_bytes(paddle, &so, &bytes, &len, err);
    pdckpt_value_free(paddle);
    if (st == PDCKPT_OK) pdk_blob_put(out, bytes, len);
    pdckpt_free(NULL, bytes, len);
    return st != PDCKPT_OK ? st : pdk_blob_check(out, err, "metadata");
}

/* ---- pickle -> Paddle's objects -> tree ---- */

/* The field dict of a pickled `name` dataclass from one of Paddle's metadata modules, or NULL. */
static const pdckpt_value *fields_of(const pdckpt_value *v, const char *name) {
    if (pdckpt_value_kind(v) != PDCKPT_KIND_OBJECT || strcmp(pdckpt_object_name(v), name) != 0 ||
        (strcmp(pdckpt_object_module(v), META_MODULE) != 0 &&
         strcmp(pdckpt_object_module(v), META_MODULE_OLD) != 0))
        return NULL;
    const pdckpt_value *state = pdckpt_object_state(v);
    return pdckpt_value_kind(state) == PDCKPT_KIND_DICT ? state : NULL;
}

static pdckpt_status not_paddle(const char *source, const char *what, pdckpt_error *err) {
    return pdk_fail(err, PDCKPT_ERR_FORMAT, source, -1, "metadata: expected %s", what);
}

/* A piece of Paddle 2.6's LocalTensorMetadata (global_offset, local_shape): a fresh dict the
 * dtype and global shape are added to once the data files have been seen. */
static pdckpt_value *piece_v26(const pdckpt_value *m, pdckpt_error *err) {
    pdckpt_value *copy = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    for (size_t i = 0; copy && i < pdckpt_value_len(m); i++)
        if (pdckpt_dict_set_value(
                copy, pdckpt_value_retain((pdckpt_value *)pdckpt_dict_key_at(m, i)),
                pdckpt_value_retain((pdckpt_value *)pdckpt_value_at(m, i)), err) != PDCKPT_OK)
            copy = (pdckpt_value_free(copy), NULL);
    if (!copy && err->status == PDCKPT_OK) pdk_fail_nomem(err, "metadata");
    return copy;
}

static pdckpt_status tensor_metadata_from_paddle(const pdckpt_value *in, const char *source,
                                                 pdckpt_value *out, bool *v26, pdckpt_error *err) {
    if (pdckpt_value_kind(in) != PDCKPT_KIND_DICT)
        return not_paddle(source, "state_dict_metadata as a dict", err);
    for (size_t i = 0; i < pdckpt_value_len(in); i++) {
        const pdckpt_value *pieces = pdckpt_value_at(in, i);
        if (pdckpt_value_kind(pieces) != PDCKPT_KIND_LIST)
            return not_paddle(source, "a list of LocalTensorMetadata per key", err);
        pdckpt_value *list = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST);
        if (!list) return pdk_fail_nomem(err, "metadata");
        PDK_TRY(pdckpt_dict_set_value(
            out, pdckpt_value_retain((pdckpt_value *)pdckpt_dict_key_at(in, i)), list, err));
        for (size_t j = 0; j < pdckpt_value_len(pieces); j++) {
            const pdckpt_value *m = fields_of(pdckpt_value_at(pieces, j), "LocalTensorMetadata");
            if (!m) return not_paddle(source, "LocalTensorMetadata objects", err);
            bool          old = !pdckpt_dict_get(m, "dtype");
            pdckpt_value *piece = old ? piece_v26(m, err) : pdckpt_value_retain((pdckpt_value *)m);
            if (!piece) return err->status;
            *v26 |= old;
            PDK_TRY(pdckpt_value_append(list, piece, err));
        }
    }
    return PDCKPT_OK;
}

/* Paddle 2.6's LocalTensorIndex has no local_shape: the piece of `key` at `offset` has it. */
static const pdckpt_value *local_shape_of(const pdckpt_value *sdm, const pdckpt_value *fields) {
    const pdckpt_value *key = pdckpt_dict_get(fields, "tensor_key");
    const pdckpt_value *offset = pdckpt_dict_get(fields, "global_offset");
    const char         *k = pdckpt_value_get_string(key, NULL);
    const pdckpt_value *pieces = k ? pdckpt_dict_get(sdm, k) : NULL;
    for (size_t j = 0; offset && j < pdckpt_value_len(pieces); j++) {
        const pdckpt_value *m = pdckpt_value_at(pieces, j);
        if (pdckpt_value_equal(pdckpt_dict_get(m, "global_offset"), offset))
            return pdckpt_dict_get(m, "local_shape");
    }
    return NULL;
}

/* {LocalTensorIndex: file} -> [(fields in declaration order, file)]; absent fields (older
 * Paddle had fewer) are None, but local_shape comes from the key's piece. */
static pdckpt_status storage_from_paddle(const pdckpt_value *in, const char *source,
                                         const pdckpt_value *sdm, pdckpt_value *out,
                                         pdckpt_error *err) {
    if (pdckpt_value_kind(in) != PDCKPT_KIND_DICT)
        return not_paddle(source, "storage_metadata as a dict", err);
    for (size_t i = 0; i < pdckpt_value_len(in); i++) {
        const pdckpt_value *fields = fields_of(pdckpt_dict_key_at(in, i), "LocalTensorIndex");
        if (!fields) return not_paddle(source, "LocalTensorIndex keys in storage_metadata", err);
        pdckpt_value *index = pdckpt_value_new_container(NULL, PDCKPT_KIND_TUPLE);
        pdckpt_value *item = pdckpt_value_new_container(NULL, PDCKPT_KIND_TUPLE);
        if (!item || pdckpt_value_append(out, item, err) != PDCKPT_OK || !index ||
            pdckpt_value_append(item, index, err) != PDCKPT_OK) {
            pdckpt_value_free(index);
            return pdk_fail_nomem(err, "metadata");
        }
        for (size_t f = 0; f < N_INDEX_FIELDS; f++) {
            const pdckpt_value *v = pdckpt_dict_get(fields, index_fields[f]);
            if (!v && strcmp(index_fields[f], "local_shape") == 0) v = local_shape_of(sdm, fields);
            pdckpt_value *copy =
                v ? pdckpt_value_retain((pdckpt_value *)v) : pdckpt_value_new_none(NULL);
            if (!copy) return pdk_fail_nomem(err, "metadata");
            PDK_TRY(pdckpt_value_append(index, copy, err));
        }
        PDK_TRY(pdckpt_value_append(
            item, pdckpt_value_retain((pdckpt_value *)pdckpt_value_at(in, i)), err));
    }
    return PDCKPT_OK;
}

/* ---- Paddle 2.6: dtypes only in the data files ---- */

/* paddle.distributed.checkpoint in Paddle 2.6 recorded per piece only (global_offset,
 * local_shape), and per LocalTensorIndex only (tensor_key, global_offset): a key's dtype is in
 * the data files alone (Paddle 2.6's load_state_dict takes it from the tensor it loads into).
 * Such metadata is completed as Paddle 2.6 would find it: each key's dtype from the data file
 * holding its first piece in storage order (mapped, only its pickle opcodes read), its global
 * shape the extent of its pieces.  The files are those the metadata names, inside the checkpoint
 * directory.  Each file is opened at most once, whatever order the metadata lists pieces in (a
 * bounded cache reopened files a hostile order cycles through, once per piece): the keys are
 * grouped by file first, so the lookup costs one parse per data file named. */
typedef struct v26_need {
    const char   *key, *file;
    pdckpt_value *pieces;
    size_t        order; /* in storage_metadata */
} v26_need;

static int by_key(const void *x, const void *y) {
    const v26_need *a = x, *b = y;
    int             c = strcmp(a->key, b->key);
    return c ? c : (a->order > b->order) - (a->order < b->order);
}

static int by_file(const void *x, const void *y) {
    const v26_need *a = x, *b = y;
    int             c = strcmp(a->file, b->file);
    return c ? c : (a->order > b->order) - (a->order < b->order);
}

/* dtype and global_shape of every piece of `pieces` (a key of the old form). */
static pdckpt_status v26_fill_key(pdckpt_value *pieces, pdckpt_dtype dtype, pdckpt_error *err) {
    int64_t global[PDCKPT_MAX_DIMS] = {0};
    size_t  n = 0;
    for (size_t j = 0; j < pdckpt_value_len(pieces); j++) {
        const pdckpt_value *m = pdckpt_value_at(pieces, j);
        const pdckpt_value *off = pdckpt_dict_get(m, "global_offset");
        const pdckpt_value *shape = pdckpt_dict_get(m, "local_shape");
        n = pdckpt_value_len(shape) < PDCKPT_MAX_DIMS ? pdckpt_value_len(shape) : PDCKPT_MAX_DIMS;
        for (size_t d = 0; d < n; d++) {
            int64_t o = 0, s = 0;
            pdckpt_value_get_int(pdckpt_value_at(off, d), &o);
            pdckpt_value_get_int(pdckpt_value_at(shape, d), &s);
            if (o >= 0 && s >= 0 && o <= INT64_MAX / 2 && s <= INT64_MAX / 2 && o + s > global[d])
                global[d] = o + s; /* bad values are reported by the index reader */
        }
    }
    for (size_t j = 0; j < pdckpt_value_len(pieces); j++) {
        pdckpt_value *m = pdckpt_value_at_mut(pieces, j), *g;
        PDK_TRY(pdckpt_dict_set(
            m, "dtype", pdckpt_value_new_string(NULL, pdckpt_dtype_name(dtype), SIZE_MAX), err));
        g = pdckpt_value_new_container(NULL, PDCKPT_KIND_TUPLE);
        for (size_t d = 0; g && d < n; d++)
            if (pdckpt_value_append(g, pdckpt_value_new_int(NULL, global[d]), err) != PDCKPT_OK)
                g = (pdckpt_value_free(g), NULL);
        if (!g) return pdk_fail_nomem(err, "metadata");
        PDK_TRY(pdckpt_dict_set(m, "global_shape", g, err));
    }
    return PDCKPT_OK;
}

/* The keys still without a dtype, one entry each (its first piece in storage order), grouped
 * by data file. */
static pdckpt_status v26_needs(pdckpt_value *meta, v26_need **out, size_t *n_out,
                               pdckpt_error *err) {
    pdckpt_value       *sdm = pdckpt_dict_get_mut(meta, "state_dict_metadata");
    const pdckpt_value *storage = pdckpt_dict_get(meta, "storage_metadata");
    size_t              n = 0, kept = 0, total = pdckpt_value_len(storage);
    v26_need           *need = calloc(total ? total : 1, sizeof *need);
    if (!need) return pdk_fail_nomem(err, "metadata");
    for (size_t i = 0; i < total; i++) {
        const pdckpt_value *item = pdckpt_value_at(storage, i);
        const char         *key =
            pdckpt_value_get_string(pdckpt_value_at(pdckpt_value_at(item, 0), 0), NULL);
        const char   *file = pdckpt_value_get_string(pdckpt_value_at(item, 1), NULL);
        pdckpt_value *pieces = key ? pdckpt_dict_get_mut(sdm, key) : NULL;
        if (!file || !pieces || pdckpt_value_len(pieces) == 0 ||
            pdckpt_dict_get(pdckpt_value_at(pieces, 0), "dtype"))
            continue; /* done, or not this form: the index reader reports what is missing */
        need[n++] = (v26_need){key, file, pieces, i};
    }
    qsort(need, n, sizeof *need, by_key);
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(need[i].key, need[kept - 1].key) != 0) need[kept++] = need[i];
    qsort(need, kept, sizeof *need, by_file);
    *out = need;
    *n_out = kept;
    return PDCKPT_OK;
}

/* The dtypes of the keys need[0..n) whose first piece is in the data file need[0].file. */
static pdckpt_status v26_fill_file(const char *dir, const v26_need *need, size_t n,
                                   const char *source, pdckpt_error *err) {
    const char *name = need[0].file;
    if (!*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return not_paddle(source, "data file names inside the checkpoint directory", err);
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT_WITH(true);
    pdckpt_value       *tree = NULL;
    lo.format = PDCKPT_FORMAT_PICKLE;
    PDK_TRY(pdk_load_beneath(dir, name, &lo, &tree, err));
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 0; i < n && st == PDCKPT_OK; i++) {
        pdckpt_tensor_view t;
        if (!pdckpt_tensor_get_memory(pdckpt_dict_get(tree, need[i].key), &t, NULL))
            st = pdk_fail(err, PDCKPT_ERR_FORMAT, source, -1,
                          "metadata: '%s' has no dtype and its data file %s holds no "
                          "tensor under that key",
                          need[i].key, name);
        else
            st = v26_fill_key(need[i].pieces, t.dtype, err);
    }
    pdckpt_value_free(tree);
    return st;
}

static pdckpt_status v26_fill(const char *dir, pdckpt_value *meta, const char *source,
                              pdckpt_error *err) {
    v26_need *need = NULL;
    size_t    n = 0;
    PDK_TRY(v26_needs(meta, &need, &n, err));
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 0, j; i < n && st == PDCKPT_OK; i = j) {
        for (j = i + 1; j < n && strcmp(need[j].file, need[i].file) == 0;) j++;
        st = v26_fill_file(dir, need + i, j - i, source, err);
    }
    free(need);
    return st;
}

pdckpt_status pdk_meta_complete_v26(pdckpt_value *meta, const char *source, pdckpt_error *err) {
    size_t n = strlen(source), k = strlen(PDK_META_SUFFIX);
    if (n <= k || strcmp(source + n - k, PDK_META_SUFFIX) != 0) /* bytes, not a file on disk */
        return not_paddle(source,
                          "dtypes (Paddle 2.6 metadata keeps them in the data files, "
                          "and these bytes are not a metadata file beside them)",
                          err);
    char        dir[4096];
    const char *slash = strrchr(source, '/');
    int         len = !slash ? 1 : slash == source ? 1 : (int)(slash - source);
    snprintf(dir, sizeof dir, "%.*s", len, slash ? source : ".");
    return v26_fill(dir, meta, source, err);
}

static pdckpt_status metadata_from_paddle(const pdckpt_value *paddle, const char *source,
                                          pdckpt_value *out, pdckpt_error *err) {
    const pdckpt_value *state = fields_of(paddle, "Metadata");
    if (!state) return not_paddle(source, "a pickled " META_MODULE ".Metadata", err);
    pdckpt_value       *sdm = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_value       *storage = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST);
    const pdckpt_value *mapping = pdckpt_dict_get(state, "flat_mapping");
    pdckpt_value       *flat = mapping ? pdckpt_value_retain((pdckpt_value *)mapping)
                                       : pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    if (!sdm || !storage || !flat) {
        pdckpt_value_free(sdm);
        pdckpt_value_free(storage);
        pdckpt_value_free(flat);
        return pdk_fail_nomem(err, "metadata");
    }
    PDK_TRY(pdckpt_dict_set(out, "state_dict_metadata", sdm, err));
    PDK_TRY(pdckpt_dict_set(out, "storage_metadata", storage, err));
    PDK_TRY(pdckpt_dict_set(out, "flat_mapping", flat, err));
    bool          v26 = false;
    pdckpt_status st = tensor_metadata_from_paddle(pdckpt_dict_get(state, "state_dict_metadata"),
                                                   source, sdm, &v26, err);
    if (st == PDCKPT_OK)
        st = storage_from_paddle(pdckpt_dict_get(state, "storage_metadata"), source, sdm, storage,
                                 err);
    if (st == PDCKPT_OK && v26) st = pdk_meta_complete_v26(out, source, err);
    return st;
}

pdckpt_status pdk_meta_decode(const uint8_t *data, size_t len, const char *source,
                              pdckpt_value **meta, pdckpt_error *err) {
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.format = PDCKPT_FORMAT_PICKLE;
    lo.zero_copy = false;
    /* Metadata is all small objects: it unpickles to ~30 times its size, beyond the loader's
     * default budget (4x + 64 MiB) once a checkpoint has ~15,000 pieces.  The budget scales with
     * the file instead; the file itself is bounded by PDK_META_MAX_BYTES. */
    lo.max_alloc_bytes = (uint64_t)len * PDK_META_ALLOC_FACTOR + PDK_META_ALLOC_BASE;
    pdckpt_value *paddle = NULL;
    pdckpt_status st = pdk_load_bytes(data, len, &lo, &paddle, NULL, err);
    if (st != PDCKPT_OK) { /* the pickle reader names "<memory>": name the file instead */
        snprintf(err->source, sizeof err->source, "%s", source);
        return st;
    }
    *meta = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    st = *meta ? metadata_from_paddle(paddle, source, *meta, err) : pdk_fail_nomem(err, "metadata");
    pdckpt_value_free(paddle);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(*meta);
        *meta = NULL;
    }
    return st;
}

static bool parse_uint(const char *s, size_t len, int64_t *out) {
    if (len == 0 || len > 18) return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static const struct {
    const char   *ext;
    pdckpt_format format;
} data_exts[] = {{".safetensors", PDCKPT_FORMAT_SAFETENSORS},
                 {".distcp", PDCKPT_FORMAT_AUTO},
                 {PDK_NAME_PDIPARAMS, PDCKPT_FORMAT_COMBINED},
                 {".vars", PDCKPT_FORMAT_VARS_DIR}};

const char *pdk_data_file_ext(pdckpt_format format) {
    for (size_t i = 0; i < sizeof data_exts / sizeof data_exts[0]; i++)
        if (data_exts[i].format == format) return data_exts[i].ext;
    return format == PDCKPT_FORMAT_PICKLE ? ".distcp" : NULL;
}

pdckpt_format pdk_data_file_format(const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof data_exts / sizeof data_exts[0]; i++) {
        size_t k = strlen(data_exts[i].ext);
        if (n > k && strcmp(name + n - k, data_exts[i].ext) == 0) return data_exts[i].format;
    }
    return PDCKPT_FORMAT_AUTO;
}

bool pdk_parse_ckpt_name(const char *name, pdk_ckpt_name *out) {
    const char *dot = strchr(name, '.');
    const char *us = strchr(name, '_');
    memset(out, 0, sizeof *out);
    if (!dot) return false;
    if (strcmp(dot, PDK_META_SUFFIX) == 0 || strcmp(dot, PDK_SIDECAR_SUFFIX) == 0) {
        out->is_meta = strcmp(dot, PDK_META_SUFFIX) == 0;
        out->is_index = !out->is_meta;
        out->number = -1;
        return parse_uint(name, (size_t)(dot - name), &out->id);
    }
    if (!us || us > dot || !parse_uint(name, (size_t)(us - name), &out->number) ||
        !parse_uint(us + 1, (size_t)(dot - us - 1), &out->id))
        return false;
    for (size_t i = 0; i < sizeof data_exts / sizeof data_exts[0]; i++)
        if (strcmp(dot, data_exts[i].ext) == 0) {
            out->is_dir = data_exts[i].format == PDCKPT_FORMAT_VARS_DIR;
            return true;
        }
    return false;
}

/* The id in "<rank>_<id><data ext>" or "<id>.metadata". */
static void scan_name(const char *name, int64_t *newest, int64_t *largest) {
    pdk_ckpt_name n;
    if (!pdk_parse_ckpt_name(name, &n)) return;
    if (n.is_meta && n.id > *newest) *newest = n.id;
    if (n.id > *largest) *largest = n.id;
}

pdckpt_status pdk_meta_scan(const char *dir, int64_t *newest_complete, int64_t *largest_seen,
                            pdckpt_error *err) {
    *newest_complete = *largest_seen = -1;
    DIR *d = opendir(dir);
    if (!d) return pdk_fail_sys(err, errno, dir, "open directory");
    struct dirent *de;
    while ((de = readdir(d)) != NULL) scan_name(de->d_name, newest_complete, largest_seen);
    closedir(d);
    return PDCKPT_OK;
}
