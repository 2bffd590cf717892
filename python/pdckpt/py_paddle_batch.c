/* SPDX-License-Identifier: Apache-2.0 */
/*
 * py_paddle_batch.c — many small tensors of one shape and dtype as paddle.Tensors, a chunk at a
 * time (issue 18, W2).  Paddle's Tensor constructor costs ~7 us per tensor, far more than the
 * bytes of a small tensor; so before the conversion pass, the root dict's small tensors that the
 * pass would hand to Paddle as they are (py_paddle.c's direct rule) are grouped by dtype and
 * shape, and a large group is made a few MiB at a time:
 *  - views (when _convert._views_rehome found this Paddle's private methods behave): one Paddle
 *    tensor over the chunk's span of the read buffer, and for each tensor a new DenseTensor on
 *    that allocation at the tensor's own offset — no copy, its own in-place version counter, and
 *    1 KiB of W2 where any tensor Paddle allocates takes 4 KiB (its CPU allocator aligns every
 *    allocation to 4 KiB).  They keep the read buffer, as tensors made one by one do;
 *  - else the chunk as one tensor (over the read buffer when its payloads lie side by side, else
 *    gathered into a new block) split by paddle.unstack, which copies: each tensor its own memory
 *    and counter (paddle.unbind's views would share one counter, so an in-place op on one tensor
 *    would make autograd refuse another).
 * The pass then takes a tensor from here instead of building one (pyn_paddle_take) and names it
 * as it names any; what it does not take is dropped.  A chunk is made when the pass first takes
 * one of its tensors, so a pass that releases each tree entry it converted (pyn_out.consume)
 * frees the tree's memory while Paddle's objects are made, not after (issue 18: W2's peak).
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

/* A candidate: what the batch needs of its tensor view (56 bytes where the view takes 88: the
 * array lives through the pass). */
typedef struct cand {
    const pdckpt_value *v;
    const char         *data;
    pdckpt_buffer      *buffer;
    const int64_t      *dims; /* the tensor's own, valid while the tree lives */
    uint64_t            n_bytes;
    size_t              order; /* position in the root dict: groups keep the file's order */
    pdckpt_dtype        dtype;
    int32_t             n_dims;
} cand;

/* The tensors made ahead, by value address (for pyn_paddle_take's search). */
typedef struct pyn_made {
    const pdckpt_value *v;
    PyObject           *t;     /* NULL until its chunk is made, and once taken */
    size_t              chunk; /* in pyn_batch.chunks */
} pyn_made;

/* cands [first, first + n) of a group, made into tensors at the first take of one of them. */
typedef struct chunk {
    size_t first, n;
    bool   done;
} chunk;

typedef struct pyn_batch {
    cand     *c; /* sorted by group, then root order */
    chunk    *chunks;
    size_t    n_chunks;
    pyn_made *made; /* one per candidate in a chunk, sorted by value address */
    size_t    n_made;
} pyn_batch;

static int cmp_made(const void *pa, const void *pb) {
    const pyn_made *a = pa, *b = pb;
    return (uintptr_t)a->v < (uintptr_t)b->v ? -1 : (uintptr_t)a->v > (uintptr_t)b->v;
}

static int cmp_dims(const cand *a, const cand *b) {
    if (a->dtype != b->dtype) return a->dtype < b->dtype ? -1 : 1;
    if (a->n_dims != b->n_dims) return a->n_dims < b->n_dims ? -1 : 1;
    for (int32_t d = 0; d < a->n_dims; d++)
        if (a->dims[d] != b->dims[d]) return a->dims[d] < b->dims[d] ? -1 : 1;
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
static bool candidate(const pdckpt_value *key, const pdckpt_value *v, const pyn_out *out, cand *c) {
    pdckpt_tensor_view tv;
    if (!pdckpt_tensor_get(v, &tv) || tv.n_lod_levels || tv.n_bytes > BATCH_MAX_BYTES ||
        !splittable(tv.dtype) || !pyn_paddle_direct(&tv, out))
        return false;
    *c = (cand){v, tv.data, tv.buffer, tv.dims, tv.n_bytes, 0, tv.dtype, tv.n_dims};
    switch (out->paddle->mode) {
    case PYN_PADDLE_TABLE: return !pyn_paddle_is_name_table_key(key);
    case PYN_PADDLE_NAMED: return tv.name != NULL;
    default: return true;
    }
}

/* The group's payloads already lie side by side in one buffer (a pdckpt-written file's do). */
static bool side_by_side(const cand *g, size_t n) {
    for (size_t i = 1; i < n; i++)
        if (g[i].buffer != g->buffer ||
            (const char *)g[i].data != (const char *)g->data + i * g->n_bytes)
            return false;
    return true;
}

/* The group as one tensor [n, shape...]: over the read buffer when its payloads are side by
 * side (unstack copies, so Paddle never writes there), else gathered into a new block. */
static pdckpt_value *gathered(const cand *g, size_t n) {
    int64_t dims[PDCKPT_MAX_DIMS + 1] = {(int64_t)n};
    for (int32_t d = 0; d < g->n_dims; d++) dims[d + 1] = g->dims[d];
    pdckpt_value *big = NULL;
    pdckpt_error  err;
    pdckpt_status st = side_by_side(g, n)
                           ? pdckpt_tensor_new_in_buffer(NULL, g->dtype, g->n_dims + 1, dims,
                                                         g->buffer, g->data, &big, &err)
                           : pdckpt_tensor_new(NULL, g->dtype, g->n_dims + 1, dims, &big, &err);
    if (st != PDCKPT_OK) return pyn_raise(&err), NULL;
    char *dst = pdckpt_tensor_data_mut(big); /* NULL over the read buffer */
    for (size_t i = 0; dst && i < n; i++) memcpy(dst + i * g->n_bytes, g[i].data, g->n_bytes);
    return big;
}

/* ---- views: each tensor its own DenseTensor over the chunk's span of the read buffer ---- */

/* Paddle's private methods a tensor is made with (_convert.py's _views_rehome tries them once):
 * t = Tensor.__new__(Tensor); span._share_buffer_to(t) (t gets a new DenseTensor: its own
 * in-place version counter); t.get_tensor()._share_data_with(span_dense._slice(b, e)) (the
 * span's allocation at the payload's offset); ._set_dims(shape). */
typedef struct rehome {
    PyTypeObject *type;
    PyObject     *empty, *dims; /* dims: NULL when the slice's own (1-D) dims are the shape */
    /* the methods, unbound (looked up once: a pybind11 method would be bound anew each call) */
    PyObject *share, *get, *slice, *share_data, *set_dims;
    PyObject *lo, *hi; /* the last slice's bounds: a tensor's end is the next one's start */
    long long hi_at;
} rehome;

static void rehome_clear(rehome *r) {
    Py_XDECREF(r->empty);
    Py_XDECREF(r->share);
    Py_XDECREF(r->get);
    Py_XDECREF(r->slice);
    Py_XDECREF(r->share_data);
    Py_XDECREF(r->set_dims);
    Py_XDECREF(r->dims);
    Py_XDECREF(r->lo);
    Py_XDECREF(r->hi);
}

/* type.name as a plain callable taking self first (an instancemethod's function). */
static PyObject *unbound(PyObject *type, const char *name) {
    PyObject *m = PyObject_GetAttrString(type, name);
    if (m && PyInstanceMethod_Check(m)) Py_SETREF(m, Py_NewRef(PyInstanceMethod_GET_FUNCTION(m)));
    return m;
}

/* The DenseTensor methods, from the span's DenseTensor's type (every part's is the same: a
 * part of another type is refused by pybind11, and the chunk goes one by one). */
static int rehome_dense(rehome *r, PyObject *span_dense) {
    PyObject *type = (PyObject *)Py_TYPE(span_dense);
    r->slice = unbound(type, "_slice");
    r->share_data = r->slice ? unbound(type, "_share_data_with") : NULL;
    r->set_dims = r->share_data ? unbound(type, "_set_dims") : NULL;
    return r->set_dims ? 0 : -1;
}

static int rehome_init(rehome *r, const cand *g, pyn_out *out) {
    memset(r, 0, sizeof *r);
    if (!PyType_Check(out->paddle->tensor_type))
        return PyErr_SetString(PyExc_TypeError, "pdckpt: paddle.Tensor is not a type"), -1;
    r->type = (PyTypeObject *)out->paddle->tensor_type;
    r->empty = PyTuple_New(0);
    r->share = r->empty ? unbound(out->paddle->tensor_type, "_share_buffer_to") : NULL;
    r->get = r->share ? unbound(out->paddle->tensor_type, "get_tensor") : NULL;
    if (!r->get) return -1;
    if (g->n_dims == 1) return 0; /* a slice of the 1-D span has the tensor's shape */
    r->dims = PyList_New(g->n_dims);
    for (int32_t d = 0; r->dims && d < g->n_dims; d++) {
        PyObject *n = PyLong_FromLongLong(g->dims[d]);
        if (!n) return -1;
        PyList_SET_ITEM(r->dims, d, n);
    }
    return r->dims ? 0 : -1;
}

/* f(self, a) or f(self, a, b) */
static PyObject *call(PyObject *f, PyObject *self, PyObject *a, PyObject *b) {
    PyObject *args[3] = {self, a, b};
    return PyObject_Vectorcall(f, args, b ? 3 : 2, NULL);
}

/* The slice's bounds as ints: the start is the last end when the payloads follow each other. */
static int bounds(rehome *r, long long b, long long e) {
    Py_CLEAR(r->lo);
    if (r->hi && r->hi_at == b) {
        r->lo = r->hi;
        r->hi = NULL;
    } else {
        Py_CLEAR(r->hi);
        if (!(r->lo = PyLong_FromLongLong(b))) return -1;
    }
    r->hi_at = e;
    return (r->hi = PyLong_FromLongLong(e)) ? 0 : -1;
}

/* A new paddle.Tensor of elements [b, e) of `span` (whose DenseTensor is span_dense). */
static PyObject *rehomed(PyObject *span, PyObject *span_dense, long long b, long long e,
                         rehome *r) {
    PyObject *t = r->type->tp_new(r->type, r->empty, NULL);
    PyObject *ok = t ? call(r->share, span, t, NULL) : NULL;
    PyObject *dense = ok ? PyObject_CallOneArg(r->get, t) : NULL;
    Py_XDECREF(ok);
    PyObject *part =
        dense && bounds(r, b, e) == 0 ? call(r->slice, span_dense, r->lo, r->hi) : NULL;
    ok = part ? call(r->share_data, dense, part, NULL) : NULL;
    Py_XDECREF(part);
    if (ok && r->dims) Py_SETREF(ok, call(r->set_dims, dense, r->dims, NULL));
    Py_XDECREF(dense);
    if (!ok) Py_CLEAR(t);
    Py_XDECREF(ok);
    return t;
}

/* Where the chunk's payloads lie: one buffer, [*lo, *hi), each a whole number of elements from
 * *lo.  False: use the copying split. */
static bool span_of(const cand *g, size_t n, const char **lo, const char **hi, size_t *elem) {
    uint64_t count = 1;
    for (int32_t d = 0; d < g->n_dims; d++) count *= (uint64_t)g->dims[d];
    if (!count || g->n_bytes % count) return false;
    *elem = (size_t)(g->n_bytes / count);
    *lo = *hi = g->data;
    for (size_t i = 0; i < n; i++) {
        const char *d = g[i].data;
        if (g[i].buffer != g->buffer) return false;
        if (d < *lo) *lo = d;
        if (d + g[i].n_bytes > *hi) *hi = d + g[i].n_bytes;
    }
    for (size_t i = 0; i < n; i++)
        if ((size_t)((const char *)g[i].data - *lo) % *elem) return false;
    return true;
}

/* A paddle.Tensor of tensor value v (freed here: the export holds its data). */
static PyObject *paddle_of(pdckpt_value *v, pyn_out *out) {
    PyObject *capsule = pyn_paddle_capsule(v);
    pdckpt_value_free(v);
    PyObject *dense = capsule ? PyObject_CallOneArg(out->paddle->from_dlpack, capsule) : NULL;
    Py_XDECREF(capsule);
    PyObject *t = dense ? PyObject_CallFunctionObjArgs(out->paddle->tensor_type, dense,
                                                       out->paddle->place, NULL)
                        : NULL;
    Py_XDECREF(dense);
    return t;
}

/* The chunk's span of the read buffer as one paddle.Tensor (1-D, the group's dtype; no copy). */
static PyObject *span_tensor(const cand *g, const char *lo, const char *hi, size_t elem,
                             pyn_out *out) {
    int64_t       dims[1] = {(int64_t)((size_t)(hi - lo) / elem)};
    pdckpt_value *v = NULL;
    pdckpt_error  err;
    if (pdckpt_tensor_new_in_buffer(NULL, g->dtype, 1, dims, g->buffer, lo, &v, &err) != PDCKPT_OK)
        return pyn_raise(&err);
    return paddle_of(v, out);
}

/* The chunk's tensors, each over its own payload in the read buffer: nothing copied, 1 KiB of
 * W2 each where a copy Paddle allocates takes 4 KiB (its CPU allocator aligns every allocation to
 * 4 KiB); together they keep the read buffer until the last goes, as tensors made one by one do. */
static PyObject *views_of(const cand *g, size_t n, const char *lo, const char *hi, size_t elem,
                          pyn_out *out) {
    rehome    r;
    PyObject *span = rehome_init(&r, g, out) == 0 ? span_tensor(g, lo, hi, elem, out) : NULL;
    PyObject *span_dense = span ? PyObject_CallOneArg(r.get, span) : NULL;
    PyObject *list =
        span_dense && rehome_dense(&r, span_dense) == 0 ? PyList_New((Py_ssize_t)n) : NULL;
    for (size_t i = 0; list && i < n; i++) {
        long long b = (long long)((size_t)((const char *)g[i].data - lo) / elem);
        PyObject *t = rehomed(span, span_dense, b, b + (long long)(g[i].n_bytes / elem), &r);
        if (!t)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    Py_XDECREF(span_dense);
    Py_XDECREF(span);
    rehome_clear(&r);
    return list;
}

/* 1 when this Paddle allows views (Py_True, or what _convert._views_probe's callable answers: it
 * tries Paddle's private methods the first time it is asked), 0 when not, -1 on an error. */
static int views_allowed(pyn_out *out) {
    PyObject *v = out->paddle->views;
    if (!v || v == Py_None || v == Py_True) return v == Py_True;
    if (!PyCallable_Check(v)) return 0;
    PyObject *answer = PyObject_CallNoArgs(v);
    if (!answer) return -1;
    int yes = answer == Py_True;
    Py_DECREF(answer);
    return yes;
}

/* The chunk as n new tensors: views of the read buffer when this Paddle allows them, else one
 * Paddle tensor of the chunk split by paddle.unstack (copies). */
static PyObject *split_group(const cand *g, size_t n, pyn_out *out) {
    const char *lo, *hi;
    size_t      elem;
    int         views = views_allowed(out);
    if (views < 0) return NULL;
    if (views && span_of(g, n, &lo, &hi, &elem)) return views_of(g, n, lo, hi, elem, out);
    pdckpt_value *big = gathered(g, n);
    PyObject     *whole = big ? paddle_of(big, out) : NULL;
    PyObject     *parts = whole ? PyObject_CallFunction(out->paddle->split, "Oi", whole, 0) : NULL;
    Py_XDECREF(whole);
    PyObject *list = parts ? PySequence_List(parts) : NULL;
    Py_XDECREF(parts);
    if (list && PyList_GET_SIZE(list) != (Py_ssize_t)n) {
        Py_CLEAR(list);
        PyErr_SetString(PyExc_RuntimeError, "pdckpt: paddle.unstack gave an unexpected count");
    }
    return list;
}

/* The made entry of value v with no tensor yet (several when one value sits under two keys). */
static pyn_made *made_slot(pyn_batch *b, const pdckpt_value *v) {
    pyn_made  key = {v, NULL, 0};
    pyn_made *m = bsearch(&key, b->made, b->n_made, sizeof key, cmp_made);
    while (m && m > b->made && m[-1].v == v) m--;
    for (; m && m < b->made + b->n_made && m->v == v; m++)
        if (!m->t) return m;
    return NULL;
}

/* Makes chunk k's tensors.  A chunk Paddle would not split (another version's kernels) is left
 * to the pass, one by one; only running out of memory fails the load. */
static int make_chunk(pyn_batch *b, size_t k, pyn_out *out) {
    const cand *g = b->c + b->chunks[k].first;
    size_t      n = b->chunks[k].n;
    b->chunks[k].done = true;
    PyObject *list = split_group(g, n, out);
    if (!list && !PyErr_ExceptionMatches(PyExc_MemoryError)) {
        PyErr_Clear();
        return 0;
    }
    if (!list) return -1;
    for (size_t i = 0; i < n; i++) {
        pyn_made *m = made_slot(b, g[i].v);
        if (m) m->t = Py_NewRef(PyList_GET_ITEM(list, (Py_ssize_t)i));
    }
    Py_DECREF(list);
    return 0;
}

/* The group in chunks of about CHUNK_BYTES (a tail under BATCH_MIN_COUNT joins the last), so a
 * gathered group never costs more than a chunk beside the tensors made from it.  b->chunks has
 * room for every chunk (at most one per BATCH_MIN_COUNT candidates). */
static void plan_group(pyn_batch *b, size_t first, size_t n) {
    const cand *g = b->c + first;
    size_t      per = CHUNK_BYTES / (g->n_bytes ? (size_t)g->n_bytes : 1);
    if (per < BATCH_MIN_COUNT) per = BATCH_MIN_COUNT;
    for (size_t i = 0, m; i < n; i += m) {
        m = n - i < per + BATCH_MIN_COUNT ? n - i : per;
        for (size_t j = 0; j < m; j++)
            b->made[b->n_made++] = (pyn_made){g[i + j].v, NULL, b->n_chunks};
        b->chunks[b->n_chunks++] = (chunk){first + i, m, false};
    }
}

/* qsort unless already in order (a state dict's tensors and their values usually are). */
static void sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
    const char *b = base;
    size_t      k = 1;
    while (k < n && cmp(b + (k - 1) * size, b + k * size) < 0) k++;
    if (k < n) qsort(base, n, size, cmp);
}

static size_t collect(const pdckpt_value *root, const pyn_out *out, cand *c) {
    size_t m = 0;
    for (size_t i = 0, n = pdckpt_value_len(root); i < n; i++) {
        const pdckpt_value *v = pdckpt_value_at(root, i);
        if (candidate(pdckpt_dict_key_at(root, i), v, out, &c[m])) {
            c[m].order = i;
            m++;
        }
    }
    return m;
}

/* The chunks of the groups of at least BATCH_MIN_COUNT among the m sorted candidates. */
static int plan(pyn_batch *b, size_t m) {
    b->chunks = malloc((m / BATCH_MIN_COUNT + 1) * sizeof *b->chunks);
    b->made = malloc((m ? m : 1) * sizeof *b->made);
    if (!b->chunks || !b->made) return PyErr_NoMemory(), -1;
    for (size_t i = 0, j; i < m; i = j) {
        for (j = i + 1; j < m && cmp_dims(&b->c[i], &b->c[j]) == 0;) j++;
        if (j - i >= BATCH_MIN_COUNT) plan_group(b, i, j - i);
    }
    sort(b->made, b->n_made, sizeof *b->made, cmp_made);
    return 0;
}

int pyn_paddle_batch(const pdckpt_value *root, pyn_out *out) {
    pyn_paddle *p = out->paddle;
    size_t      n = pdckpt_value_len(root);
    if (!p || p->arrays || !p->split || p->split == Py_None || out->plain ||
        pdckpt_value_kind(root) != PDCKPT_KIND_DICT || n < BATCH_MIN_COUNT)
        return 0;
    pyn_batch *b = p->batch = calloc(1, sizeof *b);
    if (!b || !(b->c = malloc(n * sizeof *b->c))) return PyErr_NoMemory(), -1;
    size_t m = collect(root, out, b->c);
    sort(b->c, m, sizeof *b->c, cmp_cand);
    return plan(b, m);
}

PyObject *pyn_paddle_take(const pdckpt_value *v, pyn_out *out) {
    pyn_batch *b = out->paddle->batch;
    pyn_made   key = {v, NULL, 0};
    pyn_made  *m = b && b->n_made ? bsearch(&key, b->made, b->n_made, sizeof key, cmp_made) : NULL;
    if (m && !m->t && !b->chunks[m->chunk].done && make_chunk(b, m->chunk, out) < 0) return NULL;
    while (m && m > b->made && m[-1].v == v) m--; /* any slot of v that holds a tensor */
    for (; m && m < b->made + b->n_made && m->v == v; m++)
        if (m->t) {
            PyObject *t = m->t;
            m->t = NULL; /* one place each, as before */
            return t;
        }
    return NULL;
}

bool pyn_paddle_settled(const pdckpt_value *v, const pyn_out *out) {
    const pyn_batch *b = out->paddle->batch;
    pyn_made         key = {v, NULL, 0};
    const pyn_made  *m =
        b && b->n_made ? bsearch(&key, b->made, b->n_made, sizeof key, cmp_made) : NULL;
    return !m || b->chunks[m->chunk].done;
}

void pyn_paddle_batch_clear(pyn_paddle *p) {
    pyn_batch *b = p->batch;
    if (!b) return;
    for (size_t i = 0; i < b->n_made; i++) Py_XDECREF(b->made[i].t);
    free(b->made);
    free(b->chunks);
    free(b->c);
    free(b);
    p->batch = NULL;
}
