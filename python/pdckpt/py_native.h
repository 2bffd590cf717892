/* SPDX-License-Identifier: Apache-2.0 */
/*
 * py_native.h — declarations shared by the files of the pdckpt._native extension.  The extension
 * only converts objects: Python values to pdckpt_value trees (py_to_tree.c), trees back to Python
 * values (py_from_tree.c), tensor data to NumPy / DLPack (py_tensor.c), and pdckpt_error records to
 * exceptions (_native.c).  Every format decision is made by the C library.
 */
#ifndef PDCKPT_PY_NATIVE_H
#define PDCKPT_PY_NATIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pdckpt.h>
#include <pdckpt_dlpack.h>

/* Python objects the pure-Python facade registers once through _native._configure(). */
typedef struct pyn_config {
    PyObject *errors; /* dict: status number -> exception class */
    PyObject *base_error;
    PyObject *leaf_hook; /* callable(obj) -> normalized leaf tuple (see py_to_tree.c) */
    PyObject *opaque;    /* pdckpt.OpaqueObject: called (kind, module, name, args, state, items) */
    PyObject *numpy_dtype; /* callable(dtype name, exact_dtypes: bool) -> numpy.dtype */
    PyObject *ndarray;     /* numpy.ndarray: arrays are made and read in C through it */
} pyn_config;
extern pyn_config pyn;

/* Raises the pdckpt.Error subclass for `err` (str = formatted record); returns NULL. */
PyObject *pyn_raise(const pdckpt_error *err);
/* Raises ArgumentError-like errors made in the extension itself. */
PyObject *pyn_raise_status(pdckpt_status status, const char *message);

/* ---- Python -> tree (py_to_tree.c) ---- */

/* What a conversion borrows: buffer exports the tree's tensors point into, objects to keep alive,
 * and a memo so one Python object shared by several parents becomes one shared value. */
typedef struct pyn_pins {
    Py_buffer     *views;
    size_t         n_views, cap_views;
    PyObject      *keep;      /* list */
    PyObject     **memo_keys; /* open addressing, object -> tree value (memo_values), by identity */
    pdckpt_value **memo_values;
    size_t         memo_cap, memo_len;
    PyObject      *active;      /* set of ids of the containers on the current path (cycle check) */
    PyObject      *paddle_type; /* paddle.Tensor (borrowed), or NULL: every leaf asks the hook */
    PyObject      *paddle_dtypes; /* dict paddle dtype -> pdckpt dtype number (borrowed) */
    int            paddle_dlpack; /* Paddle's DenseTensor DLPack exports are trusted (Paddle 3) */
} pyn_pins;

int  pyn_pins_init(pyn_pins *pins);
void pyn_pins_release(pyn_pins *pins);
/* Converts `obj` into a new tree (NULL with an exception set on failure). */
pdckpt_value *pyn_to_tree(PyObject *obj, pyn_pins *pins);

/* ---- tree -> Python (py_from_tree.c) ---- */

/* Loads that return paddle.Tensors (py_paddle.c): what paddle.load's rules make a tensor is built
 * in the same pass, from a DLPack capsule of the loaded memory (no copy). */
typedef enum pyn_paddle_mode {
    PYN_PADDLE_ALL = 1,   /* every tensor (no names in the tree) */
    PYN_PADDLE_NAMED = 2, /* named tensors and (name, tensor) tuples; the rest stay arrays */
    PYN_PADDLE_TABLE = 3, /* a state dict: the entries its name table lists */
} pyn_paddle_mode;

typedef struct pyn_paddle {
    PyObject *from_dlpack; /* paddle.base.core.from_dlpack, or None: always the fallback */
    PyObject *tensor_type; /* paddle.Tensor; None: from_dlpack's DenseTensor as it is (static) */
    PyObject *place;       /* paddle.CPUPlace() */
    PyObject *fallback;    /* callable(array, name, dtype name): the copying path */
    PyObject *split;       /* paddle.unstack, or NULL/None: no batches (py_paddle_batch.c) */
    PyObject *views;       /* Py_True (or a callable's answer): small tensors over the read
                              buffer (batch) */
    PyObject         *no_bool; /* Py_True: from_dlpack refuses bool (Paddle 2.6): fallback */
    struct pyn_batch *batch;   /* small tensors made a chunk at a time (py_paddle_batch.c) */
    pyn_paddle_mode   mode;
    bool              arrays; /* paddle.load's rules with NumPy arrays out (return_numpy=True) */
} pyn_paddle;

typedef struct pyn_out {
    bool        exact;    /* exact_dtypes: ml_dtypes types instead of raw bits */
    PyObject   *owner;    /* keeps borrowed memory alive (memory loads), or NULL */
    bool        writable; /* privately read data may be exported writable (mmap=False) */
    PyObject   *memo;     /* dict pointer -> object (shared values stay shared) */
    pyn_paddle *paddle;   /* NULL: arrays only */
    int         plain;    /* > 0: inside an object or a key, where paddle.load makes no tensors */

    /* paddle.load's rules: the root's name table left out (keep_name_table off), never
     * converted (with Paddle's tensors out, looked up in the tree for their names) */
    bool                drop_table;
    const pdckpt_value *dropped; /* that entry of the root, found by pyn_from_tree, or NULL */
    PyObject *payloads; /* addresses of the payloads made into paddle.Tensors without a copy */
    /* The root, when the caller closes the tree after this pass (pdckpt.load): each root entry
     * made a paddle.Tensor is released from it as soon as it is in the result, so the tree's
     * memory is reused by the tensors made after it.  NULL: the tree stays whole. */
    pdckpt_value *consume;
    uint64_t      first_bytes, again_bytes; /* payloads made once, and made again (copies) */
    /* The innermost value whose conversion failed and whose offset in the file is known
     * (pdckpt_value_offset), or NULL: the caller names that offset in the error. */
    const pdckpt_value *failed;
} pyn_out;

PyObject *pyn_from_tree(const pdckpt_value *value, pyn_out *out);
/* After a failed conversion of `value`: notes it as out->failed if it is the first (innermost)
 * with a known offset. */
void pyn_note_failure(const pdckpt_value *value, pyn_out *out);
/* The exception being raised gets `pdckpt_offset` (the file offset of what made `value`) and
 * `pdckpt_value` (what it is: "a float32 array of shape [2, 3]"), for the caller's message. */
void pyn_annotate_failure(const pdckpt_value *value);
/* One value converted with out's rules (memoised; shared values stay shared). */
PyObject *pyn_convert(const pdckpt_value *value, pyn_out *out);
/* collections.OrderedDict (borrowed, imported once), or NULL with an exception set. */
PyObject *pyn_ordered_dict_type(void);
/* collections.defaultdict (borrowed, kept for the interpreter's life). */
PyObject *pyn_defaultdict_type(void);

/* ---- paddle.Tensors (py_paddle.c) ---- */

/* The mode paddle.load's rules give the tree (a name table, named tensors, or neither). */
pyn_paddle_mode pyn_paddle_mode_of(const pdckpt_value *root);
/* Tensor `v` as a paddle.Tensor named `name` (NULL: the tensor's own name, if any). */
PyObject *pyn_paddle_tensor(const pdckpt_value *v, PyObject *name, pyn_out *out);
/* The key of a state dict's name table (StructuredToParameterName@@). */
bool pyn_paddle_is_name_table_key(const pdckpt_value *key);
/* The tensor's data may go to Paddle as it is (private, aligned, a dtype Paddle has). */
bool pyn_paddle_direct(const pdckpt_tensor_view *tv, const pyn_out *out);
/* A writable DLPack 1.x capsule of tensor `v`'s own memory (the load owns it privately). */
PyObject *pyn_paddle_capsule(const pdckpt_value *v);
/* Before the pass: the root dict's many small equal tensors grouped into chunks, each made in a
 * few Paddle calls when the pass first takes one of its tensors (py_paddle_batch.c); 0, or -1
 * with an exception. */
int pyn_paddle_batch(const pdckpt_value *root, pyn_out *out);
/* The tensor made for `v` by its chunk (a new reference, given out once), or NULL (check
 * PyErr_Occurred). */
PyObject *pyn_paddle_take(const pdckpt_value *v, pyn_out *out);
/* Whether the batch is done with tensor value `v` (its chunk made, or in none): it may be freed. */
bool pyn_paddle_settled(const pdckpt_value *v, const pyn_out *out);
/* Drops what the pass did not take. */
void pyn_paddle_batch_clear(pyn_paddle *p);
/* The root dict of a TABLE-mode tree, its listed entries as paddle.Tensors. */
PyObject *pyn_paddle_table_root(const pdckpt_value *root, pyn_out *out);
/* A paddle.Tensor leaf as a tensor borrowing its memory; *handled false: ask the hook.  `dtypes`
 * maps Paddle's dtype objects to pdckpt dtype numbers. */
pdckpt_value *pyn_paddle_leaf(PyObject *obj, PyObject *dtypes, bool *handled);
/* A tensor value borrowing `data`, named `name` when it is a str (paddle.save's tensor.name, any
 * other object: no name); NULL with an exception set on failure. */
pdckpt_value *pyn_named_borrowed(PyObject *name, pdckpt_dtype dtype, int32_t n_dims,
                                 const int64_t *dims, const void *data);
/* The same through one DLPack export of the tensor (py_paddle_save.c); *handled false with no
 * exception set: ask pyn_paddle_leaf. */
pdckpt_value *pyn_paddle_save_leaf(PyObject *obj, pyn_pins *pins, bool *handled);
/* The DLPack 1.x capsule destructor (frees an export nobody consumed). */
void pyn_versioned_capsule_free(PyObject *capsule);
/* The pre-1.0 "dltensor" capsule of `m` (taken; its read-only flag is not carried). */
PyObject *pyn_legacy_capsule(DLManagedTensorVersioned *m);

/* ---- tensors (py_tensor.c) ---- */

extern PyTypeObject pyn_TensorData_Type; /* buffer-protocol holder of one tensor's bytes */
extern PyTypeObject pyn_Tensor_Type;     /* a tensor value: metadata, DLPack */
extern PyTypeObject pyn_Tree_Type;       /* a loaded tree: the lazy reader's core */

/* A TensorData holding (a reference to) the bytes of tensor `value`. */
PyObject *pyn_tensor_data_new(const pdckpt_value *value, PyObject *owner, bool allow_write);
/* A NumPy array viewing tensor `value`'s bytes (no copy), made through NumPy's C API with the
 * arrays of one buffer sharing one base; bfloat16/float8 as raw bits unless `exact`. */
PyObject *pyn_array_new(const pdckpt_value *value, PyObject *owner, bool allow_write, bool exact);
/* A Tensor wrapping `value` (retained). */
PyObject *pyn_tensor_new(const pdckpt_value *value, PyObject *owner);
/* A Tree owning `root`; `owner` keeps memory the tree borrows; `writable`: loaded with mmap=False.
 */
PyObject *pyn_tree_new(pdckpt_value *root, PyObject *owner, pdckpt_format format, bool writable);
/* A tree whose entries are made on access from a pickle's index (takes `lazy`). */
PyObject *pyn_tree_new_lazy(pdckpt_lazy *lazy);
/* Tree.stats(): [(key path tuple, dtype name, shape, (min, max, mean, std, zeros, nan, +inf, -inf)
 * or None for a dtype without order)] for every tensor leaf (py_stats.c). */
PyObject *pyn_tree_stats(const pdckpt_value *root);
/* A tensor's dims as a tuple of ints (NULL with an exception set). */
PyObject *pyn_shape_tuple(const pdckpt_tensor_view *v);

/* ---- program-driven static APIs (py_static.c) ---- */

PyObject *pyn_program_persistables(PyObject *self, PyObject *path);
PyObject *pyn_save_persistables(PyObject *self, PyObject *args, PyObject *kw);

/* ---- sharded save and load steps for pdckpt.distributed (py_sharded.c) ---- */

/* Adds the sharded_* and async_* functions to the module. */
int pyn_sharded_register(PyObject *module);

#endif /* PDCKPT_PY_NATIVE_H */
