/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_tensor_order.c — Fortran-order tensors (tensor_order.c): numpy's rule for when the orders
 * differ, C order from pdckpt_tensor_get (one copy, shared by concurrent readers), the memory as
 * it is from pdckpt_tensor_get_memory, equality by value, and the formats: a pickle keeps the
 * column-major memory with is_fortran set (and a load of it keeps it), the others store C order.
 */
#include "check.h"
#include "core/pdk_core.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* [[0, 1, 2], [3, 4, 5]] in column-major memory. */
static const float F23[6] = {0, 3, 1, 4, 2, 5};
static const float C23[6] = {0, 1, 2, 3, 4, 5};

static pdckpt_value *fortran_tensor(const float *data, int32_t nd, const int64_t *dims) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *t = NULL;
    CHECK_OK(pdckpt_tensor_new_borrowed(NULL, PDCKPT_DTYPE_FLOAT32, nd, dims, data, &t, &err),
             &err);
    CHECK_OK(pdckpt_tensor_set_fortran(t, &err), &err);
    return t;
}

static void test_orders_differ(void) {
    const int64_t d23[2] = {2, 3}, d13[2] = {1, 3}, d31[2] = {3, 1}, d03[3] = {0, 3, 2};
    const int64_t d121[3] = {2, 1, 3}, d5[1] = {5};
    CHECK(pdk_orders_differ(2, d23) && pdk_orders_differ(3, d121));
    CHECK(!pdk_orders_differ(2, d13) && !pdk_orders_differ(2, d31)); /* numpy: both contiguous */
    CHECK(!pdk_orders_differ(3, d03) && !pdk_orders_differ(1, d5) && !pdk_orders_differ(0, NULL));
    pdckpt_value *row = fortran_tensor(C23, 2, d13); /* the same bytes either way: stays C */
    CHECK(!pdckpt_tensor_is_fortran(row));
    pdckpt_value_free(row);
}

/* The element at C index `i` of `dims`, read from column-major memory one index at a time. */
static uint64_t column_major_offset(uint64_t i, int32_t nd, const int64_t *dims) {
    uint64_t off = 0, stride = 1, idx[8];
    for (int32_t k = nd - 1; k >= 0; k--) idx[k] = i % (uint64_t)dims[k], i /= (uint64_t)dims[k];
    for (int32_t k = 0; k < nd; k++) off += idx[k] * stride, stride *= (uint64_t)dims[k];
    return off;
}

/* The tiled copy agrees with the definition for matrices and for three to five dims (partial
 * tiles at both ends, size-1 dims anywhere, ends shorter than a tile), for every element size. */
static void test_transposition(void) {
    static const int64_t shapes[][5] = {{37, 45, 0, 0, 0}, {1, 70, 1, 33, 0}, {64, 32, 0, 0, 0},
                                        {5, 6, 7, 0, 0},   {3, 1, 4, 5, 0},   {2, 3, 4, 5, 0},
                                        {40, 3, 41, 0, 0}, {2, 33, 1, 3, 35}, {33, 65, 2, 0, 0},
                                        {1, 1, 1, 0, 0}};
    static const int32_t nds[] = {2, 4, 2, 3, 4, 4, 3, 5, 3, 3};
    static const size_t  items[] = {1, 2, 4, 8, 16, 3};
    static uint8_t       src[6930 * 16], dst[sizeof src]; /* the largest shape, 16-byte items */
    for (size_t s = 0; s < sizeof nds / sizeof *nds; s++)
        for (size_t k = 0; k < sizeof items / sizeof *items; k++) {
            uint64_t n = 1;
            for (int32_t d = 0; d < nds[s]; d++) n *= (uint64_t)shapes[s][d];
            for (size_t b = 0; b < n * items[k]; b++) src[b] = (uint8_t)(b * 7 + b / 251);
            pdk_fortran_to_c(dst, src, nds[s], shapes[s], n, items[k]);
            bool same = true;
            for (uint64_t i = 0; i < n; i++)
                same &= memcmp(dst + i * items[k],
                               src + column_major_offset(i, nds[s], shapes[s]) * items[k],
                               items[k]) == 0;
            CHECK(same);
        }
}

static void test_views_and_equality(void) {
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    const int64_t      dims[2] = {2, 3};
    pdckpt_value      *f = fortran_tensor(F23, 2, dims), *c = NULL;
    pdckpt_tensor_view v;
    bool               fortran = false;
    CHECK(pdckpt_tensor_is_fortran(f));
    CHECK(pdckpt_tensor_get_memory(f, &v, &fortran) && fortran && v.data == F23);
    CHECK(pdckpt_tensor_get(f, &v) && v.data != F23 && memcmp(v.data, C23, sizeof C23) == 0);
    const void *once = v.data;
    CHECK(pdckpt_tensor_get(f, &v) && v.data == once && v.read_only && v.buffer); /* one copy */
    CHECK_STATUS(pdckpt_tensor_set_fortran(f, &err), PDCKPT_ERR_ARGUMENT, &err);  /* seen in C */
    CHECK_OK(pdckpt_tensor_new_borrowed(NULL, PDCKPT_DTYPE_FLOAT32, 2, dims, C23, &c, &err), &err);
    CHECK(pdckpt_value_equal(f, c) && pdckpt_value_equal(c, f));
    pdckpt_value *owned = NULL; /* owned column-major bytes: no longer writable as C order */
    CHECK_OK(pdckpt_tensor_new(NULL, PDCKPT_DTYPE_FLOAT32, 2, dims, &owned, &err), &err);
    memcpy(pdckpt_tensor_data_mut(owned), F23, sizeof F23);
    CHECK_OK(pdckpt_tensor_set_fortran(owned, &err), &err);
    CHECK(pdckpt_tensor_data_mut(owned) == NULL && pdckpt_value_equal(owned, c));
    pdckpt_value_free(owned);
    pdckpt_value_free(c);
    pdckpt_value_free(f);
}

static void *read_c_order(void *t) {
    pdckpt_tensor_view v;
    return pdckpt_tensor_get(t, &v) ? (void *)v.data : NULL;
}

/* Readers racing for the first C-order copy all get the one that is kept (ASan/TSan: no leak). */
static void test_concurrent_first_readers(void) {
    static float  big[64 * 48];
    const int64_t dims[2] = {64, 48};
    for (int i = 0; i < 64 * 48; i++) big[i] = (float)i;
    pdckpt_value *f = fortran_tensor(big, 2, dims);
    pthread_t     th[4];
    void         *got[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, read_c_order, f);
    for (int i = 0; i < 4; i++) pthread_join(th[i], &got[i]);
    const float *c = read_c_order(f);
    for (int i = 0; i < 4; i++) CHECK(got[i] == c);
    CHECK(c[1] == 64.0f && c[48] == 1.0f); /* (0, 1) and (1, 0) of column-major memory */
    pdckpt_value_free(f);
}

static const uint8_t *find(const void *hay, size_t len, const void *needle, size_t n) {
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp((const uint8_t *)hay + i, needle, n) == 0) return (const uint8_t *)hay + i;
    return NULL;
}

/* A pickle holds the memory as it is, flagged; a safetensors file C order, and pdckpt's tree marks
 * the tensor ("F":1) so it loads column-major again; both give C order to readers. */
static void test_formats(void) {
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    const int64_t       dims[2] = {2, 3};
    pdckpt_value       *root = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    CHECK_OK(pdckpt_dict_set(root, "w", fortran_tensor(F23, 2, dims), &err), &err);
    const pdckpt_format formats[2] = {PDCKPT_FORMAT_PICKLE, PDCKPT_FORMAT_SAFETENSORS};
    for (int i = 0; i < 2; i++) {
        void  *bytes;
        size_t len;
        so.format = formats[i];
        CHECK_OK(pdckpt_save_memory(root, &so, &bytes, &len, &err), &err);
        const uint8_t *at = find(bytes, len, i ? C23 : F23, sizeof F23);
        CHECK(at != NULL);
        if (at && i == 0) /* NEWTRUE, SHORT_BINBYTES of 24 */
            CHECK(at[-3] == 0x88 && at[-2] == 'C' && at[-1] == 24);
        pdckpt_value       *back = NULL;
        pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
        pdckpt_tensor_view  v;
        CHECK_OK(pdckpt_load_memory(bytes, len, &lo, &back, NULL, &err), &err);
        const pdckpt_value *w = pdckpt_dict_get(back, "w");
        CHECK(pdckpt_tensor_get(w, &v) && memcmp(v.data, C23, sizeof C23) == 0);
        CHECK(pdckpt_tensor_is_fortran(w)); /* a pickle's F array stays F, and so does the tree's */
        pdckpt_value_free(back);
        pdckpt_free(NULL, bytes, len);
    }
    pdckpt_value_free(root);
}

/* Four 64 KiB tensors in a pickle (256 KiB of payload), column-major or C order. */
static void four_tensor_pickle(bool fortran, void **bytes, size_t *len, float **data) {
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    const int64_t       dims[2] = {128, 128};
    pdckpt_value       *root = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    *data = malloc(128 * 128 * sizeof **data);
    for (int i = 0; i < 128 * 128; i++) (*data)[i] = (float)i;
    const char *keys[4] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) {
        pdckpt_value *t = NULL;
        CHECK_OK(pdckpt_tensor_new_borrowed(NULL, PDCKPT_DTYPE_FLOAT32, 2, dims, *data, &t, &err),
                 &err);
        if (fortran) CHECK_OK(pdckpt_tensor_set_fortran(t, &err), &err);
        CHECK_OK(pdckpt_dict_set(root, keys[i], t, &err), &err);
    }
    so.format = PDCKPT_FORMAT_PICKLE;
    CHECK_OK(pdckpt_save_memory(root, &so, bytes, len, &err), &err);
    pdckpt_value_free(root);
}

/* The smallest max_alloc_bytes (to 1 KiB) a zero-copy load of `bytes` fits in; the tree in *out
 * when `out`. */
static uint64_t smallest_budget(const void *bytes, size_t len, pdckpt_value **out) {
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT_WITH(true);
    pdckpt_value       *tree = NULL;
    for (lo.max_alloc_bytes = 4 * 65536; lo.max_alloc_bytes < 16 * 65536;
         lo.max_alloc_bytes += 1024, pdk_error_reset(&err))
        if (pdckpt_load_memory(bytes, len, &lo, &tree, NULL, &err) == PDCKPT_OK) break;
    if (out)
        *out = tree;
    else
        pdckpt_value_free(tree);
    return lo.max_alloc_bytes;
}

/* A zero-copy load charges a Fortran-order tensor's C copy when a reader makes it, not upfront:
 * the smallest max_alloc_bytes that loads the file is the C-order file's (it was more: the copies
 * were charged at load); a writer's C order is made a chunk at a time (a combined file of all four
 * writes under it); kept copies are charged as they are made, one past what is left being a LIMIT
 * error that says so. */
static void test_copy_budget(void) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    void         *fb, *cb;
    size_t        flen, clen;
    float        *fdata, *cdata;
    pdckpt_value *back = NULL;
    four_tensor_pickle(true, &fb, &flen, &fdata);
    four_tensor_pickle(false, &cb, &clen, &cdata);
    CHECK(smallest_budget(fb, flen, &back) <= smallest_budget(cb, clen, NULL));
    pdckpt_tensor_view  v;
    const pdckpt_value *t[4] = {pdckpt_dict_get(back, "a"), pdckpt_dict_get(back, "b"),
                                pdckpt_dict_get(back, "c"), pdckpt_dict_get(back, "d")};
    void               *out;
    size_t              out_len;
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_COMBINED;
    CHECK_OK(pdckpt_save_memory(back, &so, &out, &out_len, &err), &err); /* a chunk at a time */
    pdckpt_free(NULL, out, out_len);
    CHECK(pdckpt_tensor_is_fortran(t[0]) && pdckpt_tensor_get(t[0], &v));
    CHECK(((const float *)v.data)[1] == 128.0f); /* C order: [0][1] */
    for (int i = 1; i < 4; i++) {
        pdckpt_status st = pdk_tensor_c_view(t[i], &v, "t", &err);
        CHECK(st == PDCKPT_OK ||
              (st == PDCKPT_ERR_LIMIT && strstr(err.message, "max_alloc_bytes") != NULL));
    }
    pdckpt_value_free(back);
    pdckpt_free(NULL, fb, flen);
    pdckpt_free(NULL, cb, clen);
    free(fdata);
    free(cdata);
}

static pdckpt_status count_chunk(void *ctx, const void *data, uint64_t len, pdckpt_error *err) {
    (void)data, (void)err;
    *(uint64_t *)ctx += len;
    return PDCKPT_OK;
}

/* A budget of 100 KiB: one 64 KiB copy is made, the next is a LIMIT error naming max_alloc_bytes
 * and what is left; a writer's chunk buffer is charged while it lives and given back. */
static void test_budget_limits_copies(void) {
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    const int64_t      dims[2] = {128, 128};
    float             *data = calloc(128 * 128, sizeof *data);
    pdckpt_value      *a = fortran_tensor(data, 2, dims), *b = fortran_tensor(data, 2, dims);
    pdk_budget        *budget = pdk_budget_new(NULL, 100 << 10);
    pdckpt_tensor_view v;
    uint64_t           written = 0;
    pdk_tensor_attach_budget(a, budget);
    pdk_tensor_attach_budget(b, budget);
    pdk_budget_release(budget); /* the tensors hold it */
    CHECK_OK(pdk_tensor_c_chunks(b, count_chunk, &written, "b", &err), &err);
    CHECK(written == 65536); /* its buffer given back: */
    CHECK_OK(pdk_tensor_c_view(a, &v, "a", &err), &err);
    CHECK_STATUS(pdk_tensor_c_view(b, &v, "b", &err), PDCKPT_ERR_LIMIT, &err);
    CHECK(strstr(err.message, "max_alloc_bytes (102400) leaves, 36864 bytes") != NULL);
    CHECK_STATUS(pdk_tensor_c_chunks(b, count_chunk, &written, "b", &err), PDCKPT_ERR_LIMIT, &err);
    CHECK(pdckpt_tensor_get(a, &v)); /* the kept copy stays */
    pdckpt_value_free(a);
    pdckpt_value_free(b);
    free(data);
}

int main(void) {
    RUN(test_orders_differ);
    RUN(test_transposition);
    RUN(test_views_and_equality);
    RUN(test_concurrent_first_readers);
    RUN(test_formats);
    RUN(test_copy_budget);
    RUN(test_budget_limits_copies);
    return CHECK_SUMMARY();
}
