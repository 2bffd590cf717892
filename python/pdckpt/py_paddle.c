/* SPDX-License-Identifier: Apache-2.0 */
/*
 * py_paddle.c — loaded tensors as paddle.Tensors in the conversion pass itself (issue 18).
 * paddle.load's object rules (spec §1.6; tests/py/test_python_api.py checks them against Paddle's):
 * a state dict with a name table makes the entries the table lists tensors, named by it; else
 * Paddle's (name, ndarray) tuples and named arrays become tensors when there are any; else every
 * array does.  With return_numpy=True the same rules give NumPy arrays (a (name, ndarray) tuple
 * is its array), so no load walks the result a second time in Python.  A tensor whose data the load
 * owns (read, not mapped, aligned to its element) goes to Paddle as a DLPack capsule of that
 * memory, so nothing is copied and Paddle's deleter releases pdckpt's buffer; any other (mapped or
 * borrowed data, dtypes Paddle has no tensor for, zero-size) takes the facade's copying path.
 */
#include "py_native.h"

#include <stdio.h>
#include <string.h>

/* ---- which rule applies ---- */

bool pyn_paddle_is_name_table_key(const pdckpt_value *key) {
    size_t      len;
    const char *s = pdckpt_value_get_string(key, &len);
    return s && len == sizeof PDCKPT_NAME_TABLE_KEY - 1 &&
           memcmp(s, PDCKPT_NAME_TABLE_KEY, len) == 0;
}

/* Paddle's search for a named tensor: dict values, list and tuple items (not sets, objects);
 * `budget` bounds the walk of a DAG of shared values (out of budget: assume named). */
static bool has_named(const pdckpt_value *v, unsigned depth, uint64_t *budget) {
    if (depth > PDCKPT_MAX_WALK_DEPTH || (*budget)-- == 0) return true;
    pdckpt_tensor_view tv;
    switch (pdckpt_value_kind(v)) {
    case PDCKPT_KIND_TENSOR: return pdckpt_tensor_get_memory(v, &tv, NULL) && tv.name;
    case PDCKPT_KIND_TUPLE:
        if (pdckpt_value_len(v) == 2 &&
            pdckpt_value_kind(pdckpt_value_at(v, 0)) == PDCKPT_KIND_STRING &&
            pdckpt_value_kind(pdckpt_value_at(v, 1)) == PDCKPT_KIND_TENSOR)
            return true;
        /* fall through */
    case PDCKPT_KIND_LIST:
    case PDCKPT_KIND_DICT:
        for (size_t i = 0, n = pdckpt_value_len(v); i < n; i++)
            if (has_named(pdckpt_value_at(v, i), depth + 1, budget)) return true;
        return false;
    default: return false;
    }
}

pyn_paddle_mode pyn_paddle_mode_of(const pdckpt_value *root) {
    if (pdckpt_value_kind(root) == PDCKPT_KIND_DICT)
        for (size_t i = 0, n = pdckpt_value_len(root); i < n; i++)
            if (pyn_paddle_is_name_table_key(pdckpt_dict_key_at(root, i))) return PYN_PADDLE_TABLE;
    uint64_t budget = (uint64_t)1 << 24;
    return has_named(root, 0, &budget) ? PYN_PADDLE_NAMED : PYN_PADDLE_ALL;
}

/* ---- one tensor ---- */

/* Aligned to its element (what Paddle's own safetensors load gives it: 8-byte-aligned data); a
 * pickle's tensors are moved to 64-byte-aligned places before (relayout.c). */
static bool naturally_aligned(const pdckpt_tensor_view *tv) {
    size_t size = pdckpt_dtype_size(tv->dtype);
    return size && (uintptr_t)tv->data % size == 0;
}

/* Data Paddle may own as it is: a private, aligned allocation of the load, a dtype it has. */
bool pyn_paddle_direct(const pdckpt_tensor_view *tv, const pyn_out *out) {
    switch (tv->dtype) {
    case PDCKPT_DTYPE_UINT16:
    case PDCKPT_DTYPE_UINT32:
    case PDCKPT_DTYPE_UINT64: return false;
    case PDCKPT_DTYPE_BOOL:
        if (out->paddle->no_bool == Py_True) return false; /* DLPack's bool is newer */
        break;
    default: break;
    }
    return out->paddle->from_dlpack != Py_None && out->writable && tv->n_bytes && tv->buffer &&
           !pdckpt_buffer_is_mapped(tv->buffer) && naturally_aligned(tv);
}

static PyObject *name_or_own(PyObject *name, const pdckpt_tensor_view *tv) {
    if (name) return Py_NewRef(name);
    if (!tv->name) Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(tv->name, (Py_ssize_t)strlen(tv->name), "replace");
}

/* The facade's path: a NumPy view, then fallback(array, name, dtype) (a copy, or the array). */
static PyObject *via_fallback(const pdckpt_value *v, const pdckpt_tensor_view *tv, PyObject *name,
                              pyn_out *out) {
    PyObject *arr = pyn_array_new(v, out->owner, out->writable, out->exact);
    PyObject *nm = arr ? name_or_own(name, tv) : NULL;
    PyObject *t = nm ? PyObject_CallFunction(out->paddle->fallback, "OOs", arr, nm,
                                             pdckpt_dtype_name(tv->dtype))
                     : NULL;
    Py_XDECREF(arr);
    Py_XDECREF(nm);
    return t;
}

/* A DLPack capsule of the tensor's own memory, writable (the load owns it privately), in the
 * pre-1.0 form: Paddle 2.6's from_dlpack takes only "dltensor" (a "dltensor_versioned" capsule
 * failed every drop-in load there), Paddle 3 takes both. */
PyObject *pyn_paddle_capsule(const pdckpt_value *v) {
    DLManagedTensorVersioned *m = NULL;
    pdckpt_error              err;
    if (pdckpt_value_to_dlpack(v, &m, &err) != PDCKPT_OK) return pyn_raise(&err);
    return pyn_legacy_capsule(m);
}

/* A new paddle.Tensor of the tensor's own memory (no copy), or one made ahead by the batch. */
static PyObject *direct_tensor(const pdckpt_value *v, bool named, pyn_out *out) {
    /* (an unnamed tensor keeps the name the constructor gives, which unstack's tensors differ in)
     */
    PyObject *t = named ? pyn_paddle_take(v, out) : NULL;
    if (t || PyErr_Occurred()) return t;
    PyObject *capsule = pyn_paddle_capsule(v);
    PyObject *dense = capsule ? PyObject_CallOneArg(out->paddle->from_dlpack, capsule) : NULL;
    Py_XDECREF(capsule);
    if (out->paddle->tensor_type == Py_None) return dense; /* static mode: the DenseTensor */
    t = dense ? PyObject_CallFunctionObjArgs(out->paddle->tensor_type, dense, out->paddle->place,
                                             NULL)
              : NULL;
    Py_XDECREF(dense);
    return t;
}

/* 1 if a paddle.Tensor was already made over this payload, else notes it (0; -1: error).  One
 * payload under several parents (a pickle's memo reference; Paddle never writes one) is one
 * tensor per parent to paddle.load, so an in-place op on one must not show in the others: the
 * second and later get a copy (to_paddle), not a view. */
static int payload_seen(const pdckpt_tensor_view *tv, pyn_out *out) {
    if (!tv->data) return 0; /* empty: nothing to share */
    if (!out->payloads && !(out->payloads = PySet_New(NULL))) return -1;
    PyObject *at = PyLong_FromVoidPtr((void *)tv->data);
    int       seen = at ? PySet_Contains(out->payloads, at) : -1;
    if (seen == 0 && PySet_Add(out->payloads, at) < 0) seen = -1;
    Py_XDECREF(at);
    return seen;
}

/* A payload made into a tensor again (a copy per place, as paddle.load makes them) costs Paddle
 * at least 4 KiB (its CPU allocator's alignment): a pickle naming one small array in 200,000
 * places (400 KB) made 1.1 GB of tensors.  Copies are held to 64 MiB + 4 x the payloads made
 * once (max_alloc_bytes' default rule); a file Paddle wrote names each payload once. */
static int charge_again(const pdckpt_tensor_view *tv, pyn_out *out, int seen) {
    if (!seen) {
        out->first_bytes += tv->n_bytes;
        return 0;
    }
    uint64_t cost = tv->n_bytes > 4096 ? tv->n_bytes : 4096;
    uint64_t bound = (UINT64_C(64) << 20) + 4 * out->first_bytes;
    out->again_bytes += cost;
    if (out->again_bytes <= bound) return 0;
    pdckpt_error err = PDCKPT_ERROR_INIT;
    err.status = PDCKPT_ERR_LIMIT;
    snprintf(err.message, sizeof err.message,
             "expected at most %llu bytes of tensors made again for payloads the pickle names in "
             "several places (a tensor per place, as paddle.load makes them, 4 KiB each at "
             "least; 64 MiB + 4 x the payloads), found more",
             (unsigned long long)bound);
    pyn_raise(&err);
    return -1;
}

/* t.name = nm (the attribute's name interned once: one per tensor of a W2 load otherwise). */
static int set_name(PyObject *t, PyObject *nm) {
    static PyObject *attr;
    if (!attr && !(attr = PyUnicode_InternFromString("name"))) return -1;
    return PyObject_SetAttr(t, attr, nm);
}

PyObject *pyn_paddle_tensor(const pdckpt_value *v, PyObject *name, pyn_out *out) {
    if (out->paddle->arrays) return pyn_array_new(v, out->owner, out->writable, out->exact);
    pdckpt_tensor_view tv; /* C order: what a paddle.Tensor is made of */
    if (!pdckpt_tensor_get(v, &tv)) return PyErr_Format(PyExc_TypeError, "not a tensor");
    bool direct = pyn_paddle_direct(&tv, out);
    /* a renamed copy of an array held elsewhere too (a name table's name for one array under
     * several keys) is a copy every time: the array may also be a NumPy view elsewhere (a key
     * the table omits).  (Paddle's (name, ndarray) tuples are renamed copies held alone.) */
    const pdckpt_value *origin = pdckpt_tensor_origin(v);
    bool                renamed = origin != v && pdckpt_value_shared(origin);
    /* a payload met again is a copy: counted wherever it may be (a shared value), or made
     * directly (the payload may sit under two values: a tuple shared by the memo) */
    int seen = direct || renamed || pdckpt_value_shared(v) ? payload_seen(&tv, out) : 0;
    if (seen < 0 || charge_again(&tv, out, seen) < 0) return NULL;
    if (seen || renamed || !direct) return via_fallback(v, &tv, name, out);
    PyObject *nm = name_or_own(name, &tv);
    bool      named = nm && PyUnicode_Check(nm) && PyUnicode_GET_LENGTH(nm) &&
                 out->paddle->tensor_type != Py_None; /* a DenseTensor has no name */
    PyObject *t = nm ? direct_tensor(v, named, out) : NULL;
    if (t && named && set_name(t, nm) < 0) Py_CLEAR(t);
    Py_XDECREF(nm);
    return t;
}

/* ---- the state-dict rule ---- */

/* A name taken out of the table before a consuming pass (NAME_ABSENT: the key is not in the
 * table; NAME_NOT_STR: it is, with a value that is no str). */
enum { NAME_ABSENT = -1, NAME_NOT_STR = -2 };
typedef struct taken_name {
    size_t  at; /* in name_table.bytes */
    int64_t len;
} taken_name;

/* The root's name table: its value in the tree and its place in the root, made Python on first
 * need, or (a consuming pass) its names copied out and the table itself released. */
typedef struct name_table {
    const pdckpt_value *tree; /* NULL: the root has none */
    size_t              at;   /* its index in the root (SIZE_MAX: none) */
    PyObject           *py;
    taken_name         *taken; /* per root entry, or NULL */
    char               *bytes;
} name_table;

/* The table's entry for str key `key` looked up in the tree (a str equals only the str of its
 * bytes): 1 (*s: the name, or NULL when the value is no str), 0 when absent, -1 when the key is
 * not a str without a NUL (then Python's equality must decide). */
static int tree_name(const pdckpt_value *table, const pdckpt_value *key, const char **s,
                     size_t *len) {
    const char *k = pdckpt_value_get_string(key, len);
    *s = NULL;
    if (!k || memchr(k, 0, *len)) return -1;
    const pdckpt_value *v = pdckpt_dict_get(table, k);
    *s = v ? pdckpt_value_get_string(v, len) : NULL;
    return v != NULL;
}

/* The name the table gives root entry i (key `key`, `pykey` as Python): 1 with *name a new str,
 * or NULL when the table's value is no str (the tensor keeps its own name); 0 when the key is
 * not in the table; -1 on error.  The table is never made a Python dict of 2 strs per tensor (W2:
 * 17 MiB more at the load's peak) unless a key is no plain str: then once, for Python's
 * equality. */
static int table_name(name_table *nt, size_t i, const pdckpt_value *key, PyObject *pykey,
                      pyn_out *out, PyObject **name) {
    *name = NULL;
    const char *s = NULL;
    size_t      len = 0;
    int         found = 0;
    if (nt->taken) {
        found = nt->taken[i].len != NAME_ABSENT;
        s = nt->taken[i].len >= 0 ? nt->bytes + nt->taken[i].at : NULL;
        len = nt->taken[i].len >= 0 ? (size_t)nt->taken[i].len : 0;
    } else if (pdckpt_value_kind(nt->tree) != PDCKPT_KIND_DICT) {
        return 0;
    } else if ((found = tree_name(nt->tree, key, &s, &len)) < 0) {
        if (!nt->py && !(nt->py = pyn_convert(nt->tree, out))) return -1;
        PyObject *v = PyDict_Check(nt->py) ? PyDict_GetItemWithError(nt->py, pykey) : NULL;
        if (!v) return PyErr_Occurred() ? -1 : 0;
        *name = PyUnicode_Check(v) ? Py_NewRef(v) : NULL;
        return 1;
    }
    if (s && !(*name = PyUnicode_DecodeUTF8(s, (Py_ssize_t)len, "surrogatepass"))) return -1;
    return found;
}

/* Copies the names the table gives the root's tensor entries out of it (0), so a consuming pass
 * that drops the table releases it first: it is freed before Paddle's objects are made, and the
 * keys it shares with the root (a pickle's memo) go with each converted entry.  1: not here (a
 * key that is no plain str, no table, a table that stays); -1: no memory. */
static int take_names(name_table *nt, const pdckpt_value *root, pyn_out *out) {
    size_t n = pdckpt_value_len(root), total = 0, len;
    if (out->consume != root || !out->drop_table ||
        pdckpt_value_kind(nt->tree) != PDCKPT_KIND_DICT || pdckpt_value_shared(nt->tree))
        return 1;
    const char *s;
    for (size_t i = 0; i < n; i++) {
        if (pdckpt_value_kind(pdckpt_value_at(root, i)) != PDCKPT_KIND_TENSOR) continue;
        int found = tree_name(nt->tree, pdckpt_dict_key_at(root, i), &s, &len);
        if (found < 0 || len > INT64_MAX) return 1;
        total += s ? len : 0;
    }
    nt->taken = PyMem_Malloc((n ? n : 1) * sizeof *nt->taken);
    nt->bytes = PyMem_Malloc(total ? total : 1);
    if (!nt->taken || !nt->bytes) return PyErr_NoMemory(), -1;
    for (size_t i = 0, at = 0; i < n; i++) {
        bool tensor = pdckpt_value_kind(pdckpt_value_at(root, i)) == PDCKPT_KIND_TENSOR;
        int  found = tensor ? tree_name(nt->tree, pdckpt_dict_key_at(root, i), &s, &len) : 0;
        nt->taken[i] = (taken_name){at, !found ? NAME_ABSENT : s ? (int64_t)len : NAME_NOT_STR};
        if (found && s) memcpy(nt->bytes + at, s, len), at += len;
    }
    (void)pdckpt_value_release_at(out->consume, nt->at);
    nt->tree = NULL;
    return 0;
}

static PyObject *table_entry(size_t i, const pdckpt_value *key, const pdckpt_value *item,
                             PyObject *pykey, name_table *nt, pyn_out *out) {
    PyObject *name = NULL;
    int       found = pdckpt_value_kind(item) == PDCKPT_KIND_TENSOR
                          ? table_name(nt, i, key, pykey, out, &name)
                          : 0;
    if (found < 0) return NULL;
    if (!found) return pyn_convert(item, out);
    PyObject *t = pyn_paddle_tensor(item, name, out);
    if (!t) pyn_note_failure(item, out);
    Py_XDECREF(name);
    return t;
}

/* With out->consume: root entry i, a tensor now in the result, is released from the tree with
 * its key (None in their places), so their memory serves the tensors made next. */
static void release_entry(const pdckpt_value *root, size_t i, pyn_out *out) {
    const pdckpt_value *v = pdckpt_value_at(root, i);
    if (out->consume == root && pdckpt_value_kind(v) == PDCKPT_KIND_TENSOR &&
        pyn_paddle_settled(v, out))
        (void)pdckpt_value_release_at(out->consume, i);
}

static PyObject *table_root(const pdckpt_value *root, name_table *nt, pyn_out *out) {
    size_t    n = pdckpt_value_len(root);
    PyObject *dict = take_names(nt, root, out) < 0 ? NULL : PyDict_New();
    for (size_t i = 0; dict && i < n; i++) {
        if (i == nt->at && out->drop_table)
            continue; /* paddle.load drops it unless keep_name_table: never made */
        const pdckpt_value *k = pdckpt_dict_key_at(root, i), *v = pdckpt_value_at(root, i);
        PyObject           *key = pyn_convert(k, out);
        PyObject           *item = key ? table_entry(i, k, v, key, nt, out) : NULL;
        if (!item || PyDict_SetItem(dict, key, item) < 0) Py_CLEAR(dict);
        Py_XDECREF(key);
        Py_XDECREF(item);
        if (dict) release_entry(root, i, out);
    }
    return dict;
}

PyObject *pyn_paddle_table_root(const pdckpt_value *root, pyn_out *out) {
    name_table nt = {NULL, SIZE_MAX, NULL, NULL, NULL};
    for (size_t i = 0, n = pdckpt_value_len(root); !nt.tree && i < n; i++)
        if (pyn_paddle_is_name_table_key(pdckpt_dict_key_at(root, i))) {
            nt.tree = pdckpt_value_at(root, i);
            nt.at = i;
        }
    out->plain++; /* only the listed entries become tensors */
    PyObject *dict = table_root(root, &nt, out);
    out->plain--;
    Py_XDECREF(nt.py);
    PyMem_Free(nt.taken);
    PyMem_Free(nt.bytes);
    return dict;
}

/* ---- saving: a paddle.Tensor's own memory, asked for in C ---- */

static PyObject *call0(PyObject *obj, const char *method) {
    PyObject *name = PyUnicode_InternFromString(method);
    PyObject *r = name ? PyObject_CallMethodNoArgs(obj, name) : NULL;
    Py_XDECREF(name);
    return r;
}

/* True when `method()` of obj answers True (-1: an error). */
static int asks_true(PyObject *obj, const char *method) {
    PyObject *r = call0(obj, method);
    int       yes = r ? PyObject_IsTrue(r) : -1;
    Py_XDECREF(r);
    return yes;
}

/* 1: a dense, initialised, contiguous CPU tensor whose dtype pdckpt has; 0: ask the facade. */
static int plain_cpu_tensor(PyObject *obj, PyObject *dtypes, pdckpt_dtype *dtype) {
    int ok = asks_true(obj, "_is_initialized");
    if (ok != 1) return ok;
    PyObject *place = PyObject_GetAttrString(obj, "place");
    ok = place ? asks_true(place, "is_cpu_place") : -1;
    Py_XDECREF(place);
    if (ok != 1 || (ok = asks_true(obj, "is_contiguous")) != 1) return ok;
    PyObject *dt = PyObject_GetAttrString(obj, "dtype");
    PyObject *code = dt ? PyDict_GetItemWithError(dtypes, dt) : NULL;
    Py_XDECREF(dt);
    if (!code) return PyErr_Occurred() ? -1 : 0;
    long n = PyLong_AsLong(code);
    if (n == -1 && PyErr_Occurred()) return -1;
    *dtype = n > 0 && n < PDCKPT_DTYPE_COUNT ? (pdckpt_dtype)n : PDCKPT_DTYPE_INVALID;
    return *dtype != PDCKPT_DTYPE_INVALID;
}

/* A tensor value borrowing the memory of paddle.Tensor `obj` (kept alive by the caller's pins),
 * named as it is; NULL with *handled false when the facade's hook must judge it. */
pdckpt_value *pyn_paddle_leaf(PyObject *obj, PyObject *dtypes, bool *handled) {
    pdckpt_dtype dtype;
    int          ok = plain_cpu_tensor(obj, dtypes, &dtype);
    *handled = ok != 0;
    if (ok != 1) return NULL;
    int64_t   dims[PDCKPT_MAX_DIMS];
    PyObject *shape = PyObject_GetAttrString(obj, "shape");
    PyObject *seq = shape ? PySequence_Fast(shape, "paddle shape") : NULL;
    Py_XDECREF(shape);
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n && i < PDCKPT_MAX_DIMS; i++)
        dims[i] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
    Py_DECREF(seq);
    if (n > PDCKPT_MAX_DIMS) return PyErr_Format(PyExc_ValueError, "pdckpt: too many dims"), NULL;
    if (PyErr_Occurred()) return NULL;
    PyObject *ptr = call0(obj, "data_ptr");
    void     *data = ptr ? PyLong_AsVoidPtr(ptr) : NULL;
    Py_XDECREF(ptr);
    PyObject     *name = PyErr_Occurred() ? NULL : PyObject_GetAttrString(obj, "name");
    pdckpt_value *t = name ? pyn_named_borrowed(name, dtype, (int32_t)n, dims, data) : NULL;
    Py_XDECREF(name);
    return t;
}

pdckpt_value *pyn_named_borrowed(PyObject *name, pdckpt_dtype dtype, int32_t n_dims,
                                 const int64_t *dims, const void *data) {
    const char *s = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
    if (PyUnicode_Check(name) && !s) return NULL;
    pdckpt_value *t = NULL;
    pdckpt_error  err;
    if (pdckpt_tensor_new_borrowed(NULL, dtype, n_dims, dims, data, &t, &err) != PDCKPT_OK ||
        (s && pdckpt_tensor_set_name(t, s, &err) != PDCKPT_OK)) {
        pdckpt_value_free(t);
        pyn_raise(&err);
        return NULL;
    }
    return t;
}
