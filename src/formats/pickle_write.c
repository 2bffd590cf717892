/*
 * pickle_write.c — writing .pdparams / .pdopt files byte-identical to paddle.save (spec pickle
 * §1.1-1.10).  The path is chosen like paddle.save's _is_state_dict: a dict of tensors (and of
 * tensor-free dicts such as LR_Scheduler) takes the state-dict path (pickle_emit_state.c), and so
 * does a dict that already holds a name table; anything else -- and a dict without any tensor --
 * the generic path (pickle_emit_value.c).  Bytes come from the CPython-identical emitter
 * (pickle_emit.c); tensor data streams from tensor memory into the sink.
 */
#include "pickle_write.h"
#include "pickle.h"
#include "pickle_emit.h"

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

bool pdk_pickle_is_state_dict(const pdckpt_value *root) {
    if (pdckpt_value_kind(root) != PDCKPT_KIND_DICT) return false;
    for (size_t i = 0; i < pdckpt_value_len(root); i++) {
        const pdckpt_value *v = pdckpt_value_at(root, i);
        pdckpt_kind         kind = pdckpt_value_kind(v);
        if (kind == PDCKPT_KIND_TENSOR) continue;
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
    return pdckpt_value_kind(pdckpt_dict_get(root, "StructuredToParameterName@@")) ==
           PDCKPT_KIND_DICT;
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

pdckpt_status pdk_pickle_save_path(const pdckpt_value *root, pdk_sink *sink,
                                   const pdckpt_save_options *opts, pdk_pickle_path path,
                                   pdckpt_error *err) {
    if (path == PDK_PICKLE_AUTO)
        path = (pdk_pickle_is_state_dict(root) && !plain_dict(root)) || has_name_table(root)
                   ? PDK_PICKLE_STATE_DICT
                   : PDK_PICKLE_GENERIC;
    pdk_pkl       p;
    pdckpt_status st = pdk_pkl_begin(&p, sink, opts, err);
    if (st == PDCKPT_OK)
        st = path == PDK_PICKLE_STATE_DICT ? pdk_pkl_save_state_dict(&p, root)
                                           : pdk_pkl_save_value(&p, root, PDK_MODE_GENERIC);
    pdckpt_status end = pdk_pkl_end(&p, st == PDCKPT_OK);
    return st != PDCKPT_OK ? st : end;
}

pdckpt_status pdk_pickle_save(const pdckpt_value *root, pdk_sink *sink,
                              const pdckpt_save_options *opts, pdckpt_error *err) {
    return pdk_pickle_save_path(root, sink, opts, PDK_PICKLE_AUTO, err);
}
