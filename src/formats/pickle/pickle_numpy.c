/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_numpy.c — numpy objects recognised by their structure, never by importing anything
 * (spec pickle-and-distributed-formats.md §1.9): ndarray (_reconstruct + BUILD (1, shape, dtype,
 * is_fortran, raw)), dtype (numpy.dtype(code, False, True) + BUILD (3, byteorder, ...)), protocol 5
 * _frombuffer, and numpy scalars.  Both numpy.core and numpy._core spellings are accepted.  Array
 * bytes that sit in the input in C order, little-endian, become zero-copy tensors; Fortran order
 * and big-endian data are copied into C order little-endian.
 */
#include "pickle_vm.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* "numpy.core.<sub>" or "numpy._core.<sub>" (asked once per array: no formatting here) */
static bool numpy_module(const char *m, const char *sub) {
    if (strncmp(m, "numpy.", 6) != 0) return false;
    m += 6;
    if (strncmp(m, "core.", 5) == 0)
        m += 5;
    else if (strncmp(m, "_core.", 6) == 0)
        m += 6;
    else
        return false;
    return strcmp(m, sub) == 0;
}

static bool numpy_global(const pdckpt_value *v, pdckpt_object_kind kind, const char *sub,
                         const char *name) {
    return pdckpt_value_kind(v) == PDCKPT_KIND_OBJECT && pdckpt_object_kind_of(v) == kind &&
           numpy_module(pdckpt_object_module(v), sub) && strcmp(pdckpt_object_name(v), name) == 0;
}

bool pk_is_reconstruct(const pdckpt_value *v) {
    return numpy_global(v, PDCKPT_OBJECT_REDUCE, "multiarray", "_reconstruct");
}

bool pk_is_reconstruct_global(const pdckpt_value *g) {
    return numpy_global(g, PDCKPT_OBJECT_GLOBAL, "multiarray", "_reconstruct");
}

bool pk_is_frombuffer(const pdckpt_value *g) {
    return numpy_global(g, PDCKPT_OBJECT_GLOBAL, "numeric", "_frombuffer");
}

bool pk_is_np_scalar(const pdckpt_value *g) {
    return numpy_global(g, PDCKPT_OBJECT_GLOBAL, "multiarray", "scalar");
}

/* ---- dtype ---- */

static bool int_like(const pdckpt_value *v, int64_t *out) {
    return pdckpt_value_get_int(v, out);
}

/* The byte order in a dtype's BUILD state (3, '<', None, None, None, -1, -1, 0); version 2-4. */
static bool dtype_state(const pdckpt_value *state, char *order) {
    int64_t version;
    size_t  n = pdckpt_value_len(state), len;
    if (pdckpt_value_kind(state) != PDCKPT_KIND_TUPLE || n < 2 ||
        !int_like(pdckpt_value_at(state, 0), &version) || version < 2 || version > 4)
        return false;
    const char *bo = pdckpt_value_get_string(pdckpt_value_at(state, 1), &len);
    if (!bo || len != 1) return false;
    for (size_t i = 2; i < n && i < 5; i++) /* subarray, names, fields: plain dtypes have none */
        if (pdckpt_value_kind(pdckpt_value_at(state, i)) != PDCKPT_KIND_NONE) return false;
    *order = bo[0];
    return true;
}

bool pk_np_dtype_of(const pdckpt_value *d, pk_np_dtype *out) {
    if (pdckpt_value_kind(d) != PDCKPT_KIND_OBJECT || strcmp(pdckpt_object_module(d), "numpy") ||
        strcmp(pdckpt_object_name(d), "dtype") || pdckpt_object_kind_of(d) == PDCKPT_OBJECT_GLOBAL)
        return false;
    const pdckpt_value *args = pdckpt_object_args(d);
    size_t              len;
    const char         *code = pdckpt_value_get_string(pdckpt_value_at(args, 0), &len);
    if (!code || len == 0) return false;
    char order = '=';
    if (strchr("<>|=", code[0])) order = *code++, len--;
    const pdckpt_value *state = pdckpt_object_state(d);
    if (state && !dtype_state(state, &order)) return false;
    out->dtype = pdk_dtype_from_numpy_code(code, len);
    out->size = pdckpt_dtype_size(out->dtype);
    out->swap = order == '>' && out->size > 1;
    return out->dtype != PDCKPT_DTYPE_INVALID &&
           (order == '<' || order == '>' || order == '|' || order == '=');
}

/* ---- array data ---- */

static void byteswap(uint8_t *d, uint64_t n_elements, pk_np_dtype dt) {
    bool     complex = dt.dtype == PDCKPT_DTYPE_COMPLEX64 || dt.dtype == PDCKPT_DTYPE_COMPLEX128;
    size_t   part = complex ? dt.size / 2 : dt.size;
    uint64_t parts = complex ? n_elements * 2 : n_elements;
    for (uint64_t i = 0; i < parts; i++, d += part)
        for (size_t a = 0, b = part - 1; a < b; a++, b--) {
            uint8_t t = d[a];
            d[a] = d[b];
            d[b] = t;
        }
}

/* The raw bytes behind an array's data value (a view, owned raw bytes, BYTES, or a latin-1
 * STRING from a Python 2 pickle, decoded into *tmp). */
static pdckpt_status data_bytes(pk_vm *vm, const pdckpt_value *raw, const uint8_t **b, size_t *len,
                                uint8_t **tmp, bool *found) {
    *tmp = NULL;
    *found = true;
    if (pk_bytes(vm, raw, b, len)) return PDCKPT_OK;
    size_t      n;
    const char *s = pdckpt_value_get_string(raw, &n);
    if (!s) return *found = false, PDCKPT_OK;
    PDK_TRY(pk_charge(vm, n + 1));
    if (!(*tmp = pdk_alloc(vm->a, n + 1))) return pk_nomem(vm);
    size_t j = 0;
    for (size_t i = 0; i < n; i++, j++) {
        uint8_t c = (uint8_t)s[i];
        if (c >= 0x80 && c != 0xC2 && c != 0xC3)
            return pk_fail(vm, PDCKPT_ERR_FORMAT,
                           "expected array data as latin-1 text, found a "
                           "character beyond U+00FF");
        (*tmp)[j] = c < 0x80 ? c : (uint8_t)((c & 0x03) << 6 | ((uint8_t)s[++i] & 0x3F));
    }
    *b = *tmp;
    *len = j;
    return PDCKPT_OK;
}

pdckpt_status pk_array_view(pk_vm *vm, pk_np_dtype dt, int32_t nd, const int64_t *dims,
                            const uint8_t *b, pdckpt_value **out) {
    bool misaligned = ((uintptr_t)b & (PDK_DATA_ALIGN - 1)) != 0;
    if (vm->in->copy_tensors || (vm->opts->require_aligned && misaligned && !vm->in->relayout)) {
        uint64_t n_el, n_bytes;
        PDK_TRY(pdk_tensor_sizes(dt.dtype, nd, dims, &n_el, &n_bytes, vm->err));
        PDK_TRY(pk_charge(vm, n_bytes));
    }
    pdckpt_status st = pdk_tensor_from_input(vm->in, vm->opts, dt.dtype, nd, dims, b, out, vm->err);
    if (st != PDCKPT_OK) pdk_error_set_source(vm->err, vm->in->name);
    return st;
}

/* A tensor over data that is already C order and little-endian, without copying when it can. */
static pdckpt_status tensor_in_place(pk_vm *vm, const pdckpt_value *raw, pk_np_dtype dt, int32_t nd,
                                     const int64_t *dims, const uint8_t *b, pdckpt_value **out) {
    pdckpt_buffer *owner = NULL;
    bool           borrowed = pdk_value_is_borrowed(raw, &owner);
    pdckpt_status  st;
    if (borrowed && owner && owner != vm->in->owner) { /* bytes pdckpt decoded: taken over */
        st = pdckpt_tensor_new_in_buffer(vm->a, dt.dtype, nd, dims, owner, b, out, vm->err);
    } else if (borrowed) { /* a view into the input: zero-copy when the input allows it */
        return pk_array_view(vm, dt, nd, dims, b, out);
    } else {
        uint64_t n_el, n_bytes;
        PDK_TRY(pdk_tensor_sizes(dt.dtype, nd, dims, &n_el, &n_bytes, vm->err));
        PDK_TRY(pk_charge(vm, n_bytes));
        st = pdckpt_tensor_new(vm->a, dt.dtype, nd, dims, out, vm->err);
        if (st == PDCKPT_OK && n_bytes) memcpy(pdckpt_tensor_data_mut(*out), b, (size_t)n_bytes);
    }
    if (st != PDCKPT_OK) pdk_error_set_source(vm->err, vm->in->name);
    return st;
}

/* Column-major bytes kept as they are (a Fortran-order tensor: return_numpy gives the F-ordered
 * array numpy unpickles, a save writes the same bytes again; pdckpt_tensor_get gives C order). */
static pdckpt_status fortran_in_place(pk_vm *vm, const pdckpt_value *raw, pk_np_dtype dt,
                                      int32_t nd, const int64_t *dims, const uint8_t *b,
                                      uint64_t n_bytes, pdckpt_value **out) {
    (void)n_bytes; /* the C-order copy a reader may make is charged when made, to what is left */
    if (!vm->copies && !(vm->copies = pdk_budget_new(vm->a, vm->budget)))
        return pdk_fail_nomem(vm->err, "load budget");
    PDK_TRY(tensor_in_place(vm, raw, dt, nd, dims, b, out));
    pdk_tensor_attach_budget(*out, vm->copies);
    return pdckpt_tensor_set_fortran(*out, vm->err);
}

/* A tensor from array bytes `raw` in numpy's layout: (dims, dtype, Fortran order). */
static pdckpt_status make_array(pk_vm *vm, const pdckpt_value *raw, pk_np_dtype dt, int32_t nd,
                                const int64_t *dims, bool fortran, pdckpt_value **out) {
    uint64_t n_el, n_bytes;
    if (pdk_tensor_sizes(dt.dtype, nd, dims, &n_el, &n_bytes, vm->err) != PDCKPT_OK) {
        char why[sizeof vm->err->message];
        memcpy(why, vm->err->message, sizeof why);
        pdk_error_reset(vm->err);
        return pk_fail(vm, PDCKPT_ERR_FORMAT, "%s", why);
    }
    if (n_bytes > vm->opts->max_tensor_bytes)
        return pk_fail(vm, PDCKPT_ERR_LIMIT,
                       "expected arrays of at most %llu bytes "
                       "(max_tensor_bytes), found %llu",
                       (unsigned long long)vm->opts->max_tensor_bytes, (unsigned long long)n_bytes);
    const uint8_t *b = NULL;
    size_t         len;
    uint8_t       *tmp = NULL;
    bool           found;
    PDK_TRY(data_bytes(vm, raw, &b, &len, &tmp, &found));
    pdckpt_status st = PDCKPT_OK;
    if (!found)
        *out = NULL; /* e.g. object arrays pickle a list: carried opaque */
    else if (len != n_bytes)
        st = pk_fail(vm, PDCKPT_ERR_FORMAT, "expected %llu bytes of %s array data, found %zu",
                     (unsigned long long)n_bytes, pdckpt_dtype_name(dt.dtype), len);
    else if (!dt.swap && !tmp)
        st = fortran && pdk_orders_differ(nd, dims)
                 ? fortran_in_place(vm, raw, dt, nd, dims, b, n_bytes, out)
                 : tensor_in_place(vm, raw, dt, nd, dims, b, out);
    else if ((st = pk_charge(vm, n_bytes)) == PDCKPT_OK &&
             (st = pdckpt_tensor_new(vm->a, dt.dtype, nd, dims, out, vm->err)) == PDCKPT_OK) {
        uint8_t *d = pdckpt_tensor_data_mut(*out); /* big-endian or latin-1: made C order here */
        if (fortran && pdk_orders_differ(nd, dims))
            pdk_fortran_to_c(d, b, nd, dims, n_el, dt.size);
        else if (n_bytes)
            memcpy(d, b, (size_t)n_bytes);
        if (dt.swap) byteswap(d, n_el, dt);
    }
    if (tmp) pdk_free(vm->a, tmp, len + 1);
    return st;
}

/* A shape tuple of non-negative ints. */
static pdckpt_status shape_of(pk_vm *vm, const pdckpt_value *shape, int32_t *nd, int64_t *dims,
                              bool *ok) {
    *ok = false;
    size_t n = pdckpt_value_len(shape);
    if (pdckpt_value_kind(shape) != PDCKPT_KIND_TUPLE) return PDCKPT_OK;
    if (n > PDCKPT_MAX_DIMS)
        return pk_fail(vm, PDCKPT_ERR_UNSUPPORTED, "expected at most %d array dims, found %zu",
                       PDCKPT_MAX_DIMS, n);
    for (size_t i = 0; i < n; i++) {
        if (!int_like(pdckpt_value_at(shape, i), &dims[i])) return PDCKPT_OK;
        if (dims[i] < 0)
            return pk_fail(vm, PDCKPT_ERR_FORMAT, "expected array dim %zu >= 0, found %lld", i,
                           (long long)dims[i]);
    }
    *nd = (int32_t)n;
    *ok = true;
    return PDCKPT_OK;
}

pdckpt_status pk_ndarray_build(pk_vm *vm, pdckpt_value *obj, pdckpt_value *state,
                               pdckpt_value **out) {
    *out = NULL;
    const pdckpt_value *args = pdckpt_object_args(obj);
    if (!pk_is_global(pdckpt_value_at(args, 0), "numpy", "ndarray") ||
        pdckpt_value_kind(state) != PDCKPT_KIND_TUPLE)
        return PDCKPT_OK; /* a subclass or an unknown layout: carried opaque */
    size_t  n = pdckpt_value_len(state), off = n == 5 ? 1 : 0;
    int64_t version = 1, fortran;
    if ((n != 4 && n != 5) || (n == 5 && (!int_like(pdckpt_value_at(state, 0), &version))) ||
        version != 1 || !int_like(pdckpt_value_at(state, off + 2), &fortran))
        return PDCKPT_OK;
    pk_np_dtype dt;
    if (!pk_np_dtype_of(pdckpt_value_at(state, off + 1), &dt)) return PDCKPT_OK;
    int64_t dims[PDCKPT_MAX_DIMS];
    int32_t nd = 0;
    bool    ok;
    PDK_TRY(shape_of(vm, pdckpt_value_at(state, off), &nd, dims, &ok));
    if (!ok) return PDCKPT_OK;
    return make_array(vm, pdckpt_value_at(state, off + 3), dt, nd, dims, fortran != 0, out);
}

pdckpt_status pk_frombuffer(pk_vm *vm, pdckpt_value *args, pdckpt_value **out) {
    *out = NULL;
    pk_np_dtype dt;
    size_t      olen;
    const char *order = pdckpt_value_get_string(pdckpt_value_at(args, 3), &olen);
    if (pdckpt_value_len(args) != 4 || !pk_np_dtype_of(pdckpt_value_at(args, 1), &dt) || !order ||
        olen != 1 || (order[0] != 'C' && order[0] != 'F'))
        return PDCKPT_OK;
    int64_t dims[PDCKPT_MAX_DIMS];
    int32_t nd = 0;
    bool    ok;
    PDK_TRY(shape_of(vm, pdckpt_value_at(args, 2), &nd, dims, &ok));
    if (!ok) return PDCKPT_OK;
    return make_array(vm, pdckpt_value_at(args, 0), dt, nd, dims, order[0] == 'F', out);
}

/* ---- scalars ---- */

static double half_to_double(uint16_t h) {
    int    exp = h >> 10 & 0x1F;
    double mant = h & 0x3FF, sign = h & 0x8000 ? -1.0 : 1.0;
    if (exp == 0) return sign * mant * 0x1p-24;
    if (exp == 31 && h & 0x3FF) { /* NaN: sign and payload kept (pdk_double_to_half) */
        uint64_t bits = (uint64_t)(h & 0x8000) << 48 | 0x7FFull << 52 | (uint64_t)(h & 0x3FF) << 42;
        double   d;
        memcpy(&d, &bits, sizeof d);
        return d;
    }
    if (exp == 31) return sign * (double)INFINITY;
    return sign * (1.0 + mant / 1024.0) * (double)(1u << exp) * 0x1p-15;
}

/* A plain value from one little-endian element; NULL for complex (kept as a 0-d tensor). */
static pdckpt_status scalar_value(pk_vm *vm, pk_np_dtype dt, const uint8_t *e, pdckpt_value **out) {
    uint64_t u = 0;
    for (size_t i = 0; i < dt.size && dt.size <= 8; i++) u |= (uint64_t)e[i] << (8 * i);
    int     shift = 64 - 8 * (int)dt.size;
    int64_t s = dt.size <= 8 ? (int64_t)(u << shift) >> shift : 0;
    float   f;
    double  d;
    PDK_TRY(pk_charge(vm, 64));
    switch (dt.dtype) {
    case PDCKPT_DTYPE_BOOL: *out = pdckpt_value_new_bool(vm->a, u != 0); break;
    case PDCKPT_DTYPE_INT8:
    case PDCKPT_DTYPE_INT16:
    case PDCKPT_DTYPE_INT32:
    case PDCKPT_DTYPE_INT64: *out = pdckpt_value_new_int(vm->a, s); break;
    case PDCKPT_DTYPE_UINT8:
    case PDCKPT_DTYPE_UINT16:
    case PDCKPT_DTYPE_UINT32:
    case PDCKPT_DTYPE_UINT64: {
        uint8_t wide[9] = {0};
        memcpy(wide, e, dt.size);
        return pk_make_long(vm, wide, dt.size + 1, out);
    }
    case PDCKPT_DTYPE_FLOAT16:
        *out = pdckpt_value_new_float(vm->a, half_to_double((uint16_t)u));
        break;
    case PDCKPT_DTYPE_FLOAT32:
        memcpy(&f, e, 4);
        *out = pdckpt_value_new_float(vm->a, f);
        break;
    case PDCKPT_DTYPE_FLOAT64:
        memcpy(&d, e, 8);
        *out = pdckpt_value_new_float(vm->a, d);
        break;
    default: *out = NULL; return PDCKPT_OK;
    }
    return *out ? PDCKPT_OK : pk_nomem(vm);
}

pdckpt_status pk_np_scalar(pk_vm *vm, pdckpt_value *args, pdckpt_value **out) {
    *out = NULL;
    pk_np_dtype dt;
    if (pdckpt_value_len(args) != 2 || !pk_np_dtype_of(pdckpt_value_at(args, 0), &dt))
        return PDCKPT_OK;
    const uint8_t *b = NULL;
    size_t         len;
    uint8_t       *tmp = NULL, elem[16];
    bool           found;
    PDK_TRY(data_bytes(vm, pdckpt_value_at(args, 1), &b, &len, &tmp, &found));
    pdckpt_status st = PDCKPT_OK;
    if (found && len != dt.size)
        st = pk_fail(vm, PDCKPT_ERR_FORMAT, "expected %zu bytes for a numpy %s scalar, found %zu",
                     dt.size, pdckpt_dtype_name(dt.dtype), len);
    if (found && st == PDCKPT_OK) {
        memcpy(elem, b, dt.size);
        if (dt.swap) byteswap(elem, 1, dt);
        st = scalar_value(vm, dt, elem, out);
        if (*out && !dt.swap) /* remembered, so it is written back as this numpy scalar */
            pdckpt_value_set_numpy_scalar(*out, dt.dtype);
    }
    if (found && st == PDCKPT_OK && !*out) { /* complex: a 0-d tensor keeps both parts */
        st = make_array(vm, pdckpt_value_at(args, 1), dt, 0, NULL, false, out);
        if (st == PDCKPT_OK && *out && !dt.swap) pdckpt_value_set_numpy_scalar(*out, dt.dtype);
    }
    if (tmp) pdk_free(vm->a, tmp, len + 1);
    return st;
}

pdckpt_status pk_tensor_renamed(pk_vm *vm, const pdckpt_value *t, const char *name,
                                pdckpt_value **out) {
    pdckpt_tensor_view v;
    bool               fortran; /* the same memory, in the same order */
    pdckpt_tensor_get_memory(t, &v, &fortran);
    PDK_TRY(pk_charge(vm, 256 + strlen(name)));
    pdckpt_status st = pdckpt_tensor_new_in_buffer(vm->a, v.dtype, v.n_dims, v.dims, v.buffer,
                                                   v.data, out, vm->err);
    if (st == PDCKPT_OK && fortran) {
        pdk_tensor_attach_budget(*out, pdk_tensor_budget(t)); /* its C copy: charged alike */
        st = pdckpt_tensor_set_fortran(*out, vm->err);
    }
    if (st == PDCKPT_OK) st = pdckpt_tensor_set_name(*out, name, vm->err);
    if (st == PDCKPT_OK) pdk_tensor_set_origin(*out, t); /* one array in the file */
    if (st == PDCKPT_OK) pdk_value_note_at(*out, pdckpt_value_offset(t));
    if (st != PDCKPT_OK) {
        pdckpt_value_free(*out);
        *out = NULL;
        pdk_error_set_source(vm->err, vm->in->name);
    }
    return st;
}
