/* SPDX-License-Identifier: Apache-2.0 */
/*
 * py_sharded.c — the bindings pdckpt.distributed drives a sharded save and load with (the C
 * library's step-by-step API, pdckpt.h "Sharded saves over the caller's own collectives").  The
 * collectives themselves are Python's (Paddle's process group); here every step is one library
 * call with the GIL released around its file I/O:
 *   sharded_stage(shards, paddle)          this rank's pieces, borrowed from their tensors; an
 *                                          item (key, tensor, global shape, offset) or, for a
 *                                          flattened run, (..., box shape, (begin, end))
 *   sharded_describe(stage) -> bytes       for the coordinator
 *   sharded_plan(dir, [bytes], id, format, durable, [file number]) -> plan; sharded_plan_id(plan);
 *   sharded_assignments(plan) -> [bytes]; sharded_commit(plan, keep_last)
 *   sharded_write(assignment, dir, stage, durable) -> file name or None
 *   async_saver(format, durable); sharded_write_async(saver, assignment, dir, stage);
 *   async_wait(saver)                      the background write (pdckpt_async_saver)
 *   sharded_keys(dir, id) -> (id, [(key, dtype, global shape)])
 *   sharded_load(dir, id, [(key, offset, shape)], mmap) -> Tree
 */
#include "py_native.h"

#include <stdlib.h>
#include <string.h>

#define STAGE_CAPSULE "pdckpt._sharded_stage"
#define PLAN_CAPSULE  "pdckpt._sharded_plan"
#define SAVER_CAPSULE "pdckpt._sharded_saver"

/* ---- this rank's pieces ---- */

typedef struct stage {
    pyn_pins          pins;
    pdckpt_shard     *shards;
    pdckpt_shard_run *runs; /* runs[i].flattened for a flattened piece */
    pdckpt_value    **tensors;
    int64_t          *dims; /* STAGE_DIMS per shard: global shape, offset, box shape */
    size_t            n;
} stage;

#define STAGE_DIMS (3 * PDCKPT_MAX_DIMS)

static void stage_release(stage *s) {
    for (size_t i = 0; s->tensors && i < s->n; i++) pdckpt_value_free(s->tensors[i]);
    PyMem_Free(s->tensors);
    PyMem_Free(s->shards);
    PyMem_Free(s->runs);
    PyMem_Free(s->dims);
    pyn_pins_release(&s->pins);
    PyMem_Free(s);
}

static void stage_free(PyObject *capsule) {
    stage *s = PyCapsule_GetPointer(capsule, STAGE_CAPSULE);
    if (s) stage_release(s);
}

/* n ints of `seq` into out (exactly n_dims of them). */
static int ints_arg(PyObject *seq, int32_t n_dims, int64_t *out, const char *what) {
    PyObject *fast = PySequence_Fast(seq, "pdckpt: expected a sequence of ints");
    if (!fast) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    int        rc = n == n_dims ? 0 : -1;
    if (rc < 0)
        PyErr_Format(PyExc_ValueError, "pdckpt: %s has %zd entries, expected %d (the dims)", what,
                     n, (int)n_dims);
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        out[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(fast, i));
        if (out[i] == -1 && PyErr_Occurred()) rc = -1;
    }
    Py_DECREF(fast);
    return rc;
}

/* A flattened run: the box shape and (begin, end); the dims are the box's, not the tensor's. */
static int stage_run(stage *s, size_t i, PyObject *box, PyObject *range) {
    Py_ssize_t n = PyObject_Length(box);
    if (n < 0) return -1;
    if (n > PDCKPT_MAX_DIMS) return PyErr_SetString(PyExc_ValueError, "pdckpt: too many dims"), -1;
    pdckpt_shard_run *r = &s->runs[i];
    r->flattened = true;
    r->n_dims = (int32_t)n;
    r->box_shape = s->dims + i * STAGE_DIMS + 2 * PDCKPT_MAX_DIMS;
    long long begin, end;
    if (!PyArg_ParseTuple(range, "LL", &begin, &end)) return -1;
    r->begin = begin, r->end = end;
    return ints_arg(box, r->n_dims, (int64_t *)r->box_shape, "a box shape");
}

/* One (key, tensor, global_shape, global_offset[, box_shape, (begin, end)]) item into shard i. */
static int stage_item(stage *s, size_t i, PyObject *item) {
    PyObject *key, *tensor, *global, *offset, *box = NULL, *range = NULL;
    if (!PyArg_ParseTuple(item, "UOOO|OO", &key, &tensor, &global, &offset, &box, &range))
        return -1;
    const char *k = PyUnicode_AsUTF8(key);
    if (!k || PyList_Append(s->pins.keep, key) < 0) return -1;
    pdckpt_value *t = pyn_to_tree(tensor, &s->pins);
    if (!t) return -1;
    s->tensors[i] = t;
    pdckpt_tensor_view v;
    if (!pdckpt_tensor_get(t, &v))
        return PyErr_Format(PyExc_TypeError, "pdckpt: the value of '%s' is not a tensor", k), -1;
    if (box && range && stage_run(s, i, box, range) < 0) return -1;
    int32_t  n_dims = s->runs[i].flattened ? s->runs[i].n_dims : v.n_dims;
    int64_t *g = s->dims + i * STAGE_DIMS, *o = g + PDCKPT_MAX_DIMS;
    if (ints_arg(global, n_dims, g, "a global shape") < 0 ||
        ints_arg(offset, n_dims, o, "a global offset") < 0)
        return -1;
    s->shards[i] = (pdckpt_shard){k, t, g, o};
    return 0;
}

/* sharded_stage(shards, paddle=None): paddle as save()'s (paddle.Tensor, {dtype: name}[, DLPack
 * exports trusted]). */
static PyObject *sharded_stage(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *items, *paddle = Py_None;
    if (!PyArg_ParseTuple(args, "O|O", &items, &paddle)) return NULL;
    PyObject *fast = PySequence_Fast(items, "pdckpt: expected a sequence of shards");
    if (!fast) return NULL;
    size_t n = (size_t)PySequence_Fast_GET_SIZE(fast);
    stage *s = PyMem_Calloc(1, sizeof *s);
    if (!s || pyn_pins_init(&s->pins) < 0) {
        PyMem_Free(s);
        Py_DECREF(fast);
        return PyErr_NoMemory();
    }
    PyObject *capsule = PyCapsule_New(s, STAGE_CAPSULE, stage_free);
    if (!capsule) {
        stage_release(s);
        Py_DECREF(fast);
        return NULL;
    }
    s->shards = PyMem_Calloc(n ? n : 1, sizeof *s->shards);
    s->runs = PyMem_Calloc(n ? n : 1, sizeof *s->runs);
    s->tensors = PyMem_Calloc(n ? n : 1, sizeof *s->tensors);
    s->dims = PyMem_Calloc((n ? n : 1) * STAGE_DIMS, sizeof *s->dims);
    s->n = n;
    int rc = s->shards && s->runs && s->tensors && s->dims ? 0 : (PyErr_NoMemory(), -1);
    if (rc == 0 && paddle != Py_None)
        rc = PyArg_ParseTuple(paddle, "OO!|p", &s->pins.paddle_type, &PyDict_Type,
                              &s->pins.paddle_dtypes, &s->pins.paddle_dlpack)
                 ? 0
                 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = stage_item(s, i, PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)i));
    Py_DECREF(fast);
    if (rc < 0) Py_CLEAR(capsule);
    return capsule;
}

static stage *stage_of(PyObject *capsule) {
    return PyCapsule_GetPointer(capsule, STAGE_CAPSULE);
}

/* Library-owned bytes as a Python bytes object (and freed). */
static PyObject *take_bytes(uint8_t *data, size_t len) {
    PyObject *b = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)len);
    pdckpt_free(NULL, data, len);
    return b;
}

static PyObject *sharded_describe(PyObject *self, PyObject *capsule) {
    (void)self;
    stage *s = stage_of(capsule);
    if (!s) return NULL;
    uint8_t     *data = NULL;
    size_t       len = 0;
    pdckpt_error err;
    if (pdckpt_sharded_describe_runs(s->shards, s->runs, s->n, &data, &len, &err) != PDCKPT_OK)
        return pyn_raise(&err);
    return take_bytes(data, len);
}

/* ---- the plan, on the coordinator ---- */

static void plan_free(PyObject *capsule) {
    pdckpt_sharded_plan_free(PyCapsule_GetPointer(capsule, PLAN_CAPSULE));
}

static int format_of(PyObject *name, pdckpt_format *out) {
    *out = PDCKPT_FORMAT_AUTO;
    if (name == Py_None) return 0;
    const char *s = PyUnicode_AsUTF8(name);
    if (!s) return -1;
    bool known = false;
    *out = pdckpt_format_from_name(s, &known);
    if (known) return 0;
    PyErr_Format(PyExc_ValueError, "pdckpt: unknown format '%s'", s);
    return -1;
}

/* The descriptions as pointers into the bytes objects of `fast` (which the caller holds). */
static int descriptions_arg(PyObject *fast, const uint8_t ***ptrs, size_t **lens) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    *ptrs = PyMem_Calloc((size_t)n + 1, sizeof **ptrs);
    *lens = PyMem_Calloc((size_t)n + 1, sizeof **lens);
    if (!*ptrs || !*lens) return PyErr_NoMemory(), -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *b = PySequence_Fast_GET_ITEM(fast, i);
        if (!PyBytes_Check(b)) return PyErr_SetString(PyExc_TypeError, "expected bytes"), -1;
        (*ptrs)[i] = (const uint8_t *)PyBytes_AS_STRING(b);
        (*lens)[i] = (size_t)PyBytes_GET_SIZE(b);
    }
    return 0;
}

/* [int] -> int64 array (PyMem; the caller frees), or NULL with an exception set. */
static int64_t *numbers_arg(PyObject *numbers, Py_ssize_t want) {
    PyObject *fast = PySequence_Fast(numbers, "pdckpt: expected a list of file numbers");
    int64_t  *out = NULL;
    if (fast && PySequence_Fast_GET_SIZE(fast) != want)
        PyErr_SetString(PyExc_ValueError, "pdckpt: one file number per description expected");
    else if (fast && (out = PyMem_Calloc((size_t)want + 1, sizeof *out)) != NULL)
        for (Py_ssize_t i = 0; i < want && out; i++)
            if ((out[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(fast, i))) == -1 &&
                PyErr_Occurred())
                out = (PyMem_Free(out), NULL);
    Py_XDECREF(fast);
    return out;
}

/* sharded_plan(dir, descriptions, unique_id, format, durable, file_numbers) -> plan capsule */
static PyObject *sharded_plan(PyObject *self, PyObject *args) {
    (void)self;
    PyObject     *dir_fs, *descs, *fmt, *nums;
    long long     id;
    int           durable;
    pdckpt_format format;
    if (!PyArg_ParseTuple(args, "O&OLOpO", PyUnicode_FSConverter, &dir_fs, &descs, &id, &fmt,
                          &durable, &nums))
        return NULL;
    PyObject       *fast = PySequence_Fast(descs, "pdckpt: expected a list of bytes");
    const uint8_t **ptrs = NULL;
    size_t         *lens = NULL;
    int64_t        *numbers = fast ? numbers_arg(nums, PySequence_Fast_GET_SIZE(fast)) : NULL;
    PyObject       *result = NULL;
    if (numbers && format_of(fmt, &format) == 0 && descriptions_arg(fast, &ptrs, &lens) == 0) {
        const char            *dir = PyBytes_AS_STRING(dir_fs);
        int                    n = (int)PySequence_Fast_GET_SIZE(fast);
        pdckpt_sharded_plan   *plan = NULL;
        pdckpt_error           err;
        pdckpt_status          st;
        Py_BEGIN_ALLOW_THREADS st = pdckpt_sharded_plan_new_numbered(dir, id, format, durable, ptrs,
                                                                     lens, n, numbers, &plan, &err);
        Py_END_ALLOW_THREADS if (st != PDCKPT_OK) pyn_raise(&err);
        else if (!(result = PyCapsule_New(plan, PLAN_CAPSULE, plan_free)))
            pdckpt_sharded_plan_free(plan);
    }
    PyMem_Free(numbers);
    PyMem_Free(ptrs);
    PyMem_Free(lens);
    Py_XDECREF(fast);
    Py_DECREF(dir_fs);
    return result;
}

static PyObject *sharded_plan_id(PyObject *self, PyObject *capsule) {
    (void)self;
    pdckpt_sharded_plan *plan = PyCapsule_GetPointer(capsule, PLAN_CAPSULE);
    return plan ? PyLong_FromLongLong(pdckpt_sharded_plan_id(plan)) : NULL;
}

/* sharded_assignments(plan, n_ranks) -> [bytes for rank 0, 1, ...] */
static PyObject *sharded_assignments(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *capsule;
    int       n;
    if (!PyArg_ParseTuple(args, "Oi", &capsule, &n)) return NULL;
    pdckpt_sharded_plan *plan = PyCapsule_GetPointer(capsule, PLAN_CAPSULE);
    PyObject            *list = plan ? PyList_New(n) : NULL;
    for (int r = 0; list && r < n; r++) {
        uint8_t     *data;
        size_t       len;
        pdckpt_error err;
        PyObject    *b = pdckpt_sharded_plan_assignment(plan, r, &data, &len, &err) == PDCKPT_OK
                             ? take_bytes(data, len)
                             : pyn_raise(&err);
        if (!b)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, r, b);
    }
    return list;
}

static PyObject *sharded_commit(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *capsule;
    int       keep_last;
    if (!PyArg_ParseTuple(args, "Oi", &capsule, &keep_last)) return NULL;
    pdckpt_sharded_plan *plan = PyCapsule_GetPointer(capsule, PLAN_CAPSULE);
    if (!plan) return NULL;
    pdckpt_error           err;
    pdckpt_status          st;
    Py_BEGIN_ALLOW_THREADS st = pdckpt_sharded_plan_commit(plan, keep_last, &err);
    Py_END_ALLOW_THREADS if (st != PDCKPT_OK) return pyn_raise(&err);
    Py_RETURN_NONE;
}

/* ---- writing this rank's data file ---- */

/* The file name (after the last '/') as str, or None when nothing is written. */
static PyObject *written_name(const pdckpt_value *tree, const char *path) {
    if (pdckpt_value_len(tree) == 0) Py_RETURN_NONE;
    const char *slash = strrchr(path, '/');
    return PyUnicode_DecodeFSDefault(slash ? slash + 1 : path);
}

/* sharded_write(assignment, dir, stage, durable) -> file name or None */
static PyObject *sharded_write(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer a;
    PyObject *dir_fs, *capsule, *result = NULL;
    int       durable;
    if (!PyArg_ParseTuple(args, "y*O&Op", &a, PyUnicode_FSConverter, &dir_fs, &capsule, &durable))
        return NULL;
    stage        *s = stage_of(capsule);
    pdckpt_value *tree = NULL;
    char          path[4200];
    pdckpt_error  err;
    pdckpt_status st = PDCKPT_OK;
    if (s) {
        pdckpt_save_options o = PDCKPT_SAVE_OPTIONS_INIT;
        o.durable = durable;
        Py_BEGIN_ALLOW_THREADS st = pdckpt_sharded_data_file(a.buf, (size_t)a.len, s->shards, s->n,
                                                             PyBytes_AS_STRING(dir_fs), &tree, path,
                                                             sizeof path, &o.format, &err);
        if (st == PDCKPT_OK && pdckpt_value_len(tree) > 0)
            st = pdckpt_save_file(tree, path, &o, &err);
        Py_END_ALLOW_THREADS if (st != PDCKPT_OK) pyn_raise(&err);
        else result = written_name(tree, path);
    }
    pdckpt_value_free(tree);
    PyBuffer_Release(&a);
    Py_DECREF(dir_fs);
    return result;
}

typedef struct saver {
    pdckpt_async_saver *saver;
    pdckpt_format       format;
} saver;

static void saver_free(PyObject *capsule) {
    saver *s = PyCapsule_GetPointer(capsule, SAVER_CAPSULE);
    if (!s) return;
    Py_BEGIN_ALLOW_THREADS pdckpt_async_saver_free(s->saver); /* waits for its write */
    Py_END_ALLOW_THREADS   PyMem_Free(s);
}

/* async_saver(format, durable) -> a background saver for data files of that format */
static PyObject *async_saver(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *fmt;
    int       durable;
    if (!PyArg_ParseTuple(args, "Op", &fmt, &durable)) return NULL;
    pdckpt_save_options o = PDCKPT_SAVE_OPTIONS_INIT;
    if (format_of(fmt, &o.format) < 0) return NULL;
    o.durable = durable;
    saver *s = PyMem_Calloc(1, sizeof *s);
    if (!s) return PyErr_NoMemory();
    s->format = o.format;
    pdckpt_error err;
    if (pdckpt_async_saver_new(&o, &s->saver, &err) != PDCKPT_OK) {
        PyMem_Free(s);
        return pyn_raise(&err);
    }
    PyObject *capsule = PyCapsule_New(s, SAVER_CAPSULE, saver_free);
    if (!capsule) pdckpt_async_saver_free(s->saver), PyMem_Free(s);
    return capsule;
}

/* The snapshot is taken before this returns (the tensors may change afterwards). */
static pdckpt_status start_async(saver *sv, const pdckpt_value *tree, const char *path,
                                 pdckpt_format format, pdckpt_error *err) {
    if (format != sv->format) {
        memset(err, 0, sizeof *err);
        err->status = PDCKPT_ERR_ARGUMENT;
        snprintf(err->message, sizeof err->message, "the saver writes %s, the plan asks for %s",
                 pdckpt_format_name(sv->format), pdckpt_format_name(format));
        return err->status;
    }
    if (pdckpt_value_len(tree) == 0) return PDCKPT_OK;
    return pdckpt_async_save(sv->saver, tree, path, NULL, NULL, err);
}

/* sharded_write_async(saver, assignment, dir, stage) -> file name or None */
static PyObject *sharded_write_async(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer a;
    PyObject *sv_capsule, *dir_fs, *capsule, *result = NULL;
    if (!PyArg_ParseTuple(args, "Oy*O&O", &sv_capsule, &a, PyUnicode_FSConverter, &dir_fs,
                          &capsule))
        return NULL;
    saver        *sv = PyCapsule_GetPointer(sv_capsule, SAVER_CAPSULE);
    stage        *s = sv ? stage_of(capsule) : NULL;
    pdckpt_value *tree = NULL;
    char          path[4200];
    pdckpt_format format;
    pdckpt_error  err;
    pdckpt_status st;
    if (s) {
        Py_BEGIN_ALLOW_THREADS st = pdckpt_sharded_data_file(a.buf, (size_t)a.len, s->shards, s->n,
                                                             PyBytes_AS_STRING(dir_fs), &tree, path,
                                                             sizeof path, &format, &err);
        if (st == PDCKPT_OK) st = start_async(sv, tree, path, format, &err);
        Py_END_ALLOW_THREADS if (st != PDCKPT_OK) pyn_raise(&err);
        else result = written_name(tree, path);
    }
    pdckpt_value_free(tree);
    PyBuffer_Release(&a);
    Py_DECREF(dir_fs);
    return result;
}

static PyObject *async_wait(PyObject *self, PyObject *capsule) {
    (void)self;
    saver *sv = PyCapsule_GetPointer(capsule, SAVER_CAPSULE);
    if (!sv) return NULL;
    pdckpt_error           err;
    pdckpt_status          st;
    Py_BEGIN_ALLOW_THREADS st = pdckpt_async_wait(sv->saver, &err);
    Py_END_ALLOW_THREADS if (st != PDCKPT_OK) return pyn_raise(&err);
    Py_RETURN_NONE;
}

/* ---- loading ---- */

static PyObject *int_tuple(const pdckpt_value *v) {
    size_t    n = pdckpt_value_len(v);
    PyObject *t = PyTuple_New((Py_ssize_t)n);
    for (size_t i = 0; t && i < n; i++) {
        int64_t   x = 0;
        PyObject *o =
            pdckpt_value_get_int(pdckpt_value_at(v, i), &x) ? PyLong_FromLongLong(x) : NULL;
        if (!o) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "pdckpt: bad metadata");
            Py_CLEAR(t);
        } else {
            PyTuple_SET_ITEM(t, (Py_ssize_t)i, o);
        }
    }
    return t;
}

/* (key, dtype, global shape) of every key (pdckpt_sharded_read_keys). */
static PyObject *key_list(const pdckpt_value *keys) {
    size_t    n = pdckpt_value_len(keys);
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        const char         *key = pdckpt_value_get_string(pdckpt_dict_key_at(keys, i), NULL);
        const pdckpt_value *entry = pdckpt_value_at(keys, i);
        const char         *dtype = pdckpt_value_get_string(pdckpt_dict_get(entry, "dtype"), NULL);
        PyObject           *shape = int_tuple(pdckpt_dict_get(entry, "global_shape"));
        PyObject *item = key && dtype && shape ? Py_BuildValue("(ssO)", key, dtype, shape) : NULL;
        Py_XDECREF(shape);
        if (!item) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "pdckpt: bad metadata");
            Py_CLEAR(list);
        } else {
            PyList_SET_ITEM(list, (Py_ssize_t)i, item);
        }
    }
    return list;
}

/* sharded_keys(dir, id) -> (id, [(key, dtype, global_shape)]); id -1: the newest complete */
static PyObject *sharded_keys(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *dir_fs;
    long long id;
    if (!PyArg_ParseTuple(args, "O&L", PyUnicode_FSConverter, &dir_fs, &id)) return NULL;
    pdckpt_value          *meta = NULL;
    int64_t                got = -1;
    pdckpt_error           err;
    pdckpt_status          st;
    Py_BEGIN_ALLOW_THREADS st =
        pdckpt_sharded_read_keys(PyBytes_AS_STRING(dir_fs), id, &meta, &got, &err);
    Py_END_ALLOW_THREADS Py_DECREF(dir_fs);
    if (st != PDCKPT_OK) return pyn_raise(&err);
    PyObject *keys = key_list(meta);
    pdckpt_value_free(meta);
    if (!keys) return NULL;
    PyObject *result = Py_BuildValue("(LN)", (long long)got, keys);
    return result;
}

typedef struct requests {
    pdckpt_shard_request *items;
    int64_t              *dims; /* 2 * PDCKPT_MAX_DIMS per request: offset, shape */
    size_t                n;
} requests;

static int request_item(requests *q, size_t i, PyObject *item) {
    PyObject *key, *offset, *shape;
    if (!PyArg_ParseTuple(item, "UOO", &key, &offset, &shape)) return -1;
    const char *k = PyUnicode_AsUTF8(key);
    Py_ssize_t  n = k ? PyObject_Length(shape) : -1;
    if (n < 0) return -1;
    if (n > PDCKPT_MAX_DIMS) return PyErr_SetString(PyExc_ValueError, "pdckpt: too many dims"), -1;
    int64_t *o = q->dims + i * 2 * PDCKPT_MAX_DIMS, *s = o + PDCKPT_MAX_DIMS;
    if (ints_arg(offset, (int32_t)n, o, "an offset") < 0 ||
        ints_arg(shape, (int32_t)n, s, "a shape") < 0)
        return -1;
    q->items[i] = (pdckpt_shard_request){k, (int32_t)n, o, s};
    return 0;
}

/* sharded_load(dir, id, [(key, offset, shape)], mmap) -> Tree of {key: tensor} */
static PyObject *sharded_load(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *dir_fs, *items;
    long long id;
    int       mmap;
    if (!PyArg_ParseTuple(args, "O&LOp", PyUnicode_FSConverter, &dir_fs, &id, &items, &mmap))
        return NULL;
    PyObject *fast = PySequence_Fast(items, "pdckpt: expected a list of requests");
    requests  q = {0};
    PyObject *result = NULL;
    q.n = fast ? (size_t)PySequence_Fast_GET_SIZE(fast) : 0;
    q.items = PyMem_Calloc(q.n + 1, sizeof *q.items);
    q.dims = PyMem_Calloc((q.n + 1) * 2 * PDCKPT_MAX_DIMS, sizeof *q.dims);
    int rc = fast && q.items && q.dims ? 0 : -1;
    if (fast && rc < 0) PyErr_NoMemory();
    for (size_t i = 0; rc == 0 && i < q.n; i++)
        rc = request_item(&q, i, PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)i));
    if (rc == 0) {
        pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
        lo.zero_copy = mmap;
        pdckpt_value          *root = NULL;
        pdckpt_error           err;
        pdckpt_status          st;
        Py_BEGIN_ALLOW_THREADS st =
            q.n ? pdckpt_sharded_load(PyBytes_AS_STRING(dir_fs), id, q.items, q.n, &lo, &root, &err)
                : PDCKPT_OK;
        Py_END_ALLOW_THREADS if (st != PDCKPT_OK) pyn_raise(&err);
        else if (!root && !(root = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT)))
            PyErr_NoMemory();
        else result = pyn_tree_new(root, NULL, PDCKPT_FORMAT_DISTCP, !mmap);
    }
    PyMem_Free(q.items);
    PyMem_Free(q.dims);
    Py_XDECREF(fast);
    Py_DECREF(dir_fs);
    return result;
}

static PyMethodDef sharded_methods[] = {
    {"sharded_stage", sharded_stage, METH_VARARGS, "this rank's pieces, borrowed"},
    {"sharded_describe", sharded_describe, METH_O, "the pieces as bytes for the coordinator"},
    {"sharded_plan", sharded_plan, METH_VARARGS, "the coordinator's plan of a sharded save"},
    {"sharded_plan_id", sharded_plan_id, METH_O, "the checkpoint id a plan saves"},
    {"sharded_assignments", sharded_assignments, METH_VARARGS, "what each rank writes"},
    {"sharded_commit", sharded_commit, METH_VARARGS, "writes the metadata: the commit"},
    {"sharded_write", sharded_write, METH_VARARGS, "writes this rank's data file"},
    {"async_saver", async_saver, METH_VARARGS, "a background saver of data files"},
    {"sharded_write_async", sharded_write_async, METH_VARARGS, "snapshots, writes in background"},
    {"async_wait", async_wait, METH_O, "waits for the background write"},
    {"sharded_keys", sharded_keys, METH_VARARGS, "(id, [(key, dtype, global shape)])"},
    {"sharded_load", sharded_load, METH_VARARGS, "loads boxes of a sharded checkpoint"},
    {NULL, NULL, 0, NULL},
};

int pyn_sharded_register(PyObject *module) {
    return PyModule_AddFunctions(module, sharded_methods);
}
