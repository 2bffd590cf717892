/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pdk_value.h — the in-memory layout of pdckpt_value, private to src/core.  Other layers use the
 * public accessors in pdckpt.h so this layout can change freely.
 */
#ifndef PDK_VALUE_H
#define PDK_VALUE_H

#include "pdk_core.h"

#include <stdatomic.h>

#define PDK_INLINE_DIMS 8

typedef struct pdk_tensor {
    pdckpt_dtype   dtype;
    int32_t        n_dims;
    int64_t       *dims; /* points at inline_dims unless n_dims > PDK_INLINE_DIMS */
    int64_t        inline_dims[PDK_INLINE_DIMS];
    uint64_t       n_elements;
    uint64_t       n_bytes;
    const void    *data;
    pdckpt_buffer *buffer;   /* owner of data, or NULL for caller-borrowed memory */
    bool           writable; /* data is an allocation this tensor created */
    bool           fortran;  /* data is column-major (tensor_order.c) */
    int32_t        n_lod;    /* (here: beside the flags, in what would be padding) */
    /* fortran: the C-order copy pdckpt_tensor_get hands out, made on first use (a race between
     * two readers keeps one; the loser frees its own), or NULL */
    _Atomic(pdckpt_buffer *) c_copy;
    struct pdk_budget       *budget; /* what the copy is charged to (a load's), or NULL */
    char                    *name;
    uint64_t                *lod_lens;
    uint64_t               **lod;
    /* One word for two facts (W2's 100,000 tensors keep their record size): even and non-zero,
     * a renamed copy's origin (pdk_tensor_set_origin: the tensor it names, held; the offset is
     * the origin's); odd, 1 + 2 x the offset in its file of what made it (pdckpt_value_offset);
     * 0, neither. */
    uint64_t link;
} pdk_tensor;

typedef struct pdk_dict_index pdk_dict_index;

typedef struct pdk_container {
    pdckpt_value  **items;
    pdckpt_value  **keys; /* dicts only, parallel to items */
    size_t          len;
    size_t          cap;
    pdk_dict_index *index; /* string-key hash index, built once a dict grows */
} pdk_container;

typedef struct pdk_object {
    pdckpt_object_kind kind;
    char              *module;
    char              *name;
    pdckpt_value      *args;
    pdckpt_value      *state;
    pdckpt_value      *items;
    uint64_t           at1; /* as pdk_tensor's */
} pdk_object;

struct pdckpt_value {
    atomic_uint             refs;
    uint8_t                 kind;      /* a pdckpt_kind; bytes keep the header in 8 */
    uint8_t                 np_scalar; /* BOOL/INT/FLOAT from a numpy scalar: dtype + 1, else 0 */
    bool                    ordered;   /* DICT: a collections.OrderedDict in Python */
    bool                    plain;     /* DICT: a pickle's root without paddle.save's name table */
    const pdckpt_allocator *alloc;
    union {
        bool    b;
        int64_t i;
        double  f;
        struct {
            char          *data; /* owned: a NUL-terminated allocation of len + 1 bytes */
            size_t         len;
            pdckpt_buffer *owner;    /* borrowed: holds data (a reference), or NULL */
            bool           borrowed; /* data is someone else's (pdk_value_new_borrowed) */
        } s;
        pdk_container c;
        pdk_tensor   *t;
        pdk_object   *o;
    } u;
};

pdckpt_value *pdk_value_shell(const pdckpt_allocator *a, pdckpt_kind kind);
void          pdk_tensor_destroy(const pdckpt_allocator *a, pdk_tensor *t);
/* The tensor's data in C order: its own memory, or (fortran) its C-order copy; NULL when that
 * copy cannot be allocated (tensor_order.c). */
const void *pdk_tensor_c_data(const pdckpt_allocator *a, pdk_tensor *t);
bool        pdk_tensor_equal(const pdckpt_value *a, const pdckpt_value *b);
void        pdk_dict_index_free(const pdckpt_allocator *a, pdk_container *c);

#endif /* PDK_VALUE_H */
