/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_meta_index.c — the in-memory index of a sharded checkpoint's metadata, shared by the
 * pickle reader (dist_meta_tree.c) and the compact form the coordinator broadcasts: keys in a
 * hash table, each key's pieces sorted by their dim-0 offset with a running maximum of their
 * dim-0 ends, so the pieces a box overlaps are found by binary search instead of a scan of every
 * piece (issue 20).  The compact form is what every other rank decodes — it never unpickles the
 * metadata — and is checked like any input: counts against the bytes left, file indices, boxes
 * inside their global shape.
 */
#include "pdk_distcp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- key -> its metadata ---- */

static size_t key_slot(const pdk_meta_index *ix, const char *key) {
    size_t mask = ix->n_slots - 1;
    for (size_t i = (size_t)pdk_table_hash(0, key, strlen(key)) & mask;; i = (i + 1) & mask)
        if (!ix->slots[i] || strcmp(ix->keys[ix->slots[i] - 1].key, key) == 0) return i;
}

pdckpt_status pdk_meta_index_keys(pdk_meta_index *ix, const char *source, pdckpt_error *err) {
    ix->n_slots = 16;
    while (ix->n_slots < ix->n_keys * 2) ix->n_slots *= 2;
    if (!(ix->slots = calloc(ix->n_slots, sizeof *ix->slots)))
        return pdk_fail_nomem(err, "metadata index");
    for (size_t k = 0; k < ix->n_keys; k++) {
        size_t s = key_slot(ix, ix->keys[k].key);
        if (ix->slots[s])
            return pdk_fail(err, PDCKPT_ERR_FORMAT, source, -1, "metadata: key '%s' twice",
                            ix->keys[k].key);
        ix->slots[s] = k + 1;
    }
    return PDCKPT_OK;
}

const pdk_key_meta *pdk_meta_find(const pdk_meta_index *ix, const char *key) {
    if (!ix->slots) return NULL;
    size_t s = ix->slots[key_slot(ix, key)];
    return s ? &ix->keys[s - 1] : NULL;
}

/* ---- sorted pieces ---- */

static int cmp_piece(const void *a, const void *b) {
    int64_t x = ((const pdk_piece *)a)->offset[0], y = ((const pdk_piece *)b)->offset[0];
    return (x > y) - (x < y);
}

/* Comparisons the overlap sweep may make over one index: 2^27 (a column-sharded key of 8,192
 * pieces, every dim-0 interval open at once, takes 2^25) plus 256 per piece (every key of a model
 * column-sharded over 256 ranks) -- linear in the metadata's size, so a hostile list of pieces
 * cannot hang a load. */
#define SWEEP_BASE      ((uint64_t)1 << 27)
#define SWEEP_PER_PIECE 256u

/* The sorted pieces of km overlap nowhere (overlapping pieces would let the load's covered-volume
 * count pass with a hole left as zeros): a sweep along dim 0 that compares a piece only with the
 * pieces whose dim-0 interval is still open (dist_tiling.c does the same for saves). */
static pdckpt_status check_disjoint(const pdk_key_meta *km, uint64_t *budget, const char *source,
                                    pdckpt_error *err) {
    size_t *open = malloc(km->n_pieces * sizeof *open), n_open = 0;
    int64_t o[PDCKPT_MAX_DIMS], s[PDCKPT_MAX_DIMS];
    if (!open) return pdk_fail_nomem(err, "metadata index");
    for (size_t i = 0; i < km->n_pieces; i++) {
        const pdk_piece *x = &km->pieces[i];
        size_t           kept = 0;
        for (size_t j = 0; j < n_open; j++) {
            const pdk_piece *y = &km->pieces[open[j]];
            if (y->offset[0] + y->shape[0] <= x->offset[0]) continue; /* closed */
            const char *why =
                *budget == 0 ? "fewer pieces open along dim 0 at once"
                : pdk_box_overlap(km->n_dims, y->offset, y->shape, x->offset, x->shape, o, s)
                    ? "pieces that do not overlap"
                    : NULL;
            if (why) {
                free(open);
                return pdk_fail(err, PDCKPT_ERR_FORMAT, source, -1,
                                "metadata: key '%s': expected %s", km->key, why);
            }
            (*budget)--;
            open[kept++] = open[j];
        }
        open[kept++] = i;
        n_open = kept;
    }
    free(open);
    return PDCKPT_OK;
}

pdckpt_status pdk_meta_index_sort(pdk_meta_index *ix, const char *source, pdckpt_error *err) {
    uint64_t budget = SWEEP_BASE;
    for (size_t k = 0; k < ix->n_keys; k++) budget += SWEEP_PER_PIECE * ix->keys[k].n_pieces;
    for (size_t k = 0; k < ix->n_keys; k++) {
        pdk_key_meta *km = &ix->keys[k];
        if (km->n_dims == 0 || km->n_pieces == 0) continue;
        qsort(km->pieces, km->n_pieces, sizeof *km->pieces, cmp_piece);
        PDK_TRY(check_disjoint(km, &budget, source, err));
        if (!(km->reach = malloc(km->n_pieces * sizeof *km->reach)))
            return pdk_fail_nomem(err, "metadata index");
        for (size_t i = 0; i < km->n_pieces; i++) {
            int64_t end = km->pieces[i].offset[0] + km->pieces[i].shape[0];
            km->reach[i] = i > 0 && km->reach[i - 1] > end ? km->reach[i - 1] : end;
        }
    }
    return PDCKPT_OK;
}

size_t pdk_meta_first_piece(const pdk_key_meta *km, int64_t begin) {
    if (!km->reach) return 0;
    size_t lo = 0, hi = km->n_pieces; /* the first i with reach[i] > begin */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (km->reach[mid] > begin)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* ---- the compact form ---- */

pdckpt_status pdk_meta_index_encode(const pdk_meta_index *ix, pdk_blob *out, pdckpt_error *err) {
    pdk_blob_u64(out, ix->n_files);
    for (size_t f = 0; f < ix->n_files; f++) pdk_blob_str(out, ix->files[f], strlen(ix->files[f]));
    pdk_blob_u64(out, ix->n_keys);
    for (size_t k = 0; k < ix->n_keys; k++) {
        const pdk_key_meta *km = &ix->keys[k];
        pdk_blob_str(out, km->key, strlen(km->key));
        pdk_blob_u8(out, (uint8_t)km->dtype);
        pdk_blob_u8(out, (uint8_t)km->n_dims);
        for (int32_t d = 0; d < km->n_dims; d++) pdk_blob_u64(out, (uint64_t)km->global_shape[d]);
        pdk_blob_u64(out, km->n_pieces);
        for (size_t i = 0; i < km->n_pieces; i++) {
            for (int32_t d = 0; d < km->n_dims; d++) {
                pdk_blob_u64(out, (uint64_t)km->pieces[i].offset[d]);
                pdk_blob_u64(out, (uint64_t)km->pieces[i].shape[d]);
            }
            pdk_blob_u64(out, km->pieces[i].file_ix);
            pdk_blob_u8(out, km->pieces[i].flat); /* then where in the run, and its length */
            if (km->pieces[i].flat) {
                pdk_blob_u64(out, (uint64_t)km->pieces[i].flat_at);
                pdk_blob_u64(out, (uint64_t)(km->pieces[i].flat_end - km->pieces[i].flat_begin));
            }
        }
    }
    return pdk_blob_check(out, err, "the metadata index");
}

static pdckpt_status get_piece(pdk_rd *r, const pdk_meta_index *ix, const pdk_key_meta *km,
                               pdk_piece *p) {
    int32_t n = km->n_dims;
    if (!(p->offset = malloc(2 * ((size_t)n + 1) * sizeof *p->offset)))
        return pdk_fail_nomem(r->err, "metadata index");
    p->shape = p->offset + n + 1;
    for (int32_t d = 0; d < n; d++) {
        uint64_t o, s;
        PDK_TRY(pdk_rd_u64(r, &o, "a piece offset"));
        PDK_TRY(pdk_rd_u64(r, &s, "a piece dim"));
        if (o > (uint64_t)km->global_shape[d] || s > (uint64_t)km->global_shape[d] - o)
            return pdk_rd_fail(r, "expected a piece of '%s' inside its global shape", km->key);
        p->offset[d] = (int64_t)o, p->shape[d] = (int64_t)s;
    }
    uint64_t f;
    PDK_TRY(pdk_rd_u64(r, &f, "a file index"));
    if (f >= ix->n_files) return pdk_rd_fail(r, "expected a file index below %zu", ix->n_files);
    p->file_ix = (size_t)f;
    p->file = ix->files[f];
    uint8_t  flat;
    uint64_t at = 0, run = 0;
    PDK_TRY(pdk_rd_flagged_pair(r, &flat, &at, &run, "a flattened position", "a flattened length"));
    if (at > (uint64_t)INT64_MAX / 2 || run > (uint64_t)INT64_MAX / 2 ||
        (flat && at + (uint64_t)pdk_box_volume(n, p->shape) > run))
        return pdk_rd_fail(r, "expected a flattened piece of '%s' inside its run", km->key);
    p->flat = flat;
    p->flat_at = (int64_t)at;
    p->flat_begin = flat ? 0 : -1;
    p->flat_end = flat ? (int64_t)run : -1;
    return PDCKPT_OK;
}

static pdckpt_status get_key(pdk_rd *r, const pdk_meta_index *ix, pdk_key_meta *km) {
    uint8_t  dtype, n_dims;
    uint64_t n;
    PDK_TRY(pdk_rd_strdup(r, &km->key, "a key"));
    PDK_TRY(pdk_rd_u8(r, &dtype, "a dtype"));
    PDK_TRY(pdk_rd_u8(r, &n_dims, "a dims count"));
    if (dtype == 0 || dtype >= PDCKPT_DTYPE_COUNT || n_dims > PDCKPT_MAX_DIMS)
        return pdk_rd_fail(r, "expected a dtype and at most %d dims", PDCKPT_MAX_DIMS);
    km->dtype = (pdckpt_dtype)dtype;
    km->n_dims = n_dims;
    if (!(km->global_shape = calloc((size_t)n_dims + 1, sizeof *km->global_shape)))
        return pdk_fail_nomem(r->err, "metadata index");
    for (int32_t d = 0; d < n_dims; d++) {
        uint64_t g;
        PDK_TRY(pdk_rd_u64(r, &g, "a global dim"));
        if (g > (uint64_t)INT64_MAX / 2) return pdk_rd_fail(r, "expected a global dim");
        km->global_shape[d] = (int64_t)g;
    }
    PDK_TRY(pdk_rd_count(r, &n, 8 * (2 * (size_t)n_dims + 1) + 1, "pieces"));
    if (!(km->pieces = calloc((size_t)n + 1, sizeof *km->pieces)))
        return pdk_fail_nomem(r->err, "metadata index");
    while (km->n_pieces < n) PDK_TRY(get_piece(r, ix, km, &km->pieces[km->n_pieces++]));
    return PDCKPT_OK;
}

static pdckpt_status decode(pdk_rd *r, pdk_meta_index *ix) {
    uint64_t n;
    PDK_TRY(pdk_rd_count(r, &n, 8, "files"));
    if (!(ix->files = calloc((size_t)n + 1, sizeof *ix->files)))
        return pdk_fail_nomem(r->err, "metadata index");
    while (ix->n_files < n) PDK_TRY(pdk_rd_strdup(r, &ix->files[ix->n_files++], "a file name"));
    PDK_TRY(pdk_rd_count(r, &n, 26, "keys"));
    if (!(ix->keys = calloc((size_t)n + 1, sizeof *ix->keys)))
        return pdk_fail_nomem(r->err, "metadata index");
    while (ix->n_keys < n) PDK_TRY(get_key(r, ix, &ix->keys[ix->n_keys++]));
    if (r->pos != r->len) return pdk_rd_fail(r, "unexpected bytes after the index");
    PDK_TRY(pdk_meta_index_keys(ix, r->source, r->err));
    return pdk_meta_index_sort(ix, r->source, r->err);
}

pdckpt_status pdk_meta_index_decode(const uint8_t *data, size_t len, const char *source,
                                    pdk_meta_index *out, pdckpt_error *err) {
    memset(out, 0, sizeof *out);
    pdk_rd        r = {data, len, 0, source, err};
    pdckpt_status st = decode(&r, out);
    if (st != PDCKPT_OK) pdk_meta_index_free(out);
    return st;
}

/* ---- the sidecar "<id>.pdkidx": the compact index saved beside the metadata ---- */

#define SIDECAR_MAGIC "PDKIDX2" /* 2: pieces carry their flattened run */
#define SIDECAR_HEAD  24        /* magic (8), metadata length (8), metadata hash (8) */

pdckpt_status pdk_meta_sidecar_path(const char *dir, int64_t id, char *out, size_t cap,
                                    pdckpt_error *err) {
    char name[64];
    snprintf(name, sizeof name, "%lld" PDK_SIDECAR_SUFFIX, (long long)id);
    return pdk_path_join(dir, name, out, cap, err);
}

pdckpt_status pdk_meta_sidecar_write(const char *dir, int64_t id, const pdk_blob *meta,
                                     const pdk_meta_index *ix, bool durable, pdckpt_error *err) {
    pdk_blob b = {0};
    char     path[4200];
    pdk_blob_put(&b, SIDECAR_MAGIC, 8);
    pdk_blob_u64(&b, meta->len);
    pdk_blob_u64(&b, pdk_hash_bytes(0, meta->data, meta->len));
    pdckpt_status st = pdk_meta_index_encode(ix, &b, err);
    if (st == PDCKPT_OK) st = pdk_meta_sidecar_path(dir, id, path, sizeof path, err);
    if (st == PDCKPT_OK) st = pdk_write_file_atomic(path, b.data, b.len, durable, err);
    pdk_blob_free(&b);
    return st;
}

bool pdk_meta_sidecar_read(const char *dir, int64_t id, const uint8_t *meta, size_t meta_len,
                           const struct stat *meta_st, pdk_blob *compact) {
    char         path[4200];
    uint8_t     *data = NULL;
    size_t       len = 0;
    struct stat  sst;
    pdckpt_error scratch = PDCKPT_ERROR_INIT;
    if (pdk_meta_sidecar_path(dir, id, path, sizeof path, &scratch) != PDCKPT_OK ||
        pdk_read_small_file(path, PDK_META_MAX_BYTES, &data, &len, &sst, &scratch) != PDCKPT_OK)
        return false;
    pdk_rd   r = {data, len, 0, path, &scratch};
    uint64_t n = 0, hash = 0;
    bool     ok = len >= SIDECAR_HEAD && memcmp(data, SIDECAR_MAGIC, 8) == 0 &&
              pdk_sidecar_writers_covered(&sst, meta_st, true);
    r.pos = 8;
    ok = ok && pdk_rd_u64(&r, &n, "length") == PDCKPT_OK && pdk_rd_u64(&r, &hash, "hash") == 0 &&
         n == meta_len && hash == pdk_hash_bytes(0, meta, meta_len);
    if (ok) {
        memmove(data, data + SIDECAR_HEAD, len - SIDECAR_HEAD);
        pdk_blob_free(compact);
        compact->data = data;
        compact->len = compact->cap = len - SIDECAR_HEAD;
        return true;
    }
    free(data);
    return false;
}
