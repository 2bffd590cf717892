/* SPDX-License-Identifier: Apache-2.0 */
/*
 * flatten.c — turns a value tree into the ordered (name, tensor) list that flat formats (combined,
 * vars-dir, safetensors, tensor) store.  Nested dict keys and list indexes join with '.', the way
 * Paddle's structured names already read ("blocks.0.linear.weight"); Paddle's (name, ndarray)
 * tuples count as one tensor.  Paddle's name table is metadata, not data, and is skipped by
 * default.
 */
#include "pdk_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const default_skip[] = {PDCKPT_NAME_TABLE_KEY, NULL};

typedef struct collect_ctx {
    pdk_flat_list             *out;
    const pdckpt_save_options *opts;   /* NULL: the public pdckpt_value_flatten */
    const char *const         *skip;   /* top-level keys that are metadata, not tensors */
    bool                       nested; /* nested containers flatten to '.'-joined names */
    bool                       drop;   /* leaves that are not tensors are dropped */
    bool                       all;    /* every leaf is an entry */
    char                       sep;    /* '.', or '/' with any dict keys named */
    size_t                     dropped;
    pdckpt_error              *err;
    bool                       saving; /* the names go into a file as C strings */
} collect_ctx;

static pdckpt_status add_entry(collect_ctx *cx, const char *name, size_t len,
                               const pdckpt_value *tensor) {
    pdk_flat_list *fl = cx->out;
    PDK_TRY(pdk_grow(fl->alloc, (void **)&fl->entries, &fl->cap, fl->len + 1, sizeof *fl->entries,
                     cx->err));
    char *copy = pdk_strndup(fl->alloc, name, len);
    if (!copy) return pdk_fail_nomem(cx->err, "tensor name");
    fl->entries[fl->len].name = copy;
    fl->entries[fl->len].tensor = tensor;
    fl->len++;
    return PDCKPT_OK;
}

/* A Paddle generic-path tensor: the tuple (name, tensor). */
static const pdckpt_value *named_tuple_tensor(const pdckpt_value *v) {
    if (pdckpt_value_kind(v) != PDCKPT_KIND_TUPLE || pdckpt_value_len(v) != 2) return NULL;
    if (pdckpt_value_kind(pdckpt_value_at(v, 0)) != PDCKPT_KIND_STRING) return NULL;
    const pdckpt_value *t = pdckpt_value_at(v, 1);
    return pdckpt_value_kind(t) == PDCKPT_KIND_TENSOR ? t : NULL;
}

static pdckpt_status collect(collect_ctx *cx, const pdckpt_value *v, char *prefix, size_t len,
                             int depth);

/* A dict key that is not a string, as pdckpt_check_restore names it: an int's digits, else its
 * kind and position. */
static size_t key_text(const pdckpt_value *key, size_t index, char *buf, size_t cap) {
    int64_t i;
    int     n =
        pdckpt_value_get_int(key, &i)
                ? snprintf(buf, cap, "%lld", (long long)i)
                : snprintf(buf, cap, "<%s key %zu>", pdckpt_kind_name(pdckpt_value_kind(key)), index);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

static pdckpt_status collect_child(collect_ctx *cx, const pdckpt_value *child, char *prefix,
                                   size_t len, const char *key, size_t key_len, int depth) {
    size_t sep = len ? 1 : 0;
    if (len + sep + key_len >= 4096)
        return pdk_fail(cx->err, PDCKPT_ERR_UNSUPPORTED, NULL, -1,
                        "expected a tensor path shorter than 4096 bytes at '%.64s...'", prefix);
    if (sep) prefix[len] = cx->sep;
    memcpy(prefix + len + sep, key, key_len);
    prefix[len + sep + key_len] = '\0';
    pdckpt_status st = collect(cx, child, prefix, len + sep + key_len, depth + 1);
    prefix[len] = '\0';
    return st;
}

/* A key with a NUL inside: a flat format's names are C strings, so the file would name the
 * tensor by the part before it (a pickle key "w\0x" became the tensor "w" of a safetensors file;
 * two such keys, one tensor). */
pdckpt_status pdk_flat_nul_in_name(pdckpt_error *err, const char *file, const char *prefix,
                                   const char *key) {
    return pdk_fail(err, PDCKPT_ERR_ARGUMENT, file, -1,
                    "expected tensor names without a NUL byte, found the key '%s%s%s' followed "
                    "by one (the file would name the tensor by the part before it)",
                    prefix, *prefix ? "." : "", key);
}

static pdckpt_status collect_container(collect_ctx *cx, const pdckpt_value *v, char *prefix,
                                       size_t len, int depth) {
    bool dict = pdckpt_value_kind(v) == PDCKPT_KIND_DICT;
    for (size_t i = 0; i < pdckpt_value_len(v); i++) {
        char        index[64];
        const char *key = index;
        size_t      key_len;
        if (dict) {
            const pdckpt_value *k = pdckpt_dict_key_at(v, i);
            key = pdckpt_value_get_string(k, &key_len);
            if (!key && cx->sep == '/') {
                key_len = key_text(k, i, index, sizeof index);
                key = index;
            }
            if (!key)
                return pdk_fail(cx->err, PDCKPT_ERR_UNSUPPORTED, NULL, -1,
                                "flat formats need string keys, found a %s key under '%s'",
                                pdckpt_kind_name(pdckpt_value_kind(k)), prefix);
            if (cx->saving && memchr(key, '\0', key_len))
                return pdk_flat_nul_in_name(cx->err, NULL, prefix, key);
            bool skip = false;
            for (const char *const *s = cx->skip; depth == 0 && *s && !skip; s++)
                skip = strlen(*s) == key_len && memcmp(*s, key, key_len) == 0;
            if (skip) continue;
        } else {
            key_len = (size_t)snprintf(index, sizeof index, "%zu", i);
        }
        PDK_TRY(collect_child(cx, pdckpt_value_at(v, i), prefix, len, key, key_len, depth));
    }
    return PDCKPT_OK;
}

static pdckpt_status collect(collect_ctx *cx, const pdckpt_value *v, char *prefix, size_t len,
                             int depth) {
    if (depth > PDCKPT_MAX_WALK_DEPTH)
        return pdk_fail(cx->err, PDCKPT_ERR_LIMIT, NULL, -1, "expected nesting depth <= %d",
                        PDCKPT_MAX_WALK_DEPTH);
    const pdckpt_value *named = named_tuple_tensor(v);
    if (named) v = named;
    switch (pdckpt_value_kind(v)) {
    case PDCKPT_KIND_TENSOR: return add_entry(cx, prefix, len, v);
    case PDCKPT_KIND_DICT:
    case PDCKPT_KIND_LIST:
    case PDCKPT_KIND_TUPLE:
        /* Nesting would come back as '.'-joined keys, another tree: only when asked. */
        if (depth > 0 && !cx->nested)
            return pdk_fail(cx->err, PDCKPT_ERR_UNSUPPORTED, NULL, -1,
                            "this format stores a flat list of tensors, found a nested %s at "
                            "'%s' (use skip_non_tensors / --skip-non-tensors to flatten it into "
                            "'%s.<key>' names; safetensors keeps the nesting)",
                            pdckpt_kind_name(pdckpt_value_kind(v)), prefix, prefix);
        return collect_container(cx, v, prefix, len, depth);
    default:
        if (cx->all) return add_entry(cx, prefix, len, v);
        if (cx->drop) {
            cx->dropped++;
            if (cx->opts && cx->opts->on_drop)
                cx->opts->on_drop(cx->opts->on_drop_ctx, prefix, pdckpt_value_kind(v));
            return PDCKPT_OK;
        }
        return pdk_fail(cx->err, PDCKPT_ERR_UNSUPPORTED, NULL, -1,
                        "this format stores only tensors, found a %s at '%s' "
                        "(use skip_non_tensors / --skip-non-tensors to drop it)",
                        pdckpt_kind_name(pdckpt_value_kind(v)), prefix);
    }
}

static int cmp_entries(const void *a, const void *b) {
    return strcmp(((const pdk_flat_entry *)a)->name, ((const pdk_flat_entry *)b)->name);
}

pdckpt_status pdk_flat_check_unique(pdk_flat_list *fl, pdckpt_error *err) {
    if (fl->len < 2 || fl->from_list) return PDCKPT_OK;
    pdk_flat_entry *sorted = pdk_alloc(fl->alloc, fl->len * sizeof *sorted);
    if (!sorted) return pdk_fail_nomem(err, "name check");
    memcpy(sorted, fl->entries, fl->len * sizeof *sorted);
    qsort(sorted, fl->len, sizeof *sorted, cmp_entries);
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 1; i < fl->len && st == PDCKPT_OK; i++)
        if (strcmp(sorted[i - 1].name, sorted[i].name) == 0)
            st = pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                          "two tensors flatten to the same name '%s'", sorted[i].name);
    pdk_free(fl->alloc, sorted, fl->len * sizeof *sorted);
    return st;
}

static pdckpt_status collect_root(collect_ctx *cx, const pdckpt_value *root) {
    char *prefix = malloc(4096);
    if (!prefix) return pdk_fail_nomem(cx->err, "name buffer");
    prefix[0] = '\0';
    pdckpt_status st = collect(cx, root, prefix, 0, 0);
    free(prefix);
    return st;
}

pdckpt_status pdk_flat_collect(const pdckpt_value *root, const pdckpt_save_options *opts,
                               const char *const *skip_keys, pdk_flat_list *out,
                               pdckpt_error *err) {
    memset(out, 0, sizeof *out);
    out->alloc = opts ? opts->allocator : NULL;
    pdckpt_kind kind = pdckpt_value_kind(root);
    if (!root ||
        (kind != PDCKPT_KIND_TENSOR && kind != PDCKPT_KIND_DICT && kind != PDCKPT_KIND_LIST &&
         kind != PDCKPT_KIND_TUPLE && !named_tuple_tensor(root)))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "expected a tensor, dict or list to save, found %s",
                        root ? pdckpt_kind_name(kind) : "nothing");
    out->from_list =
        (kind == PDCKPT_KIND_LIST || kind == PDCKPT_KIND_TUPLE) && !named_tuple_tensor(root);
    bool        skip = opts && opts->skip_non_tensors; /* flattens nesting too */
    collect_ctx cx = {out, opts, skip_keys ? skip_keys : default_skip, skip, skip, false, '.',
                      0,   err};
    cx.saving = true;
    pdckpt_status st = collect_root(&cx, root);
    if (st == PDCKPT_OK) st = pdk_flat_check_unique(out, err);
    if (st != PDCKPT_OK) pdk_flat_free(out);
    return st;
}

void pdk_flat_sort_by_name(pdk_flat_list *list) {
    if (list->len > 1) qsort(list->entries, list->len, sizeof *list->entries, cmp_entries);
}

void pdk_flat_free(pdk_flat_list *list) {
    for (size_t i = 0; i < list->len; i++) pdk_strfree(list->alloc, list->entries[i].name);
    pdk_free(list->alloc, list->entries, list->cap * sizeof *list->entries);
    memset(list, 0, sizeof *list);
}

pdckpt_status pdckpt_value_flatten(const pdckpt_value *root, unsigned flags, pdckpt_flat *out,
                                   pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!out) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "out is NULL");
    memset(out, 0, sizeof *out);
    if (!root) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "expected a tree, found NULL");
    pdk_flat_list list = {0};
    bool          all = (flags & PDCKPT_FLATTEN_ALL_LEAVES) != 0;
    collect_ctx   cx = {&list,
                        NULL,
                        default_skip,
                        all || (flags & PDCKPT_FLATTEN_NESTED) != 0,
                        (flags & PDCKPT_FLATTEN_SKIP_NON_TENSORS) != 0,
                        all,
                      (flags & PDCKPT_FLATTEN_SLASH) ? '/' : '.',
                        0,
                        err};
    pdckpt_status st = collect_root(&cx, root);
    if (st != PDCKPT_OK) {
        pdk_flat_free(&list);
        return st;
    }
    *out = (pdckpt_flat){list.entries, list.len, cx.dropped, list.cap};
    return PDCKPT_OK;
}

void pdckpt_flat_free(pdckpt_flat *flat) {
    if (!flat) return;
    pdk_flat_list list = {flat->entries, flat->len, flat->cap, NULL, false};
    pdk_flat_free(&list);
    memset(flat, 0, sizeof *flat);
}
