/* SPDX-License-Identifier: Apache-2.0 */
/*
 * py_tree.c — pdckpt._native.Tree: a loaded pdckpt_value tree held open, so pdckpt.open can list
 * keys and read metadata without converting (or touching) any tensor data, and convert one entry
 * at a time.  Closing frees the tree; arrays and Tensors already handed out keep their own
 * references to the data (the mapping stays alive until the last of them is gone).  A tree opened
 * through a pickle's index (pdckpt_lazy_open) has no root: its entries are made on first access.
 */
#include "py_native.h"

#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

/* A tree of this many root entries or more leaves the C library's heap holey when it goes (W2:
 * 54 MiB free in it, resident, after a load): closing it hands the free pages back. */
#define TRIM_MIN_ENTRIES 16384

typedef struct {
    PyObject_HEAD pdckpt_value *root; /* NULL once closed */
    PyObject      *owner; /* memory the tree borrows (bytes of a memory load), or NULL */
    pdckpt_format  format;
    bool           writable; /* loaded with mmap=False: private data may be exported writable */
    pdckpt_lazy   *lazy;     /* opened through the index (root NULL), or NULL */
    pdckpt_value **made;     /* lazy: the entries made so far (n_made slots) */
    size_t         n_made;
} Tree;

PyObject *pyn_tree_new(pdckpt_value *root, PyObject *owner, pdckpt_format format, bool writable) {
    Tree *t = PyObject_New(Tree, &pyn_Tree_Type);
    if (!t) {
        pdckpt_value_free(root);
        return NULL;
    }
    t->root = root;
    t->owner = Py_XNewRef(owner);
    t->format = format;
    t->writable = writable;
    t->lazy = NULL;
    t->made = NULL;
    t->n_made = 0;
    return (PyObject *)t;
}

PyObject *pyn_tree_new_lazy(pdckpt_lazy *lazy) {
    size_t         n = pdckpt_lazy_len(lazy);
    pdckpt_value **made = PyMem_Calloc(n ? n : 1, sizeof *made);
    Tree          *t = made ? PyObject_New(Tree, &pyn_Tree_Type) : NULL;
    if (!t) {
        PyMem_Free(made);
        pdckpt_lazy_close(lazy);
        return PyErr_NoMemory();
    }
    t->root = NULL;
    t->owner = NULL;
    t->format = PDCKPT_FORMAT_PICKLE;
    t->writable = false;
    t->lazy = lazy;
    t->made = made;
    t->n_made = n;
    return (PyObject *)t;
}

static void tree_free(Tree *t) {
    pdckpt_value_free(t->root);
    t->root = NULL;
    for (size_t i = 0; i < t->n_made; i++) pdckpt_value_free(t->made[i]);
    PyMem_Free(t->made);
    t->made = NULL;
    t->n_made = 0;
    pdckpt_lazy_close(t->lazy);
    t->lazy = NULL;
}

static void tree_dealloc(Tree *t) {
    tree_free(t);
    Py_XDECREF(t->owner);
    PyObject_Free(t);
}

static pdckpt_kind root_kind(Tree *t) {
    return t->lazy ? pdckpt_lazy_kind(t->lazy) : pdckpt_value_kind(t->root);
}

static int is_open(Tree *t) {
    if (t->root || t->lazy) return 1;
    PyErr_SetString(PyExc_ValueError, "pdckpt: the checkpoint reader is closed");
    return 0;
}

static Py_ssize_t tree_len(Tree *t) {
    if (!is_open(t)) return -1;
    if (t->lazy) return (Py_ssize_t)pdckpt_lazy_len(t->lazy);
    pdckpt_kind k = pdckpt_value_kind(t->root);
    if (k == PDCKPT_KIND_TENSOR) return 1;
    if (k == PDCKPT_KIND_DICT || k == PDCKPT_KIND_LIST || k == PDCKPT_KIND_TUPLE)
        return (Py_ssize_t)pdckpt_value_len(t->root);
    return 0;
}

/* The index-th entry: a dict value, a list/tuple item, or the root tensor itself (index 0). */
static const pdckpt_value *entry(Tree *t, Py_ssize_t index) {
    Py_ssize_t n = tree_len(t);
    if (n < 0) return NULL;
    if (index < 0 || index >= n) return PyErr_Format(PyExc_IndexError, "no entry %zd", index), NULL;
    if (t->lazy) {
        pdckpt_error err = PDCKPT_ERROR_INIT;
        if (!t->made[index] &&
            pdckpt_lazy_get(t->lazy, (size_t)index, &t->made[index], &err) != PDCKPT_OK)
            return pyn_raise(&err), NULL;
        return t->made[index];
    }
    if (pdckpt_value_kind(t->root) == PDCKPT_KIND_TENSOR) return t->root;
    return pdckpt_value_at(t->root, (size_t)index);
}

/* A lazy tree's key i: str keys straight from the index's text, others made and converted. */
/* A key that is not ASCII text from the index: made by the library (or why not). */
static PyObject *lazy_key_made(Tree *t, size_t i) {
    pdckpt_value *key = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT; /* 1 KiB: set up here only, not once per key */
    if (pdckpt_lazy_key(t->lazy, i, &key, &err) != PDCKPT_OK) return pyn_raise(&err), NULL;
    pyn_out   out = {false, NULL, false, NULL, NULL, 0};
    PyObject *k = pyn_from_tree(key, &out);
    pdckpt_value_free(key);
    return k;
}

static PyObject *lazy_key(Tree *t, size_t i) {
    size_t      len = 0;
    const char *s = pdckpt_lazy_key_text(t->lazy, i, &len);
    size_t      j = 0;
    uint64_t    w;
    for (; s && j + 8 <= len; j += 8) { /* eight bytes at a time: 100,000 keys are listed */
        memcpy(&w, s + j, 8);
        if (w & 0x8080808080808080u) break;
    }
    while (s && j < len && (unsigned char)s[j] < 0x80) j++;
    if (s && j == len) { /* ASCII, as Paddle's names: no decoder */
        PyObject *k = PyUnicode_New((Py_ssize_t)len, 127);
        if (k) memcpy(PyUnicode_1BYTE_DATA(k), s, len);
        return k;
    }
    if (s) return PyUnicode_DecodeUTF8(s, (Py_ssize_t)len, "strict");
    return lazy_key_made(t, i);
}

static PyObject *tree_keys(Tree *t, PyObject *unused) {
    (void)unused;
    Py_ssize_t n = tree_len(t);
    if (n < 0) return NULL;
    if (t->lazy) {
        PyObject *keys = PyList_New(n);
        for (Py_ssize_t i = 0; keys && i < n; i++) {
            PyObject *key = lazy_key(t, (size_t)i);
            if (!key)
                Py_CLEAR(keys);
            else
                PyList_SET_ITEM(keys, i, key);
        }
        return keys;
    }
    PyObject   *keys = PyList_New(n);
    pdckpt_kind kind = pdckpt_value_kind(t->root);
    pyn_out     out = {false, t->owner, false, NULL, NULL, 0};
    for (Py_ssize_t i = 0; keys && i < n; i++) {
        PyObject *key;
        if (kind == PDCKPT_KIND_DICT) {
            key = pyn_from_tree(pdckpt_dict_key_at(t->root, (size_t)i), &out);
        } else if (kind == PDCKPT_KIND_TENSOR) {
            pdckpt_tensor_view v;
            pdckpt_tensor_get(t->root, &v);
            key = PyUnicode_FromString(v.name ? v.name : "");
        } else {
            key = PyLong_FromSsize_t(i);
        }
        if (!key)
            Py_CLEAR(keys);
        else
            PyList_SET_ITEM(keys, i, key);
    }
    return keys;
}

/* The rules argument of convert(): None (values as they are), "numpy" (paddle.load's rules,
 * arrays out: return_numpy=True) or (from_dlpack or None, Tensor type, place, fallback[,
 * paddle.unstack[, True (or a callable answering True) when views of the read buffer may be
 * made[, True when from_dlpack refuses bool]]]). */
static int rules_arg(PyObject *arg, const pdckpt_value *v, pyn_paddle *p) {
    memset(p, 0, sizeof *p);
    p->arrays = PyUnicode_Check(arg);
    if (p->arrays && PyUnicode_CompareWithASCIIString(arg, "numpy") != 0)
        return PyErr_SetString(PyExc_ValueError, "convert: rules must be 'numpy' or a tuple"), -1;
    if (!p->arrays && !PyArg_ParseTuple(arg, "OOOO|OOO", &p->from_dlpack, &p->tensor_type,
                                        &p->place, &p->fallback, &p->split, &p->views, &p->no_bool))
        return -1;
    p->mode = pyn_paddle_mode_of(v);
    return 0;
}

/* convert(index=None, exact_dtypes=False, rules=None, drop_table=False, consume=False): the whole
 * tree, or one entry, as Python values; with rules, what paddle.load makes tensors are
 * paddle.Tensors (or, with "numpy", the arrays paddle.load(return_numpy=True) gives, and with
 * drop_table the root's name table left out, as paddle.load does without keep_name_table).  With
 * consume (the caller closes the tree next) the root's entries made paddle.Tensors are released
 * as they are made: the tree is left with None in their place.  The cyclic GC is held off
 * meanwhile: every container made here is new and acyclic, and a collection triggered by their
 * number would walk them all again and again. */
static PyObject *tree_convert(Tree *t, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"index", "exact_dtypes", "rules", "drop_table", "consume", NULL};
    PyObject    *index = Py_None, *rules = Py_None;
    int          exact = 0, drop_table = 0, consume = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OpOpp", kwlist, &index, &exact, &rules,
                                     &drop_table, &consume))
        return NULL;
    if (!is_open(t)) return NULL;
    const pdckpt_value *v = t->root;
    if (index != Py_None) {
        Py_ssize_t i = PyLong_AsSsize_t(index);
        if (i == -1 && PyErr_Occurred()) return NULL;
        if (!(v = entry(t, i))) return NULL;
    } else if (t->lazy) {
        return PyErr_Format(PyExc_ValueError, "convert: a tree opened through its index converts "
                                              "one entry at a time");
    }
    pyn_paddle pd;
    pyn_out    out = {exact != 0, t->owner, t->writable, NULL, NULL, 0, drop_table != 0, NULL};
    out.consume = consume && index == Py_None ? t->root : NULL;
    if (rules != Py_None) {
        if (rules_arg(rules, v, &pd) < 0) return NULL;
        out.paddle = &pd;
    }
    int       gc_was_on = PyGC_Disable();
    PyObject *result = pyn_from_tree(v, &out);
    if (gc_was_on) PyGC_Enable();
    if (!result && out.failed) pyn_annotate_failure(out.failed); /* (the tree is still whole) */
    return result;
}

/* tensor(index): the entry as a Tensor; a Paddle (name, tensor) tuple gives its tensor. */
static PyObject *tree_tensor(Tree *t, PyObject *arg) {
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if (i == -1 && PyErr_Occurred()) return NULL;
    const pdckpt_value *v = entry(t, i);
    if (!v) return NULL;
    if (pdckpt_value_kind(v) == PDCKPT_KIND_TUPLE && pdckpt_value_len(v) == 2 &&
        pdckpt_value_kind(pdckpt_value_at(v, 0)) == PDCKPT_KIND_STRING &&
        pdckpt_value_kind(pdckpt_value_at(v, 1)) == PDCKPT_KIND_TENSOR)
        v = pdckpt_value_at(v, 1);
    return pyn_tensor_new(v, t->owner);
}

/* kind(index=None): the kind name of the root or of one entry ("tensor", "dict", ...). */
static PyObject *tree_kind(Tree *t, PyObject *args) {
    PyObject *index = Py_None;
    if (!PyArg_ParseTuple(args, "|O", &index) || !is_open(t)) return NULL;
    const pdckpt_value *v = t->root;
    if (index == Py_None && t->lazy) return PyUnicode_FromString(pdckpt_kind_name(root_kind(t)));
    if (index != Py_None) {
        Py_ssize_t i = PyLong_AsSsize_t(index);
        if ((i == -1 && PyErr_Occurred()) || !(v = entry(t, i))) return NULL;
    }
    return PyUnicode_FromString(pdckpt_kind_name(pdckpt_value_kind(v)));
}

static PyObject *tree_close(Tree *t, PyObject *unused) {
    (void)unused;
    bool large = t->root && pdckpt_value_len(t->root) >= TRIM_MIN_ENTRIES;
    tree_free(t);
#if defined(__GLIBC__)
    if (large) malloc_trim(0); /* W2: RSS after the load 214 -> 164 MiB, 14 ms */
#else
    (void)large;
#endif
    Py_RETURN_NONE;
}

static PyObject *tree_format(Tree *t, void *closure) {
    (void)closure;
    return PyUnicode_FromString(pdckpt_format_name(t->format));
}

static PyObject *tree_closed(Tree *t, void *closure) {
    (void)closure;
    return PyBool_FromLong(t->root == NULL && t->lazy == NULL);
}

static PyObject *tree_stats(Tree *t, PyObject *unused) {
    (void)unused;
    if (t->lazy) return PyErr_Format(PyExc_ValueError, "stats: the tree was opened lazily");
    return is_open(t) ? pyn_tree_stats(t->root) : NULL;
}

static PyMethodDef tree_methods[] = {
    {"keys", (PyCFunction)tree_keys, METH_NOARGS, "entry keys (dict keys, indexes, or a name)"},
    {"convert", (PyCFunction)(void (*)(void))tree_convert, METH_VARARGS | METH_KEYWORDS,
     "convert(index=None, exact_dtypes=False, rules=None, drop_table=False, consume=False) -> "
     "Python value"},
    {"tensor", (PyCFunction)tree_tensor, METH_O, "tensor(index) -> Tensor"},
    {"kind", (PyCFunction)tree_kind, METH_VARARGS, "kind(index=None) -> kind name"},
    {"close", (PyCFunction)tree_close, METH_NOARGS, "frees the tree (handed-out data stays)"},
    {"stats", (PyCFunction)tree_stats, METH_NOARGS, "per-tensor statistics (pdckpt.stats)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef tree_getset[] = {
    {"format", (getter)tree_format, NULL, "the format that was read", NULL},
    {"closed", (getter)tree_closed, NULL, "close() was called", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods tree_as_sequence = {.sq_length = (lenfunc)tree_len};

PyTypeObject pyn_Tree_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pdckpt._native.Tree",
    .tp_basicsize = sizeof(Tree),
    .tp_dealloc = (destructor)tree_dealloc,
    .tp_as_sequence = &tree_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A loaded checkpoint tree (internal; see pdckpt.open).",
    .tp_methods = tree_methods,
    .tp_getset = tree_getset,
};
