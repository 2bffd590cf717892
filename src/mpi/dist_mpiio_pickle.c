/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_mpiio_pickle.c — one .pdparams / .pdopt pickle written by all ranks with MPI-IO: the
 * bytes a single-process save of the merged dict writes, so paddle.load reads it.
 *
 * Ranks exchange each tensor's key, name, dtype and shape, and all compute one plan: keys in
 * order of first appearance over ranks 0, 1, ... and each taken from the highest rank that has
 * it (dict.update over ranks: the merge pdckpt_mpi_save's gather makes).  Tensors of 1 MiB and
 * more are written by their owners straight from tensor memory.  The coordinator gathers the
 * small ones and writes every other byte: it runs the core's pickle writer over the merged dict
 * with each large tensor replaced by a placeholder whose data lies in one read-only zero mapping
 * (address space, not memory), into a sink that notes where each placeholder's payload falls
 * (the writer hands payloads of 64 KiB and more to the sink whole, from the tensor's memory) and
 * keeps the rest.  A payload that does not arrive that way fails the save; nothing is guessed.
 * Protocol 2 is refused: it stores bytes as latin-1 text whose length depends on the values.
 */
#include "dist_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define BIG_TENSOR ((uint64_t)1 << 20)

typedef struct item {
    char        *key, *name;
    pdckpt_dtype dtype;
    int32_t      n_dims;
    int64_t      dims[PDCKPT_MAX_DIMS];
    uint64_t     nbytes;
    int          rank;
    size_t       local; /* position in that rank's dict */
} item;

typedef struct plan {
    item     *items; /* every rank's tensors, rank by rank */
    size_t    n_items;
    size_t   *keys; /* per key, in file order: the item that is written */
    size_t    n_keys;
    uint64_t *offsets; /* per key: where a large tensor's payload starts (from the coordinator) */
    uint64_t  max_big; /* the largest large tensor */
} plan;

static void plan_free(plan *p) {
    for (size_t i = 0; i < p->n_items; i++) {
        free(p->items[i].key);
        free(p->items[i].name);
    }
    free(p->items);
    free(p->keys);
    free(p->offsets);
    memset(p, 0, sizeof *p);
}

static bool is_big(const item *it) {
    return it->nbytes >= BIG_TENSOR;
}

/* ---- what each rank holds ---- */

static pdckpt_status check_local(const pdckpt_value *local, const char *path,
                                 const pdckpt_mpi_options *o, int size, pdckpt_error *err) {
    PDK_TRY(pdk_mpiio_check_target(path, o, size, err));
    if (o->save.protocol < 3)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1,
                        "a pickle written by all ranks needs protocol 3 or 4 (protocol %d "
                        "stores array bytes as text of value-dependent length); gather it "
                        "with pdckpt_mpi_save instead",
                        o->save.protocol);
    if (pdckpt_value_kind(local) != PDCKPT_KIND_DICT)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "expected a dict of this rank's tensors, found %s",
                        local ? pdckpt_kind_name(pdckpt_value_kind(local)) : "NULL");
    for (size_t i = 0; i < pdckpt_value_len(local); i++)
        if (pdckpt_value_kind(pdckpt_dict_key_at(local, i)) != PDCKPT_KIND_STRING ||
            pdckpt_value_kind(pdckpt_value_at(local, i)) != PDCKPT_KIND_TENSOR)
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1,
                            "a pickle written by all ranks holds a flat dict of tensors "
                            "(entry %zu is not); gather nested state with pdckpt_mpi_save",
                            i);
    return PDCKPT_OK;
}

static pdckpt_status describe(const pdckpt_value *local, pdk_blob *out, pdckpt_error *err) {
    pdk_blob_u64(out, pdckpt_value_len(local));
    for (size_t i = 0; i < pdckpt_value_len(local); i++) {
        size_t             klen = 0;
        const char        *key = pdckpt_value_get_string(pdckpt_dict_key_at(local, i), &klen);
        pdckpt_tensor_view v;
        pdckpt_tensor_get(pdckpt_value_at(local, i), &v);
        pdk_blob_str(out, key, klen);
        pdk_blob_str(out, v.name ? v.name : "", v.name ? strlen(v.name) : 0);
        pdk_blob_u32(out, (uint32_t)v.dtype);
        pdk_blob_u32(out, (uint32_t)v.n_dims);
        for (int32_t d = 0; d < v.n_dims; d++) pdk_blob_u64(out, (uint64_t)v.dims[d]);
        pdk_blob_u64(out, v.n_bytes);
    }
    return pdk_blob_check(out, err, "tensor descriptions");
}

static pdckpt_status read_item(pdk_rd *rd, item *it) {
    uint32_t dtype, n_dims;
    PDK_TRY(pdk_rd_strdup(rd, &it->key, "a key"));
    PDK_TRY(pdk_rd_strdup(rd, &it->name, "a tensor name"));
    PDK_TRY(pdk_rd_u32(rd, &dtype, "a dtype"));
    PDK_TRY(pdk_rd_u32(rd, &n_dims, "a rank"));
    if (n_dims > PDCKPT_MAX_DIMS)
        return pdk_rd_fail(rd, "expected at most %d dims", PDCKPT_MAX_DIMS);
    it->dtype = (pdckpt_dtype)dtype;
    it->n_dims = (int32_t)n_dims;
    for (uint32_t d = 0; d < n_dims; d++) {
        uint64_t dim;
        PDK_TRY(pdk_rd_u64(rd, &dim, "a dim"));
        it->dims[d] = (int64_t)dim;
    }
    return pdk_rd_u64(rd, &it->nbytes, "a byte size");
}

static pdckpt_status read_items(const pdk_blob *all, const size_t *offs, int size, plan *p,
                                pdckpt_error *err) {
    for (int r = 0; r < size; r++) {
        char source[64];
        snprintf(source, sizeof source, "rank %d's tensor descriptions", r);
        pdk_rd   rd = {all->data + offs[r], offs[r + 1] - offs[r], 0, source, err};
        uint64_t n;
        PDK_TRY(pdk_rd_count(&rd, &n, 32, "tensors"));
        item *grown = realloc(p->items, (p->n_items + (size_t)n + 1) * sizeof *grown);
        if (!grown) return pdk_fail_nomem(err, "the file plan");
        p->items = grown;
        for (uint64_t i = 0; i < n; i++) {
            item *it = &p->items[p->n_items++];
            memset(it, 0, sizeof *it);
            it->rank = r;
            it->local = (size_t)i;
            PDK_TRY(read_item(&rd, it));
        }
    }
    return PDCKPT_OK;
}

/* ---- the plan: key order and the rank that writes each ---- */

typedef struct key_ref {
    const char *key;
    size_t      item; /* items are stored rank by rank, local order within: item order is
                         the order of appearance */
} key_ref;

static int by_key_then_item(const void *a, const void *b) {
    const key_ref *x = a, *y = b;
    int            c = strcmp(x->key, y->key);
    return c ? c : (x->item > y->item) - (x->item < y->item);
}

static int by_position(const void *a, const void *b) {
    const size_t *x = a, *y = b; /* (first appearance, written item) pairs */
    return (x[0] > y[0]) - (x[0] < y[0]);
}

static pdckpt_status plan_keys(plan *p, pdckpt_error *err) {
    key_ref *refs = malloc((p->n_items + 1) * sizeof *refs);
    size_t  *pairs = malloc((2 * p->n_items + 1) * sizeof *pairs);
    p->keys = malloc((p->n_items + 1) * sizeof *p->keys);
    p->offsets = calloc(p->n_items + 1, sizeof *p->offsets);
    if (!refs || !pairs || !p->keys || !p->offsets) {
        free(refs);
        free(pairs);
        return pdk_fail_nomem(err, "the file plan");
    }
    for (size_t i = 0; i < p->n_items; i++) refs[i] = (key_ref){p->items[i].key, i};
    qsort(refs, p->n_items, sizeof *refs, by_key_then_item);
    size_t n = 0;
    for (size_t i = 0, j; i < p->n_items; i = j) {
        for (j = i + 1; j < p->n_items && strcmp(refs[j].key, refs[i].key) == 0;) j++;
        pairs[2 * n] = refs[i].item;         /* first appearance: the key's place */
        pairs[2 * n + 1] = refs[j - 1].item; /* the highest rank: the value that wins */
        n++;
    }
    qsort(pairs, n, 2 * sizeof *pairs, by_position);
    p->n_keys = n;
    for (size_t k = 0; k < n; k++) {
        p->keys[k] = pairs[2 * k + 1];
        const item *it = &p->items[p->keys[k]];
        if (is_big(it) && it->nbytes > p->max_big) p->max_big = it->nbytes;
    }
    free(refs);
    free(pairs);
    return PDCKPT_OK;
}

static pdckpt_status plan_all(pdk_dist *d, const pdckpt_value *local, plan *p, pdckpt_error *err) {
    pdk_blob      mine = {0}, all = {0};
    size_t       *offs = NULL;
    pdckpt_status st = describe(local, &mine, err);
    st = pdk_dist_agree(d, st, err);
    if (st == PDCKPT_OK) st = pdk_dist_allgather(d, &mine, &all, &offs, err);
    if (st == PDCKPT_OK) st = read_items(&all, offs, d->size, p, err);
    if (st == PDCKPT_OK) st = plan_keys(p, err);
    free(offs);
    pdk_blob_free(&all);
    pdk_blob_free(&mine);
    return pdk_dist_agree(d, st, err);
}

/* ---- the small tensors, gathered on the coordinator ---- */

static pdckpt_status gather_small(MPI_Comm comm, pdk_dist *d, const pdckpt_value *local,
                                  const plan *p, const pdckpt_mpi_options *o, pdckpt_value **merged,
                                  pdckpt_error *err) {
    pdckpt_value *mine = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    if (!mine) return pdk_fail_nomem(err, "small tensors");
    pdckpt_status st = PDCKPT_OK;
    for (size_t k = 0; k < p->n_keys && st == PDCKPT_OK; k++) {
        const item *it = &p->items[p->keys[k]];
        if (it->rank != d->rank || is_big(it)) continue;
        pdckpt_value *t = pdckpt_value_retain((pdckpt_value *)pdckpt_value_at(local, it->local));
        st = pdckpt_dict_set(mine, it->key, t, err);
    }
    pdckpt_mpi_options g = *o;
    g.gather_to = &o->coordinator;
    g.n_gather_to = 1;
    g.state_type = PDCKPT_MPI_PARAMS;
    st = pdk_dist_agree(d, st, err);
    if (st == PDCKPT_OK) st = pdckpt_mpi_gather(comm, mine, &g, merged, err);
    pdckpt_value_free(mine);
    return st;
}

/* ---- the coordinator: every byte but the large payloads ---- */

typedef struct layout_sink {
    const uint8_t *zero; /* the placeholders' data */
    const plan    *p;
    size_t         key;             /* the key whose payload is expected next */
    uint64_t       got;             /* of its bytes so far */
    uint64_t       pos;             /* file offset of the next byte */
    pdk_blob       bytes, segments; /* kept bytes; their (offset, length) u64 pairs */
    uint64_t       seg_at, seg_len; /* the segment being kept */
} layout_sink;

static void close_segment(layout_sink *ls) {
    if (ls->seg_len == 0) return;
    pdk_blob_u64(&ls->segments, ls->seg_at);
    pdk_blob_u64(&ls->segments, ls->seg_len);
    ls->seg_len = 0;
}

static void next_big(layout_sink *ls) {
    while (ls->key < ls->p->n_keys && !is_big(&ls->p->items[ls->p->keys[ls->key]])) ls->key++;
}

static pdckpt_status layout_write(void *self, const void *bytes, size_t len, pdckpt_error *err) {
    layout_sink   *ls = self;
    const uint8_t *b = bytes;
    if (b >= ls->zero && b < ls->zero + ls->p->max_big) {
        next_big(ls);
        const item *it = ls->key < ls->p->n_keys ? &ls->p->items[ls->p->keys[ls->key]] : NULL;
        if (!it || b != ls->zero + ls->got || ls->got + len > it->nbytes)
            return pdk_fail(err, PDCKPT_ERR_UNSUPPORTED, NULL, -1,
                            "the pickle writer did not hand a large tensor's payload over "
                            "whole; cannot place it");
        if (ls->got == 0) ls->p->offsets[ls->key] = ls->pos;
        ls->got += len;
        if (ls->got == it->nbytes) ls->key++, ls->got = 0;
    } else {
        if (ls->seg_len && ls->seg_at + ls->seg_len != ls->pos) close_segment(ls);
        if (ls->seg_len == 0) ls->seg_at = ls->pos;
        ls->seg_len += len;
        pdk_blob_put(&ls->bytes, bytes, len);
    }
    ls->pos += len;
    return PDCKPT_OK;
}

static const pdckpt_sink_ops layout_ops = {PDCKPT_SINK_OPS_VERSION, layout_write, NULL, NULL};

static pdckpt_status add_key(const plan *p, size_t k, const pdckpt_value *small, const void *zero,
                             pdckpt_value *tree, pdckpt_error *err) {
    const item   *it = &p->items[p->keys[k]];
    pdckpt_value *t = NULL;
    if (is_big(it))
        PDK_TRY(pdckpt_tensor_new_borrowed(NULL, it->dtype, it->n_dims, it->dims, zero, &t, err));
    else if (!(t = pdckpt_value_retain((pdckpt_value *)pdckpt_dict_get(small, it->key))))
        return pdk_fail(err, PDCKPT_ERR_MPI, NULL, -1, "tensor '%s' was not gathered", it->key);
    pdckpt_status st = pdckpt_tensor_set_name(t, it->name[0] ? it->name : NULL, err);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(t);
        return st;
    }
    return pdckpt_dict_set(tree, it->key, t, err);
}

/* Runs the pickle writer over the merged dict; fills p->offsets and the kept bytes. */
static pdckpt_status lay_out(const plan *p, const pdckpt_value *small, const pdckpt_mpi_options *o,
                             layout_sink *ls, pdckpt_error *err) {
    size_t map_len = p->max_big ? (size_t)p->max_big : 1;
    void  *zero = mmap(NULL, map_len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (zero == MAP_FAILED) return pdk_fail_nomem(err, "placeholder mapping");
    pdckpt_value *tree = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_status st = tree ? PDCKPT_OK : pdk_fail_nomem(err, "the merged dict");
    for (size_t k = 0; k < p->n_keys && st == PDCKPT_OK; k++)
        st = add_key(p, k, small, zero, tree, err);
    ls->zero = zero;
    ls->p = p;
    pdckpt_save_options so = o->save;
    so.format = PDCKPT_FORMAT_PICKLE;
    so.progress = NULL;
    if (st == PDCKPT_OK) st = pdk_save_callback(tree, &layout_ops, ls, &so, err);
    close_segment(ls);
    next_big(ls);
    if (st == PDCKPT_OK && ls->key != p->n_keys)
        st = pdk_fail(err, PDCKPT_ERR_UNSUPPORTED, NULL, -1,
                      "the pickle writer did not write every large tensor's payload");
    if (st == PDCKPT_OK) st = pdk_blob_check(&ls->bytes, err, "the pickle's bytes");
    if (st == PDCKPT_OK) st = pdk_blob_check(&ls->segments, err, "the pickle's layout");
    pdckpt_value_free(tree);
    munmap(zero, map_len);
    return st;
}

/* ---- writing ---- */

typedef struct pickle_job {
    const pdk_dist     *d;
    const plan         *p;
    const pdckpt_value *local;
    const layout_sink  *ls; /* on the coordinator */
} pickle_job;

static pdckpt_status write_part(MPI_File fh, void *ctx, pdckpt_error *err) {
    const pickle_job *job = ctx;
    if (job->ls) {
        const uint8_t *b = job->ls->bytes.data;
        for (size_t s = 0; s + 16 <= job->ls->segments.len; s += 16) {
            uint64_t at, len;
            memcpy(&at, job->ls->segments.data + s, 8);
            memcpy(&len, job->ls->segments.data + s + 8, 8);
            PDK_TRY(pdk_mpiio_write_at(fh, at, b, (size_t)len, err));
            b += len;
        }
    }
    for (size_t k = 0; k < job->p->n_keys; k++) {
        const item *it = &job->p->items[job->p->keys[k]];
        if (it->rank != job->d->rank || !is_big(it)) continue;
        pdckpt_tensor_view v;
        pdckpt_tensor_get(pdckpt_value_at(job->local, it->local), &v);
        PDK_TRY(pdk_mpiio_write_at(fh, job->p->offsets[k], v.data, (size_t)v.n_bytes, err));
    }
    return PDCKPT_OK;
}

static pdckpt_status save_planned(MPI_Comm comm, pdk_dist *d, const pdckpt_value *local,
                                  const char *path, const pdckpt_mpi_options *o, plan *p,
                                  pdckpt_error *err) {
    pdckpt_value *small = NULL;
    layout_sink   ls = {0};
    bool          coord = d->rank == o->coordinator;
    pdckpt_status st = gather_small(comm, d, local, p, o, &small, err); /* agreed */
    if (st == PDCKPT_OK) st = pdk_dist_agree(d, coord ? lay_out(p, small, o, &ls, err) : st, err);
    if (st == PDCKPT_OK)
        st = pdk_dist_bcast(d, p->offsets, p->n_keys * sizeof *p->offsets, o->coordinator, err);
    pickle_job job = {d, p, local, coord ? &ls : NULL};
    if (st == PDCKPT_OK) st = pdk_mpiio_commit(d, path, o, write_part, &job, err);
    pdckpt_value_free(small);
    pdk_blob_free(&ls.bytes);
    pdk_blob_free(&ls.segments);
    return st;
}

pdckpt_status pdk_mpiio_save_pickle(MPI_Comm comm, const pdckpt_value *local, const char *path,
                                    const pdckpt_mpi_options *opts, pdckpt_error *err) {
    pdk_dist d;
    plan     p = {0};
    PDK_TRY(pdk_dist_open(comm, opts, &d, err));
    pdckpt_status st = pdk_dist_agree(&d, check_local(local, path, opts, d.size, err), err);
    if (st == PDCKPT_OK) st = plan_all(&d, local, &p, err);
    if (st == PDCKPT_OK && p.n_keys == 0)
        st = pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1, "no tensor on any rank");
    if (st == PDCKPT_OK) st = save_planned(comm, &d, local, path, opts, &p, err);
    plan_free(&p);
    pdk_dist_close(&d);
    return st;
}
