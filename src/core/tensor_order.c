/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tensor_order.c — a tensor's memory order.  A Fortran-order (column-major) tensor keeps the
 * memory it was given, so the pickle writer can write it as it is with numpy's is_fortran flag,
 * as paddle.save does for a transposed tensor; every other reader asks pdckpt_tensor_get and
 * gets C order, from a copy made once, on first use.  The formats that store C order therefore
 * need to know nothing about Fortran order.
 */
#include "pdk_value.h"

#include <string.h>

bool pdk_orders_differ(int32_t n_dims, const int64_t *dims) {
    int longer = 0;
    for (int32_t k = 0; k < n_dims; k++) {
        if (dims[k] == 0) return false; /* no elements: numpy calls it C-contiguous */
        longer += dims[k] > 1;
    }
    return longer > 1;
}

static inline void copy_item(uint8_t *d, const uint8_t *s, size_t item) {
    switch (item) { /* constant sizes: the compiler moves them in registers */
    case 1: *d = *s; return;
    case 2: memcpy(d, s, 2); return;
    case 4: memcpy(d, s, 4); return;
    case 8: memcpy(d, s, 8); return;
    default: memcpy(d, s, item); return;
    }
}

/* A matrix (the two dims longer than one): dst[i][j] = src[j][i], in tiles that stay in cache
 * (the element-wise walk below strides through all of src for every row of dst). */
static void transpose_2d(uint8_t *dst, const uint8_t *src, uint64_t rows, uint64_t cols,
                         size_t item) {
    enum { TILE = 32 };
    for (uint64_t i0 = 0; i0 < rows; i0 += TILE)
        for (uint64_t j0 = 0; j0 < cols; j0 += TILE) {
            uint64_t i1 = i0 + TILE < rows ? i0 + TILE : rows;
            uint64_t j1 = j0 + TILE < cols ? j0 + TILE : cols;
            for (uint64_t i = i0; i < i1; i++)
                for (uint64_t j = j0; j < j1; j++)
                    copy_item(dst + (i * cols + j) * item, src + (j * rows + i) * item, item);
        }
}

/* The two dims longer than one, when there are exactly two. */
static bool matrix_dims(int32_t n_dims, const int64_t *dims, uint64_t *rows, uint64_t *cols) {
    int found = 0;
    for (int32_t k = 0; k < n_dims; k++) {
        if (dims[k] <= 1) continue;
        if (found == 2) return false;
        *(found++ ? cols : rows) = (uint64_t)dims[k];
    }
    return found == 2;
}

void pdk_fortran_to_c(uint8_t *dst, const uint8_t *src, int32_t n_dims, const int64_t *dims,
                      uint64_t n, size_t item) {
    uint64_t rows, cols;
    if (matrix_dims(n_dims, dims, &rows, &cols)) {
        transpose_2d(dst, src, rows, cols, item);
        return;
    }
    uint64_t stride[PDCKPT_MAX_DIMS], idx[PDCKPT_MAX_DIMS] = {0}, off = 0;
    for (int32_t k = 0; k < n_dims; k++)
        stride[k] = k ? stride[k - 1] * (uint64_t)dims[k - 1] : item;
    for (uint64_t i = 0; i < n; i++) { /* dst in order; src walks the last index fastest */
        memcpy(dst + i * item, src + off, item);
        for (int32_t k = n_dims - 1; k >= 0; k--) {
            off += stride[k];
            if (++idx[k] < (uint64_t)dims[k]) break;
            off -= stride[k] * (uint64_t)dims[k];
            idx[k] = 0;
        }
    }
}

const void *pdk_tensor_c_data(const pdckpt_allocator *a, pdk_tensor *t) {
    if (!t->fortran) return t->data;
    pdckpt_buffer *copy = atomic_load(&t->c_copy);
    if (copy) return pdk_buffer_data(copy);
    copy = pdk_buffer_new_alloc(a, (size_t)t->n_bytes, false);
    if (!copy) return NULL;
    pdk_fortran_to_c(pdk_buffer_data(copy), t->data, t->n_dims, t->dims, t->n_elements,
                     (size_t)(t->n_bytes / t->n_elements));
    pdckpt_buffer *none = NULL;
    if (atomic_compare_exchange_strong(&t->c_copy, &none, copy)) return pdk_buffer_data(copy);
    pdckpt_buffer_release(copy); /* another reader made it first */
    return pdk_buffer_data(none);
}

pdckpt_status pdckpt_tensor_set_fortran(pdckpt_value *tensor, pdckpt_error *err) {
    if (!tensor || tensor->kind != PDCKPT_KIND_TENSOR)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "expected a tensor value");
    pdk_tensor *t = tensor->u.t;
    if (atomic_load(&t->c_copy))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "expected a tensor that no reader has seen in C order yet");
    t->fortran = t->fortran || pdk_orders_differ(t->n_dims, t->dims);
    return PDCKPT_OK;
}

bool pdckpt_tensor_is_fortran(const pdckpt_value *tensor) {
    return tensor && tensor->kind == PDCKPT_KIND_TENSOR && tensor->u.t->fortran;
}
