/*
 * dist_sharded.c — saving a sharded checkpoint (spec §5.1-5.3, Paddle's flex checkpoint).
 * Every rank describes its pieces (key, dtype, global shape, offset, local shape); all ranks
 * gather the descriptions and compute the same plan: pieces of a key must agree on dtype and
 * global shape and tile it exactly; a piece held by several ranks is written once, by the rank
 * Paddle's balanced_dedup_key_in_dict picks (candidate files in name order, the least loaded
 * wins).  Commit order is crash-safe: every data file is written atomically and synced, all
 * ranks agree, and only then does the coordinator write the metadata, atomically — a checkpoint
 * id without metadata is incomplete and is never loaded.  An explicit id that already has
 * metadata loses it before any of its data files is replaced.
 */
#include "dist_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct shard_rec {
    char        *key;
    pdckpt_dtype dtype;
    int32_t      n_dims;
    int64_t     *global, *offset, *shape; /* one allocation */
    int          rank;
    size_t       local; /* index in that rank's shard array */
    size_t       piece; /* its distinct piece */
} shard_rec;

typedef struct piece_rec {
    shard_rec *first;  /* first appearance (lowest rank) */
    int        writer; /* rank whose data file stores it */
} piece_rec;

typedef struct plan {
    shard_rec    *recs;
    size_t        n_recs;
    piece_rec    *pieces;
    size_t        n_pieces;
    int64_t       id;
    pdckpt_format format;
} plan;

static void plan_free(plan *p) {
    for (size_t i = 0; i < p->n_recs; i++) {
        free(p->recs[i].key);
        free(p->recs[i].global);
    }
    free(p->recs);
    free(p->pieces);
    memset(p, 0, sizeof *p);
}

/* ---- this rank's pieces ---- */

static pdckpt_status check_shard(const pdckpt_mpi_shard *s, size_t i, pdckpt_tensor_view *v,
                                 pdckpt_error *err) {
    if (!s->key || !s->key[0] || !pdckpt_tensor_get(s->tensor, v))
        return pdk_dist_fail(err, PDCKPT_ERR_ARGUMENT, NULL,
                             "shard %zu: expected a key and a tensor", i);
    for (int32_t d = 0; d < v->n_dims; d++) {
        int64_t g = s->global_shape ? s->global_shape[d] : v->dims[d];
        int64_t o = s->global_offset ? s->global_offset[d] : 0;
        if (o < 0 || g < 0 || o > g || v->dims[d] > g - o)
            return pdk_dist_fail(err, PDCKPT_ERR_ARGUMENT, NULL,
                                 "shard '%s': dim %d: a piece of %lld at offset %lld does not fit "
                                 "the global size %lld",
                                 s->key, (int)d, (long long)v->dims[d], (long long)o, (long long)g);
    }
    return PDCKPT_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* At most one piece per key on a rank. */
static pdckpt_status check_unique(const pdckpt_mpi_shard *shards, size_t n, pdckpt_error *err) {
    const char **keys = malloc((n ? n : 1) * sizeof *keys);
    if (!keys) return pdk_dist_nomem(err, "shard keys");
    for (size_t i = 0; i < n; i++) keys[i] = shards[i].key ? shards[i].key : "";
    qsort(keys, n, sizeof *keys, cmp_str);
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 1; i < n && st == PDCKPT_OK; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0)
            st = pdk_dist_fail(err, PDCKPT_ERR_ARGUMENT, NULL,
                               "key '%s' is given more than once on this rank", keys[i]);
    free(keys);
    return st;
}

static pdckpt_status encode_shards(const pdckpt_mpi_shard *shards, size_t n, pdk_blob *out,
                                   pdckpt_error *err) {
    if (n && !shards) return pdk_dist_fail(err, PDCKPT_ERR_ARGUMENT, NULL, "shards is NULL");
    PDK_DTRY(check_unique(shards, n, err));
    pdk_blob_u64(out, n);
    for (size_t i = 0; i < n; i++) {
        pdckpt_tensor_view v;
        PDK_DTRY(check_shard(&shards[i], i, &v, err));
        pdk_blob_str(out, shards[i].key, strlen(shards[i].key));
        pdk_blob_u8(out, (uint8_t)v.dtype);
        pdk_blob_u8(out, (uint8_t)v.n_dims);
        for (int32_t d = 0; d < v.n_dims; d++) {
            pdk_blob_u64(
                out, (uint64_t)(shards[i].global_shape ? shards[i].global_shape[d] : v.dims[d]));
            pdk_blob_u64(out, (uint64_t)(shards[i].global_offset ? shards[i].global_offset[d] : 0));
            pdk_blob_u64(out, (uint64_t)v.dims[d]);
        }
    }
    return pdk_blob_check(out, err, "shard descriptions");
}

/* ---- every rank's pieces ---- */

static pdckpt_status read_rec(pdk_rd *r, shard_rec *rec) {
    uint8_t dtype, n_dims;
    PDK_DTRY(pdk_rd_strdup(r, &rec->key, "a key"));
    PDK_DTRY(pdk_rd_u8(r, &dtype, "dtype"));
    PDK_DTRY(pdk_rd_u8(r, &n_dims, "dims count"));
    if (dtype == 0 || dtype >= PDCKPT_DTYPE_COUNT || n_dims > PDCKPT_MAX_DIMS)
        return pdk_rd_fail(r, "expected a dtype and at most %d dims", PDCKPT_MAX_DIMS);
    rec->dtype = (pdckpt_dtype)dtype;
    rec->n_dims = n_dims;
    rec->global = malloc(3 * ((size_t)n_dims + 1) * sizeof *rec->global);
    if (!rec->global) return pdk_dist_nomem(r->err, "shard descriptions");
    rec->offset = rec->global + n_dims + 1;
    rec->shape = rec->offset + n_dims + 1;
    for (int32_t d = 0; d < n_dims; d++) {
        uint64_t g, o, s;
        PDK_DTRY(pdk_rd_u64(r, &g, "a global dim"));
        PDK_DTRY(pdk_rd_u64(r, &o, "an offset"));
        PDK_DTRY(pdk_rd_u64(r, &s, "a local dim"));
        if (g > (uint64_t)INT64_MAX || o > g || s > g - o) return pdk_rd_fail(r, "bad piece box");
        rec->global[d] = (int64_t)g, rec->offset[d] = (int64_t)o, rec->shape[d] = (int64_t)s;
    }
    return PDCKPT_OK;
}

static pdckpt_status read_all(const pdk_blob *all, const size_t *offs, int size, plan *p,
                              pdckpt_error *err) {
    size_t cap = 0;
    for (int rank = 0; rank < size; rank++) {
        char source[64];
        snprintf(source, sizeof source, "rank %d's shard descriptions", rank);
        pdk_rd   r = {all->data + offs[rank], offs[rank + 1] - offs[rank], 0, source, err};
        uint64_t n;
        PDK_DTRY(pdk_rd_count(&r, &n, 10, "shards"));
        if (p->n_recs + n > cap) {
            cap = (p->n_recs + (size_t)n) * 2;
            shard_rec *grown = realloc(p->recs, cap * sizeof *grown);
            if (!grown) return pdk_dist_nomem(err, "shard descriptions");
            p->recs = grown;
        }
        for (uint64_t i = 0; i < n; i++) {
            shard_rec *rec = &p->recs[p->n_recs++];
            memset(rec, 0, sizeof *rec);
            rec->rank = rank;
            rec->local = (size_t)i;
            rec->piece = SIZE_MAX; /* none, unless a stored piece claims it */
            PDK_DTRY(read_rec(&r, rec));
        }
    }
    return PDCKPT_OK;
}

/* Orders records by key, then box, then rank: runs of equal (key, box) are one piece. */
static int cmp_rec(const void *a, const void *b) {
    const shard_rec *x = *(shard_rec *const *)a, *y = *(shard_rec *const *)b;
    int              c = strcmp(x->key, y->key);
    if (c) return c;
    if (x->n_dims != y->n_dims) return x->n_dims - y->n_dims;
    for (int32_t d = 0; d < x->n_dims; d++) {
        if (x->offset[d] != y->offset[d]) return x->offset[d] < y->offset[d] ? -1 : 1;
        if (x->shape[d] != y->shape[d]) return x->shape[d] < y->shape[d] ? -1 : 1;
    }
    if (x->rank != y->rank) return x->rank - y->rank;
    return (x->local > y->local) - (x->local < y->local);
}

static bool same_box(const shard_rec *x, const shard_rec *y) {
    return x->n_dims == y->n_dims &&
           memcmp(x->offset, y->offset, (size_t)x->n_dims * sizeof *x->offset) == 0 &&
           memcmp(x->shape, y->shape, (size_t)x->n_dims * sizeof *x->shape) == 0;
}

/* The distinct pieces of one key (order[from..to)) must tile its global box exactly. */
static pdckpt_status check_key(shard_rec **order, size_t from, size_t to, pdckpt_error *err) {
    const shard_rec *k = order[from];
    int64_t          covered = 0, o[PDCKPT_MAX_DIMS], s[PDCKPT_MAX_DIMS];
    for (size_t i = from; i < to; i++) {
        const shard_rec *x = order[i];
        if (x->dtype != k->dtype || x->n_dims != k->n_dims ||
            memcmp(x->global, k->global, (size_t)k->n_dims * sizeof *k->global) != 0)
            return pdk_dist_fail(err, PDCKPT_ERR_MISMATCH, NULL,
                                 "key '%s': ranks %d and %d disagree on dtype or global shape",
                                 k->key, k->rank, x->rank);
        if (i > from && same_box(order[i - 1], x)) continue; /* a replica */
        for (size_t j = from; j < i; j++)
            if (!same_box(order[j], x) &&
                pdk_box_overlap(k->n_dims, order[j]->offset, order[j]->shape, x->offset, x->shape,
                                o, s))
                return pdk_dist_fail(err, PDCKPT_ERR_ARGUMENT, NULL,
                                     "key '%s': the pieces of ranks %d and %d overlap", k->key,
                                     order[j]->rank, x->rank);
        covered += pdk_box_volume(k->n_dims, x->shape);
    }
    if (covered != pdk_box_volume(k->n_dims, k->global))
        return pdk_dist_fail(err, PDCKPT_ERR_ARGUMENT, NULL,
                             "key '%s': the pieces cover %lld of its %lld elements", k->key,
                             (long long)covered, (long long)pdk_box_volume(k->n_dims, k->global));
    return PDCKPT_OK;
}

static int cmp_first_seen(const void *a, const void *b) {
    const shard_rec *x = ((const piece_rec *)a)->first, *y = ((const piece_rec *)b)->first;
    if (x->rank != y->rank) return x->rank - y->rank;
    return (x->local > y->local) - (x->local < y->local);
}

/* Checks every key, finds the distinct pieces and orders them by first appearance, as Paddle
 * iterates them (rank by rank, each rank's keys in order). */
static pdckpt_status group_pieces(plan *p, shard_rec **order, pdckpt_error *err) {
    for (size_t i = 0; i < p->n_recs; i++) order[i] = &p->recs[i];
    if (p->n_recs > 1) qsort(order, p->n_recs, sizeof *order, cmp_rec);
    for (size_t i = 0, j; i < p->n_recs; i = j) {
        for (j = i + 1; j < p->n_recs && strcmp(order[j]->key, order[i]->key) == 0; j++) continue;
        PDK_DTRY(check_key(order, i, j, err));
    }
    p->pieces = calloc(p->n_recs ? p->n_recs : 1, sizeof *p->pieces);
    if (!p->pieces) return pdk_dist_nomem(err, "the shard plan");
    bool kept_for_key = false;
    for (size_t i = 0, j; i < p->n_recs; i = j) {
        for (j = i + 1; j < p->n_recs && strcmp(order[j]->key, order[i]->key) == 0 &&
                        same_box(order[j], order[i]);
             j++)
            continue;
        if (i == 0 || strcmp(order[i - 1]->key, order[i]->key) != 0) kept_for_key = false;
        /* Empty pieces (a rank past the end of a short dim) hold nothing: they are not stored,
         * except one for a tensor that is empty as a whole, so its dtype and shape survive. */
        bool empty = pdk_box_volume(order[i]->n_dims, order[i]->shape) == 0;
        bool all_empty = pdk_box_volume(order[i]->n_dims, order[i]->global) == 0;
        if (empty && (!all_empty || kept_for_key)) continue;
        kept_for_key = true;
        p->pieces[p->n_pieces++] = (piece_rec){order[i], -1};
    }
    qsort(p->pieces, p->n_pieces, sizeof *p->pieces, cmp_first_seen);
    return PDCKPT_OK;
}

static void data_name(int rank, int64_t id, pdckpt_format format, char *out, size_t cap) {
    snprintf(out, cap, "%d_%lld%s", rank, (long long)id, pdk_data_file_ext(format));
}

/* Paddle's balanced_dedup_key_in_dict: candidates in file-name order, the least loaded wins. */
static pdckpt_status assign_writers(plan *p, int size, pdckpt_error *err) {
    uint64_t *load = calloc((size_t)size, sizeof *load);
    if (!load) return pdk_dist_nomem(err, "the shard plan");
    for (size_t k = 0; k < p->n_pieces; k++) {
        piece_rec *pc = &p->pieces[k];
        char       best_name[64] = "", name[64];
        int        best = -1;
        for (size_t i = 0; i < p->n_recs; i++) {
            shard_rec *r = &p->recs[i];
            if (strcmp(r->key, pc->first->key) != 0 || !same_box(r, pc->first)) continue;
            r->piece = k;
            data_name(r->rank, p->id, p->format, name, sizeof name);
            if (best < 0 || load[r->rank] < load[best] ||
                (load[r->rank] == load[best] && strcmp(name, best_name) < 0)) {
                best = r->rank;
                memcpy(best_name, name, sizeof name);
            }
        }
        pc->writer = best;
        load[best]++;
    }
    free(load);
    return PDCKPT_OK;
}

static pdckpt_status make_plan(pdk_dist *d, const pdk_blob *mine, int64_t id, plan *p,
                               pdckpt_error *err) {
    pdk_blob    all = {0};
    size_t     *offs = NULL;
    shard_rec **order = NULL;
    p->id = id;
    pdckpt_status st = pdk_dist_allgather(d, mine, &all, &offs, err);
    if (st == PDCKPT_OK) st = read_all(&all, offs, d->size, p, err);
    if (st == PDCKPT_OK && !(order = malloc((p->n_recs ? p->n_recs : 1) * sizeof *order)))
        st = pdk_dist_nomem(err, "the shard plan");
    if (st == PDCKPT_OK) st = group_pieces(p, order, err);
    if (st == PDCKPT_OK) st = assign_writers(p, d->size, err);
    free(order);
    free(offs);
    pdk_blob_free(&all);
    return st;
}

/* ---- writing ---- */

static pdckpt_status write_data(const pdk_dist *d, const plan *p, const pdckpt_mpi_shard *shards,
                                const char *dir, const pdckpt_save_options *save,
                                pdckpt_error *err) {
    pdckpt_value *tree = pdckpt_value_new_container(save->allocator, PDCKPT_KIND_DICT);
    if (!tree) return pdk_dist_nomem(err, "the data file tree");
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 0; i < p->n_recs && st == PDCKPT_OK; i++) {
        const shard_rec *r = &p->recs[i];
        if (r->rank != d->rank || r->piece == SIZE_MAX || p->pieces[r->piece].writer != d->rank)
            continue;
        pdckpt_tensor_view v;
        pdckpt_value      *t = NULL;
        pdckpt_tensor_get(shards[r->local].tensor, &v);
        st = pdk_tensor_borrow(&v, save->allocator, &t, err);
        if (st == PDCKPT_OK) st = pdckpt_dict_set(tree, r->key, t, err);
    }
    char name[64], path[4200];
    data_name(d->rank, p->id, p->format, name, sizeof name);
    if (st == PDCKPT_OK && pdckpt_value_len(tree) > 0) {
        pdckpt_save_options o = *save;
        o.format = p->format;
        st = pdk_path_join(dir, name, path, sizeof path, err);
        if (st == PDCKPT_OK) st = pdckpt_save_file(tree, path, &o, err);
    }
    pdckpt_value_free(tree);
    return st;
}

static pdckpt_status write_meta(const plan *p, const char *dir, bool durable, pdckpt_error *err) {
    pdk_meta_piece *pieces = calloc(p->n_pieces ? p->n_pieces : 1, sizeof *pieces);
    char(*names)[64] = calloc(p->n_pieces ? p->n_pieces : 1, sizeof *names);
    pdckpt_value *tree = NULL;
    pdk_blob      blob = {0};
    char          path[4200];
    pdckpt_status st = pieces && names ? PDCKPT_OK : pdk_dist_nomem(err, "metadata");
    for (size_t k = 0; k < p->n_pieces && st == PDCKPT_OK; k++) {
        const shard_rec *r = p->pieces[k].first;
        data_name(p->pieces[k].writer, p->id, p->format, names[k], sizeof names[k]);
        pieces[k] =
            (pdk_meta_piece){r->key, r->dtype, r->n_dims, r->global, r->offset, r->shape, names[k]};
    }
    if (st == PDCKPT_OK) st = pdk_meta_tree_new(pieces, p->n_pieces, &tree, err);
    if (st == PDCKPT_OK) st = pdk_meta_encode(tree, &blob, err);
    if (st == PDCKPT_OK) st = pdk_meta_path(dir, p->id, path, sizeof path, err);
    if (st == PDCKPT_OK) st = pdk_write_file_atomic(path, blob.data, blob.len, durable, err);
    pdk_blob_free(&blob);
    pdckpt_value_free(tree);
    free(pieces);
    free(names);
    return st;
}

/* The coordinator picks the id; an explicit id that has metadata loses it first. */
static pdckpt_status prepare_dir(const char *dir, int64_t wanted, bool durable, int64_t *id,
                                 pdckpt_error *err) {
    int64_t newest, largest;
    char    path[4200];
    PDK_DTRY(pdk_dist_mkdirs(dir, err));
    pdk_dist_sweep_temps(dir, NULL); /* temporaries of killed saves; their data files stay */
    PDK_DTRY(pdk_meta_scan(dir, &newest, &largest, err));
    *id = wanted >= 0 ? wanted : largest + 1;
    if (wanted < 0) return PDCKPT_OK;
    PDK_DTRY(pdk_meta_path(dir, *id, path, sizeof path, err));
    if (unlink(path) != 0)
        return errno == ENOENT ? PDCKPT_OK : pdk_dist_fail_sys(err, errno, path, "unlink");
    return durable ? pdk_dist_fsync_dir(dir, err) : PDCKPT_OK;
}

static pdckpt_status local_checks(const pdk_dist *d, const pdckpt_mpi_options *o, const char *dir,
                                  pdckpt_format *format, pdckpt_error *err) {
    *format = o->data_format == PDCKPT_FORMAT_AUTO ? PDCKPT_FORMAT_PICKLE : o->data_format;
    if (!pdk_data_file_ext(*format))
        return pdk_dist_fail(err, PDCKPT_ERR_ARGUMENT, NULL,
                             "data files can be safetensors, pickle, combined or vars-dir, not %s",
                             pdckpt_format_name(*format));
    if (!dir) return pdk_dist_fail(err, PDCKPT_ERR_ARGUMENT, NULL, "dir is NULL");
    if (o->coordinator < 0 || o->coordinator >= d->size)
        return pdk_dist_fail(err, PDCKPT_ERR_ARGUMENT, NULL, "coordinator %d is not in the job",
                             o->coordinator);
    return PDCKPT_OK;
}

static uint64_t args_hash(const char *dir, const pdckpt_mpi_options *o, pdckpt_format format) {
    uint64_t h = pdk_hash_bytes(0, dir, strlen(dir));
    h = pdk_hash_bytes(h, &o->unique_id, sizeof o->unique_id);
    h = pdk_hash_bytes(h, &o->coordinator, sizeof o->coordinator);
    return pdk_hash_bytes(h, &format, sizeof format);
}

/* pdckpt:long-function — the commit protocol, step by step, each step agreed by all ranks. */
pdckpt_status pdckpt_mpi_save_sharded(MPI_Comm comm, const pdckpt_mpi_shard *shards,
                                      size_t n_shards, const char *dir,
                                      const pdckpt_mpi_options *opts, int64_t *out_id,
                                      pdckpt_error *err) {
    static const pdckpt_mpi_options defaults = PDCKPT_MPI_OPTIONS_INIT;
    pdckpt_error                    local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_dist_reset(err);
    if (!opts) opts = &defaults;
    pdk_dist d;
    plan     p = {0};
    pdk_blob mine = {0};
    int64_t  id = -1;
    PDK_DTRY(pdk_dist_open(comm, opts, &d, err));
    pdckpt_status st = local_checks(&d, opts, dir, &p.format, err);
    if (st == PDCKPT_OK) st = encode_shards(shards, n_shards, &mine, err);
    st = pdk_dist_agree(&d, st, err);
    if (st == PDCKPT_OK)
        st = pdk_dist_same(&d, args_hash(dir, opts, p.format),
                           "dir, unique_id, "
                           "coordinator and data_format",
                           err);
    if (st == PDCKPT_OK) {
        bool coord = d.rank == opts->coordinator;
        st = coord ? prepare_dir(dir, opts->unique_id, opts->save.durable, &id, err) : PDCKPT_OK;
        st = pdk_dist_agree(&d, st, err);
    }
    if (st == PDCKPT_OK) st = pdk_dist_bcast(&d, &id, sizeof id, opts->coordinator, err);
    if (st == PDCKPT_OK) st = pdk_dist_agree(&d, make_plan(&d, &mine, id, &p, err), err);
    if (st == PDCKPT_OK) /* 1. every data file, atomically and durably */
        st = pdk_dist_agree(&d, write_data(&d, &p, shards, dir, &opts->save, err), err);
    if (st == PDCKPT_OK) /* 2. only then the metadata that makes the checkpoint complete */
        st = pdk_dist_agree(
            &d,
            d.rank == opts->coordinator ? write_meta(&p, dir, opts->save.durable, err) : PDCKPT_OK,
            err);
    if (st == PDCKPT_OK && out_id) *out_id = id;
    plan_free(&p);
    pdk_blob_free(&mine);
    pdk_dist_close(&d);
    return st;
}
