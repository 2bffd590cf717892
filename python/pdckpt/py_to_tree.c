/* SPDX-License-Identifier: Apache-2.0 */
/*
 * py_to_tree.c — Python values as a pdckpt_value tree for saving.  Containers, scalars, NumPy
 * arrays (read through the buffer protocol: dtype and shape from the exported format) and plain
 * CPU paddle.Tensors (py_paddle.c) are converted here; everything else (strided or big-endian
 * arrays, other dtypes, numpy scalars, OpaqueObject, ...) goes through the facade's leaf hook,
 * which answers with a normalized tuple:
 *     ("tensor", data, dtype_name, shape, name[, "F"])   data: a contiguous buffer of the exact
 *                                                   bytes, in C order or ("F") column-major
 *     ("object", kind, module, name, args, state, items)
 *     ("value", replacement)
 * Tensor bytes are never copied: the tree borrows them (pdckpt_tensor_new_borrowed) from buffer
 * exports that stay pinned until the save is over.
 */
#include "py_native.h"

#include <string.h>

static pdckpt_value *convert(PyObject *obj, pyn_pins *pins);

int pyn_pins_init(pyn_pins *pins) {
    memset(pins, 0, sizeof *pins);
    pins->keep = PyList_New(0);
    pins->active = PySet_New(NULL);
    if (pins->keep && pins->active) return 0;
    pyn_pins_release(pins);
    return -1;
}

void pyn_pins_release(pyn_pins *pins) {
    for (size_t i = 0; i < pins->n_views; i++) PyBuffer_Release(&pins->views[i]);
    PyMem_Free(pins->views);
    pins->views = NULL;
    pins->n_views = pins->cap_views = 0;
    Py_CLEAR(pins->keep);
    PyMem_Free(pins->memo_keys);
    PyMem_Free(pins->memo_values);
    pins->memo_keys = NULL;
    pins->memo_values = NULL;
    pins->memo_cap = pins->memo_len = 0;
    Py_CLEAR(pins->active);
}

/* ---- the memo: Python object (kept alive in pins->keep) -> its tree value ---- */

static size_t memo_slot(const pyn_pins *pins, const PyObject *obj) {
    size_t mask = pins->memo_cap - 1, i = (size_t)(((uintptr_t)obj >> 4) * 0x9E3779B97F4A7C15ull);
    for (i &= mask; pins->memo_keys[i] && pins->memo_keys[i] != obj; i = (i + 1) & mask) {
    }
    return i;
}

static pdckpt_value *memo_get(const pyn_pins *pins, const PyObject *obj) {
    if (!pins->memo_cap) return NULL;
    size_t i = memo_slot(pins, obj);
    return pins->memo_keys[i] ? pins->memo_values[i] : NULL;
}

static int memo_grow(pyn_pins *pins) {
    size_t         cap = pins->memo_cap ? pins->memo_cap * 2 : 1024;
    PyObject     **keys = PyMem_Calloc(cap, sizeof *keys);
    pdckpt_value **values = PyMem_Calloc(cap, sizeof *values);
    if (!keys || !values) {
        PyMem_Free(keys);
        PyMem_Free(values);
        PyErr_NoMemory();
        return -1;
    }
    pyn_pins old = *pins;
    pins->memo_keys = keys;
    pins->memo_values = values;
    pins->memo_cap = cap;
    for (size_t i = 0; i < old.memo_cap; i++)
        if (old.memo_keys[i]) {
            size_t j = memo_slot(pins, old.memo_keys[i]);
            keys[j] = old.memo_keys[i];
            values[j] = old.memo_values[i];
        }
    PyMem_Free(old.memo_keys);
    PyMem_Free(old.memo_values);
    return 0;
}

/* Notes obj -> v and keeps obj alive, so its address names no other object meanwhile. */
static int memo_put(pyn_pins *pins, PyObject *obj, pdckpt_value *v) {
    if ((pins->memo_len + 1) * 2 > pins->memo_cap && memo_grow(pins) < 0) return -1;
    if (PyList_Append(pins->keep, obj) < 0) return -1;
    size_t i = memo_slot(pins, obj);
    pins->memo_keys[i] = obj;
    pins->memo_values[i] = v;
    pins->memo_len++;
    return 0;
}

static Py_buffer *pin_view(pyn_pins *pins) {
    if (pins->n_views == pins->cap_views) {
        size_t     cap = pins->cap_views ? pins->cap_views * 2 : 16;
        Py_buffer *grown = PyMem_Realloc(pins->views, cap * sizeof *grown);
        if (!grown) return (Py_buffer *)PyErr_NoMemory();
        pins->views = grown;
        pins->cap_views = cap;
    }
    return &pins->views[pins->n_views];
}

/* Turns a failed library call into the matching pdckpt.Error. */
static pdckpt_value *failed(pdckpt_value *partial, const pdckpt_error *err) {
    pdckpt_value_free(partial);
    pyn_raise(err);
    return NULL;
}

static int shape_from(PyObject *shape, int64_t *dims, int32_t *n_dims) {
    PyObject *seq = PySequence_Fast(shape, "pdckpt: tensor shape must be a sequence");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int        rc = 0;
    if (n > PDCKPT_MAX_DIMS) {
        PyErr_Format(PyExc_ValueError, "pdckpt: at most %d dims, found %zd", PDCKPT_MAX_DIMS, n);
        rc = -1;
    }
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        dims[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (dims[i] == -1 && PyErr_Occurred()) rc = -1;
    }
    *n_dims = (int32_t)n;
    Py_DECREF(seq);
    return rc;
}

/* ("tensor", data, dtype_name, shape, name): borrows data's bytes. */
static pdckpt_value *tensor_leaf(PyObject *leaf, pyn_pins *pins) {
    PyObject   *data, *shape, *name;
    const char *tag, *dtype_name, *order = "C";
    if (!PyArg_ParseTuple(leaf, "sOsOO|s", &tag, &data, &dtype_name, &shape, &name, &order))
        return NULL;
    pdckpt_dtype dtype = pdckpt_dtype_from_name(dtype_name);
    if (dtype == PDCKPT_DTYPE_INVALID)
        return PyErr_Format(PyExc_TypeError, "pdckpt cannot save dtype %s", dtype_name), NULL;
    int64_t dims[PDCKPT_MAX_DIMS];
    int32_t n_dims;
    if (shape_from(shape, dims, &n_dims) < 0) return NULL;
    Py_buffer *view = pin_view(pins);
    if (!view || PyObject_GetBuffer(data, view, PyBUF_SIMPLE) < 0) return NULL;
    pins->n_views++;
    pdckpt_error  err;
    pdckpt_value *t = NULL;
    if (pdckpt_tensor_new_borrowed(NULL, dtype, n_dims, dims, view->len ? view->buf : NULL, &t,
                                   &err) != PDCKPT_OK)
        return failed(NULL, &err);
    pdckpt_tensor_view tv;
    pdckpt_tensor_get_memory(t, &tv, NULL);
    if (*order == 'F' && pdckpt_tensor_set_fortran(t, &err) != PDCKPT_OK) return failed(t, &err);
    if (tv.n_bytes != (uint64_t)view->len) {
        pdckpt_value_free(t);
        return PyErr_Format(PyExc_ValueError, "pdckpt: tensor data has %zd bytes, expected %llu",
                            view->len, (unsigned long long)tv.n_bytes),
               NULL;
    }
    if (name != Py_None) {
        const char *s = PyUnicode_AsUTF8(name);
        if (!s) return pdckpt_value_free(t), NULL;
        if (pdckpt_tensor_set_name(t, s, &err) != PDCKPT_OK) return failed(t, &err);
    }
    return t;
}

static pdckpt_value *optional(PyObject *obj, pyn_pins *pins, bool *ok) {
    *ok = true;
    if (obj == Py_None) return NULL;
    pdckpt_value *v = convert(obj, pins);
    *ok = v != NULL;
    return v;
}

/* ("object", kind, module, name, args, state, items). */
static pdckpt_value *object_leaf(PyObject *leaf, pyn_pins *pins) {
    PyObject   *o_args, *o_state, *o_items;
    const char *tag, *module, *name;
    int         kind;
    if (!PyArg_ParseTuple(leaf, "sissOOO", &tag, &kind, &module, &name, &o_args, &o_state,
                          &o_items))
        return NULL;
    bool          ok_args, ok_state = false, ok_items = false;
    pdckpt_value *args = optional(o_args, pins, &ok_args);
    pdckpt_value *state = ok_args ? optional(o_state, pins, &ok_state) : NULL;
    pdckpt_value *items = ok_state ? optional(o_items, pins, &ok_items) : NULL;
    if (!ok_items) {
        pdckpt_value_free(args);
        pdckpt_value_free(state);
        return NULL;
    }
    pdckpt_value *obj =
        pdckpt_value_new_object(NULL, (pdckpt_object_kind)kind, module, name, args, state);
    if (!obj) {
        pdckpt_value_free(items);
        return (pdckpt_value *)PyErr_NoMemory();
    }
    pdckpt_error err;
    if (items && pdckpt_object_set_items(obj, items, &err) != PDCKPT_OK) return failed(obj, &err);
    return obj;
}

/* One little-endian scalar of a buffer's struct format ("<f", "Zd", ...) as a pdckpt dtype;
 * INVALID for anything else (then the hook judges the array). */
static pdckpt_dtype format_dtype(const char *f, Py_ssize_t itemsize) {
    static const char         codes[] = "?bBhHiIlLqQefd";
    static const pdckpt_dtype dtypes[] = {
        PDCKPT_DTYPE_BOOL,    PDCKPT_DTYPE_INT8,   PDCKPT_DTYPE_UINT8,  PDCKPT_DTYPE_INT16,
        PDCKPT_DTYPE_UINT16,  PDCKPT_DTYPE_INT32,  PDCKPT_DTYPE_UINT32, PDCKPT_DTYPE_INT64,
        PDCKPT_DTYPE_UINT64,  PDCKPT_DTYPE_INT64,  PDCKPT_DTYPE_UINT64, PDCKPT_DTYPE_FLOAT16,
        PDCKPT_DTYPE_FLOAT32, PDCKPT_DTYPE_FLOAT64};
    if (!f) return PDCKPT_DTYPE_INVALID;
    if (*f == '<' || (PY_LITTLE_ENDIAN && (*f == '=' || *f == '@'))) f++;
    pdckpt_dtype d = PDCKPT_DTYPE_INVALID;
    if (f[0] == 'Z' && (f[1] == 'f' || f[1] == 'd') && !f[2])
        d = f[1] == 'f' ? PDCKPT_DTYPE_COMPLEX64 : PDCKPT_DTYPE_COMPLEX128;
    else if (f[0] && !f[1] && strchr(codes, f[0]))
        d = dtypes[strchr(codes, f[0]) - codes];
    return d != PDCKPT_DTYPE_INVALID && pdckpt_dtype_size(d) == (size_t)itemsize
               ? d
               : PDCKPT_DTYPE_INVALID;
}

/* A C- or F-contiguous little-endian NumPy array of a plain dtype as a tensor borrowing its memory
 * in the order it has (the export stays pinned until the save is over; the pickle writer writes
 * it as it is, as numpy does); NULL with *handled false: ask the hook. */
static pdckpt_value *array_leaf(PyObject *obj, pyn_pins *pins, bool *handled) {
    Py_buffer *view = pin_view(pins);
    *handled = view == NULL;
    if (!view) return NULL;
    if (PyObject_GetBuffer(obj, view, PyBUF_RECORDS_RO) < 0) {
        PyErr_Clear(); /* e.g. an ml_dtypes array: NumPy exports no format for it */
        return NULL;
    }
    bool         c_order = PyBuffer_IsContiguous(view, 'C');
    pdckpt_dtype dtype =
        (c_order || PyBuffer_IsContiguous(view, 'F')) && view->ndim <= PDCKPT_MAX_DIMS
            ? format_dtype(view->format, view->itemsize)
            : PDCKPT_DTYPE_INVALID;
    if (dtype == PDCKPT_DTYPE_INVALID) {
        PyBuffer_Release(view);
        return NULL;
    }
    pins->n_views++;
    *handled = true;
    int64_t dims[PDCKPT_MAX_DIMS];
    for (int i = 0; i < view->ndim; i++) dims[i] = view->shape[i];
    pdckpt_value *t = NULL;
    pdckpt_error  err;
    if (pdckpt_tensor_new_borrowed(NULL, dtype, view->ndim, dims, view->len ? view->buf : NULL, &t,
                                   &err) != PDCKPT_OK)
        return failed(NULL, &err);
    if (!c_order && pdckpt_tensor_set_fortran(t, &err) != PDCKPT_OK) return failed(t, &err);
    return t;
}

/* ("value", number, dtype_name): a numpy scalar, kept as one (pdckpt_value_set_numpy_scalar). */
static pdckpt_value *numpy_scalar_leaf(PyObject *leaf, pyn_pins *pins) {
    const char   *name = PyUnicode_AsUTF8(PyTuple_GET_ITEM(leaf, 2));
    pdckpt_value *v = name ? convert(PyTuple_GET_ITEM(leaf, 1), pins) : NULL;
    if (v) pdckpt_value_set_numpy_scalar(v, pdckpt_dtype_from_name(name));
    return v;
}

/* Asks the facade's hook what `obj` is, then converts its answer. */
static pdckpt_value *hooked(PyObject *obj, pyn_pins *pins) {
    if (pyn.ndarray && Py_IS_TYPE(obj, (PyTypeObject *)pyn.ndarray)) {
        bool          handled; /* a plain array: its buffer says everything */
        pdckpt_value *v = array_leaf(obj, pins, &handled);
        if (handled) return v;
    }
    if (pins->paddle_type && PyObject_TypeCheck(obj, (PyTypeObject *)pins->paddle_type)) {
        bool          handled = false; /* a plain CPU tensor: no Python round trip */
        pdckpt_value *v = pins->paddle_dlpack ? pyn_paddle_save_leaf(obj, pins, &handled) : NULL;
        if (handled || PyErr_Occurred()) return v;
        v = pyn_paddle_leaf(obj, pins->paddle_dtypes, &handled);
        if (handled) return v;
    }
    PyObject *leaf = PyObject_CallOneArg(pyn.leaf_hook, obj);
    if (!leaf) return NULL;
    pdckpt_value *v = NULL;
    if (PyList_Append(pins->keep, leaf) == 0) {
        const char *tag = PyTuple_Check(leaf) && PyTuple_GET_SIZE(leaf) > 0 &&
                                  PyUnicode_Check(PyTuple_GET_ITEM(leaf, 0))
                              ? PyUnicode_AsUTF8(PyTuple_GET_ITEM(leaf, 0))
                              : "";
        if (tag && strcmp(tag, "tensor") == 0)
            v = tensor_leaf(leaf, pins);
        else if (tag && strcmp(tag, "object") == 0)
            v = object_leaf(leaf, pins);
        else if (tag && strcmp(tag, "value") == 0 && PyTuple_GET_SIZE(leaf) == 2)
            v = convert(PyTuple_GET_ITEM(leaf, 1), pins);
        else if (tag && strcmp(tag, "value") == 0 && PyTuple_GET_SIZE(leaf) == 3)
            v = numpy_scalar_leaf(leaf, pins);
        else if (tag)
            PyErr_SetString(PyExc_TypeError, "pdckpt: malformed leaf from the hook");
    }
    Py_DECREF(leaf);
    return v;
}

static pdckpt_value *seq_to_tree(PyObject *obj, pdckpt_kind kind, pyn_pins *pins) {
    PyObject *seq = PySequence_Fast(obj, "pdckpt: expected a sequence");
    if (!seq) return NULL;
    pdckpt_value *c = pdckpt_value_new_container(NULL, kind);
    if (!c) PyErr_NoMemory();
    for (Py_ssize_t i = 0; c && i < PySequence_Fast_GET_SIZE(seq); i++) {
        pdckpt_value *item = convert(PySequence_Fast_GET_ITEM(seq, i), pins);
        pdckpt_error  err;
        if (!item)
            c = (pdckpt_value_free(c), NULL);
        else if (pdckpt_value_append(c, item, &err) != PDCKPT_OK)
            c = failed(c, &err);
    }
    Py_DECREF(seq);
    return c;
}

static pdckpt_value *set_to_tree(PyObject *obj, pyn_pins *pins) {
    PyObject *items = PySequence_List(obj);
    if (!items) return NULL;
    pdckpt_value *v = seq_to_tree(items, PDCKPT_KIND_SET, pins);
    Py_DECREF(items);
    return v;
}

/* Sets one entry: string keys without NUL by name, any other key as a value. */
static int dict_put(pdckpt_value *d, PyObject *key, PyObject *item, pyn_pins *pins) {
    pdckpt_error err;
    Py_ssize_t   klen = 0;
    const char  *k = PyUnicode_CheckExact(key) ? PyUnicode_AsUTF8AndSize(key, &klen) : NULL;
    if (!k && PyErr_Occurred()) { /* a lone surrogate: a value, encoded as pickle encodes it */
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return -1;
        PyErr_Clear();
    }
    pdckpt_value *kv = k && strlen(k) == (size_t)klen ? NULL : convert(key, pins);
    if (!k && !kv) return -1;
    pdckpt_value *iv = convert(item, pins);
    if (!iv) return pdckpt_value_free(kv), -1;
    pdckpt_status st =
        kv ? pdckpt_dict_set_value(d, kv, iv, &err) : pdckpt_dict_set(d, k, iv, &err);
    if (st != PDCKPT_OK) return pyn_raise(&err), -1;
    return 0;
}

static pdckpt_value *dict_to_tree(PyObject *obj, pyn_pins *pins) {
    /* Items in the mapping's own order (an OrderedDict's order is not its dict storage order). */
    PyObject *items = PyDict_CheckExact(obj) ? PyDict_Items(obj) : PyMapping_Items(obj);
    if (!items) return NULL;
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    if (!d) PyErr_NoMemory();
    PyObject *ordered = d && !PyDict_CheckExact(obj) ? pyn_ordered_dict_type() : NULL;
    if (ordered && Py_IS_TYPE(obj, (PyTypeObject *)ordered)) /* pickled as an OrderedDict */
        pdckpt_dict_set_ordered(d, true);
    else if (d && !PyDict_CheckExact(obj) && PyErr_Occurred())
        d = (pdckpt_value_free(d), NULL);
    for (Py_ssize_t i = 0; d && i < PyList_GET_SIZE(items); i++) {
        PyObject *pair = PyList_GET_ITEM(items, i);
        if (dict_put(d, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1), pins) < 0)
            d = (pdckpt_value_free(d), NULL);
    }
    Py_DECREF(items);
    return d;
}

/* An int beyond 64 bits: its minimal little-endian two's-complement bytes (pickle's LONG1/LONG4
 * payload) as the core's big int (pdckpt_value_new_bigint). */
static pdckpt_value *bigint_to_tree(PyObject *obj) {
    PyObject *bits = PyObject_CallMethod(obj, "bit_length", NULL);
    size_t    n = bits ? (PyLong_AsSize_t(bits) >> 3) + 1 : 0;
    Py_XDECREF(bits);
    if (n == 0 || PyErr_Occurred()) return NULL;
    PyObject *kw = Py_BuildValue("{s:O}", "signed", Py_True);
    PyObject *fn = PyObject_GetAttrString(obj, "to_bytes");
    PyObject *pos = Py_BuildValue("(ns)", (Py_ssize_t)n, "little");
    PyObject *raw = kw && fn && pos ? PyObject_Call(fn, pos, kw) : NULL;
    Py_XDECREF(kw);
    Py_XDECREF(fn);
    Py_XDECREF(pos);
    if (!raw) return NULL;
    const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(raw);
    if (b[n - 1] == 0xFF && n > 1 && b[n - 2] & 0x80) n--; /* -2**63-1 needs no extra 0xFF */
    pdckpt_value *v = pdckpt_value_new_bigint(NULL, b, n);
    Py_DECREF(raw);
    if (!v) PyErr_NoMemory();
    return v;
}

static pdckpt_value *scalar_to_tree(PyObject *obj, bool *handled) {
    *handled = true;
    if (obj == Py_None) return pdckpt_value_new_none(NULL);
    if (PyBool_Check(obj)) return pdckpt_value_new_bool(NULL, obj == Py_True);
    if (PyLong_CheckExact(obj)) {
        int       overflow = 0;
        long long i = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (overflow) return bigint_to_tree(obj);
        return i == -1 && PyErr_Occurred() ? NULL : pdckpt_value_new_int(NULL, i);
    }
    if (PyFloat_CheckExact(obj)) return pdckpt_value_new_float(NULL, PyFloat_AS_DOUBLE(obj));
    if (PyUnicode_CheckExact(obj)) { /* subclasses (numpy.str_): the leaf hook */
        PyObject *utf8 = PyUnicode_AsEncodedString(obj, "utf-8", "surrogatepass");
        if (!utf8) return NULL;
        pdckpt_value *v =
            pdckpt_value_new_string(NULL, PyBytes_AS_STRING(utf8), (size_t)PyBytes_GET_SIZE(utf8));
        Py_DECREF(utf8);
        return v;
    }
    if (PyBytes_CheckExact(obj))
        return pdckpt_value_new_bytes(NULL, PyBytes_AS_STRING(obj), (size_t)PyBytes_GET_SIZE(obj));
    if (PyByteArray_Check(obj))
        return pdckpt_value_new_bytes(NULL, PyByteArray_AS_STRING(obj),
                                      (size_t)PyByteArray_GET_SIZE(obj));
    *handled = false;
    return NULL;
}

static pdckpt_value *convert_node(PyObject *obj, pyn_pins *pins) {
    if (PyDict_Check(obj) && !PyDict_CheckExact(obj) && pyn_defaultdict_type() &&
        Py_IS_TYPE(obj, (PyTypeObject *)pyn_defaultdict_type()))
        return hooked(obj, pins); /* pickled as CPython reduces it: leaf_hook */
    if (PyDict_Check(obj)) return dict_to_tree(obj, pins);
    if (PyList_Check(obj)) return seq_to_tree(obj, PDCKPT_KIND_LIST, pins);
    if (PyTuple_Check(obj)) return seq_to_tree(obj, PDCKPT_KIND_TUPLE, pins);
    if (PyAnySet_Check(obj)) return set_to_tree(obj, pins);
    return hooked(obj, pins);
}

/* A tensor of Paddle or NumPy: a leaf, which cannot contain itself (no cycle check). */
static bool is_leaf_type(PyObject *obj, const pyn_pins *pins) {
    return (pyn.ndarray && Py_IS_TYPE(obj, (PyTypeObject *)pyn.ndarray)) ||
           (pins->paddle_type && PyObject_TypeCheck(obj, (PyTypeObject *)pins->paddle_type));
}

/* A container on the path being converted is refused (a cycle); else converted. */
static pdckpt_value *convert_checked(PyObject *obj, pyn_pins *pins) {
    if (is_leaf_type(obj, pins)) return convert_node(obj, pins);
    PyObject *id = PyLong_FromVoidPtr(obj);
    if (!id) return NULL;
    pdckpt_value *v = NULL;
    int           on_path = PySet_Contains(pins->active, id);
    if (on_path == 1)
        PyErr_SetString(PyExc_ValueError, "pdckpt: cannot save an object that contains itself");
    else if (on_path == 0 && PySet_Add(pins->active, id) == 0) {
        if (Py_EnterRecursiveCall(" while converting an object for pdckpt") == 0) {
            v = convert_node(obj, pins);
            Py_LeaveRecursiveCall();
        }
        PySet_Discard(pins->active, id);
    }
    Py_DECREF(id);
    return v;
}

/* Containers and leaves are memoized by identity, so sharing survives; cycles are refused. */
static pdckpt_value *convert(PyObject *obj, pyn_pins *pins) {
    bool          handled;
    pdckpt_value *v = scalar_to_tree(obj, &handled);
    if (handled) return v || PyErr_Occurred() ? v : (pdckpt_value *)PyErr_NoMemory();
    if ((v = memo_get(pins, obj)) != NULL) return pdckpt_value_retain(v);
    v = convert_checked(obj, pins);
    if (v && memo_put(pins, obj, v) < 0) v = (pdckpt_value_free(v), NULL);
    return v;
}

/* The cyclic GC is held off: the conversion makes many Python objects and frees none. */
pdckpt_value *pyn_to_tree(PyObject *obj, pyn_pins *pins) {
    int           gc_was_on = PyGC_Disable();
    pdckpt_value *v = convert(obj, pins);
    if (gc_was_on) PyGC_Enable();
    return v;
}
