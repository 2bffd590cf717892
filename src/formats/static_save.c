/* SPDX-License-Identifier: Apache-2.0 */
/*
 * static_save.c — Paddle's static save_persistables / save_vars(predicate=is_persistable)
 * (spec binary-and-static-formats.md §3, §4.2, §4.3; seed 002): the program's selection rule
 * chooses the variables, the state supplies them, each is checked against its declaration, and
 * they are written in sorted order as one combined stream (file or memory) or as one file per
 * variable (SelectedRows streams for SELECTED_ROWS variables).
 */
#include "pdk_program.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* A paddle.static.save checkpoint ({"pdparams": {..}[, "pdopt": {..}]}, as pdckpt_static_load
 * gives it) holds its variables in its two parts, which Paddle's load_program_state merges: the
 * part holding `name` (else the last), or `state` itself when it is not such a checkpoint. */
static const pdckpt_value *triple_part(const pdckpt_value *state, const char *name) {
    const pdckpt_value *parts[2];
    for (int p = 0; p < 2; p++) parts[p] = pdckpt_dict_get(state, pdk_state_parts[p] + 1);
    if (pdckpt_value_kind(parts[0]) != PDCKPT_KIND_DICT ||
        pdckpt_value_len(state) != (parts[1] ? 2u : 1u) ||
        (parts[1] && pdckpt_value_kind(parts[1]) != PDCKPT_KIND_DICT))
        return state;
    return pdckpt_dict_get(parts[0], name) || !parts[1] ? parts[0] : parts[1];
}

/* The entry keyed by the variable's name, else the one tensor that carries it as its Paddle name
 * (a paddle.save state dict keyed "emb.weight", whose name table names it "embedding_0.w_0"). */
static pdckpt_status find_entry(const pdk_prog_var *v, const pdckpt_value *state,
                                const pdckpt_value **out, pdckpt_error *err) {
    state = triple_part(state, v->name);
    *out = pdckpt_dict_get(state, v->name);
    for (size_t i = 0; !pdckpt_dict_get(state, v->name) && i < pdckpt_value_len(state); i++) {
        pdckpt_tensor_view t;
        if (!pdckpt_tensor_get_memory(pdckpt_value_at(state, i), &t, NULL) || !t.name ||
            strcmp(t.name, v->name) != 0)
            continue;
        if (*out)
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                            "variable '%s': two tensors of the state carry that Paddle name",
                            v->name);
        *out = pdckpt_value_at(state, i);
    }
    if (!*out)
        return pdk_fail(err, PDCKPT_ERR_NOT_FOUND, NULL, -1,
                        "expected the state to hold the program's persistable variable '%s', "
                        "found no such key and no tensor of that Paddle name",
                        v->name);
    return PDCKPT_OK;
}

/* The state's entry for a selected variable, checked against the declaration. */
static pdckpt_status entry_for(const pdk_prog_var *v, const pdckpt_value *state,
                               const pdckpt_value **out, pdckpt_error *err) {
    const pdckpt_value *x = NULL;
    PDK_TRY(find_entry(v, state, &x, err));
    const pdckpt_value *tensor = x;
    if (v->type == PDK_VT_SELECTED_ROWS) {
        tensor = pdckpt_value_kind(x) == PDCKPT_KIND_DICT ? pdckpt_dict_get(x, "value") : NULL;
        if (!tensor)
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                            "SELECTED_ROWS variable '%s': expected a dict {\"rows\", \"height\", "
                            "\"value\"}, found a %s",
                            v->name, pdckpt_kind_name(pdckpt_value_kind(x)));
    }
    PDK_TRY(pdk_program_check_tensor(v, tensor, NULL, -1, err));
    *out = x;
    return PDCKPT_OK;
}

/* Every selected variable is storable and present before the first byte is written. */
static pdckpt_status precheck(const pdckpt_program *p, const pdckpt_value *state, bool combined,
                              const char *target, pdckpt_error *err) {
    if (pdckpt_value_kind(state) != PDCKPT_KIND_DICT)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, target, -1,
                        "expected the state as a dict name -> tensor, found a %s",
                        pdckpt_kind_name(pdckpt_value_kind(state)));
    for (size_t i = 0; i < p->n_persistables; i++) {
        const pdk_prog_var *v = &p->vars[p->persistable_var[i]];
        const pdckpt_value *x;
        PDK_TRY(pdk_inference_check_kind(v, combined, target, err));
        PDK_TRY(entry_for(v, state, &x, err));
    }
    return PDCKPT_OK;
}

pdckpt_status pdk_static_write_combined(const pdckpt_program *p, const pdckpt_value *state,
                                        pdk_sink *sink, pdckpt_error *err) {
    PDK_TRY(precheck(p, state, true, sink->name, err));
    for (size_t i = 0; i < p->n_persistables; i++) {
        const pdk_prog_var *v = &p->vars[p->persistable_var[i]];
        const pdckpt_value *x = NULL;
        pdckpt_status       st = find_entry(v, state, &x, err);
        if (st == PDCKPT_OK) st = pdk_tensor_stream_write(sink, x, err);
        if (st != PDCKPT_OK) {
            pdk_error_prefix(err, "variable '%s': ", v->name);
            return st;
        }
    }
    return PDCKPT_OK;
}

static pdckpt_status write_entry(pdk_sink *sink, const pdk_prog_var *v, const pdckpt_value *x,
                                 pdckpt_error *err) {
    pdckpt_status st = v->type == PDK_VT_SELECTED_ROWS
                           ? pdk_selected_rows_write(sink, x, v->name, err)
                           : pdk_tensor_stream_write(sink, x, err);
    if (st == PDCKPT_OK) return pdk_sink_commit(sink, err);
    pdk_sink_abort(sink);
    return st;
}

/* A new directory: built beside the target and swapped in as a whole. */
static pdckpt_status write_new_dir(const pdckpt_program *p, const pdckpt_value *state,
                                   const char *dirname, const pdckpt_save_options *opts,
                                   pdckpt_error *err) {
    pdk_dirtx *tx = NULL;
    PDK_TRY(pdk_dirtx_begin(dirname, opts->durable, &pdk_vars_dir_kind, opts->allocator, &tx, err));
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 0; i < p->n_persistables && st == PDCKPT_OK; i++) {
        const pdk_prog_var *v = &p->vars[p->persistable_var[i]];
        const pdckpt_value *x = NULL;
        pdk_sink           *sink = NULL;
        st = pdk_inference_check_kind(v, false, dirname, err);
        if (st == PDCKPT_OK) st = entry_for(v, state, &x, err);
        if (st == PDCKPT_OK) st = pdk_dirtx_open_file(tx, v->name, &sink, err);
        if (st == PDCKPT_OK) st = write_entry(sink, v, x, err);
    }
    if (st == PDCKPT_OK) return pdk_dirtx_commit(tx, err);
    pdk_dirtx_abort(tx);
    return st;
}

/* Creates the subdirectories a '/' in `rel` implies under `dirname`; refuses '..' and absolute
 * names so a variable name can never write outside the directory. */
static pdckpt_status make_parents(const char *dirname, const char *rel, pdckpt_error *err) {
    if (rel[0] == '/' || strstr(rel, "../") || strcmp(rel, "..") == 0 ||
        (strlen(rel) >= 3 && strcmp(rel + strlen(rel) - 3, "/..") == 0) || strstr(rel, "//"))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, dirname, -1,
                        "variable name '%s' is not a plain relative path", rel);
    char path[4096];
    for (const char *slash = strchr(rel, '/'); slash; slash = strchr(slash + 1, '/')) {
        int n = snprintf(path, sizeof path, "%s/%.*s", dirname, (int)(slash - rel), rel);
        if (n < 0 || (size_t)n >= sizeof path)
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, dirname, -1, "path too long: %s", rel);
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return pdk_fail_sys(err, errno, path, "create directory");
    }
    return PDCKPT_OK;
}

/* An existing directory (e.g. next to __model__): each variable file replaced atomically. */
static pdckpt_status write_into_dir(const pdckpt_program *p, const pdckpt_value *state,
                                    const char *dirname, const pdckpt_save_options *opts,
                                    pdckpt_error *err) {
    for (size_t i = 0; i < p->n_persistables; i++) {
        const pdk_prog_var *v = &p->vars[p->persistable_var[i]];
        const pdckpt_value *x = NULL;
        char                path[4096];
        PDK_TRY(pdk_inference_check_kind(v, false, dirname, err));
        PDK_TRY(entry_for(v, state, &x, err));
        PDK_TRY(make_parents(dirname, v->name, err));
        int n = snprintf(path, sizeof path, "%s/%s", dirname, v->name);
        if (n < 0 || (size_t)n >= sizeof path)
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, dirname, -1, "path too long: %s", v->name);
        pdk_sink *sink = NULL;
        PDK_TRY(pdk_sink_open_atomic_inner(path, opts->durable, opts->allocator, &sink, err));
        PDK_TRY(write_entry(sink, v, x, err));
    }
    return PDCKPT_OK;
}

pdckpt_status pdk_static_write_vars(const pdckpt_program *p, const pdckpt_value *state,
                                    const char *dirname, const pdckpt_save_options *opts,
                                    pdckpt_error *err) {
    if (p->n_persistables == 0) return PDCKPT_OK; /* Paddle warns and writes nothing */
    PDK_TRY(precheck(p, state, false, dirname, err));
    if (pdk_is_directory(dirname)) return write_into_dir(p, state, dirname, opts, err);
    return write_new_dir(p, state, dirname, opts, err);
}
