/* SPDX-License-Identifier: Apache-2.0 */
/*
 * inference.c — inference models and other program-named checkpoints (spec
 * binary-and-static-formats.md §3.2-§3.4, §4.2): finding the program and parameters of a model
 * directory or path prefix, and reading a combined file or a directory of per-variable files with
 * the names the program's persistable rule gives, each tensor checked against its declaration.
 * Also the `inference` directory format, which outranks plain `vars-dir` when a program is there
 * and names every file it needs.
 */
#include "pdk_program.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- locating ---- */

/* Whether `name` is a regular file beneath `dir` (no "..", no absolute name, no link). */
static bool beneath_is_file(const char *dir, const char *name) {
    int  dfd = open(*dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
    bool yes = dfd >= 0 && pdk_is_regular_beneath(dfd, name);
    if (dfd >= 0) close(dfd);
    return yes;
}

/* Fills params/info for a program at `out->program` whose parameters may be `params` (NULL or
 * absent: per-variable files in `dir`). */
static pdckpt_status fill_params(const char *dir, const char *params, const char *info,
                                 pdckpt_inference_paths *out, pdckpt_error *err) {
    out->params[0] = out->info[0] = out->vars_dir[0] = '\0';
    if (params) PDK_TRY(pdk_path_join_suffix(out->params, dir, params, "", err));
    if (params && !pdk_is_file(out->params)) out->params[0] = '\0';
    if (!out->params[0]) snprintf(out->vars_dir, PDCKPT_PATH_MAX, "%s", dir);
    if (info) PDK_TRY(pdk_path_join_suffix(out->info, dir, info, "", err));
    if (info && !pdk_is_file(out->info)) out->info[0] = '\0';
    return PDCKPT_OK;
}

/* The fixed-name layouts, {program, parameters, info}, tried in order: 1.x __model__ with
 * __params__ (or jit.save's __variables__), PaddleOCR's model+params, per-variable files next to
 * __model__ or 3.x separate_parameters' __model__.json.  The names are the descriptors'
 * (pdk_format.h) except PaddleOCR's, which only this layout uses. */
static const char *const table[][3] = {
    {PDK_NAME_MODEL_1X, PDK_NAME_PARAMS_1X, NULL},
    {PDK_NAME_MODEL_1X, PDK_NAME_VARS_1X, PDK_NAME_INFO_1X},
    {"model", "params", NULL},
    {PDK_NAME_MODEL_1X, NULL, NULL},
    {PDK_NAME_MODEL_1X PDK_NAME_PIR_JSON, NULL, NULL},
};
#define N_FIXED (sizeof table / sizeof table[0])

static bool locate_fixed(const char *dir, pdckpt_inference_paths *out, pdckpt_error *err) {
    for (size_t i = 0; i < N_FIXED; i++) {
        char params[PDCKPT_PATH_MAX];
        if (pdk_path_join_suffix(out->program, dir, table[i][0], "", err) != PDCKPT_OK ||
            (table[i][1] && pdk_path_join_suffix(params, dir, table[i][1], "", err) != PDCKPT_OK))
            return false;
        if (!pdk_is_file(out->program) || (table[i][1] && !pdk_is_file(params))) continue;
        return fill_params(dir, table[i][1], table[i][2], out, err) == PDCKPT_OK;
    }
    return false;
}

/* A PIR JSON program by its first bytes (a directory may hold other .json files). */
static bool is_pir_file(const char *path) {
    pdckpt_error scratch = PDCKPT_ERROR_INIT;
    pdk_input    in;
    if (pdk_input_open_file(path, false, NULL, &in, &scratch) != PDCKPT_OK) return false;
    bool pir = pdk_program_pir_sniff(&in) > 0;
    pdk_input_close(&in);
    return pir;
}

typedef struct stem_scan {
    char first[256]; /* a candidate stem */
    char with_params[256];
    int  n, n_with_params;
} stem_scan;

static void consider(const char *dir, const char *entry, size_t stem_len, stem_scan *sc) {
    if (stem_len == 0 || stem_len >= sizeof sc->first) return;
    char stem[256], params[PDCKPT_PATH_MAX];
    memcpy(stem, entry, stem_len);
    stem[stem_len] = '\0';
    if (sc->n++ == 0) snprintf(sc->first, sizeof sc->first, "%s", stem);
    if (snprintf(params, sizeof params, "%s/%s" PDK_NAME_PDIPARAMS, dir, stem) <
            (int)sizeof params &&
        pdk_is_file(params) && sc->n_with_params++ == 0)
        snprintf(sc->with_params, sizeof sc->with_params, "%s", stem);
}

/* `X.pdmodel`, else a PIR `X.json`: the one program there, or the one with an X.pdiparams. */
static pdckpt_status locate_stem(const char *dir, const char *suffix, pdckpt_inference_paths *out,
                                 bool *found, pdckpt_error *err) {
    DIR *d = opendir(dir);
    if (!d) return pdk_fail_sys(err, errno, dir, "open directory");
    stem_scan      sc = {{0}, {0}, 0, 0};
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char   full[PDCKPT_PATH_MAX];
        size_t n = strlen(de->d_name), k = strlen(suffix);
        if (de->d_name[0] == '.' || !pdk_ends_with(de->d_name, suffix) ||
            snprintf(full, sizeof full, "%s/%s", dir, de->d_name) >= (int)sizeof full ||
            !pdk_is_file(full) || (strcmp(suffix, PDK_NAME_PIR_JSON) == 0 && !is_pir_file(full)))
            continue;
        consider(dir, de->d_name, n - k, &sc);
    }
    closedir(d);
    *found = sc.n > 0;
    if (sc.n > 1 && sc.n_with_params != 1)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, dir, -1,
                        "expected one program (*%s) in the directory, found %d; name it with "
                        "--program / load_options.program_path",
                        suffix, sc.n);
    if (sc.n == 0) return PDCKPT_OK;
    const char *stem = sc.n == 1 ? sc.first : sc.with_params;
    char        params[PDCKPT_PATH_MAX], info[PDCKPT_PATH_MAX];
    PDK_TRY(pdk_path_join_suffix(out->program, dir, stem, suffix, err));
    snprintf(params, sizeof params, "%s" PDK_NAME_PDIPARAMS, stem);
    snprintf(info, sizeof info, "%s" PDK_NAME_PDIPARAMS PDK_NAME_INFO, stem);
    return fill_params(dir, params, info, out, err);
}

static pdckpt_status locate_dir(const char *dir, pdckpt_inference_paths *out, pdckpt_error *err) {
    if (locate_fixed(dir, out, err)) return PDCKPT_OK;
    if (err && err->status != PDCKPT_OK) return err->status;
    bool found = false;
    PDK_TRY(locate_stem(dir, PDK_NAME_PDMODEL, out, &found, err));
    if (!found) PDK_TRY(locate_stem(dir, PDK_NAME_PIR_JSON, out, &found, err));
    if (!found)
        return pdk_fail(err, PDCKPT_ERR_NOT_FOUND, dir, -1,
                        "expected an inference model (__model__, *.pdmodel or a PIR *.json) in "
                        "the directory, found none");
    return PDCKPT_OK;
}

/* "out/model" (or "out/model.pdmodel", ".json", ".pdiparams"): out/model.{pdmodel|json} and
 * out/model.pdiparams. */
static pdckpt_status locate_prefix(const char *path, pdckpt_inference_paths *out,
                                   pdckpt_error *err) {
    char prefix[PDCKPT_PATH_MAX];
    snprintf(prefix, sizeof prefix, "%s", path);
    static const char *const suffixes[] = {PDK_NAME_PDMODEL, PDK_NAME_PIR_JSON, PDK_NAME_PDIPARAMS};
    for (size_t i = 0; i < 3; i++)
        if (pdk_ends_with(prefix, suffixes[i])) prefix[strlen(prefix) - strlen(suffixes[i])] = '\0';
    char pdmodel[PDCKPT_PATH_MAX], json[PDCKPT_PATH_MAX];
    PDK_TRY(pdk_path_join_suffix(pdmodel, "", prefix, PDK_NAME_PDMODEL, err));
    PDK_TRY(pdk_path_join_suffix(json, "", prefix, PDK_NAME_PIR_JSON, err));
    bool has_pdmodel = pdk_is_file(pdmodel), has_json = pdk_is_file(json);
    if (has_pdmodel && has_json)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1,
                        "expected one program for the prefix, found both %s and %s; name it "
                        "with --program / load_options.program_path",
                        pdmodel, json);
    if (!has_pdmodel && !has_json)
        return pdk_fail(err, PDCKPT_ERR_NOT_FOUND, path, -1,
                        "expected %s or %s (an inference model prefix), found neither", pdmodel,
                        json);
    snprintf(out->program, PDCKPT_PATH_MAX, "%s", has_pdmodel ? pdmodel : json);
    PDK_TRY(pdk_path_join_suffix(out->params, "", prefix, PDK_NAME_PDIPARAMS, err));
    PDK_TRY(pdk_path_join_suffix(out->info, "", prefix, PDK_NAME_PDIPARAMS PDK_NAME_INFO, err));
    out->vars_dir[0] = '\0';
    if (!pdk_is_file(out->info)) out->info[0] = '\0';
    if (!pdk_is_file(out->params))
        return pdk_fail(err, PDCKPT_ERR_NOT_FOUND, path, -1,
                        "found the program %s but no parameters %s", out->program, out->params);
    return PDCKPT_OK;
}

bool pdk_inference_params_beside(const char *path, pdckpt_inference_paths *out) {
    pdckpt_error scratch = PDCKPT_ERROR_INIT;
    memset(out, 0, sizeof *out);
    if (strlen(path) >= PDCKPT_PATH_MAX - 32) return false;
    if (pdk_ends_with(path, PDK_NAME_PDIPARAMS))
        return locate_prefix(path, out, &scratch) == PDCKPT_OK;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    bool        fixed = false; /* named as a fixed layout's parameters */
    for (size_t i = 0; i < N_FIXED; i++) fixed |= table[i][1] && strcmp(base, table[i][1]) == 0;
    if (!fixed) return false;
    char dir[PDCKPT_PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 0, path);
    return locate_fixed(dir, out, &scratch) && strcmp(out->params, path) == 0;
}

pdckpt_status pdk_inference_locate(const char *path, pdckpt_inference_paths *out,
                                   pdckpt_error *err) {
    memset(out, 0, sizeof *out);
    if (strlen(path) >= PDCKPT_PATH_MAX - 32)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1, "path too long");
    if (pdk_is_directory(path)) return locate_dir(path, out, err);
    return locate_prefix(path, out, err);
}

/* ---- loading with a program ---- */

/* What a checkpoint can hold for a selected variable: dense tensors everywhere, SelectedRows only
 * as per-variable files (Paddle's load_combine refuses them too). */
pdckpt_status pdk_inference_check_kind(const pdk_prog_var *v, bool combined, const char *source,
                                       pdckpt_error *err) {
    if (v->type == PDK_VT_LOD_TENSOR || v->type < 0) return PDCKPT_OK;
    if (v->type == PDK_VT_SELECTED_ROWS && !combined) return PDCKPT_OK;
    if (v->type == PDK_VT_SELECTED_ROWS)
        return pdk_fail(err, PDCKPT_ERR_UNSUPPORTED, source, -1,
                        "variable '%s' is SELECTED_ROWS, which a combined file cannot hold "
                        "(Paddle's load_combine refuses it too); save it as its own file",
                        v->name);
    return pdk_fail(err, PDCKPT_ERR_UNSUPPORTED, source, -1,
                    "variable '%s' is persistable but of kind %s, which pdckpt does not store "
                    "(Paddle's save ops refuse it too)",
                    v->name, pdk_var_type_name(v->type));
}

static pdckpt_status put_named(pdckpt_value *dict, const char *name, pdckpt_value *v,
                               pdckpt_error *err) {
    pdckpt_status st = PDCKPT_OK;
    if (pdckpt_value_kind(v) == PDCKPT_KIND_TENSOR) st = pdckpt_tensor_set_name(v, name, err);
    if (st == PDCKPT_OK) return pdckpt_dict_set(dict, name, v, err);
    pdckpt_value_free(v);
    return st;
}

static pdckpt_status read_one(pdk_cursor *cur, const pdk_input *in, const pdckpt_program *p,
                              size_t i, const pdckpt_load_options *opts, pdckpt_value *dict) {
    const pdk_prog_var *v = &p->vars[p->persistable_var[i]];
    if (pdk_cur_left(cur) == 0)
        return pdk_cur_fail(cur,
                            "expected %zu tensors (the program's persistable variables), found "
                            "%zu: the file ends before '%s'",
                            p->n_persistables, i, v->name);
    PDK_TRY(pdk_inference_check_kind(v, true, in->name, cur->err));
    size_t        at = cur->pos;
    pdckpt_value *t = NULL;
    pdckpt_status st = pdk_tensor_stream_read(cur, in, opts, &t);
    if (st != PDCKPT_OK) {
        pdk_error_prefix(cur->err, "tensor %zu '%s': ", i, v->name);
        return st;
    }
    st = pdk_program_check_tensor(v, t, in->name, (int64_t)(cur->origin + at), cur->err);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(t);
        return st;
    }
    return put_named(dict, v->name, t, cur->err);
}

pdckpt_status pdk_inference_load_combined(const pdk_input *in, const pdckpt_program *p,
                                          const pdckpt_load_options *opts, pdckpt_value **out,
                                          pdckpt_error *err) {
    pdckpt_value *dict = pdckpt_value_new_container(opts->allocator, PDCKPT_KIND_DICT);
    if (!dict) return pdk_fail_nomem(err, "parameters");
    pdk_cursor cur;
    pdk_cur_init(&cur, in->data, in->len, in->name, err);
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 0; i < p->n_persistables && st == PDCKPT_OK; i++) {
        st = read_one(&cur, in, p, i, opts, dict);
        if (st == PDCKPT_OK && opts->progress &&
            opts->progress(opts->progress_ctx, cur.pos, cur.len))
            st = pdk_fail(err, PDCKPT_ERR_ARGUMENT, in->name, -1, "cancelled");
    }
    if (st == PDCKPT_OK && pdk_cur_left(&cur) > 0)
        st = pdk_cur_fail(&cur,
                          "expected end of file after the program's %zu persistable variables, "
                          "found %zu more bytes",
                          p->n_persistables, pdk_cur_left(&cur));
    if (st != PDCKPT_OK) {
        pdckpt_value_free(dict);
        return st;
    }
    *out = dict;
    return PDCKPT_OK;
}

/* One per-variable file: a tensor stream, or a SelectedRows stream when the program says so;
 * the file must end right after it. */
static pdckpt_status read_var_file(const pdk_input *in, const pdk_prog_var *v,
                                   const pdckpt_load_options *opts, pdckpt_value **out,
                                   pdckpt_error *err) {
    pdk_cursor cur;
    pdk_cur_init(&cur, in->data, in->len, in->name, err);
    bool rows = v->type == PDK_VT_SELECTED_ROWS;
    PDK_TRY(rows ? pdk_selected_rows_read(&cur, in, opts, out)
                 : pdk_tensor_stream_read(&cur, in, opts, out));
    pdckpt_status st = PDCKPT_OK;
    if (pdk_cur_left(&cur) > 0)
        st = pdk_cur_fail(&cur, "expected end of file after the %s, found %zu more bytes",
                          rows ? "SelectedRows" : "tensor", pdk_cur_left(&cur));
    if (st == PDCKPT_OK)
        st = pdk_program_check_tensor(v, rows ? pdckpt_dict_get(*out, "value") : *out, in->name, 0,
                                      err);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(*out);
        *out = NULL;
    }
    return st;
}

/* The variable's file is opened beneath the directory (dfd): a name with "..", an absolute name
 * or a symbolic link on the way is refused, so a program cannot make pdckpt read (or convert
 * copy) a file outside the checkpoint. */
static pdckpt_status load_var(int dfd, const char *dir, const pdk_prog_var *v,
                              const pdckpt_load_options *opts, pdckpt_value *dict,
                              pdckpt_error *err) {
    char path[PDCKPT_PATH_MAX];
    PDK_TRY(pdk_path_join_suffix(path, dir, v->name, "", err));
    PDK_TRY(pdk_check_inner_name(v->name, dir, err));
    PDK_TRY(pdk_inference_check_kind(v, false, path, err));
    pdk_input     in;
    pdckpt_status st =
        pdk_input_open_file_at(dfd, v->name, path, opts->zero_copy, opts->allocator, &in, err);
    if (st != PDCKPT_OK && err->sys_errno == ENOENT) {
        pdk_error_reset(err);
        return pdk_fail(err, PDCKPT_ERR_NOT_FOUND, path, -1,
                        "expected a file for the program's persistable variable '%s', found none",
                        v->name);
    }
    PDK_TRY(st);
    pdckpt_value *value = NULL;
    st = read_var_file(&in, v, opts, &value, err);
    pdk_input_close(&in); /* tensors hold their own reference to the data */
    if (st != PDCKPT_OK) return st;
    return put_named(dict, v->name, value, err);
}

pdckpt_status pdk_inference_load_vars(const char *dir, const pdckpt_program *p,
                                      const pdckpt_load_options *opts, pdckpt_value **out,
                                      pdckpt_error *err) {
    int dfd = open(*dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
    if (dfd < 0) return pdk_fail_sys(err, errno, dir, "open directory");
    pdckpt_value *dict = pdckpt_value_new_container(opts->allocator, PDCKPT_KIND_DICT);
    if (!dict) {
        close(dfd);
        return pdk_fail_nomem(err, "parameters");
    }
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 0; i < p->n_persistables && st == PDCKPT_OK; i++) {
        st = load_var(dfd, dir, &p->vars[p->persistable_var[i]], opts, dict, err);
        if (st == PDCKPT_OK && opts->progress &&
            opts->progress(opts->progress_ctx, i + 1, p->n_persistables))
            st = pdk_fail(err, PDCKPT_ERR_ARGUMENT, dir, -1, "cancelled");
    }
    close(dfd);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(dict);
        return st;
    }
    *out = dict;
    return PDCKPT_OK;
}

/* Loads the parameters of `paths` with program `p`: the combined file, or per-variable files. */
pdckpt_status pdk_inference_load_params(const pdckpt_inference_paths *paths,
                                        const pdckpt_program *p, const pdckpt_load_options *opts,
                                        pdckpt_value **out, pdckpt_error *err) {
    if (!paths->params[0]) return pdk_inference_load_vars(paths->vars_dir, p, opts, out, err);
    pdk_input in;
    PDK_TRY(pdk_input_open_file(paths->params, opts->zero_copy, opts->allocator, &in, err));
    pdckpt_status st = pdk_inference_load_combined(&in, p, opts, out, err);
    pdk_error_set_source(err, paths->params);
    pdk_input_close(&in);
    return st;
}

/* A directory with `X.pdmodel` / `X.json` but neither `X.pdiparams` nor variable files (the
 * program was shipped alone): say so instead of naming the first missing variable file. */
static pdckpt_status check_params_present(const pdckpt_inference_paths *paths,
                                          const pdckpt_program *p, pdckpt_error *err) {
    const char *base = strrchr(paths->program, '/');
    base = base ? base + 1 : paths->program;
    const char *dot = strrchr(base, '.');
    if (paths->params[0] || p->n_persistables == 0 ||
        strncmp(base, PDK_NAME_MODEL_1X, strlen(PDK_NAME_MODEL_1X)) == 0 || !dot)
        return PDCKPT_OK;
    if (beneath_is_file(paths->vars_dir, p->persistables[0])) return PDCKPT_OK;
    return pdk_fail(err, PDCKPT_ERR_NOT_FOUND, paths->vars_dir, -1,
                    "found the program %s but no parameters: neither %.*s.pdiparams nor a file "
                    "per variable (list the program itself with `pdckpt ls %s`)",
                    base, (int)(dot - base), base, paths->program);
}

/* Loads the inference model at a directory or prefix: program, then its parameters. */
pdckpt_status pdk_inference_load(const char *path, const pdckpt_load_options *opts,
                                 pdckpt_value **out, pdckpt_error *err) {
    pdckpt_inference_paths paths;
    PDK_TRY(pdk_inference_locate(path, &paths, err));
    pdckpt_load_options po = *opts;
    po.format = PDCKPT_FORMAT_AUTO;
    pdckpt_program *p = NULL;
    pdckpt_status   st = pdk_program_open(paths.program, &po, &p, err);
    if (st != PDCKPT_OK && st != PDCKPT_ERR_NOMEM && pdk_is_directory(path))
        pdk_error_suffix(err, "; the directory's variable files alone load with --format vars-dir "
                              "(format=\"vars-dir\"), without the program");
    if (st != PDCKPT_OK) return st;
    st = check_params_present(&paths, p, err);
    if (st == PDCKPT_OK) st = pdk_inference_load_params(&paths, p, opts, out, err);
    pdk_program_free(p);
    return st;
}

/* ---- the `inference` directory format ---- */

/* Evidence: a program is here.  It outranks vars-dir (LIKELY) when it names every file it needs,
 * and when it does not parse: paddle.load of such a directory fails on the program ("Failed to
 * parse program_desc"), so the load reports it at its offset rather than listing the files as a
 * vars-dir silently.  A program whose files are partly missing leaves the directory to vars-dir
 * (which lists what is there); a program alone still claims the directory so that the load says
 * its parameters are missing. */
static int inference_sniff_dir(const char *path) {
    pdckpt_error           scratch = PDCKPT_ERROR_INIT;
    pdckpt_inference_paths paths;
    if (locate_dir(path, &paths, &scratch) != PDCKPT_OK) return PDK_SNIFF_NO;
    pdckpt_load_options opts = PDCKPT_LOAD_OPTIONS_INIT;
    pdckpt_program     *p = NULL;
    if (pdk_program_open(paths.program, &opts, &p, &scratch) != PDCKPT_OK)
        return PDK_SNIFF_LIKELY + 10;
    size_t present = 0;
    int    dfd = paths.params[0] ? -1 : open(path, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
    for (size_t i = 0; dfd >= 0 && i < p->n_persistables; i++)
        present += pdk_is_regular_beneath(dfd, p->persistables[i]);
    if (dfd >= 0) close(dfd);
    int score = paths.params[0] || present == p->n_persistables ? PDK_SNIFF_LIKELY + 10
                : present == 0                                  ? PDK_SNIFF_WEAK + 1
                                                                : PDK_SNIFF_NO;
    pdk_program_free(p);
    return score;
}

static pdckpt_status inference_load_dir(const char *path, const pdckpt_load_options *opts,
                                        pdckpt_value **out, pdckpt_error *err) {
    return pdk_inference_load(path, opts, out, err);
}

const pdk_format pdk_format_inference = {
    .id = PDCKPT_FORMAT_INFERENCE,
    .name = "inference",
    .sniff_dir = inference_sniff_dir,
    .load_dir = inference_load_dir,
    .locate = pdk_locate_inference,
};

bool pdk_params_info_beside(const char *path, char *info) {
    return pdk_ends_with(path, PDK_NAME_PDIPARAMS) &&
           snprintf(info, PDCKPT_PATH_MAX, "%s" PDK_NAME_INFO, path) < PDCKPT_PATH_MAX &&
           pdk_is_file(info);
}
