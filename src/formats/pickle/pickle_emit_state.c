/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_emit_state.c — Paddle's state-dict path (spec pickle §1.2, §1.5, §1.10): the pickled
 * object is a new plain dict holding, in order, the user's keys (tensors as ndarrays, other values
 * as they are), "StructuredToParameterName@@" -> {key: tensor.name}, and for protocols 2/3 the
 * slices "key@@.i" of every top-level array above (2^30-1)/itemsize elements plus the index
 * "UnpackBigParamInfor@@" -> {key: {"OriginShape": shape, "slices": [names]}}.
 *
 * Identity as Paddle builds it: the name table's keys are the data keys themselves (ROOTKEY, so a
 * BINGET); names come from tensor.name, a fresh str per access; slice names are one object each,
 * shared by the data entry and the "slices" list; the literal keys are interned.
 * A tree that already holds a name table (read from a Paddle file) keeps it unchanged.
 */
#include "pickle.h"
#include "pickle_emit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIG_INFO_KEY "UnpackBigParamInfor@@"

typedef struct big_entry {
    size_t             index; /* position in the root dict */
    pdckpt_tensor_view t;
    uint64_t           per_slice; /* elements per slice */
    uint64_t           n_slices;
} big_entry;

typedef struct sd_ctx {
    const pdckpt_value *root;
    const pdckpt_value *table; /* an existing name table, or NULL */
    size_t             *user;  /* root indexes written as data entries */
    size_t              n_user;
    size_t             *tensors; /* root indexes of tensors (the generated name table) */
    size_t              n_tensors;
    big_entry          *big;
    size_t              n_big;
    uint64_t            n_slices;
    uint64_t           *key_memo; /* memo index of each root key written new, or NO_MEMO */
    bool                generic;  /* static.save's dict: entries as they are, no name table */
} sd_ctx;

#define NO_MEMO UINT64_MAX

static pdckpt_status save_root_key(pdk_pkl *p, const pdckpt_value *key) {
    size_t      len;
    const char *s = pdckpt_value_get_string(key, &len);
    if (s && pdckpt_value_kind(key) == PDCKPT_KIND_STRING)
        return pdk_pkl_save_str(p, s, len, pdk_key_text(PDK_KEY_ROOTKEY, s, len));
    return pdk_pkl_save_value(p, key, PDK_MODE_STATE);
}

/* A data entry's key when nothing before it and nothing but the name table after it can be the
 * same str: root keys are unique, and without an existing table (whose keys are looked up by
 * text) only the name table refers to them.  Strings of up to 2 bytes may be CPython's cached
 * characters, which anything else can share, so they take the memo's way. */
static pdckpt_status save_data_key(pdk_pkl *p, const sd_ctx *c, size_t index) {
    const pdckpt_value *key = pdckpt_dict_key_at(c->root, index);
    size_t              len;
    const char         *s = pdckpt_value_get_string(key, &len);
    if (!c->key_memo || !s || pdckpt_value_kind(key) != PDCKPT_KIND_STRING || len < 3)
        return save_root_key(p, key);
    return pdk_pkl_save_new_str(p, s, len, &c->key_memo[index]);
}

/* The name table's reference to a root key: a memo hit, straight from the index noted above. */
static pdckpt_status save_key_again(pdk_pkl *p, const sd_ctx *c, size_t index) {
    if (c->key_memo && c->key_memo[index] != NO_MEMO) return pdk_pkl_get(p, c->key_memo[index]);
    return save_root_key(p, pdckpt_dict_key_at(c->root, index));
}

/* np.array(tensor): a fresh ndarray for every entry, even a tensor stored under two keys. */
static pdckpt_status save_fresh_array(pdk_pkl *p, const pdckpt_value *t) {
    return pdk_pkl_save_tensor_array(p, t, pdk_key_fresh());
}

static pdckpt_status save_literal(pdk_pkl *p, const char *s) {
    return pdk_pkl_save_str(p, s, strlen(s), pdk_key_text(PDK_KEY_STR, s, strlen(s)));
}

/* ---- the name table ---- */

static pdckpt_status generated_pair(pdk_pkl *p, void *ctx, size_t i) {
    const sd_ctx       *c = ctx;
    const pdckpt_value *root = c->root;
    size_t              k = c->tensors[i];
    const pdckpt_value *key = pdckpt_dict_key_at(root, k);
    pdckpt_tensor_view  t;
    pdckpt_tensor_get_memory(pdckpt_value_at(root, k), &t, NULL);
    size_t      len;
    const char *name = t.name;
    if (!name && (!(name = pdckpt_value_get_string(key, &len)) ||
                  pdckpt_value_kind(key) != PDCKPT_KIND_STRING))
        return pdk_fail(p->err, PDCKPT_ERR_ARGUMENT, p->sink->name, -1,
                        "entry %zu: the tensor has no name and its key is not a string", k);
    PDK_TRY(save_key_again(p, c, k));
    return pdk_pkl_save_str(p, name, strlen(name), pdk_key_fresh());
}

static pdckpt_status table_pair(pdk_pkl *p, void *ctx, size_t i) {
    const pdckpt_value *table = ctx, *value = pdckpt_value_at(table, i);
    PDK_TRY(save_root_key(p, pdckpt_dict_key_at(table, i)));
    size_t      len;
    const char *s = pdckpt_value_get_string(value, &len);
    if (s && pdckpt_value_kind(value) == PDCKPT_KIND_STRING) /* names are never interned */
        return pdk_pkl_save_str(p, s, len, pdk_key_ptr(value, 0));
    return pdk_pkl_save_value(p, value, PDK_MODE_STATE);
}

static pdckpt_status save_name_table(pdk_pkl *p, const sd_ctx *c) {
    PDK_TRY(save_literal(p, PDCKPT_NAME_TABLE_KEY));
    if (c->table && pdckpt_value_kind(c->table) != PDCKPT_KIND_DICT)
        return pdk_pkl_save_value(p, c->table, PDK_MODE_STATE);
    PDK_TRY(pdk_pkl_boundary(p));
    PDK_TRY(pdk_pkl_op(p, '}'));
    pdk_pkl_key key = c->table ? pdk_key_ptr(c->table, 0) : pdk_key_fresh();
    PDK_TRY(pdk_pkl_memoize(p, &key));
    if (c->table)
        return pdk_pkl_batch(p, PDK_BATCH_DICT_EXACT, pdckpt_value_len(c->table), table_pair,
                             (void *)c->table);
    return pdk_pkl_batch(p, PDK_BATCH_DICT_EXACT, c->n_tensors, generated_pair, (void *)c);
}

/* ---- big-array slices ---- */

static pdckpt_status slice_name(pdk_pkl *p, const big_entry *b, const pdckpt_value *root,
                                uint64_t i, char *buf, size_t cap, size_t *len) {
    size_t              klen;
    const pdckpt_value *key = pdckpt_dict_key_at(root, b->index);
    const char         *k = pdckpt_value_get_string(key, &klen);
    if (!k || pdckpt_value_kind(key) != PDCKPT_KIND_STRING || klen + 24 > cap)
        return pdk_fail(p->err, PDCKPT_ERR_ARGUMENT, p->sink->name, -1,
                        "entry %zu: a tensor split into slices needs a string key of at most "
                        "%zu bytes",
                        b->index, cap - 24);
    memcpy(buf, k, klen);
    *len = klen + (size_t)snprintf(buf + klen, cap - klen, "@@.%" PRIu64, i);
    return PDCKPT_OK;
}

static pdckpt_status save_slice_name(pdk_pkl *p, const sd_ctx *c, const big_entry *b, uint64_t i) {
    char   name[4096];
    size_t len = 0;
    PDK_TRY(slice_name(p, b, c->root, i, name, sizeof name, &len));
    const pdckpt_value *key = pdckpt_dict_key_at(c->root, b->index);
    return pdk_pkl_save_str(p, name, len, pdk_key_ptr(key, i + 1));
}

static pdckpt_status save_slice(pdk_pkl *p, const sd_ctx *c, uint64_t s) {
    const big_entry *b = c->big;
    while (s >= b->n_slices) s -= b++->n_slices;
    PDK_TRY(save_slice_name(p, c, b, s));
    uint64_t           first = s * b->per_slice, left = b->t.n_elements - first;
    int64_t            count = (int64_t)(left < b->per_slice ? left : b->per_slice);
    size_t             item = pdckpt_dtype_size(b->t.dtype);
    pdckpt_tensor_view c_order; /* value.flatten(): C order, whatever the array's own order */
    if (!pdckpt_tensor_get(pdckpt_value_at(c->root, b->index), &c_order))
        return pdk_fail_nomem(p->err, "a C-order copy of a Fortran-order array");
    return pdk_pkl_save_ndarray(p, b->t.dtype, 1, &count,
                                (const uint8_t *)c_order.data + first * item,
                                (uint64_t)count * item, false, pdk_key_fresh());
}

typedef struct slices_ctx {
    const sd_ctx    *c;
    const big_entry *b;
} slices_ctx;

static pdckpt_status slice_list_item(pdk_pkl *p, void *ctx, size_t i) {
    slices_ctx *sc = ctx;
    return save_slice_name(p, sc->c, sc->b, i);
}

static pdckpt_status info_field(pdk_pkl *p, void *ctx, size_t i) {
    slices_ctx *sc = ctx;
    if (i == 0) {
        PDK_TRY(save_literal(p, "OriginShape"));
        return pdk_pkl_save_int_tuple(p, sc->b->t.dims, (size_t)sc->b->t.n_dims);
    }
    PDK_TRY(save_literal(p, "slices"));
    PDK_TRY(pdk_pkl_boundary(p));
    PDK_TRY(pdk_pkl_op(p, ']'));
    pdk_pkl_key fresh = pdk_key_fresh();
    PDK_TRY(pdk_pkl_memoize(p, &fresh));
    return pdk_pkl_batch(p, PDK_BATCH_LIST_EXACT, (size_t)sc->b->n_slices, slice_list_item, sc);
}

static pdckpt_status new_dict(pdk_pkl *p) {
    PDK_TRY(pdk_pkl_boundary(p));
    PDK_TRY(pdk_pkl_op(p, '}'));
    pdk_pkl_key fresh = pdk_key_fresh();
    return pdk_pkl_memoize(p, &fresh);
}

static pdckpt_status info_pair(pdk_pkl *p, void *ctx, size_t i) {
    const sd_ctx *c = ctx;
    slices_ctx    sc = {c, &c->big[i]};
    PDK_TRY(save_root_key(p, pdckpt_dict_key_at(c->root, c->big[i].index)));
    PDK_TRY(new_dict(p));
    return pdk_pkl_batch(p, PDK_BATCH_DICT_EXACT, 2, info_field, &sc);
}

/* ---- the top-level dict ---- */

/* A static.save entry: the key and value as the generic path writes them. */
static pdckpt_status generic_item(pdk_pkl *p, const sd_ctx *c, size_t index) {
    PDK_TRY(pdk_pkl_save_value(p, pdckpt_dict_key_at(c->root, index), PDK_MODE_GENERIC));
    return pdk_pkl_save_value(p, pdckpt_value_at(c->root, index), PDK_MODE_GENERIC);
}

static pdckpt_status root_item(pdk_pkl *p, void *ctx, size_t i) {
    const sd_ctx *c = ctx;
    if (i < c->n_user) {
        const pdckpt_value *v = pdckpt_value_at(c->root, c->user[i]);
        if (c->generic) return generic_item(p, c, c->user[i]);
        PDK_TRY(save_data_key(p, c, c->user[i]));
        if (pdckpt_value_kind(v) == PDCKPT_KIND_TENSOR) return save_fresh_array(p, v);
        return pdk_pkl_save_value(p, v, PDK_MODE_STATE);
    }
    if (!c->generic && i == c->n_user) return save_name_table(p, c);
    i -= !c->generic; /* past the name table */
    if (i - c->n_user < c->n_slices) return save_slice(p, c, i - c->n_user);
    PDK_TRY(save_literal(p, BIG_INFO_KEY));
    PDK_TRY(new_dict(p));
    return pdk_pkl_batch(p, PDK_BATCH_DICT_EXACT, c->n_big, info_pair, (void *)c);
}

/* The bytes an array may take unsplit: 2^30 - 1, as Paddle; PDCKPT_TEST_SPLIT_BYTES in the
 * environment lowers it (tests only: a real split needs arrays over 1 GiB). */
static uint64_t split_bytes(void) {
    const char *env = getenv("PDCKPT_TEST_SPLIT_BYTES");
    uint64_t    n = env ? strtoull(env, NULL, 10) : 0;
    return n && n < (1u << 30) - 1 ? n : (1u << 30) - 1;
}

/* Whether _unpack_saved_dict splits this top-level value (protocols 2 and 3 only). */
static bool is_big(const pdk_pkl *p, const pdckpt_value *v, uint64_t limit, big_entry *b) {
    if (p->proto >= 4 || !pdckpt_tensor_get_memory(v, &b->t, NULL)) return false;
    size_t item = pdk_pkl_numpy_itemsize(b->t.dtype);
    if (item == 0 || b->t.n_elements <= limit / item) return false;
    b->per_slice = limit / item;
    b->n_slices = (b->t.n_elements + b->per_slice - 1) / b->per_slice;
    return true;
}

/* Sorts the root entries into data entries, the name table and split arrays. */
static pdckpt_status plan(pdk_pkl *p, sd_ctx *c) {
    size_t n = pdckpt_value_len(c->root);
    c->user = pdk_calloc(p->alloc, n + 1, sizeof *c->user);
    c->tensors = pdk_calloc(p->alloc, n + 1, sizeof *c->tensors);
    c->big = pdk_calloc(p->alloc, n + 1, sizeof *c->big);
    c->key_memo = pdk_alloc(p->alloc, (n + 1) * sizeof *c->key_memo);
    if (!c->user || !c->tensors || !c->big || !c->key_memo)
        return pdk_fail_nomem(p->err, "state dict plan");
    for (size_t i = 0; i <= n; i++) c->key_memo[i] = NO_MEMO;
    uint64_t limit = p->proto >= 4 ? 0 : split_bytes(); /* (once: W2 has 100,000 entries) */
    for (size_t i = 0; i < n; i++) {
        const pdckpt_value *key = pdckpt_dict_key_at(c->root, i), *v = pdckpt_value_at(c->root, i);
        if (pdk_value_is_string(key, PDCKPT_NAME_TABLE_KEY, strlen(PDCKPT_NAME_TABLE_KEY))) {
            c->table = v;
            continue;
        }
        if (pdk_pickle_table_lists(v)) c->tensors[c->n_tensors++] = i;
        big_entry *b = &c->big[c->n_big];
        if (!is_big(p, v, limit, b)) {
            c->user[c->n_user++] = i;
            continue;
        }
        b->index = i;
        c->n_slices += b->n_slices;
        c->n_big++;
    }
    return PDCKPT_OK;
}

static pdckpt_status write_root(pdk_pkl *p, const sd_ctx *c) {
    PDK_TRY(pdk_pkl_boundary(p));
    PDK_TRY(new_dict(p));
    return pdk_pkl_batch(p, PDK_BATCH_DICT_EXACT,
                         c->n_user + !c->generic + c->n_slices + (c->n_big > 0), root_item,
                         (void *)c);
}

static pdckpt_status save_dict(pdk_pkl *p, const pdckpt_value *root, bool generic) {
    sd_ctx        c = {root, NULL, NULL, 0, NULL, 0, NULL, 0, 0, NULL, generic};
    size_t        cap = pdckpt_value_len(root) + 1;
    pdckpt_status st = plan(p, &c);
    uint64_t     *key_memo = c.key_memo;
    if (c.table) c.key_memo = NULL; /* an existing table's keys find the data keys by text */
    if (p->offsets) {               /* pickle_index.c */
        p->offsets->state_path = !generic && !c.table && !c.n_big;
        p->offsets->unindexable |= c.n_big > 0;
    }
    if (st == PDCKPT_OK && generic && !c.n_big) /* nothing to split: the generic path's bytes */
        st = pdk_pkl_save_value(p, root, PDK_MODE_GENERIC);
    else if (st == PDCKPT_OK)
        st = write_root(p, &c);
    pdk_free(p->alloc, c.user, cap * sizeof *c.user);
    pdk_free(p->alloc, c.tensors, cap * sizeof *c.tensors);
    pdk_free(p->alloc, c.big, cap * sizeof *c.big);
    pdk_free(p->alloc, key_memo, cap * sizeof *key_memo);
    return st;
}

pdckpt_status pdk_pkl_save_state_dict(pdk_pkl *p, const pdckpt_value *root) {
    if (pdckpt_value_kind(root) != PDCKPT_KIND_DICT)
        return pdk_fail(p->err, PDCKPT_ERR_ARGUMENT, p->sink->name, -1,
                        "expected a dict for a state dict, found a %s",
                        pdckpt_kind_name(pdckpt_value_kind(root)));
    return save_dict(p, root, false);
}

pdckpt_status pdk_pkl_save_static_params(pdk_pkl *p, const pdckpt_value *root) {
    if (pdckpt_value_kind(root) != PDCKPT_KIND_DICT || p->proto >= 4 ||
        pdckpt_dict_is_ordered(root) || pdckpt_dict_get(root, PDCKPT_NAME_TABLE_KEY))
        return pdk_pkl_save_value(p, root, PDK_MODE_GENERIC);
    return save_dict(p, root, true);
}
