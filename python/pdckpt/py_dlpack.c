/* SPDX-License-Identifier: Apache-2.0 */
/*
 * py_dlpack.c — pdckpt._native.Tensor: one tensor value of a loaded tree, with its metadata read
 * from the tree (never from the data) and the DLPack Python protocol (__dlpack__,
 * __dlpack_device__).  Capsules follow the DLPack Python spec: "dltensor_versioned" (DLPack 1.x,
 * with the READ_ONLY flag for mapped data) when the consumer passes max_version >= (1, 0), else the
 * legacy "dltensor"; a consumer renames the capsule when it takes it, and the capsule's destructor
 * calls the deleter only when nobody did.
 */
#include "py_native.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    PyObject_HEAD pdckpt_value *value; /* a TENSOR, retained */
    PyObject                   *owner; /* keeps borrowed memory alive, or NULL */
} Tensor;

PyObject *pyn_tensor_new(const pdckpt_value *value, PyObject *owner) {
    if (pdckpt_value_kind(value) != PDCKPT_KIND_TENSOR)
        return PyErr_Format(PyExc_TypeError, "pdckpt: expected a tensor, found %s",
                            pdckpt_kind_name(pdckpt_value_kind(value)));
    Tensor *t = PyObject_New(Tensor, &pyn_Tensor_Type);
    if (!t) return NULL;
    t->value = pdckpt_value_retain((pdckpt_value *)value);
    t->owner = Py_XNewRef(owner);
    return (PyObject *)t;
}

static void tensor_dealloc(Tensor *t) {
    pdckpt_value_free(t->value);
    Py_XDECREF(t->owner);
    PyObject_Free(t);
}

static pdckpt_tensor_view view_of(Tensor *t) {
    pdckpt_tensor_view v;
    pdckpt_tensor_get(t->value, &v);
    return v;
}

/* ---- DLPack capsules ---- */

void pyn_versioned_capsule_free(PyObject *capsule) {
    if (!PyCapsule_IsValid(capsule, "dltensor_versioned")) return; /* consumed */
    DLManagedTensorVersioned *m = PyCapsule_GetPointer(capsule, "dltensor_versioned");
    if (m && m->deleter) m->deleter(m);
}

typedef struct legacy_wrap {
    DLManagedTensor           legacy;
    DLManagedTensorVersioned *inner;
} legacy_wrap;

static void legacy_delete(DLManagedTensor *self) {
    legacy_wrap *w = (legacy_wrap *)self;
    w->inner->deleter(w->inner);
    free(w);
}

static void legacy_capsule_free(PyObject *capsule) {
    if (!PyCapsule_IsValid(capsule, "dltensor")) return;
    DLManagedTensor *m = PyCapsule_GetPointer(capsule, "dltensor");
    if (m && m->deleter) m->deleter(m);
}

/* The pre-1.0 struct cannot say "read-only": such data is only handed out as a copy. */
static PyObject *legacy_capsule(Tensor *t, DLManagedTensorVersioned *m, int copy) {
    if (m->flags & DLPACK_FLAG_BITMASK_READ_ONLY) {
        m->deleter(m);
        if (copy == 0)
            return PyErr_Format(PyExc_BufferError,
                                "pdckpt: read-only data can be exported without a copy only as a "
                                "DLPack 1.x capsule (pass max_version=(1, 0) or later)");
        pdckpt_error err;
        if (pdckpt_value_to_dlpack_copy(t->value, &m, &err) != PDCKPT_OK) return pyn_raise(&err);
    }
    return pyn_legacy_capsule(m);
}

PyObject *pyn_legacy_capsule(DLManagedTensorVersioned *m) {
    legacy_wrap *w = malloc(sizeof *w);
    if (!w) {
        m->deleter(m);
        return PyErr_NoMemory();
    }
    w->legacy.dl_tensor = m->dl_tensor;
    w->legacy.manager_ctx = w;
    w->legacy.deleter = legacy_delete;
    w->inner = m;
    PyObject *capsule = PyCapsule_New(&w->legacy, "dltensor", legacy_capsule_free);
    if (!capsule) legacy_delete(&w->legacy);
    return capsule;
}

static int wants_versioned(PyObject *max_version, int *out) {
    *out = 0;
    if (max_version == Py_None) return 0;
    PyObject *major = PySequence_GetItem(max_version, 0);
    if (!major) return -1;
    long v = PyLong_AsLong(major);
    Py_DECREF(major);
    if (v == -1 && PyErr_Occurred()) return -1;
    *out = v >= 1;
    return 0;
}

static int check_device(PyObject *dl_device) {
    if (dl_device == Py_None) return 0;
    int type = -1, id = -1;
    if (!PyArg_ParseTuple(dl_device, "ii", &type, &id)) return -1;
    if (type == kDLCPU && id == 0) return 0;
    PyErr_Format(PyExc_BufferError,
                 "pdckpt tensors live on the CPU; cannot export to device "
                 "(%d, %d)",
                 type, id);
    return -1;
}

static PyObject *tensor_dlpack(Tensor *t, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"stream", "max_version", "dl_device", "copy", NULL};
    PyObject *stream = Py_None, *max_version = Py_None, *dl_device = Py_None, *copy_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|$OOOO", kwlist, &stream, &max_version, &dl_device,
                                     &copy_obj))
        return NULL;
    int versioned, copy = copy_obj == Py_None ? -1 : PyObject_IsTrue(copy_obj);
    if (copy_obj != Py_None && copy < 0) return NULL;
    if (wants_versioned(max_version, &versioned) < 0 || check_device(dl_device) < 0) return NULL;
    if (stream != Py_None && !PyLong_Check(stream))
        return PyErr_Format(PyExc_TypeError, "pdckpt: stream must be None or an int on the CPU");
    DLManagedTensorVersioned *m = NULL;
    pdckpt_error              err;
    pdckpt_status             st = copy == 1 ? pdckpt_value_to_dlpack_copy(t->value, &m, &err)
                                             : pdckpt_value_to_dlpack(t->value, &m, &err);
    if (st != PDCKPT_OK) return pyn_raise(&err);
    if (!versioned) return legacy_capsule(t, m, copy);
    PyObject *capsule = PyCapsule_New(m, "dltensor_versioned", pyn_versioned_capsule_free);
    if (!capsule) m->deleter(m);
    return capsule;
}

static PyObject *tensor_dlpack_device(Tensor *t, PyObject *unused) {
    (void)t;
    (void)unused;
    return Py_BuildValue("(ii)", (int)kDLCPU, 0);
}

static PyObject *tensor_data(Tensor *t, PyObject *unused) {
    (void)unused;
    return pyn_tensor_data_new(t->value, t->owner, false);
}

/* numpy(exact_dtypes=False): a NumPy view of the data (read-only). */
static PyObject *tensor_numpy(Tensor *t, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"exact_dtypes", NULL};
    int          exact = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|p", kwlist, &exact)) return NULL;
    return pyn_array_new(t->value, t->owner, false, exact != 0);
}

static PyObject *tensor_repr(Tensor *t) {
    pdckpt_tensor_view v = view_of(t);
    char               dims[256] = "";
    size_t             used = 0;
    for (int32_t i = 0; i < v.n_dims && used < sizeof dims - 24; i++)
        used += (size_t)snprintf(dims + used, sizeof dims - used, "%s%lld", i ? ", " : "",
                                 (long long)v.dims[i]);
    return PyUnicode_FromFormat("pdckpt.Tensor(name=%s%s%s, dtype=%s, shape=(%s%s))",
                                v.name ? "'" : "", v.name ? v.name : "None", v.name ? "'" : "",
                                pdckpt_dtype_name(v.dtype), dims, v.n_dims == 1 ? "," : "");
}

/* ---- metadata (from the tree only: no data page is touched) ---- */

static PyObject *tensor_get(Tensor *t, void *closure) {
    pdckpt_tensor_view v = view_of(t);
    switch ((int)(intptr_t)closure) {
    case 0: return PyUnicode_FromString(pdckpt_dtype_name(v.dtype));
    case 1: {
        PyObject *shape = PyTuple_New(v.n_dims);
        for (int32_t i = 0; shape && i < v.n_dims; i++)
            PyTuple_SET_ITEM(shape, i, PyLong_FromLongLong(v.dims[i]));
        return shape;
    }
    case 2: return PyLong_FromUnsignedLongLong(v.n_bytes);
    case 3:
        if (!v.name) Py_RETURN_NONE;
        return PyUnicode_DecodeUTF8(v.name, (Py_ssize_t)strlen(v.name), "replace");
    case 4: return PyBool_FromLong(v.read_only || (!v.buffer && v.n_bytes));
    case 5: return PyBool_FromLong(pdckpt_buffer_is_mapped(v.buffer));
    default: return PyLong_FromLong(pdckpt_dtype_size(v.dtype));
    }
}

static PyObject *tensor_lod(Tensor *t, void *closure) {
    (void)closure;
    pdckpt_tensor_view v = view_of(t);
    PyObject          *lod = PyList_New(v.n_lod_levels);
    for (int32_t i = 0; lod && i < v.n_lod_levels; i++) {
        PyObject *level = PyList_New((Py_ssize_t)v.lod_lens[i]);
        for (uint64_t j = 0; level && j < v.lod_lens[i]; j++)
            PyList_SET_ITEM(level, (Py_ssize_t)j, PyLong_FromUnsignedLongLong(v.lod[i][j]));
        if (!level)
            Py_CLEAR(lod);
        else
            PyList_SET_ITEM(lod, i, level);
    }
    return lod;
}

static PyGetSetDef tensor_getset[] = {
    {"dtype", (getter)tensor_get, NULL, "dtype name (numpy's spelling)", (void *)0},
    {"shape", (getter)tensor_get, NULL, "shape tuple", (void *)1},
    {"nbytes", (getter)tensor_get, NULL, "data size in bytes", (void *)2},
    {"name", (getter)tensor_get, NULL, "Paddle variable name, or None", (void *)3},
    {"read_only", (getter)tensor_get, NULL, "the data must not be written", (void *)4},
    {"mapped", (getter)tensor_get, NULL, "the data is a view of a file mapping", (void *)5},
    {"itemsize", (getter)tensor_get, NULL, "bytes per element", (void *)6},
    {"lod", (getter)tensor_lod, NULL, "LoD levels (lists of offsets)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef tensor_methods[] = {
    {"__dlpack__", (PyCFunction)(void (*)(void))tensor_dlpack, METH_VARARGS | METH_KEYWORDS,
     "__dlpack__(*, stream=None, max_version=None, dl_device=None, copy=None) -> capsule"},
    {"__dlpack_device__", (PyCFunction)tensor_dlpack_device, METH_NOARGS,
     "(kDLCPU, 0): pdckpt tensors live in host memory"},
    {"_data", (PyCFunction)tensor_data, METH_NOARGS, "the tensor's bytes as a TensorData"},
    {"numpy", (PyCFunction)(void (*)(void))tensor_numpy, METH_VARARGS | METH_KEYWORDS,
     "numpy(exact_dtypes=False) -> a NumPy view of the data (read-only when mapped; no copy)"},
    {NULL, NULL, 0, NULL},
};

PyTypeObject pyn_Tensor_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pdckpt._native.Tensor",
    .tp_basicsize = sizeof(Tensor),
    .tp_dealloc = (destructor)tensor_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_repr = (reprfunc)tensor_repr,
    .tp_doc = "A tensor of a checkpoint opened with pdckpt.open.\n\n"
              "dtype, shape, nbytes, itemsize, name, lod, read_only and mapped come from the "
              "file's metadata without touching the data.  numpy() is a NumPy view of the data "
              "(read-only when mapped); __dlpack__ exports it through DLPack (1.x capsules carry "
              "the read-only flag), so numpy.from_dlpack(t) and "
              "paddle.utils.dlpack.from_dlpack(t) work.  Both keep the file mapping alive.",
    .tp_getset = tensor_getset,
    .tp_methods = tensor_methods,
    .tp_new = NULL,
};
