/* SPDX-License-Identifier: Apache-2.0 */
/*
 * py_static.c — bindings for the program-driven static APIs (the seeds' static
 * save_persistables / load_persistables, serialize_persistables): a program file names and checks
 * the variables; the C library writes and reads the files.  Only argument conversion lives here.
 */
#include "py_native.h"

/* Opens the program at `path` (a str or PathLike); NULL with an exception set on failure. */
static pdckpt_program *open_program(PyObject *path) {
    PyObject *fs = NULL;
    if (!PyUnicode_FSConverter(path, &fs)) return NULL;
    pdckpt_program        *p = NULL;
    pdckpt_error           err;
    pdckpt_status          st;
    Py_BEGIN_ALLOW_THREADS st = pdckpt_program_load_file(PyBytes_AS_STRING(fs), NULL, &p, &err);
    Py_END_ALLOW_THREADS   Py_DECREF(fs);
    return st == PDCKPT_OK ? p : (pyn_raise(&err), NULL);
}

/* program_persistables(program) -> list of the variable names a static save holds, in order. */
PyObject *pyn_program_persistables(PyObject *self, PyObject *path) {
    (void)self;
    pdckpt_program *p = open_program(path);
    if (!p) return NULL;
    size_t             n = 0;
    const char *const *names = pdckpt_program_persistables(p, &n);
    PyObject          *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *s = PyUnicode_FromString(names[i]);
        if (!s)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, s);
    }
    pdckpt_program_free(p);
    return list;
}

static PyObject *save_with_program(const pdckpt_program *p, const pdckpt_value *state,
                                   PyObject *dirname, PyObject *filename,
                                   const pdckpt_save_options *so) {
    pdckpt_error  err;
    pdckpt_status st;
    if (dirname == Py_None && filename == Py_None) { /* Paddle's dirname=None: bytes */
        void                  *data = NULL;
        size_t                 len = 0;
        Py_BEGIN_ALLOW_THREADS st = pdckpt_serialize_persistables(p, state, so, &data, &len, &err);
        Py_END_ALLOW_THREADS if (st != PDCKPT_OK) return pyn_raise(&err);
        PyObject *bytes = PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
        pdckpt_free(NULL, data, len);
        return bytes;
    }
    PyObject *dir_fs = NULL, *file_fs = NULL;
    if ((dirname != Py_None && !PyUnicode_FSConverter(dirname, &dir_fs)) ||
        (filename != Py_None && !PyUnicode_FSConverter(filename, &file_fs))) {
        Py_XDECREF(dir_fs);
        return NULL;
    }
    const char            *dir = dir_fs ? PyBytes_AS_STRING(dir_fs) : NULL;
    const char            *file = file_fs ? PyBytes_AS_STRING(file_fs) : NULL;
    Py_BEGIN_ALLOW_THREADS st = pdckpt_save_persistables(p, state, dir, file, so, &err);
    Py_END_ALLOW_THREADS   Py_XDECREF(dir_fs);
    Py_XDECREF(file_fs);
    if (st != PDCKPT_OK) return pyn_raise(&err);
    Py_RETURN_NONE;
}

/* save_persistables(state, program, dirname=None, filename=None, durable=True) -> None | bytes */
PyObject *pyn_save_persistables(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"state", "program", "dirname", "filename", "durable", NULL};
    PyObject    *state, *program, *dirname = Py_None, *filename = Py_None;
    int          durable = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OOp", kwlist, &state, &program, &dirname,
                                     &filename, &durable))
        return NULL;
    pdckpt_program *p = open_program(program);
    if (!p) return NULL;
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.durable = durable;
    pyn_pins  pins;
    PyObject *result = NULL;
    if (pyn_pins_init(&pins) == 0) {
        pdckpt_value *root = pyn_to_tree(state, &pins);
        if (root) result = save_with_program(p, root, dirname, filename, &so);
        pdckpt_value_free(root);
        pyn_pins_release(&pins);
    }
    pdckpt_program_free(p);
    return result;
}
