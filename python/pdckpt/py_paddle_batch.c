/* SPDX-License-Identifier: Apache-2.0 */
/*
 * py_paddle_batch.c — many small tensors of one shape and dtype as paddle.Tensors in one Paddle
 * call (issue 18, W2).  Paddle's Tensor constructor costs ~7 us per tensor, far more than the
 * bytes of a small tensor; so before the conversion pass, the root dict's small tensors that the
 * pass would hand to Paddle as they are (py_paddle.c's direct rule) are grouped by dtype and
 * shape, each large group copied into one new allocation, given to Paddle once (DLPack) and
 * split by paddle.unstack, a few MiB at a time.  unstack copies: each tensor gets its own memory
 * and its own in-place version counter, as the per-tensor path's do (paddle.unbind's views would
 * share one counter, so an in-place op on one tensor would make autograd refuse another), and a
 * chunk's allocation is freed as soon as its split is done.  The pass then takes a tensor from here
 * instead of building one (pyn_paddle_take) and names it as it names any; what it does not take
 * is dropped.
 */
#include "py_native.h"

#include <stdlib.h>
#include <string.h>

enum {
    /* fewer: one by one (measured warm: 16 x 1 KiB in 0.14 ms as a group, 0.21 ms one by one) */
    BATCH_MIN_COUNT = 16,
    /* larger: one by one.  paddle.unstack copies at under 1 GB/s (CPU, Paddle 3.1), so its cost
     * per tensor passes a tensor made one by one (14-19 us) between 4 and 8 KiB: 256 tensors of
     * 40 KiB took 16.6 ms batched against paddle.load's 7.2 (docs/speed.md). */
    BATCH_MAX_BYTES = 4 << 10,
    /* A group is split this much at a time: a gathered chunk is a transient copy, and a chunk of
     * W2 (4,096 x 1 KiB) costs one Paddle call per 4,096 tensors, nothing beside the split. */
    CHUNK_BYTES = 4 << 20,
};

typedef struct cand {
    const pdckpt_value *v;
    pdckpt_tensor_view  tv;
    size_t              order; /* position in the root dict: groups keep the file's order */
} cand;

static int cmp_dims(const cand *a, const cand *b) {
    if (a->tv.dtype != b->tv.dtype) return a->tv.dtype < b->tv.dtype ? -1 : 1;
    if (a->tv.n_dims != b->tv.n_dims) return a->tv.n_dims < b->tv.n_dims ? -1 : 1;
    for (int32_t d = 0; d < a->tv.n_dims; d++)
        if (a->tv.dims[d] != b->tv.dims[d]) return a->tv.dims[d] < b->tv.dims[d] ? -1 : 1;
    return 0;
}

static int cmp_cand(const void *pa, const void *pb) {
    const cand *a = pa, *b = pb;
    int         c = cmp_dims(a, b);
    return c ? c : (a->order < b->order ? -1 : a->order > b->order);
}

/* Paddle's CPU unstack kernel has these dtypes only (3.x: no bool, int8/16, uint8, float16,
 * bfloat16, float8 — those stay one by one). */
static bool splittable(pdckpt_dtype dtype) {
    switch (dtype) {
    case PDCKPT_DTYPE_INT32:
    case PDCKPT_DTYPE_INT64:
    case PDCKPT_DTYPE_FLOAT32:
    case PDCKPT_DTYPE_FLOAT64:
    case PDCKPT_DTYPE_COMPLEX64:
    case PDCKPT_DTYPE_COMPLEX128: return true;
    default: return false;
    }
}

/* A small root entry the pass would make a tensor of directly (no LoD: Paddle's DLPack import
 * has none either, and the fallback's rules stay where they are). */
static bool candidate(const pdckpt_value *key, const pdckpt_value *v, const pyn_out *out,
                      pdckpt_tensor_view *tv) {
    if (!pdckpt_tensor_get(v, tv) || tv->n_lod_levels || tv->n_bytes > BATCH_MAX_BYTES ||
        !splittable(tv->dtype) || !pyn_paddle_direct(tv, out))
        return false;
    switch (out->paddle->mode) {
    case PYN_PADDLE_TABLE: return !pyn_paddle_is_name_table_key(key);
    case PYN_PADDLE_NAMED: return tv->name != NULL;
    default: return true;
    }
}

/* The group's payloads already lie side by side in one buffer (a pdckpt-written file's do). */
static bool side_by_side(const cand *g, size_t n) {
    for (size_t i = 1; i < n; i++)
        if (g[i].tv.buffer != g->tv.buffer ||
            (const char *)g[i].tv.data != (const char *)g->tv.data + i * g->tv.n_bytes)
            return false;
    return true;
}

/* The group as one tensor [n, shape...]: over the read buffer when its payloads are side by
 * side (unstack copies, so Paddle never writes there), else gathered into a new block. */
static pdckpt_value *gathered(const cand *g, size_t n) {
    int64_t dims[PDCKPT_MAX_DIMS + 1] = {(int64_t)n};
    for (int32_t d = 0; d < g->tv.n_dims; d++) dims[d + 1] = g->tv.dims[d];
    pdckpt_value *big = NULL;
    pdckpt_error  err;
    pdckpt_status st =
        side_by_side(g, n)
            ? pdckpt_tensor_new_in_buffer(NULL, g->tv.dtype, g->tv.n_dims + 1, dims, g->tv.buffer,
                                          g->tv.data, &big, &err)
            : pdckpt_tensor_new(NULL, g->tv.dtype, g->tv.n_dims + 1, dims, &big, &err);
    if (st != PDCKPT_OK) return pyn_raise(&err), NULL;
    char *dst = pdckpt_tensor_data_mut(big); /* NULL over the read buffer */
    for (size_t i = 0; dst && i < n; i++)
        memcpy(dst + i * g->tv.n_bytes, g[i].tv.data, g->tv.n_bytes);
    return big;
}

/* One Paddle tensor of the group, split: a list of n new tensors. */
static PyObject *split_group(const cand *g, size_t n, pyn_out *out) {
    pdckpt_value *big = gathered(g, n);
    if (!big) return NULL;
    PyObject *capsule = pyn_paddle_capsule(big);
    pdckpt_value_free(big); /* the export holds the data */
    PyObject *dense = capsule ? PyObject_CallOneArg(out->paddle->from_dlpack, capsule) : NULL;
    Py_XDECREF(capsule);
    PyObject *whole = dense ? PyObject_CallFunctionObjArgs(out->paddle->tensor_type, dense,
                                                           out->paddle->place, NULL)
                            : NULL;
    Py_XDECREF(dense);
    PyObject *parts = whole ? PyObject_CallFunction(out->paddle->split, "Oi", whole, 0) : NULL;
    Py_XDECREF(whole);
    PyObject *list = parts ? PySequence_List(parts) : NULL;
    Py_XDECREF(parts);
    if (list && PyList_GET_SIZE(list) != (Py_ssize_t)n) {
        Py_CLEAR(list);
        PyErr_SetString(PyExc_RuntimeError, "pdckpt: paddle.unstack gave an unexpected count");
    }
    return list;
}

/* A chunk Paddle would not split (another version's kernels) is left to the pass, one by one;
 * only running out of memory fails the load. */
static int batch_chunk(const cand *g, size_t n, PyObject *batched, pyn_out *out) {
    PyObject *list = split_group(g, n, out);
    if (!list && !PyErr_ExceptionMatches(PyExc_MemoryError)) {
        PyErr_Clear();
        return 0;
    }
    int rc = list ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        PyObject *key = PyLong_FromVoidPtr((void *)g[i].v);
        rc = key ? PyDict_SetItem(batched, key, PyList_GET_ITEM(list, (Py_ssize_t)i)) : -1;
        Py_XDECREF(key);
    }
    Py_XDECREF(list);
    return rc;
}

/* The group in chunks of about CHUNK_BYTES (a tail under BATCH_MIN_COUNT joins the last), so a
 * gathered group never costs more than a chunk beside the tensors made from it. */
static int batch_group(const cand *g, size_t n, PyObject *batched, pyn_out *out) {
    size_t per = CHUNK_BYTES / (g->tv.n_bytes ? (size_t)g->tv.n_bytes : 1);
    if (per < BATCH_MIN_COUNT) per = BATCH_MIN_COUNT;
    int rc = 0;
    for (size_t i = 0, m; rc == 0 && i < n; i += m) {
        m = n - i < per + BATCH_MIN_COUNT ? n - i : per;
        rc = batch_chunk(g + i, m, batched, out);
    }
    return rc;
}

static size_t collect(const pdckpt_value *root, const pyn_out *out, cand *c) {
    size_t m = 0;
    for (size_t i = 0, n = pdckpt_value_len(root); i < n; i++) {
        const pdckpt_value *v = pdckpt_value_at(root, i);
        if (candidate(pdckpt_dict_key_at(root, i), v, out, &c[m].tv)) {
            c[m].v = v;
            c[m].order = i;
            m++;
        }
    }
    return m;
}

int pyn_paddle_batch(const pdckpt_value *root, pyn_out *out) {
    pyn_paddle *p = out->paddle;
    size_t      n = pdckpt_value_len(root);
    if (!p || p->arrays || !p->split || p->split == Py_None || out->plain ||
        pdckpt_value_kind(root) != PDCKPT_KIND_DICT || n < BATCH_MIN_COUNT)
        return 0;
    cand *c = malloc(n * sizeof *c);
    if (!c) return PyErr_NoMemory(), -1;
    size_t m = collect(root, out, c);
    qsort(c, m, sizeof *c, cmp_cand);
    int rc = 0;
    for (size_t i = 0, j; rc == 0 && i < m; i = j) {
        for (j = i + 1; j < m && cmp_dims(&c[i], &c[j]) == 0;) j++;
        if (j - i < BATCH_MIN_COUNT) continue;
        if (!p->batched && !(p->batched = PyDict_New())) rc = -1;
        if (rc == 0) rc = batch_group(c + i, j - i, p->batched, out);
    }
    free(c);
    return rc;
}

PyObject *pyn_paddle_take(const pdckpt_value *v, pyn_out *out) {
    PyObject *batched = out->paddle->batched;
    if (!batched) return NULL;
    PyObject *key = PyLong_FromVoidPtr((void *)v);
    if (!key) return NULL;
    PyObject *t = PyDict_GetItemWithError(batched, key);
    Py_XINCREF(t);
    if (t && PyDict_DelItem(batched, key) < 0) Py_CLEAR(t); /* one place each, as before */
    Py_DECREF(key);
    return t;
}
