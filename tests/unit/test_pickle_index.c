/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_pickle_index.c — the lazy-open index "<file>.pdkidx" (src/formats/pickle/pickle_index.c)
 * under hostile edits, run under ASan/UBSan by ctest: bodies changed byte by byte with their hash
 * made to match again (so the decoder itself reads garbage), and truncations.  Whatever the index
 * holds, a zero-copy open must succeed (an index never fails an open), and an untouched index
 * must give exactly what parsing gives, built whole or entry by entry (pdckpt_lazy_*).  Both kinds
 * of index: from a parse (large tensors beside other values) and from the save itself (a state
 * dict of small tensors).  Stale and rewritten pickles: tests/py/test_pickle_index.py.  A file
 * that can hold no index (protocol 2's latin-1 payloads, arrays split as static.save splits them)
 * is not parsed for one: that parse built a copy of every such array.
 */
#include "check.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define HEADER (8 + 9 * 8)

/* Large tensors (so the index is written) and one of every plain value kind. */
static pdckpt_value *state(void) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    int64_t       dims[2] = {128, 160};
    for (int i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof key, "layer%d.weight", i);
        CHECK_OK(
            pdckpt_dict_set(d, key, tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, dims, 7u + i), &err),
            &err);
    }
    pdckpt_value *list = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST);
    CHECK_OK(pdckpt_value_append(list, pdckpt_value_new_string(NULL, "a", 1), &err), &err);
    CHECK_OK(pdckpt_value_append(list, pdckpt_value_new_float(NULL, 2.5), &err), &err);
    CHECK_OK(pdckpt_value_append(list, pdckpt_value_new_bool(NULL, true), &err), &err);
    CHECK_OK(pdckpt_value_append(list, pdckpt_value_new_none(NULL), &err), &err);
    CHECK_OK(pdckpt_value_append(list, pdckpt_value_new_bytes(NULL, "xyz", 3), &err), &err);
    CHECK_OK(pdckpt_dict_set(d, "extra", list, &err), &err);
    CHECK_OK(pdckpt_dict_set(d, "step", pdckpt_value_new_int(NULL, -12345), &err), &err);
    return d;
}

/* A state dict of small tensors (indexed from the save): every dtype the index takes from the
 * save, 0-d and empty tensors; named (Paddle tensors) or not (numpy arrays: named by their keys).
 */
static pdckpt_value *small_state(bool named) {
    static const pdckpt_dtype dts[] = {
        PDCKPT_DTYPE_FLOAT32, PDCKPT_DTYPE_FLOAT64, PDCKPT_DTYPE_FLOAT16, PDCKPT_DTYPE_BFLOAT16,
        PDCKPT_DTYPE_INT8,    PDCKPT_DTYPE_INT16,   PDCKPT_DTYPE_INT32,   PDCKPT_DTYPE_INT64,
        PDCKPT_DTYPE_UINT8,   PDCKPT_DTYPE_BOOL};
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    for (int i = 0; i < 40; i++) {
        char    key[32], name[32];
        int64_t dims[2] = {i % 5, 3};
        /* 0-d (of 4 and 8 bytes: a 1-byte payload may be shared through the memo, then there
         * is no index), 1-d and 2-d, some empty */
        int32_t nd = i % 10 < 2 ? 0 : i % 3 == 0 ? 1 : 2;
        snprintf(key, sizeof key, "p%d.w", i);
        pdckpt_value *t = tu_random_tensor(dts[i % 10], nd, dims, 100u + (unsigned)i);
        snprintf(name, sizeof name, "linear_%d.w_0", i);
        if (named) CHECK_OK(pdckpt_tensor_set_name(t, name, &err), &err);
        CHECK_OK(pdckpt_dict_set(d, key, t, &err), &err);
    }
    return d;
}

/* Tensor names along two trees (pdckpt_value_equal ignores names). */
static bool same_names(const pdckpt_value *a, const pdckpt_value *b) {
    pdckpt_tensor_view ta, tb;
    if (pdckpt_tensor_get(a, &ta) && pdckpt_tensor_get(b, &tb))
        return (!ta.name && !tb.name) || (ta.name && tb.name && !strcmp(ta.name, tb.name));
    size_t n = pdckpt_value_len(a);
    if (n != pdckpt_value_len(b) || pdckpt_value_kind(a) != pdckpt_value_kind(b)) return false;
    for (size_t i = 0; i < n; i++)
        if (!same_names(pdckpt_value_at(a, i), pdckpt_value_at(b, i))) return false;
    return true;
}

/* Every entry through pdckpt_lazy_* (NULL lazy: none), against `want` when given; without it
 * (a hostile index) each entry is made or refused as CORRUPT. */
static void walk_lazy(const char *path, const pdckpt_value *want) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    pdckpt_lazy *l = NULL;
    CHECK_OK(pdckpt_lazy_open(path, NULL, &l, &err), &err);
    if (want) CHECK(l != NULL && pdckpt_lazy_len(l) == pdckpt_value_len(want));
    for (size_t i = 0; l && i < pdckpt_lazy_len(l); i++) {
        pdckpt_value *k = NULL, *v = NULL;
        size_t        len = 0;
        const char   *text = pdckpt_lazy_key_text(l, i, &len);
        pdckpt_status sk = pdckpt_lazy_key(l, i, &k, &err), sv = pdckpt_lazy_get(l, i, &v, &err);
        /* a forged entry (its hash made to match) is refused when made, never made wrong */
        CHECK(sk == PDCKPT_OK || (!want && sk == PDCKPT_ERR_CORRUPT && !k));
        CHECK(sv == PDCKPT_OK || (!want && sv == PDCKPT_ERR_CORRUPT && !v));
        if (want) {
            const pdckpt_value *wk = pdckpt_dict_key_at(want, i), *wv = pdckpt_value_at(want, i);
            CHECK(text && len == strlen(pdckpt_value_get_string(wk, NULL)) &&
                  !memcmp(text, pdckpt_value_get_string(wk, NULL), len));
            CHECK(pdckpt_value_equal(k, wk) && pdckpt_value_equal(v, wv) && same_names(v, wv));
        }
        pdckpt_value_free(k);
        pdckpt_value_free(v);
    }
    CHECK(pdckpt_lazy_get(l, pdckpt_lazy_len(l), &(pdckpt_value *){NULL}, &err) ==
          PDCKPT_ERR_ARGUMENT);
    pdckpt_lazy_close(l);
}

static pdckpt_value *open_lazy(const char *path) {
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT_WITH(true);
    pdckpt_value       *tree = NULL;
    CHECK_OK(pdckpt_load_file(path, &lo, &tree, NULL, &err), &err);
    return tree;
}

static void write_rehashed(const char *idx_path, uint8_t *idx, size_t len) {
    uint64_t n = len - HEADER, h = XXH3_64bits(idx + HEADER, n);
    memcpy(idx + HEADER - 16, &n, 8); /* little-endian hosts, as the index */
    memcpy(idx + HEADER - 8, &h, 8);
    CHECK(tu_write_file(idx_path, idx, len) == 0);
}

static void hostile_indexes(pdckpt_value *src) {
    char         *dir = tu_tempdir(), path[2048], idx_path[4096];
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *parsed = NULL;
    snprintf(path, sizeof path, "%s/m.pdparams", dir);
    snprintf(idx_path, sizeof idx_path, "%s.pdkidx", path);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.durable = false;
    CHECK_OK(pdckpt_save_file(src, path, &so, &err), &err);
    CHECK(tu_file_exists(idx_path));
    pdckpt_load_options ro = PDCKPT_LOAD_OPTIONS_INIT;
    CHECK_OK(pdckpt_load_file(path, &ro, &parsed, NULL, &err), &err);
    pdckpt_value *lazy = open_lazy(path);
    CHECK(pdckpt_value_equal(lazy, parsed) && same_names(lazy, parsed));
    pdckpt_value_free(lazy);
    walk_lazy(path, parsed);
    size_t   len = 0;
    uint8_t *orig = tu_read_file(idx_path, &len), *idx = malloc(len);
    CHECK(orig && idx && len > HEADER);
    for (size_t at = HEADER; at < len; at += 3) { /* every third body byte, rehashed */
        memcpy(idx, orig, len);
        idx[at] ^= (uint8_t)(0x5A + at);
        write_rehashed(idx_path, idx, len);
        pdckpt_value_free(open_lazy(path));
        walk_lazy(path, NULL);
    }
    for (size_t cut = 0; cut < len; cut += 5) { /* truncations, with and without a matching hash */
        memcpy(idx, orig, len);
        CHECK(tu_write_file(idx_path, idx, cut) == 0);
        pdckpt_value_free(open_lazy(path));
        if (cut > HEADER) write_rehashed(idx_path, idx, cut);
        lazy = open_lazy(path);
        CHECK(lazy != NULL);
        pdckpt_value_free(lazy);
        walk_lazy(path, NULL);
    }
    free(orig);
    free(idx);
    pdckpt_value_free(parsed);
    pdckpt_value_free(src);
    tu_rmtree(dir);
    free(dir);
}

static void test_hostile_indexes(void) {
    hostile_indexes(state()); /* an index from one parse */
}

static void test_hostile_saved_indexes(void) {
    hostile_indexes(small_state(true)); /* an index from the save */
    hostile_indexes(small_state(false));
}

/* No index (a tree of small tensors the state-dict path does not write): nothing opens lazily. */
static void test_no_index_no_lazy_open(void) {
    char         *dir = tu_tempdir(), path[2048];
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *src = small_state(true);
    CHECK_OK(pdckpt_dict_set(src, "step", pdckpt_value_new_int(NULL, 7), &err), &err);
    snprintf(path, sizeof path, "%s/g.pdparams", dir);
    CHECK_OK(pdckpt_save_file(src, path, NULL, &err), &err);
    pdckpt_lazy *l = (pdckpt_lazy *)&err;
    CHECK_OK(pdckpt_lazy_open(path, NULL, &l, &err), &err);
    CHECK(l == NULL);
    pdckpt_value_free(src);
    tu_rmtree(dir);
    free(dir);
}

/* Live and peak bytes through the allocator of a save. */
typedef struct counted {
    size_t live, peak;
} counted;

static void *count_alloc(void *ctx, size_t size, size_t alignment) {
    counted *c = ctx;
    void    *p = NULL;
    if (posix_memalign(&p, alignment < sizeof(void *) ? sizeof(void *) : alignment,
                       size ? size : 1))
        return NULL;
    c->live += size;
    if (c->live > c->peak) c->peak = c->live;
    return p;
}

static void count_free(void *ctx, void *ptr, size_t size) {
    ((counted *)ctx)->live -= ptr ? size : 0;
    free(ptr);
}

/* Saves {"w": 4 MiB} as paddle.static.save's X.pdparams at `proto` (`split`: 64 KiB slices)
 * and returns the most bytes the save held at once through its allocator. */
static size_t save_peak(int proto, bool split) {
    char         *dir = tu_tempdir(), path[2048], side[2100];
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *src = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    int64_t       dims[2] = {1024, 1024};
    CHECK_OK(pdckpt_dict_set(src, "w", tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, dims, 5), &err),
             &err);
    counted             c = {0, 0};
    pdckpt_allocator    a = {count_alloc, count_free, &c};
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.allocator = &a;
    so.protocol = proto;
    so.pickle_layout = split ? PDCKPT_PICKLE_LAYOUT_STATIC_PARAMS : PDCKPT_PICKLE_LAYOUT_GENERIC;
    snprintf(path, sizeof path, "%s/X.pdparams", dir);
    setenv("PDCKPT_TEST_SPLIT_BYTES", "65536", 1);
    CHECK_OK(pdckpt_save_file(src, path, &so, &err), &err);
    unsetenv("PDCKPT_TEST_SPLIT_BYTES");
    pdckpt_value *back = NULL;
    CHECK_OK(pdckpt_load_file(path, NULL, &back, NULL, &err), &err);
    CHECK(back && pdckpt_value_equal(src, back)); /* the slices joined again */
    snprintf(side, sizeof side, "%s.pdkidx", path);
    CHECK(!tu_file_exists(side));
    CHECK(c.live == 0);
    pdckpt_value_free(back);
    pdckpt_value_free(src);
    tu_rmtree(dir);
    free(dir);
    return c.peak;
}

/* A split array is joined into new memory by a load, and protocol 2's payloads are decoded into
 * new memory: no index can point into such a file, and the parse that tried built a copy of each
 * array (1.1 GiB through `convert --static-out`: 4.4 GiB at the peak).  The save itself needs no
 * copy of its arrays. */
static void test_no_parse_where_no_index_can_be(void) {
    size_t array = (size_t)4 << 20; /* a copy of it was held besides buffers of 1 MiB or less */
    CHECK(save_peak(3, true) < array / 2);
    CHECK(save_peak(2, true) < array / 2);
    CHECK(save_peak(2, false) < array / 2);
}

int main(void) {
    RUN(test_hostile_indexes);
    RUN(test_hostile_saved_indexes);
    RUN(test_no_index_no_lazy_open);
    RUN(test_no_parse_where_no_index_can_be);
    return CHECK_SUMMARY();
}
