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

/* ---- Fortran to C order ----
 * Column-major memory of dims (d0, ..., dn-1) is the row-major array of the reversed dims, so
 * the copy reverses the axes.  Size-1 dims are dropped first (they move nothing); then d0 (the
 * fastest in the source) and dn-1 (the fastest in the copy) are transposed in square tiles, once
 * per index of the dims between them.  A tile is read a source run at a time into a small
 * buffer and written a copy run at a time, so each cache line of either side is touched once,
 * whatever the strides (powers of two would otherwise evict the lines a naive tile reuses). */

enum { TILE = 32 };

/* The 2-D problem one middle index leaves: rows x cols items, the source's rows contiguous
 * (item apart, columns `s_col` bytes apart), the copy's columns contiguous (rows `d_row` bytes
 * apart). */
typedef struct order_plane {
    uint64_t rows, cols, s_col, d_row;
} order_plane;

/* One tile of `item`-byte elements (a constant in each instantiation below, so the moves are
 * register moves): buf[j][i] = src[j][i] read in runs of the source, then dst[i][j] = buf[j][i]
 * written in runs of the copy. */
#define TILE_FN(NAME, ITEM)                                                                        \
    static void NAME(uint8_t *dst, const uint8_t *src, const order_plane *p, uint64_t ni,          \
                     uint64_t nj, size_t item) {                                                   \
        uint8_t buf[TILE * TILE * 16];                                                             \
        size_t  sz = ITEM ? ITEM : item;                                                           \
        for (uint64_t j = 0; j < nj; j++)                                                          \
            memcpy(buf + j * TILE * sz, src + j * p->s_col, ni * sz);                              \
        for (uint64_t i = 0; i < ni; i++) {                                                        \
            uint8_t *row = dst + i * p->d_row;                                                     \
            for (uint64_t j = 0; j < nj; j++) memcpy(row + j * sz, buf + (j * TILE + i) * sz, sz); \
        }                                                                                          \
    }
TILE_FN(tile_1, 1)
TILE_FN(tile_2, 2)
TILE_FN(tile_4, 4)
TILE_FN(tile_8, 8)
TILE_FN(tile_16, 16)
TILE_FN(tile_any, 0)

typedef void (*tile_fn)(uint8_t *, const uint8_t *, const order_plane *, uint64_t, uint64_t,
                        size_t);

static tile_fn tile_for(size_t item) {
    switch (item) {
    case 1: return tile_1;
    case 2: return tile_2;
    case 4: return tile_4;
    case 8: return tile_8;
    case 16: return tile_16;
    default: return tile_any;
    }
}

/* Rows [r0, r1) of the plane, into `dst` that starts at row r0. */
static void transpose_plane(uint8_t *dst, const uint8_t *src, const order_plane *p, size_t item,
                            tile_fn tile, uint64_t r0, uint64_t r1) {
    for (uint64_t i0 = r0; i0 < r1; i0 += TILE)
        for (uint64_t j0 = 0; j0 < p->cols; j0 += TILE) {
            uint64_t ni = r1 - i0 < TILE ? r1 - i0 : TILE;
            uint64_t nj = p->cols - j0 < TILE ? p->cols - j0 : TILE;
            tile(dst + (i0 - r0) * p->d_row + j0 * item, src + i0 * item + j0 * p->s_col, p, ni, nj,
                 item);
        }
}

/* The dims longer than one (their count; 0 or 1: both orders are the same bytes). */
static int32_t long_dims(int32_t n_dims, const int64_t *dims, uint64_t *out) {
    int32_t n = 0;
    for (int32_t k = 0; k < n_dims; k++)
        if (dims[k] > 1) out[n++] = (uint64_t)dims[k];
    return n;
}

void pdk_fortran_to_c(uint8_t *dst, const uint8_t *src, int32_t n_dims, const int64_t *dims,
                      uint64_t n, size_t item) {
    uint64_t d[PDCKPT_MAX_DIMS];
    if (long_dims(n_dims, dims, d) < 2)
        memcpy(dst, src, n * item); /* the same bytes */
    else
        pdk_fortran_to_c_rows(dst, src, n_dims, dims, item, 0, d[0]);
}

void pdk_fortran_to_c_rows(uint8_t *dst, const uint8_t *src, int32_t n_dims, const int64_t *dims,
                           size_t item, uint64_t r0, uint64_t r1) {
    uint64_t d[PDCKPT_MAX_DIMS], s_stride[PDCKPT_MAX_DIMS], d_stride[PDCKPT_MAX_DIMS];
    uint64_t idx[PDCKPT_MAX_DIMS] = {0};
    int32_t  m = long_dims(n_dims, dims, d);
    if (m < 2 || item == 0 || item > 16) return; /* (no dtype is wider than 16 bytes) */
    for (int32_t k = 0; k < m; k++) s_stride[k] = k ? s_stride[k - 1] * d[k - 1] : item;
    for (int32_t k = m - 1; k >= 0; k--)
        d_stride[k] = k < m - 1 ? d_stride[k + 1] * d[k + 1] : item;
    order_plane p = {d[0], d[m - 1], s_stride[m - 1], d_stride[0]};
    tile_fn     tile = tile_for(item);
    uint64_t    s_off = 0, d_off = 0;
    for (;;) { /* every index of the middle dims 1 .. m-2, the last fastest */
        transpose_plane(dst + d_off, src + s_off, &p, item, tile, r0, r1);
        int32_t k = m - 2;
        for (; k >= 1; k--) {
            s_off += s_stride[k], d_off += d_stride[k];
            if (++idx[k] < d[k]) break;
            s_off -= s_stride[k] * d[k], d_off -= d_stride[k] * d[k];
            idx[k] = 0;
        }
        if (k < 1) return;
    }
}

/* ---- the copy's budget ---- */

struct pdk_budget {
    atomic_uint             refs;
    _Atomic uint64_t        left;
    uint64_t                limit;
    const pdckpt_allocator *a;
};

pdk_budget *pdk_budget_new(const pdckpt_allocator *a, uint64_t limit) {
    pdk_budget *b = pdk_alloc(a, sizeof *b);
    if (!b) return NULL;
    atomic_init(&b->refs, 1);
    atomic_init(&b->left, limit);
    b->limit = limit;
    b->a = a;
    return b;
}

static bool budget_take(pdk_budget *b, uint64_t n) {
    if (!b) return true;
    uint64_t left = atomic_load(&b->left);
    do {
        if (n > left) return false;
    } while (!atomic_compare_exchange_weak(&b->left, &left, left - n));
    return true;
}

static void budget_give(pdk_budget *b, uint64_t n) {
    if (b) atomic_fetch_add(&b->left, n);
}

void pdk_budget_spent(pdk_budget *b, uint64_t bytes) {
    uint64_t left = atomic_load(&b->left);
    while (!atomic_compare_exchange_weak(&b->left, &left, left > bytes ? left - bytes : 0)) {
    }
}

void pdk_budget_release(pdk_budget *b) {
    if (b && atomic_fetch_sub(&b->refs, 1) == 1) pdk_free(b->a, b, sizeof *b);
}

void pdk_tensor_attach_budget(pdckpt_value *tensor, pdk_budget *b) {
    pdk_tensor *t = tensor->u.t;
    if (!b || t->budget == b) return;
    atomic_fetch_add(&b->refs, 1);
    pdk_budget_release(t->budget);
    t->budget = b;
}

pdk_budget *pdk_tensor_budget(const pdckpt_value *tensor) {
    return tensor->u.t->budget;
}

/* ---- the copy ---- */

/* A new C-order copy of `t`'s column-major data, charged to its budget (NULL: no memory, or
 * past the budget). */
static pdckpt_buffer *make_copy(const pdckpt_allocator *a, pdk_tensor *t) {
    if (!budget_take(t->budget, t->n_bytes)) return NULL;
    pdckpt_buffer *copy = pdk_buffer_new_alloc(a, (size_t)t->n_bytes, false);
    if (!copy) {
        budget_give(t->budget, t->n_bytes);
        return NULL;
    }
    pdk_fortran_to_c(pdk_buffer_data(copy), t->data, t->n_dims, t->dims, t->n_elements,
                     (size_t)(t->n_bytes / t->n_elements));
    return copy;
}

const void *pdk_tensor_c_data(const pdckpt_allocator *a, pdk_tensor *t) {
    if (!t->fortran) return t->data;
    pdckpt_buffer *copy = atomic_load(&t->c_copy);
    if (copy) return pdk_buffer_data(copy);
    if (!(copy = make_copy(a, t))) return NULL;
    pdckpt_buffer *none = NULL;
    if (atomic_compare_exchange_strong(&t->c_copy, &none, copy)) return pdk_buffer_data(copy);
    pdckpt_buffer_release(copy); /* another reader made it first */
    budget_give(t->budget, t->n_bytes);
    return pdk_buffer_data(none);
}

/* Why no copy of `n` bytes was made: past the budget, or no memory. */
static pdckpt_status copy_failed(const pdk_tensor *t, uint64_t n, const char *source,
                                 pdckpt_error *err) {
    uint64_t left = t->budget ? atomic_load(&t->budget->left) : UINT64_MAX;
    if (n > left)
        return pdk_fail(err, PDCKPT_ERR_LIMIT, source, -1,
                        "expected the C-order copy of a Fortran-order tensor (%llu bytes) to fit "
                        "in what its load's max_alloc_bytes (%llu) leaves, %llu bytes",
                        (unsigned long long)n, (unsigned long long)t->budget->limit,
                        (unsigned long long)left);
    return pdk_fail(err, PDCKPT_ERR_NOMEM, source, -1,
                    "expected memory for a C-order copy of a Fortran-order tensor (%llu bytes)",
                    (unsigned long long)n);
}

pdckpt_status pdk_tensor_c_view(const pdckpt_value *tensor, pdckpt_tensor_view *out,
                                const char *source, pdckpt_error *err) {
    if (pdckpt_tensor_get(tensor, out)) return PDCKPT_OK;
    if (!tensor || tensor->kind != PDCKPT_KIND_TENSOR)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, source, -1, "expected a tensor value");
    return copy_failed(tensor->u.t, tensor->u.t->n_bytes, source, err);
}

/* Rows of the first long dim per chunk: about PDK_C_CHUNK bytes, whole tiles when more than
 * one. */
static uint64_t chunk_rows(uint64_t rows, uint64_t row_bytes) {
    uint64_t k = PDK_C_CHUNK / row_bytes;
    if (k > TILE) k -= k % TILE;
    return k == 0 ? 1 : k > rows ? rows : k;
}

pdckpt_status pdk_tensor_c_chunks(const pdckpt_value *tensor, pdk_c_chunk_fn fn, void *ctx,
                                  const char *source, pdckpt_error *err) {
    pdckpt_tensor_view v;
    if (!pdckpt_tensor_get_memory(tensor, &v, NULL))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, source, -1, "expected a tensor value");
    pdk_tensor    *t = tensor->u.t;
    pdckpt_buffer *kept = t->fortran ? atomic_load(&t->c_copy) : NULL;
    if (!t->fortran || kept) return fn(ctx, kept ? pdk_buffer_data(kept) : v.data, v.n_bytes, err);
    uint64_t d[PDCKPT_MAX_DIMS];
    long_dims(t->n_dims, t->dims, d); /* fortran: at least two */
    uint64_t row_bytes = t->n_bytes / d[0], rows = chunk_rows(d[0], row_bytes);
    size_t   cap = (size_t)(rows * row_bytes);
    bool     took = budget_take(t->budget, cap);
    uint8_t *buf = took ? pdk_alloc(tensor->alloc, cap) : NULL;
    if (!buf) {
        if (took) budget_give(t->budget, cap);
        return copy_failed(t, cap, source, err);
    }
    pdckpt_status st = PDCKPT_OK;
    size_t        item = (size_t)(t->n_bytes / t->n_elements);
    for (uint64_t r0 = 0; r0 < d[0] && st == PDCKPT_OK; r0 += rows) {
        uint64_t r1 = d[0] - r0 < rows ? d[0] : r0 + rows;
        pdk_fortran_to_c_rows(buf, t->data, t->n_dims, t->dims, item, r0, r1);
        st = fn(ctx, buf, (r1 - r0) * row_bytes, err);
    }
    pdk_free(tensor->alloc, buf, cap);
    budget_give(t->budget, cap);
    return st;
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
