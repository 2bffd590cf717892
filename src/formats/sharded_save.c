/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sharded_save.c — writes a Hugging Face sharded checkpoint.  The split is huggingface_hub's
 * (split_state_dict_into_shards_factory): tensors in tree order fill a shard until the next would
 * take it over the limit; a tensor larger than the limit gets a shard of its own, placed where it
 * was met, before the shard still being filled; shard k of n is "<prefix>-000kk-of-000nn<ext>"
 * and one shard alone is "<prefix><ext>" with no index.
 *
 * Atomic as a unit: every shard and the index are written to temporaries beside their targets
 * and synced; only then are the shards renamed into place and the index last, which is the commit
 * point (a crash before it leaves the previous index naming the previous shards).  When a shard
 * would replace a file of the same name, the previous index is unlinked first, so no crash can
 * leave an index that names a mix of two saves.  On any error every temporary is removed.
 */
#include "pdk_sharded.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MAX_SHARD 5000000000ull /* huggingface_hub's MAX_SHARD_SIZE, "5GB" */
#define PENDING           UINT32_MAX

typedef struct shard_plan {
    const pdk_shard_kind *kind;
    char                  dir[PATH_MAX];
    char                  prefix[256];
    pdk_flat_list         flat;     /* tensors in tree order */
    uint32_t             *shard_of; /* per flat entry */
    uint32_t              n_shards;
    uint64_t              total_size;
    char (*files)[320]; /* shard file names */
    char (*temps)[PATH_MAX];
    size_t n_temps;
    bool   durable;
    bool   made_dir; /* the target directory is this save's: a failed save removes it */
} shard_plan;

/* "out/" or an existing directory: prefix = the kind's default; "out/NAME<ext>" or
 * "out/NAME<ext>.index.json": prefix NAME in "out". */
static pdckpt_status plan_target(shard_plan *p, const char *path, pdckpt_error *err) {
    char   index_ext[64];
    size_t cut = 0;
    snprintf(index_ext, sizeof index_ext, "%s.index.json", p->kind->ext);
    if (pdk_ends_with(path, index_ext))
        cut = strlen(index_ext);
    else if (pdk_ends_with(path, p->kind->ext))
        cut = strlen(p->kind->ext);
    if (cut == 0 || pdk_is_directory(path)) {
        snprintf(p->dir, sizeof p->dir, "%s", path);
        snprintf(p->prefix, sizeof p->prefix, "%s", p->kind->default_prefix);
        p->made_dir = !pdk_is_directory(path);
        if (p->made_dir && mkdir(path, 0777) != 0) {
            p->made_dir = false;
            return pdk_fail_sys(err, errno, path, "create directory");
        }
        return PDCKPT_OK;
    }
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t      base_len = strlen(base) - cut;
    if (base_len == 0 || base_len >= sizeof p->prefix - 1)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1,
                        "expected a file name before '%s' (at most 254 bytes)",
                        path + strlen(path) - cut);
    snprintf(p->dir, sizeof p->dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    if (slash == path) snprintf(p->dir, sizeof p->dir, "/");
    snprintf(p->prefix, sizeof p->prefix, "%.*s", (int)base_len, base);
    return PDCKPT_OK;
}

/* huggingface_hub's split: see the file comment. */
static pdckpt_status plan_split(shard_plan *p, uint64_t limit, pdckpt_error *err) {
    size_t n = p->flat.len;
    p->shard_of = malloc((n ? n : 1) * sizeof *p->shard_of);
    if (!p->shard_of) return pdk_fail_nomem(err, "shard plan");
    uint64_t current = 0;
    size_t   open_from = 0; /* pending entries are open_from.. with shard_of == PENDING */
    bool     open = false;
    for (size_t i = 0; i < n; i++) {
        pdckpt_tensor_view v;
        pdckpt_tensor_get_memory(p->flat.entries[i].tensor, &v, NULL); /* sizes alone */
        p->total_size += v.n_bytes;
        if (v.n_bytes > limit) {
            p->shard_of[i] = p->n_shards++;
            continue;
        }
        if (open && current + v.n_bytes > limit) {
            for (size_t j = open_from; j < i; j++)
                if (p->shard_of[j] == PENDING) p->shard_of[j] = p->n_shards;
            p->n_shards++;
            open = false;
        }
        if (!open) open_from = i, current = 0, open = true;
        p->shard_of[i] = PENDING;
        current += v.n_bytes;
    }
    if (open) {
        for (size_t j = open_from; j < n; j++)
            if (p->shard_of[j] == PENDING) p->shard_of[j] = p->n_shards;
        p->n_shards++;
    }
    return PDCKPT_OK;
}

static pdckpt_status plan_names(shard_plan *p, pdckpt_error *err) {
    p->files = calloc(p->n_shards + 1, sizeof *p->files);
    p->temps = calloc(p->n_shards + 1, sizeof *p->temps);
    if (!p->files || !p->temps) return pdk_fail_nomem(err, "shard names");
    for (uint32_t s = 0; s <= p->n_shards; s++) { /* the prefix is at most 254 bytes */
        int n = s < p->n_shards ? snprintf(p->files[s], sizeof p->files[s], "%s-%05u-of-%05u%s",
                                           p->prefix, s + 1, p->n_shards, p->kind->ext)
                                : snprintf(p->files[s], sizeof p->files[s], "%s%s.index.json",
                                           p->prefix, p->kind->ext);
        if (n < 0 || n >= (int)sizeof p->files[s])
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, p->dir, -1, "shard name too long");
    }
    return PDCKPT_OK;
}

/* dir/name+ext into a PATH_MAX buffer; paths that do not fit end up empty, which every
 * later system call refuses. */
static void join(char *out, const char *dir, const char *name, const char *ext) {
    if (snprintf(out, PATH_MAX, "%s/%s%s", dir, name, ext) >= PATH_MAX) out[0] = '\0';
}

static void final_path(const shard_plan *p, size_t i, char *out) {
    join(out, p->dir, p->files[i], "");
}

/* Opens a synced temporary beside the i-th file (i == n_shards: the index). */
static pdckpt_status open_temp(shard_plan *p, size_t i, const pdckpt_save_options *opts,
                               pdk_sink **sink, pdckpt_error *err) {
    char final[PATH_MAX];
    final_path(p, i, final);
    pdk_remove_stale_temps(final);
    PDK_TRY(pdk_temp_path_beside(final, p->temps[i], sizeof p->temps[i], err));
    pdckpt_status st =
        pdk_sink_open_plain_file(p->temps[i], final, p->durable, opts->allocator, sink, err);
    if (st != PDCKPT_OK) p->temps[i][0] = '\0';
    p->n_temps = i + 1;
    if (st == PDCKPT_OK && opts->progress)
        pdk_sink_set_progress(*sink, opts->progress, opts->progress_ctx, 0);
    return st;
}

/* The shard's own tree: __metadata__ (safetensors) and its tensors under their flat names. */
static pdckpt_status shard_tree(const shard_plan *p, uint32_t s, const pdckpt_value *meta,
                                const pdckpt_allocator *a, pdckpt_value **out, pdckpt_error *err) {
    pdckpt_value *tree = pdckpt_value_new_container(a, PDCKPT_KIND_DICT);
    if (!tree) return pdk_fail_nomem(err, "shard");
    pdckpt_status st = PDCKPT_OK;
    if (meta && p->kind == &pdk_shard_kind_safetensors)
        st = pdckpt_dict_set(tree, "__metadata__", pdckpt_value_retain((pdckpt_value *)meta), err);
    for (size_t i = 0; i < p->flat.len && st == PDCKPT_OK; i++)
        if (p->shard_of[i] == s)
            st = pdckpt_dict_set(tree, p->flat.entries[i].name,
                                 pdckpt_value_retain((pdckpt_value *)p->flat.entries[i].tensor),
                                 err);
    if (st != PDCKPT_OK) pdckpt_value_free(tree);
    if (st == PDCKPT_OK) *out = tree;
    return st;
}

static pdckpt_status write_shard(shard_plan *p, uint32_t s, const pdckpt_value *meta,
                                 const pdckpt_save_options *opts, pdckpt_error *err) {
    pdckpt_value *tree = NULL;
    PDK_TRY(shard_tree(p, s, meta, opts->allocator, &tree, err));
    pdk_sink     *sink = NULL;
    pdckpt_status st = open_temp(p, s, opts, &sink, err);
    if (st == PDCKPT_OK) st = p->kind->shard_format->save(tree, sink, opts, err);
    if (st == PDCKPT_OK)
        st = pdk_sink_commit(sink, err); /* synced and closed, not yet renamed */
    else
        pdk_sink_abort(sink);
    pdckpt_value_free(tree);
    return st;
}

/* weight_map in huggingface_hub's order: shard by shard, each in tree order. */
static pdckpt_status write_index(shard_plan *p, const pdckpt_save_options *opts,
                                 pdckpt_error *err) {
    size_t        n = p->flat.len, k = 0;
    const char  **names = malloc((n ? n : 1) * sizeof *names);
    const char  **files = malloc((n ? n : 1) * sizeof *files);
    pdk_sink     *sink = NULL;
    pdckpt_status st = names && files ? PDCKPT_OK : pdk_fail_nomem(err, "index");
    for (uint32_t s = 0; s < p->n_shards && st == PDCKPT_OK; s++)
        for (size_t i = 0; i < n; i++)
            if (p->shard_of[i] == s) names[k] = p->flat.entries[i].name, files[k++] = p->files[s];
    if (st == PDCKPT_OK) st = open_temp(p, p->n_shards, opts, &sink, err);
    if (st == PDCKPT_OK) st = pdk_index_write(sink, p->total_size, names, files, k, err);
    if (st == PDCKPT_OK)
        st = pdk_sink_commit(sink, err);
    else
        pdk_sink_abort(sink);
    free(names);
    free(files);
    return st;
}

static bool exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Renames every shard, then the index (the commit point); see the file comment. */
static pdckpt_status publish(shard_plan *p, pdckpt_error *err) {
    char final[PATH_MAX], index[PATH_MAX];
    final_path(p, p->n_shards, index);
    bool replaces = false;
    for (uint32_t s = 0; s < p->n_shards && !replaces; s++)
        replaces = (final_path(p, s, final), exists(final));
    if (replaces && exists(index)) {
        if (unlink(index) != 0) return pdk_fail_sys(err, errno, index, "remove the previous index");
        if (p->durable) PDK_TRY(pdk_fsync_dir_of(index, false, err));
    }
    for (size_t i = 0; i <= p->n_shards; i++) {
        final_path(p, i, final);
        if (rename(p->temps[i], final) != 0) return pdk_fail_sys(err, errno, final, "rename");
        p->temps[i][0] = '\0';
    }
    return p->durable ? pdk_fsync_dir_of(index, false, err) : PDCKPT_OK;
}

/* The other form of this checkpoint beside the target: the single "<prefix><ext>" of a save
 * that fitted one file (`sharded`: this save is sharded), else the index of a sharded save. */
static void shadow_path(const shard_plan *p, bool sharded, char *path) {
    char index_ext[64];
    snprintf(index_ext, sizeof index_ext, "%s.index.json", p->kind->ext);
    join(path, p->dir, p->prefix, sharded ? p->kind->ext : index_ext);
}

/* Whether the regular file at `path` is a checkpoint of the kind in that form: the shard
 * format's sniff of the single file (mapped, only its head read), a parse of an index (read:
 * the caller has checked it is no larger than an index can be). */
static bool is_checkpoint_file(const shard_plan *p, const char *path, bool single) {
    pdk_input    in;
    pdckpt_error ignored = PDCKPT_ERROR_INIT;
    if (pdk_input_open_file(path, single, NULL, &in, &ignored) != PDCKPT_OK) return false;
    bool      yes = false;
    pdk_index ix;
    if (single)
        yes = p->kind->shard_format->sniff(&in) > 0;
    else if (pdk_index_parse(&in, p->kind->ext, &ix, &ignored) == PDCKPT_OK)
        yes = true, pdk_index_free(&ix);
    pdk_input_close(&in);
    return yes;
}

/* The shadow goes after the commit (below), so before anything is written it must be what a save
 * may remove: nothing, or a regular file holding a checkpoint of this kind -- never a user's
 * file, a link or a directory that happens to bear the name (ARGUMENT naming it). */
static pdckpt_status check_shadow(const shard_plan *p, bool sharded, pdckpt_error *err) {
    char        path[PATH_MAX];
    struct stat st;
    shadow_path(p, sharded, path);
    if (lstat(path, &st) != 0) return PDCKPT_OK;
    if (S_ISREG(st.st_mode) && (sharded || (uint64_t)st.st_size <= PDK_INDEX_MAX_BYTES) &&
        is_checkpoint_file(p, path, sharded))
        return PDCKPT_OK;
    const char *found = S_ISREG(st.st_mode)   ? "a file that is not one"
                        : S_ISDIR(st.st_mode) ? "a directory"
                        : S_ISLNK(st.st_mode) ? "a symbolic link"
                                              : "a special file";
    return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1,
                    "not removed: expected the %s of an earlier save of this checkpoint (which a "
                    "%s save removes), found %s",
                    sharded ? "single file" : "shard index", sharded ? "sharded" : "single-file",
                    found);
}

/* Every name a sharded save renames over must be free, a regular file or a link (a link is
 * replaced, never followed): a directory or a FIFO there is refused before anything is written,
 * not met at the rename after some shards are already in place. */
static pdckpt_status check_targets(const shard_plan *p, pdckpt_error *err) {
    for (uint32_t s = 0; s <= p->n_shards; s++) {
        char        final[PATH_MAX];
        struct stat st;
        final_path(p, s, final);
        if (lstat(final, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
            return pdk_refuse_file_kind(st.st_mode, final, err);
    }
    return check_shadow(p, true, err);
}

/* After the commit: the single "<prefix><ext>" of an earlier save would shadow the index for
 * transformers, which prefers it; it is this checkpoint's previous version (check_shadow), so it
 * goes. */
static void remove_shadow(const shard_plan *p, bool sharded) {
    char        path[PATH_MAX];
    struct stat st;
    shadow_path(p, sharded, path);
    if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) unlink(path);
}

static pdckpt_status save_single(shard_plan *p, const pdckpt_value *root,
                                 const pdckpt_save_options *opts, pdckpt_error *err) {
    char path[PATH_MAX];
    join(path, p->dir, p->prefix, p->kind->ext);
    PDK_TRY(check_shadow(p, false, err));
    pdk_sink *sink;
    PDK_TRY(pdk_sink_open_atomic_file(path, p->durable, opts->allocator, &sink, err));
    if (opts->progress) pdk_sink_set_progress(sink, opts->progress, opts->progress_ctx, 0);
    pdckpt_status st = p->kind->shard_format->save(root, sink, opts, err);
    if (st != PDCKPT_OK) {
        pdk_sink_abort(sink);
        return st;
    }
    PDK_TRY(pdk_sink_commit(sink, err));
    remove_shadow(p, false);
    return PDCKPT_OK;
}

static void plan_free(shard_plan *p) {
    for (size_t i = 0; p->temps && i < p->n_temps; i++)
        if (p->temps[i][0]) unlink(p->temps[i]);
    free(p->temps);
    free(p->files);
    free(p->shard_of);
    pdk_flat_free(&p->flat);
    free(p);
}

pdckpt_status pdk_sharded_save(const pdckpt_value *root, const char *path,
                               const pdk_shard_kind *kind, const pdckpt_save_options *opts,
                               pdckpt_error *err) {
    static const char *const skip[] = {"__metadata__", PDCKPT_NAME_TABLE_KEY, NULL};
    if (opts->checksum)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1,
                        "checksum sidecars are written for single files, not sharded saves");
    shard_plan *p = calloc(1, sizeof *p);
    if (!p) return pdk_fail_nomem(err, "sharded save");
    p->kind = kind;
    p->durable = opts->durable;
    const pdckpt_value *meta =
        pdckpt_value_kind(root) == PDCKPT_KIND_DICT ? pdckpt_dict_get(root, "__metadata__") : NULL;
    pdckpt_status st = plan_target(p, path, err);
    if (st == PDCKPT_OK) st = pdk_flat_collect(root, opts, skip, &p->flat, err);
    if (st == PDCKPT_OK)
        st = plan_split(p, opts->max_shard_size ? opts->max_shard_size : DEFAULT_MAX_SHARD, err);
    if (st == PDCKPT_OK && p->n_shards <= 1) {
        st = save_single(p, root, opts, err);
    } else if (st == PDCKPT_OK) {
        st = plan_names(p, err);
        if (st == PDCKPT_OK) st = check_targets(p, err);
        for (uint32_t s = 0; s < p->n_shards && st == PDCKPT_OK; s++)
            st = write_shard(p, s, meta, opts, err);
        if (st == PDCKPT_OK) st = write_index(p, opts, err);
        if (st == PDCKPT_OK) st = publish(p, err);
        if (st == PDCKPT_OK) remove_shadow(p, true);
    }
    bool made_dir = p->made_dir;
    plan_free(p);                                 /* unlinks the temporaries first */
    if (st != PDCKPT_OK && made_dir) rmdir(path); /* only when it is still empty */
    return st;
}
