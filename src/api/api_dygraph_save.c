/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_dygraph_save.c — the Paddle 1.x dygraph save APIs in C (spec pickle §3.1, §3.3):
 * fluid.save_dygraph (1.7/1.8: "<prefix>.pdparams" + "<prefix>.pdopt", protocol 2, state-dict
 * path) and fluid.dygraph.save_persistables (1.5: a directory of tensor files plus
 * "optimizers/<name>" pickles, written by formats/dygraph_dir_write.c).
 */
#include "../formats/pickle/pickle_write.h"

#include <stdio.h>
#include <string.h>

/* One state dict into "<prefix><suffix>", atomically, protocol 2, state-dict path. */
static pdckpt_status save_state(const pdckpt_value *state, const char *prefix, const char *suffix,
                                const pdckpt_save_options *opts, pdckpt_error *err) {
    char path[4096];
    int  n = snprintf(path, sizeof path, "%s%s", prefix, suffix);
    if (n < 0 || (size_t)n >= sizeof path)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, prefix, -1, "path too long");
    if (pdckpt_value_kind(state) != PDCKPT_KIND_DICT)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1, "expected a dict to save, found a %s",
                        pdckpt_kind_name(pdckpt_value_kind(state)));
    pdckpt_save_options o = *opts;
    o.protocol = 2; /* fluid.save_dygraph: pickle.dump(model_dict, f, protocol=2) */
    PDK_TRY(pdk_make_parent_dirs(path, err)); /* fluid.save_dygraph makes the directory too */
    pdk_sink *sink;
    PDK_TRY(pdk_sink_open_atomic_file(path, o.durable, o.allocator, &sink, err));
    if (o.progress) pdk_sink_set_progress(sink, o.progress, o.progress_ctx, 0);
    pdckpt_status st = pdk_pickle_save_path(state, sink, &o, PDK_PICKLE_STATE_DICT, err);
    if (st == PDCKPT_OK)
        st = pdk_sink_commit(sink, err);
    else
        pdk_sink_abort(sink);
    pdk_error_set_source(err, path);
    return st;
}

pdckpt_status pdckpt_save_dygraph(const pdckpt_value *params, const pdckpt_value *opt,
                                  const char *model_path, const pdckpt_save_options *given,
                                  pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!model_path || !*model_path)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "model_path is NULL or empty");
    if (!params && !opt)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, model_path, -1,
                        "nothing to save (params and opt are both NULL)");
    pdckpt_save_options opts;
    PDK_TRY(pdk_save_options_take(given, &opts, err));
    if (params) PDK_TRY(save_state(params, model_path, pdk_state_parts[0], &opts, err));
    if (opt) PDK_TRY(save_state(opt, model_path, pdk_state_parts[1], &opts, err));
    return PDCKPT_OK;
}

/* Adds `value` (retained) under `rel`, refusing a second entry for one path. */
static pdckpt_status add_entry(pdckpt_value *root, const char *rel, const pdckpt_value *value,
                               const char *dirname, pdckpt_error *err) {
    if (pdckpt_dict_get(root, rel))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, dirname, -1,
                        "two entries would be written to the same file '%s'", rel);
    return pdckpt_dict_set(root, rel, pdckpt_value_retain((pdckpt_value *)value), err);
}

static pdckpt_status add_model(pdckpt_value *root, const pdckpt_value *model, const char *dirname,
                               pdckpt_error *err) {
    if (pdckpt_value_kind(model) != PDCKPT_KIND_DICT)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, dirname, -1,
                        "expected model_dict to be a dict, found a %s",
                        pdckpt_kind_name(pdckpt_value_kind(model)));
    for (size_t i = 0; i < pdckpt_value_len(model); i++) {
        const pdckpt_value *v = pdckpt_value_at(model, i), *key = pdckpt_dict_key_at(model, i);
        pdckpt_tensor_view  t;
        const char         *name = pdckpt_tensor_get_memory(v, &t, NULL) ? t.name : NULL;
        if (!name && pdckpt_value_kind(key) == PDCKPT_KIND_STRING)
            name = pdckpt_value_get_string(key, NULL);
        if (!name || pdckpt_value_kind(v) != PDCKPT_KIND_TENSOR)
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, dirname, -1,
                            "model_dict entry %zu: expected a tensor with a name or a string key",
                            i);
        PDK_TRY(add_entry(root, name, v, dirname, err));
    }
    return PDCKPT_OK;
}

static pdckpt_status add_optimizers(pdckpt_value *root, const pdckpt_value *opts,
                                    const char *dirname, pdckpt_error *err) {
    if (!opts) return PDCKPT_OK;
    if (pdckpt_value_kind(opts) != PDCKPT_KIND_DICT)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, dirname, -1,
                        "expected optimizers to be a dict name -> object, found a %s",
                        pdckpt_kind_name(pdckpt_value_kind(opts)));
    for (size_t i = 0; i < pdckpt_value_len(opts); i++) {
        const pdckpt_value *key = pdckpt_dict_key_at(opts, i);
        const char         *name = pdckpt_value_get_string(key, NULL);
        char                rel[4096];
        if (!name || pdckpt_value_kind(key) != PDCKPT_KIND_STRING ||
            (size_t)snprintf(rel, sizeof rel, "optimizers/%s", name) >= sizeof rel)
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, dirname, -1,
                            "optimizers entry %zu: expected a short string name", i);
        PDK_TRY(add_entry(root, rel, pdckpt_value_at(opts, i), dirname, err));
    }
    return PDCKPT_OK;
}

pdckpt_status pdckpt_dygraph_save_persistables(const pdckpt_value *model_dict, const char *dirname,
                                               const pdckpt_value        *optimizers,
                                               const pdckpt_save_options *given,
                                               pdckpt_error              *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!dirname || !*dirname)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "dirname is NULL or empty");
    pdckpt_save_options opts;
    PDK_TRY(pdk_save_options_take(given, &opts, err));
    pdckpt_value *root = pdckpt_value_new_container(opts.allocator, PDCKPT_KIND_DICT);
    if (!root) return pdk_fail_nomem(err, "directory entries");
    pdckpt_status st = add_model(root, model_dict, dirname, err);
    if (st == PDCKPT_OK) st = add_optimizers(root, optimizers, dirname, err);
    if (st == PDCKPT_OK) st = pdk_dygraph_dir_save(root, dirname, &opts, err);
    pdckpt_value_free(root);
    return st;
}
