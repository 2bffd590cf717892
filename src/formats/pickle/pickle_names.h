/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_names.h — the one table of globals (module, name) a pickle may name, shared by the
 * reader (pickle_calls.c: what it resolves) and the writer (pickle_emit_global.c: what it may
 * emit), and the Python 2 spellings CPython maps below protocol 3 (docs/RELIABILITY.md, "The
 * pickle allowlist").
 */
#ifndef PDK_PICKLE_NAMES_H
#define PDK_PICKLE_NAMES_H

#include "../pdk_format.h"

/* What pdckpt lets a global do.  Nothing is ever imported or called: these say which structures
 * the reader accepts around the name and whether the writer may emit it. */
typedef enum pdk_global_role {
    PDK_GLOBAL_REFUSED = 0, /* not on the table and not allowed by the caller */
    PDK_GLOBAL_CALL,        /* REDUCE/OBJ/INST/NEWOBJ: evaluated structurally or carried */
    PDK_GLOBAL_CLASS,       /* a plain class: only NEWOBJ (cls.__new__, no __init__) + BUILD */
    PDK_GLOBAL_REF,         /* only an argument of another global (numpy.ndarray) */
    PDK_GLOBAL_FORM,        /* only inside one exact Paddle structure; never re-emitted */
    PDK_GLOBAL_ALLOWED,     /* named by the caller (allowed_globals): carried inert */
} pdk_global_role;

/* The role of module.name (Python 3 spelling): the table first, then the caller's list of
 * "module.name" strings. */
pdk_global_role pdk_global_role_of(const char *module, const char *name, const char *const *allowed,
                                   size_t n_allowed);
/* Whether the writer may emit module.name: on the table (not FORM) or allowed by the caller. */
bool pdk_global_writable(const char *module, const char *name, const char *const *allowed,
                         size_t n_allowed);
/* Whether Python's unpickler builds the call module.name(*args) within what the file holds, as
 * it does for what CPython and numpy write: bytes / bytearray of text, bytes or a list (not of an
 * int: bytes(2**40) allocates a TiB), list / tuple / set / frozenset / bytes / bytearray of
 * values (not of a computed object: list(range(2**40))), numpy's _reconstruct of an empty shape
 * (its data comes with BUILD; a shape of 2^34 elements is 16 GiB that Paddle then copies), numpy's
 * scalar with its bytes (scalar(dtype) alone zeroes the dtype's itemsize), copyreg's
 * _reconstructor with a builtin base (numpy.ndarray's __new__ allocates the state's shape).  The
 * writer emits no other such call, so a converted file cannot make paddle.load exhaust memory.
 */
bool pdk_global_call_bounded(const char *module, const char *name, const pdckpt_value *args);
/* Whether the writer may emit a global of `role` as an object of `kind`, as the reader accepts
 * it (pickle_calls.c): a REDUCE only of a CALL or a caller-allowed global (a REF such as
 * numpy.ndarray or builtins.dict is an argument, never called: numpy.ndarray((10**9,),
 * dtype('O')) makes paddle.load fill 8 GB; a CLASS would run its __init__), a NEWOBJ of neither
 * a REF nor a FORM.  A tree from elsewhere (a safetensors pdckpt.tree, a caller's objects) may
 * hold what no pickle read by pdckpt holds. */
bool pdk_global_kind_writable(pdk_global_role role, pdckpt_object_kind kind);
/* Whether numpy builds module.name + BUILD(state) as it builds the dtypes it pickles: a plain
 * type code, no fields and no subarray (numpy takes a structured dtype's field offsets from the
 * state unchecked: an offset past the item makes every read of the field one out of bounds). */
bool pdk_global_state_safe(const char *module, const char *name, const pdckpt_value *state);
/* Checks a caller's allowed_globals list: "module.name", both parts non-empty, and nothing from
 * builtins (its functions are the code runners; its harmless types are on the table).  ARGUMENT
 * naming the first bad entry. */
pdckpt_status pdk_global_check_allowed(const char *const *allowed, size_t n_allowed,
                                       const char *source, pdckpt_error *err);

/* CPython's Python 2 <-> 3 renames of the globals a checkpoint can hold (_compat_pickle):
 * to_py3 maps a name read from a protocol 0-2 pickle, !to_py3 the name written at protocol 2. */
void pdk_global_compat(const char **module, const char **name, bool to_py3);

#endif /* PDK_PICKLE_NAMES_H */
