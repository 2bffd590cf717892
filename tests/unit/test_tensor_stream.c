/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_tensor_stream.c — the binary tensor stream: the spec's worked hex dumps byte for byte,
 * every dtype round trip, 0-d / empty / LoD, packed dims and unknown desc fields accepted, and
 * zero-copy versus copied data.
 */
#include "check.h"
#include "test_util.h"

#include <stdlib.h>

static pdckpt_value *load_bytes(const void *data, size_t len, pdckpt_format f, bool zero_copy,
                                pdckpt_error *err) {
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.format = f;
    lo.zero_copy = zero_copy;
    pdckpt_value *out = NULL;
    pdckpt_load_memory(data, len, &lo, &out, NULL, err);
    return out;
}

static void save_bytes(const pdckpt_value *v, pdckpt_format f, void **data, size_t *len,
                       pdckpt_error *err) {
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = f;
    CHECK_OK(pdckpt_save_memory(v, &so, data, len, err), err);
}

/* Spec §1.5: float32 [2,3] holding 1..6 is exactly these 50 bytes. */
static void test_spec_hex_dump(void) {
    static const unsigned char expected[50] = {
        0, 0, 0,    0,    0,    0,    0,    0,    0,    0, 0,    0,    0,    0, 0,    0,   6,
        0, 0, 0,    0x08, 0x05, 0x10, 0x02, 0x10, 0x03, 0, 0,    0x80, 0x3f, 0, 0,    0,   0x40,
        0, 0, 0x40, 0x40, 0,    0,    0x80, 0x40, 0,    0, 0xa0, 0x40, 0,    0, 0xc0, 0x40};
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    int64_t       dims[2] = {2, 3};
    pdckpt_value *t = NULL;
    CHECK_OK(pdckpt_tensor_new(NULL, PDCKPT_DTYPE_FLOAT32, 2, dims, &t, &err), &err);
    float *f = pdckpt_tensor_data_mut(t);
    for (int i = 0; i < 6; i++) f[i] = (float)(i + 1);
    void  *bytes;
    size_t len;
    save_bytes(t, PDCKPT_FORMAT_TENSOR, &bytes, &len, &err);
    CHECK_EQ_INT(len, 50);
    CHECK(len == 50 && memcmp(bytes, expected, 50) == 0);
    pdckpt_value *back = load_bytes(expected, 50, PDCKPT_FORMAT_AUTO, true, &err);
    CHECK(pdckpt_value_equal(t, back));
    pdckpt_free(NULL, bytes, len);
    pdckpt_value_free(back);
    pdckpt_value_free(t);
}

/* Spec §1.5: one LoD level [[0,2,3]] with a float32 [3,1] tensor. */
static void test_spec_lod_layout(void) {
    pdckpt_error    err = PDCKPT_ERROR_INIT;
    int64_t         dims[2] = {3, 1};
    pdckpt_value   *t = tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, dims, 3);
    uint64_t        level[3] = {0, 2, 3};
    const uint64_t *levels[1] = {level};
    uint64_t        lens[1] = {3};
    CHECK_OK(pdckpt_tensor_set_lod(t, 1, levels, lens, &err), &err);
    void  *bytes;
    size_t len;
    save_bytes(t, PDCKPT_FORMAT_TENSOR, &bytes, &len, &err);
    static const unsigned char head[] = {
        0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x18, 0,    0,    0,    0,    0,   0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0,    0,    0,    0,    3,    0,   0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0x08, 0x05, 0x10, 0x03, 0x10, 0x01};
    CHECK(len == sizeof head + 12 && memcmp(bytes, head, sizeof head) == 0);
    pdckpt_value *back = load_bytes(bytes, len, PDCKPT_FORMAT_TENSOR, true, &err);
    CHECK(pdckpt_value_equal(t, back));
    pdckpt_free(NULL, bytes, len);
    pdckpt_value_free(back);
    pdckpt_value_free(t);
}

static void test_every_dtype(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    for (int d = 1; d < PDCKPT_DTYPE_COUNT; d++) {
        int64_t             dims[3] = {2, 3, 5};
        pdckpt_value       *t = tu_random_tensor((pdckpt_dtype)d, 3, dims, (unsigned)d);
        pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
        so.format = PDCKPT_FORMAT_TENSOR;
        void         *bytes = NULL;
        size_t        len = 0;
        pdckpt_status st = pdckpt_save_memory(t, &so, &bytes, &len, &err);
        if (pdckpt_dtype_to_paddle((pdckpt_dtype)d) < 0) {
            CHECK_EQ_INT(st, PDCKPT_ERR_UNSUPPORTED); /* uint16/32/64: no VarType code */
            CHECK(strstr(err.message, "has no Paddle VarType code") != NULL);
        } else {
            CHECK_OK(st, &err);
            pdckpt_value *back = load_bytes(bytes, len, PDCKPT_FORMAT_AUTO, false, &err);
            CHECK(pdckpt_value_equal(t, back));
            pdckpt_value_free(back);
        }
        pdckpt_free(NULL, bytes, len);
        pdckpt_value_free(t);
    }
}

static void test_zero_d_and_empty(void) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    int64_t       empty[2] = {0, 7};
    pdckpt_value *tensors[2] = {tu_random_tensor(PDCKPT_DTYPE_INT64, 0, NULL, 9),
                                tu_random_tensor(PDCKPT_DTYPE_FLOAT16, 2, empty, 9)};
    for (int i = 0; i < 2; i++) {
        void  *bytes;
        size_t len;
        save_bytes(tensors[i], PDCKPT_FORMAT_TENSOR, &bytes, &len, &err);
        pdckpt_value *back = load_bytes(bytes, len, PDCKPT_FORMAT_TENSOR, true, &err);
        CHECK(pdckpt_value_equal(tensors[i], back));
        pdckpt_tensor_view v;
        CHECK(pdckpt_tensor_get(back, &v) && v.n_dims == (i == 0 ? 0 : 2));
        pdckpt_free(NULL, bytes, len);
        pdckpt_value_free(back);
        pdckpt_value_free(tensors[i]);
    }
}

/* Protobuf allows packed repeated fields and unknown fields; a reader must take both. */
static void test_packed_dims_and_unknown_fields(void) {
    static const unsigned char bytes[] = {
        0,    0,    0,    0,    0,    0, 0,  0, 0, 0,
        0,    0,    0,    0,    0,    0, 13, 0, 0, 0, /* header, desc size 13 */
        0x08, 0x02,                                   /* data_type INT32 */
        0x12, 0x02, 0x02, 0x01,                       /* dims, packed: [2, 1] */
        0x38, 0x07,                                   /* unknown field 7, varint */
        0x3d, 0x11, 0x22, 0x33, 0x44,                 /* unknown field 7, fixed32 */
        1,    0,    0,    0,    2,    0, 0,  0};      /* data */
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    pdckpt_value      *t = load_bytes(bytes, sizeof bytes, PDCKPT_FORMAT_TENSOR, true, &err);
    pdckpt_tensor_view v;
    CHECK(t && pdckpt_tensor_get(t, &v));
    CHECK(t && v.dtype == PDCKPT_DTYPE_INT32 && v.n_dims == 2 && v.dims[0] == 2 && v.dims[1] == 1);
    int32_t second = 0; /* mapped data may be unaligned: copy, never cast */
    if (t) memcpy(&second, (const char *)v.data + 4, 4);
    CHECK(second == 2);
    pdckpt_value_free(t);
}

static void test_zero_copy_and_alignment(void) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    int64_t       dims[1] = {100000}; /* 400 KB: mapped rather than read */
    pdckpt_value *t = tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 1, dims, 5);
    char         *dir = tu_tempdir();
    char          path[4200];
    snprintf(path, sizeof path, "%s/w", dir);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_TENSOR;
    CHECK_OK(pdckpt_save_file(t, path, &so, &err), &err);
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    pdckpt_value       *mapped = NULL, *aligned = NULL, *copied = NULL;
    pdckpt_tensor_view  v;
    /* The default reads into memory the tree owns; zero_copy maps. */
    CHECK_OK(pdckpt_load_file(path, &lo, &copied, NULL, &err), &err);
    CHECK(pdckpt_tensor_get(copied, &v) && !pdckpt_buffer_is_mapped(v.buffer));
    CHECK(pdckpt_value_equal(t, copied));
    pdckpt_value_free(copied);
    lo.zero_copy = true;
    CHECK_OK(pdckpt_load_file(path, &lo, &mapped, NULL, &err), &err);
    CHECK(pdckpt_tensor_get(mapped, &v) && pdckpt_buffer_is_mapped(v.buffer) && v.read_only);
    CHECK(((uintptr_t)v.data & 63) != 0); /* data starts right after a 26-byte header */
    lo.require_aligned = true;
    CHECK_OK(pdckpt_load_file(path, &lo, &aligned, NULL, &err), &err);
    CHECK(pdckpt_tensor_get(aligned, &v) && ((uintptr_t)v.data & 63) == 0);
    CHECK(pdckpt_value_equal(mapped, aligned) && pdckpt_value_equal(t, mapped));
    /* The tensor keeps its mapping alive on its own. */
    pdckpt_buffer *keep = pdckpt_buffer_retain(v.buffer);
    pdckpt_value_free(aligned);
    pdckpt_buffer_release(keep);
    pdckpt_value_free(mapped);
    pdckpt_value_free(t);
    tu_rmtree(dir);
    free(dir);
}

static void test_memory_borrow_versus_copy(void) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    int64_t       dims[1] = {8};
    pdckpt_value *t = tu_random_tensor(PDCKPT_DTYPE_INT16, 1, dims, 2);
    void         *bytes;
    size_t        len;
    save_bytes(t, PDCKPT_FORMAT_TENSOR, &bytes, &len, &err);
    pdckpt_value      *borrowed = load_bytes(bytes, len, PDCKPT_FORMAT_TENSOR, true, &err);
    pdckpt_value      *copied = load_bytes(bytes, len, PDCKPT_FORMAT_TENSOR, false, &err);
    pdckpt_tensor_view vb, vc;
    pdckpt_tensor_get(borrowed, &vb);
    pdckpt_tensor_get(copied, &vc);
    const char *lo = bytes, *hi = lo + len;
    CHECK((const char *)vb.data > lo && (const char *)vb.data < hi);
    CHECK(!((const char *)vc.data >= lo && (const char *)vc.data < hi));
    pdckpt_free(NULL, bytes, len);
    CHECK(pdckpt_value_equal(copied, t)); /* still valid after the bytes are gone */
    pdckpt_value_free(borrowed);
    pdckpt_value_free(copied);
    pdckpt_value_free(t);
}

int main(void) {
    RUN(test_spec_hex_dump);
    RUN(test_spec_lod_layout);
    RUN(test_every_dtype);
    RUN(test_zero_d_and_empty);
    RUN(test_packed_dims_and_unknown_fields);
    RUN(test_zero_copy_and_alignment);
    RUN(test_memory_borrow_versus_copy);
    return CHECK_SUMMARY();
}
