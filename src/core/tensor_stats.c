/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tensor_stats.c — min / max / mean / std and NaN, Inf and zero counts of one tensor, for
 * `pdckpt stats` and pdckpt.stats().  Elements are decoded into a block of doubles and each
 * block is reduced on its own, then blocks are merged with Chan et al.'s pairwise update: as exact
 * as a two-pass algorithm, one pass over the data (the data may be a cold mapping).
 */
#include "pdk_core.h"

#include <math.h>
#include <string.h>

enum { BLOCK = 4096 };

typedef struct stats_acc {
    pdckpt_tensor_stats out;
    uint64_t            n_finite;
    double              m2; /* sum of squared deviations from the running mean */
} stats_acc;

static double half_to_double(uint16_t h) {
    int    sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    double v;
    if (exp == 0)
        v = ldexp(mant, -24);
    else if (exp == 31)
        v = mant ? NAN : INFINITY;
    else
        v = ldexp(mant | 0x400, exp - 25);
    return sign ? -v : v;
}

static double bf16_to_double(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float    f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* float8_e4m3fn: bias 7, no infinities, S.1111.111 is NaN. */
static double e4m3fn_to_double(uint8_t b) {
    int    sign = b >> 7, exp = (b >> 3) & 0xf, mant = b & 0x7;
    double v;
    if (exp == 15 && mant == 7)
        v = NAN;
    else if (exp == 0)
        v = ldexp(mant, -9);
    else
        v = ldexp(mant | 0x8, exp - 10);
    return sign ? -v : v;
}

#define DECODE_LOOP(ctype, expr)                                                                   \
    for (size_t i = 0; i < n; i++) {                                                               \
        ctype x;                                                                                   \
        memcpy(&x, bytes + i * sizeof x, sizeof x); /* data may be unaligned */                    \
        dst[i] = (double)(expr);                                                                   \
    }                                                                                              \
    break

/* Decodes n elements of `dtype` at `bytes` into dst. */
static void decode(pdckpt_dtype dtype, const unsigned char *bytes, size_t n, double *dst) {
    switch (dtype) {
    case PDCKPT_DTYPE_BOOL: DECODE_LOOP(uint8_t, x != 0);
    case PDCKPT_DTYPE_UINT8: DECODE_LOOP(uint8_t, x);
    case PDCKPT_DTYPE_INT8: DECODE_LOOP(int8_t, x);
    case PDCKPT_DTYPE_INT16: DECODE_LOOP(int16_t, x);
    case PDCKPT_DTYPE_UINT16: DECODE_LOOP(uint16_t, x);
    case PDCKPT_DTYPE_INT32: DECODE_LOOP(int32_t, x);
    case PDCKPT_DTYPE_UINT32: DECODE_LOOP(uint32_t, x);
    case PDCKPT_DTYPE_INT64: DECODE_LOOP(int64_t, x);
    case PDCKPT_DTYPE_UINT64: DECODE_LOOP(uint64_t, x);
    case PDCKPT_DTYPE_FLOAT16: DECODE_LOOP(uint16_t, half_to_double(x));
    case PDCKPT_DTYPE_BFLOAT16: DECODE_LOOP(uint16_t, bf16_to_double(x));
    case PDCKPT_DTYPE_FLOAT32: DECODE_LOOP(float, x);
    case PDCKPT_DTYPE_FLOAT64: DECODE_LOOP(double, x);
    case PDCKPT_DTYPE_FLOAT8_E4M3FN: DECODE_LOOP(uint8_t, e4m3fn_to_double(x));
    /* e5m2 is the high byte of an IEEE half. */
    case PDCKPT_DTYPE_FLOAT8_E5M2: DECODE_LOOP(uint8_t, half_to_double((uint16_t)(x << 8)));
    default: break; /* complex and invalid are refused before decoding */
    }
}

/* Reduces one decoded block and merges it into acc. */
static void reduce_block(stats_acc *acc, const double *v, size_t n) {
    uint64_t count = 0;
    double   sum = 0, lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double x = v[i];
        if (isnan(x)) {
            acc->out.n_nan++;
        } else if (isinf(x)) {
            if (x > 0)
                acc->out.n_pos_inf++;
            else
                acc->out.n_neg_inf++;
        } else {
            acc->out.n_zero += x == 0;
            lo = x < lo ? x : lo;
            hi = x > hi ? x : hi;
            sum += x;
            count++;
        }
    }
    if (count == 0) return;
    double mean = sum / (double)count, m2 = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i])) m2 += (v[i] - mean) * (v[i] - mean);
    double total = (double)(acc->n_finite + count), delta = mean - acc->out.mean;
    acc->out.mean += delta * (double)count / total;
    acc->m2 += m2 + delta * delta * (double)acc->n_finite * (double)count / total;
    acc->n_finite += count;
    acc->out.min = lo < acc->out.min ? lo : acc->out.min;
    acc->out.max = hi > acc->out.max ? hi : acc->out.max;
}

pdckpt_status pdckpt_tensor_stats_compute(const pdckpt_value *tensor, pdckpt_tensor_stats *out,
                                          pdckpt_error *err) {
    pdckpt_tensor_view view; /* the memory as it is: the stats do not depend on the order */
    if (!out || !tensor || !pdckpt_tensor_get_memory(tensor, &view, NULL))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "stats: expected a tensor");
    if (view.dtype == PDCKPT_DTYPE_COMPLEX64 || view.dtype == PDCKPT_DTYPE_COMPLEX128 ||
        pdckpt_dtype_size(view.dtype) == 0)
        return pdk_fail(err, PDCKPT_ERR_UNSUPPORTED, NULL, -1,
                        "stats: %s values have no order (min/max/std undefined)",
                        pdckpt_dtype_name(view.dtype));
    stats_acc acc = {.out = {.n_elements = view.n_elements, .min = INFINITY, .max = -INFINITY}};
    size_t    elem = pdckpt_dtype_size(view.dtype);
    double    block[BLOCK];
    const unsigned char *bytes = view.data;
    for (uint64_t done = 0; done < view.n_elements;) {
        size_t n = view.n_elements - done < BLOCK ? (size_t)(view.n_elements - done) : BLOCK;
        decode(view.dtype, bytes + done * elem, n, block);
        reduce_block(&acc, block, n);
        done += n;
    }
    *out = acc.out;
    if (acc.n_finite == 0) {
        out->min = out->max = out->mean = out->std = NAN;
    } else {
        out->std = sqrt(acc.m2 / (double)acc.n_finite);
    }
    return PDCKPT_OK;
}
