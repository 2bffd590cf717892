/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_dlpack.c — DLPack export (src/api/dlpack.c): the DLPack 1.1 dtype codes of every dtype,
 * shape and C-order strides, the READ_ONLY / IS_COPIED flags, and lifetime: an export made from a
 * mapped file stays readable after the tree is freed, until its deleter runs (ASan checks this).
 */
#include "check.h"
#include "test_util.h"

#include <pdckpt_dlpack.h>
#include <stdio.h>
#include <stdlib.h>

static void test_dtype_codes(void) {
    static const struct {
        pdckpt_dtype dtype;
        int          code, bits;
    } want[] = {
        {PDCKPT_DTYPE_BOOL, kDLBool, 8},
        {PDCKPT_DTYPE_UINT8, kDLUInt, 8},
        {PDCKPT_DTYPE_INT8, kDLInt, 8},
        {PDCKPT_DTYPE_INT16, kDLInt, 16},
        {PDCKPT_DTYPE_UINT16, kDLUInt, 16},
        {PDCKPT_DTYPE_INT32, kDLInt, 32},
        {PDCKPT_DTYPE_UINT32, kDLUInt, 32},
        {PDCKPT_DTYPE_INT64, kDLInt, 64},
        {PDCKPT_DTYPE_UINT64, kDLUInt, 64},
        {PDCKPT_DTYPE_FLOAT16, kDLFloat, 16},
        {PDCKPT_DTYPE_BFLOAT16, kDLBfloat, 16},
        {PDCKPT_DTYPE_FLOAT32, kDLFloat, 32},
        {PDCKPT_DTYPE_FLOAT64, kDLFloat, 64},
        {PDCKPT_DTYPE_COMPLEX64, kDLComplex, 64},
        {PDCKPT_DTYPE_COMPLEX128, kDLComplex, 128},
        {PDCKPT_DTYPE_FLOAT8_E4M3FN, kDLFloat8_e4m3fn, 8},
        {PDCKPT_DTYPE_FLOAT8_E5M2, kDLFloat8_e5m2, 8},
        {PDCKPT_DTYPE_FLOAT8_E4M3FNUZ, kDLFloat8_e4m3fnuz, 8},
        {PDCKPT_DTYPE_FLOAT8_E5M2FNUZ, kDLFloat8_e5m2fnuz, 8},
        {PDCKPT_DTYPE_FLOAT8_E8M0FNU, kDLFloat8_e8m0fnu, 8},
    };
    CHECK_EQ_INT(sizeof want / sizeof want[0], PDCKPT_DTYPE_COUNT - 1);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int64_t                   dims[1] = {3};
        pdckpt_value             *t = tu_random_tensor(want[i].dtype, 1, dims, (unsigned)i);
        DLManagedTensorVersioned *m = NULL;
        pdckpt_error              err;
        CHECK_OK(pdckpt_value_to_dlpack(t, &m, &err), &err);
        if (!m) continue;
        CHECK_EQ_INT(m->dl_tensor.dtype.code, want[i].code);
        CHECK_EQ_INT(m->dl_tensor.dtype.bits, want[i].bits);
        CHECK_EQ_INT(m->dl_tensor.dtype.lanes, 1);
        CHECK_EQ_INT(m->dl_tensor.dtype.bits / 8, pdckpt_dtype_size(want[i].dtype));
        m->deleter(m);
        pdckpt_value_free(t);
    }
}

/* An owned tensor is shared, writable, and described with C-order strides. */
static void test_owned_shape_and_strides(void) {
    int64_t            dims[3] = {2, 3, 4};
    pdckpt_value      *t = tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 3, dims, 7);
    pdckpt_tensor_view v;
    pdckpt_tensor_get(t, &v);
    DLManagedTensorVersioned *m = NULL;
    CHECK_OK(pdckpt_value_to_dlpack(t, &m, NULL), NULL);
    CHECK_EQ_INT(m->version.major, 1);
    CHECK_EQ_INT(m->version.minor, 1);
    CHECK_EQ_INT(m->flags, 0);
    CHECK_EQ_INT(m->dl_tensor.device.device_type, kDLCPU);
    CHECK_EQ_INT(m->dl_tensor.ndim, 3);
    CHECK(m->dl_tensor.data == v.data);
    CHECK_EQ_INT(m->dl_tensor.byte_offset, 0);
    const int64_t strides[3] = {12, 4, 1};
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(m->dl_tensor.shape[i], dims[i]);
        CHECK_EQ_INT(m->dl_tensor.strides[i], strides[i]);
    }
    /* The export keeps the data alive after the value is gone. */
    unsigned char first[96];
    memcpy(first, v.data, sizeof first);
    pdckpt_value_free(t);
    CHECK(memcmp(m->dl_tensor.data, first, sizeof first) == 0);
    m->deleter(m);
}

/* Big enough to be mapped rather than read (input.c maps files of 64 KiB and more). */
static void test_mapped_outlives_tree(void) {
    char *dir = tu_tempdir();
    char  path[4200];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    int64_t            dims[2] = {256, 128};
    pdckpt_value      *root = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_value      *w = tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, dims, 3);
    pdckpt_tensor_view wv;
    pdckpt_tensor_get(w, &wv);
    unsigned char *expect = malloc((size_t)wv.n_bytes);
    memcpy(expect, wv.data, (size_t)wv.n_bytes);
    pdckpt_dict_set(root, "w", w, NULL);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.durable = false;
    pdckpt_error err;
    CHECK_OK(pdckpt_save_file(root, path, &so, &err), &err);
    pdckpt_value_free(root);

    pdckpt_value       *loaded = NULL;
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.zero_copy = true; /* mapped: the export must keep the mapping alive */
    CHECK_OK(pdckpt_load_file(path, &lo, &loaded, NULL, &err), &err);
    pdckpt_tensor_view lv;
    CHECK(pdckpt_tensor_get(pdckpt_dict_get(loaded, "w"), &lv));
    CHECK(pdckpt_buffer_is_mapped(lv.buffer));
    DLManagedTensorVersioned *m = NULL;
    CHECK_OK(pdckpt_value_to_dlpack(pdckpt_dict_get(loaded, "w"), &m, &err), &err);
    CHECK_EQ_INT(m->flags, DLPACK_FLAG_BITMASK_READ_ONLY);
    CHECK(m->dl_tensor.data == lv.data);
    pdckpt_value_free(loaded);
    CHECK(memcmp(m->dl_tensor.data, expect, (size_t)wv.n_bytes) == 0);
    m->deleter(m);
    free(expect);
    tu_rmtree(dir);
    free(dir);
}

/* Caller memory has no buffer to hold: the export is a copy. copy=True always copies. */
static void test_borrowed_and_forced_copies(void) {
    int32_t       data[6] = {1, 2, 3, 4, 5, 6};
    int64_t       dims[2] = {2, 3};
    pdckpt_value *t = NULL;
    CHECK_OK(pdckpt_tensor_new_borrowed(NULL, PDCKPT_DTYPE_INT32, 2, dims, data, &t, NULL), NULL);
    DLManagedTensorVersioned *m = NULL;
    CHECK_OK(pdckpt_value_to_dlpack(t, &m, NULL), NULL);
    CHECK_EQ_INT(m->flags, DLPACK_FLAG_BITMASK_IS_COPIED);
    CHECK(m->dl_tensor.data != (void *)data);
    CHECK(memcmp(m->dl_tensor.data, data, sizeof data) == 0);
    pdckpt_value_free(t);
    data[0] = 99; /* the copy is independent of the caller's memory */
    CHECK_EQ_INT(((int32_t *)m->dl_tensor.data)[0], 1);
    m->deleter(m);

    pdckpt_value      *owned = tu_random_tensor(PDCKPT_DTYPE_INT64, 2, dims, 5);
    pdckpt_tensor_view v;
    pdckpt_tensor_get(owned, &v);
    CHECK_OK(pdckpt_value_to_dlpack_copy(owned, &m, NULL), NULL);
    CHECK_EQ_INT(m->flags, DLPACK_FLAG_BITMASK_IS_COPIED);
    CHECK(m->dl_tensor.data != v.data);
    CHECK(memcmp(m->dl_tensor.data, v.data, (size_t)v.n_bytes) == 0);
    m->deleter(m);
    pdckpt_value_free(owned);
}

static void test_scalar_empty_and_errors(void) {
    pdckpt_value             *scalar = tu_random_tensor(PDCKPT_DTYPE_FLOAT64, 0, NULL, 1);
    DLManagedTensorVersioned *m = NULL;
    CHECK_OK(pdckpt_value_to_dlpack(scalar, &m, NULL), NULL);
    CHECK_EQ_INT(m->dl_tensor.ndim, 0);
    CHECK(m->dl_tensor.data != NULL);
    m->deleter(m);
    pdckpt_value_free(scalar);

    int64_t       dims[2] = {0, 5};
    pdckpt_value *empty = tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, dims, 1);
    CHECK_OK(pdckpt_value_to_dlpack(empty, &m, NULL), NULL);
    CHECK(m->dl_tensor.data == NULL);
    CHECK_EQ_INT(m->dl_tensor.shape[0], 0);
    CHECK_EQ_INT(m->dl_tensor.strides[0], 5);
    m->deleter(m);
    pdckpt_value_free(empty);

    pdckpt_error  err;
    pdckpt_value *s = pdckpt_value_new_string(NULL, "x", SIZE_MAX);
    m = (DLManagedTensorVersioned *)1;
    CHECK_STATUS(pdckpt_value_to_dlpack(s, &m, &err), PDCKPT_ERR_ARGUMENT, &err);
    CHECK(m == NULL);
    CHECK(strstr(err.message, "expected a tensor value, found string") != NULL);
    CHECK_STATUS(pdckpt_value_to_dlpack(s, NULL, &err), PDCKPT_ERR_ARGUMENT, &err);
    pdckpt_value_free(s);
}

int main(void) {
    RUN(test_dtype_codes);
    RUN(test_owned_shape_and_strides);
    RUN(test_mapped_outlives_tree);
    RUN(test_borrowed_and_forced_copies);
    RUN(test_scalar_empty_and_errors);
    return CHECK_SUMMARY();
}
