/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_emit_numpy.c — how numpy pickles what Paddle hands it (spec pickle §1.9): an ndarray is
 * _reconstruct(ndarray, (0,), b'b') + BUILD (1, shape, dtype, is_fortran, raw bytes) (is_fortran:
 * the memory is column-major, as np.array() of a transposed Paddle tensor gives it); a dtype is
 * numpy.dtype(code, False, True) + BUILD (3, byteorder, None, None, None, -1, -1, 0), one shared
 * object per builtin dtype.  bfloat16 is written as uint16 bits and float8 as int8 bits, which is
 * what np.array() of a Paddle tensor gives (checked against Paddle 3.3).
 */
#include "pickle_emit.h"

#include <string.h>

/* The numpy dtype Paddle's np.array() produces for a tensor of `dtype`. */
static pdckpt_dtype numpy_dtype(pdckpt_dtype dtype) {
    switch (dtype) {
    case PDCKPT_DTYPE_BFLOAT16: return PDCKPT_DTYPE_UINT16;
    case PDCKPT_DTYPE_FLOAT8_E4M3FN:
    case PDCKPT_DTYPE_FLOAT8_E5M2: return PDCKPT_DTYPE_INT8;
    default: return dtype;
    }
}

size_t pdk_pkl_numpy_itemsize(pdckpt_dtype dtype) {
    const pdk_dtype_info *info = pdk_dtype_info_of(numpy_dtype(dtype));
    return info && info->numpy_code ? info->size : 0;
}

static pdckpt_status save_dtype_state(pdk_pkl *p, char byteorder) {
    PDK_TRY(pdk_pkl_boundary(p));
    PDK_TRY(pdk_pkl_tuple_begin(p, 8));
    PDK_TRY(pdk_pkl_save_int(p, 3));
    PDK_TRY(pdk_pkl_save_str(p, &byteorder, 1, pdk_key_fresh()));
    for (int i = 0; i < 3; i++) PDK_TRY(pdk_pkl_save_none(p));
    PDK_TRY(pdk_pkl_save_int(p, -1));
    PDK_TRY(pdk_pkl_save_int(p, -1));
    PDK_TRY(pdk_pkl_save_int(p, 0));
    return pdk_pkl_tuple_end(p, 8, pdk_key_fresh());
}

static pdckpt_status save_dtype(pdk_pkl *p, pdckpt_dtype dtype) {
    PDK_TRY(pdk_pkl_boundary(p));
    pdckpt_dtype np = numpy_dtype(dtype);
    pdk_pkl_key  key = {PDK_KEY_DTYPE, NULL, 0, NULL, 0, (uint64_t)np};
    bool         hit;
    PDK_TRY(pdk_pkl_memo_get(p, &key, &hit));
    if (hit) return PDCKPT_OK;
    const pdk_dtype_info *info = pdk_dtype_info_of(np);
    PDK_TRY(pdk_pkl_save_global(p, "numpy", "dtype"));
    PDK_TRY(pdk_pkl_boundary(p)); /* save((code, False, True)) */
    PDK_TRY(pdk_pkl_save_str(p, info->numpy_code, strlen(info->numpy_code), pdk_key_fresh()));
    PDK_TRY(pdk_pkl_save_bool(p, false));
    PDK_TRY(pdk_pkl_save_bool(p, true));
    PDK_TRY(pdk_pkl_tuple_end(p, 3, pdk_key_fresh()));
    PDK_TRY(pdk_pkl_op(p, 'R'));
    PDK_TRY(pdk_pkl_memoize(p, &key));
    PDK_TRY(save_dtype_state(p, info->byteorder));
    return pdk_pkl_op(p, 'b');
}

static pdckpt_status save_reconstruct_call(pdk_pkl *p) {
    const char *module =
        p->numpy_module == PDCKPT_NUMPY__CORE ? "numpy._core.multiarray" : "numpy.core.multiarray";
    PDK_TRY(pdk_pkl_save_global(p, module, "_reconstruct"));
    PDK_TRY(pdk_pkl_boundary(p)); /* save((ndarray, (0,), b'b')) */
    PDK_TRY(pdk_pkl_save_global(p, "numpy", "ndarray"));
    const int64_t zero = 0;
    PDK_TRY(pdk_pkl_save_int_tuple(p, &zero, 1));
    PDK_TRY(pdk_pkl_save_bytes(p, "b", 1, pdk_key_fresh()));
    PDK_TRY(pdk_pkl_tuple_end(p, 3, pdk_key_fresh()));
    return pdk_pkl_op(p, 'R');
}

static pdckpt_status save_array_state(pdk_pkl *p, pdckpt_dtype dtype, int32_t n_dims,
                                      const int64_t *dims, const void *data, uint64_t n_bytes,
                                      bool fortran) {
    PDK_TRY(pdk_pkl_boundary(p));
    PDK_TRY(pdk_pkl_tuple_begin(p, 5));
    PDK_TRY(pdk_pkl_save_int(p, 1));
    PDK_TRY(pdk_pkl_save_int_tuple(p, dims, (size_t)n_dims));
    PDK_TRY(save_dtype(p, dtype));
    PDK_TRY(pdk_pkl_save_bool(p, fortran)); /* numpy: F- and not C-contiguous */
    p->want_offset = true;                  /* the payload, for the lazy-open index */
    PDK_TRY(pdk_pkl_save_bytes(p, n_bytes ? data : "", n_bytes, pdk_key_fresh()));
    return pdk_pkl_tuple_end(p, 5, pdk_key_fresh());
}

pdckpt_status pdk_pkl_save_ndarray(pdk_pkl *p, pdckpt_dtype dtype, int32_t n_dims,
                                   const int64_t *dims, const void *data, uint64_t n_bytes,
                                   bool fortran, pdk_pkl_key key) {
    PDK_TRY(pdk_pkl_boundary(p));
    if (pdk_pkl_numpy_itemsize(dtype) == 0)
        return pdk_fail(p->err, PDCKPT_ERR_UNSUPPORTED, p->sink->name, -1, "numpy has no %s arrays",
                        pdckpt_dtype_name(dtype));
    bool hit;
    PDK_TRY(pdk_pkl_memo_get(p, &key, &hit));
    if (hit) return PDCKPT_OK;
    PDK_TRY(pdk_pkl_enter(p));
    PDK_TRY(save_reconstruct_call(p));
    PDK_TRY(pdk_pkl_memoize(p, &key));
    PDK_TRY(save_array_state(p, dtype, n_dims, dims, data, n_bytes, fortran));
    pdk_pkl_leave(p);
    return pdk_pkl_op(p, 'b');
}

pdckpt_status pdk_pkl_save_tensor_array(pdk_pkl *p, const pdckpt_value *tensor, pdk_pkl_key key) {
    pdckpt_tensor_view t;
    bool               fortran;
    pdckpt_tensor_get_memory(tensor, &t, &fortran);
    return pdk_pkl_save_ndarray(p, t.dtype, t.n_dims, t.dims, t.data, t.n_bytes, fortran, key);
}

/* The scalar's value in its dtype's little-endian bytes (pdckpt_value_set_numpy_scalar checked
 * that the dtype holds it). */
static size_t scalar_bytes(const pdckpt_value *v, pdckpt_dtype dtype, uint8_t out[16]) {
    int64_t              i = 0;
    double               d = 0;
    bool                 b = false;
    size_t               n = pdk_dtype_info_of(dtype)->size;
    pdckpt_tensor_view   t;
    size_t               big_n;
    const unsigned char *big = pdckpt_value_get_bigint(v, &big_n);
    if (pdckpt_tensor_get(v, &t)) { /* complex: its 0-d tensor's bytes */
        memcpy(out, t.data, n);
    } else if (big) { /* uint64 beyond int64: the big int's bytes, zero-extended */
        memset(out, 0, n);
        memcpy(out, big, big_n < n ? big_n : n);
    } else if (pdckpt_value_get_float(v, &d) && dtype == PDCKPT_DTYPE_FLOAT32) {
        float f = (float)d;
        memcpy(out, &f, 4);
    } else if (pdckpt_value_kind(v) == PDCKPT_KIND_FLOAT && dtype == PDCKPT_DTYPE_FLOAT16) {
        uint16_t h = 0;
        pdk_double_to_half(d, &h);
        out[0] = (uint8_t)h;
        out[1] = (uint8_t)(h >> 8);
    } else if (pdckpt_value_kind(v) == PDCKPT_KIND_FLOAT) {
        memcpy(out, &d, 8);
    } else {
        if (pdckpt_value_get_bool(v, &b))
            i = b;
        else
            pdckpt_value_get_int(v, &i);
        for (size_t k = 0; k < n; k++) out[k] = (uint8_t)((uint64_t)i >> (8 * k));
    }
    return n;
}

/* numpy.<type>.__reduce__ = (multiarray.scalar, (dtype, raw bytes)): the global, the dtype (one
 * shared object), the bytes (a 1-byte payload is CPython's cached object), TUPLE2, REDUCE, memo. */
pdckpt_status pdk_pkl_save_np_scalar(pdk_pkl *p, const pdckpt_value *v, pdckpt_dtype dtype) {
    PDK_TRY(pdk_pkl_boundary(p));
    pdk_pkl_key key = pdk_key_ptr(v, 0);
    bool        hit;
    PDK_TRY(pdk_pkl_memo_get(p, &key, &hit));
    if (hit) return PDCKPT_OK;
    uint8_t     bytes[16];
    size_t      n = scalar_bytes(v, dtype, bytes);
    const char *module =
        p->numpy_module == PDCKPT_NUMPY__CORE ? "numpy._core.multiarray" : "numpy.core.multiarray";
    PDK_TRY(pdk_pkl_enter(p));
    PDK_TRY(pdk_pkl_save_global(p, module, "scalar"));
    PDK_TRY(pdk_pkl_boundary(p)); /* save((dtype, bytes)) */
    PDK_TRY(save_dtype(p, dtype));
    PDK_TRY(pdk_pkl_save_bytes(p, bytes, n, pdk_key_fresh()));
    PDK_TRY(pdk_pkl_tuple_end(p, 2, pdk_key_fresh()));
    pdk_pkl_leave(p);
    PDK_TRY(pdk_pkl_op(p, 'R'));
    return pdk_pkl_memoize(p, &key);
}
