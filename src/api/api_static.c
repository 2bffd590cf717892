/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_static.c — public entry points for inference models and static save/load (include/pdckpt.h
 * "Programs, inference models and static save/load"; seed 002's save_persistables with
 * dirname/filename, and Paddle's serialize_persistables / deserialize_persistables; spec
 * binary-and-static-formats.md §3-§4).  The work is in formats/inference.c and static_save.c.
 */
#include "../formats/pdk_program.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static pdckpt_error *begin(pdckpt_error *err, pdckpt_error *local) {
    if (!err) err = local;
    pdk_error_reset(err);
    return err;
}

/* "dirname/filename", or filename alone when dirname is NULL. */
static pdckpt_status combined_path(const char *dirname, const char *filename, char *out,
                                   pdckpt_error *err) {
    int n = dirname ? snprintf(out, PDCKPT_PATH_MAX, "%s/%s", dirname, filename)
                    : snprintf(out, PDCKPT_PATH_MAX, "%s", filename);
    if (n < 0 || n >= PDCKPT_PATH_MAX)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, filename, -1, "path too long");
    return PDCKPT_OK;
}

pdckpt_status pdckpt_save_persistables(const pdckpt_program *program, const pdckpt_value *state,
                                       const char *dirname, const char *filename,
                                       const pdckpt_save_options *given, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    err = begin(err, &local);
    if (!program || !state || (!dirname && !filename))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, dirname, -1,
                        "program, state and a dirname or filename are required");
    pdckpt_save_options opts;
    PDK_TRY(pdk_save_options_take(given, &opts, err));
    if (!filename) {
        PDK_TRY(pdk_make_parent_dirs(dirname, err));
        return pdk_static_write_vars(program, state, dirname, &opts, err);
    }
    if (program->n_persistables == 0) return PDCKPT_OK; /* Paddle warns and writes nothing */
    char path[PDCKPT_PATH_MAX];
    PDK_TRY(combined_path(dirname, filename, path, err));
    PDK_TRY(pdk_make_parent_dirs(path, err)); /* as Paddle's save_combine op does */
    pdk_sink *sink = NULL;
    PDK_TRY(pdk_sink_open_atomic_file(path, opts.durable, opts.allocator, &sink, err));
    pdckpt_status st = pdk_static_write_combined(program, state, sink, err);
    if (st != PDCKPT_OK) {
        pdk_sink_abort(sink);
        pdk_error_set_source(err, path);
        return st;
    }
    st = pdk_sink_commit(sink, err);
    pdk_error_set_source(err, path);
    return st;
}

pdckpt_status pdckpt_serialize_persistables(const pdckpt_program      *program,
                                            const pdckpt_value        *state,
                                            const pdckpt_save_options *given, void **out_data,
                                            size_t *out_len, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    err = begin(err, &local);
    if (!program || !state || !out_data || !out_len)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, "<memory>", -1, "argument is NULL");
    *out_data = NULL;
    *out_len = 0;
    pdckpt_save_options opts;
    PDK_TRY(pdk_save_options_take(given, &opts, err));
    if (program->n_persistables == 0) return PDCKPT_OK;
    pdk_sink *sink = NULL;
    PDK_TRY(pdk_sink_open_memory(opts.allocator, &sink, err));
    pdckpt_status st = pdk_static_write_combined(program, state, sink, err);
    if (st != PDCKPT_OK) {
        pdk_sink_abort(sink);
        return st;
    }
    return pdk_sink_memory_take(sink, out_data, out_len, err);
}

static pdckpt_status load_input(const pdckpt_program *program, const pdk_input *in,
                                const pdckpt_load_options *opts, pdckpt_value **out,
                                pdckpt_error *err) {
    pdckpt_status st = pdk_inference_load_combined(in, program, opts, out, err);
    pdk_error_set_source(err, in->name);
    return st;
}

pdckpt_status pdckpt_load_persistables(const pdckpt_program *program, const char *dirname,
                                       const char *filename, const pdckpt_load_options *given,
                                       pdckpt_value **out, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    err = begin(err, &local);
    if (!program || !out || (!dirname && !filename))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, dirname, -1,
                        "program, out and a dirname or filename are required");
    *out = NULL;
    pdckpt_load_options opts;
    PDK_TRY(pdk_load_options_take(given, &opts, err));
    if (!filename || program->n_persistables == 0) /* nothing to read: an empty dict */
        return pdk_inference_load_vars(dirname, program, &opts, out, err);
    char path[PDCKPT_PATH_MAX];
    PDK_TRY(combined_path(dirname, filename, path, err));
    pdk_input in;
    PDK_TRY(pdk_input_open_file(path, opts.zero_copy, opts.allocator, &in, err));
    pdckpt_status st = load_input(program, &in, &opts, out, err);
    pdk_input_close(&in);
    return st;
}

pdckpt_status pdckpt_deserialize_persistables(const pdckpt_program *program, const void *data,
                                              size_t len, const pdckpt_load_options *given,
                                              pdckpt_value **out, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    err = begin(err, &local);
    if (!program || !out || (!data && len))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, "<memory>", -1, "argument is NULL");
    *out = NULL;
    pdckpt_load_options opts;
    PDK_TRY(pdk_load_options_take(given, &opts, err));
    pdk_input in;
    pdk_input_from_memory(data, len, opts.zero_copy, &in);
    return load_input(program, &in, &opts, out, err);
}

pdckpt_status pdckpt_inference_locate(const char *path, pdckpt_inference_paths *out,
                                      pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    err = begin(err, &local);
    if (!path || !out) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "path/out is NULL");
    return pdk_inference_locate(path, out, err);
}

pdckpt_status pdckpt_load_params_info(const char *path, const pdckpt_load_options *given,
                                      pdckpt_value **out, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    err = begin(err, &local);
    if (!path || !out) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "path/out is NULL");
    *out = NULL;
    pdckpt_load_options opts;
    PDK_TRY(pdk_load_options_take(given, &opts, err));
    pdk_input in;
    PDK_TRY(pdk_input_open_file(path, false, opts.allocator, &in, err));
    pdckpt_status st = pdk_params_info_parse(&in, &opts, out, err);
    pdk_input_close(&in);
    return st;
}
