/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_dtype.c — the dtype table against Paddle's VarType codes (spec §1.4) and numpy names.
 */
#include "check.h"

static void test_paddle_codes(void) {
    static const struct {
        pdckpt_dtype dtype;
        int          code;
        size_t       size;
        const char  *name;
    } table[] = {
        {PDCKPT_DTYPE_BOOL, 0, 1, "bool"},
        {PDCKPT_DTYPE_INT16, 1, 2, "int16"},
        {PDCKPT_DTYPE_INT32, 2, 4, "int32"},
        {PDCKPT_DTYPE_INT64, 3, 8, "int64"},
        {PDCKPT_DTYPE_FLOAT16, 4, 2, "float16"},
        {PDCKPT_DTYPE_FLOAT32, 5, 4, "float32"},
        {PDCKPT_DTYPE_FLOAT64, 6, 8, "float64"},
        {PDCKPT_DTYPE_UINT8, 20, 1, "uint8"},
        {PDCKPT_DTYPE_INT8, 21, 1, "int8"},
        {PDCKPT_DTYPE_BFLOAT16, 22, 2, "bfloat16"},
        {PDCKPT_DTYPE_COMPLEX64, 23, 8, "complex64"},
        {PDCKPT_DTYPE_COMPLEX128, 24, 16, "complex128"},
        {PDCKPT_DTYPE_FLOAT8_E4M3FN, 32, 1, "float8_e4m3fn"},
        {PDCKPT_DTYPE_FLOAT8_E5M2, 33, 1, "float8_e5m2"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        CHECK_EQ_INT(pdckpt_dtype_to_paddle(table[i].dtype), table[i].code);
        CHECK_EQ_INT(pdckpt_dtype_from_paddle(table[i].code), table[i].dtype);
        CHECK_EQ_INT(pdckpt_dtype_size(table[i].dtype), table[i].size);
        CHECK_STR(pdckpt_dtype_name(table[i].dtype), table[i].name);
        CHECK_EQ_INT(pdckpt_dtype_from_name(table[i].name), table[i].dtype);
    }
}

static void test_numpy_only_and_invalid(void) {
    CHECK_EQ_INT(pdckpt_dtype_to_paddle(PDCKPT_DTYPE_UINT16), -1);
    CHECK_EQ_INT(pdckpt_dtype_to_paddle(PDCKPT_DTYPE_UINT64), -1);
    CHECK_EQ_INT(pdckpt_dtype_size(PDCKPT_DTYPE_UINT32), 4);
    /* Variable-type codes are not element types: LOD_TENSOR, SELECTED_ROWS, SIZE_T, STRING. */
    static const int not_elements[] = {7, 8, 17, 19, 25, 29, 31, 34, -1, 1000};
    for (size_t i = 0; i < sizeof not_elements / sizeof not_elements[0]; i++)
        CHECK_EQ_INT(pdckpt_dtype_from_paddle(not_elements[i]), PDCKPT_DTYPE_INVALID);
    CHECK_EQ_INT(pdckpt_dtype_from_name("float128"), PDCKPT_DTYPE_INVALID);
    CHECK_STR(pdckpt_dtype_name((pdckpt_dtype)99), "invalid");
    for (int d = 1; d < PDCKPT_DTYPE_COUNT; d++)
        CHECK_EQ_INT(pdckpt_dtype_from_name(pdckpt_dtype_name((pdckpt_dtype)d)), d);
}

static void test_status_and_format_names(void) {
    CHECK_STR(pdckpt_status_name(PDCKPT_ERR_FORMAT), "format");
    CHECK_STR(pdckpt_format_name(PDCKPT_FORMAT_VARS_DIR), "vars-dir");
    bool known;
    CHECK_EQ_INT(pdckpt_format_from_name("safetensors", &known), PDCKPT_FORMAT_SAFETENSORS);
    CHECK(known);
    pdckpt_format_from_name("zip", &known);
    CHECK(!known);
    CHECK_EQ_INT(pdckpt_format_from_path("x/model.pdiparams"), PDCKPT_FORMAT_COMBINED);
    CHECK_EQ_INT(pdckpt_format_from_path("m.safetensors"), PDCKPT_FORMAT_SAFETENSORS);
    CHECK_EQ_INT(pdckpt_format_from_path("m.bin"), PDCKPT_FORMAT_AUTO);
    pdckpt_error err = PDCKPT_ERROR_INIT;
    err.status = PDCKPT_ERR_FORMAT;
    err.offset = 12;
    snprintf(err.source, sizeof err.source, "a.pdiparams");
    snprintf(err.message, sizeof err.message, "expected x, found y");
    char buf[128];
    CHECK_STR(pdckpt_error_format(&err, buf, sizeof buf),
              "a.pdiparams: offset 12: expected x, found y");
    CHECK_EQ_INT(pdckpt_version_number(), PDCKPT_VERSION_NUMBER);
}

int main(void) {
    RUN(test_paddle_codes);
    RUN(test_numpy_only_and_invalid);
    RUN(test_status_and_format_names);
    return CHECK_SUMMARY();
}
