/* SPDX-License-Identifier: Apache-2.0 */
/*
 * py_paddle_save.c — a paddle.Tensor to save, read through ONE DLPack export of its DenseTensor
 * (issue 18): `tensor.get_tensor()._to_dlpack()` answers device, dtype, shape, strides and the
 * data pointer in one Paddle call (1.4 us), where asking for them one by one (_is_initialized,
 * place.is_cpu_place, is_contiguous, dtype, shape, data_ptr: py_paddle.c) costs 3.5 us per tensor,
 * most of a W2 save's conversion.  Unlike Tensor.__dlpack__ it also exports tensors that require
 * gradients (every parameter).  Only Paddle 3's exports are trusted (the facade says so): Paddle
 * 2.6 exports a transposed view with the strides of a contiguous tensor.  Anything this path does
 * not take for certain (not a CPU tensor, not C-contiguous, zero-size -- an uninitialised tensor
 * exports as an empty one --, a dtype code the table below lacks) is left to py_paddle.c's
 * questions, so what is saved never differs.
 */
#include "py_native.h"

#include <string.h>

/* DLPack dtype codes as Paddle 3 exports them (checked for every dtype in
 * tests/py/test_save_fast.py); only pdckpt dtypes paddle_save_spec lists. */
static pdckpt_dtype dl_dtype(DLDataType t) {
    static const struct {
        uint8_t      code, bits;
        pdckpt_dtype dtype;
    } table[] = {
        {kDLFloat, 32, PDCKPT_DTYPE_FLOAT32},
        {kDLFloat, 16, PDCKPT_DTYPE_FLOAT16},
        {kDLBfloat, 16, PDCKPT_DTYPE_BFLOAT16},
        {kDLFloat, 64, PDCKPT_DTYPE_FLOAT64},
        {kDLInt, 64, PDCKPT_DTYPE_INT64},
        {kDLInt, 32, PDCKPT_DTYPE_INT32},
        {kDLInt, 16, PDCKPT_DTYPE_INT16},
        {kDLInt, 8, PDCKPT_DTYPE_INT8},
        {kDLUInt, 8, PDCKPT_DTYPE_UINT8},
        {kDLBool, 8, PDCKPT_DTYPE_BOOL},
        {kDLComplex, 64, PDCKPT_DTYPE_COMPLEX64},
        {kDLComplex, 128, PDCKPT_DTYPE_COMPLEX128},
        {kDLFloat8_e4m3fn, 8, PDCKPT_DTYPE_FLOAT8_E4M3FN},
        {kDLFloat8_e5m2, 8, PDCKPT_DTYPE_FLOAT8_E5M2},
    };
    if (t.lanes != 1) return PDCKPT_DTYPE_INVALID;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].code == t.code && table[i].bits == t.bits) return table[i].dtype;
    return PDCKPT_DTYPE_INVALID;
}

/* A non-empty C-contiguous CPU tensor (strides of size-1 dims do not matter). */
static bool plain(const DLTensor *t) {
    if (t->device.device_type != kDLCPU || t->ndim < 0 || t->ndim > PDCKPT_MAX_DIMS || !t->data)
        return false;
    int64_t expect = 1;
    for (int32_t i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] <= 0) return false;
        if (t->shape[i] != 1 && t->strides && t->strides[i] != expect) return false;
        expect *= t->shape[i];
    }
    return true;
}

static PyObject *call0(PyObject *obj, PyObject **name, const char *method) {
    if (!*name && !(*name = PyUnicode_InternFromString(method))) return NULL;
    return PyObject_CallMethodNoArgs(obj, *name);
}

/* The legacy capsule of obj's DenseTensor, or NULL with no error: not exportable here. */
static PyObject *export_of(PyObject *obj) {
    static PyObject *get_tensor, *to_dlpack; /* interned method names, kept for the process */
    PyObject        *dense = call0(obj, &get_tensor, "get_tensor");
    PyObject        *capsule = dense ? call0(dense, &to_dlpack, "_to_dlpack") : NULL;
    Py_XDECREF(dense);
    if (capsule && !PyCapsule_IsValid(capsule, "dltensor")) Py_CLEAR(capsule);
    if (!capsule && !PyErr_ExceptionMatches(PyExc_MemoryError)) PyErr_Clear();
    return capsule;
}

/* The tensor value for a plain export, named as paddle.save names it (tensor.name). */
static pdckpt_value *tensor_of(PyObject *obj, const DLTensor *t, pdckpt_dtype dtype) {
    static PyObject *name_attr;
    if (!name_attr && !(name_attr = PyUnicode_InternFromString("name"))) return NULL;
    PyObject *name = PyObject_GetAttr(obj, name_attr);
    if (!name) return NULL;
    pdckpt_value *v = pyn_named_borrowed(name, dtype, t->ndim, t->shape,
                                         (const uint8_t *)t->data + t->byte_offset);
    Py_DECREF(name);
    return v;
}

pdckpt_value *pyn_paddle_save_leaf(PyObject *obj, pyn_pins *pins, bool *handled) {
    *handled = false;
    PyObject *capsule = export_of(obj);
    if (!capsule) return NULL;
    DLManagedTensor *m = PyCapsule_GetPointer(capsule, "dltensor");
    pdckpt_dtype     dtype = m ? dl_dtype(m->dl_tensor.dtype) : PDCKPT_DTYPE_INVALID;
    pdckpt_value    *v = NULL;
    if (dtype != PDCKPT_DTYPE_INVALID && plain(&m->dl_tensor)) {
        *handled = true; /* the capsule (its deleter) keeps Paddle's memory until the save ends */
        v = PyList_Append(pins->keep, capsule) == 0 ? tensor_of(obj, &m->dl_tensor, dtype) : NULL;
    }
    Py_DECREF(capsule);
    return v;
}
