/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sharded_load.c — loads a Hugging Face sharded checkpoint from its index file or the directory
 * holding it.  Each shard is read by its own format's loader (safetensors.c, the pickle reader),
 * so every check of a single file applies to every shard; this module adds what only the set can
 * check: the index's names stay inside the directory (symlinks included), every weight_map entry
 * is in the shard it names and every tensor of a shard is in the weight_map, for that shard.
 * The root is a DICT in weight_map order, tensors still pointing into their shards' mappings.
 */
#define _GNU_SOURCE
#include "pdk_sharded.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define METADATA_KEY "__metadata__"
#define INDEX_SUFFIX ".index.json"

const pdk_shard_kind pdk_shard_kind_safetensors = {
    PDCKPT_FORMAT_SAFETENSORS_SHARDED, ".safetensors", "model", &pdk_format_safetensors};
const pdk_shard_kind pdk_shard_kind_pickle = {PDCKPT_FORMAT_PICKLE_SHARDED, PDK_NAME_PDPARAMS,
                                              "model_state", &pdk_format_pickle};

static const pdk_shard_kind *kind_of(pdckpt_format id) {
    return id == PDCKPT_FORMAT_PICKLE_SHARDED ? &pdk_shard_kind_pickle
                                              : &pdk_shard_kind_safetensors;
}

/* True when `name` is "<something><ext>.index.json". */
static bool is_index_name(const char *name, const pdk_shard_kind *k) {
    size_t n = strlen(name), e = strlen(k->ext), s = strlen(INDEX_SUFFIX);
    return n > e + s && strcmp(name + n - s, INDEX_SUFFIX) == 0 &&
           strncmp(name + n - s - e, k->ext, e) == 0;
}

const pdk_format *pdk_sharded_for_index_name(const char *path) {
    if (is_index_name(path, &pdk_shard_kind_safetensors)) return &pdk_format_safetensors_sharded;
    if (is_index_name(path, &pdk_shard_kind_pickle)) return &pdk_format_pickle_sharded;
    return NULL;
}

/* The index inside directory `dir`: "<default prefix><ext>.index.json" when present (PaddleNLP
 * keeps optimizer.safetensors.index.json beside it), else the only "*<ext>.index.json".
 * Returns how many candidates there were; *name gets the chosen one (or the first two). */
static int find_index(const char *dir, const pdk_shard_kind *k, char *name, size_t cap) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    char preferred[256];
    snprintf(preferred, sizeof preferred, "%s%s%s", k->default_prefix, k->ext, INDEX_SUFFIX);
    int            count = 0;
    bool           has_preferred = false;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !is_index_name(de->d_name, k)) continue;
        if (strcmp(de->d_name, preferred) == 0) has_preferred = true;
        if (count == 0)
            snprintf(name, cap, "%s", de->d_name);
        else if (count == 1 && strlen(name) + strlen(de->d_name) + 8 < cap)
            strcat(strcat(name, "', '"), de->d_name);
        count++;
    }
    closedir(d);
    if (has_preferred) snprintf(name, cap, "%s", preferred);
    return has_preferred ? 1 : count;
}

/* A save that fits one shard is "<default prefix><ext>" alone, without an index (as
 * huggingface_hub writes it; from_pretrained reads it): `single` gets its path. */
static bool single_shard(const char *dir, const pdk_shard_kind *k, char *single, size_t cap) {
    struct stat st;
    return snprintf(single, cap, "%s/%s%s", dir, k->default_prefix, k->ext) < (int)cap &&
           stat(single, &st) == 0 && S_ISREG(st.st_mode);
}

static int sniff_dir_with(const char *path, const pdk_shard_kind *k) {
    char name[PATH_MAX + 600];
    if (find_index(path, k, name, sizeof name) > 0) return PDK_SNIFF_CERTAIN;
    return single_shard(path, k, name, sizeof name) ? PDK_SNIFF_LIKELY : PDK_SNIFF_NO;
}

static int sniff_dir_safetensors(const char *path) {
    return sniff_dir_with(path, &pdk_shard_kind_safetensors);
}

static int sniff_dir_pickle(const char *path) {
    return sniff_dir_with(path, &pdk_shard_kind_pickle);
}

typedef struct shard_ctx {
    const pdk_shard_kind      *kind;
    const pdckpt_load_options *opts;
    pdckpt_error              *err;
    char                       dir[PATH_MAX];   /* as the caller named it, for messages */
    char                       index[PATH_MAX]; /* the index file */
    char                       real_dir[PATH_MAX];
    char                       blobs[PATH_MAX]; /* a Hugging Face cache's blobs/, or "" */
    pdk_index                  ix;
    pdckpt_value             **slots;    /* per weight_map entry, from its shard */
    pdckpt_value              *metadata; /* the first shard's __metadata__ */
} shard_ctx;

/* Splits `path` (the index file, or a directory holding one) into cx->dir and cx->index. */
static pdckpt_status locate(shard_ctx *cx, const char *path) {
    char name[600];
    if (!pdk_is_directory(path)) {
        char copy[PATH_MAX];
        snprintf(copy, sizeof copy, "%s", path);
        snprintf(cx->dir, sizeof cx->dir, "%s", dirname(copy));
        snprintf(cx->index, sizeof cx->index, "%s", path);
        return PDCKPT_OK;
    }
    snprintf(cx->dir, sizeof cx->dir, "%s", path);
    int n = find_index(path, cx->kind, name, sizeof name);
    if (n == 0)
        return pdk_fail(cx->err, PDCKPT_ERR_NOT_FOUND, path, -1,
                        "expected a '*%s%s' index in the directory, found none", cx->kind->ext,
                        INDEX_SUFFIX);
    if (n > 1)
        return pdk_fail(cx->err, PDCKPT_ERR_ARGUMENT, path, -1,
                        "expected one '*%s%s' index, found %d ('%s', ...): name the index file",
                        cx->kind->ext, INDEX_SUFFIX, n, name);
    snprintf(cx->index, sizeof cx->index, "%s/%s", path, name);
    return PDCKPT_OK;
}

/* The directories a shard may resolve into: the index's own, and -- for a Hugging Face cache
 * snapshot (".../models--org--name/snapshots/<rev>/", whose files are symlinks to blobs) -- the
 * repository's "blobs/" directory. */
static pdckpt_status allowed_roots(shard_ctx *cx) {
    if (!realpath(cx->dir, cx->real_dir)) return pdk_fail_sys(cx->err, errno, cx->dir, "realpath");
    char  parent[PATH_MAX];
    char *slash = strrchr(strcpy(parent, cx->real_dir), '/');
    cx->blobs[0] = '\0';
    if (!slash || slash == parent) return PDCKPT_OK;
    *slash = '\0';
    slash = strrchr(parent, '/');
    if (slash && strcmp(slash + 1, "snapshots") == 0) {
        *slash = '\0';
        if (snprintf(cx->blobs, sizeof cx->blobs, "%s/blobs", parent) >= (int)sizeof cx->blobs)
            cx->blobs[0] = '\0';
    }
    return PDCKPT_OK;
}

static bool inside(const char *path, const char *root) {
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/') return true;
    return n && strncmp(path, root, n) == 0 && path[n] == '/';
}

/* Where the index first names shard s (for errors about the shard). */
static size_t first_named(const shard_ctx *cx, uint32_t s) {
    for (size_t i = 0; i < cx->ix.len; i++)
        if (cx->ix.entries[i].shard == s) return cx->ix.entries[i].pos;
    return 0;
}

static pdckpt_status resolve_shard(shard_ctx *cx, uint32_t s, char *shown, char *real) {
    const char *file = cx->ix.shards[s];
    if ((size_t)snprintf(shown, PATH_MAX, "%s/%s", cx->dir, file) >= PATH_MAX)
        return pdk_fail(cx->err, PDCKPT_ERR_ARGUMENT, cx->index, -1, "shard path too long");
    if (!realpath(shown, real))
        return pdk_fail_sys(cx->err, errno, shown, "open shard (named by %s at offset %zu)",
                            cx->index, first_named(cx, s));
    if (inside(real, cx->real_dir) || (cx->blobs[0] && inside(real, cx->blobs))) return PDCKPT_OK;
    return pdk_fail(cx->err, PDCKPT_ERR_FORMAT, shown, -1,
                    "expected a shard inside '%s' (the index's directory), found a link to '%s'",
                    cx->real_dir, real);
}

/* Offset of a tensor's bytes in the shard, when they are still inside its bytes. */
static int64_t data_offset(const pdckpt_value *v, const pdk_input *in) {
    pdckpt_tensor_view t;
    if (!pdckpt_tensor_get(v, &t) || !t.data) return -1;
    const uint8_t *p = t.data;
    return p >= in->data && p < in->data + in->len ? (int64_t)(p - in->data) : -1;
}

static pdckpt_status take_one(shard_ctx *cx, uint32_t s, const pdk_input *in, const char *key,
                              size_t len, pdckpt_value *value) {
    if (cx->kind == &pdk_shard_kind_safetensors && strcmp(key, METADATA_KEY) == 0) {
        if (!cx->metadata) cx->metadata = pdckpt_value_retain(value);
        return PDCKPT_OK;
    }
    if (cx->kind == &pdk_shard_kind_pickle && strcmp(key, PDCKPT_NAME_TABLE_KEY) == 0)
        return PDCKPT_OK;
    const pdk_index_entry *e = pdk_index_find(&cx->ix, key, len);
    if (!e)
        return pdk_fail(cx->err, PDCKPT_ERR_FORMAT, in->name, data_offset(value, in),
                        "tensor '%s' is in this shard but not in the weight_map of %s", key,
                        cx->index);
    if (e->shard != s)
        return pdk_fail(cx->err, PDCKPT_ERR_FORMAT, in->name, data_offset(value, in),
                        "tensor '%s' is in this shard, but %s (offset %zu) maps it to '%s'", key,
                        cx->index, e->pos, e->file);
    cx->slots[e - cx->ix.entries] = pdckpt_value_retain(value);
    return PDCKPT_OK;
}

static pdckpt_status take_entries(shard_ctx *cx, uint32_t s, const pdk_input *in,
                                  pdckpt_value *tree) {
    if (pdckpt_value_kind(tree) != PDCKPT_KIND_DICT)
        return pdk_fail(cx->err, PDCKPT_ERR_FORMAT, in->name, 0,
                        "expected a shard holding a dict of tensors, found a %s",
                        pdckpt_kind_name(pdckpt_value_kind(tree)));
    for (size_t i = 0; i < pdckpt_value_len(tree); i++) {
        size_t      len;
        const char *key = pdckpt_value_get_string(pdckpt_dict_key_at(tree, i), &len);
        if (!key)
            return pdk_fail(cx->err, PDCKPT_ERR_FORMAT, in->name, -1,
                            "expected string keys in the shard, found a %s",
                            pdckpt_kind_name(pdckpt_value_kind(pdckpt_dict_key_at(tree, i))));
        PDK_TRY(take_one(cx, s, in, key, len, pdckpt_value_at_mut(tree, i)));
    }
    return PDCKPT_OK;
}

static pdckpt_status load_shard(shard_ctx *cx, uint32_t s) {
    char shown[PATH_MAX], real[PATH_MAX];
    PDK_TRY(resolve_shard(cx, s, shown, real));
    pdk_input in;
    /* `real` is already resolved and checked to lie inside the allowed roots (a Hugging Face
     * cache's shards are links into blobs/, so a beneath-only open would refuse them). */
    pdckpt_status opened =
        pdk_input_open_file(real, cx->opts->zero_copy, cx->opts->allocator, &in, cx->err);
    if (opened != PDCKPT_OK) {
        pdk_error_replace_source(cx->err, shown);
        return opened;
    }
    pdckpt_value *tree = NULL;
    pdckpt_status st = cx->kind->shard_format->load(&in, cx->opts, &tree, cx->err);
    pdk_error_set_source(cx->err, shown);
    if (st == PDCKPT_OK) st = take_entries(cx, s, &in, tree);
    pdckpt_value_free(tree); /* tensors taken keep their shard's mapping alive */
    pdk_input_close(&in);
    return st;
}

static pdckpt_status check_complete(shard_ctx *cx) {
    for (size_t i = 0; i < cx->ix.len; i++) {
        const pdk_index_entry *e = &cx->ix.entries[i];
        if (cx->slots[i]) continue;
        char shown[PATH_MAX];
        if (snprintf(shown, sizeof shown, "%s/%s", cx->dir, e->file) >= (int)sizeof shown)
            shown[0] = '\0';
        return pdk_fail(cx->err, PDCKPT_ERR_FORMAT, shown, -1,
                        "expected tensor '%s' (%s, offset %zu, maps it here), found no such "
                        "tensor in the shard",
                        e->name, cx->index, e->pos);
    }
    return PDCKPT_OK;
}

static pdckpt_status build_root(shard_ctx *cx, pdckpt_value **out) {
    const pdckpt_allocator *a = cx->opts->allocator;
    pdckpt_value           *root = pdckpt_value_new_container(a, PDCKPT_KIND_DICT);
    if (!root) return pdk_fail_nomem(cx->err, "sharded root");
    pdckpt_status st = PDCKPT_OK;
    if (cx->metadata) {
        st = pdckpt_dict_set(root, METADATA_KEY, cx->metadata, cx->err);
        cx->metadata = NULL;
    }
    for (size_t i = 0; i < cx->ix.len && st == PDCKPT_OK; i++) {
        pdckpt_value *key =
            pdckpt_value_new_string(a, cx->ix.entries[i].name, cx->ix.entries[i].name_len);
        st = key ? pdckpt_dict_set_value(root, key, cx->slots[i], cx->err)
                 : (pdckpt_value_free(cx->slots[i]), pdk_fail_nomem(cx->err, "tensor name"));
        cx->slots[i] = NULL;
    }
    if (st != PDCKPT_OK) pdckpt_value_free(root);
    if (st == PDCKPT_OK) *out = root;
    return st;
}

static pdckpt_status read_index(shard_ctx *cx) {
    pdk_input in;
    PDK_TRY(pdk_input_open_file(cx->index, false, cx->opts->allocator, &in, cx->err));
    pdckpt_status st = pdk_index_parse(&in, cx->kind->ext, &cx->ix, cx->err);
    pdk_input_close(&in);
    if (st == PDCKPT_OK && !(cx->slots = calloc(cx->ix.len ? cx->ix.len : 1, sizeof *cx->slots)))
        st = pdk_fail_nomem(cx->err, "sharded tensors");
    return st;
}

static pdckpt_status sharded_load(const pdk_shard_kind *kind, const char *path,
                                  const pdckpt_load_options *opts, pdckpt_value **out,
                                  pdckpt_error *err) {
    char name[600], single[PATH_MAX + 600];
    if (pdk_is_directory(path) && find_index(path, kind, name, sizeof name) == 0 &&
        single_shard(path, kind, single, sizeof single)) {
        pdckpt_load_options one = *opts;
        one.format = kind->shard_format->id;
        pdckpt_status st = pdk_load_path(single, &one, out, NULL, err);
        if (st == PDCKPT_OK && pdckpt_value_kind(*out) == PDCKPT_KIND_DICT)
            pdckpt_dict_remove(*out, PDCKPT_NAME_TABLE_KEY); /* as from several shards */
        return st;
    }
    shard_ctx *cx = calloc(1, sizeof *cx);
    if (!cx) return pdk_fail_nomem(err, "sharded load");
    cx->kind = kind;
    cx->opts = opts;
    cx->err = err;
    pdckpt_status st = locate(cx, path);
    if (st == PDCKPT_OK) st = allowed_roots(cx);
    if (st == PDCKPT_OK) st = read_index(cx);
    for (uint32_t s = 0; st == PDCKPT_OK && s < cx->ix.n_shards; s++) st = load_shard(cx, s);
    if (st == PDCKPT_OK) st = check_complete(cx);
    if (st == PDCKPT_OK) st = build_root(cx, out);
    for (size_t i = 0; cx->slots && i < cx->ix.len; i++) pdckpt_value_free(cx->slots[i]);
    free(cx->slots);
    pdckpt_value_free(cx->metadata);
    pdk_index_free(&cx->ix);
    free(cx);
    return st;
}

static pdckpt_status load_safetensors(const char *path, const pdckpt_load_options *opts,
                                      pdckpt_value **out, pdckpt_error *err) {
    return sharded_load(kind_of(PDCKPT_FORMAT_SAFETENSORS_SHARDED), path, opts, out, err);
}

static pdckpt_status load_pickle(const char *path, const pdckpt_load_options *opts,
                                 pdckpt_value **out, pdckpt_error *err) {
    return sharded_load(kind_of(PDCKPT_FORMAT_PICKLE_SHARDED), path, opts, out, err);
}

static pdckpt_status save_safetensors(const pdckpt_value *root, const char *path,
                                      const pdckpt_save_options *opts, pdckpt_error *err) {
    return pdk_sharded_save(root, path, &pdk_shard_kind_safetensors, opts, err);
}

static pdckpt_status save_pickle(const pdckpt_value *root, const char *path,
                                 const pdckpt_save_options *opts, pdckpt_error *err) {
    return pdk_sharded_save(root, path, &pdk_shard_kind_pickle, opts, err);
}

/* Directory formats whose load_dir/save_dir also take the index file's own path. */
const pdk_format pdk_format_safetensors_sharded = {
    .id = PDCKPT_FORMAT_SAFETENSORS_SHARDED,
    .name = "safetensors-sharded",
    .suffixes = (const char *const[]){".safetensors.index.json", NULL},
    .sniff_dir = sniff_dir_safetensors,
    .load_dir = load_safetensors,
    .save_dir = save_safetensors,
};

const pdk_format pdk_format_pickle_sharded = {
    .id = PDCKPT_FORMAT_PICKLE_SHARDED,
    .name = "pickle-sharded",
    .suffixes = (const char *const[]){".pdparams.index.json", NULL},
    .sniff_dir = sniff_dir_pickle,
    .load_dir = load_pickle,
    .save_dir = save_pickle,
};
