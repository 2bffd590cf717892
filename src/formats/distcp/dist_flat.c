/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_flat.c — a tree as the (name, tensor) pairs a flat format stores, named the way the core's
 * flat formats name them (nested dict keys and list indexes joined with '.', Paddle's
 * (name, tensor) tuples counting as one tensor, the "StructuredToParameterName@@" name table
 * skipped), so a combined file written collectively holds exactly what a single-process save of
 * the same tree would.
 */
#include "pdk_distcp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct flat_ctx {
    pdk_named_list *out;
    bool            skip_non_tensors;
    char            prefix[4096];
    pdckpt_error   *err;
} flat_ctx;

void pdk_named_list_free(pdk_named_list *l) {
    for (size_t i = 0; i < l->len; i++) free(l->items[i].name);
    free(l->items);
    memset(l, 0, sizeof *l);
}

static pdckpt_status add(flat_ctx *c, size_t len, const pdckpt_value *t) {
    pdk_named_list *l = c->out;
    if (l->len == l->cap) {
        size_t     cap = l->cap ? l->cap * 2 : 64;
        pdk_named *grown = realloc(l->items, cap * sizeof *grown);
        if (!grown) return pdk_dist_nomem(c->err, "tensor names");
        l->items = grown;
        l->cap = cap;
    }
    char *name = malloc(len + 1);
    if (!name) return pdk_dist_nomem(c->err, "a tensor name");
    memcpy(name, c->prefix, len);
    name[len] = '\0';
    l->items[l->len++] = (pdk_named){name, t};
    return PDCKPT_OK;
}

static const pdckpt_value *tuple_tensor(const pdckpt_value *v) {
    if (pdckpt_value_kind(v) != PDCKPT_KIND_TUPLE || pdckpt_value_len(v) != 2) return NULL;
    if (pdckpt_value_kind(pdckpt_value_at(v, 0)) != PDCKPT_KIND_STRING) return NULL;
    const pdckpt_value *t = pdckpt_value_at(v, 1);
    return pdckpt_value_kind(t) == PDCKPT_KIND_TENSOR ? t : NULL;
}

static pdckpt_status walk(flat_ctx *c, const pdckpt_value *v, size_t len, int depth);

static pdckpt_status child(flat_ctx *c, const pdckpt_value *v, size_t len, const char *key,
                           size_t key_len, int depth) {
    size_t sep = len ? 1 : 0;
    if (len + sep + key_len >= sizeof c->prefix)
        return pdk_dist_fail(c->err, PDCKPT_ERR_UNSUPPORTED, NULL,
                             "expected a tensor path shorter than 4096 bytes");
    if (sep) c->prefix[len] = '.';
    memcpy(c->prefix + len + sep, key, key_len);
    return walk(c, v, len + sep + key_len, depth + 1);
}

static pdckpt_status walk_container(flat_ctx *c, const pdckpt_value *v, size_t len, int depth) {
    bool dict = pdckpt_value_kind(v) == PDCKPT_KIND_DICT;
    for (size_t i = 0; i < pdckpt_value_len(v); i++) {
        char        index[24];
        const char *key = index;
        size_t      key_len;
        if (dict) {
            key = pdckpt_value_get_string(pdckpt_dict_key_at(v, i), &key_len);
            if (!key)
                return pdk_dist_fail(c->err, PDCKPT_ERR_UNSUPPORTED, NULL,
                                     "flat formats need string keys, found another key kind");
            if (depth == 0 && key_len == strlen(PDCKPT_NAME_TABLE_KEY) &&
                memcmp(key, PDCKPT_NAME_TABLE_KEY, key_len) == 0)
                continue;
        } else {
            key_len = (size_t)snprintf(index, sizeof index, "%zu", i);
        }
        PDK_DTRY(child(c, pdckpt_value_at(v, i), len, key, key_len, depth));
    }
    return PDCKPT_OK;
}

static pdckpt_status walk(flat_ctx *c, const pdckpt_value *v, size_t len, int depth) {
    if (depth > PDCKPT_MAX_WALK_DEPTH)
        return pdk_dist_fail(c->err, PDCKPT_ERR_LIMIT, NULL, "expected nesting depth <= %d",
                             PDCKPT_MAX_WALK_DEPTH);
    const pdckpt_value *t = tuple_tensor(v);
    if (t) v = t;
    switch (pdckpt_value_kind(v)) {
    case PDCKPT_KIND_TENSOR: return add(c, len, v);
    case PDCKPT_KIND_DICT:
    case PDCKPT_KIND_LIST:
    case PDCKPT_KIND_TUPLE: return walk_container(c, v, len, depth);
    default:
        if (c->skip_non_tensors) return PDCKPT_OK;
        c->prefix[len] = '\0';
        return pdk_dist_fail(c->err, PDCKPT_ERR_UNSUPPORTED, NULL,
                             "this format stores only tensors, found a %s at '%s' (set "
                             "skip_non_tensors to drop it)",
                             pdckpt_kind_name(pdckpt_value_kind(v)), c->prefix);
    }
}

pdckpt_status pdk_flatten(const pdckpt_value *root, bool skip_non_tensors, pdk_named_list *out,
                          pdckpt_error *err) {
    memset(out, 0, sizeof *out);
    if (!root) return pdk_dist_fail(err, PDCKPT_ERR_ARGUMENT, NULL, "expected a tree, found NULL");
    flat_ctx *c = malloc(sizeof *c);
    if (!c) return pdk_dist_nomem(err, "name buffer");
    c->out = out;
    c->skip_non_tensors = skip_non_tensors;
    c->err = err;
    pdckpt_status st = walk(c, root, 0, 0);
    free(c);
    if (st != PDCKPT_OK) pdk_named_list_free(out);
    return st;
}
