/* SPDX-License-Identifier: Apache-2.0 */
/*
 * value.c — the nested, ordered value tree (docs/DESIGN.md "The data model"): scalars, strings,
 * containers, opaque objects, equality and the leaf walk.  Dict lookups by string key use a hash
 * index (dict_index.c) so 100,000-entry optimizer states stay O(1) per key.
 */
#include "pdk_value.h"

#include <string.h>

pdckpt_value *pdk_value_shell(const pdckpt_allocator *a, pdckpt_kind kind) {
    pdckpt_value *v = pdk_alloc(a, sizeof *v);
    if (!v) return NULL;
    memset(v, 0, sizeof *v);
    atomic_init(&v->refs, 1);
    v->kind = kind;
    v->alloc = a;
    return v;
}

const pdckpt_allocator *pdk_value_allocator(const pdckpt_value *value) {
    return value ? value->alloc : NULL;
}

size_t pdk_value_refs(const pdckpt_value *value) {
    return value ? atomic_load_explicit(&value->refs, memory_order_acquire) : 0;
}

bool pdckpt_value_shared(const pdckpt_value *value) {
    return pdk_value_refs(value) > 1;
}

pdckpt_value *pdckpt_value_retain(pdckpt_value *value) {
    if (value) atomic_fetch_add_explicit(&value->refs, 1, memory_order_relaxed);
    return value;
}

static void container_destroy(pdckpt_value *v) {
    pdk_container *c = &v->u.c;
    for (size_t i = 0; i < c->len; i++) {
        pdckpt_value_free(c->items[i]);
        if (c->keys) pdckpt_value_free(c->keys[i]);
    }
    pdk_free(v->alloc, c->items, c->cap * sizeof *c->items);
    pdk_free(v->alloc, c->keys, c->cap * sizeof *c->keys);
    pdk_dict_index_free(v->alloc, c);
}

static void object_destroy(const pdckpt_allocator *a, pdk_object *o) {
    pdk_strfree(a, o->module);
    pdk_strfree(a, o->name);
    pdckpt_value_free(o->args);
    pdckpt_value_free(o->state);
    pdckpt_value_free(o->items);
    pdk_free(a, o, sizeof *o);
}

void pdckpt_value_free(pdckpt_value *value) {
    if (!value) return;
    if (atomic_fetch_sub_explicit(&value->refs, 1, memory_order_acq_rel) != 1) return;
    const pdckpt_allocator *a = value->alloc;
    switch (value->kind) {
    case PDCKPT_KIND_STRING:
    case PDCKPT_KIND_BYTES:
        if (value->u.s.borrowed)
            pdckpt_buffer_release(value->u.s.owner);
        else
            pdk_free(a, value->u.s.data, value->u.s.len + 1);
        break;
    case PDCKPT_KIND_LIST:
    case PDCKPT_KIND_TUPLE:
    case PDCKPT_KIND_SET:
    case PDCKPT_KIND_DICT: container_destroy(value); break;
    case PDCKPT_KIND_TENSOR: pdk_tensor_destroy(a, value->u.t); break;
    case PDCKPT_KIND_OBJECT: object_destroy(a, value->u.o); break;
    default: break;
    }
    pdk_free(a, value, sizeof *value);
}

pdckpt_kind pdckpt_value_kind(const pdckpt_value *value) {
    return value ? value->kind : PDCKPT_KIND_NONE;
}

const char *pdckpt_kind_name(pdckpt_kind kind) {
    static const char *const names[] = {"none", "bool",  "int",  "float",  "string", "bytes",
                                        "list", "tuple", "dict", "tensor", "object", "set"};
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "unknown";
}

/* ---- scalars ---- */

pdckpt_value *pdckpt_value_new_none(const pdckpt_allocator *a) {
    return pdk_value_shell(a, PDCKPT_KIND_NONE);
}

pdckpt_value *pdckpt_value_new_bool(const pdckpt_allocator *a, bool v) {
    pdckpt_value *value = pdk_value_shell(a, PDCKPT_KIND_BOOL);
    if (value) value->u.b = v;
    return value;
}

pdckpt_value *pdckpt_value_new_int(const pdckpt_allocator *a, int64_t v) {
    pdckpt_value *value = pdk_value_shell(a, PDCKPT_KIND_INT);
    if (value) value->u.i = v;
    return value;
}

pdckpt_value *pdckpt_value_new_float(const pdckpt_allocator *a, double v) {
    pdckpt_value *value = pdk_value_shell(a, PDCKPT_KIND_FLOAT);
    if (value) value->u.f = v;
    return value;
}

static pdckpt_value *new_text(const pdckpt_allocator *a, pdckpt_kind kind, const void *bytes,
                              size_t len) {
    if (len == SIZE_MAX) return NULL;
    pdckpt_value *value = pdk_value_shell(a, kind);
    if (!value) return NULL;
    value->u.s.data = pdk_strndup(a, bytes, len);
    if (!value->u.s.data) {
        pdk_free(a, value, sizeof *value);
        return NULL;
    }
    value->u.s.len = len;
    return value;
}

pdckpt_value *pdk_value_new_borrowed(const pdckpt_allocator *a, pdckpt_kind kind, const void *data,
                                     size_t len, pdckpt_buffer *owner) {
    if ((kind != PDCKPT_KIND_STRING && kind != PDCKPT_KIND_BYTES) || (!data && len)) return NULL;
    pdckpt_value *value = pdk_value_shell(a, kind);
    if (!value) return NULL;
    value->u.s.data = (char *)(data ? data : ""); /* never written through: see pdk_value_own */
    value->u.s.len = len;
    value->u.s.owner = owner ? pdckpt_buffer_retain(owner) : NULL;
    value->u.s.borrowed = true;
    return value;
}

bool pdk_value_is_borrowed(const pdckpt_value *value, pdckpt_buffer **owner) {
    bool text = value && (value->kind == PDCKPT_KIND_STRING || value->kind == PDCKPT_KIND_BYTES);
    if (!text || !value->u.s.borrowed) return false;
    if (owner) *owner = value->u.s.owner;
    return true;
}

bool pdk_value_own(pdckpt_value *value) {
    if (!pdk_value_is_borrowed(value, NULL)) return true;
    char *copy = pdk_strndup(value->alloc, value->u.s.data, value->u.s.len);
    if (!copy) return false;
    pdckpt_buffer_release(value->u.s.owner);
    value->u.s.data = copy;
    value->u.s.owner = NULL;
    value->u.s.borrowed = false;
    return true;
}

pdckpt_value *pdckpt_value_new_string(const pdckpt_allocator *a, const char *s, size_t len) {
    if (!s) return NULL;
    return new_text(a, PDCKPT_KIND_STRING, s, len == SIZE_MAX ? strlen(s) : len);
}

pdckpt_value *pdckpt_value_new_bytes(const pdckpt_allocator *a, const void *bytes, size_t len) {
    if (!bytes && len) return NULL;
    return new_text(a, PDCKPT_KIND_BYTES, bytes ? bytes : "", len);
}

pdckpt_value *pdckpt_value_new_container(const pdckpt_allocator *a, pdckpt_kind kind) {
    if (kind != PDCKPT_KIND_LIST && kind != PDCKPT_KIND_TUPLE && kind != PDCKPT_KIND_DICT &&
        kind != PDCKPT_KIND_SET)
        return NULL;
    return pdk_value_shell(a, kind);
}

bool pdckpt_value_get_bool(const pdckpt_value *value, bool *out) {
    if (!value || value->kind != PDCKPT_KIND_BOOL) return false;
    *out = value->u.b;
    return true;
}

bool pdckpt_value_get_int(const pdckpt_value *value, int64_t *out) {
    if (!value) return false;
    if (value->kind == PDCKPT_KIND_BOOL)
        *out = value->u.b;
    else if (value->kind == PDCKPT_KIND_INT)
        *out = value->u.i;
    else
        return false;
    return true;
}

bool pdckpt_value_get_float(const pdckpt_value *value, double *out) {
    if (!value) return false;
    if (value->kind == PDCKPT_KIND_FLOAT)
        *out = value->u.f;
    else if (value->kind == PDCKPT_KIND_INT)
        *out = (double)value->u.i;
    else
        return false;
    return true;
}

const char *pdckpt_value_get_string(const pdckpt_value *value, size_t *len) {
    if (!value || value->kind != PDCKPT_KIND_STRING) return NULL;
    if (len) *len = value->u.s.len;
    return value->u.s.data;
}

const void *pdckpt_value_get_bytes(const pdckpt_value *value, size_t *len) {
    if (!value || value->kind != PDCKPT_KIND_BYTES) return NULL;
    if (len) *len = value->u.s.len;
    return value->u.s.data;
}

bool pdk_value_is_string(const pdckpt_value *value, const char *s, size_t len) {
    return value && value->kind == PDCKPT_KIND_STRING && value->u.s.len == len &&
           memcmp(value->u.s.data, s, len) == 0;
}

/* ---- opaque objects ---- */

pdckpt_value *pdckpt_value_new_object(const pdckpt_allocator *a, pdckpt_object_kind kind,
                                      const char *module, const char *name, pdckpt_value *args,
                                      pdckpt_value *state) {
    pdckpt_value *value = NULL;
    pdk_object   *o = NULL;
    if (!module || !name) goto fail;
    value = pdk_value_shell(a, PDCKPT_KIND_OBJECT);
    o = pdk_calloc(a, 1, sizeof *o);
    if (!value || !o) goto fail;
    o->kind = kind;
    o->module = pdk_strndup(a, module, strlen(module));
    o->name = pdk_strndup(a, name, strlen(name));
    if (!o->module || !o->name) goto fail;
    o->args = args;
    o->state = state;
    value->u.o = o;
    return value;
fail:
    if (o) {
        pdk_strfree(a, o->module);
        pdk_strfree(a, o->name);
        pdk_free(a, o, sizeof *o);
    }
    pdk_free(a, value, sizeof *value);
    pdckpt_value_free(args);
    pdckpt_value_free(state);
    return NULL;
}

static const pdk_object *object_of(const pdckpt_value *v) {
    return v && v->kind == PDCKPT_KIND_OBJECT ? v->u.o : NULL;
}

pdckpt_object_kind pdckpt_object_kind_of(const pdckpt_value *object) {
    const pdk_object *o = object_of(object);
    return o ? o->kind : PDCKPT_OBJECT_REDUCE;
}

const char *pdckpt_object_module(const pdckpt_value *object) {
    const pdk_object *o = object_of(object);
    return o ? o->module : NULL;
}

const char *pdckpt_object_name(const pdckpt_value *object) {
    const pdk_object *o = object_of(object);
    return o ? o->name : NULL;
}

const pdckpt_value *pdckpt_object_args(const pdckpt_value *object) {
    const pdk_object *o = object_of(object);
    return o ? o->args : NULL;
}

const pdckpt_value *pdckpt_object_state(const pdckpt_value *object) {
    const pdk_object *o = object_of(object);
    return o ? o->state : NULL;
}

const pdckpt_value *pdckpt_object_items(const pdckpt_value *object) {
    const pdk_object *o = object_of(object);
    return o ? o->items : NULL;
}

static pdckpt_status object_replace(pdckpt_value *object, pdckpt_value *v, bool items,
                                    pdckpt_error *err) {
    if (!object || object->kind != PDCKPT_KIND_OBJECT) {
        pdckpt_value_free(v);
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "expected an object value");
    }
    pdckpt_value **slot = items ? &object->u.o->items : &object->u.o->state;
    pdckpt_value_free(*slot);
    *slot = v;
    return PDCKPT_OK;
}

pdckpt_status pdckpt_object_set_state(pdckpt_value *object, pdckpt_value *state,
                                      pdckpt_error *err) {
    return object_replace(object, state, false, err);
}

pdckpt_status pdckpt_object_set_items(pdckpt_value *object, pdckpt_value *items,
                                      pdckpt_error *err) {
    return object_replace(object, items, true, err);
}

bool pdckpt_value_numpy_scalar(const pdckpt_value *value, pdckpt_dtype *dtype) {
    if (!value || value->np_scalar == 0) return false;
    if (dtype) *dtype = (pdckpt_dtype)(value->np_scalar - 1);
    return true;
}

static bool int_fits(int64_t v, pdckpt_dtype dtype) {
    switch (dtype) {
    case PDCKPT_DTYPE_INT8: return v >= INT8_MIN && v <= INT8_MAX;
    case PDCKPT_DTYPE_INT16: return v >= INT16_MIN && v <= INT16_MAX;
    case PDCKPT_DTYPE_INT32: return v >= INT32_MIN && v <= INT32_MAX;
    case PDCKPT_DTYPE_INT64: return true;
    case PDCKPT_DTYPE_UINT8: return v >= 0 && v <= UINT8_MAX;
    case PDCKPT_DTYPE_UINT16: return v >= 0 && v <= UINT16_MAX;
    case PDCKPT_DTYPE_UINT32: return v >= 0 && v <= (int64_t)UINT32_MAX;
    case PDCKPT_DTYPE_UINT64: return v >= 0; /* larger ones are big ints: plain ints */
    default: return false;
    }
}

/* binary16 bits of `d` when it is exactly a half (every finite half, +-inf, NaN with its top
 * payload bits); false otherwise.  The one conversion back to numpy.float16 scalars. */
bool pdk_double_to_half(double d, uint16_t *out) {
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    uint16_t sign = (uint16_t)(b >> 48 & 0x8000);
    int      exp = (int)(b >> 52 & 0x7FF);
    uint64_t mant = b & 0xFFFFFFFFFFFFFull;
    if (exp == 0x7FF) { /* inf, or a NaN whose payload fits a half's 10 bits (the top ones) */
        *out = (uint16_t)(sign | 0x7C00 | mant >> 42);
        return !mant || ((mant & ((1ull << 42) - 1)) == 0 && mant >> 42);
    }
    if (d == 0) return *out = sign, true;
    int e = exp - 1023; /* d = 1.mant * 2^e */
    if (e > 15 || e < -24) return false;
    if (e >= -14) { /* normal: 10 mantissa bits must hold it */
        if (mant & ((1ull << 42) - 1)) return false;
        return *out = (uint16_t)(sign | (e + 15) << 10 | mant >> 42), true;
    }
    uint64_t full = mant | 1ull << 52; /* subnormal: value = m * 2^-24, m < 1024 */
    int      shift = 52 - (e + 24);
    if (full & ((1ull << shift) - 1)) return false;
    return *out = (uint16_t)(sign | full >> shift), true;
}

/* A complex numpy scalar is held as a 0-d tensor of its dtype (a number cannot hold it). */
static bool complex_scalar(const pdckpt_value *value, pdckpt_dtype dtype) {
    pdckpt_tensor_view t;
    return (dtype == PDCKPT_DTYPE_COMPLEX64 || dtype == PDCKPT_DTYPE_COMPLEX128) &&
           pdckpt_tensor_get(value, &t) && t.n_dims == 0 && t.dtype == dtype && !t.name;
}

/* A uint64 beyond int64 is held as the big int it is (non-negative, at most 64 bits). */
static bool uint64_scalar(const pdckpt_value *value, pdckpt_dtype dtype) {
    size_t               n;
    const unsigned char *b = pdckpt_value_get_bigint(value, &n);
    return dtype == PDCKPT_DTYPE_UINT64 && b && n <= 9 && !(b[n - 1] & 0x80) &&
           (n < 9 || b[8] == 0);
}

bool pdckpt_value_set_numpy_scalar(pdckpt_value *value, pdckpt_dtype dtype) {
    if (!value) return false;
    bool ok = complex_scalar(value, dtype) || uint64_scalar(value, dtype);
    if (value->kind == PDCKPT_KIND_BOOL) ok = dtype == PDCKPT_DTYPE_BOOL;
    if (value->kind == PDCKPT_KIND_INT) ok = int_fits(value->u.i, dtype);
    if (value->kind == PDCKPT_KIND_FLOAT) /* NaN passes: float32 keeps a NaN a NaN */
        ok = dtype == PDCKPT_DTYPE_FLOAT64 ||
             (dtype == PDCKPT_DTYPE_FLOAT32 &&
              ((double)(float)value->u.f == value->u.f || value->u.f != value->u.f)) ||
             (dtype == PDCKPT_DTYPE_FLOAT16 && pdk_double_to_half(value->u.f, &(uint16_t){0}));
    if (ok) value->np_scalar = (uint8_t)(dtype + 1);
    return ok;
}
