/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dygraph_dir.c — Paddle 1.5 `fluid.dygraph.save_persistables` directories, load side (spec
 * binary-and-static-formats.md §5.1, pickle-and-distributed-formats.md §3.1): one tensor-stream
 * file per variable under its name ('/' in a name means subdirectories) and optimizers/<name>,
 * protocol-2 pickles of the optimizers' LearningRateDecay objects.  The root is a DICT keyed by
 * relative path: the variables (tensors named by that path, sorted), then "optimizers/<name>" ->
 * what the pickle holds (LR-decay objects are opaque objects).  Detected ahead of vars-dir when
 * optimizers/ holds a pickle.  Like vars-dir, only regular files and directories may sit in it
 * (links, FIFOs, sockets, devices are refused by name) and every file is opened beneath the
 * directory's own descriptor.
 */
#include "pdk_format.h"

#include "pickle/pickle.h"
#include "pickle/pickle_write.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DIR_DEPTH 64
#define OPT_DIR       "optimizers"

typedef struct rel_list {
    char **names;
    size_t len, cap;
} rel_list;

static void rel_free(rel_list *l) {
    for (size_t i = 0; i < l->len; i++) free(l->names[i]);
    free(l->names);
    memset(l, 0, sizeof *l);
}

static pdckpt_status rel_add(rel_list *l, const char *rel, pdckpt_error *err) {
    PDK_TRY(pdk_grow(NULL, (void **)&l->names, &l->cap, l->len + 1, sizeof *l->names, err));
    if (!(l->names[l->len] = strdup(rel))) return pdk_fail_nomem(err, "file name");
    l->len++;
    return PDCKPT_OK;
}

static int cmp_rel(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b); /* byte-wise, like Python's sorted() */
}

/* Paddle's loader skips every directory whose path mentions "optimizers". */
static bool is_optimizer_dir(const char *rel) {
    return strstr(rel, OPT_DIR) != NULL;
}

static pdckpt_status scan(const char *root, const char *rel, int depth, rel_list *vars,
                          pdckpt_error *err);

static pdckpt_status scan_entry(const char *root, const char *rel, const char *entry, int depth,
                                rel_list *vars, pdckpt_error *err) {
    char child[PATH_MAX], full[PATH_MAX];
    int  n1 = snprintf(child, sizeof child, "%s%s%s", rel, *rel ? "/" : "", entry);
    int  n2 = snprintf(full, sizeof full, "%s/%s", root, child);
    if (n1 < 0 || n2 < 0 || (size_t)n2 >= sizeof full)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, root, -1, "path too long: %s", child);
    struct stat st;
    if (lstat(full, &st) != 0) return pdk_fail_sys(err, errno, full, "stat");
    if (S_ISDIR(st.st_mode))
        return is_optimizer_dir(child) ? PDCKPT_OK : scan(root, child, depth + 1, vars, err);
    return S_ISREG(st.st_mode) ? rel_add(vars, child, err)
                               : pdk_refuse_file_kind(st.st_mode, full, err);
}

static pdckpt_status scan(const char *root, const char *rel, int depth, rel_list *vars,
                          pdckpt_error *err) {
    if (depth > MAX_DIR_DEPTH)
        return pdk_fail(err, PDCKPT_ERR_LIMIT, root, -1, "expected at most %d directory levels",
                        MAX_DIR_DEPTH);
    char dir_path[PATH_MAX];
    int  n = snprintf(dir_path, sizeof dir_path, "%s%s%s", root, *rel ? "/" : "", rel);
    if (n < 0 || (size_t)n >= sizeof dir_path)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, root, -1, "path too long: %s", rel);
    DIR *dir = opendir(dir_path);
    if (!dir) return pdk_fail_sys(err, errno, dir_path, "open directory");
    pdckpt_status  st = PDCKPT_OK;
    struct dirent *de;
    while (st == PDCKPT_OK && (de = readdir(dir)) != NULL)
        if (de->d_name[0] != '.') st = scan_entry(root, rel, de->d_name, depth, vars, err);
    closedir(dir);
    return st;
}

/* The regular, non-hidden files directly in <root>/optimizers (none when it does not exist). */
static pdckpt_status list_optimizers(const char *root, rel_list *opts_out, pdckpt_error *err) {
    char dir_path[PATH_MAX];
    int  len = snprintf(dir_path, sizeof dir_path, "%s/" OPT_DIR, root);
    DIR *dir = len > 0 && (size_t)len < sizeof dir_path ? opendir(dir_path) : NULL;
    if (!dir) return PDCKPT_OK;
    pdckpt_status  st = PDCKPT_OK;
    struct dirent *de;
    while (st == PDCKPT_OK && (de = readdir(dir)) != NULL) {
        char        full[PATH_MAX];
        struct stat sb;
        if (de->d_name[0] == '.') continue;
        int n = snprintf(full, sizeof full, "%s/%s", dir_path, de->d_name);
        if (n <= 0 || (size_t)n >= sizeof full || lstat(full, &sb) != 0) continue;
        st = S_ISREG(sb.st_mode) ? rel_add(opts_out, de->d_name, err)
                                 : pdk_refuse_file_kind(sb.st_mode, full, err);
    }
    closedir(dir);
    return st;
}

/* Loads <root>/<rel> (beneath dfd) with `format` into dict[key]; variables are named by their
 * path. */
static pdckpt_status load_into(int dfd, const char *root, const char *rel, const char *key,
                               const pdk_format *format, const pdckpt_load_options *opts,
                               pdckpt_value *dict, pdckpt_error *err) {
    char full[PATH_MAX];
    int  n = snprintf(full, sizeof full, "%s/%s", root, rel);
    if (n < 0 || (size_t)n >= sizeof full)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, root, -1, "path too long: %s", rel);
    pdk_input in;
    PDK_TRY(pdk_input_open_file_at(dfd, rel, full, opts->zero_copy, opts->allocator, &in, err));
    pdckpt_value *v = NULL;
    pdckpt_status st = format->load(&in, opts, &v, err);
    pdk_error_set_source(err, full);
    pdk_input_close(&in); /* values keep their own reference to the data */
    if (st == PDCKPT_OK && format == &pdk_format_tensor) st = pdckpt_tensor_set_name(v, key, err);
    if (st == PDCKPT_OK) return pdckpt_dict_set(dict, key, v, err);
    pdckpt_value_free(v);
    return st;
}

static pdckpt_status load_all(const char *path, const pdckpt_load_options *opts,
                              const rel_list *vars, const rel_list *optims, pdckpt_value *dict,
                              pdckpt_error *err) {
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
    if (dfd < 0) return pdk_fail_sys(err, errno, path, "open directory");
    pdckpt_status st = PDCKPT_OK;
    size_t        total = vars->len + optims->len;
    for (size_t i = 0; i < vars->len && st == PDCKPT_OK; i++) {
        st = load_into(dfd, path, vars->names[i], vars->names[i], &pdk_format_tensor, opts, dict,
                       err);
        if (st == PDCKPT_OK && opts->progress && opts->progress(opts->progress_ctx, i + 1, total))
            st = pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1, "cancelled");
    }
    for (size_t i = 0; i < optims->len && st == PDCKPT_OK; i++) {
        char rel[PATH_MAX];
        int  n = snprintf(rel, sizeof rel, OPT_DIR "/%s", optims->names[i]);
        st = n > 0 && (size_t)n < sizeof rel
                 ? load_into(dfd, path, rel, rel, &pdk_format_pickle, opts, dict, err)
                 : pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1, "path too long: %s", rel);
    }
    close(dfd);
    return st;
}

static pdckpt_status dygraph_dir_load(const char *path, const pdckpt_load_options *opts,
                                      pdckpt_value **out, pdckpt_error *err) {
    rel_list      vars = {0}, optims = {0};
    pdckpt_status st = scan(path, "", 0, &vars, err);
    if (st == PDCKPT_OK) st = list_optimizers(path, &optims, err);
    if (st == PDCKPT_OK && vars.len + optims.len == 0)
        st = pdk_fail(err, PDCKPT_ERR_FORMAT, path, -1,
                      "expected variable files or " OPT_DIR
                      "/ pickles in the directory, found none");
    pdckpt_value *dict = NULL;
    if (st == PDCKPT_OK && !(dict = pdckpt_value_new_container(opts->allocator, PDCKPT_KIND_DICT)))
        st = pdk_fail_nomem(err, "directory root");
    if (st == PDCKPT_OK) {
        /* qsort(NULL, 0) is undefined behaviour (UBSan stops on it): sort only what exists. */
        if (vars.len > 1) qsort(vars.names, vars.len, sizeof *vars.names, cmp_rel);
        if (optims.len > 1) qsort(optims.names, optims.len, sizeof *optims.names, cmp_rel);
        st = load_all(path, opts, &vars, &optims, dict, err);
    }
    rel_free(&vars);
    rel_free(&optims);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(dict);
        return st;
    }
    *out = dict;
    return PDCKPT_OK;
}

/* Evidence: optimizers/ holds a pickle (a plain vars-dir has no such directory). */
static int dygraph_dir_sniff(const char *path) {
    rel_list     optims = {0};
    pdckpt_error scratch = PDCKPT_ERROR_INIT;
    int          score = PDK_SNIFF_NO;
    if (list_optimizers(path, &optims, &scratch) != PDCKPT_OK) optims.len = 0;
    for (size_t i = 0; i < optims.len && i < 8 && score == PDK_SNIFF_NO; i++) {
        char      full[PATH_MAX];
        int       n = snprintf(full, sizeof full, "%s/" OPT_DIR "/%s", path, optims.names[i]);
        pdk_input in;
        if (n < 0 || (size_t)n >= sizeof full ||
            pdk_input_open_file(full, false, NULL, &in, &scratch) != PDCKPT_OK)
            continue;
        if (pdk_pickle_sniff(&in) > 0) score = PDK_SNIFF_CERTAIN - 5;
        pdk_input_close(&in);
    }
    rel_free(&optims);
    return score;
}

const pdk_format pdk_format_dygraph_dir = {
    .id = PDCKPT_FORMAT_DYGRAPH_DIR,
    .name = "dygraph-dir",
    .sniff_dir = dygraph_dir_sniff,
    .load_dir = dygraph_dir_load,
    .save_dir = pdk_dygraph_dir_save, /* dygraph_dir_write.c */
};
