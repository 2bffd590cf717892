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

const char *const pdk_state_parts[2] = {".pdparams", ".pdopt"};
const char *const pdk_params_suffix = ".pdiparams";

int pdk_static_programs(const char *prefix, char *pdmodel, char *json) {
    if (pdk_path_join_suffix(pdmodel, "", prefix, ".pdmodel", NULL) != PDCKPT_OK ||
        pdk_path_join_suffix(json, "", prefix, ".json", NULL) != PDCKPT_OK)
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
    if (strcmp(base, "__model__") == 0)
        n = snprintf(out, PDCKPT_PATH_MAX, "%.*s__variables.info__", (int)(base - path), path);
    else if (dot && strcmp(dot, pdk_params_suffix) == 0)
        n = snprintf(out, PDCKPT_PATH_MAX, "%s.info", path);
    else
        n = snprintf(out, PDCKPT_PATH_MAX, "%.*s%s.info",
                     (int)(dot ? dot - path : (long)strlen(path)), path, pdk_params_suffix);
    if (n < 0 || n >= PDCKPT_PATH_MAX) out[0] = '\0';
    return out[0] && pdk_is_file(out);
}

/* Paddle's hint for a 1.x save_dygraph prefix: X.pdparams or X.pdopt exists, X does not. */
static void dygraph_hint(const char *path, pdk_found *out) {
    char named[PDCKPT_PATH_MAX];
    for (int p = 0; p < 2; p++)
        if (pdk_path_join_suffix(named, "", path, pdk_state_parts[p], NULL) == PDCKPT_OK &&
            pdk_is_file(named)) {
            pdk_fail(&out->probe, PDCKPT_ERR_NOT_FOUND, path, -1,
                     "no such file or directory, but %s exists: name the file in full", named);
            return;
        }
}

/* A path that does not exist: an inference-model prefix, else paddle.static.save's prefix, else
 * the prefix of a lone parameters file, else nothing (the stat error stands unless a program was
 * found and something else is wrong, or Paddle's save_dygraph hint applies). */
static void resolve_missing(const char *path, int stat_errno, pdk_found *out) {
    pdckpt_status st = pdk_inference_locate(path, &out->paths, &out->probe);
    bool          nothing = st == PDCKPT_ERR_NOT_FOUND && !out->paths.program[0];
    out->stat_errno = stat_errno;
    if (st == PDCKPT_OK) {
        out->kind = PDK_FOUND_MODEL;
        out->format = pdk_format_get(PDCKPT_FORMAT_INFERENCE);
    } else if (pdk_static_triple_at(path)) {
        out->kind = PDK_FOUND_STATIC;
        out->format = pdk_format_get(PDCKPT_FORMAT_PICKLE);
    } else if (nothing &&
               pdk_path_join_suffix(out->target, "", path, pdk_params_suffix, NULL) == PDCKPT_OK &&
               pdk_is_file(out->target)) {
        out->kind = PDK_FOUND_PREFIX; /* X for a lone X.pdiparams: the file decides */
        pdk_error_reset(&out->probe);
    } else {
        out->kind = PDK_FOUND_MISSING;
        if (nothing) pdk_error_reset(&out->probe);
        if (nothing) dygraph_hint(path, out);
    }
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
