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
 * function below converts that tree into Paddle's objects.  Reading is dist_meta_read.c's (the
 * file straight into the index, and the listing the tree is rebuilt from): it never runs
 * anything, the pickle VM returns classes as opaque objects, and only these three names from
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
