/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_names.c — the pickle allowlist: every global (module, name) that real Paddle 1.x-3.x and
 * numpy 1.x/2.x checkpoints name (spec pickle-and-distributed-formats.md §1.6-1.11, the real
 * fixtures, Paddle's save paths), and nothing else.  The reader refuses any other global at the
 * GLOBAL/STACK_GLOBAL/INST that names it; the writer refuses to emit one, so no conversion can
 * carry a call pdckpt would not have accepted.  A caller may allow more names explicitly; those
 * are carried as inert objects.  Also here: CPython's Python 2 renames, applied before judging.
 */
#include "pickle_names.h"

#include <string.h>

typedef struct allowed_global {
    const char     *module, *name;
    pdk_global_role role;
} allowed_global;

#define LR15  "paddle.fluid.dygraph.learning_rate_scheduler" /* Paddle 1.5-1.8 dygraph */
#define FLEX  "paddle.distributed.flex_checkpoint.dcp.metadata"
#define FLEX0 "paddle.distributed.checkpoint.metadata" /* Paddle 2.6-3.1 */

static const allowed_global table[] = {
    /* numpy: every ndarray (_reconstruct(ndarray, (0,), b'b') + BUILD), its dtype, numpy scalars,
     * protocol 5's _frombuffer; numpy 1.x spells the module numpy.core, 2.x numpy._core. */
    {"numpy.core.multiarray", "_reconstruct", PDK_GLOBAL_CALL},
    {"numpy._core.multiarray", "_reconstruct", PDK_GLOBAL_CALL},
    {"numpy.core.multiarray", "scalar", PDK_GLOBAL_CALL},
    {"numpy._core.multiarray", "scalar", PDK_GLOBAL_CALL},
    {"numpy.core.numeric", "_frombuffer", PDK_GLOBAL_CALL},
    {"numpy._core.numeric", "_frombuffer", PDK_GLOBAL_CALL},
    {"numpy", "dtype", PDK_GLOBAL_CALL},
    {"numpy", "ndarray", PDK_GLOBAL_REF},
    /* CPython's reductions of builtin values: bytes below protocol 3 (_codecs.encode of latin-1
     * text, bytes() when empty), bytearray, set/frozenset below protocol 4, complex, slice,
     * range; Paddle's Tensor reducer tuple((name, ndarray)); OrderedDict/defaultdict on the
     * generic path; copyreg._reconstructor(cls, object, None) of protocols 0-1. */
    {"_codecs", "encode", PDK_GLOBAL_CALL},
    {"builtins", "bytes", PDK_GLOBAL_CALL},
    {"builtins", "bytearray", PDK_GLOBAL_CALL},
    {"builtins", "set", PDK_GLOBAL_CALL},
    {"builtins", "frozenset", PDK_GLOBAL_CALL},
    {"builtins", "tuple", PDK_GLOBAL_CALL},
    {"builtins", "list", PDK_GLOBAL_CALL},
    {"builtins", "complex", PDK_GLOBAL_CALL},
    {"builtins", "slice", PDK_GLOBAL_CALL},
    {"builtins", "range", PDK_GLOBAL_CALL},
    {"builtins", "object", PDK_GLOBAL_REF},
    /* the factories of the commonest defaultdicts (defaultdict(int), defaultdict(dict), ...):
     * types whose call is harmless, taken as arguments only */
    {"builtins", "dict", PDK_GLOBAL_REF},
    {"builtins", "int", PDK_GLOBAL_REF},
    {"builtins", "float", PDK_GLOBAL_REF},
    {"builtins", "str", PDK_GLOBAL_REF},
    {"builtins", "bool", PDK_GLOBAL_REF},
    {"collections", "OrderedDict", PDK_GLOBAL_CALL},
    {"collections", "defaultdict", PDK_GLOBAL_CALL},
    {"copyreg", "_reconstructor", PDK_GLOBAL_CALL},
    /* Paddle's static DenseTensor reducer eval('data', {'data': ndarray}) (<= 3.x) and its 2026
     * replacement: accepted only in that exact form, which becomes the tensor. */
    {"builtins", "eval", PDK_GLOBAL_FORM},
    {"paddle.framework.io_utils", "_reconstruct_dense_tensor_data", PDK_GLOBAL_FORM},
    /* Plain classes Paddle pickles by NEWOBJ + BUILD(state): flex-checkpoint metadata
     * dataclasses, the RNG state (paddle.get_rng_state()), 1.x dygraph LR decay objects. */
    {FLEX, "Metadata", PDK_GLOBAL_CLASS},
    {FLEX, "LocalTensorMetadata", PDK_GLOBAL_CLASS},
    {FLEX, "LocalTensorIndex", PDK_GLOBAL_CLASS},
    {FLEX0, "Metadata", PDK_GLOBAL_CLASS},
    {FLEX0, "LocalTensorMetadata", PDK_GLOBAL_CLASS},
    {FLEX0, "LocalTensorIndex", PDK_GLOBAL_CLASS},
    {"paddle.base.libpaddle", "GeneratorState", PDK_GLOBAL_CLASS},
    {"paddle.fluid.libpaddle", "GeneratorState", PDK_GLOBAL_CLASS},
    {LR15, "LearningRateDecay", PDK_GLOBAL_CLASS},
    {LR15, "PiecewiseDecay", PDK_GLOBAL_CLASS},
    {LR15, "NaturalExpDecay", PDK_GLOBAL_CLASS},
    {LR15, "ExponentialDecay", PDK_GLOBAL_CLASS},
    {LR15, "InverseTimeDecay", PDK_GLOBAL_CLASS},
    {LR15, "PolynomialDecay", PDK_GLOBAL_CLASS},
    {LR15, "CosineDecay", PDK_GLOBAL_CLASS},
    {LR15, "NoamDecay", PDK_GLOBAL_CLASS},
    {LR15, "LinearLrWarmup", PDK_GLOBAL_CLASS},
    {LR15, "ReduceLROnPlateau", PDK_GLOBAL_CLASS},
    {LR15, "StepDecay", PDK_GLOBAL_CLASS},
    {LR15, "MultiStepDecay", PDK_GLOBAL_CLASS},
    {LR15, "LambdaDecay", PDK_GLOBAL_CLASS},
};
#define N_TABLE (sizeof table / sizeof table[0])

/* "module.name" split at its last dot equals (module, name). */
static bool names_entry(const char *entry, const char *module, const char *name) {
    size_t lm = strlen(module);
    return strncmp(entry, module, lm) == 0 && entry[lm] == '.' && strcmp(entry + lm + 1, name) == 0;
}

pdk_global_role pdk_global_role_of(const char *module, const char *name, const char *const *allowed,
                                   size_t n_allowed) {
    for (size_t i = 0; i < N_TABLE; i++)
        if (strcmp(table[i].module, module) == 0 && strcmp(table[i].name, name) == 0)
            return table[i].role;
    if (strchr(name, '.')) return PDK_GLOBAL_REFUSED; /* an attribute path: never */
    for (size_t i = 0; i < n_allowed; i++)
        if (allowed[i] && names_entry(allowed[i], module, name)) return PDK_GLOBAL_ALLOWED;
    return PDK_GLOBAL_REFUSED;
}

bool pdk_global_writable(const char *module, const char *name, const char *const *allowed,
                         size_t n_allowed) {
    pdk_global_role role = pdk_global_role_of(module, name, allowed, n_allowed);
    return role != PDK_GLOBAL_REFUSED && role != PDK_GLOBAL_FORM;
}

pdckpt_status pdk_global_check_allowed(const char *const *allowed, size_t n_allowed,
                                       const char *source, pdckpt_error *err) {
    for (size_t i = 0; i < n_allowed; i++) {
        const char *s = allowed[i], *dot = s ? strrchr(s, '.') : NULL;
        if (dot && dot != s && dot[1] && !strchr(s, '\n') && strncmp(s, "builtins.", 9) != 0 &&
            strncmp(s, "__builtin__.", 12) != 0)
            continue;
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, source, -1,
                        "allowed global '%s': expected module.name (a class you trust, not a name "
                        "from builtins)",
                        s ? s : "(null)");
    }
    return PDCKPT_OK;
}

/* ---- Python 2 spellings ---- */

typedef struct compat_name {
    const char *py3_module, *py3_name; /* py3_name NULL: every name of the module */
    const char *py2_module, *py2_name;
} compat_name;

/* Only the entries a checkpoint can plausibly hold (not the exception classes).  Reading, any
 * other Python 2 name is judged as spelled: none of those modules is on the table, so it is
 * refused whatever CPython would map it to (StringIO.open -> io.open, ...). */
static const compat_name compat[] = {
    {"builtins", "range", "__builtin__", "xrange"},
    {"builtins", "str", "__builtin__", "unicode"},
    {"builtins", "int", "__builtin__", "long"},
    {"builtins", "chr", "__builtin__", "unichr"},
    {"functools", "reduce", "__builtin__", "reduce"},
    {"builtins", "map", "itertools", "imap"},
    {"builtins", "filter", "itertools", "ifilter"},
    {"builtins", "zip", "itertools", "izip"},
    {"itertools", "filterfalse", "itertools", "ifilterfalse"},
    {"itertools", "zip_longest", "itertools", "izip_longest"},
    {"collections", "UserDict", "UserDict", "IterableUserDict"},
    {"collections", "UserList", "UserList", "UserList"},
    {"collections", "UserString", "UserString", "UserString"},
    {"builtins", NULL, "__builtin__", NULL},
    {"copyreg", NULL, "copy_reg", NULL},
};
#define N_COMPAT (sizeof compat / sizeof compat[0])

void pdk_global_compat(const char **module, const char **name, bool to_py3) {
    for (size_t i = 0; i < N_COMPAT; i++) {
        const compat_name *c = &compat[i];
        const char        *from_m = to_py3 ? c->py2_module : c->py3_module;
        const char        *from_n = to_py3 ? c->py2_name : c->py3_name;
        if (strcmp(*module, from_m) != 0 || (from_n && strcmp(*name, from_n) != 0)) continue;
        *module = to_py3 ? c->py3_module : c->py2_module;
        if (from_n) *name = to_py3 ? c->py3_name : c->py2_name;
        return;
    }
}

/* An argument Python would expand or iterate: an int (bytes(n) allocates n bytes; a numpy scalar
 * or a big int too) or an object computed by another call (range(2**40)); classes are no
 * iterables (a TypeError, at once). */
static bool expands(const pdckpt_value *arg, bool ints) {
    pdckpt_kind kind = pdckpt_value_kind(arg);
    if (kind == PDCKPT_KIND_OBJECT) return pdckpt_object_kind_of(arg) != PDCKPT_OBJECT_GLOBAL;
    return ints && (kind == PDCKPT_KIND_INT || kind == PDCKPT_KIND_FLOAT);
}

static bool empty_shape(const pdckpt_value *shape) {
    if (pdckpt_value_kind(shape) != PDCKPT_KIND_TUPLE) return false;
    for (size_t i = 0; i < pdckpt_value_len(shape); i++) {
        int64_t d;
        if (pdckpt_value_get_int(pdckpt_value_at(shape, i), &d) && d == 0) return true;
    }
    return false;
}

/* builtins.name(arg) as Python's unpickler builds it: bytes / bytearray allocate an int's count,
 * and these six iterate what they are given. */
static bool builtin_arg_bounded(const char *name, const pdckpt_value *arg) {
    static const char *const iterating[] = {"bytes", "bytearray", "list",
                                            "tuple", "set",       "frozenset"};
    bool                     ints = strcmp(name, "bytes") == 0 || strcmp(name, "bytearray") == 0;
    for (size_t k = 0; k < sizeof iterating / sizeof *iterating; k++)
        if (strcmp(name, iterating[k]) == 0) return !expands(arg, ints);
    return true;
}

/* numpy.core.multiarray.scalar / numpy._core.multiarray.scalar (numpy 1.x / 2.x). */
static bool is_np_scalar(const char *module, const char *name) {
    return strcmp(name, "scalar") == 0 && (strcmp(module, "numpy.core.multiarray") == 0 ||
                                           strcmp(module, "numpy._core.multiarray") == 0);
}

bool pdk_global_call_bounded(const char *module, const char *name, const pdckpt_value *args) {
    size_t n = args ? pdckpt_value_len(args) : 0;
    pdk_global_compat(&module, &name, true); /* as written: __builtin__.bytearray is bytearray */
    /* scalar(dtype) without its bytes allocates and zeroes the dtype's itemsize (2 GB for
     * 'V2000000000'); with them numpy takes at most what the bytes hold */
    if (is_np_scalar(module, name)) return n == 2;
    if (strcmp(module, "builtins") == 0) {
        for (size_t i = 0; i < n; i++)
            if (!builtin_arg_bounded(name, pdckpt_value_at(args, i))) return false;
        return true;
    }
    if (strcmp(module, "copyreg") == 0 && strcmp(name, "_reconstructor") == 0 && n == 3) {
        /* base.__init__(obj, state): a builtin base iterates or allocates the state as above */
        /* CPython names a builtin type as the base (object, dict, list, ...); another base's
         * __new__ takes the state as its argument: numpy.ndarray's allocates the shape given */
        const pdckpt_value *base = pdckpt_value_at(args, 1);
        if (pdckpt_value_kind(base) != PDCKPT_KIND_OBJECT ||
            pdckpt_object_kind_of(base) != PDCKPT_OBJECT_GLOBAL)
            return false;
        const char *bm = pdckpt_object_module(base), *bn = pdckpt_object_name(base);
        pdk_global_compat(&bm, &bn, true);
        return strcmp(bm, "builtins") == 0 && builtin_arg_bounded(bn, pdckpt_value_at(args, 2));
    }
    if (strcmp(name, "_reconstruct") == 0 && (strcmp(module, "numpy.core.multiarray") == 0 ||
                                              strcmp(module, "numpy._core.multiarray") == 0))
        return n == 3 && empty_shape(pdckpt_value_at(args, 1));
    return true;
}

bool pdk_global_kind_writable(pdk_global_role role, pdckpt_object_kind kind) {
    if (kind == PDCKPT_OBJECT_GLOBAL) return role != PDK_GLOBAL_REFUSED && role != PDK_GLOBAL_FORM;
    if (kind == PDCKPT_OBJECT_NEWOBJ)
        return role != PDK_GLOBAL_REF && role != PDK_GLOBAL_FORM && role != PDK_GLOBAL_REFUSED;
    return role == PDK_GLOBAL_CALL || role == PDK_GLOBAL_ALLOWED; /* REDUCE */
}

bool pdk_global_state_safe(const char *module, const char *name, const pdckpt_value *state) {
    if (!state || strcmp(module, "numpy") != 0 || strcmp(name, "dtype") != 0) return true;
    if (pdckpt_value_kind(state) != PDCKPT_KIND_TUPLE || pdckpt_value_len(state) < 5) return false;
    for (size_t i = 2; i < 5; i++) /* subarray, names, fields */
        if (pdckpt_value_kind(pdckpt_value_at(state, i)) != PDCKPT_KIND_NONE) return false;
    return true;
}
