/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vars_dir.c — a directory with one tensor-stream file per variable (static save_persistables
 * with filename=None, 1.x inference directories), spec binary-and-static-formats.md §4.2.  A
 * variable whose name contains '/' lives in subdirectories.  Program files (__model__, *.pdmodel,
 * *.json), *.info files, other checkpoint files and hidden files are not variables and are
 * skipped; every other file must be one tensor stream, or the load fails naming it.  A checkpoint
 * directory holds regular files and directories only: a symbolic link, FIFO, socket or device
 * inside it is refused by name (links are not followed, so nothing outside can be read, and
 * nothing is opened that could block), and every file is opened beneath the directory's own
 * descriptor (safe_open.c).
 */
#include "pdk_format.h"

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

static bool has_suffix(const char *name, const char *suffix) {
    size_t n = strlen(name), s = strlen(suffix);
    return n >= s && strcmp(name + n - s, suffix) == 0;
}

/* The index and checksum sidecars pdckpt writes beside a file it saved: never variables, and
 * never named in an error about the directory (the file they belong to is). */
static bool is_our_sidecar(const char *name) {
    return has_suffix(name, PDK_NAME_INDEX) || has_suffix(name, PDCKPT_CHECKSUM_SUFFIX);
}

/* Files that sit in variable directories but are not variables. */
static bool is_not_a_variable(const char *name) {
    static const char *const suffixes[] = {PDK_NAME_PDMODEL,   PDK_NAME_PIR_JSON, PDK_NAME_INFO,
                                           PDK_NAME_PDIPARAMS, PDK_NAME_PDPARAMS, PDK_NAME_PDOPT,
                                           ".safetensors",     ".metadata",       ".distcp"};
    if (is_our_sidecar(name) || strncmp(name, PDK_NAME_MODEL_1X, strlen(PDK_NAME_MODEL_1X)) == 0 ||
        strcmp(name, PDK_NAME_PARAMS_1X) == 0)
        return true;
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
        if (has_suffix(name, suffixes[i])) return true;
    return false;
}

typedef struct name_list {
    char **names; /* relative paths */
    size_t len;
    size_t cap;
    char   skipped[256]; /* the first file passed over as not a variable, for the error */
} name_list;

static void names_free(name_list *nl) {
    for (size_t i = 0; i < nl->len; i++) free(nl->names[i]);
    free(nl->names);
}

static pdckpt_status names_add(name_list *nl, const char *rel, pdckpt_error *err) {
    PDK_TRY(pdk_grow(NULL, (void **)&nl->names, &nl->cap, nl->len + 1, sizeof *nl->names, err));
    nl->names[nl->len] = strdup(rel);
    if (!nl->names[nl->len]) return pdk_fail_nomem(err, "file name");
    nl->len++;
    return PDCKPT_OK;
}

/* The scan and the loads go through one open directory (dfd), so a save that swaps a new
 * directory in meanwhile cannot mix the two; `root` only names files in errors. */
typedef struct dir_ref {
    int         dfd;
    const char *root;
} dir_ref;

static pdckpt_status scan(dir_ref d, const char *rel, int depth, name_list *nl, pdckpt_error *err);

/* A hidden file is a variable when it is one tensor stream and no temporary of pdckpt's: Paddle
 * names files by variable, whatever the name (paddle.load of the directory gives '.w' too).
 * Other hidden entries -- ".", "..", hidden directories, editors' and pdckpt's own temporaries --
 * are passed over, as before. */
static bool is_hidden_variable(dir_ref d, const char *rel, const char *entry) {
    char        child_rel[PATH_MAX];
    struct stat st;
    int         n = snprintf(child_rel, sizeof child_rel, "%s%s%s", rel, *rel ? "/" : "", entry);
    if (n < 0 || (size_t)n >= sizeof child_rel || strstr(entry, ".pdckpt-") ||
        fstatat(d.dfd, child_rel, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
        return false;
    int fd = openat(d.dfd, child_rel, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return false;
    bool one_stream = pdk_tensor_stream_file_ok(fd, (uint64_t)st.st_size) == 1;
    close(fd);
    return one_stream;
}

static pdckpt_status scan_entry(dir_ref d, const char *rel, const char *entry, int depth,
                                name_list *nl, pdckpt_error *err) {
    char child_rel[PATH_MAX], full[PATH_MAX];
    int  n1 = snprintf(child_rel, sizeof child_rel, "%s%s%s", rel, *rel ? "/" : "", entry);
    int  n2 = snprintf(full, sizeof full, "%s/%s", d.root, child_rel);
    if (n1 < 0 || n2 < 0 || (size_t)n2 >= sizeof full)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, d.root, -1, "path too long: %s", child_rel);
    struct stat st;
    if (fstatat(d.dfd, child_rel, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return pdk_fail_sys(err, errno, full, "stat");
    if (S_ISDIR(st.st_mode)) return scan(d, child_rel, depth + 1, nl, err);
    if (!S_ISREG(st.st_mode)) return pdk_refuse_file_kind(st.st_mode, full, err);
    if (is_not_a_variable(entry)) {
        /* a long name is cut: it is only shown */
        if (!is_our_sidecar(entry) && !nl->skipped[0]) {
            strncpy(nl->skipped, child_rel, sizeof nl->skipped - 1);
            nl->skipped[sizeof nl->skipped - 1] = '\0';
        }
        return PDCKPT_OK;
    }
    return names_add(nl, child_rel, err);
}

static pdckpt_status scan(dir_ref d, const char *rel, int depth, name_list *nl, pdckpt_error *err) {
    if (depth > MAX_DIR_DEPTH)
        return pdk_fail(err, PDCKPT_ERR_LIMIT, d.root, -1, "expected at most %d directory levels",
                        MAX_DIR_DEPTH);
    int  fd = openat(d.dfd, *rel ? rel : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        int e = errno;
        if (fd >= 0) close(fd);
        return pdk_fail_sys(err, e, *rel ? rel : d.root, "open directory");
    }
    pdckpt_status  st = PDCKPT_OK;
    struct dirent *de;
    while (st == PDCKPT_OK && (de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.' && !is_hidden_variable(d, rel, de->d_name)) continue;
        st = scan_entry(d, rel, de->d_name, depth, nl, err);
    }
    closedir(dir);
    return st;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b); /* byte-wise, like Python's sorted() */
}

static pdckpt_status load_one(dir_ref d, const char *rel, const pdckpt_load_options *opts,
                              pdckpt_value *dict, pdckpt_error *err) {
    char full[PATH_MAX];
    snprintf(full, sizeof full, "%s/%s", d.root, rel);
    pdk_input in;
    PDK_TRY(pdk_input_open_file_at(d.dfd, rel, full, opts->zero_copy, opts->allocator, &in, err));
    pdckpt_value *tensor = NULL;
    pdckpt_status st = pdk_format_tensor.load(&in, opts, &tensor, err);
    if (st == PDCKPT_ERR_FORMAT && pdk_format_combined.sniff(&in) == PDK_SNIFF_CERTAIN)
        pdk_error_suffix(err,
                         " (a combined file: tensors in a row, as save_persistables(filename=) "
                         "writes; load that file itself, with its program to name them)");
    pdk_input_close(&in); /* tensors keep their own reference to the data */
    if (st == PDCKPT_OK) st = pdckpt_tensor_set_name(tensor, rel, err);
    if (st == PDCKPT_OK) return pdckpt_dict_set(dict, rel, tensor, err);
    pdckpt_value_free(tensor);
    return st;
}

static pdckpt_status load_all(dir_ref d, const pdckpt_load_options *opts, pdckpt_value **out,
                              pdckpt_error *err) {
    name_list     nl = {NULL, 0, 0, ""};
    pdckpt_status st = scan(d, "", 0, &nl, err);
    if (st == PDCKPT_OK && nl.len == 0 && nl.skipped[0]) /* a directory named for its file */
        st = pdk_fail(err, PDCKPT_ERR_FORMAT, d.root, -1,
                      "expected a checkpoint file or a directory of variable files, found a "
                      "directory whose files are not variables (e.g. '%s'): name the file itself",
                      nl.skipped);
    else if (st == PDCKPT_OK && nl.len == 0)
        st = pdk_fail(err, PDCKPT_ERR_FORMAT, d.root, -1,
                      "expected at least one variable file in the directory, found none");
    pdckpt_value *dict = NULL;
    if (st == PDCKPT_OK && !(dict = pdckpt_value_new_container(opts->allocator, PDCKPT_KIND_DICT)))
        st = pdk_fail_nomem(err, "directory root");
    if (st == PDCKPT_OK) qsort(nl.names, nl.len, sizeof *nl.names, cmp_names);
    for (size_t i = 0; i < nl.len && st == PDCKPT_OK; i++) {
        st = load_one(d, nl.names[i], opts, dict, err);
        if (opts->progress && st == PDCKPT_OK && opts->progress(opts->progress_ctx, i + 1, nl.len))
            st = pdk_fail(err, PDCKPT_ERR_ARGUMENT, d.root, -1, "cancelled");
    }
    names_free(&nl);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(dict);
        return st;
    }
    *out = dict;
    return PDCKPT_OK;
}

/* Whether `path` still names the directory open as `dfd` (a save may have swapped in another). */
static bool still_there(const char *path, int dfd) {
    struct stat now, held;
    return stat(path, &now) == 0 && fstat(dfd, &held) == 0 && now.st_dev == held.st_dev &&
           now.st_ino == held.st_ino;
}

/* A directory replaced during the load (a concurrent save swaps its new one in, then deletes
 * the old one's files) is loaded again from the top, a bounded number of times: the result is
 * always one complete checkpoint, never files of two. */
#define MAX_ATTEMPTS 16
static pdckpt_status vars_dir_load(const char *path, const pdckpt_load_options *opts,
                                   pdckpt_value **out, pdckpt_error *err) {
    pdckpt_status st = PDCKPT_OK;
    for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
        if (dfd < 0) return pdk_fail_sys(err, errno, path, "open directory");
        pdckpt_value *dict = NULL;
        st = load_all((dir_ref){dfd, path}, opts, &dict, err);
        bool replaced = !still_there(path, dfd);
        close(dfd);
        if (!replaced) {
            if (st == PDCKPT_OK) *out = dict;
            return st;
        }
        pdckpt_value_free(dict);
        if (st == PDCKPT_OK)
            st = pdk_fail(err, PDCKPT_ERR_IO, path, -1,
                          "the directory was replaced %d times while it was being loaded",
                          attempt + 1);
    }
    return st;
}

/* Evidence: some file in the top level parses as exactly one tensor stream.  The files are read
 * (not mapped: a file truncated meanwhile must not raise SIGBUS), beneath the directory. */
static int vars_dir_sniff(const char *path) {
    int  dfd = open(path, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
    DIR *dir = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!dir) {
        if (dfd >= 0) close(dfd);
        return PDK_SNIFF_NO;
    }
    int            score = PDK_SNIFF_WEAK; /* an empty directory is most likely an empty vars-dir */
    struct dirent *de;
    int            checked = 0;
    while ((de = readdir(dir)) != NULL && checked < 8) {
        struct stat st;
        if (de->d_name[0] == '.' || is_not_a_variable(de->d_name) ||
            fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        pdckpt_error scratch = PDCKPT_ERROR_INIT;
        pdk_input    in;
        checked++;
        if (pdk_input_open_file_at(dfd, de->d_name, de->d_name, false, NULL, &in, &scratch) !=
            PDCKPT_OK)
            continue;
        int s = pdk_format_tensor.sniff(&in);
        pdk_input_close(&in);
        if (s > 0) {
            score = PDK_SNIFF_LIKELY;
            break;
        }
    }
    closedir(dir);
    return score;
}

/* A vars-dir save writes one tensor stream per variable and nothing else. */
static int vars_dir_owns(const char *rel, int fd, uint64_t size) {
    (void)rel;
    return pdk_tensor_stream_file_ok(fd, size);
}

const pdk_dir_kind pdk_vars_dir_kind = {"vars-dir", vars_dir_owns};

static pdckpt_status vars_dir_save(const pdckpt_value *root, const char *path,
                                   const pdckpt_save_options *opts, pdckpt_error *err) {
    pdk_flat_list flat;
    PDK_TRY(pdk_flat_collect(root, opts, NULL, &flat, err));
    pdk_dirtx    *tx = NULL;
    pdckpt_status st =
        pdk_dirtx_begin(path, opts->durable, &pdk_vars_dir_kind, opts->allocator, &tx, err);
    for (size_t i = 0; i < flat.len && st == PDCKPT_OK; i++) {
        pdk_sink *sink = NULL;
        st = pdk_dirtx_open_file(tx, flat.entries[i].name, &sink, err);
        if (st == PDCKPT_OK) st = pdk_tensor_stream_write(sink, flat.entries[i].tensor, err);
        if (st == PDCKPT_OK)
            st = pdk_sink_commit(sink, err);
        else
            pdk_sink_abort(sink);
        if (st == PDCKPT_OK && opts->progress &&
            opts->progress(opts->progress_ctx, i + 1, flat.len))
            st = pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1, "cancelled");
    }
    pdk_flat_free(&flat);
    if (st == PDCKPT_OK) return pdk_dirtx_commit(tx, err);
    pdk_dirtx_abort(tx);
    return st;
}

const pdk_format pdk_format_vars_dir = {
    .id = PDCKPT_FORMAT_VARS_DIR,
    .name = "vars-dir",
    .sniff_dir = vars_dir_sniff,
    .load_dir = vars_dir_load,
    .save_dir = vars_dir_save,
};
