/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_program.c — public entry points for programs (include/pdckpt.h "Programs, inference models
 * and static save/load"): loading a ProgramDesc or PIR JSON program and reading its variables,
 * feeds, fetches and the persistable list that names combined files (spec binary §3.2, §6).
 */
#include "../formats/pdk_program.h"

#include <string.h>

static pdckpt_status program_options(const pdckpt_load_options *given, pdckpt_load_options *o,
                                     pdckpt_error *err) {
    PDK_TRY(pdk_load_options_take(given, o, err));
    if (o->format != PDCKPT_FORMAT_PROGRAM && o->format != PDCKPT_FORMAT_PIR_JSON)
        o->format = PDCKPT_FORMAT_AUTO;
    return PDCKPT_OK;
}

pdckpt_status pdckpt_program_load_file(const char *path, const pdckpt_load_options *opts,
                                       pdckpt_program **out, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!path || !out) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "path/out is NULL");
    *out = NULL;
    pdckpt_load_options o;
    PDK_TRY(program_options(opts, &o, err));
    return pdk_program_open(path, &o, out, err);
}

pdckpt_status pdckpt_program_load_memory(const void *data, size_t len,
                                         const pdckpt_load_options *opts, pdckpt_program **out,
                                         pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!out || (!data && len))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, "<memory>", -1, "data/out is NULL");
    *out = NULL;
    pdckpt_load_options o;
    PDK_TRY(program_options(opts, &o, err));
    pdk_input in;
    pdk_input_from_memory(data, len, false, &in);
    return pdk_program_parse(&in, &o, out, err);
}

void pdckpt_program_free(pdckpt_program *program) {
    pdk_program_free(program);
}

pdckpt_format pdckpt_program_format(const pdckpt_program *program) {
    return program ? program->format : PDCKPT_FORMAT_AUTO;
}

int64_t pdckpt_program_version(const pdckpt_program *program) {
    return program ? program->version : -1;
}

size_t pdckpt_program_n_blocks(const pdckpt_program *program) {
    return program ? program->n_blocks : 0;
}

size_t pdckpt_program_n_ops(const pdckpt_program *program) {
    return program ? program->n_ops : 0;
}

size_t pdckpt_program_n_vars(const pdckpt_program *program) {
    return program ? program->n_vars : 0;
}

static void fill_var(const pdk_prog_var *v, pdckpt_program_var *out) {
    out->name = v->name;
    out->block = v->block;
    out->var_type = v->type;
    out->var_type_name = pdk_var_type_name(v->type);
    out->dtype = v->dtype;
    out->data_type = v->data_type;
    out->n_dims = v->n_dims;
    out->dims = v->dims;
    out->lod_level = v->lod_level;
    out->persistable = v->persistable;
    out->is_parameter = v->is_parameter;
    out->stop_gradient = v->stop_gradient;
    out->saved = v->saved;
}

bool pdckpt_program_var_at(const pdckpt_program *program, size_t i, pdckpt_program_var *out) {
    if (!program || !out || i >= program->n_vars) return false;
    fill_var(&program->vars[i], out);
    return true;
}

bool pdckpt_program_find_var(const pdckpt_program *program, const char *name,
                             pdckpt_program_var *out) {
    const pdk_prog_var *v = program && name ? pdk_program_find(program, name) : NULL;
    if (!v || !out) return v != NULL;
    fill_var(v, out);
    return true;
}

static const char *const *list_or_empty(const char *const *list, size_t len, size_t *n) {
    static const char *const empty[1] = {NULL};
    if (n) *n = len;
    return len ? list : empty;
}

const char *const *pdckpt_program_persistables(const pdckpt_program *program, size_t *n) {
    if (!program) return list_or_empty(NULL, 0, n);
    return list_or_empty(program->persistables, program->n_persistables, n);
}

const char *const *pdckpt_program_feeds(const pdckpt_program *program, size_t *n) {
    if (!program) return list_or_empty(NULL, 0, n);
    return list_or_empty(program->feeds.names, program->feeds.len, n);
}

const char *const *pdckpt_program_fetches(const pdckpt_program *program, size_t *n) {
    if (!program) return list_or_empty(NULL, 0, n);
    return list_or_empty(program->fetches.names, program->fetches.len, n);
}

pdckpt_status pdckpt_program_check(const pdckpt_program *program, const char *name,
                                   const pdckpt_value *tensor, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!program || !name)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "program/name is NULL");
    const pdk_prog_var *v = pdk_program_find(program, name);
    if (!v)
        return pdk_fail(err, PDCKPT_ERR_NOT_FOUND, NULL, -1,
                        "the program declares no variable '%s'", name);
    return pdk_program_check_tensor(v, tensor, NULL, -1, err);
}
