/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_load.c — public load entry points: argument checks, option defaults, format detection and
 * dispatch.  Files are mapped (zero-copy) or read; directories go to directory formats.
 */
#include "../formats/pdk_program.h"
#include "../formats/pdk_sharded.h"
#include "../formats/pickle/pickle.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pdckpt_status begin(pdckpt_value **out, pdckpt_error **err, pdckpt_error *local) {
    if (!*err) *err = local;
    pdk_error_reset(*err);
    if (!out) return pdk_fail(*err, PDCKPT_ERR_ARGUMENT, NULL, -1, "out is NULL");
    *out = NULL;
    return PDCKPT_OK;
}

static pdckpt_status load_dir(const char *path, const pdckpt_load_options *opts, pdckpt_value **out,
                              pdckpt_format *out_format, pdckpt_error *err) {
    const pdk_format *f = NULL;
    if (opts->format == PDCKPT_FORMAT_AUTO)
        PDK_TRY(pdk_format_detect_dir(path, &f, err));
    else
        PDK_TRY(pdk_format_usable(opts->format, true, path, &f, err));
    pdckpt_status st = f->load_dir(path, opts, out, err);
    pdk_error_set_source(err, path);
    if (st == PDCKPT_OK && out_format) *out_format = f->id;
    return st;
}

/* With load_options.program_path: the program names a combined file's tensors, or the variable
 * files of a directory; every tensor is checked against its declaration. */
static pdckpt_status load_with_program(const char *path, bool is_dir,
                                       const pdckpt_load_options *opts, pdckpt_value **out,
                                       pdckpt_format *out_format, pdckpt_error *err) {
    pdckpt_load_options po = *opts;
    po.format = PDCKPT_FORMAT_AUTO;
    pdckpt_program *p = NULL;
    PDK_TRY(pdk_program_open(opts->program_path, &po, &p, err));
    pdckpt_status st;
    pdk_input     in;
    if (is_dir) {
        st = pdk_inference_load_vars(path, p, opts, out, err);
    } else if ((st = pdk_input_open_load(path, opts, &in, err)) == PDCKPT_OK) {
        st = pdk_inference_load_combined(&in, p, opts, out, err);
        pdk_error_set_source(err, path);
        pdk_input_close(&in);
    }
    pdk_program_free(p);
    if (st == PDCKPT_OK && out_format)
        *out_format = is_dir ? PDCKPT_FORMAT_VARS_DIR : PDCKPT_FORMAT_COMBINED;
    return st;
}

/* A path that does not exist, resolved (an inference model prefix, paddle.static.save's prefix,
 * or nothing: then the stat error stands unless a program was found and something else failed). */
static pdckpt_status load_missing(const char *path, const pdk_found *found,
                                  const pdckpt_load_options *opts, pdckpt_value **out,
                                  pdckpt_format *out_format, pdckpt_error *err) {
    pdckpt_status st;
    if (found->kind == PDK_FOUND_STATIC) { /* paddle.static.save's X.pdparams... */
        st = pdckpt_static_load(path, opts, out, err);
    } else if (found->kind == PDK_FOUND_MODEL) {
        st = pdk_inference_load(path, opts, out, err);
    } else if (found->probe.status != PDCKPT_OK) {
        *err = found->probe;
        return found->probe.status;
    } else {
        return pdk_fail_sys(err, found->stat_errno, path, "stat");
    }
    if (st == PDCKPT_OK && out_format) *out_format = found->format->id;
    return st;
}

/* Paddle finds a parameters file's names in the program beside it; so does pdckpt.  The load is
 * the inference model's, from that program (its dims checked); --format combined reads the raw
 * streams by index. */
static pdckpt_status load_beside(const pdckpt_inference_paths *paths,
                                 const pdckpt_load_options *opts, pdckpt_value **out,
                                 pdckpt_format *out_format, pdckpt_error *err) {
    pdckpt_load_options po = *opts;
    pdckpt_program     *p = NULL;
    PDK_TRY(pdk_program_open(paths->program, &po, &p, err));
    pdckpt_status st = pdk_inference_load_params(paths, p, opts, out, err);
    pdk_program_free(p);
    if (st != PDCKPT_OK)
        pdk_error_prefix(
            err, "named by the program %s (--format combined reads it by index): ", paths->program);
    else if (out_format)
        *out_format = PDCKPT_FORMAT_INFERENCE;
    return st;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A lone X.pdiparams whose program is gone but whose X.pdiparams.info (Paddle 2.x jit.save:
 * {variable name: {structured_name, stop_gradient, trainable}}) is beside it: save_combine wrote
 * the program's persistable variables sorted by name, and the info lists them, so the names are
 * its keys byte-wise sorted -- when their count is the file's (a pruned program leaves extra
 * info entries: then the file is refused, not misnamed). */
static pdckpt_status load_info_named(const char *path, const char *info,
                                     const pdckpt_load_options *given, pdckpt_value **out,
                                     pdckpt_format *out_format, pdckpt_error *err) {
    pdckpt_value *vars = NULL;
    PDK_TRY(pdckpt_load_params_info(info, NULL, &vars, err));
    size_t       n = pdckpt_value_len(vars);
    const char **names = calloc(n + 1, sizeof *names);
    if (!names) {
        pdckpt_value_free(vars);
        return pdk_fail_nomem(err, "variable names");
    }
    for (size_t i = 0; i < n; i++) /* params_info.c checked the keys are strings */
        names[i] = pdckpt_value_get_string(pdckpt_dict_key_at(vars, i), NULL);
    qsort(names, n, sizeof *names, cmp_name);
    pdckpt_load_options opts = *given;
    opts.format = PDCKPT_FORMAT_COMBINED;
    opts.names = names;
    opts.n_names = n;
    pdk_input     in;
    pdckpt_status st = pdk_input_open_load(path, &opts, &in, err);
    if (st == PDCKPT_OK) {
        st = pdk_load_input(&in, &opts, out, out_format, err);
        pdk_input_close(&in);
    }
    if (st != PDCKPT_OK)
        pdk_error_prefix(
            err, "named by %s (%zu variables; --format combined reads it by index): ", info, n);
    free(names);
    pdckpt_value_free(vars);
    return st;
}

/* Loads what pdk_resolve found at `path`; options may override what the name implies. */
static pdckpt_status load_found(const char *path, const pdk_found *found, pdckpt_load_options *opts,
                                pdckpt_value **out, pdckpt_format *out_format, pdckpt_error *err) {
    if (found->kind == PDK_FOUND_MISSING || found->kind == PDK_FOUND_MODEL ||
        found->kind == PDK_FOUND_STATIC)
        return load_missing(path, found, opts, out, out_format, err);
    if (found->kind == PDK_FOUND_DIR) return load_dir(path, opts, out, out_format, err);
    bool by_name = opts->format == PDCKPT_FORMAT_AUTO && !opts->names;
    if (opts->format == PDCKPT_FORMAT_AUTO && found->kind == PDK_FOUND_INDEX)
        opts->format = found->format->id;
    if (opts->format == PDCKPT_FORMAT_SAFETENSORS_SHARDED ||
        opts->format == PDCKPT_FORMAT_PICKLE_SHARDED) /* the index file of a sharded checkpoint */
        return load_dir(path, opts, out, out_format, err);
    if (by_name && found->kind == PDK_FOUND_BESIDE) /* a lone X.pdiparams: named by its program */
        return load_beside(&found->paths, opts, out, out_format, err);
    if (by_name && found->kind == PDK_FOUND_INFO) { /* or by the .pdiparams.info beside it */
        if (!pdk_load_indexed(path, opts, out))     /* unless its own lazy-open index answers */
            return load_info_named(path, found->info, opts, out, out_format, err);
        if (out_format) *out_format = PDCKPT_FORMAT_PICKLE;
        return PDCKPT_OK;
    }
    return pdk_load_path(path, opts, out, out_format, err);
}

pdckpt_status pdckpt_load_file(const char *path, const pdckpt_load_options *given,
                               pdckpt_value **out, pdckpt_format *out_format, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    PDK_TRY(begin(out, &err, &local));
    if (!path) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "path is NULL");
    pdckpt_load_options opts;
    PDK_TRY(pdk_load_options_take(given, &opts, err));
    struct stat st;
    if (opts.program_path) {
        if (stat(path, &st) != 0) return pdk_fail_sys(err, errno, path, "stat");
        return load_with_program(path, S_ISDIR(st.st_mode), &opts, out, out_format, err);
    }
    pdk_found *found = malloc(sizeof *found); /* ~20 KiB of paths: not on the stack */
    if (!found) return pdk_fail_nomem(err, "path resolution");
    pdk_resolve(path, found);
    if (found->kind == PDK_FOUND_PREFIX) { /* X for X.pdiparams: load that file */
        char *target = strdup(found->target);
        if (target) pdk_resolve(target, found);
        pdckpt_status status = target ? load_found(target, found, &opts, out, out_format, err)
                                      : pdk_fail_nomem(err, "path resolution");
        free(target);
        free(found);
        return status;
    }
    pdckpt_status status = load_found(path, found, &opts, out, out_format, err);
    free(found);
    return status;
}

pdckpt_status pdckpt_load_memory(const void *data, size_t len, const pdckpt_load_options *given,
                                 pdckpt_value **out, pdckpt_format *out_format, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    PDK_TRY(begin(out, &err, &local));
    if (!data && len) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, "<memory>", -1, "data is NULL");
    pdckpt_load_options opts;
    PDK_TRY(pdk_load_options_take(given, &opts, err));
    pdk_input in;
    pdk_input_from_memory(data, len, opts.zero_copy, &in);
    if (!opts.program_path) return pdk_load_input(&in, &opts, out, out_format, err);
    /* Bytes from serialize_persistables: a combined stream the program names. */
    pdckpt_load_options po = opts;
    po.format = PDCKPT_FORMAT_AUTO;
    pdckpt_program *p = NULL;
    PDK_TRY(pdk_program_open(opts.program_path, &po, &p, err));
    pdckpt_status st = pdk_inference_load_combined(&in, p, &opts, out, err);
    pdk_program_free(p);
    if (st == PDCKPT_OK && out_format) *out_format = PDCKPT_FORMAT_COMBINED;
    return st;
}

pdckpt_status pdckpt_object_length(const void *data, size_t len, size_t *out,
                                   pdckpt_format *out_format, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!out || (!data && len))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, "<memory>", -1, "data/out is NULL");
    pdk_input in;
    pdk_input_from_memory(data, len, true, &in);
    pdckpt_format f = PDCKPT_FORMAT_AUTO;
    if (pdk_pickle_length(&in, out))
        f = PDCKPT_FORMAT_PICKLE;
    else if (pdk_selected_rows_length(&in, out))
        f = PDCKPT_FORMAT_SELECTED_ROWS; /* Paddle's load tries SelectedRows before a tensor */
    else if (pdk_tensor_stream_length(&in, out))
        f = PDCKPT_FORMAT_TENSOR;
    if (out_format) *out_format = f;
    if (f == PDCKPT_FORMAT_AUTO)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, "<memory>", 0,
                        "expected a pickle, a tensor stream or a SelectedRows stream");
    return PDCKPT_OK;
}

/* The format of what was found: the kind's, else the directory's or the bytes' evidence. */
static pdckpt_status found_format(const char *path, const pdk_found *found, pdckpt_format *out,
                                  pdckpt_error *err) {
    const pdk_format *f = found->format;
    if (found->kind == PDK_FOUND_MISSING && found->probe.status != PDCKPT_OK) {
        *err = found->probe;
        return found->probe.status;
    }
    if (found->kind == PDK_FOUND_MISSING) return pdk_fail_sys(err, found->stat_errno, path, "stat");
    if (found->kind == PDK_FOUND_DIR) PDK_TRY(pdk_format_detect_dir(path, &f, err));
    if (found->kind == PDK_FOUND_FILE) {
        pdk_input in;
        PDK_TRY(pdk_input_open_file(path, false, NULL, &in, err));
        pdckpt_status st = pdk_format_detect_input(&in, &f, err);
        pdk_input_close(&in);
        PDK_TRY(st);
    }
    *out = f->id;
    return PDCKPT_OK;
}

static void found_paths(const char *path, const pdk_found *found, pdckpt_resolved *out) {
    const char *target = path, *program = "", *info = "";
    if (found->kind == PDK_FOUND_MODEL)
        target = found->paths.params[0] ? found->paths.params : found->paths.vars_dir;
    if (found->kind == PDK_FOUND_MODEL || found->kind == PDK_FOUND_BESIDE) {
        program = found->paths.program;
        info = found->paths.info;
    }
    if (found->kind == PDK_FOUND_INFO) info = found->info;
    snprintf(out->target, sizeof out->target, "%s", target);
    snprintf(out->program, sizeof out->program, "%s", program);
    snprintf(out->info, sizeof out->info, "%s", info);
}

/* An inference model's directory: its program and .info (the directory holds the tensors). */
static void found_model_dir(const char *path, pdk_found *found, pdckpt_resolved *out) {
    pdckpt_error scratch = PDCKPT_ERROR_INIT;
    if (pdk_inference_locate(path, &found->paths, &scratch) != PDCKPT_OK) return;
    snprintf(out->program, sizeof out->program, "%s", found->paths.program);
    snprintf(out->info, sizeof out->info, "%s", found->paths.info);
}

pdckpt_status pdckpt_resolve(const char *path, pdckpt_resolved *out, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!path || !out) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "path/out is NULL");
    memset(out, 0, sizeof *out);
    pdk_found *found = malloc(sizeof *found);
    if (!found) return pdk_fail_nomem(err, "path resolution");
    pdk_resolve(path, found);
    char *prefixed = found->kind == PDK_FOUND_PREFIX ? strdup(found->target) : NULL;
    if (prefixed) { /* X for X.pdiparams: what that file is */
        pdk_resolve(prefixed, found);
        path = prefixed;
    }
    pdckpt_status st = found_format(path, found, &out->format, err);
    if (st == PDCKPT_OK) found_paths(path, found, out);
    if (st == PDCKPT_OK && found->kind == PDK_FOUND_DIR && out->format == PDCKPT_FORMAT_INFERENCE)
        found_model_dir(path, found, out);
    char pm[PDCKPT_PATH_MAX];
    if (st == PDCKPT_OK && found->kind == PDK_FOUND_STATIC &&
        pdk_static_programs(path, pm, out->program) == 1)
        snprintf(out->program, sizeof out->program, "%s", pm); /* its program, for the record */
    free(prefixed);
    free(found);
    return st;
}

pdckpt_status pdckpt_detect_format(const char *path, pdckpt_format *out, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!path || !out) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "path/out is NULL");
    pdckpt_resolved *r = malloc(sizeof *r);
    if (!r) return pdk_fail_nomem(err, "path resolution");
    pdckpt_status st = pdckpt_resolve(path, r, err);
    if (st == PDCKPT_OK) *out = r->format;
    free(r);
    return st;
}
