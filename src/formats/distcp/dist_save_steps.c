/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_save_steps.c — the MPI-free steps of a sharded save (spec §5.1-5.3), shared by
 * pdckpt_mpi_save_sharded (src/mpi/dist_sharded.c, which adds the collectives) and the public
 * step-by-step API a job drives over its own collectives (pdckpt_sharded_describe / _plan_* /
 * _write, used by pdckpt.distributed over Paddle's process group):
 *   describe   a rank's pieces as bytes (key, dtype, global shape, offset, local shape; for a
 *              flattened run its box's shape and the run)
 *   plan       on the coordinator: the directory prepared (dist_lifecycle.c), the pieces checked
 *              and deduplicated (dist_shard_plan.c), one assignment per rank
 *   write      a rank's data file from its assignment: {key: piece} of the pieces it stores
 *   commit     the metadata, atomically, once every data file is durable; then the cleanup
 * The commit order is what makes a save crash-safe: an id without metadata is never loaded, and
 * a re-saved id keeps its previous files until the new metadata replaces the old one.
 */
#include "pdk_distcp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- describe ---- */

/* The box of shard i: its global shape and offset, and its shape -- the tensor's, or for a
 * flattened run the box it is cut from. */
typedef struct shard_box {
    int32_t n_dims;
    int64_t global[PDCKPT_MAX_DIMS], offset[PDCKPT_MAX_DIMS], shape[PDCKPT_MAX_DIMS];
} shard_box;

static pdckpt_status get_box(const pdckpt_shard *s, const pdckpt_shard_run *run,
                             const pdckpt_tensor_view *v, shard_box *b, pdckpt_error *err) {
    b->n_dims = run ? run->n_dims : v->n_dims;
    if (run && (b->n_dims < 0 || b->n_dims > PDCKPT_MAX_DIMS ||
                (b->n_dims && !s->global_shape && !run->box_shape)))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "shard '%s': a flattened run needs n_dims in [0, %d] and a global or "
                        "box shape",
                        s->key, PDCKPT_MAX_DIMS);
    for (int32_t d = 0; d < b->n_dims; d++) {
        const int64_t *shape = run ? run->box_shape : v->dims;
        b->global[d] = s->global_shape ? s->global_shape[d] : shape ? shape[d] : 0;
        b->shape[d] = shape ? shape[d] : b->global[d];
        b->offset[d] = s->global_offset ? s->global_offset[d] : 0;
        int64_t g = b->global[d], o = b->offset[d];
        if (o < 0 || g < 0 || b->shape[d] < 0 || o > g || b->shape[d] > g - o)
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                            "shard '%s': dim %d: a %s of %lld at offset %lld does not fit "
                            "the global size %lld",
                            s->key, (int)d, run ? "box" : "piece", (long long)b->shape[d],
                            (long long)o, (long long)g);
    }
    return PDCKPT_OK;
}

/* A flattened run: inside its box (of fewer than 2^62 elements), held by a 1-D tensor of its
 * length. */
static pdckpt_status check_run(const pdckpt_shard *s, const pdckpt_shard_run *run,
                               const pdckpt_tensor_view *v, const shard_box *b, pdckpt_error *err) {
    int64_t volume = pdk_box_volume(b->n_dims, b->shape);
    if (volume > INT64_MAX / 2 || run->begin < 0 || run->begin > run->end || run->end > volume)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "shard '%s': the flattened run [%lld, %lld) is not inside its box of "
                        "%lld elements",
                        s->key, (long long)run->begin, (long long)run->end, (long long)volume);
    if (v->n_dims != 1 || v->dims[0] != run->end - run->begin)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "shard '%s': the flattened run [%lld, %lld) must be held by a 1-D tensor "
                        "of %lld elements, not one of %d dims and %llu elements",
                        s->key, (long long)run->begin, (long long)run->end,
                        (long long)(run->end - run->begin), (int)v->n_dims,
                        (unsigned long long)v->n_elements);
    return PDCKPT_OK;
}

static pdckpt_status describe_one(const pdckpt_shard *s, const pdckpt_shard_run *run, size_t i,
                                  pdk_blob *out, pdckpt_error *err) {
    pdckpt_tensor_view v;
    shard_box          b;
    if (!s->key || !s->key[0] || !pdckpt_tensor_get(s->tensor, &v))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "shard %zu: expected a key and a tensor", i);
    if (run && !run->flattened) run = NULL;
    PDK_TRY(get_box(s, run, &v, &b, err));
    if (run) PDK_TRY(check_run(s, run, &v, &b, err));
    pdk_blob_str(out, s->key, strlen(s->key));
    pdk_blob_u8(out, (uint8_t)v.dtype);
    pdk_blob_u8(out, (uint8_t)b.n_dims);
    for (int32_t d = 0; d < b.n_dims; d++) {
        pdk_blob_u64(out, (uint64_t)b.global[d]);
        pdk_blob_u64(out, (uint64_t)b.offset[d]);
        pdk_blob_u64(out, (uint64_t)b.shape[d]);
    }
    pdk_blob_u8(out, run != NULL); /* then the run */
    if (run) pdk_blob_u64(out, (uint64_t)run->begin), pdk_blob_u64(out, (uint64_t)run->end);
    return PDCKPT_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* At most one piece per key on a rank. */
static pdckpt_status check_unique(const pdckpt_shard *shards, size_t n, pdckpt_error *err) {
    const char **keys = malloc((n ? n : 1) * sizeof *keys);
    if (!keys) return pdk_fail_nomem(err, "shard keys");
    for (size_t i = 0; i < n; i++) keys[i] = shards[i].key ? shards[i].key : "";
    qsort(keys, n, sizeof *keys, cmp_str);
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 1; i < n && st == PDCKPT_OK; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0)
            st = pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                          "key '%s' is given more than once on this rank", keys[i]);
    free(keys);
    return st;
}

pdckpt_status pdk_shard_describe(const pdckpt_shard *shards, const pdckpt_shard_run *runs, size_t n,
                                 pdk_blob *out, pdckpt_error *err) {
    if (n && !shards) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "shards is NULL");
    PDK_TRY(check_unique(shards, n, err));
    pdk_blob_u64(out, n);
    for (size_t i = 0; i < n; i++)
        PDK_TRY(describe_one(&shards[i], runs ? &runs[i] : NULL, i, out, err));
    return pdk_blob_check(out, err, "shard descriptions");
}

/* ---- write ---- */

pdckpt_status pdk_shard_build_tree(const uint8_t *list, size_t len, const pdckpt_shard *shards,
                                   size_t n, const pdckpt_allocator *a, pdckpt_value *tree,
                                   pdckpt_error *err) {
    pdk_rd   r = {list, len, 0, "the coordinator's write list", err};
    uint64_t count, prev = 0;
    PDK_TRY(pdk_rd_count(&r, &count, 8, "pieces to write"));
    for (uint64_t i = 0; i < count; i++) {
        uint64_t local;
        PDK_TRY(pdk_rd_u64(&r, &local, "a piece index"));
        if (local >= n || (i > 0 && local <= prev))
            return pdk_rd_fail(&r, "expected ascending piece indices below %zu", n);
        prev = local;
        pdckpt_tensor_view v;
        pdckpt_value      *t = NULL;
        pdckpt_tensor_get(shards[local].tensor, &v);
        PDK_TRY(pdk_tensor_borrow(&v, a, &t, err));
        PDK_TRY(pdckpt_dict_set(tree, shards[local].key, t, err));
    }
    return PDCKPT_OK;
}

/* ---- commit ---- */

pdckpt_status pdk_shard_write_meta(const pdk_shard_plan *p, const char *dir, bool durable,
                                   pdckpt_error *err) {
    pdk_meta_piece *pieces = calloc(p->n_pieces ? p->n_pieces : 1, sizeof *pieces);
    char(*names)[64] = calloc(p->n_pieces ? p->n_pieces : 1, sizeof *names);
    pdckpt_value *tree = NULL;
    pdk_blob      blob = {0};
    char          path[4200];
    pdckpt_status st = pieces && names ? PDCKPT_OK : pdk_fail_nomem(err, "metadata");
    for (size_t k = 0; k < p->n_pieces && st == PDCKPT_OK; k++) {
        const pdk_shard_rec *r = p->pieces[k].first;
        pdk_shard_data_name(p, p->pieces[k].writer, names[k], sizeof names[k]);
        pieces[k] = (pdk_meta_piece){
            r->key,   r->dtype, r->n_dims,     r->global,   r->offset,           r->shape,
            names[k], r->flat,  r->flat_begin, r->flat_end, !p->pieces[k].stored};
    }
    pdk_arena arena; /* the two metadata trees: millions of values, released at once */
    pdk_arena_init(&arena);
    if (st == PDCKPT_OK) st = pdk_meta_tree_new(&arena.allocator, pieces, p->n_pieces, &tree, err);
    if (st == PDCKPT_OK) st = pdk_meta_encode(tree, &arena.allocator, &blob, err);
    pdk_meta_index ix = {0}; /* its sidecar first: a loader then skips unpickling */
    if (st == PDCKPT_OK) st = pdk_meta_index_build(tree, "the new metadata", &ix, err);
    if (st == PDCKPT_OK) st = pdk_meta_sidecar_write(dir, p->id, &blob, &ix, durable, err);
    pdk_meta_index_free(&ix);
    pdckpt_value_free(tree);
    pdk_arena_release(&arena);
    if (st == PDCKPT_OK) st = pdk_meta_path(dir, p->id, path, sizeof path, err);
    if (st == PDCKPT_OK) st = pdk_write_file_atomic(path, blob.data, blob.len, durable, err);
    pdk_blob_free(&blob);
    free(pieces);
    free(names);
    return st;
}

/* ---- the public steps ---- */

struct pdckpt_sharded_plan {
    pdk_shard_plan p;
    char          *dir;
    int            n_ranks;
    int64_t       *numbers; /* rank r's file number (before file_base), NULL: r */
    int            extent;  /* file numbers are below it: n_ranks, or the largest + 1 */
    bool           durable, committed;
    pdk_blob       lists; /* rank r's write list at list_offs[r]..list_offs[r + 1] */
    size_t        *list_offs;
};

static pdckpt_status give_blob(pdk_blob *b, uint8_t **out, size_t *out_len, pdckpt_error *err) {
    if (!out || !out_len) {
        pdk_blob_free(b);
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "out or out_len is NULL");
    }
    if (!b->data && !(b->data = malloc(1))) return pdk_fail_nomem(err, "bytes");
    *out = b->data, *out_len = b->len;
    return PDCKPT_OK;
}

pdckpt_status pdckpt_sharded_describe_runs(const pdckpt_shard *shards, const pdckpt_shard_run *runs,
                                           size_t n_shards, uint8_t **out, size_t *out_len,
                                           pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    pdk_blob      b = {0};
    pdckpt_status st = pdk_shard_describe(shards, runs, n_shards, &b, err);
    if (st != PDCKPT_OK) {
        pdk_blob_free(&b);
        return st;
    }
    return give_blob(&b, out, out_len, err);
}

pdckpt_status pdckpt_sharded_describe(const pdckpt_shard *shards, size_t n_shards, uint8_t **out,
                                      size_t *out_len, pdckpt_error *err) {
    return pdckpt_sharded_describe_runs(shards, NULL, n_shards, out, out_len, err);
}

static pdckpt_status plan_format(pdckpt_format f, pdckpt_format *out, pdckpt_error *err) {
    *out = f == PDCKPT_FORMAT_AUTO ? PDCKPT_FORMAT_PICKLE : f;
    if (!pdk_data_file_ext(*out))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "data files can be safetensors, pickle, combined or vars-dir, not %s",
                        pdckpt_format_name(*out));
    return PDCKPT_OK;
}

/* Every rank's descriptions, back to back, as the MPI gather hands them to the planner. */
static pdckpt_status join_descriptions(const uint8_t *const *d, const size_t *lens, int n,
                                       pdk_blob *all, size_t **offs, pdckpt_error *err) {
    if (!d || !lens) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "descriptions is NULL");
    if (!(*offs = calloc((size_t)n + 1, sizeof **offs))) return pdk_fail_nomem(err, "offsets");
    for (int r = 0; r < n; r++) {
        if (lens[r] && !d[r])
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "rank %d's description is NULL", r);
        pdk_blob_put(all, d[r], lens[r]);
        (*offs)[r + 1] = all->len;
    }
    return pdk_blob_check(all, err, "shard descriptions");
}

static pdckpt_status plan_build(pdckpt_sharded_plan *s, int64_t unique_id,
                                const uint8_t *const *descriptions, const size_t *lengths,
                                pdckpt_error *err) {
    pdk_blob all = {0};
    size_t  *offs = NULL;
    PDK_TRY(pdk_lifecycle_prepare(s->dir, unique_id, s->extent, s->durable, &s->p.id,
                                  &s->p.file_base, err));
    pdckpt_status st = join_descriptions(descriptions, lengths, s->n_ranks, &all, &offs, err);
    if (st == PDCKPT_OK) st = pdk_shard_plan_read(&all, offs, s->n_ranks, &s->p, err);
    if (st == PDCKPT_OK) st = pdk_shard_plan_build(&s->p, s->n_ranks, err);
    if (st == PDCKPT_OK)
        st = pdk_shard_plan_write_lists(&s->p, s->n_ranks, &s->lists, &s->list_offs, err);
    pdk_blob_free(&all);
    free(offs);
    return st;
}

/* The file numbers a caller gives (distinct, >= 0, < 2^31), or rank order. */
static pdckpt_status plan_numbers(pdckpt_sharded_plan *s, const int64_t *numbers,
                                  pdckpt_error *err) {
    s->extent = s->n_ranks;
    if (!numbers) return PDCKPT_OK;
    if (!(s->numbers = calloc((size_t)s->n_ranks, sizeof *s->numbers)))
        return pdk_fail_nomem(err, "the plan");
    int64_t top = -1;
    for (int r = 0; r < s->n_ranks; r++) {
        for (int q = 0; q < r; q++)
            if (numbers[q] == numbers[r])
                return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                                "ranks %d and %d were given the same file number %lld", q, r,
                                (long long)numbers[r]);
        if (numbers[r] < 0 || numbers[r] > INT32_MAX)
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                            "rank %d's file number %lld is not in [0, 2^31)", r,
                            (long long)numbers[r]);
        s->numbers[r] = numbers[r];
        top = numbers[r] > top ? numbers[r] : top;
    }
    s->extent = (int)(top + 1);
    s->p.numbers = s->numbers;
    return PDCKPT_OK;
}

pdckpt_status pdckpt_sharded_plan_new_numbered(const char *dir, int64_t unique_id,
                                               pdckpt_format data_format, bool durable,
                                               const uint8_t *const *descriptions,
                                               const size_t *lengths, int n_ranks,
                                               const int64_t        *file_numbers,
                                               pdckpt_sharded_plan **out, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!out) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "out is NULL");
    *out = NULL;
    if (!dir || n_ranks <= 0)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "expected a dir and n_ranks > 0");
    pdckpt_sharded_plan *s = calloc(1, sizeof *s);
    if (!s) return pdk_fail_nomem(err, "the plan");
    s->n_ranks = n_ranks;
    s->durable = durable;
    pdckpt_status st = plan_format(data_format, &s->p.format, err);
    if (st == PDCKPT_OK) st = plan_numbers(s, file_numbers, err);
    if (st == PDCKPT_OK && !(s->dir = strdup(dir))) st = pdk_fail_nomem(err, "the plan");
    if (st == PDCKPT_OK) st = plan_build(s, unique_id, descriptions, lengths, err);
    if (st != PDCKPT_OK) {
        pdckpt_sharded_plan_free(s);
        return st;
    }
    *out = s;
    return PDCKPT_OK;
}

pdckpt_status pdckpt_sharded_plan_new(const char *dir, int64_t unique_id, pdckpt_format data_format,
                                      bool durable, const uint8_t *const *descriptions,
                                      const size_t *lengths, int n_ranks, pdckpt_sharded_plan **out,
                                      pdckpt_error *err) {
    return pdckpt_sharded_plan_new_numbered(dir, unique_id, data_format, durable, descriptions,
                                            lengths, n_ranks, NULL, out, err);
}

int64_t pdckpt_sharded_plan_id(const pdckpt_sharded_plan *plan) {
    return plan ? plan->p.id : -1;
}

/* An assignment: id, the data file's number, its format, then the rank's write list. */
pdckpt_status pdckpt_sharded_plan_assignment(const pdckpt_sharded_plan *plan, int rank,
                                             uint8_t **out, size_t *out_len, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!plan || rank < 0 || rank >= plan->n_ranks)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "rank %d is not in the plan", rank);
    pdk_blob b = {0};
    pdk_blob_u64(&b, (uint64_t)plan->p.id);
    pdk_blob_u64(&b, (uint64_t)(plan->p.file_base + (plan->numbers ? plan->numbers[rank] : rank)));
    pdk_blob_u8(&b, (uint8_t)plan->p.format);
    size_t from = plan->list_offs[rank], to = plan->list_offs[rank + 1];
    pdk_blob_put(&b, plan->lists.data + from, to - from);
    PDK_TRY(pdk_blob_check(&b, err, "the assignment"));
    return give_blob(&b, out, out_len, err);
}

pdckpt_status pdckpt_sharded_plan_commit(pdckpt_sharded_plan *plan, int32_t keep_last,
                                         pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!plan || plan->committed)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "no plan, or committed already");
    PDK_TRY(pdk_shard_write_meta(&plan->p, plan->dir, plan->durable, err));
    plan->committed = true;
    pdk_lifecycle_after_commit(plan->dir, plan->p.id, plan->p.file_base, plan->extent, keep_last,
                               plan->durable);
    return PDCKPT_OK;
}

void pdckpt_sharded_plan_free(pdckpt_sharded_plan *plan) {
    if (!plan) return;
    pdk_shard_plan_free(&plan->p);
    pdk_blob_free(&plan->lists);
    free(plan->list_offs);
    free(plan->numbers);
    free(plan->dir);
    free(plan);
}

static pdckpt_status read_assignment(pdk_rd *r, pdk_shard_plan *p) {
    uint64_t id, number;
    uint8_t  format;
    PDK_TRY(pdk_rd_u64(r, &id, "the checkpoint id"));
    PDK_TRY(pdk_rd_u64(r, &number, "the data file number"));
    PDK_TRY(pdk_rd_u8(r, &format, "the data format"));
    if (id > (uint64_t)INT64_MAX || number > (uint64_t)INT64_MAX ||
        !pdk_data_file_ext((pdckpt_format)format))
        return pdk_rd_fail(r, "expected an id, a file number and a data format");
    p->id = (int64_t)id, p->file_base = (int64_t)number, p->format = (pdckpt_format)format;
    return PDCKPT_OK;
}

pdckpt_status pdckpt_sharded_data_file(const uint8_t *assignment, size_t len,
                                       const pdckpt_shard *shards, size_t n_shards, const char *dir,
                                       pdckpt_value **tree, char *path, size_t path_cap,
                                       pdckpt_format *format, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!assignment || !dir || !tree || !path || !format || (n_shards && !shards))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "a required argument is NULL");
    *tree = NULL;
    pdk_shard_plan p = {0};
    pdk_rd         r = {assignment, len, 0, "the assignment", err};
    char           name[64];
    PDK_TRY(read_assignment(&r, &p));
    pdk_shard_data_name(&p, 0, name, sizeof name);
    PDK_TRY(pdk_path_join(dir, name, path, path_cap, err));
    PDK_TRY(pdk_dist_data_target(path, err));
    pdckpt_value *t = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    if (!t) return pdk_fail_nomem(err, "the data file tree");
    pdckpt_status st =
        pdk_shard_build_tree(assignment + r.pos, len - r.pos, shards, n_shards, NULL, t, err);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(t);
        return st;
    }
    *tree = t, *format = p.format;
    return PDCKPT_OK;
}

pdckpt_status pdckpt_sharded_write(const uint8_t *assignment, size_t len,
                                   const pdckpt_shard *shards, size_t n_shards, const char *dir,
                                   const pdckpt_save_options *opts, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdckpt_save_options o;
    PDK_TRY(pdk_save_options_take(opts, &o, err));
    pdckpt_value *tree = NULL;
    char          path[4200];
    PDK_TRY(pdckpt_sharded_data_file(assignment, len, shards, n_shards, dir, &tree, path,
                                     sizeof path, &o.format, err));
    pdckpt_status st = PDCKPT_OK;
    if (pdckpt_value_len(tree) > 0) st = pdk_save_path_inner(tree, path, &o, err);
    pdckpt_value_free(tree);
    return st;
}
