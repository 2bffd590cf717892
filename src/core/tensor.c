/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tensor.c — tensor values: shape and size checks (every element count and byte size is
 * overflow-checked), owned / borrowed / buffer-backed data, names and LoD levels.
 */
#include "pdk_value.h"

#include <string.h>

pdckpt_status pdk_tensor_sizes(pdckpt_dtype dtype, int32_t n_dims, const int64_t *dims,
                               uint64_t *n_elements, uint64_t *n_bytes, pdckpt_error *err) {
    const pdk_dtype_info *info = pdk_dtype_info_of(dtype);
    if (!info) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "invalid dtype %d", (int)dtype);
    if (n_dims < 0 || n_dims > PDCKPT_MAX_DIMS)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "expected 0..%d dims, found %d",
                        PDCKPT_MAX_DIMS, (int)n_dims);
    if (n_dims > 0 && !dims) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "dims is NULL");
    uint64_t count = 1;
    for (int32_t i = 0; i < n_dims; i++) {
        if (dims[i] < 0)
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "expected dim %d >= 0, found %lld",
                            (int)i, (long long)dims[i]);
        if (!pdk_mul_u64(count, (uint64_t)dims[i], &count))
            return pdk_fail(err, PDCKPT_ERR_LIMIT, NULL, -1,
                            "element count overflows 64 bits at dim %d", (int)i);
    }
    uint64_t bytes;
    if (!pdk_mul_u64(count, info->size, &bytes) || bytes > (uint64_t)INT64_MAX)
        return pdk_fail(err, PDCKPT_ERR_LIMIT, NULL, -1,
                        "tensor byte size overflows 63 bits (%llu elements of %u bytes)",
                        (unsigned long long)count, (unsigned)info->size);
    *n_elements = count;
    *n_bytes = bytes;
    return PDCKPT_OK;
}

static void free_lod(const pdckpt_allocator *a, pdk_tensor *t) {
    for (int32_t i = 0; i < t->n_lod; i++)
        pdk_free(a, t->lod[i], t->lod_lens[i] * sizeof(uint64_t));
    pdk_free(a, t->lod, (size_t)t->n_lod * sizeof *t->lod);
    pdk_free(a, t->lod_lens, (size_t)t->n_lod * sizeof *t->lod_lens);
    t->lod = NULL;
    t->lod_lens = NULL;
    t->n_lod = 0;
}

void pdk_tensor_destroy(const pdckpt_allocator *a, pdk_tensor *t) {
    if (!t) return;
    pdckpt_buffer_release(t->buffer);
    pdckpt_buffer_release(atomic_load(&t->c_copy));
    pdk_budget_release(t->budget);
    if (t->dims != t->inline_dims) pdk_free(a, t->dims, (size_t)t->n_dims * sizeof *t->dims);
    pdk_strfree(a, t->name);
    free_lod(a, t);
    if (t->link && !(t->link & 1)) pdckpt_value_free((pdckpt_value *)(uintptr_t)t->link);
    pdk_free(a, t, sizeof *t);
}

/* Builds the value and shape; data fields are filled by the caller. */
static pdckpt_status tensor_shell(const pdckpt_allocator *a, pdckpt_dtype dtype, int32_t n_dims,
                                  const int64_t *dims, pdckpt_value **out, pdckpt_error *err) {
    uint64_t n_elements, n_bytes;
    PDK_TRY(pdk_tensor_sizes(dtype, n_dims, dims, &n_elements, &n_bytes, err));
    if (n_bytes > SIZE_MAX)
        return pdk_fail(err, PDCKPT_ERR_LIMIT, NULL, -1, "tensor does not fit in memory");
    pdckpt_value *v = pdk_value_shell(a, PDCKPT_KIND_TENSOR);
    pdk_tensor   *t = pdk_calloc(a, 1, sizeof *t);
    int64_t      *d = n_dims > PDK_INLINE_DIMS ? pdk_alloc(a, (size_t)n_dims * sizeof *d) : NULL;
    if (!v || !t || (n_dims > PDK_INLINE_DIMS && !d)) {
        pdk_free(a, v, sizeof *v);
        pdk_free(a, t, sizeof *t);
        pdk_free(a, d, (size_t)n_dims * sizeof *d);
        return pdk_fail_nomem(err, "tensor");
    }
    t->dims = d ? d : t->inline_dims;
    if (n_dims) memcpy(t->dims, dims, (size_t)n_dims * sizeof *dims);
    t->dtype = dtype;
    t->n_dims = n_dims;
    t->n_elements = n_elements;
    t->n_bytes = n_bytes;
    v->u.t = t;
    *out = v;
    return PDCKPT_OK;
}

static pdckpt_status check_out(pdckpt_value **out, pdckpt_error **err, pdckpt_error *local) {
    if (!*err) *err = local;
    pdk_error_reset(*err);
    if (!out) return pdk_fail(*err, PDCKPT_ERR_ARGUMENT, NULL, -1, "out is NULL");
    *out = NULL;
    return PDCKPT_OK;
}

static pdckpt_status tensor_new(const pdckpt_allocator *a, pdckpt_dtype dtype, int32_t n_dims,
                                const int64_t *dims, bool zero, pdckpt_value **out,
                                pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    PDK_TRY(check_out(out, &err, &local));
    pdckpt_value *v;
    PDK_TRY(tensor_shell(a, dtype, n_dims, dims, &v, err));
    pdk_tensor *t = v->u.t;
    if (t->n_bytes) {
        t->buffer = pdk_buffer_new_alloc(a, (size_t)t->n_bytes, zero);
        if (!t->buffer) {
            pdckpt_value_free(v);
            return pdk_fail_nomem(err, "tensor data");
        }
        t->data = pdk_buffer_data(t->buffer);
        t->writable = true;
    }
    *out = v;
    return PDCKPT_OK;
}

pdckpt_status pdckpt_tensor_new(const pdckpt_allocator *a, pdckpt_dtype dtype, int32_t n_dims,
                                const int64_t *dims, pdckpt_value **out, pdckpt_error *err) {
    return tensor_new(a, dtype, n_dims, dims, true, out, err);
}

pdckpt_status pdk_tensor_new_unzeroed(const pdckpt_allocator *a, pdckpt_dtype dtype, int32_t n_dims,
                                      const int64_t *dims, pdckpt_value **out, pdckpt_error *err) {
    return tensor_new(a, dtype, n_dims, dims, false, out, err);
}

pdckpt_status pdckpt_tensor_new_borrowed(const pdckpt_allocator *a, pdckpt_dtype dtype,
                                         int32_t n_dims, const int64_t *dims, const void *data,
                                         pdckpt_value **out, pdckpt_error *err) {
    return pdckpt_tensor_new_in_buffer(a, dtype, n_dims, dims, NULL, data, out, err);
}

pdckpt_status pdckpt_tensor_new_in_buffer(const pdckpt_allocator *a, pdckpt_dtype dtype,
                                          int32_t n_dims, const int64_t *dims,
                                          pdckpt_buffer *buffer, const void *data,
                                          pdckpt_value **out, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    PDK_TRY(check_out(out, &err, &local));
    pdckpt_value *v;
    PDK_TRY(tensor_shell(a, dtype, n_dims, dims, &v, err));
    pdk_tensor *t = v->u.t;
    if (t->n_bytes && !data) {
        pdckpt_value_free(v);
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "tensor data is NULL");
    }
    t->data = t->n_bytes ? data : NULL;
    t->buffer = pdckpt_buffer_retain(buffer);
    *out = v;
    return PDCKPT_OK;
}

bool pdckpt_tensor_get_memory(const pdckpt_value *value, pdckpt_tensor_view *out, bool *fortran) {
    if (!value || value->kind != PDCKPT_KIND_TENSOR || !out) return false;
    const pdk_tensor *t = value->u.t;
    out->dtype = t->dtype;
    out->n_dims = t->n_dims;
    out->dims = t->dims;
    out->n_elements = t->n_elements;
    out->n_bytes = t->n_bytes;
    out->data = t->data;
    out->read_only = !t->writable;
    out->name = t->name;
    out->n_lod_levels = t->n_lod;
    out->lod_lens = t->lod_lens;
    out->lod = (const uint64_t *const *)t->lod;
    out->buffer = t->buffer;
    if (fortran) *fortran = t->fortran;
    return true;
}

bool pdckpt_tensor_get(const pdckpt_value *value, pdckpt_tensor_view *out) {
    if (!pdckpt_tensor_get_memory(value, out, NULL)) return false;
    pdk_tensor *t = value->u.t;
    if (!t->fortran) return true;
    if (!(out->data = pdk_tensor_c_data(value->alloc, t))) return false; /* out of memory */
    out->buffer = atomic_load(&t->c_copy);
    out->read_only = true; /* a copy: writing it would not change the tensor */
    return true;
}

void *pdckpt_tensor_data_mut(pdckpt_value *tensor) {
    if (!tensor || tensor->kind != PDCKPT_KIND_TENSOR || !tensor->u.t->writable ||
        tensor->u.t->fortran) /* its data is not the C order the caller would write */
        return NULL;
    return (void *)tensor->u.t->data;
}

static pdckpt_value *origin_of(const pdk_tensor *t) {
    return t->link && !(t->link & 1) ? (pdckpt_value *)(uintptr_t)t->link : NULL;
}

void pdk_tensor_set_origin(pdckpt_value *copy, const pdckpt_value *of) {
    pdckpt_value *root = (pdckpt_value *)pdckpt_tensor_origin(of);
    if (copy->kind != PDCKPT_KIND_TENSOR || !root || root == copy || origin_of(copy->u.t)) return;
    copy->u.t->link = (uint64_t)(uintptr_t)pdckpt_value_retain(root); /* (its offset: root's) */
}

void pdk_value_note_at(pdckpt_value *value, int64_t at) {
    if (!value || at < 0 || (uint64_t)at > (UINT64_MAX >> 1) - 1) return;
    if (value->kind == PDCKPT_KIND_TENSOR && !value->u.t->link)
        value->u.t->link = 2 * (uint64_t)at + 1;
    if (value->kind == PDCKPT_KIND_OBJECT && value->u.o && !value->u.o->at1)
        value->u.o->at1 = (uint64_t)at + 1;
}

int64_t pdckpt_value_offset(const pdckpt_value *value) {
    if (value && value->kind == PDCKPT_KIND_OBJECT && value->u.o)
        return value->u.o->at1 ? (int64_t)(value->u.o->at1 - 1) : -1;
    if (!value || value->kind != PDCKPT_KIND_TENSOR || !value->u.t->link) return -1;
    const pdckpt_value *origin = origin_of(value->u.t);
    return origin ? pdckpt_value_offset(origin) : (int64_t)(value->u.t->link >> 1);
}

const pdckpt_value *pdckpt_tensor_origin(const pdckpt_value *tensor) {
    if (!tensor || tensor->kind != PDCKPT_KIND_TENSOR) return NULL;
    const pdckpt_value *origin = origin_of(tensor->u.t);
    return origin ? origin : tensor;
}

pdckpt_status pdckpt_tensor_set_name(pdckpt_value *tensor, const char *name, pdckpt_error *err) {
    if (!tensor || tensor->kind != PDCKPT_KIND_TENSOR)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "expected a tensor value");
    char *copy = NULL;
    if (name && !(copy = pdk_strndup(tensor->alloc, name, strlen(name))))
        return pdk_fail_nomem(err, "tensor name");
    pdk_strfree(tensor->alloc, tensor->u.t->name);
    tensor->u.t->name = copy;
    return PDCKPT_OK;
}

pdckpt_status pdckpt_tensor_set_lod(pdckpt_value *tensor, int32_t n_levels,
                                    const uint64_t *const *levels, const uint64_t *level_lens,
                                    pdckpt_error *err) {
    if (!tensor || tensor->kind != PDCKPT_KIND_TENSOR || n_levels < 0 ||
        (n_levels && (!levels || !level_lens)))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "invalid LoD arguments");
    const pdckpt_allocator *a = tensor->alloc;
    pdk_tensor             *t = tensor->u.t;
    free_lod(a, t);
    if (n_levels == 0) return PDCKPT_OK;
    t->lod = pdk_calloc(a, (size_t)n_levels, sizeof *t->lod);
    t->lod_lens = pdk_calloc(a, (size_t)n_levels, sizeof *t->lod_lens);
    if (!t->lod || !t->lod_lens) goto nomem;
    t->n_lod = n_levels;
    for (int32_t i = 0; i < n_levels; i++) {
        if (level_lens[i] > SIZE_MAX / sizeof(uint64_t)) goto nomem;
        t->lod[i] = pdk_alloc(a, (size_t)level_lens[i] * sizeof(uint64_t));
        if (!t->lod[i]) goto nomem;
        t->lod_lens[i] = level_lens[i];
        if (level_lens[i]) memcpy(t->lod[i], levels[i], (size_t)level_lens[i] * sizeof(uint64_t));
    }
    return PDCKPT_OK;
nomem:
    if (t->lod && t->lod_lens)
        free_lod(a, t);
    else {
        pdk_free(a, t->lod, (size_t)n_levels * sizeof *t->lod);
        pdk_free(a, t->lod_lens, (size_t)n_levels * sizeof *t->lod_lens);
        t->lod = NULL;
        t->lod_lens = NULL;
        t->n_lod = 0;
    }
    return pdk_fail_nomem(err, "LoD");
}

pdckpt_status pdckpt_tensor_reinterpret(pdckpt_value *tensor, pdckpt_dtype dtype,
                                        pdckpt_error *err) {
    if (!tensor || tensor->kind != PDCKPT_KIND_TENSOR)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "expected a tensor value");
    if (pdckpt_dtype_size(dtype) == 0 ||
        pdckpt_dtype_size(dtype) != pdckpt_dtype_size(tensor->u.t->dtype))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "cannot reinterpret %s as %s: element sizes differ",
                        pdckpt_dtype_name(tensor->u.t->dtype), pdckpt_dtype_name(dtype));
    tensor->u.t->dtype = dtype;
    return PDCKPT_OK;
}

/* Values compare in C order (a Fortran-order tensor's copy); an unallocatable copy is unequal. */
bool pdk_tensor_equal(const pdckpt_value *va, const pdckpt_value *vb) {
    pdk_tensor *a = va->u.t, *b = vb->u.t;
    if (a->dtype != b->dtype || a->n_dims != b->n_dims || a->n_lod != b->n_lod) return false;
    if (a->n_dims && memcmp(a->dims, b->dims, (size_t)a->n_dims * sizeof *a->dims)) return false;
    for (int32_t i = 0; i < a->n_lod; i++) {
        if (a->lod_lens[i] != b->lod_lens[i]) return false;
        if (a->lod_lens[i] && memcmp(a->lod[i], b->lod[i], a->lod_lens[i] * sizeof(uint64_t)))
            return false;
    }
    if (a->n_bytes == 0) return true;
    const void *x = pdk_tensor_c_data(va->alloc, a), *y = pdk_tensor_c_data(vb->alloc, b);
    return x && y && memcmp(x, y, (size_t)a->n_bytes) == 0;
}

static pdckpt_status retype_tree(pdckpt_value *v, pdckpt_dtype from, pdckpt_dtype to, uint64_t *n,
                                 unsigned depth, pdckpt_error *err) {
    if (!v) return PDCKPT_OK;
    if (depth > PDCKPT_MAX_WALK_DEPTH)
        return pdk_fail(err, PDCKPT_ERR_LIMIT, NULL, -1, "expected nesting of at most %d levels",
                        PDCKPT_MAX_WALK_DEPTH);
    switch (v->kind) {
    case PDCKPT_KIND_TENSOR:
        if (v->u.t->dtype == from) v->u.t->dtype = to, ++*n;
        return PDCKPT_OK;
    case PDCKPT_KIND_OBJECT:
        PDK_TRY(retype_tree(v->u.o->args, from, to, n, depth + 1, err));
        PDK_TRY(retype_tree(v->u.o->state, from, to, n, depth + 1, err));
        return retype_tree(v->u.o->items, from, to, n, depth + 1, err);
    case PDCKPT_KIND_LIST:
    case PDCKPT_KIND_TUPLE:
    case PDCKPT_KIND_SET:
    case PDCKPT_KIND_DICT:
        for (size_t i = 0; i < v->u.c.len; i++)
            PDK_TRY(retype_tree(v->u.c.items[i], from, to, n, depth + 1, err));
        return PDCKPT_OK;
    default: return PDCKPT_OK;
    }
}

pdckpt_status pdckpt_value_reinterpret_all(pdckpt_value *root, pdckpt_dtype from, pdckpt_dtype to,
                                           uint64_t *n_changed, pdckpt_error *err) {
    uint64_t n = 0;
    pdk_error_reset(err); /* a fresh call: the caller's struct may hold anything */
    if (pdckpt_dtype_size(from) == 0 || pdckpt_dtype_size(from) != pdckpt_dtype_size(to))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "cannot reinterpret %s as %s: element sizes differ",
                        pdckpt_dtype_name(from), pdckpt_dtype_name(to));
    PDK_TRY(retype_tree(root, from, to, &n, 0, err));
    if (n_changed) *n_changed = n;
    return PDCKPT_OK;
}
