/* SPDX-License-Identifier: Apache-2.0 */
/*
 * compare_walk.c — deep equality of value trees and the depth-first leaf walk the CLI, the flat
 * formats and the tests use to enumerate "key path -> leaf" pairs.
 */
#include "pdk_value.h"

#include <string.h>

static bool containers_equal(const pdckpt_value *a, const pdckpt_value *b) {
    if (a->u.c.len != b->u.c.len) return false;
    for (size_t i = 0; i < a->u.c.len; i++) {
        if (a->kind == PDCKPT_KIND_DICT && !pdckpt_value_equal(a->u.c.keys[i], b->u.c.keys[i]))
            return false;
        if (!pdckpt_value_equal(a->u.c.items[i], b->u.c.items[i])) return false;
    }
    return true;
}

static bool objects_equal(const pdk_object *a, const pdk_object *b) {
    if (a->kind != b->kind || strcmp(a->module, b->module) || strcmp(a->name, b->name))
        return false;
    return pdckpt_value_equal(a->args, b->args) && pdckpt_value_equal(a->state, b->state) &&
           pdckpt_value_equal(a->items, b->items);
}

bool pdckpt_value_equal(const pdckpt_value *a, const pdckpt_value *b) {
    if (a == b) return true;
    if (!a || !b || a->kind != b->kind) return false;
    switch (a->kind) {
    case PDCKPT_KIND_NONE: return true;
    case PDCKPT_KIND_BOOL: return a->u.b == b->u.b;
    case PDCKPT_KIND_INT: return a->u.i == b->u.i;
    case PDCKPT_KIND_FLOAT: return memcmp(&a->u.f, &b->u.f, sizeof a->u.f) == 0;
    case PDCKPT_KIND_STRING:
    case PDCKPT_KIND_BYTES:
        return a->u.s.len == b->u.s.len && memcmp(a->u.s.data, b->u.s.data, a->u.s.len) == 0;
    case PDCKPT_KIND_TENSOR: return pdk_tensor_equal(a, b);
    case PDCKPT_KIND_OBJECT: return objects_equal(a->u.o, b->u.o);
    default: return containers_equal(a, b);
    }
}

typedef struct walk_state {
    pdckpt_visit_fn  fn;
    void            *ctx;
    pdckpt_path_step path[PDCKPT_MAX_WALK_DEPTH];
    pdckpt_error    *err;
    bool             stopped;
} walk_state;

static pdckpt_status walk(walk_state *ws, const pdckpt_value *v, size_t depth) {
    bool container = v->kind == PDCKPT_KIND_LIST || v->kind == PDCKPT_KIND_TUPLE ||
                     v->kind == PDCKPT_KIND_SET || v->kind == PDCKPT_KIND_DICT;
    if (!container) {
        if (ws->fn(ws->ctx, ws->path, depth, v)) ws->stopped = true;
        return PDCKPT_OK;
    }
    if (depth >= PDCKPT_MAX_WALK_DEPTH)
        return pdk_fail(ws->err, PDCKPT_ERR_LIMIT, NULL, -1,
                        "expected nesting depth <= %d, found deeper", PDCKPT_MAX_WALK_DEPTH);
    for (size_t i = 0; i < v->u.c.len && !ws->stopped; i++) {
        ws->path[depth].key = v->kind == PDCKPT_KIND_DICT ? v->u.c.keys[i] : NULL;
        ws->path[depth].index = (int64_t)i;
        PDK_TRY(walk(ws, v->u.c.items[i], depth + 1));
    }
    return PDCKPT_OK;
}

pdckpt_status pdckpt_value_walk(const pdckpt_value *root, pdckpt_visit_fn fn, void *ctx,
                                pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!root || !fn)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "walk needs a root and a callback");
    walk_state *ws = pdk_alloc(NULL, sizeof *ws);
    if (!ws) return pdk_fail_nomem(err, "walk state");
    ws->fn = fn;
    ws->ctx = ctx;
    ws->err = err;
    ws->stopped = false;
    pdckpt_status st = walk(ws, root, 0);
    pdk_free(NULL, ws, sizeof *ws);
    return st;
}
