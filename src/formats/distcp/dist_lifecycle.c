/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_lifecycle.c — the life of checkpoint ids in a sharded directory (issue 20,
 * docs/RELIABILITY.md "Sharded checkpoints: commit protocol"):
 *   - a checkpoint is committed when "<id>.metadata" appears (written last, atomically); data
 *     files "<number>_<id><ext>" that no committed metadata names are uncommitted leftovers of a
 *     killed or failed save, and the next save removes them;
 *   - saving an id that is already committed never touches the files its metadata names: the new
 *     data files take other numbers (a base past the old ones, or 0 when the old ones lie past the
 *     ranks), so until the new metadata replaces the old one by rename the previous checkpoint of
 *     that id loads, whole; after the rename the old files are removed;
 *   - keep_last keeps the newest N committed ids: older ones lose their metadata first (so a kill
 *     mid-removal leaves an uncommitted rest, never a committed torn one), then their files;
 *   - pdckpt_sharded_gc does all of it without saving.
 * Only names this module parses as data files or metadata, of the type it writes (a regular file;
 * a directory for .vars), are ever removed; symlinks never.  One job writes a directory at a time.
 */
#include "pdk_distcp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct entry {
    char         *name;
    pdk_ckpt_name n;
    bool          gone; /* removed by this pass */
} entry;

typedef struct ckpt_dir {
    const char *path;
    entry      *items;
    size_t      len, cap;
    int64_t    *complete; /* ids with metadata, ascending */
    size_t      n_complete;
    int64_t     largest;
} ckpt_dir;

static void dir_free(ckpt_dir *c) {
    for (size_t i = 0; i < c->len; i++) free(c->items[i].name);
    free(c->items);
    free(c->complete);
    c->items = NULL, c->complete = NULL, c->len = c->cap = c->n_complete = 0;
}

static int cmp_id(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static bool is_complete(const ckpt_dir *c, int64_t id) {
    return bsearch(&id, c->complete, c->n_complete, sizeof id, cmp_id) != NULL;
}

/* Keeps `name` when it is one of ours and of the type we write (no symlinks). */
static pdckpt_status add_entry(ckpt_dir *c, int dfd, const char *name, pdckpt_error *err) {
    pdk_ckpt_name n;
    struct stat   sb;
    if (!pdk_parse_ckpt_name(name, &n) || fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
        (n.is_dir ? !S_ISDIR(sb.st_mode) : !S_ISREG(sb.st_mode)))
        return PDCKPT_OK;
    if (c->len == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        entry *grown = realloc(c->items, cap * sizeof *grown);
        if (!grown) return pdk_fail_nomem(err, "the directory listing");
        c->items = grown, c->cap = cap;
    }
    if (!(c->items[c->len].name = strdup(name)))
        return pdk_fail_nomem(err, "the directory listing");
    c->items[c->len].gone = false;
    c->items[c->len++].n = n;
    if (n.id > c->largest) c->largest = n.id;
    return PDCKPT_OK;
}

static pdckpt_status dir_read(const char *path, ckpt_dir *c, pdckpt_error *err) {
    memset(c, 0, sizeof *c);
    c->path = path;
    c->largest = -1;
    DIR *d = opendir(path);
    if (!d) return pdk_fail_sys(err, errno, path, "open directory");
    pdckpt_status  st = PDCKPT_OK;
    struct dirent *de;
    while (st == PDCKPT_OK && (de = readdir(d)) != NULL)
        st = add_entry(c, dirfd(d), de->d_name, err);
    closedir(d);
    if (st == PDCKPT_OK && !(c->complete = malloc((c->len + 1) * sizeof *c->complete)))
        st = pdk_fail_nomem(err, "the directory listing");
    for (size_t i = 0; st == PDCKPT_OK && i < c->len; i++)
        if (c->items[i].n.is_meta) c->complete[c->n_complete++] = c->items[i].n.id;
    if (st == PDCKPT_OK) qsort(c->complete, c->n_complete, sizeof *c->complete, cmp_id);
    if (st != PDCKPT_OK) dir_free(c);
    return st;
}

static size_t remove_entry(const ckpt_dir *c, entry *e) {
    char path[4200];
    if (e->gone) return 0;
    e->gone = true;
    if (snprintf(path, sizeof path, "%s/%s", c->path, e->name) >= (int)sizeof path) return 0;
    pdk_remove_tree(path);
    return 1;
}

/* ---- what a committed id's metadata names ---- */

typedef struct refs {
    char  **names; /* sorted */
    size_t  len;
    int64_t max_number;  /* largest data-file number named for this id (-1: none) */
    bool    low_numbers; /* some named number is below the job size */
} refs;

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void refs_free(refs *r) {
    for (size_t i = 0; i < r->len; i++) free(r->names[i]);
    free(r->names);
    memset(r, 0, sizeof *r);
}

static bool refs_has(const refs *r, const char *name) {
    return bsearch(&name, r->names, r->len, sizeof name, cmp_name) != NULL;
}

static pdckpt_status refs_read(const char *dir, int64_t id, int size, refs *r, pdckpt_error *err) {
    pdk_meta_index ix = {0}; /* the files its index names: the sidecar, or the metadata decoded */
    pdk_blob       compact = {0};
    char           path[4200];
    int64_t        got = -1;
    memset(r, 0, sizeof *r);
    r->max_number = -1;
    PDK_TRY(pdk_distcp_read_index(dir, id, 0, &got, &ix, &compact, path, sizeof path, err));
    pdk_blob_free(&compact);
    pdckpt_status st = (r->names = calloc(ix.n_files + 1, sizeof *r->names))
                           ? PDCKPT_OK
                           : pdk_fail_nomem(err, "metadata file names");
    for (size_t i = 0; st == PDCKPT_OK && i < ix.n_files; i++) {
        const char   *name = ix.files[i];
        pdk_ckpt_name pn;
        if (!(r->names[r->len] = strdup(name)))
            st = pdk_fail_nomem(err, "file names");
        else
            r->len++;
        if (pdk_parse_ckpt_name(name, &pn) && !pn.is_meta && pn.id == id) {
            if (pn.number > r->max_number) r->max_number = pn.number;
            r->low_numbers |= pn.number < size;
        }
    }
    pdk_meta_index_free(&ix);
    if (st == PDCKPT_OK) qsort(r->names, r->len, sizeof *r->names, cmp_name);
    return st;
}

/* ---- before a save ---- */

/* Removes data files of ids without metadata, and those of `id` its metadata does not name. */
static size_t sweep_uncommitted(const ckpt_dir *c, int64_t id, const refs *r) {
    size_t removed = 0;
    for (size_t i = 0; i < c->len; i++) {
        entry *e = &c->items[i];
        if (e->n.is_meta) continue;
        if (!is_complete(c, e->n.id) ||
            (r && !e->n.is_index && e->n.id == id && !refs_has(r, e->name)))
            removed += remove_entry(c, e);
    }
    return removed;
}

pdckpt_status pdk_lifecycle_prepare(const char *dir, int64_t wanted, int size, bool durable,
                                    int64_t *id, int64_t *base, pdckpt_error *err) {
    ckpt_dir c;
    refs     r = {0};
    bool     have_refs = false;
    PDK_TRY(pdk_make_dirs(dir, err));
    pdk_sweep_temps(dir, NULL); /* temporaries of killed saves */
    PDK_TRY(dir_read(dir, &c, err));
    *id = wanted >= 0 ? wanted : c.largest + 1;
    *base = 0;
    if (is_complete(&c, *id)) {
        pdckpt_error scratch = PDCKPT_ERROR_INIT;
        have_refs = refs_read(dir, *id, size, &r, &scratch) == PDCKPT_OK;
        if (have_refs) {
            *base = r.low_numbers ? r.max_number + 1 : 0;
        } else { /* unreadable metadata: touch none of its files, write past all of them */
            for (size_t i = 0; i < c.len; i++)
                if (!c.items[i].n.is_meta && c.items[i].n.id == *id && c.items[i].n.number >= *base)
                    *base = c.items[i].n.number + 1;
        }
    }
    size_t        removed = sweep_uncommitted(&c, *id, have_refs ? &r : NULL);
    pdckpt_status st = removed && durable ? pdk_fsync_dir_of(dir, true, err) : PDCKPT_OK;
    refs_free(&r);
    dir_free(&c);
    return st;
}

/* ---- after a commit, and gc ---- */

/* Drops the oldest committed ids beyond keep_last by removing their metadata (their data files
 * are then uncommitted, for sweep_uncommitted): a kill in between leaves no torn checkpoint.
 * `protect` (the id just saved, -1 none) stays even when it is not among the newest. */
static size_t keep_newest(ckpt_dir *c, int32_t keep_last, int64_t protect, bool durable,
                          size_t *files) {
    if (keep_last <= 0 || c->n_complete <= (size_t)keep_last) return 0;
    size_t drop = c->n_complete - (size_t)keep_last, dropped = 0, kept = 0;
    for (size_t k = 0; k < c->n_complete; k++) {
        int64_t id = c->complete[k];
        if (k >= drop || id == protect) {
            c->complete[kept++] = id;
            continue;
        }
        for (size_t i = 0; i < c->len; i++)
            if (c->items[i].n.is_meta && c->items[i].n.id == id)
                *files += remove_entry(c, &c->items[i]);
        dropped++;
    }
    c->n_complete = kept;
    pdckpt_error scratch = PDCKPT_ERROR_INIT;
    if (dropped && durable) pdk_fsync_dir_of(c->path, true, &scratch);
    return dropped;
}

void pdk_lifecycle_after_commit(const char *dir, int64_t id, int64_t base, int size,
                                int32_t keep_last, bool durable) {
    ckpt_dir     c;
    pdckpt_error scratch = PDCKPT_ERROR_INIT;
    if (dir_read(dir, &c, &scratch) != PDCKPT_OK) return; /* committed: cleanup is best effort */
    size_t removed = 0;
    for (size_t i = 0; i < c.len; i++) { /* the generation the new metadata replaced */
        const pdk_ckpt_name *n = &c.items[i].n;
        if (!n->is_meta && !n->is_index && n->id == id &&
            (n->number < base || n->number >= base + size))
            removed += remove_entry(&c, &c.items[i]);
    }
    keep_newest(&c, keep_last, id, durable, &removed);
    removed += sweep_uncommitted(&c, -1, NULL);
    if (removed && durable) pdk_fsync_dir_of(dir, true, &scratch);
    dir_free(&c);
}

pdckpt_status pdckpt_sharded_gc(const char *dir, int32_t keep_last, size_t *checkpoints_removed,
                                size_t *files_removed, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!dir) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "dir is NULL");
    ckpt_dir c;
    size_t   files = 0, dropped;
    pdk_sweep_temps(dir, NULL);
    PDK_TRY(dir_read(dir, &c, err));
    dropped = keep_newest(&c, keep_last, -1, true, &files);
    for (size_t k = 0; k < c.n_complete; k++) { /* superseded generations of committed ids */
        refs         r;
        pdckpt_error scratch = PDCKPT_ERROR_INIT;
        if (refs_read(dir, c.complete[k], 0, &r, &scratch) != PDCKPT_OK) continue;
        for (size_t i = 0; i < c.len; i++)
            if (!c.items[i].n.is_meta && !c.items[i].n.is_index &&
                c.items[i].n.id == c.complete[k] && !refs_has(&r, c.items[i].name))
                files += remove_entry(&c, &c.items[i]);
        refs_free(&r);
    }
    files += sweep_uncommitted(&c, -1, NULL);
    pdckpt_error scratch = PDCKPT_ERROR_INIT;
    if (files) pdk_fsync_dir_of(dir, true, &scratch);
    dir_free(&c);
    if (checkpoints_removed) *checkpoints_removed = dropped;
    if (files_removed) *files_removed = files;
    return PDCKPT_OK;
}
