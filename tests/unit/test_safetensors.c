/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_safetensors.c — safetensors round trips with metadata and every dtype it has, aligned
 * layout, and the header checks of the reference implementation (size limit, '{', offsets that
 * overlap, leave gaps or disagree with the shape).
 */
#include "check.h"
#include "test_util.h"

#include <stdlib.h>

static pdckpt_value *load(const void *bytes, size_t len, pdckpt_status want, pdckpt_error *err) {
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.format = PDCKPT_FORMAT_SAFETENSORS;
    pdckpt_value *out = NULL;
    CHECK_STATUS(pdckpt_load_memory(bytes, len, &lo, &out, NULL, err), want, err);
    return out;
}

static void test_round_trip(void) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *state = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_value *meta = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(meta, "format", pdckpt_value_new_string(NULL, "pd \"quoted\"\n", SIZE_MAX),
                    NULL);
    pdckpt_dict_set(state, "__metadata__", meta, NULL);
    for (int d = 1; d < PDCKPT_DTYPE_COUNT; d++) {
        if (d == PDCKPT_DTYPE_COMPLEX128) continue;
        int64_t dims[2] = {3, d};
        char    name[64];
        snprintf(name, sizeof name, "t\xc3\xa9_%s", pdckpt_dtype_name((pdckpt_dtype)d));
        pdckpt_dict_set(state, name, tu_random_tensor((pdckpt_dtype)d, 2, dims, (unsigned)d), NULL);
    }
    pdckpt_dict_set(state, "scalar", tu_random_tensor(PDCKPT_DTYPE_FLOAT64, 0, NULL, 1), NULL);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_SAFETENSORS;
    void  *bytes;
    size_t len;
    CHECK_OK(pdckpt_save_memory(state, &so, &bytes, &len, &err), &err);
    uint64_t header;
    memcpy(&header, bytes, 8);
    CHECK_EQ_INT(header % 8, 0);
    pdckpt_value *back = load(bytes, len, PDCKPT_OK, &err);
    for (size_t i = 0; i < pdckpt_value_len(state); i++) {
        const char         *k = pdckpt_value_get_string(pdckpt_dict_key_at(state, i), NULL);
        const pdckpt_value *got = pdckpt_dict_get(back, k);
        CHECK(pdckpt_value_equal(pdckpt_value_at(state, i), got));
        pdckpt_tensor_view v; /* widest dtypes first: every tensor is aligned to its element */
        if (pdckpt_tensor_get(got, &v))
            CHECK((size_t)((const char *)v.data - (const char *)bytes - 8 - header) %
                      pdckpt_dtype_size(v.dtype) ==
                  0);
    }
    pdckpt_free(NULL, bytes, len);
    pdckpt_value_free(back);
    int64_t one[1] = {1};
    pdckpt_dict_set(state, "c128", tu_random_tensor(PDCKPT_DTYPE_COMPLEX128, 1, one, 1), NULL);
    CHECK_STATUS(pdckpt_save_memory(state, &so, &bytes, &len, &err), PDCKPT_ERR_UNSUPPORTED, &err);
    pdckpt_value_free(state);
}

/* Builds a file from a header text and `data_len` zero bytes of data. */
static unsigned char *make_file(const char *header, size_t data_len, size_t *len) {
    size_t         h = strlen(header);
    unsigned char *buf = calloc(1, 8 + h + data_len + 1);
    uint64_t       n = h;
    memcpy(buf, &n, 8);
    memcpy(buf + 8, header, h);
    *len = 8 + h + data_len;
    return buf;
}

static void expect_error(const char *header, size_t data_len, pdckpt_status want, int64_t offset,
                         const char *message) {
    pdckpt_error   err = PDCKPT_ERROR_INIT;
    size_t         len;
    unsigned char *file = make_file(header, data_len, &len);
    pdckpt_value_free(load(file, len, want, &err));
    CHECK_EQ_INT(err.offset, offset);
    CHECK_STR(err.message, message);
    free(file);
}

static void test_header_checks(void) {
    expect_error("[]", 0, PDCKPT_ERR_FORMAT, 8, "expected the header to start with '{'");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                 8, PDCKPT_ERR_FORMAT, 62,
                 "tensor 'b': expected data to start at 8, found 4 (overlapping offsets)");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
                 PDCKPT_ERR_FORMAT, 9, "tensor 'a': expected data to start at 0, found 4 (gap)");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
                 PDCKPT_ERR_FORMAT, 9,
                 "tensor 'a': expected data_offsets spanning 12 bytes, found [0, 8]");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12,
                 PDCKPT_ERR_FORMAT, 62, "expected tensors to cover all 12 data bytes, found 8");
    expect_error("{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                 PDCKPT_ERR_UNSUPPORTED, 22, "unsupported dtype \"Q7\"");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, PDCKPT_ERR_FORMAT, 13,
                 "tensor 'a': expected dtype, shape and data_offsets, found dtype shape ");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4,
                 PDCKPT_ERR_FORMAT, 37, "shape dim has a leading zero");
    expect_error("{\"a\\ud800\":{}}", 0, PDCKPT_ERR_FORMAT, 11,
                 "expected a low surrogate after \\ud800");
    /* Header length beyond the limit or the file. */
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    unsigned char big[16] = {0};
    uint64_t      n = 100000001;
    memcpy(big, &n, 8);
    pdckpt_value_free(load(big, sizeof big, PDCKPT_ERR_LIMIT, &err));
    CHECK_STR(err.message, "expected header size <= 100000000 bytes, found 100000001");
    n = 9;
    memcpy(big, &n, 8);
    pdckpt_value_free(load(big, sizeof big, PDCKPT_ERR_FORMAT, &err));
    CHECK_STR(err.message, "expected header size <= 8 (bytes left), found 9");
}

static void test_duplicate_names(void) {
    pdckpt_error   err = PDCKPT_ERROR_INIT;
    size_t         len;
    unsigned char *file =
        make_file("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                  "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                  2, &len);
    pdckpt_value_free(load(file, len, PDCKPT_ERR_FORMAT, &err));
    CHECK_STR(err.message, "duplicate tensor name 'a'");
    free(file);
}

int main(void) {
    RUN(test_round_trip);
    RUN(test_header_checks);
    RUN(test_duplicate_names);
    return CHECK_SUMMARY();
}
