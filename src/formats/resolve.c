/* SPDX-License-Identifier: Apache-2.0 */
/*
 * resolve.c — what a path names, decided once for load, detect, the CLI and Python (issue 17
 * item 2): a file, a directory, a sharded checkpoint's index file, an inference-model prefix,
 * paddle.static.save's prefix, parameters named by the program or .pdiparams.info beside them.
 * pdckpt_detect_format and pdckpt_load_file both start here, so they cannot disagree.
 */
#include "pdk_program.h"
#include "pdk_sharded.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

const char *const pdk_state_parts[2] = {PDK_NAME_PDPARAMS, PDK_NAME_PDOPT};
const char *const pdk_params_suffix = PDK_NAME_PDIPARAMS;

int pdk_static_programs(const char *prefix, char *pdmodel, char *json) {
    if (pdk_path_join_suffix(pdmodel, "", prefix, PDK_NAME_PDMODEL, NULL) != PDCKPT_OK ||
        pdk_path_join_suffix(json, "", prefix, PDK_NAME_PIR_JSON, NULL) != PDCKPT_OK)
        return -1;
    return (pdk_is_file(pdmodel) ? 1 : 0) | (pdk_is_file(json) ? 2 : 0);
}

bool pdk_static_triple_at(const char *prefix) {
    char a[PDCKPT_PATH_MAX], b[PDCKPT_PATH_MAX], c[PDCKPT_PATH_MAX];
    return pdk_path_join_suffix(a, "", prefix, pdk_state_parts[0], NULL) == PDCKPT_OK &&
           pdk_is_file(a) && pdk_static_programs(prefix, b, c) > 0;
}

bool pdckpt_info_path(const char *path, char *out) {
    if (!path || !out) return false;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    int         n;
    if (strcmp(base, PDK_NAME_MODEL_1X) == 0)
        n = snprintf(out, PDCKPT_PATH_MAX, "%.*s" PDK_NAME_INFO_1X, (int)(base - path), path);
    else if (dot && strcmp(dot, pdk_params_suffix) == 0)
        n = snprintf(out, PDCKPT_PATH_MAX, "%s" PDK_NAME_INFO, path);
    else
        n = snprintf(out, PDCKPT_PATH_MAX, "%.*s%s" PDK_NAME_INFO,
                     (int)(dot ? dot - path : (long)strlen(path)), path, pdk_params_suffix);
    if (n < 0 || n >= PDCKPT_PATH_MAX) out[0] = '\0';
    return out[0] && pdk_is_file(out);
}

/* Whether no program exists for the prefix (neither X.pdmodel nor X.json): the inference
 * locator then has nothing to say, and the weaker claims may speak. */
static bool no_program(const char *path) {
    char pm[PDCKPT_PATH_MAX], js[PDCKPT_PATH_MAX];
    return pdk_static_programs(path, pm, js) == 0;
}

/* out/model for out/model.{pdmodel|json} + out/model.pdiparams (inference.c locates it); a near
 * miss (the program without its parameters, two programs) keeps its reason. */
int pdk_locate_inference(const char *path, pdk_found *out) {
    pdckpt_status st = pdk_inference_locate(path, &out->paths, &out->probe);
    if (st == PDCKPT_OK) {
        out->kind = PDK_FOUND_MODEL;
        return PDK_SNIFF_CERTAIN;
    }
    if (st == PDCKPT_ERR_NOT_FOUND && !out->paths.program[0]) pdk_error_reset(&out->probe);
    return PDK_SNIFF_NO;
}

/* paddle.static.save's X (X.pdparams, X.pdopt and its program); with no program, X.pdparams or
 * X.pdopt alone is a 1.x save_dygraph prefix: Paddle's hint to name the file in full. */
int pdk_locate_static(const char *path, pdk_found *out) {
    if (pdk_static_triple_at(path)) {
        out->kind = PDK_FOUND_STATIC;
        return PDK_SNIFF_LIKELY;
    }
    char named[PDCKPT_PATH_MAX];
    for (int p = 0; p < 2 && no_program(path); p++)
        if (pdk_path_join_suffix(named, "", path, pdk_state_parts[p], NULL) == PDCKPT_OK &&
            pdk_is_file(named)) {
            pdk_fail(&out->probe, PDCKPT_ERR_NOT_FOUND, path, -1,
                     "no such file or directory, but %s exists: name the file in full", named);
            break;
        }
    return PDK_SNIFF_NO;
}

/* X for a lone X.pdiparams (no program beside it): the file decides what it is. */
int pdk_locate_params(const char *path, pdk_found *out) {
    if (!no_program(path) ||
        pdk_path_join_suffix(out->target, "", path, pdk_params_suffix, NULL) != PDCKPT_OK ||
        !pdk_is_file(out->target))
        return PDK_SNIFF_NO;
    out->kind = PDK_FOUND_PREFIX;
    return PDK_SNIFF_WEAK;
}

/* A path that does not exist: what the formats' locators claim, else nothing (the stat error
 * stands unless a near miss said why). */
static void resolve_missing(const char *path, int stat_errno, pdk_found *out) {
    out->stat_errno = stat_errno;
    if (!pdk_format_locate(path, out)) out->kind = PDK_FOUND_MISSING;
    out->stat_errno = stat_errno;
}

void pdk_resolve(const char *path, pdk_found *out) {
    memset(out, 0, sizeof *out);
    pdk_error_reset(&out->probe);
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        if (e == ENOENT) return resolve_missing(path, e, out);
        out->kind = PDK_FOUND_MISSING;
        out->stat_errno = e;
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        out->kind = PDK_FOUND_DIR;
    } else if ((out->format = pdk_sharded_for_index_name(path)) != NULL) {
        out->kind = PDK_FOUND_INDEX;
    } else if (pdk_inference_params_beside(path, &out->paths)) {
        out->kind = PDK_FOUND_BESIDE;
        out->format = pdk_format_get(PDCKPT_FORMAT_INFERENCE);
    } else if (pdk_params_info_beside(path, out->info)) {
        out->kind = PDK_FOUND_INFO;
        out->format = pdk_format_get(PDCKPT_FORMAT_COMBINED);
    } else {
        out->kind = PDK_FOUND_FILE;
    }
}
