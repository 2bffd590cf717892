/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_write.c — writing .pdparams / .pdopt files byte-identical to paddle.save (spec pickle
 * §1.1-1.10).  The path is chosen like paddle.save's _is_state_dict: a dict of tensors (and of
 * tensor-free dicts such as LR_Scheduler) takes the state-dict path (pickle_emit_state.c), and so
 * does a dict that already holds a name table; anything else -- a dict without any tensor, and a
 * pickle's root read without a name table (pdk_dict_is_plain: paddle.static.save's dicts of arrays,
 * paddle.save's generic path) -- the generic path (pickle_emit_value.c).  Bytes come from the
 * CPython-identical emitter (pickle_emit.c); tensor data streams from tensor memory into the sink.
 */
#include "pickle_write.h"
#include "pickle.h"
#include "pickle_emit.h"

#include <stdio.h>

static bool contains_tensor(const pdckpt_value *v, unsigned depth) {
    pdckpt_kind kind = pdckpt_value_kind(v);
    if (kind == PDCKPT_KIND_TENSOR) return true;
    if (kind != PDCKPT_KIND_DICT && kind != PDCKPT_KIND_LIST && kind != PDCKPT_KIND_TUPLE)
        return false; /* _contain_x looks into dicts, lists and tuples only */
    if (depth > PDK_PKL_MAX_DEPTH) return true; /* the generic path will report the depth */
    for (size_t i = 0; i < pdckpt_value_len(v); i++)
        if (contains_tensor(pdckpt_value_at(v, i), depth + 1)) return true;
    return false;
}

/* A named tensor is a paddle.Tensor, an unnamed one a numpy array (which _is_state_dict rejects);
 * a dict of only unnamed tensors is still taken as a state dict (a tree from a flat format). */
bool pdk_pickle_is_state_dict(const pdckpt_value *root) {
    if (pdckpt_value_kind(root) != PDCKPT_KIND_DICT) return false;
    bool               named = false, unnamed = false;
    pdckpt_tensor_view t;
    for (size_t i = 0; i < pdckpt_value_len(root); i++) {
        const pdckpt_value *v = pdckpt_value_at(root, i);
        pdckpt_kind         kind = pdckpt_value_kind(v);
        if (pdckpt_tensor_get_memory(v, &t, NULL)) {
            *(t.name ? &named : &unnamed) = true;
            if (named && unnamed) return false;
            continue;
        }
        if (kind != PDCKPT_KIND_DICT) return false;
        for (size_t k = 0; k < pdckpt_value_len(v); k++)
            if (contains_tensor(pdckpt_value_at(v, k), 0)) return false;
    }
    return true;
}

/* A tree read from a state-dict-path file keeps its name table; fluid.save_dygraph (1.x) also put
 * non-tensor values such as an int "epoch" beside the tensors, which paddle.save's rule would send
 * down the generic path.  The table says how the file was written, so it decides. */
static bool has_name_table(const pdckpt_value *root) {
    return pdckpt_value_kind(pdckpt_dict_get(root, PDCKPT_NAME_TABLE_KEY)) == PDCKPT_KIND_DICT;
}

/* Conversely a non-empty dict with no tensor and no table cannot come from the state-dict path,
 * which always writes the table: it is a plain pickled dict (jit.save's .pdiparams.info, a
 * metadata dict) and is written as one, so such files round-trip.  The exception is an optimizer
 * state without accumulators (SGD with an LR scheduler: only "LR_Scheduler"), which paddle.save
 * does write as a state dict with an empty table; so does an empty dict. */
static bool plain_dict(const pdckpt_value *root) {
    if (pdckpt_value_len(root) == 0 || has_name_table(root) ||
        pdckpt_dict_get(root, "LR_Scheduler"))
        return false;
    for (size_t i = 0; i < pdckpt_value_len(root); i++)
        if (pdckpt_value_kind(pdckpt_value_at(root, i)) == PDCKPT_KIND_TENSOR) return false;
    return true;
}

/* ---- dtypes a pickle cannot give back ---- */

static pdckpt_status refuse_numpy_only(void *ctx, pdckpt_value *t, const char *path,
                                       pdckpt_error *err) {
    pdckpt_tensor_view v;
    const char        *file = ((const pdk_sink *)ctx)->name;
    pdckpt_tensor_get_memory(t, &v, NULL);
    if (v.dtype == PDCKPT_DTYPE_UINT16)
        return pdk_fail(err, PDCKPT_ERR_UNSUPPORTED, file, -1,
                        "tensor '%s' is uint16, which paddle.load reads back from a pickle as "
                        "bfloat16; reinterpret it (uint16=bfloat16) or save to safetensors",
                        path);
    if (v.dtype == PDCKPT_DTYPE_UINT32 || v.dtype == PDCKPT_DTYPE_UINT64)
        return pdk_fail(err, PDCKPT_ERR_UNSUPPORTED, file, -1,
                        "tensor '%s' is %s, of which paddle.load would make a paddle.Tensor and "
                        "fail (Paddle has no such dtype); put it in a state dict (its name table "
                        "leaves it an array), cast it, or save to safetensors",
                        path, pdckpt_dtype_name(v.dtype));
    return PDCKPT_OK;
}

typedef struct leaf_ctx {
    const pdk_sink            *sink;
    const pdckpt_save_options *opts;
    pdckpt_error              *err;
} leaf_ctx;

static int refuse_float8(const leaf_ctx *c, const char *key, const pdckpt_tensor_view *v) {
    pdk_fail(c->err, PDCKPT_ERR_UNSUPPORTED, c->sink->name, -1,
             "tensor '%s'%s%s%s is %s, which a pickle holds as int8 (paddle.save writes its int8 "
             "bits and paddle.load returns int8); reinterpret it (%s=int8) or save to "
             "safetensors or a .pdiparams, which keep float8",
             key ? key : "?", v->name ? " (" : "", v->name ? v->name : "", v->name ? ")" : "",
             pdckpt_dtype_name(v->dtype), pdckpt_dtype_name(v->dtype));
    return 1;
}

/* A pickle holds arrays, not LoD (Paddle's own pickling drops it without a word): refused by name
 * unless the caller asked to drop what the format cannot hold, and then each drop is reported. */
static int lod_leaf(const leaf_ctx *c, const char *key, const pdckpt_tensor_view *v) {
    if (c->opts && c->opts->skip_non_tensors) {
        char what[512]; /* the LoD of `key` goes; the tensor stays */
        snprintf(what, sizeof what, "%s.lod", key ? key : "?");
        if (c->opts->on_drop) c->opts->on_drop(c->opts->on_drop_ctx, what, PDCKPT_KIND_LIST);
        return 0;
    }
    pdk_fail(c->err, PDCKPT_ERR_UNSUPPORTED, c->sink->name, -1,
             "tensor '%s'%s%s%s has %d LoD level(s), which a pickle cannot store; save to a "
             "vars-dir or a combined file to keep them, or drop them (--skip-non-tensors lists "
             "each)",
             key ? key : "?", v->name ? " (" : "", v->name ? v->name : "", v->name ? ")" : "",
             (int)v->n_lod_levels);
    return 1;
}

static int check_leaf(void *ctx, const pdckpt_path_step *path, size_t depth,
                      const pdckpt_value *leaf) {
    const leaf_ctx    *c = ctx;
    pdckpt_tensor_view v;
    if (!pdckpt_tensor_get_memory(leaf, &v, NULL)) return 0;
    const char *key = depth ? pdckpt_value_get_string(path[depth - 1].key, NULL) : NULL;
    if (v.dtype == PDCKPT_DTYPE_FLOAT8_E4M3FN || v.dtype == PDCKPT_DTYPE_FLOAT8_E5M2)
        return refuse_float8(c, key, &v);
    return v.n_lod_levels > 0 ? lod_leaf(c, key, &v) : 0;
}

/* Every tensor must come back from paddle.load with the dtype it has: no float8 (int8 on disk),
 * no uint16 where Paddle makes a tensor (it reads those bits as bfloat16), no uint32/uint64
 * there (it fails); and no LoD lost without a word. */
static pdckpt_status check_dtypes(const pdckpt_value *root, pdk_sink *sink,
                                  const pdckpt_save_options *opts, bool state_path,
                                  pdckpt_error *err) {
    pdckpt_error  leaf_err = PDCKPT_ERROR_INIT, walk_err = PDCKPT_ERROR_INIT;
    leaf_ctx      c = {sink, opts, &leaf_err};
    pdckpt_status st = pdckpt_value_walk(root, check_leaf, &c, &walk_err);
    if (leaf_err.status != PDCKPT_OK) {
        if (err) *err = leaf_err;
        return leaf_err.status;
    }
    if (st != PDCKPT_OK) return PDCKPT_OK; /* too deep: the emitter reports it */
    return pdk_pickle_paddle_tensors((pdckpt_value *)root, state_path && !has_name_table(root),
                                     refuse_numpy_only, sink, err);
}

static pdckpt_status save_path(const pdckpt_value *root, pdk_sink *sink,
                               const pdckpt_save_options *opts, pdk_pickle_path path,
                               pdk_pickle_offsets *offs, pdckpt_error *err) {
    if (path == PDK_PICKLE_AUTO && opts && opts->pickle_layout != PDCKPT_PICKLE_LAYOUT_AUTO)
        path = opts->pickle_layout == PDCKPT_PICKLE_LAYOUT_STATE_DICT ? PDK_PICKLE_STATE_DICT
               : opts->pickle_layout == PDCKPT_PICKLE_LAYOUT_STATIC_PARAMS
                   ? PDK_PICKLE_STATIC_PARAMS
                   : PDK_PICKLE_GENERIC;
    if (path == PDK_PICKLE_AUTO)
        path = (pdk_pickle_is_state_dict(root) && !plain_dict(root) && !pdk_dict_is_plain(root)) ||
                       has_name_table(root)
                   ? PDK_PICKLE_STATE_DICT
                   : PDK_PICKLE_GENERIC;
    PDK_TRY(pdk_pickle_paddle_keys_ok(root, sink->name, err));
    PDK_TRY(check_dtypes(root, sink, opts, path == PDK_PICKLE_STATE_DICT, err));
    pdk_pkl       p;
    pdckpt_status st = pdk_pkl_begin(&p, sink, opts, err);
    p.offsets = offs;
    if (st == PDCKPT_OK)
        st = path == PDK_PICKLE_STATE_DICT      ? pdk_pkl_save_state_dict(&p, root)
             : path == PDK_PICKLE_STATIC_PARAMS ? pdk_pkl_save_static_params(&p, root)
                                                : pdk_pkl_save_value(&p, root, PDK_MODE_GENERIC);
    pdckpt_status end = pdk_pkl_end(&p, st == PDCKPT_OK);
    return st != PDCKPT_OK ? st : end;
}

pdckpt_status pdk_pickle_save_path(const pdckpt_value *root, pdk_sink *sink,
                                   const pdckpt_save_options *opts, pdk_pickle_path path,
                                   pdckpt_error *err) {
    return save_path(root, sink, opts, path, NULL, err);
}

pdckpt_status pdk_pickle_save(const pdckpt_value *root, pdk_sink *sink,
                              const pdckpt_save_options *opts, pdckpt_error *err) {
    return save_path(root, sink, opts, PDK_PICKLE_AUTO, NULL, err);
}

pdckpt_status pdk_pickle_save_recorded(const pdckpt_value *root, pdk_sink *sink,
                                       const pdckpt_save_options *opts, pdk_pickle_offsets *offs,
                                       pdckpt_error *err) {
    offs->ok = true;
    return save_path(root, sink, opts, PDK_PICKLE_AUTO, offs, err);
}

void pdk_pickle_offsets_free(pdk_pickle_offsets *offs) {
    pdk_free(offs->alloc, offs->at, offs->cap * sizeof *offs->at);
    offs->at = NULL;
    offs->n = offs->cap = offs->framed = 0;
}
