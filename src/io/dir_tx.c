/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dir_tx.c — directory transactions for per-variable layouts.  The new directory is built beside
 * the target under a temp name, synced, and swapped in with renameat2(RENAME_EXCHANGE), so readers
 * always see the whole old or the whole new directory.  Where the filesystem cannot exchange
 * (EINVAL/ENOSYS), the old directory is renamed aside first: a crash in that short window leaves
 * both complete copies: the old one under a ".<name>.pdckpt-tmp-*" name beside the new one.
 * A save replaces only what it owns: an existing directory is swapped out (and deleted) only when
 * everything in it is a file of the kind being written (ownership_check below).
 */
#define _GNU_SOURCE
#include "pdk_io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct pdk_dirtx {
    const pdckpt_allocator *alloc;
    const pdk_dir_kind     *kind;
    bool                    durable;
    char                    shown[PATH_MAX];  /* the name the caller gave (errors) */
    char                    target[PATH_MAX]; /* what is replaced: links followed */
    char                    temp[PATH_MAX];
    char                  **dirs; /* subdirectories created, for fsync */
    size_t                  n_dirs;
    size_t                  cap_dirs;
};

/* ---- what an existing directory may hold ---- */

#define MAX_OWNED_DEPTH 64

static pdckpt_status foreign(const pdk_dirtx *tx, const char *rel, const char *why,
                             pdckpt_error *err) {
    return pdk_fail(err, PDCKPT_ERR_ARGUMENT, tx->shown, -1,
                    "not replaced: the directory holds '%s' (%s), which is not part of a %s "
                    "checkpoint; a save replaces an existing directory only when everything in "
                    "it is (move '%s' away or save elsewhere)",
                    rel, why, tx->kind->name, rel);
}

static pdckpt_status owned_tree(const pdk_dirtx *tx, int dfd, const char *rel, int depth,
                                pdckpt_error *err);

static pdckpt_status owned_entry(const pdk_dirtx *tx, int dfd, const char *rel, const char *name,
                                 int depth, pdckpt_error *err) {
    struct stat st;
    if (name[0] == '.') return foreign(tx, rel, "a hidden entry", err);
    /* An entry that vanishes meanwhile (another save is swapping in its copy and deleting this
     * one) is not something this save would destroy. */
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? PDCKPT_OK : pdk_fail_sys(err, errno, tx->shown, "stat '%s'", rel);
    if (S_ISDIR(st.st_mode)) {
        int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (sub < 0 && errno == ENOENT) return PDCKPT_OK;
        if (sub < 0) return pdk_fail_sys(err, errno, tx->shown, "open '%s'", rel);
        pdckpt_status s = owned_tree(tx, sub, rel, depth + 1, err); /* closes sub */
        return s;
    }
    if (!S_ISREG(st.st_mode))
        return foreign(tx, rel, S_ISLNK(st.st_mode) ? "a symbolic link" : "not a regular file",
                       err);
    int fd;
    if (pdk_open_read(dfd, name, PDK_OPEN_BENEATH, tx->shown, &fd, &st, err) != PDCKPT_OK) {
        if (err->sys_errno != ENOENT) return err->status;
        pdk_error_reset(err);
        return PDCKPT_OK;
    }
    int ours = tx->kind->owns(rel, fd, (uint64_t)st.st_size), saved = errno;
    close(fd);
    if (ours < 0) return pdk_fail_sys(err, saved, tx->shown, "read '%s'", rel);
    return ours ? PDCKPT_OK : foreign(tx, rel, "a file this format does not write", err);
}

/* Checks every entry beneath dfd (which it closes). */
static pdckpt_status owned_tree(const pdk_dirtx *tx, int dfd, const char *rel, int depth,
                                pdckpt_error *err) {
    DIR *dir = depth <= MAX_OWNED_DEPTH ? fdopendir(dfd) : NULL;
    if (!dir) {
        close(dfd);
        return foreign(tx, rel, "too deep or unreadable", err);
    }
    pdckpt_status  st = PDCKPT_OK;
    struct dirent *de;
    while (st == PDCKPT_OK && (de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        char child[PATH_MAX];
        if (snprintf(child, sizeof child, "%s%s%s", rel, *rel ? "/" : "", de->d_name) >=
            (int)sizeof child)
            st = foreign(tx, de->d_name, "path too long", err);
        else
            st = owned_entry(tx, dirfd(dir), child, de->d_name, depth, err);
    }
    closedir(dir);
    return st;
}

/* Whether the existing target (if any) may be replaced by this save. */
static pdckpt_status ownership_check(const pdk_dirtx *tx, pdckpt_error *err) {
    struct stat st;
    if (lstat(tx->target, &st) != 0)
        return errno == ENOENT ? PDCKPT_OK : pdk_fail_sys(err, errno, tx->shown, "stat");
    if (!S_ISDIR(st.st_mode))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, tx->shown, -1,
                        "not replaced: expected a directory (or nothing) at the target, found %s",
                        S_ISREG(st.st_mode) ? "a file" : "a FIFO, socket or device");
    int dfd = open(tx->target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (dfd < 0) return pdk_fail_sys(err, errno, tx->shown, "open directory");
    return owned_tree(tx, dfd, "", 0, err);
}

pdckpt_status pdk_dirtx_begin(const char *target, bool durable, const pdk_dir_kind *kind,
                              const pdckpt_allocator *a, pdk_dirtx **out, pdckpt_error *err) {
    *out = NULL;
    if (strlen(target) >= PATH_MAX - 64)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, target, -1, "path too long");
    pdk_dirtx *tx = pdk_calloc(a, 1, sizeof *tx);
    if (!tx) return pdk_fail_nomem(err, "directory transaction");
    tx->alloc = a;
    tx->kind = kind;
    tx->durable = durable;
    snprintf(tx->shown, sizeof tx->shown, "%s", target);
    size_t n = strlen(tx->shown); /* "dir/" -> "dir" so the temp lands beside it */
    while (n > 1 && tx->shown[n - 1] == '/') tx->shown[--n] = '\0';
    struct stat   st;
    bool          exists;
    pdckpt_status status =
        pdk_resolve_save_target(tx->shown, tx->target, sizeof tx->target, &st, &exists, err);
    if (status == PDCKPT_OK) status = ownership_check(tx, err);
    if (status == PDCKPT_OK) pdk_remove_stale_temps(tx->target); /* a killed writer's debris */
    if (status == PDCKPT_OK)
        status = pdk_temp_path_beside(tx->target, tx->temp, sizeof tx->temp, err);
    if (status == PDCKPT_OK && mkdir(tx->temp, 0777) != 0)
        status = pdk_fail_sys(err, errno, target, "create temporary directory");
    if (status == PDCKPT_OK && exists && chmod(tx->temp, st.st_mode & 07777) != 0) {
        status = pdk_fail_sys(err, errno, target, "keep the directory's mode");
        rmdir(tx->temp);
    }
    if (status != PDCKPT_OK) {
        pdk_free(a, tx, sizeof *tx);
        return status;
    }
    *out = tx;
    return PDCKPT_OK;
}

static pdckpt_status check_relpath(const char *target, const char *rel, pdckpt_error *err) {
    const char *p = rel;
    if (*p == '\0' || *p == '/')
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, target, -1,
                        "variable name '%s' is not a relative path", rel);
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t      n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, target, -1,
                            "variable name '%s' has an empty, '.' or '..' path component", rel);
        if (slash && p[0] == '.') /* the loads pass hidden directories over */
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, target, -1,
                            "variable name '%s' has a directory starting with '.', which a "
                            "directory checkpoint's load passes over as hidden",
                            rel);
        p += n + (slash ? 1 : 0);
        if (slash && *p == '\0')
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, target, -1,
                            "variable name '%s' ends with '/'", rel);
    }
    return PDCKPT_OK;
}

static pdckpt_status remember_dir(pdk_dirtx *tx, const char *path, pdckpt_error *err) {
    PDK_TRY(pdk_grow(tx->alloc, (void **)&tx->dirs, &tx->cap_dirs, tx->n_dirs + 1, sizeof *tx->dirs,
                     err));
    tx->dirs[tx->n_dirs] = pdk_strndup(tx->alloc, path, strlen(path));
    if (!tx->dirs[tx->n_dirs]) return pdk_fail_nomem(err, "directory name");
    tx->n_dirs++;
    return PDCKPT_OK;
}

/* Creates every parent directory of `full` below the temp root. */
static pdckpt_status make_parents(pdk_dirtx *tx, char *full, pdckpt_error *err) {
    size_t root_len = strlen(tx->temp);
    for (char *p = full + root_len + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        pdckpt_status st = PDCKPT_OK;
        if (mkdir(full, 0777) == 0)
            st = remember_dir(tx, full, err);
        else if (errno != EEXIST || !pdk_is_directory(full))
            st = pdk_fail_sys(err, errno == EEXIST ? ENOTDIR : errno, tx->shown,
                              "create directory for '%s'", full + root_len + 1);
        *p = '/';
        PDK_TRY(st);
    }
    return PDCKPT_OK;
}

pdckpt_status pdk_dirtx_open_file(pdk_dirtx *tx, const char *relpath, pdk_sink **out,
                                  pdckpt_error *err) {
    *out = NULL;
    PDK_TRY(check_relpath(tx->shown, relpath, err));
    char full[PATH_MAX];
    int  n = snprintf(full, sizeof full, "%s/%s", tx->temp, relpath);
    if (n < 0 || (size_t)n >= sizeof full)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, tx->shown, -1, "path too long for '%s'", relpath);
    PDK_TRY(make_parents(tx, full, err));
    char shown[PATH_MAX];
    if (snprintf(shown, sizeof shown, "%s/%s", tx->shown, relpath) >= (int)sizeof shown)
        snprintf(shown, sizeof shown, "%s", full); /* too long to show: the temporary's name */
    pdckpt_status st = pdk_sink_open_plain_file(full, shown, tx->durable, tx->alloc, out, err);
    if (st != PDCKPT_OK && err->sys_errno == EEXIST) {
        err->status = PDCKPT_OK; /* replace the low-level message with the real cause */
        err->sys_errno = 0;
        st = pdk_fail(err, PDCKPT_ERR_ARGUMENT, tx->shown, -1,
                      "two variables map to the same file '%s'", relpath);
    }
    return st;
}

static void dirtx_free(pdk_dirtx *tx) {
    for (size_t i = 0; i < tx->n_dirs; i++) pdk_strfree(tx->alloc, tx->dirs[i]);
    pdk_free(tx->alloc, tx->dirs, tx->cap_dirs * sizeof *tx->dirs);
    pdk_free(tx->alloc, tx, sizeof *tx);
}

void pdk_dirtx_abort(pdk_dirtx *tx) {
    if (!tx) return;
    pdk_remove_tree(tx->temp);
    dirtx_free(tx);
}

static pdckpt_status swap_in(pdk_dirtx *tx, pdckpt_error *err) {
    return pdk_rename_replace(tx->temp, tx->target, tx->shown, err);
}

pdckpt_status pdk_dirtx_commit(pdk_dirtx *tx, pdckpt_error *err) {
    pdckpt_status st = PDCKPT_OK;
    if (tx->durable) {
        for (size_t i = tx->n_dirs; i-- > 0 && st == PDCKPT_OK;)
            st = pdk_fsync_dir_of(tx->dirs[i], true, err);
        if (st == PDCKPT_OK) st = pdk_fsync_dir_of(tx->temp, true, err);
        /* The user knows the checkpoint by its name, not by its temporary directory's. */
        if (st != PDCKPT_OK) pdk_error_replace_source(err, tx->shown);
    }
    /* Something may have been put into the old directory while the new one was written. */
    if (st == PDCKPT_OK) st = ownership_check(tx, err);
    if (st == PDCKPT_OK) st = swap_in(tx, err);
    if (st == PDCKPT_OK && tx->durable) st = pdk_fsync_dir_of(tx->target, false, err);
    if (st != PDCKPT_OK) {
        pdk_dirtx_abort(tx);
        return st;
    }
    dirtx_free(tx);
    return PDCKPT_OK;
}
