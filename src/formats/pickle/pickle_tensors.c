/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_tensors.c — which pickled arrays paddle.load turns into paddle.Tensors (Paddle 3.3
 * paddle/framework/io.py: load, _parse_load_result, _tuple_to_tensor, _ndarray_to_tensor):
 *   1. a dict with "StructuredToParameterName@@": the arrays under the table's keys;
 *   2. else, when a (name, ndarray) tuple exists anywhere (searched through dict, list and tuple):
 *      those tuples' arrays -- the reader holds them as named tensors (pickle_calls.c);
 *   3. else every array reached through dicts, lists, tuples and sets.
 * The dtype a value has in pdckpt is the dtype Paddle gives it: paddle.to_tensor makes a uint16
 * array a bfloat16 tensor, so the reader retypes uint16 there, and the writer refuses what would
 * come back with another dtype (pickle_write.c).  Objects are not searched, as in Paddle.
 */
#include "pickle.h"

#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 512

typedef struct walk_ctx {
    pdk_pickle_tensor_fn fn;
    void                *ctx;
    bool                 named_only; /* rule 2 */
    char                 path[512];
    pdckpt_error        *err;
} walk_ctx;

/* A (str, tensor) tuple, or a named tensor: what paddle.load sees as (name, ndarray). */
static bool is_name_pair(const pdckpt_value *v) {
    pdckpt_tensor_view t;
    if (pdckpt_tensor_get_memory(v, &t, NULL)) return t.name != NULL;
    return pdckpt_value_kind(v) == PDCKPT_KIND_TUPLE && pdckpt_value_len(v) == 2 &&
           pdckpt_value_kind(pdckpt_value_at(v, 0)) == PDCKPT_KIND_STRING &&
           pdckpt_value_kind(pdckpt_value_at(v, 1)) == PDCKPT_KIND_TENSOR;
}

static bool contains_pair(const pdckpt_value *v, int depth) {
    pdckpt_kind k = pdckpt_value_kind(v);
    if (is_name_pair(v)) return true;
    if ((k != PDCKPT_KIND_DICT && k != PDCKPT_KIND_LIST && k != PDCKPT_KIND_TUPLE) ||
        depth > MAX_DEPTH)
        return false;
    for (size_t i = 0; i < pdckpt_value_len(v); i++)
        if (contains_pair(pdckpt_value_at(v, i), depth + 1)) return true;
    return false;
}

/* Appends "/key" (or "/index") to the path, truncating; returns the old length. */
static size_t push_step(walk_ctx *w, const pdckpt_value *parent, size_t i) {
    size_t      old = strlen(w->path), len = 0;
    const char *key = pdckpt_value_kind(parent) == PDCKPT_KIND_DICT
                          ? pdckpt_value_get_string(pdckpt_dict_key_at(parent, i), &len)
                          : NULL;
    if (key)
        snprintf(w->path + old, sizeof w->path - old, "%s%.*s", old ? "/" : "", (int)len, key);
    else
        snprintf(w->path + old, sizeof w->path - old, "%s%zu", old ? "/" : "", i);
    return old;
}

static pdckpt_status visit(walk_ctx *w, pdckpt_value *v, int depth) {
    pdckpt_kind k = pdckpt_value_kind(v);
    if (k == PDCKPT_KIND_TENSOR) {
        pdckpt_tensor_view t;
        pdckpt_tensor_get_memory(v, &t, NULL);
        return w->named_only && !t.name ? PDCKPT_OK : w->fn(w->ctx, v, w->path, w->err);
    }
    if (w->named_only && is_name_pair(v))
        return w->fn(w->ctx, pdckpt_value_at_mut(v, 1), w->path, w->err);
    if (k != PDCKPT_KIND_DICT && k != PDCKPT_KIND_LIST && k != PDCKPT_KIND_TUPLE &&
        k != PDCKPT_KIND_SET)
        return PDCKPT_OK;
    if (depth > MAX_DEPTH) return PDCKPT_OK; /* the reader and writer enforce their own limits */
    for (size_t i = 0; i < pdckpt_value_len(v); i++) {
        size_t        old = push_step(w, v, i);
        pdckpt_status st = visit(w, pdckpt_value_at_mut(v, i), depth + 1);
        w->path[old] = '\0';
        PDK_TRY(st);
    }
    return PDCKPT_OK;
}

static pdckpt_status visit_table(walk_ctx *w, pdckpt_value *root, const pdckpt_value *table,
                                 bool every_tensor) {
    for (size_t i = 0; i < pdckpt_value_len(root); i++) {
        size_t        len = 1;
        const char   *key = pdckpt_value_get_string(pdckpt_dict_key_at(root, i), &len);
        pdckpt_value *v = pdckpt_value_at_mut(root, i);
        if (pdckpt_value_kind(v) != PDCKPT_KIND_TENSOR) continue;
        if (!every_tensor && (!key || !pdckpt_dict_get(table, key))) continue;
        if (every_tensor && !pdk_pickle_table_lists(v)) continue;
        /* the path is the key, cut to the buffer (a copy: snprintf cost 1 µs per tensor) */
        len = key ? strnlen(key, len < sizeof w->path ? len : sizeof w->path - 1) : 1;
        memcpy(w->path, key ? key : "?", len);
        w->path[len] = '\0';
        PDK_TRY(w->fn(w->ctx, v, w->path, w->err));
    }
    return PDCKPT_OK;
}

bool pdk_pickle_table_lists(const pdckpt_value *tensor) {
    pdckpt_tensor_view t;
    return pdckpt_tensor_get_memory(tensor, &t, NULL) && t.dtype != PDCKPT_DTYPE_UINT32 &&
           t.dtype != PDCKPT_DTYPE_UINT64;
}

pdckpt_status pdk_pickle_paddle_tensors(pdckpt_value *root, bool state_path,
                                        pdk_pickle_tensor_fn fn, void *ctx, pdckpt_error *err) {
    walk_ctx            w = {fn, ctx, false, "", err};
    const pdckpt_value *table = pdckpt_value_kind(root) == PDCKPT_KIND_DICT
                                    ? pdckpt_dict_get(root, PDCKPT_NAME_TABLE_KEY)
                                    : NULL;
    if (pdckpt_value_kind(table) == PDCKPT_KIND_DICT) return visit_table(&w, root, table, false);
    if (state_path) return visit_table(&w, root, NULL, true);
    w.named_only = contains_pair(root, 0);
    return visit(&w, root, 0);
}
