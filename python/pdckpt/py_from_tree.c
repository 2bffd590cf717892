/* SPDX-License-Identifier: Apache-2.0 */
/*
 * py_from_tree.c — a pdckpt_value tree as Python values: dict/list/tuple/set/str/bytes/int/float/
 * bool/None as themselves, tensors as NumPy arrays made in C over a TensorData (a view of the
 * tensor's bytes, no copy), opaque objects as pdckpt.OpaqueObject (never imported or run).
 * A value shared by several parents (a pickle memo reference) becomes one shared Python object.
 */
#include "py_native.h"

#include <stdio.h>

static PyObject *convert(const pdckpt_value *v, pyn_out *out);

/* One value converts differently where paddle.Tensors are made and where not (inside objects and
 * keys): the two conversions are memoised apart (values are at least 2-byte aligned). */
static bool paddle_here(const pyn_out *out) {
    return out->paddle && out->plain == 0;
}

/* (A tensor by its origin: the copies a name table's names made of one array are that array.) */
static PyObject *memo_key(const pdckpt_value *v, const pyn_out *out) {
    const pdckpt_value *one = pdckpt_tensor_origin(v);
    return PyLong_FromVoidPtr((char *)(one ? one : v) + paddle_here(out));
}

static bool named_tensor(const pdckpt_value *v) {
    pdckpt_tensor_view tv;
    return pdckpt_tensor_get_memory(v, &tv, NULL) && tv.name;
}

/* Whether tensor v becomes a paddle.Tensor here (else a NumPy array or scalar: with
 * return_numpy one array object in every place, as pickle gives it). */
static bool paddle_tensor_here(const pdckpt_value *v, const pyn_out *out) {
    return paddle_here(out) && !out->paddle->arrays && !pdckpt_value_numpy_scalar(v, NULL) &&
           (out->paddle->mode == PYN_PADDLE_ALL ||
            (out->paddle->mode == PYN_PADDLE_NAMED && named_tensor(v)));
}

static PyObject *tensor_to_py(const pdckpt_value *v, pyn_out *out) {
    if (pdckpt_value_numpy_scalar(v, NULL)) { /* a complex numpy scalar: arr[()] */
        PyObject *arr = pyn_array_new(v, out->owner, false, out->exact);
        PyObject *empty = arr ? PyTuple_New(0) : NULL;
        PyObject *scalar = empty ? PyObject_GetItem(arr, empty) : NULL;
        Py_XDECREF(empty);
        Py_XDECREF(arr);
        return scalar;
    }
    if (paddle_tensor_here(v, out)) return pyn_paddle_tensor(v, NULL, out);
    return pyn_array_new(v, out->owner, out->writable, out->exact);
}

/* Paddle's generic-path (name, ndarray) tuple, which paddle.load turns into a named tensor. */
static bool name_tuple(const pdckpt_value *v) {
    return pdckpt_value_len(v) == 2 &&
           pdckpt_value_kind(pdckpt_value_at(v, 0)) == PDCKPT_KIND_STRING &&
           pdckpt_value_kind(pdckpt_value_at(v, 1)) == PDCKPT_KIND_TENSOR;
}

static PyObject *name_tuple_to_paddle(const pdckpt_value *v, pyn_out *out) {
    size_t      len;
    const char *s = pdckpt_value_get_string(pdckpt_value_at(v, 0), &len);
    PyObject   *name = len ? PyUnicode_DecodeUTF8(s, (Py_ssize_t)len, "surrogatepass") : NULL;
    if (len && !name) return NULL;
    PyObject *t = pyn_paddle_tensor(pdckpt_value_at(v, 1), name, out);
    if (!t) pyn_note_failure(pdckpt_value_at(v, 1), out);
    Py_XDECREF(name);
    return t;
}

static PyObject *seq_to_py(const pdckpt_value *v, pyn_out *out, bool tuple) {
    if (tuple && paddle_here(out) && out->paddle->mode == PYN_PADDLE_NAMED && name_tuple(v))
        return name_tuple_to_paddle(v, out);
    size_t    n = pdckpt_value_len(v);
    PyObject *seq = tuple ? PyTuple_New((Py_ssize_t)n) : PyList_New((Py_ssize_t)n);
    if (!seq) return NULL;
    for (size_t i = 0; i < n; i++) {
        PyObject *item = convert(pdckpt_value_at(v, i), out);
        if (!item) {
            Py_DECREF(seq);
            return NULL;
        }
        if (tuple)
            PyTuple_SET_ITEM(seq, (Py_ssize_t)i, item);
        else
            PyList_SET_ITEM(seq, (Py_ssize_t)i, item);
    }
    return seq;
}

static PyObject *set_to_py(const pdckpt_value *v, pyn_out *out) {
    PyObject *set = PySet_New(NULL);
    for (size_t i = 0, n = pdckpt_value_len(v); set && i < n; i++) {
        PyObject *item = convert(pdckpt_value_at(v, i), out);
        if (!item || PySet_Add(set, item) < 0) Py_CLEAR(set); /* (a Tensor is hashable) */
        Py_XDECREF(item);
    }
    return set;
}

static PyObject *collections_type(PyObject **type, const char *name) {
    if (!*type) { /* kept for the interpreter's life, as the module's own imports */
        PyObject *collections = PyImport_ImportModule("collections");
        *type = collections ? PyObject_GetAttrString(collections, name) : NULL;
        Py_XDECREF(collections);
    }
    return *type;
}

PyObject *pyn_ordered_dict_type(void) {
    static PyObject *type;
    return collections_type(&type, "OrderedDict");
}

PyObject *pyn_defaultdict_type(void) {
    static PyObject *type;
    return collections_type(&type, "defaultdict");
}

/* A dict, or an OrderedDict where the pickle had one (filled through its own __setitem__:
 * PyDict_SetItem would bypass its order). */
static PyObject *dict_to_py(const pdckpt_value *v, pyn_out *out) {
    bool      ordered = pdckpt_dict_is_ordered(v);
    PyObject *type = ordered ? pyn_ordered_dict_type() : NULL;
    PyObject *dict = !ordered ? PyDict_New() : type ? PyObject_CallNoArgs(type) : NULL;
    for (size_t i = 0, n = pdckpt_value_len(v); dict && i < n; i++) {
        if (out->dropped && pdckpt_value_at(v, i) == out->dropped) continue;
        out->plain++; /* paddle.load makes no tensors of keys */
        PyObject *key = convert(pdckpt_dict_key_at(v, i), out);
        out->plain--;
        PyObject *item = key ? convert(pdckpt_value_at(v, i), out) : NULL;
        if (!item ||
            (ordered ? PyObject_SetItem(dict, key, item) : PyDict_SetItem(dict, key, item)) < 0)
            Py_CLEAR(dict);
        Py_XDECREF(key);
        Py_XDECREF(item);
    }
    return dict;
}

static PyObject *optional(const pdckpt_value *v, pyn_out *out) {
    if (v) return convert(v, out);
    Py_RETURN_NONE;
}

/* An int beyond 64 bits (the core's big int): the int it is; nothing is called. */
static PyObject *bigint_to_py(const void *bytes, size_t n) {
    PyObject *kw = Py_BuildValue("{s:O}", "signed", Py_True);
    PyObject *pos = Py_BuildValue("(y#s)", (const char *)bytes, (Py_ssize_t)n, "little");
    PyObject *fn = PyObject_GetAttrString((PyObject *)&PyLong_Type, "from_bytes");
    PyObject *i = kw && pos && fn ? PyObject_Call(fn, pos, kw) : NULL;
    Py_XDECREF(kw);
    Py_XDECREF(pos);
    Py_XDECREF(fn);
    return i;
}

static PyObject *numpy_scalar_to_py(PyObject *number, pdckpt_dtype dtype);

static PyObject *object_to_py(const pdckpt_value *v, pyn_out *out) {
    static const char *const kinds[] = {"reduce", "newobj", "global"};
    size_t                   n_big;
    const void              *big = pdckpt_value_get_bigint(v, &n_big);
    pdckpt_dtype             np;
    if (big && pdckpt_value_numpy_scalar(v, &np)) /* a uint64 beyond int64 */
        return numpy_scalar_to_py(bigint_to_py(big, n_big), np);
    if (big) return bigint_to_py(big, n_big);
    unsigned kind = (unsigned)pdckpt_object_kind_of(v);
    out->plain++; /* paddle.load looks into no object */
    PyObject *args = optional(pdckpt_object_args(v), out);
    PyObject *state = args ? optional(pdckpt_object_state(v), out) : NULL;
    PyObject *items = state ? optional(pdckpt_object_items(v), out) : NULL;
    out->plain--;
    PyObject *obj = NULL;
    if (items)
        obj = PyObject_CallFunction(pyn.opaque, "sssOOO", kind < 3 ? kinds[kind] : "reduce",
                                    pdckpt_object_module(v), pdckpt_object_name(v), args, state,
                                    items);
    Py_XDECREF(args);
    Py_XDECREF(state);
    Py_XDECREF(items);
    return obj;
}

/* A number that was a numpy scalar: numpy.dtype(name).type(number), as paddle.load gives it. */
static PyObject *numpy_scalar_to_py(PyObject *number, pdckpt_dtype dtype) {
    static PyObject *numpy_dtype; /* numpy.dtype, kept for the interpreter's life */
    if (!numpy_dtype) {
        PyObject *np = PyImport_ImportModule("numpy");
        numpy_dtype = np ? PyObject_GetAttrString(np, "dtype") : NULL;
        Py_XDECREF(np);
    }
    PyObject *dt = number && numpy_dtype
                       ? PyObject_CallFunction(numpy_dtype, "s", pdckpt_dtype_name(dtype))
                       : NULL;
    PyObject *type = dt ? PyObject_GetAttrString(dt, "type") : NULL;
    PyObject *out = type ? PyObject_CallOneArg(type, number) : NULL;
    Py_XDECREF(dt);
    Py_XDECREF(type);
    Py_XDECREF(number);
    return out;
}

static PyObject *plain_scalar_to_py(const pdckpt_value *v);

static PyObject *scalar_to_py(const pdckpt_value *v) {
    pdckpt_dtype np;
    if (pdckpt_value_numpy_scalar(v, &np)) return numpy_scalar_to_py(plain_scalar_to_py(v), np);
    return plain_scalar_to_py(v);
}

static PyObject *plain_scalar_to_py(const pdckpt_value *v) {
    bool        b;
    int64_t     i;
    double      f;
    size_t      len;
    const char *s;
    switch (pdckpt_value_kind(v)) {
    case PDCKPT_KIND_NONE: Py_RETURN_NONE;
    case PDCKPT_KIND_BOOL: return pdckpt_value_get_bool(v, &b), PyBool_FromLong(b);
    case PDCKPT_KIND_INT: return pdckpt_value_get_int(v, &i), PyLong_FromLongLong(i);
    case PDCKPT_KIND_FLOAT: return pdckpt_value_get_float(v, &f), PyFloat_FromDouble(f);
    case PDCKPT_KIND_STRING:
        s = pdckpt_value_get_string(v, &len);
        return PyUnicode_DecodeUTF8(s, (Py_ssize_t)len, "surrogatepass");
    case PDCKPT_KIND_BYTES:
        s = pdckpt_value_get_bytes(v, &len);
        return PyBytes_FromStringAndSize(s, (Py_ssize_t)len);
    default:
        return PyErr_Format(PyExc_TypeError, "pdckpt: unexpected value kind %s",
                            pdckpt_kind_name(pdckpt_value_kind(v)));
    }
}

static PyObject *convert_node(const pdckpt_value *v, pyn_out *out) {
    switch (pdckpt_value_kind(v)) {
    case PDCKPT_KIND_LIST: return seq_to_py(v, out, false);
    case PDCKPT_KIND_TUPLE: return seq_to_py(v, out, true);
    case PDCKPT_KIND_SET: return set_to_py(v, out);
    case PDCKPT_KIND_DICT: return dict_to_py(v, out);
    case PDCKPT_KIND_TENSOR: return tensor_to_py(v, out);
    case PDCKPT_KIND_OBJECT: return object_to_py(v, out);
    default: return scalar_to_py(v);
    }
}

static PyObject *convert_once(const pdckpt_value *v, pyn_out *out) {
    PyObject *obj = NULL;
    if (Py_EnterRecursiveCall(" while converting a pdckpt tree") == 0) {
        obj = convert_node(v, out);
        Py_LeaveRecursiveCall();
    }
    if (!obj) pyn_note_failure(v, out);
    return obj;
}

void pyn_note_failure(const pdckpt_value *v, pyn_out *out) {
    if (!out->failed && pdckpt_value_offset(v) >= 0) out->failed = v;
}

/* "a float32 array of shape [2, 3]", "an object numpy.dtype" */
static PyObject *describe(const pdckpt_value *v) {
    pdckpt_tensor_view tv;
    if (!pdckpt_tensor_get_memory(v, &tv, NULL))
        return PyUnicode_FromFormat("an object %s.%s", pdckpt_object_module(v),
                                    pdckpt_object_name(v));
    char   shape[PDCKPT_MAX_DIMS * 22 + 4] = "[";
    size_t n = 1;
    for (int32_t i = 0; i < tv.n_dims && n < sizeof shape - 24; i++)
        n += (size_t)snprintf(shape + n, sizeof shape - n, "%s%lld", i ? ", " : "",
                              (long long)tv.dims[i]);
    snprintf(shape + n, sizeof shape - n, "]");
    return PyUnicode_FromFormat("a%s %s array of shape %s", tv.name ? " named" : "",
                                pdckpt_dtype_name(tv.dtype), shape);
}

void pyn_annotate_failure(const pdckpt_value *v) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *at = value ? PyLong_FromLongLong(pdckpt_value_offset(v)) : NULL;
    PyObject *what = at ? describe(v) : NULL;
    if (!what || PyObject_SetAttrString(value, "pdckpt_offset", at) < 0 ||
        PyObject_SetAttrString(value, "pdckpt_value", what) < 0)
        PyErr_Clear(); /* an exception that takes no attributes: the message stays as it is */
    Py_XDECREF(at);
    Py_XDECREF(what);
    PyErr_Restore(type, value, tb);
}

PyObject *pyn_convert(const pdckpt_value *v, pyn_out *out) {
    return convert(v, out);
}

static PyObject *convert(const pdckpt_value *v, pyn_out *out) {
    pdckpt_kind kind = pdckpt_value_kind(v);
    bool        text = kind == PDCKPT_KIND_STRING || kind == PDCKPT_KIND_BYTES;
    /* Short strings (keys, names) are made afresh; long ones, which a pickle can reference
     * many times, stay one object. */
    size_t len = 0;
    if (kind == PDCKPT_KIND_STRING) pdckpt_value_get_string(v, &len);
    if (kind == PDCKPT_KIND_BYTES) pdckpt_value_get_bytes(v, &len);
    if ((kind < PDCKPT_KIND_LIST && !text) || (text && len <= 256)) return scalar_to_py(v);
    /* Met once: nothing to remember.  A paddle.Tensor is made per place, as paddle.load makes
     * it (the first over the payload, the others copies: pyn_paddle_tensor), never one object
     * that an in-place op on one key changes under another. */
    /* (a tensor renamed from an array held elsewhere: memoised by that array, pdckpt_tensor_origin)
     */
    const pdckpt_value *one = kind == PDCKPT_KIND_TENSOR ? pdckpt_tensor_origin(v) : v;
    if ((!pdckpt_value_shared(v) && !pdckpt_value_shared(one)) ||
        (kind == PDCKPT_KIND_TENSOR && paddle_tensor_here(v, out)))
        return convert_once(v, out);
    PyObject *key = memo_key(v, out);
    if (!key) return NULL;
    PyObject *hit = PyDict_GetItemWithError(out->memo, key);
    if (hit || PyErr_Occurred()) {
        Py_DECREF(key);
        Py_XINCREF(hit);
        return hit;
    }
    PyObject *obj = convert_once(v, out);
    if (obj && PyDict_SetItem(out->memo, key, obj) < 0) Py_CLEAR(obj);
    Py_DECREF(key);
    return obj;
}

/* With NumPy out, a state dict's name table names nothing: its entries convert as any dict's
 * (the same arrays), and the table itself, when the caller drops it, is never converted (held
 * by the root alone, it is found by address). */
static PyObject *numpy_root(const pdckpt_value *root, pyn_out *out) {
    const pdckpt_value *table = pdckpt_dict_get(root, PDCKPT_NAME_TABLE_KEY);
    out->dropped = out->drop_table && table && !pdckpt_value_shared(table) ? table : NULL;
    PyObject *obj = convert(root, out);
    out->dropped = NULL;
    return obj;
}

PyObject *pyn_from_tree(const pdckpt_value *value, pyn_out *out) {
    PyObject *memo = PyDict_New();
    if (!memo) return NULL;
    out->memo = memo;
    PyObject *obj = NULL;
    bool      table = out->paddle && out->paddle->mode == PYN_PADDLE_TABLE;
    if (table && out->paddle->arrays)
        obj = numpy_root(value, out);
    else if (pyn_paddle_batch(value, out) == 0)
        obj = table ? pyn_paddle_table_root(value, out) : convert(value, out);
    if (out->paddle) pyn_paddle_batch_clear(out->paddle); /* what the pass did not take */
    Py_CLEAR(out->payloads);
    out->memo = NULL;
    Py_DECREF(memo);
    return obj;
}
