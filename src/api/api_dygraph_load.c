/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_dygraph_load.c — the Paddle 1.x dygraph load APIs the seeds document, in C (spec
 * binary-and-static-formats.md §5.1-5.3, pickle-and-distributed-formats.md §3):
 * load_persistables (1.5 directories: parameters + optimizers/ LR-decay pickles) and
 * load_dygraph (1.6 TNUM or 1.7/1.8 pickle .pdparams + optional .pdopt, name table dropped unless
 * asked, like Paddle's keep_name_table).
 */
#include "../formats/pdk_format.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define OPT_PREFIX "optimizers/"

/* Moves root's entries into params (variables) and optimizers (keys under optimizers/). */
static pdckpt_status split_root(const pdckpt_value *root, pdckpt_value *params,
                                pdckpt_value *optimizers, pdckpt_error *err) {
    size_t plen = strlen(OPT_PREFIX);
    for (size_t i = 0; i < pdckpt_value_len(root); i++) {
        const char   *key = pdckpt_value_get_string(pdckpt_dict_key_at(root, i), NULL);
        pdckpt_value *v = pdckpt_value_retain((pdckpt_value *)pdckpt_value_at(root, i));
        bool          opt = key && strncmp(key, OPT_PREFIX, plen) == 0;
        PDK_TRY(pdckpt_dict_set(opt ? optimizers : params, opt ? key + plen : key, v, err));
    }
    return PDCKPT_OK;
}

/* Hands `v` to *out when the caller asked for it, else frees it. */
static void give(pdckpt_value **out, pdckpt_value *v) {
    if (out)
        *out = v;
    else
        pdckpt_value_free(v);
}

pdckpt_status pdckpt_dygraph_load_persistables(const char *dirname, const pdckpt_load_options *opts,
                                               pdckpt_value **params, pdckpt_value **optimizers,
                                               pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (params) *params = NULL;
    if (optimizers) *optimizers = NULL;
    if (!dirname) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "dirname is NULL");
    struct stat st;
    if (stat(dirname, &st) != 0) return pdk_fail_sys(err, errno, dirname, "stat");
    if (!S_ISDIR(st.st_mode))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, dirname, -1,
                        "expected a directory, found a file");
    pdckpt_load_options o = PDCKPT_LOAD_OPTIONS_INIT;
    if (opts) o = *opts;
    o.format = PDCKPT_FORMAT_DYGRAPH_DIR;
    pdckpt_value *root = NULL;
    PDK_TRY(pdckpt_load_file(dirname, &o, &root, NULL, err));
    pdckpt_value *p = pdckpt_value_new_container(o.allocator, PDCKPT_KIND_DICT);
    pdckpt_value *q = pdckpt_value_new_container(o.allocator, PDCKPT_KIND_DICT);
    pdckpt_status status = p && q ? split_root(root, p, q, err) : pdk_fail_nomem(err, "dicts");
    pdckpt_value_free(root);
    if (status != PDCKPT_OK) {
        pdckpt_value_free(p);
        pdckpt_value_free(q);
        return status;
    }
    give(params, p);
    give(optimizers, q);
    return PDCKPT_OK;
}

static bool strip_suffix(char *path, const char *suffix) {
    size_t n = strlen(path), k = strlen(suffix);
    if (n < k || strcmp(path + n - k, suffix) != 0) return false;
    path[n - k] = '\0';
    return true;
}

static pdckpt_status load_one(const char *path, const pdckpt_load_options *opts,
                              bool keep_name_table, pdckpt_value **out, pdckpt_error *err) {
    PDK_TRY(pdckpt_load_file(path, opts, out, NULL, err));
    if (!keep_name_table)
        pdckpt_dict_remove(*out, PDCKPT_NAME_TABLE_KEY); /* tensors keep their names */
    return PDCKPT_OK;
}

pdckpt_status pdckpt_load_dygraph(const char *model_path, const pdckpt_load_options *opts,
                                  bool keep_name_table, pdckpt_value **params, pdckpt_value **opt,
                                  pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (params) *params = NULL;
    if (opt) *opt = NULL;
    char prefix[PATH_MAX], path[PATH_MAX + 16];
    if (!model_path || strlen(model_path) >= sizeof prefix)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "model_path is NULL or too long");
    snprintf(prefix, sizeof prefix, "%s", model_path);
    if (!strip_suffix(prefix, pdk_state_parts[0])) strip_suffix(prefix, pdk_state_parts[1]);
    struct stat st;
    snprintf(path, sizeof path, "%s%s", prefix, pdk_state_parts[0]);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return pdk_fail(err, PDCKPT_ERR_NOT_FOUND, path, -1,
                        "expected the parameter file of a save_dygraph checkpoint, found none");
    pdckpt_value *p = NULL, *q = NULL;
    PDK_TRY(load_one(path, opts, keep_name_table, &p, err));
    snprintf(path, sizeof path, "%s%s", prefix, pdk_state_parts[1]);
    if (stat(path, &st) == 0) {
        pdckpt_status status = load_one(path, opts, keep_name_table, &q, err);
        if (status != PDCKPT_OK) {
            pdckpt_value_free(p);
            return status;
        }
    }
    give(params, p);
    give(opt, q);
    return PDCKPT_OK;
}
