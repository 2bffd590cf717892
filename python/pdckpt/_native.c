/* SPDX-License-Identifier: Apache-2.0 */
/*
 * _native.c — the pdckpt._native extension module: entry points save / load / format helpers,
 * and pdckpt_error -> exception translation.  The pure-Python facade (__init__.py) registers its
 * exception classes, leaf hook, OpaqueObject class, NumPy dtype lookup and numpy.ndarray through
 * _configure().
 * The GIL is released around file I/O; saving borrows tensor bytes from pinned buffer exports.
 */
#include "py_native.h"

#include <stdio.h>
#include <string.h>

pyn_config pyn;

static int set_attr(PyObject *exc, const char *name, PyObject *value) {
    if (!value) return -1;
    int rc = PyObject_SetAttrString(exc, name, value);
    Py_DECREF(value);
    return rc;
}

static PyObject *none_or(bool cond, PyObject *value) {
    if (cond) return value;
    Py_XDECREF(value);
    Py_RETURN_NONE;
}

PyObject *pyn_raise(const pdckpt_error *err) {
    char line[1200];
    pdckpt_error_format(err, line, sizeof line);
    PyObject *key = PyLong_FromLong((long)err->status);
    PyObject *cls = key && pyn.errors ? PyDict_GetItemWithError(pyn.errors, key) : NULL;
    Py_XDECREF(key);
    if (!cls) cls = pyn.base_error ? pyn.base_error : PyExc_RuntimeError;
    PyObject *text = PyUnicode_DecodeUTF8(line, (Py_ssize_t)strlen(line), "surrogateescape");
    PyObject *exc = text ? PyObject_CallOneArg(cls, text) : NULL;
    Py_XDECREF(text);
    if (!exc) return NULL;
    if (set_attr(exc, "status", PyLong_FromLong((long)err->status)) < 0 ||
        set_attr(exc, "status_name", PyUnicode_FromString(pdckpt_status_name(err->status))) < 0 ||
        set_attr(exc, "message",
                 PyUnicode_DecodeUTF8(err->message, (Py_ssize_t)strlen(err->message), "replace")) <
            0 ||
        set_attr(exc, "source",
                 none_or(err->source[0] != 0, PyUnicode_DecodeFSDefault(err->source))) < 0 ||
        set_attr(exc, "offset", none_or(err->offset >= 0, PyLong_FromLongLong(err->offset))) < 0 ||
        set_attr(exc, "errno", none_or(err->sys_errno != 0, PyLong_FromLong(err->sys_errno))) < 0) {
        Py_DECREF(exc);
        return NULL;
    }
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

PyObject *pyn_raise_status(pdckpt_status status, const char *message) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    err.status = status;
    snprintf(err.message, sizeof err.message, "%s", message);
    return pyn_raise(&err);
}

static PyObject *configure(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *errors, *base, *hook, *opaque, *numpy_dtype, *ndarray;
    if (!PyArg_ParseTuple(args, "O!OOOOO!", &PyDict_Type, &errors, &base, &hook, &opaque,
                          &numpy_dtype, &PyType_Type, &ndarray))
        return NULL;
    Py_XSETREF(pyn.errors, Py_NewRef(errors));
    Py_XSETREF(pyn.base_error, Py_NewRef(base));
    Py_XSETREF(pyn.leaf_hook, Py_NewRef(hook));
    Py_XSETREF(pyn.opaque, Py_NewRef(opaque));
    Py_XSETREF(pyn.numpy_dtype, Py_NewRef(numpy_dtype));
    Py_XSETREF(pyn.ndarray, Py_NewRef(ndarray));
    Py_RETURN_NONE;
}

static int format_arg(PyObject *name, pdckpt_format *out) {
    *out = PDCKPT_FORMAT_AUTO;
    if (name == Py_None) return 0;
    const char *s = PyUnicode_AsUTF8(name);
    if (!s) return -1;
    bool known = false;
    *out = pdckpt_format_from_name(s, &known);
    if (known) return 0;
    PyErr_Format(PyExc_ValueError, "pdckpt: unknown format %R", name);
    return -1;
}

/* The bytes of one write() call: a buffer exporter that counts its exports, so a write() that
 * kept a view of them (even a slice of the memoryview it was given) is caught. */
typedef struct {
    PyObject_HEAD const char *data;
    Py_ssize_t                len;
    Py_ssize_t                exports;
} Chunk;

static int chunk_getbuffer(Chunk *c, Py_buffer *view, int flags) {
    if (!c->data) return PyErr_SetString(PyExc_BufferError, "pdckpt: the write is over"), -1;
    if (PyBuffer_FillInfo(view, (PyObject *)c, (void *)c->data, c->len, 1, flags) < 0) return -1;
    c->exports++;
    return 0;
}

static void chunk_releasebuffer(Chunk *c, Py_buffer *view) {
    (void)view;
    c->exports--;
}

static PyBufferProcs chunk_as_buffer = {(getbufferproc)chunk_getbuffer,
                                        (releasebufferproc)chunk_releasebuffer};

static PyTypeObject Chunk_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pdckpt._native._Chunk",
    .tp_basicsize = sizeof(Chunk),
    .tp_as_buffer = &chunk_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "bytes lent to one write() call",
};

/* Passes `len` bytes at `data` to `write` as a memoryview, released after the call: io's write()
 * may use its argument only during the call, and the memory is pdckpt's (or a tensor's) again
 * after it.  A write() that kept a view of it fails the save (BufferError) rather than quietly
 * keep a view of memory about to be reused. */
static Py_ssize_t write_chunk(PyObject *write, const char *data, size_t len) {
    Chunk *c = PyObject_New(Chunk, &Chunk_Type);
    if (!c) return -1;
    c->data = data;
    c->len = (Py_ssize_t)len;
    c->exports = 0;
    PyObject *mv = PyMemoryView_FromObject((PyObject *)c);
    PyObject *n = mv ? PyObject_CallOneArg(write, mv) : NULL;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb); /* release() must run with no exception pending */
    PyObject *released = mv ? PyObject_CallMethod(mv, "release", NULL) : NULL;
    PyErr_Clear();
    PyErr_Restore(type, value, tb);
    Py_XDECREF(released);
    Py_XDECREF(mv);
    bool kept = c->exports != 0;
    c->data = NULL; /* no new view of these bytes from here on */
    Py_DECREF(c);
    if (kept) {
        Py_XDECREF(n);
        PyErr_SetString(PyExc_BufferError,
                        "pdckpt: write() kept a view of the bytes it was "
                        "given (io's write() may use them only during the call)");
        return -1;
    }
    if (!n) return -1;
    Py_ssize_t wrote = n == Py_None ? (Py_ssize_t)len : PyLong_AsSsize_t(n);
    Py_DECREF(n);
    return wrote;
}

/* A save into a file object: pdckpt_save_sink's write() hands each (buffered or tensor-sized)
 * piece to the object's write(), looping on short writes, with the GIL taken for the call; the
 * first Python exception is kept and raised when the save returns.  Nothing is held in RAM. */
typedef struct py_sink {
    PyObject *write;
    PyObject *exc_type, *exc_value, *exc_tb;
} py_sink;

static pdckpt_status sink_write(void *self, const void *bytes, size_t len, pdckpt_error *err) {
    py_sink         *s = self;
    PyGILState_STATE g = PyGILState_Ensure();
    size_t           done = 0;
    while (done < len) {
        Py_ssize_t wrote = write_chunk(s->write, (const char *)bytes + done, len - done);
        if (wrote == 0) PyErr_SetString(PyExc_OSError, "pdckpt: write() wrote nothing");
        if (wrote <= 0 || (size_t)wrote > len - done) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_OSError, "pdckpt: bad write() result");
            PyErr_Fetch(&s->exc_type, &s->exc_value, &s->exc_tb);
            break;
        }
        done += (size_t)wrote;
    }
    PyGILState_Release(g);
    if (done == len) return PDCKPT_OK;
    err->status = PDCKPT_ERR_IO;
    snprintf(err->message, sizeof err->message, "the file object's write() failed");
    return PDCKPT_ERR_IO;
}

static pdckpt_status sink_commit(void *self, pdckpt_error *err) {
    (void)self;
    (void)err;
    return PDCKPT_OK;
}

static PyObject *save_to_object(const pdckpt_value *root, PyObject *write,
                                const pdckpt_save_options *so) {
    static const pdckpt_sink_ops ops = {PDCKPT_SINK_OPS_VERSION, sink_write, sink_commit, NULL};
    py_sink                      s = {write, NULL, NULL, NULL};
    pdckpt_error                 err;
    pdckpt_status                st;
    Py_BEGIN_ALLOW_THREADS       st = pdckpt_save_sink(root, &ops, &s, so, &err);
    Py_END_ALLOW_THREADS if (s.exc_type) {
        PyErr_Restore(s.exc_type, s.exc_value, s.exc_tb); /* the file object's own error */
        return NULL;
    }
    if (st != PDCKPT_OK) return pyn_raise(&err);
    Py_RETURN_NONE;
}

static int names_arg(PyObject *names, PyObject **held, const char ***out, size_t *n);

static PyObject *save_tree(const pdckpt_value *root, PyObject *path, PyObject *write,
                           const pdckpt_save_options *so) {
    pdckpt_error  err;
    pdckpt_status st;
    if (path != Py_None) {
        PyObject *fs = NULL;
        if (!PyUnicode_FSConverter(path, &fs)) return NULL;
        Py_BEGIN_ALLOW_THREADS st = pdckpt_save_file(root, PyBytes_AS_STRING(fs), so, &err);
        Py_END_ALLOW_THREADS   Py_DECREF(fs);
        if (st != PDCKPT_OK) return pyn_raise(&err);
        Py_RETURN_NONE;
    }
    if (write != Py_None) return save_to_object(root, write, so);
    void                  *data = NULL;
    size_t                 len = 0;
    Py_BEGIN_ALLOW_THREADS st = pdckpt_save_memory(root, so, &data, &len, &err);
    Py_END_ALLOW_THREADS if (st != PDCKPT_OK) return pyn_raise(&err);
    PyObject *result = PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
    pdckpt_free(so->allocator, data, len);
    return result;
}

/* skip_non_tensors: each dropped value's path goes to a list (the GIL is released meanwhile). */
static void note_drop(void *ctx, const char *path, pdckpt_kind kind) {
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject        *item = Py_BuildValue("(ss)", path, pdckpt_kind_name(kind));
    if (!item || PyList_Append((PyObject *)ctx, item) < 0) PyErr_Clear();
    Py_XDECREF(item);
    PyGILState_Release(g);
}

/* Applies `pairs` (a sequence of (from, to) dtype-name pairs, or None) to the tree. */
static int retype(PyObject *pairs, pdckpt_value *root) {
    if (pairs == Py_None) return 0;
    PyObject *seq = PySequence_Fast(pairs, "pdckpt: reinterpret must be (from, to) pairs");
    for (Py_ssize_t i = 0; seq && i < PySequence_Fast_GET_SIZE(seq); i++) {
        const char *from, *to;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "ss", &from, &to)) break;
        pdckpt_dtype a = pdckpt_dtype_from_name(from), b = pdckpt_dtype_from_name(to);
        pdckpt_error err = PDCKPT_ERROR_INIT;
        if (a == PDCKPT_DTYPE_INVALID || b == PDCKPT_DTYPE_INVALID) {
            PyErr_Format(PyExc_ValueError, "pdckpt: reinterpret: unknown dtype in %s=%s", from, to);
            break;
        }
        if (pdckpt_value_reinterpret_all(root, a, b, NULL, &err) != PDCKPT_OK) {
            pyn_raise(&err);
            break;
        }
    }
    Py_XDECREF(seq);
    return PyErr_Occurred() ? -1 : 0;
}

/* pickle_layout: 0 (the library chooses), 1 (state dict) or 2 (generic): pdckpt_pickle_layout. */
static int layout_arg(int layout, pdckpt_save_options *so) {
    if (layout < PDCKPT_PICKLE_LAYOUT_AUTO || layout > PDCKPT_PICKLE_LAYOUT_GENERIC) {
        PyErr_Format(PyExc_ValueError, "pdckpt: pickle_layout must be 0, 1 or 2, not %d", layout);
        return -1;
    }
    so->pickle_layout = (pdckpt_pickle_layout)layout;
    return 0;
}

/* save(obj, path=None, write=None, format=None, durable=True, protocol=4, numpy_module=0,
 *      skip_non_tensors=False, allowed_globals=None, reinterpret=None, dropped=None,
 *      max_shard_size=0, paddle=None, pickle_layout=0): to a path, to write() (a file object),
 *      or returned as bytes. */
static PyObject *save(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"obj",
                             "path",
                             "write",
                             "format",
                             "durable",
                             "protocol",
                             "numpy_module",
                             "skip_non_tensors",
                             "allowed_globals",
                             "reinterpret",
                             "dropped",
                             "max_shard_size",
                             "paddle",
                             "pickle_layout",
                             NULL};
    PyObject    *obj, *path = Py_None, *write = Py_None, *fmt = Py_None, *allowed = Py_None,
                   *pairs = Py_None, *dropped = Py_None, *paddle = Py_None;
    int                durable = 1, protocol = 4, numpy_module = 0, skip = 0, layout = 0;
    unsigned long long max_shard = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OOOpiipOOOKOi", kwlist, &obj, &path, &write, &fmt,
                                     &durable, &protocol, &numpy_module, &skip, &allowed, &pairs,
                                     &dropped, &max_shard, &paddle, &layout))
        return NULL;
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    PyObject           *held = NULL;
    const char        **allowed_ptrs = NULL;
    if (format_arg(fmt, &so.format) < 0 || layout_arg(layout, &so) < 0 ||
        names_arg(allowed, &held, &allowed_ptrs, &so.n_allowed_globals) < 0) {
        PyMem_Free(allowed_ptrs);
        Py_XDECREF(held);
        return NULL;
    }
    so.allowed_globals = allowed_ptrs;
    so.max_shard_size = max_shard;
    so.durable = durable;
    so.protocol = protocol;
    so.numpy_module = numpy_module ? PDCKPT_NUMPY__CORE : PDCKPT_NUMPY_CORE;
    so.skip_non_tensors = skip;
    if (PyList_Check(dropped)) {
        so.on_drop = note_drop;
        so.on_drop_ctx = dropped;
    }
    pyn_pins pins;
    if (pyn_pins_init(&pins) < 0) return NULL;
    /* paddle: (paddle.Tensor, {paddle dtype: name}[, DLPack exports trusted]) lets plain CPU
     * tensors skip the leaf hook */
    pdckpt_value *root =
        paddle == Py_None || PyArg_ParseTuple(paddle, "OO!|p", &pins.paddle_type, &PyDict_Type,
                                              &pins.paddle_dtypes, &pins.paddle_dlpack)
            ? pyn_to_tree(obj, &pins)
            : NULL;
    PyObject *result = root && retype(pairs, root) == 0 ? save_tree(root, path, write, &so) : NULL;
    pdckpt_value_free(root);
    pyn_pins_release(&pins);
    PyMem_Free(allowed_ptrs);
    Py_XDECREF(held);
    return result;
}

/* The names of a combined file, kept as UTF-8 pointers into a tuple of str the caller holds. */
static int names_arg(PyObject *names, PyObject **held, const char ***out, size_t *n) {
    *held = NULL;
    *out = NULL;
    *n = 0;
    if (names == Py_None) return 0;
    *held = PySequence_Tuple(names);
    if (!*held) return -1;
    *n = (size_t)PyTuple_GET_SIZE(*held);
    *out = PyMem_Calloc(*n ? *n : 1, sizeof **out);
    if (!*out) return PyErr_NoMemory(), -1;
    for (size_t i = 0; i < *n; i++)
        if (!((*out)[i] = PyUnicode_AsUTF8(PyTuple_GET_ITEM(*held, (Py_ssize_t)i)))) return -1;
    return 0;
}

/* Loads `data` (bytes the tree then borrows: zero-copy) or else the file at `fs_path`. */
static pdckpt_status load_source(PyObject *data, PyObject *fs_path, const pdckpt_load_options *lo,
                                 pdckpt_value **root, pdckpt_format *fmt, PyObject **owner,
                                 pdckpt_error *err) {
    pdckpt_status st;
    *owner = NULL;
    if (data != Py_None) {
        PyObject *source = data;
        *owner = source;
        Py_BEGIN_ALLOW_THREADS st = pdckpt_load_memory(
            PyBytes_AS_STRING(source), (size_t)PyBytes_GET_SIZE(source), lo, root, fmt, err);
        Py_END_ALLOW_THREADS return st;
    }
    const char            *path = PyBytes_AS_STRING(fs_path);
    Py_BEGIN_ALLOW_THREADS st = pdckpt_load_file(path, lo, root, fmt, err);
    Py_END_ALLOW_THREADS return st;
}

/* load(path=None, data=None, format=None, names=None, program=None, mmap=True, verify=False,
 *      allowed_globals=None, reinterpret=None, aligned=False, threads=0) -> Tree */
static PyObject *load(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"path",        "data",    "format",  "names",
                             "program",     "mmap",    "verify",  "allowed_globals",
                             "reinterpret", "aligned", "threads", NULL};
    PyObject *path = Py_None, *data = Py_None, *fmt = Py_None, *names = Py_None, *program = Py_None,
             *fs = NULL, *prog_fs = NULL, *held = NULL, *allowed = Py_None, *held_allowed = NULL,
             *pairs = Py_None;
    int          mmap = 1, verify = 0, aligned = 0;
    unsigned int threads = 0;
    const char **allowed_ptrs = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OSOOOppOOpI", kwlist, &path, &data, &fmt, &names,
                                     &program, &mmap, &verify, &allowed, &pairs, &aligned,
                                     &threads))
        return NULL;
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.zero_copy = mmap;
    lo.verify = verify;
    lo.require_aligned = aligned && !mmap; /* mapped data is never copied to align it */
    lo.threads = threads;
    PyObject    *result = NULL;
    const char **name_ptrs = NULL;
    if (format_arg(fmt, &lo.format) < 0 || names_arg(names, &held, &name_ptrs, &lo.n_names) < 0 ||
        names_arg(allowed, &held_allowed, &allowed_ptrs, &lo.n_allowed_globals) < 0 ||
        (program != Py_None && !PyUnicode_FSConverter(program, &prog_fs)) ||
        (data == Py_None && !PyUnicode_FSConverter(path, &fs)))
        goto done;
    lo.names = name_ptrs;
    lo.allowed_globals = allowed_ptrs;
    lo.program_path = prog_fs ? PyBytes_AS_STRING(prog_fs) : NULL;
    pdckpt_value *root = NULL;
    pdckpt_format got = PDCKPT_FORMAT_AUTO;
    pdckpt_error  err;
    PyObject     *owner;
    if (load_source(data, fs, &lo, &root, &got, &owner, &err) != PDCKPT_OK)
        pyn_raise(&err);
    else if (retype(pairs, root) < 0)
        pdckpt_value_free(root);
    else
        result = pyn_tree_new(root, owner, got, !mmap);
done:
    PyMem_Free(name_ptrs);
    PyMem_Free(allowed_ptrs);
    Py_XDECREF(held);
    Py_XDECREF(held_allowed);
    Py_XDECREF(fs);
    Py_XDECREF(prog_fs);
    return result;
}

/* open_lazy(path) -> a Tree whose entries are made on access from the pickle's index, or None
 * when the file has no index that belongs to it as it is now (pdckpt_lazy_open). */
static PyObject *open_lazy(PyObject *self, PyObject *arg) {
    (void)self;
    PyObject *fs = NULL;
    if (!PyUnicode_FSConverter(arg, &fs)) return NULL;
    pdckpt_lazy           *lazy = NULL;
    pdckpt_error           err;
    pdckpt_status          st;
    Py_BEGIN_ALLOW_THREADS st = pdckpt_lazy_open(PyBytes_AS_STRING(fs), NULL, &lazy, &err);
    Py_END_ALLOW_THREADS   Py_DECREF(fs);
    if (st != PDCKPT_OK) return pyn_raise(&err);
    if (!lazy) Py_RETURN_NONE;
    return pyn_tree_new_lazy(lazy);
}

/* object_length(data) -> the length of the first pickle / tensor / SelectedRows stream in the
 * bytes, or None when they start with none of them (the object is then the whole input). */
static PyObject *object_length(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyBytes_Check(arg)) return PyErr_SetString(PyExc_TypeError, "expected bytes"), NULL;
    size_t                 end = 0;
    pdckpt_status          st;
    Py_BEGIN_ALLOW_THREADS st = pdckpt_object_length(
        PyBytes_AS_STRING(arg), (size_t)PyBytes_GET_SIZE(arg), &end, NULL, NULL);
    Py_END_ALLOW_THREADS if (st != PDCKPT_OK) Py_RETURN_NONE;
    return PyLong_FromSize_t(end);
}

/* parse_size("5GB") -> 5000000000: huggingface_hub's sizes (pdckpt_parse_size). */
static PyObject *parse_size(PyObject *self, PyObject *arg) {
    (void)self;
    const char *text = PyUnicode_AsUTF8(arg);
    if (!text) return NULL;
    uint64_t     bytes;
    pdckpt_error err;
    if (pdckpt_parse_size(text, &bytes, &err) != PDCKPT_OK) return pyn_raise(&err);
    return PyLong_FromUnsignedLongLong(bytes);
}

static PyObject *format_from_path(PyObject *self, PyObject *arg) {
    (void)self;
    PyObject *fs = NULL;
    if (!PyUnicode_FSConverter(arg, &fs)) return NULL;
    pdckpt_format f = pdckpt_format_from_path(PyBytes_AS_STRING(fs));
    Py_DECREF(fs);
    if (f == PDCKPT_FORMAT_AUTO) Py_RETURN_NONE;
    return PyUnicode_FromString(pdckpt_format_name(f));
}

/* pdckpt_resolve: (format name, target, program or None) -- what a path names, as load finds it. */
static PyObject *resolve(PyObject *self, PyObject *arg) {
    (void)self;
    PyObject *fs = NULL;
    if (!PyUnicode_FSConverter(arg, &fs)) return NULL;
    pdckpt_resolved *r = PyMem_Malloc(sizeof *r);
    pdckpt_error     err = PDCKPT_ERROR_INIT;
    pdckpt_status    st = r ? pdckpt_resolve(PyBytes_AS_STRING(fs), r, &err) : PDCKPT_OK;
    Py_DECREF(fs);
    PyObject *out = NULL, *target = NULL, *program = NULL;
    if (!r) {
        PyErr_NoMemory();
    } else if (st != PDCKPT_OK) {
        pyn_raise(&err);
    } else if ((target = PyUnicode_DecodeFSDefault(r->target)) != NULL &&
               (program = r->program[0] ? PyUnicode_DecodeFSDefault(r->program)
                                        : Py_NewRef(Py_None)) != NULL) {
        out = Py_BuildValue("(sOO)", pdckpt_format_name(r->format), target, program);
    }
    Py_XDECREF(target);
    Py_XDECREF(program);
    PyMem_Free(r);
    return out;
}

/* {name: (can_load, can_save)} for every format this build knows. */
static PyObject *formats(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    PyObject *d = PyDict_New();
    for (int f = 1; d && f < PDCKPT_FORMAT_COUNT; f++) {
        PyObject *caps = Py_BuildValue("(OO)", pdckpt_format_can_load(f) ? Py_True : Py_False,
                                       pdckpt_format_can_save(f) ? Py_True : Py_False);
        if (!caps || PyDict_SetItemString(d, pdckpt_format_name(f), caps) < 0) Py_CLEAR(d);
        Py_XDECREF(caps);
    }
    return d;
}

/* {dtype name: pdckpt dtype number}: the facade keys Paddle's dtypes by these numbers, so a
 * save reads a tensor's dtype without parsing a name. */
static PyObject *dtype_codes(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    PyObject *d = PyDict_New();
    for (int c = 1; d && c < PDCKPT_DTYPE_COUNT; c++) {
        PyObject *v = PyLong_FromLong(c);
        if (!v || PyDict_SetItemString(d, pdckpt_dtype_name((pdckpt_dtype)c), v) < 0) Py_CLEAR(d);
        Py_XDECREF(v);
    }
    return d;
}

static PyObject *status_names(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    PyObject *d = PyDict_New();
    for (int s = 0; d && s <= PDCKPT_ERR_CORRUPT; s++) {
        PyObject *k = PyLong_FromLong(s), *v = PyUnicode_FromString(pdckpt_status_name(s));
        if (!k || !v || PyDict_SetItem(d, k, v) < 0) Py_CLEAR(d);
        Py_XDECREF(k);
        Py_XDECREF(v);
    }
    return d;
}

/* display_text(s) -> s with what a terminal must not be handed (controls, bidi controls) as
 * visible escapes (pdckpt_display_text, backslashes kept as in the library's messages): for the
 * messages the Python layer words itself around names from files. */
static PyObject *display_text(PyObject *self, PyObject *arg) {
    (void)self;
    PyObject *bytes =
        PyUnicode_Check(arg) ? PyUnicode_AsEncodedString(arg, "utf-8", "surrogatepass") : NULL;
    if (!bytes)
        return PyErr_Occurred() ? NULL : (PyErr_SetString(PyExc_TypeError, "expected str"), NULL);
    const char *s = PyBytes_AS_STRING(bytes);
    size_t      n = (size_t)PyBytes_GET_SIZE(bytes);
    size_t      need = pdckpt_display_text(s, n, PDCKPT_DISPLAY_KEEP_BACKSLASH, NULL, 0);
    char       *buf = PyMem_Malloc(need + 1);
    PyObject   *out = NULL;
    if (buf) {
        pdckpt_display_text(s, n, PDCKPT_DISPLAY_KEEP_BACKSLASH, buf, need + 1);
        out = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)need, "strict");
        PyMem_Free(buf);
    } else {
        PyErr_NoMemory();
    }
    Py_DECREF(bytes);
    return out;
}

static PyObject *trim_memory(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    pdckpt_trim_memory();
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"trim_memory", trim_memory, METH_NOARGS, "hands the kept blocks of freed loads back"},
    {"_configure", configure, METH_VARARGS, "registers the facade's classes and hooks"},
    {"save", (PyCFunction)(void (*)(void))save, METH_VARARGS | METH_KEYWORDS,
     "save(obj, path=None, write=None, format=None, durable=True, protocol=4, numpy_module=0, "
     "skip_non_tensors=False, allowed_globals=None, reinterpret=None, dropped=None, "
     "max_shard_size=0, paddle=None, pickle_layout=0)"},
    {"load", (PyCFunction)(void (*)(void))load, METH_VARARGS | METH_KEYWORDS,
     "load(path=None, data=None, format=None, names=None, program=None, mmap=True, "
     "verify=False, allowed_globals=None, reinterpret=None) -> Tree"},
    {"open_lazy", open_lazy, METH_O, "open_lazy(path) -> Tree made on access, or None"},
    {"format_from_path", format_from_path, METH_O, "the format a save to this path would use"},
    {"parse_size", parse_size, METH_O, "a shard size such as '5GB' in bytes"},
    {"formats", formats, METH_NOARGS, "{name: (can_load, can_save)}"},
    {"resolve", resolve, METH_O, "(format, target, program or None): what a path names"},
    {"status_names", status_names, METH_NOARGS, "{status number: name}"},
    {"display_text", display_text, METH_O, "a message's text with controls escaped"},
    {"dtype_codes", dtype_codes, METH_NOARGS, "{dtype name: pdckpt dtype number}"},
    {"object_length", object_length, METH_O, "length of the first object in bytes, or None"},
    {"program_persistables", pyn_program_persistables, METH_O,
     "the variables a static save of this program file holds, in order"},
    {"save_persistables", (PyCFunction)(void (*)(void))pyn_save_persistables,
     METH_VARARGS | METH_KEYWORDS,
     "save_persistables(state, program, dirname=None, filename=None, durable=True) -> None | "
     "bytes"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "pdckpt._native",
    "Thin bindings of the pdckpt C library (object conversion only).",
    -1,
    module_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

/* SUFFIXES, {format name: (suffix, ...)}: the registry's file-name endings
 * (pdckpt_format_suffixes), from which the Python modules name files instead of spelling suffixes
 * of their own. */
static PyObject *suffix_table(void) {
    PyObject *d = PyDict_New();
    for (int f = 1; d && f < PDCKPT_FORMAT_COUNT; f++) {
        const char *const *s = pdckpt_format_suffixes((pdckpt_format)f);
        Py_ssize_t         n = 0;
        while (s[n]) n++;
        PyObject *t = PyTuple_New(n);
        for (Py_ssize_t i = 0; t && i < n; i++) {
            PyObject *u = PyUnicode_FromString(s[i]);
            if (!u)
                Py_CLEAR(t);
            else
                PyTuple_SET_ITEM(t, i, u);
        }
        if (!t || PyDict_SetItemString(d, pdckpt_format_name((pdckpt_format)f), t) < 0) Py_CLEAR(d);
        Py_XDECREF(t);
    }
    return d;
}

static int add_suffixes(PyObject *m) {
    PyObject *d = suffix_table();
    int       rc = d ? PyModule_AddObjectRef(m, "SUFFIXES", d) : -1;
    Py_XDECREF(d);
    return rc;
}

PyMODINIT_FUNC PyInit__native(void);
PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&pyn_TensorData_Type) < 0 || PyType_Ready(&Chunk_Type) < 0 ||
        PyType_Ready(&pyn_Tensor_Type) < 0 || PyType_Ready(&pyn_Tree_Type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "TensorData", (PyObject *)&pyn_TensorData_Type) < 0 ||
        PyModule_AddObjectRef(m, "Tensor", (PyObject *)&pyn_Tensor_Type) < 0 ||
        PyModule_AddObjectRef(m, "Tree", (PyObject *)&pyn_Tree_Type) < 0 ||
        PyModule_AddStringConstant(m, "version", pdckpt_version_string()) < 0 ||
        PyModule_AddStringConstant(m, "NAME_TABLE_KEY", PDCKPT_NAME_TABLE_KEY) < 0 ||
        PyModule_AddStringConstant(m, "header_version", PDCKPT_VERSION_STRING) < 0 ||
        add_suffixes(m) < 0 || pyn_sharded_register(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
