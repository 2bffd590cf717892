/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_tensor_stats.c — pdckpt_tensor_stats_compute on hand-made values whose answers are known:
 * NaN/Inf/zero counts, stats over the finite elements only, the half/bfloat16/float8 decoders at
 * their edge encodings, a tensor longer than one block, empty and non-finite-only tensors.
 */
#include "check.h"

#include <math.h>

static pdckpt_value *tensor_of(pdckpt_dtype dtype, int64_t n, const void *bytes) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *t = NULL;
    CHECK_OK(pdckpt_tensor_new(NULL, dtype, 1, &n, &t, &err), &err);
    if (n) memcpy(pdckpt_tensor_data_mut(t), bytes, (size_t)n * pdckpt_dtype_size(dtype));
    return t;
}

static pdckpt_tensor_stats stats_of(pdckpt_value *t) {
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    pdckpt_tensor_stats s;
    memset(&s, 0, sizeof s);
    CHECK_OK(pdckpt_tensor_stats_compute(t, &s, &err), &err);
    pdckpt_value_free(t);
    return s;
}

static void test_counts_and_finite_stats(void) {
    const float         v[] = {1.0f, NAN, 3.0f, INFINITY, -INFINITY, 0.0f, -0.0f, 4.0f};
    pdckpt_tensor_stats s = stats_of(tensor_of(PDCKPT_DTYPE_FLOAT32, 8, v));
    CHECK_EQ_INT(s.n_elements, 8);
    CHECK_EQ_INT(s.n_nan, 1);
    CHECK_EQ_INT(s.n_pos_inf, 1);
    CHECK_EQ_INT(s.n_neg_inf, 1);
    CHECK_EQ_INT(s.n_zero, 2);
    CHECK(s.min == 0.0 && s.max == 4.0);
    CHECK(fabs(s.mean - 1.6) < 1e-12);           /* (1+3+0+0+4)/5 */
    CHECK(fabs(s.std - sqrt(13.2 / 5)) < 1e-12); /* sum of (x - 1.6)^2 = 13.2 */
}

static void test_decoders_at_edges(void) {
    /* float16: 1.0, -2.0, smallest subnormal, 65504, +Inf, NaN */
    const uint16_t      h[] = {0x3C00, 0xC000, 0x0001, 0x7BFF, 0x7C00, 0x7E00};
    pdckpt_tensor_stats s = stats_of(tensor_of(PDCKPT_DTYPE_FLOAT16, 6, h));
    CHECK(s.min == -2.0 && s.max == 65504.0);
    CHECK_EQ_INT(s.n_pos_inf, 1);
    CHECK_EQ_INT(s.n_nan, 1);
    /* bfloat16: 1.0 and -3.0 */
    const uint16_t b[] = {0x3F80, 0xC040};
    s = stats_of(tensor_of(PDCKPT_DTYPE_BFLOAT16, 2, b));
    CHECK(s.min == -3.0 && s.max == 1.0 && s.mean == -1.0 && s.std == 2.0);
    /* float8_e4m3fn: 448 (max), -smallest subnormal 2^-9, NaN (0x7F); no infinities */
    const uint8_t e4[] = {0x7E, 0x81, 0x7F};
    s = stats_of(tensor_of(PDCKPT_DTYPE_FLOAT8_E4M3FN, 3, e4));
    CHECK(s.max == 448.0 && s.min == -ldexp(1, -9));
    CHECK_EQ_INT(s.n_nan, 1);
    /* float8_e5m2: 1.0 (0x3C), 57344 (max, 0x7B), -Inf (0xFC) */
    const uint8_t e5[] = {0x3C, 0x7B, 0xFC};
    s = stats_of(tensor_of(PDCKPT_DTYPE_FLOAT8_E5M2, 3, e5));
    CHECK(s.min == 1.0 && s.max == 57344.0);
    CHECK_EQ_INT(s.n_neg_inf, 1);
}

static void test_many_blocks_match_closed_form(void) {
    enum { N = 10007 }; /* crosses block boundaries unevenly */
    static int64_t v[N];
    for (int64_t i = 0; i < N; i++) v[i] = i + 1;
    pdckpt_tensor_stats s = stats_of(tensor_of(PDCKPT_DTYPE_INT64, N, v));
    double              n = N, var = (n * n - 1) / 12; /* variance of 1..N */
    CHECK(s.min == 1 && s.max == N && s.mean == (n + 1) / 2);
    CHECK(fabs(s.std - sqrt(var)) < 1e-9 * sqrt(var));
    CHECK_EQ_INT(s.n_zero, 0);
}

static void test_empty_nonfinite_and_refusals(void) {
    pdckpt_tensor_stats s = stats_of(tensor_of(PDCKPT_DTYPE_FLOAT64, 0, NULL));
    CHECK(s.n_elements == 0 && isnan(s.min) && isnan(s.mean) && isnan(s.std));
    const double nan_only[] = {NAN, NAN};
    s = stats_of(tensor_of(PDCKPT_DTYPE_FLOAT64, 2, nan_only));
    CHECK(s.n_nan == 2 && isnan(s.max));
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    const float         c[] = {1, 2};
    pdckpt_value       *t = tensor_of(PDCKPT_DTYPE_COMPLEX64, 1, c);
    pdckpt_tensor_stats out;
    CHECK_STATUS(pdckpt_tensor_stats_compute(t, &out, &err), PDCKPT_ERR_UNSUPPORTED, &err);
    CHECK(strstr(err.message, "complex64") != NULL);
    pdckpt_value_free(t);
    pdckpt_value *str = pdckpt_value_new_string(NULL, "x", 1);
    pdckpt_error  err2 = PDCKPT_ERROR_INIT;
    CHECK(str != NULL);
    CHECK_STATUS(pdckpt_tensor_stats_compute(str, &out, &err2), PDCKPT_ERR_ARGUMENT, &err2);
    pdckpt_value_free(str);
}

int main(void) {
    RUN(test_counts_and_finite_stats);
    RUN(test_decoders_at_edges);
    RUN(test_many_blocks_match_closed_form);
    RUN(test_empty_nonfinite_and_refusals);
    return CHECK_SUMMARY();
}
