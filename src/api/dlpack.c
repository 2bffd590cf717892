/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dlpack.c — DLPack 1.x export of tensor values (include/pdckpt_dlpack.h).  One allocation holds
 * the managed tensor, its shape and strides; it keeps a reference to the tensor's pdckpt_buffer,
 * so an exported tensor outlives the tree it came from (a NumPy array or a Paddle tensor made from
 * a loaded checkpoint stays valid after the checkpoint is freed).  Mapped data is flagged
 * READ_ONLY.
 */
#include "pdckpt_dlpack.h"

#include "../core/pdk_core.h"

#include <string.h>

/* The block behind one export: the managed tensor first, so the deleter's argument is the block. */
typedef struct dl_export {
    DLManagedTensorVersioned managed;
    const pdckpt_allocator  *alloc;
    pdckpt_buffer           *buffer;
    size_t                   block_size;
    int64_t                  dims[]; /* ndim shape entries, then ndim strides */
} dl_export;

static void dl_export_delete(DLManagedTensorVersioned *self) {
    if (!self) return;
    dl_export *e = (dl_export *)self;
    pdckpt_buffer_release(e->buffer);
    pdk_free(e->alloc, e, e->block_size);
}

/* Fills dtype, shape and C-order strides (in elements, as DLPack counts them). */
static void describe(dl_export *e, const pdckpt_tensor_view *v, const pdk_dtype_info *info) {
    DLTensor *t = &e->managed.dl_tensor;
    t->device.device_type = kDLCPU;
    t->device.device_id = 0;
    t->ndim = v->n_dims;
    t->dtype.code = info->dlpack_code;
    t->dtype.bits = info->dlpack_bits;
    t->dtype.lanes = 1;
    t->byte_offset = 0;
    t->shape = v->n_dims ? e->dims : NULL;
    t->strides = v->n_dims ? e->dims + v->n_dims : NULL;
    int64_t stride = 1;
    for (int32_t i = v->n_dims - 1; i >= 0; i--) {
        e->dims[i] = v->dims[i];
        e->dims[v->n_dims + i] = stride;
        stride *= v->dims[i] > 0 ? v->dims[i] : 1;
    }
}

/* A private copy of the tensor's bytes in a new buffer (for borrowed data and copy=True). */
static pdckpt_buffer *copy_data(const pdckpt_allocator *a, const pdckpt_tensor_view *v) {
    pdckpt_buffer *b = pdk_buffer_new_alloc(a, (size_t)v->n_bytes, false);
    if (b && v->n_bytes) memcpy(pdk_buffer_data(b), v->data, (size_t)v->n_bytes);
    return b;
}

static pdckpt_status export_tensor(const pdckpt_value *value, bool force_copy,
                                   DLManagedTensorVersioned **out, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!out) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "out is NULL");
    *out = NULL;
    pdckpt_tensor_view v;
    if (!pdckpt_tensor_get(value, &v))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "expected a tensor value, found %s",
                        value ? pdckpt_kind_name(pdckpt_value_kind(value)) : "NULL");
    const pdk_dtype_info   *info = pdk_dtype_info_of(v.dtype);
    const pdckpt_allocator *a = pdk_value_allocator(value);
    size_t                  block = sizeof(dl_export) + 2 * (size_t)v.n_dims * sizeof(int64_t);
    dl_export              *e = pdk_alloc(a, block);
    if (!e) return pdk_fail_nomem(err, "DLPack export");
    memset(e, 0, sizeof *e);
    e->alloc = a;
    e->block_size = block;
    bool copy = force_copy || (!v.buffer && v.n_bytes);
    e->buffer = copy ? copy_data(a, &v) : pdckpt_buffer_retain(v.buffer);
    if (copy && !e->buffer) {
        pdk_free(a, e, block);
        return pdk_fail_nomem(err, "DLPack copy of the tensor data");
    }
    describe(e, &v, info);
    e->managed.version.major = 1;
    e->managed.version.minor = 1;
    e->managed.manager_ctx = e;
    e->managed.deleter = dl_export_delete;
    e->managed.flags =
        copy ? DLPACK_FLAG_BITMASK_IS_COPIED : (v.read_only ? DLPACK_FLAG_BITMASK_READ_ONLY : 0);
    e->managed.dl_tensor.data = v.n_bytes == 0 ? NULL
                                : copy         ? pdk_buffer_data(e->buffer)
                                               : (void *)v.data;
    *out = &e->managed;
    return PDCKPT_OK;
}

pdckpt_status pdckpt_value_to_dlpack(const pdckpt_value *value, DLManagedTensorVersioned **out,
                                     pdckpt_error *err) {
    return export_tensor(value, false, out, err);
}

pdckpt_status pdckpt_value_to_dlpack_copy(const pdckpt_value *value, DLManagedTensorVersioned **out,
                                          pdckpt_error *err) {
    return export_tensor(value, true, out, err);
}
