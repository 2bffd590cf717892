/* SPDX-License-Identifier: Apache-2.0 */
/*
 * py_stats.c — Tree.stats(): every tensor leaf's statistics from pdckpt_tensor_stats_compute, the
 * same numbers `pdckpt stats` prints, as (key path, dtype, shape, stats or None) tuples.  The
 * facade (_stats.py) shapes them into dicts.
 */
#include "py_native.h"

#include <math.h>

typedef struct stats_walk {
    PyObject *rows; /* list */
} stats_walk;

static PyObject *step_key(const pdckpt_path_step *step) {
    size_t      n = 0;
    const char *s = step->key ? pdckpt_value_get_string(step->key, &n) : NULL;
    int64_t     iv;
    if (s) return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "replace");
    if (step->key && pdckpt_value_get_int(step->key, &iv)) return PyLong_FromLongLong(iv);
    return PyLong_FromLongLong(step->index);
}

static PyObject *stats_tuple(const pdckpt_value *leaf) {
    pdckpt_tensor_stats    s;
    pdckpt_error           err = PDCKPT_ERROR_INIT;
    pdckpt_status          st;
    Py_BEGIN_ALLOW_THREADS st = pdckpt_tensor_stats_compute(leaf, &s, &err);
    Py_END_ALLOW_THREADS if (st != PDCKPT_OK) Py_RETURN_NONE; /* complex: no order */
    return Py_BuildValue("(ddddKKKK)", s.min, s.max, s.mean, s.std, (unsigned long long)s.n_zero,
                         (unsigned long long)s.n_nan, (unsigned long long)s.n_pos_inf,
                         (unsigned long long)s.n_neg_inf);
}

static PyObject *stats_row(const pdckpt_path_step *path, size_t depth, const pdckpt_value *leaf,
                           const pdckpt_tensor_view *v) {
    PyObject *key = PyTuple_New((Py_ssize_t)depth), *shape = pyn_shape_tuple(v);
    for (size_t i = 0; key && i < depth; i++) {
        PyObject *k = step_key(&path[i]);
        if (!k)
            Py_CLEAR(key);
        else
            PyTuple_SET_ITEM(key, (Py_ssize_t)i, k);
    }
    PyObject *stats = key && shape ? stats_tuple(leaf) : NULL;
    PyObject *row =
        stats ? Py_BuildValue("(OsOO)", key, pdckpt_dtype_name(v->dtype), shape, stats) : NULL;
    Py_XDECREF(key);
    Py_XDECREF(shape);
    Py_XDECREF(stats);
    return row;
}

static int visit(void *ctx, const pdckpt_path_step *path, size_t depth, const pdckpt_value *leaf) {
    stats_walk        *w = ctx;
    pdckpt_tensor_view v;
    if (!pdckpt_tensor_get(leaf, &v)) return 0;
    PyObject *row = stats_row(path, depth, leaf, &v);
    int       rc = row ? PyList_Append(w->rows, row) : -1;
    Py_XDECREF(row);
    return rc != 0;
}

PyObject *pyn_tree_stats(const pdckpt_value *root) {
    stats_walk   w = {PyList_New(0)};
    pdckpt_error err = PDCKPT_ERROR_INIT;
    if (!w.rows) return NULL;
    pdckpt_status st = pdckpt_value_walk(root, visit, &w, &err);
    if (PyErr_Occurred()) {
        Py_CLEAR(w.rows);
    } else if (st != PDCKPT_OK) {
        Py_CLEAR(w.rows);
        pyn_raise(&err);
    }
    return w.rows;
}
