/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_save.c — paddle.distributed.save (spec §4) as pdckpt_mpi_save / pdckpt_mpi_gather: the
 * argument checks every rank must pass identically, the per-rank file names, and the two-phase
 * commit.  Phase one: every writing rank saves into a temporary beside its target with
 * pdckpt_save_file (atomic and durable itself); phase two, only once all ranks succeeded: every
 * temporary is renamed over its target and the directory synced.  A failure on any rank before
 * that point removes every temporary, so all previous files stay as they were.
 */
#include "dist_gather.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_CAP 4096

pdckpt_mpi_options pdckpt_mpi_options_default(void) {
    static const pdckpt_mpi_options defaults = PDCKPT_MPI_OPTIONS_INIT;
    return defaults;
}

pdckpt_status pdckpt_mpi_parse_size(const char *text, uint64_t *out, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!text || !out || !isdigit((unsigned char)text[0]))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "expected a size like 3G, 512M, 10K or a byte count, found '%s'",
                        text ? text : "(null)");
    uint64_t    v = 0;
    const char *p = text;
    for (; isdigit((unsigned char)*p); p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "size '%s' is too large", text);
        v = v * 10 + (uint64_t)(*p - '0');
    }
    unsigned shift = 0;
    char     unit = (char)toupper((unsigned char)*p);
    if (unit == 'K' || unit == 'M' || unit == 'G') {
        shift = unit == 'K' ? 10 : unit == 'M' ? 20 : 30;
        p++;
    }
    if (*p != '\0')
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "expected a size like 3G, 512M, 10K or a byte count, found '%s'", text);
    if (v > (UINT64_MAX >> shift))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "size '%s' is too large", text);
    *out = v << shift;
    return PDCKPT_OK;
}

static pdckpt_status substitute_rank(const char *path, int rank, char *out, size_t cap,
                                     pdckpt_error *err) {
    size_t n = 0;
    for (const char *p = path; *p;) {
        char        piece[24];
        const char *add = p;
        size_t      len = 1;
        if (strncmp(p, "{rank}", 6) == 0) {
            len = (size_t)snprintf(piece, sizeof piece, "%d", rank);
            add = piece;
            p += 6;
        } else {
            p++;
        }
        if (n + len >= cap) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1, "path too long");
        memcpy(out + n, add, len);
        n += len;
    }
    out[n] = '\0';
    return PDCKPT_OK;
}

/* "dir/name.ext" -> "dir/name.rankR.ext"; trailing slashes are kept. */
static pdckpt_status insert_rank(const char *path, int rank, char *out, size_t cap,
                                 pdckpt_error *err) {
    size_t end = strlen(path);
    while (end > 1 && path[end - 1] == '/') end--;
    size_t base = end;
    while (base > 0 && path[base - 1] != '/') base--;
    size_t dot = end;
    for (size_t i = end; i > base + 1; i--)
        if (path[i - 1] == '.') {
            dot = i - 1;
            break;
        }
    int n = snprintf(out, cap, "%.*s.rank%d%s", (int)dot, path, rank, path + dot);
    if (n < 0 || (size_t)n >= cap)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1, "path too long");
    return PDCKPT_OK;
}

static pdckpt_status rank_path(const char *path, int rank, bool insert, char *out, size_t cap,
                               pdckpt_error *err) {
    if (!path || !out || cap == 0)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "path or output buffer is NULL");
    if (strstr(path, "{rank}")) return substitute_rank(path, rank, out, cap, err);
    if (insert) return insert_rank(path, rank, out, cap, err);
    if (strlen(path) >= cap) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1, "path too long");
    memcpy(out, path, strlen(path) + 1);
    return PDCKPT_OK;
}

pdckpt_status pdckpt_mpi_rank_path(const char *path, int rank, int world, char *out, size_t cap,
                                   pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    return rank_path(path, rank, world > 1, out, cap, err);
}

/* ---- arguments every rank must agree on ---- */

typedef struct save_args {
    int     *targets; /* sorted, unique */
    size_t   n_targets;
    uint64_t group;
    bool     opt;
} save_args;

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static pdckpt_status normalize(const pdk_dist *d, const pdckpt_mpi_options *o, save_args *a,
                               uint64_t *hash, pdckpt_error *err) {
    memset(a, 0, sizeof *a);
    a->group = o->max_grouped_size ? o->max_grouped_size : PDCKPT_MPI_DEFAULT_GROUP;
    a->opt = o->state_type == PDCKPT_MPI_OPT;
    if (o->state_type != PDCKPT_MPI_PARAMS && o->state_type != PDCKPT_MPI_OPT)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "expected state_type params or opt, found %d", (int)o->state_type);
    if (a->group < PDCKPT_MPI_MIN_GROUP)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "expected max_grouped_size >= 1024 bytes, found %llu",
                        (unsigned long long)a->group);
    if (o->n_gather_to && !o->gather_to)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "gather_to is NULL");
    a->targets = malloc((o->n_gather_to ? o->n_gather_to : 1) * sizeof *a->targets);
    if (!a->targets) return pdk_fail_nomem(err, "gather_to");
    for (size_t i = 0; i < o->n_gather_to; i++) {
        if (o->gather_to[i] < 0 || o->gather_to[i] >= d->size)
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                            "gather_to rank %d is not in the job (0..%d)", o->gather_to[i],
                            d->size - 1);
        a->targets[i] = o->gather_to[i];
    }
    qsort(a->targets, o->n_gather_to, sizeof *a->targets, cmp_int);
    for (size_t i = 0; i < o->n_gather_to; i++)
        if (a->n_targets == 0 || a->targets[a->n_targets - 1] != a->targets[i])
            a->targets[a->n_targets++] = a->targets[i];
    *hash = pdk_hash_bytes(0, a->targets, a->n_targets * sizeof *a->targets);
    *hash = pdk_hash_bytes(*hash, &a->group, sizeof a->group);
    *hash = pdk_hash_bytes(*hash, &a->opt, sizeof a->opt);
    return PDCKPT_OK;
}

/* Opens the communicator and checks the arguments on every rank. */
static pdckpt_status begin(MPI_Comm comm, const pdckpt_mpi_options *opts, pdk_dist *d, save_args *a,
                           pdckpt_error *err) {
    static const pdckpt_mpi_options defaults = PDCKPT_MPI_OPTIONS_INIT;
    if (!opts) opts = &defaults;
    memset(a, 0, sizeof *a);
    PDK_TRY(pdk_dist_open(comm, opts, d, err));
    uint64_t      hash = 0;
    pdckpt_status st = normalize(d, opts, a, &hash, err);
    st = pdk_dist_agree(d, st, err);
    if (st == PDCKPT_OK)
        st = pdk_dist_same(d, hash, "gather_to, state_type and max_grouped_size", err);
    return st;
}

static bool in_targets(const save_args *a, int rank) {
    for (size_t i = 0; i < a->n_targets; i++)
        if (a->targets[i] == rank) return true;
    return false;
}

/* ---- writing ---- */

typedef struct commit {
    char final[PATH_CAP];
    char temp[PATH_CAP];
    bool has_temp;
} commit;

/* Before phase one, on a writing rank: the target's name and format; temporaries of killed saves
 * of this target are removed (before any rank creates its own: ranks may share a target). */
static pdckpt_status prepare_target(const char *path, bool insert, int rank,
                                    const pdckpt_mpi_options *opts, commit *c,
                                    pdckpt_save_options *save, pdckpt_error *err) {
    *save = opts->save;
    if (path) PDK_TRY(rank_path(path, rank, insert, c->final, sizeof c->final, err));
    if (save->format == PDCKPT_FORMAT_AUTO && path)
        save->format = pdckpt_format_from_path(c->final);
    if (opts->sink_ops) return PDCKPT_OK;
    if (!path)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "path is NULL on a writing rank");
    if (save->format == PDCKPT_FORMAT_AUTO)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, c->final, -1,
                        "cannot tell the format from the name; pass one in opts->save");
    char        dir[PATH_CAP], base[256];
    const char *b;
    size_t      blen;
    pdk_split_path(c->final, dir, sizeof dir, &b, &blen);
    snprintf(base, sizeof base, "%.*s", (int)blen, b);
    pdk_sweep_temps(dir, base);
    return PDCKPT_OK;
}

/* Formats whose writers hand a large tensor's bytes to the sink whole, from its memory (pickle
 * protocol 3/4, safetensors, .pdiparams), into one file: the gather to one writer streams. */
#define STREAM_MIN (UINT64_C(1) << 20)

static uint64_t stream_min(const save_args *a, const pdckpt_save_options *save) {
    pdckpt_format f = save->format;
    bool          ok = (f == PDCKPT_FORMAT_PICKLE && save->protocol >= 3) ||
              f == PDCKPT_FORMAT_SAFETENSORS || f == PDCKPT_FORMAT_COMBINED;
    return a->n_targets == 1 && ok && !save->checksum && !save->max_shard_size ? STREAM_MIN : 0;
}

/* Phase one, streamed: the placeholders' bytes are pulled from their ranks on the way out. */
static pdckpt_status write_streamed(pdk_dist *d, pdk_stream *s, const pdckpt_value *tree,
                                    const pdckpt_mpi_options *opts, const pdckpt_save_options *save,
                                    commit *c, pdckpt_error *err) {
    if (opts->sink_ops)
        return pdk_stream_write(d, s, tree, save, opts->sink_ops, opts->sink_self, err);
    pdk_file_out  f = {.fd = -1};
    pdckpt_status st =
        pdk_temp_path_tagged(c->final, pdk_random_tag(), c->temp, sizeof c->temp, err);
    if (st == PDCKPT_OK) st = pdk_file_out_open(&f, c->temp, save->durable, err);
    if (st != PDCKPT_OK) {
        pdk_stream_release(d);
        return st;
    }
    c->has_temp = true;
    st = pdk_stream_write(d, s, tree, save, &pdk_file_out_ops, &f, err);
    if (st != PDCKPT_OK) pdk_file_out_ops.abort(&f);
    return st;
}

/* Phase one on a writing rank: the tree goes to a temporary beside the target, or to the sink. */
static pdckpt_status write_phase(pdk_dist *d, pdk_stream *s, const pdckpt_value *tree,
                                 const pdckpt_mpi_options *opts, const pdckpt_save_options *save,
                                 commit *c, pdckpt_error *err) {
    pdckpt_status st;
    if (s->min_bytes > 0)
        st = write_streamed(d, s, tree, opts, save, c, err);
    else if (opts->sink_ops)
        return pdk_save_callback(tree, opts->sink_ops, opts->sink_self, save, err);
    else if ((st = pdk_temp_path_tagged(c->final, pdk_random_tag(), c->temp, sizeof c->temp,
                                        err)) == PDCKPT_OK) {
        c->has_temp = true;
        st = pdk_save_path(tree, c->temp, save, err);
    }
    if (st != PDCKPT_OK && !opts->sink_ops) pdk_error_prefix(err, "saving %s: ", c->final);
    return st;
}

/* Phase two: rename when every rank succeeded, else drop the temporary. */
static pdckpt_status commit_phase(pdk_dist *d, pdckpt_status st, commit *c, bool durable,
                                  pdckpt_error *err) {
    st = pdk_dist_agree(d, st, err);
    pdckpt_status renamed = PDCKPT_OK;
    if (st == PDCKPT_OK && c->has_temp)
        renamed = pdk_rename_replace_durable(c->temp, c->final, durable, err);
    if (c->has_temp && (st != PDCKPT_OK || renamed != PDCKPT_OK)) pdk_remove_tree(c->temp);
    if (st != PDCKPT_OK) return st;
    return pdk_dist_agree(d, renamed, err);
}

/* With gather_to none, ranks that were all given one path write "<path>.rankR"; ranks given
 * their own paths write exactly those. */
static pdckpt_status paths_differ(pdk_dist *d, const char *path, bool *insert, pdckpt_error *err) {
    bool     same = true;
    uint64_t h = path ? pdk_hash_bytes(0, path, strlen(path)) : 0;
    PDK_TRY(pdk_dist_compare(d, h, &same, err));
    *insert = same && d->size > 1;
    return PDCKPT_OK;
}

/* The gather, streamed when its one writer's format allows (the writer decides and tells). */
static pdckpt_status gather_for_save(pdk_dist *d, const save_args *a, const pdckpt_value *state,
                                     const pdckpt_mpi_options  *opts,
                                     const pdckpt_save_options *save, pdk_stream *s,
                                     pdckpt_value **merged, pdckpt_error *err) {
    uint64_t min = a->n_targets == 1 && d->rank == a->targets[0] ? stream_min(a, save) : 0;
    if (a->n_targets == 1) PDK_TRY(pdk_dist_bcast(d, &min, sizeof min, a->targets[0], err));
    pdk_stream_init(s, min, a->group);
    return pdk_gather_run(d, state, a->opt, a->targets, a->n_targets, a->group,
                          opts->save.allocator, s, merged, NULL, err);
}

pdckpt_status pdckpt_mpi_save(MPI_Comm comm, const pdckpt_value *state, const char *path,
                              const pdckpt_mpi_options *opts, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    opts = pdk_mpi_begin(opts, &err, &local);
    pdk_dist            d;
    save_args           a;
    commit              c = {.has_temp = false};
    pdckpt_value       *merged = NULL;
    bool                insert = false;
    pdk_stream          s;
    pdckpt_save_options save = opts->save;
    pdk_stream_init(&s, 0, 0);
    pdckpt_status st = begin(comm, opts, &d, &a, err);
    if (st == PDCKPT_OK && a.n_targets == 0) st = paths_differ(&d, path, &insert, err);
    bool writer = a.n_targets == 0 || in_targets(&a, d.rank);
    if (st == PDCKPT_OK) {
        pdckpt_status p = PDCKPT_OK;
        if (writer && a.n_targets == 0 && !state)
            p = pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "state is NULL");
        else if (writer)
            p = prepare_target(path, insert, d.rank, opts, &c, &save, err);
        st = pdk_dist_agree(&d, p, err);
    }
    if (st == PDCKPT_OK && a.n_targets > 0)
        st = gather_for_save(&d, &a, state, opts, &save, &s, &merged, err);
    const pdckpt_value *tree = a.n_targets == 0 ? state : merged;
    if (st == PDCKPT_OK) {
        pdckpt_status mine = writer        ? write_phase(&d, &s, tree, opts, &save, &c, err)
                             : s.min_bytes ? pdk_stream_serve(&d, &s, err)
                                           : PDCKPT_OK;
        st = commit_phase(&d, mine, &c, opts->save.durable, err);
    }
    pdckpt_value_free(merged);
    pdk_stream_free(&s);
    free(a.targets);
    pdk_dist_close(&d);
    return st;
}

pdckpt_status pdckpt_mpi_gather(MPI_Comm comm, const pdckpt_value *state,
                                const pdckpt_mpi_options *opts, pdckpt_value **merged,
                                pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    opts = pdk_mpi_begin(opts, &err, &local);
    pdk_dist      d;
    save_args     a;
    pdckpt_value *tree = NULL;
    pdckpt_status st = begin(comm, opts, &d, &a, err);
    if (st == PDCKPT_OK) {
        pdckpt_status s =
            merged ? PDCKPT_OK : pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "merged is NULL");
        if (s == PDCKPT_OK && a.n_targets == 0)
            s = pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                         "pdckpt_mpi_gather needs gather_to ranks");
        st = pdk_dist_agree(&d, s, err);
    }
    if (st == PDCKPT_OK)
        st = pdk_gather_run(&d, state, a.opt, a.targets, a.n_targets, a.group, opts->save.allocator,
                            NULL, &tree, NULL, err);
    if (merged) *merged = tree;
    free(a.targets);
    pdk_dist_close(&d);
    return st;
}
