/* SPDX-License-Identifier: Apache-2.0 */
/*
 * py_tensor.c — the extension's object types.
 *   TensorData  exports one tensor's bytes through the buffer protocol (read-only when the data is
 *               a file mapping or loaded data); it holds a pdckpt_buffer reference, so a NumPy
 * array made from it keeps the mapping alive after the tree and the reader are gone. Tensor      a
 * tensor value: metadata (dtype, shape, nbytes, name) without touching the data, and __dlpack__ /
 * __dlpack_device__ through pdckpt_value_to_dlpack. Tree        a loaded tree: the core of
 * pdckpt.open's lazy reader and of pdckpt.load.
 */
#include "py_native.h"

#include <string.h>

/* NumPy's C API (this file alone uses it): arrays are made without a Python-level call.  Built
 * against NumPy 2 headers, it runs with every NumPy the package allows (pyproject.toml). */
#define PY_ARRAY_UNIQUE_SYMBOL pdckpt_numpy_api
#define NPY_NO_DEPRECATED_API  NPY_1_21_API_VERSION
#define NPY_TARGET_VERSION     NPY_1_21_API_VERSION
#include <numpy/arrayobject.h>

/* ------------------------------------------------------------------------------------------ */
/* TensorData                                                                                 */

typedef struct {
    PyObject_HEAD pdckpt_buffer *buffer; /* reference held, or NULL */
    PyObject                    *owner;  /* keeps borrowed memory alive, or NULL */
    void                        *data;
    Py_ssize_t                   nbytes;
    int                          readonly;
    pdckpt_dtype                 dtype;
    PyObject                    *shape;
    pdckpt_value                *value; /* retained: the name is decoded only when asked for */
} TensorData;

PyObject *pyn_shape_tuple(const pdckpt_tensor_view *v) {
    PyObject *shape = PyTuple_New(v->n_dims);
    for (int32_t i = 0; shape && i < v->n_dims; i++) {
        PyObject *d = PyLong_FromLongLong(v->dims[i]);
        if (!d)
            Py_CLEAR(shape);
        else
            PyTuple_SET_ITEM(shape, i, d);
    }
    return shape;
}

static PyObject *name_of(const pdckpt_tensor_view *v) {
    if (v->name) return PyUnicode_DecodeUTF8(v->name, (Py_ssize_t)strlen(v->name), "replace");
    Py_RETURN_NONE;
}

/* Data with no owner we can hold (caller memory of a finished save) is copied into bytes.
 * With allow_write, a private allocation (a file read with mmap=False) is exported writable;
 * a file mapping, or memory borrowed from a bytes object, never is. */
static int hold_data(TensorData *td, const pdckpt_tensor_view *v, PyObject *owner,
                     bool allow_write) {
    td->data = (void *)v->data;
    td->readonly =
        v->read_only && !(allow_write && v->buffer && !pdckpt_buffer_is_mapped(v->buffer));
    if (v->buffer || v->n_bytes == 0) {
        td->buffer = pdckpt_buffer_retain(v->buffer);
        return 0;
    }
    if (owner) {
        td->owner = Py_NewRef(owner);
        td->readonly = 1;
        return 0;
    }
    td->owner = PyBytes_FromStringAndSize(v->data, (Py_ssize_t)v->n_bytes);
    if (!td->owner) return -1;
    td->data = PyBytes_AS_STRING(td->owner);
    td->readonly = 1;
    return 0;
}

PyObject *pyn_tensor_data_new(const pdckpt_value *value, PyObject *owner, bool allow_write) {
    pdckpt_tensor_view v;
    if (!pdckpt_tensor_get(value, &v)) return PyErr_Format(PyExc_TypeError, "not a tensor");
    if (v.n_bytes > (uint64_t)PY_SSIZE_T_MAX) return PyErr_NoMemory();
    TensorData *td = PyObject_New(TensorData, &pyn_TensorData_Type);
    if (!td) return NULL;
    td->buffer = NULL;
    td->owner = NULL;
    td->nbytes = (Py_ssize_t)v.n_bytes;
    td->dtype = v.dtype;
    td->shape = pyn_shape_tuple(&v);
    td->value = pdckpt_value_retain((pdckpt_value *)value);
    if (!td->shape || hold_data(td, &v, owner, allow_write) < 0) {
        Py_DECREF(td);
        return NULL;
    }
    return (PyObject *)td;
}

static void td_dealloc(TensorData *td) {
    pdckpt_buffer_release(td->buffer);
    Py_XDECREF(td->owner);
    Py_XDECREF(td->shape);
    pdckpt_value_free(td->value);
    PyObject_Free(td);
}

static int td_getbuffer(TensorData *td, Py_buffer *view, int flags) {
    static char empty[1];
    void       *data = td->nbytes ? td->data : empty;
    return PyBuffer_FillInfo(view, (PyObject *)td, data, td->nbytes, td->readonly, flags);
}

static PyBufferProcs td_as_buffer = {(getbufferproc)td_getbuffer, NULL};

static PyObject *td_dtype(TensorData *td, void *closure) {
    (void)closure;
    return PyUnicode_FromString(pdckpt_dtype_name(td->dtype));
}

static PyObject *td_readonly(TensorData *td, void *closure) {
    (void)closure;
    return PyBool_FromLong(td->readonly);
}

static PyObject *td_mapped(TensorData *td, void *closure) {
    (void)closure;
    return PyBool_FromLong(pdckpt_buffer_is_mapped(td->buffer));
}

static PyObject *td_shape(TensorData *td, void *closure) {
    (void)closure;
    return Py_NewRef(td->shape);
}

static PyObject *td_name(TensorData *td, void *closure) {
    (void)closure;
    pdckpt_tensor_view v;
    pdckpt_tensor_get(td->value, &v);
    return name_of(&v);
}

static PyObject *td_nbytes(TensorData *td, void *closure) {
    (void)closure;
    return PyLong_FromSsize_t(td->nbytes);
}

static PyGetSetDef td_getset[] = {
    {"dtype", (getter)td_dtype, NULL, "pdckpt dtype name", NULL},
    {"shape", (getter)td_shape, NULL, "shape tuple", NULL},
    {"name", (getter)td_name, NULL, "Paddle variable name or None", NULL},
    {"nbytes", (getter)td_nbytes, NULL, "data size in bytes", NULL},
    {"readonly", (getter)td_readonly, NULL, "the bytes must not be written", NULL},
    {"mapped", (getter)td_mapped, NULL, "the bytes are a file mapping", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject pyn_TensorData_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pdckpt._native.TensorData",
    .tp_basicsize = sizeof(TensorData),
    .tp_dealloc = (destructor)td_dealloc,
    .tp_as_buffer = &td_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The bytes of one tensor (buffer protocol); keeps their memory alive.",
    .tp_getset = td_getset,
};

/* ------------------------------------------------------------------------------------------ */
/* NumPy arrays, made here: no Python-level call per tensor                                   */

/* NumPy dtypes by pdckpt dtype, [0] raw bits and [1] exact (ml_dtypes), asked of the facade's
 * numpy_dtype(name, exact) once per process. */
static PyObject *np_dtypes[2][PDCKPT_DTYPE_COUNT];

static PyObject *numpy_dtype(pdckpt_dtype dtype, bool exact) {
    if ((unsigned)dtype >= PDCKPT_DTYPE_COUNT)
        return PyErr_Format(PyExc_TypeError, "pdckpt: unknown dtype %d", (int)dtype);
    PyObject **slot = &np_dtypes[exact][dtype];
    if (!*slot)
        *slot = PyObject_CallFunction(pyn.numpy_dtype, "sO", pdckpt_dtype_name(dtype),
                                      exact ? Py_True : Py_False);
    return *slot;
}

/* The base object of arrays viewing a pdckpt_buffer: one capsule holding one reference to the
 * buffer, shared by every array over it (a load's read buffer holds all its tensors).  The last
 * one made is found again through `last_holder`, which its destructor clears: while the capsule
 * lives its buffer does too, so the address cannot be reused by another buffer meanwhile.  (The
 * GIL guards the cache.) */
static const char HOLDER_NAME[] = "pdckpt.buffer";
static struct {
    const pdckpt_buffer *buffer;
    PyObject            *holder; /* borrowed */
} last_holder;

static void holder_free(PyObject *capsule) {
    if (last_holder.holder == capsule) {
        last_holder.buffer = NULL;
        last_holder.holder = NULL;
    }
    pdckpt_buffer_release(PyCapsule_GetPointer(capsule, HOLDER_NAME));
}

static PyObject *buffer_holder(pdckpt_buffer *buffer) {
    if (last_holder.holder && last_holder.buffer == buffer) return Py_NewRef(last_holder.holder);
    PyObject *h = PyCapsule_New(pdckpt_buffer_retain(buffer), HOLDER_NAME, holder_free);
    if (!h) {
        pdckpt_buffer_release(buffer);
        return NULL;
    }
    last_holder.buffer = buffer;
    last_holder.holder = h;
    return h;
}

/* What keeps tensor `v`'s bytes alive as an array's base (a new reference, or NULL with *data
 * set for zero bytes), and whether the array may be writable: the rules of hold_data above. */
static int array_base(const pdckpt_tensor_view *v, PyObject *owner, bool allow_write,
                      PyObject **base, void **data, bool *writable) {
    static char empty[1];
    *data = (void *)v->data;
    *base = NULL;
    *writable = !v->read_only || (allow_write && v->buffer && !pdckpt_buffer_is_mapped(v->buffer));
    if (v->n_bytes == 0) {
        *data = empty;
        return 0;
    }
    if (v->buffer) return (*base = buffer_holder(v->buffer)) ? 0 : -1;
    *writable = false;
    if (owner) {
        *base = Py_NewRef(owner);
        return 0;
    }
    *base = PyBytes_FromStringAndSize(v->data, (Py_ssize_t)v->n_bytes);
    if (!*base) return -1;
    *data = PyBytes_AS_STRING(*base);
    return 0;
}

static PyObject *view_array(const pdckpt_tensor_view *v, PyArray_Descr *descr, PyObject *base,
                            void *data, bool writable, bool fortran) {
    npy_intp dims[PDCKPT_MAX_DIMS];
    for (int32_t i = 0; i < v->n_dims; i++) dims[i] = (npy_intp)v->dims[i];
    if (PyDataType_HASSUBARRAY(descr) ||
        (uint64_t)PyDataType_ELSIZE(descr) * v->n_elements != v->n_bytes) {
        Py_XDECREF(base);
        return PyErr_Format(PyExc_TypeError, "pdckpt: dtype %s does not fit a tensor of %llu bytes",
                            pdckpt_dtype_name(v->dtype), (unsigned long long)v->n_bytes);
    }
    Py_INCREF(descr); /* stolen */
    PyObject *arr =
        PyArray_NewFromDescr(&PyArray_Type, descr, v->n_dims, dims, NULL, data,
                             (fortran ? NPY_ARRAY_F_CONTIGUOUS : NPY_ARRAY_C_CONTIGUOUS) |
                                 (writable ? NPY_ARRAY_WRITEABLE : 0),
                             NULL);
    if (!arr || !base) return Py_XDECREF(base), arr;
    if (PyArray_SetBaseObject((PyArrayObject *)arr, base) < 0) { /* steals base */
        Py_DECREF(arr);
        return NULL;
    }
    return arr;
}

/* A NumPy array over the tensor's own bytes (no copy, no Python call): the dtype cached per
 * process, the base shared by the arrays of one buffer; F-ordered over a Fortran-order tensor's
 * memory, as numpy unpickles the array paddle.save wrote. */
PyObject *pyn_array_new(const pdckpt_value *value, PyObject *owner, bool allow_write, bool exact) {
    pdckpt_tensor_view v;
    bool               fortran;
    if (!pdckpt_tensor_get_memory(value, &v, &fortran))
        return PyErr_Format(PyExc_TypeError, "not a tensor");
    if (v.n_bytes > (uint64_t)PY_SSIZE_T_MAX) return PyErr_NoMemory();
    if (PyArray_ImportNumPyAPI() < 0) return NULL;
    PyObject *dtype = numpy_dtype(v.dtype, exact);
    if (!dtype) return NULL;
    if (!PyArray_DescrCheck(dtype))
        return PyErr_Format(PyExc_TypeError, "pdckpt: numpy_dtype gave no dtype for %s",
                            pdckpt_dtype_name(v.dtype));
    PyObject *base;
    void     *data;
    bool      writable;
    if (array_base(&v, owner, allow_write, &base, &data, &writable) < 0) return NULL;
    return view_array(&v, (PyArray_Descr *)dtype, base, data, writable, fortran);
}
