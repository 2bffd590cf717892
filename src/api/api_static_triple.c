/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_static_triple.c — the `paddle.static.save(program, "X")` checkpoint as one unit (issue 4
 * item 5; spec binary-and-static-formats.md §4): `X.pdmodel` (legacy IR) or `X.json` (PIR) names
 * the persistable variables, `X.pdparams` holds the parameters and `X.pdopt` the optimizer's
 * variables, both pickles of {name: ndarray}.  Loading reads both pickles and checks every
 * variable the program selects is in one of them with the declared dtype and shape.
 */
#include "../formats/pdk_program.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static pdckpt_status open_program(const char *prefix, const pdckpt_load_options *opts,
                                  pdckpt_program **prog, pdckpt_error *err) {
    char pm[PDCKPT_PATH_MAX], js[PDCKPT_PATH_MAX];
    int  found = pdk_static_programs(prefix, pm, js);
    if (found < 0) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, prefix, -1, "path prefix too long");
    if (found == 3)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, prefix, -1,
                        "expected one program for the static save, found both %s and %s", pm, js);
    pdckpt_load_options po = *opts;
    po.format = PDCKPT_FORMAT_AUTO;
    po.program_path = NULL;
    return pdckpt_program_load_file(found == 1 ? pm : js, &po, prog, err);
}

/* Every variable the program selects is in X.pdparams or X.pdopt, as declared; every tensor of
 * the two files is a variable of the program. */
static pdckpt_status check_against(const pdckpt_program *prog, const pdckpt_value *ckpt,
                                   const char *prefix, pdckpt_error *err) {
    size_t              n;
    const char *const  *names = pdckpt_program_persistables(prog, &n);
    const pdckpt_value *parts[2] = {pdckpt_dict_get(ckpt, "pdparams"),
                                    pdckpt_dict_get(ckpt, "pdopt")};
    for (size_t i = 0; i < n; i++) {
        const pdckpt_value *t = pdckpt_dict_get(parts[0], names[i]);
        if (!t && parts[1]) t = pdckpt_dict_get(parts[1], names[i]);
        if (!t)
            return pdk_fail(err, PDCKPT_ERR_NOT_FOUND, prefix, -1,
                            "expected %s.pdparams or %s.pdopt to hold the program's persistable "
                            "variable '%s', found it in neither",
                            prefix, prefix, names[i]);
        PDK_TRY(pdckpt_program_check(prog, names[i], t, err));
    }
    for (int p = 0; p < 2; p++) {
        for (size_t i = 0; parts[p] && i < pdckpt_value_len(parts[p]); i++) {
            const pdckpt_value *k = pdckpt_dict_key_at(parts[p], i),
                               *v = pdckpt_value_at(parts[p], i);
            const char *name = pdckpt_value_get_string(k, NULL);
            if (pdckpt_value_kind(v) == PDCKPT_KIND_TENSOR && name)
                PDK_TRY(pdckpt_program_check(prog, name, v, err));
        }
    }
    return PDCKPT_OK;
}

static pdckpt_status load_part(pdckpt_value *ckpt, const char *prefix, const char *ext,
                               const pdckpt_load_options *opts, pdckpt_error *err) {
    char path[PDCKPT_PATH_MAX];
    PDK_TRY(pdk_path_join_suffix(path, "", prefix, ext, err));
    if (ext == pdk_state_parts[1] && !pdk_is_file(path))
        return PDCKPT_OK; /* static.load allows it */
    pdckpt_load_options po = *opts;
    po.format = PDCKPT_FORMAT_PICKLE;
    po.program_path = NULL;
    pdckpt_value *tree = NULL;
    PDK_TRY(pdk_load_path(path, &po, &tree, NULL, err));
    if (pdckpt_value_kind(tree) != PDCKPT_KIND_DICT) {
        pdckpt_value_free(tree);
        return pdk_fail(err, PDCKPT_ERR_FORMAT, path, -1,
                        "expected a dict of variables (paddle.static.save), found a %s",
                        pdckpt_kind_name(pdckpt_value_kind(tree)));
    }
    return pdckpt_dict_set(ckpt, ext + 1, tree, err);
}

pdckpt_status pdckpt_static_load(const char *prefix, const pdckpt_load_options *given,
                                 pdckpt_value **out, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!prefix || !out) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "prefix/out is NULL");
    *out = NULL;
    pdckpt_load_options taken;
    PDK_TRY(pdk_load_options_take(given, &taken, err));
    const pdckpt_load_options *opts = &taken;
    pdckpt_program            *prog = NULL;
    PDK_TRY(open_program(prefix, opts, &prog, err));
    pdckpt_value *ckpt = pdckpt_value_new_container(opts->allocator, PDCKPT_KIND_DICT);
    pdckpt_status st = ckpt ? PDCKPT_OK : pdk_fail_nomem(err, "static checkpoint");
    for (int p = 0; p < 2 && st == PDCKPT_OK; p++)
        st = load_part(ckpt, prefix, pdk_state_parts[p], opts, err);
    if (st == PDCKPT_OK) st = check_against(prog, ckpt, prefix, err);
    pdckpt_program_free(prog);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(ckpt);
        return st;
    }
    *out = ckpt;
    return PDCKPT_OK;
}

/* paddle.static.save pickles {name: ndarray} as it is: a part holding no name table and no
 * Paddle-named tensor is written so (not as a state dict), unless the caller chose a layout; its
 * X.pdparams (not X.pdopt) with protocol 2-3 has its arrays over 1 GiB split, as Paddle's. */
static pdckpt_pickle_layout part_layout(const pdckpt_value *tree, pdckpt_pickle_layout given,
                                        bool params) {
    if (given != PDCKPT_PICKLE_LAYOUT_AUTO || pdckpt_dict_get(tree, PDCKPT_NAME_TABLE_KEY))
        return given;
    for (size_t i = 0; i < pdckpt_value_len(tree); i++) {
        pdckpt_tensor_view t;
        if (pdckpt_tensor_get_memory(pdckpt_value_at(tree, i), &t, NULL) && t.name) return given;
    }
    return params ? PDCKPT_PICKLE_LAYOUT_STATIC_PARAMS : PDCKPT_PICKLE_LAYOUT_GENERIC;
}

pdckpt_status pdckpt_static_save(const pdckpt_value *ckpt, const char *prefix,
                                 const pdckpt_save_options *given, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!ckpt || !prefix)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "ckpt/prefix is NULL");
    pdckpt_save_options so;
    PDK_TRY(pdk_save_options_take(given, &so, err));
    so.format = PDCKPT_FORMAT_PICKLE;
    const pdckpt_pickle_layout given_layout = so.pickle_layout;
    for (int p = 0; p < 2; p++) {
        const char         *part = pdk_state_parts[p] + 1; /* the dict key: no dot */
        const pdckpt_value *tree = pdckpt_dict_get(ckpt, part);
        if (!tree && p == 1) continue;
        if (!tree || pdckpt_value_kind(tree) != PDCKPT_KIND_DICT)
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, prefix, -1,
                            "expected the checkpoint to be a dict with a \"%s\" dict", part);
        char path[PDCKPT_PATH_MAX];
        PDK_TRY(pdk_path_join_suffix(path, "", prefix, pdk_state_parts[p], err));
        so.pickle_layout = part_layout(tree, given_layout, p == 0);
        PDK_TRY(pdk_save_path(tree, path, &so, err));
    }
    return PDCKPT_OK;
}
