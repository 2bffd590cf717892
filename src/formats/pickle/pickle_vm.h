/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_vm.h — internals of the pickle reader (spec pickle-and-distributed-formats.md §1.7-1.11):
 * a bounded stack machine that builds pdckpt values and never runs anything.  Shared by
 * pickle_vm.c (stack, memo, limits, placement, machine opcodes), pickle_ops.c (data opcodes),
 * pickle_calls.c (GLOBAL/REDUCE/NEWOBJ/BUILD), pickle_numpy.c (arrays, dtypes, scalars),
 * pickle_paddle.c (Paddle's state-dict conventions), pickle_run.c (the dispatch table and run
 * loop) and pickle_read.c (sniff, load).  Files depend downwards only: run -> calls -> numpy ->
 * ops -> vm.
 */
#ifndef PDK_PICKLE_VM_H
#define PDK_PICKLE_VM_H

#include "../../core/cursor.h"
#include "pickle.h"
#include "pickle_names.h"
#include "pickle_opcodes.h"

/* Strings and bytes are pushed as STRING/BYTES values borrowing their bytes from the input
 * (pdk_value_new_borrowed: no copy; text is UTF-8-checked first).  A value becomes owned where it
 * is placed into the result (pk_adopt, pk_sanitize): the public contract promises NUL-terminated
 * strings, and a read buffer's bytes are moved by pdk_tree_relayout after the load, so no
 * borrowed value may outlive the run.  What dies in the run (global names, array data consumed
 * into tensors, arguments) is never copied; what survives is keys and names, which are short.
 *
 * Bookkeeping flags for values the VM has to know more about than their kind says. */
enum {
    PK_PY2 = 1u << 1,        /* borrowed BYTES holding a long Python 2 str (latin-1 bytes): array
                              * data where numpy takes it, a latin-1 STRING where it is placed */
    PK_DIRTY = 1u << 3,      /* a tuple with a borrowed value somewhere inside (through tuples) */
    PK_PLACED = 1u << 4,     /* inside another container: frozen (no cycles can form) */
    PK_UNHASHABLE = 1u << 5, /* a tuple holding a list, dict, set or array somewhere */
};

/* Python 2 str and latin-1-decoded bytes at least this long stay bytes until they are placed;
 * shorter ones become their final value at once. */
#define PK_VIEW_MIN ((size_t)64 << 10)

/* What the VM knows about a container, object or Python 2 str (keyed by identity; the map holds a
 * reference so an address is never reused while the VM runs). */
typedef struct pk_info {
    pdckpt_value *key;
    uint32_t      flags;
    uint32_t      depth; /* nesting levels below and including this value */
    uint64_t      nodes; /* values in the tree it expands to, shared values counted per use */
    uint64_t      data;  /* bytes of arrays, str and bytes in that tree, counted the same way */
    uint32_t      other_keys; /* dicts: keys hashed in part (PDK_MAX_WEAK_KEYS) */
    pdckpt_value *fwd;        /* what BUILD turned this object into (ndarray -> tensor), or NULL */
} pk_info;

typedef struct pk_map {
    pk_info *slots;
    size_t   cap; /* power of two, or 0 */
    size_t   len;
} pk_map;

/* Consumer mode (pickle_live.c): the memo entries some GET fetches, found before the run; only
 * those are kept (by rank among them), the others only counted for MEMOIZE's numbering. */
typedef struct pk_live {
    uint64_t      *got, *set; /* a bit per memo index: fetched by a GET / stored so far */
    uint32_t      *rank;      /* per word of got: the fetched indices below it */
    size_t         words;     /* of each bitmap */
    pdckpt_value **kept;      /* the fetched entries, by rank */
    size_t         n_kept;
} pk_live;

struct pdk_pickle_consumer;

typedef struct pk_vm {
    const pdk_input           *in;
    const pdckpt_load_options *opts;
    const pdckpt_allocator    *a;
    pdckpt_error              *err;
    pdk_cursor                 cur;    /* the input: every byte is read through it */
    size_t                     op_pos; /* offset of the opcode being run */
    uint8_t                    op;
    int                        protocol; /* from PROTO, 0 when absent */
    pdckpt_value             **stack;
    size_t                     sp, stack_cap;
    size_t                    *marks;
    size_t                     n_marks, marks_cap;
    pdckpt_value             **memo;
    size_t                     memo_cap, memo_count;
    pk_map                     map;
    uint64_t                   used, budget; /* approximate bytes allocated / max_alloc_bytes */
    pdk_budget                *copies; /* what the Fortran-order tensors' C copies are charged to */
    uint64_t                   max_nodes;
    uint32_t                   max_depth;
    bool                       stopped;
    bool                       shortcut; /* arrays may take the fast path (pickle_array.c) */
    bool                       rerun;    /* a GET met a value the fast path skipped */
    size_t                     n_py2;    /* PK_PY2 values made (none: no lookup needed) */
    pdckpt_value              *result;
    const struct pdk_pickle_consumer *consumer; /* consumer mode (pickle.h), or NULL */
    pk_live                           live;     /* consumer mode: the memo entries kept */
} pk_vm;

/* A memo entry the array fast path did not build (an argument tuple, the raw data bytes): a GET
 * of it makes the load start again without the fast path (vm->rerun). */
extern const char pk_elided_marker;
#define PK_ELIDED ((pdckpt_value *)(uintptr_t)&pk_elided_marker)

/* ---- pickle_vm.c: machine plumbing ---- */

void pk_vm_init(pk_vm *vm, const pdk_input *in, const pdckpt_load_options *opts, pdckpt_error *err);
void pk_vm_free(pk_vm *vm);
/* Lets go of every value the run holds (stack, memo, identity map, result): afterwards the
 * loaded tree's holders are the tree's own.  The limits and the error stay usable. */
void pk_vm_drop_values(pk_vm *vm);

/* Records an error at the current opcode: "<OPNAME>: <message>". */
pdckpt_status pk_fail(pk_vm *vm, pdckpt_status status, const char *fmt, ...) PDK_PRINTF(3, 4);
/* After a failure for want of bytes (returns `status`): says the input looks cut short, as an
 * interrupted download or copy leaves it. */
#define PK_TRUNCATED_HINT " (the input ends too soon: " PDK_TRUNCATED_HINT ")"
pdckpt_status pk_short(pk_vm *vm, pdckpt_status status);
pdckpt_status pk_nomem(pk_vm *vm);
/* Counts `bytes` against max_alloc_bytes; LIMIT once exceeded. */
pdckpt_status pk_charge(pk_vm *vm, uint64_t bytes);
/* Reads n argument bytes of the current opcode. */
pdckpt_status pk_read(pk_vm *vm, uint64_t n, const uint8_t **out, const char *what);
/* Reads a '\n'-terminated argument line (without the newline). */
pdckpt_status pk_readline(pk_vm *vm, const uint8_t **out, size_t *len);

pk_info *pk_info_of(pk_vm *vm, const pdckpt_value *v);
/* Starts tracking `v` (depth 1 for containers/objects, 0 for Python 2 str). */
pdckpt_status pk_track(pk_vm *vm, pdckpt_value *v, uint32_t flags, pk_info **out);
/* Tracks a value built whole (not through placements) with its depth and expanded size; LIMIT
 * as a placement would fail. */
pdckpt_status pk_track_built(pk_vm *vm, pdckpt_value *v, uint32_t depth, uint64_t nodes,
                             uint64_t data);
/* A new tracked container or object shell. */
pdckpt_status pk_new_container(pk_vm *vm, pdckpt_kind kind, pdckpt_value **out);
/* A new tracked object; `args` (borrowed, may be NULL) is placed into it. */
pdckpt_status pk_make_object(pk_vm *vm, pdckpt_object_kind kind, const char *module,
                             const char *name, pdckpt_value *args, pdckpt_value **out);
/* After `added_nodes` values holding `added_data` bytes went into `part` (an object's items
 * container): the object's depth and size follow. */
pdckpt_status pk_object_grew(pk_vm *vm, pdckpt_value *obj, const pdckpt_value *part,
                             uint64_t added_nodes, uint64_t added_data);
/* The expanded data bytes of a tracked container (0 when untracked). */
uint64_t pk_data_of(pk_vm *vm, const pdckpt_value *v);
/* A long Python 2 str still in its input (PK_PY2). */
bool pk_is_py2(pk_vm *vm, const pdckpt_value *v);
/* Gives a borrowed value its own copy in place, counted against max_alloc_bytes. */
pdckpt_status pk_own(pk_vm *vm, pdckpt_value *v);

/* Memo: sets entry idx to a new reference to `v` (or PK_ELIDED); LIMIT past max_memo. */
pdckpt_status pk_memo_set(pk_vm *vm, uint64_t idx, pdckpt_value *v);
pdckpt_value *pk_memo_at(pk_vm *vm, uint64_t idx); /* borrowed; NULL when unset */

/* Stack: push transfers `v` (NULL means out of memory); pops resolve BUILD replacements. */
pdckpt_status pk_push(pk_vm *vm, pdckpt_value *v);
pdckpt_status pk_pop(pk_vm *vm, pdckpt_value **out);
pdckpt_status pk_peek(pk_vm *vm, size_t depth, pdckpt_value **out); /* borrowed */
/* Pops the last mark: the items are stack[*start..sp), still on the stack. */
pdckpt_status pk_pop_mark(pk_vm *vm, size_t *start);
void          pk_drop_to(pk_vm *vm, size_t start);

/* Placement: `child` (borrowed) goes into `parent`.  Returns in *out a new reference to what to
 * insert: borrowed values are owned, Python 2 str decoded and dirty tuples rebuilt, unless the
 * parent is a tuple (tuples are arguments until they are placed themselves).  Marks
 * the child frozen and updates the parent's depth and size (LIMIT on max_depth / size). */
pdckpt_status pk_adopt(pk_vm *vm, pdckpt_value *parent, pdckpt_value *child, pdckpt_value **out);
/* Fails when `target` may not be mutated any more (it is inside another container). */
pdckpt_status pk_check_mutable(pk_vm *vm, pdckpt_value *target, const char *what);
/* A final value for `v` (new reference): borrowed values owned (in place), Python 2 str
 * decoded, dirty tuples rebuilt. */
pdckpt_status pk_sanitize(pk_vm *vm, pdckpt_value *v, pdckpt_value **out);
/* Records that BUILD turned object `from` into `to` (both borrowed). */
pdckpt_status pk_forward(pk_vm *vm, pdckpt_value *from, pdckpt_value *to);

/* Text of a STRING value (borrowed from it; not NUL-terminated while the value borrows). */
bool pk_text(pk_vm *vm, const pdckpt_value *v, const char **s, size_t *len);
/* Bytes of a BYTES value (a long Python 2 str included), false for anything else. */
bool pk_bytes(pk_vm *vm, const pdckpt_value *v, const uint8_t **b, size_t *len);
bool pk_is_string(const pdckpt_value *v, const char *s);
/* A STRING from latin-1 bytes (a Python 2 str as paddle.load decodes it). */
pdckpt_status pk_latin1_string(pk_vm *vm, const uint8_t *b, size_t n, pdckpt_value **out);

/* Names and text. */
bool pk_is_builtin(const pdckpt_value *global, const char *name); /* builtins / __builtin__ */
bool pk_is_global(const pdckpt_value *v, const char *module, const char *name);
/* The role the allowlist gives a global object (names already in Python 3 spelling). */
pdk_global_role pk_role_of(const pk_vm *vm, const pdckpt_value *g);
/* Fails when `v` is a global the allowlist accepts only as a callable of one exact form (eval):
 * it may not become a value of the tree. */
pdckpt_status pk_check_placeable(pk_vm *vm, const pdckpt_value *v);
/* Validates UTF-8 as CPython decodes pickled text (surrogates allowed). */
bool pk_utf8_valid(const uint8_t *s, size_t n, size_t *bad_at);
/* The length of the longest prefix of `s` that is UTF-8 of code points below U+0100 (ASCII and
 * the 2-byte sequences 0xC2/0xC3 + continuation): protocol 2's spelling of bytes. */
size_t pk_latin1_span(const uint8_t *s, size_t n);

/* Handlers of the machine opcodes (each reads its arguments for vm->op). */
pdckpt_status pk_op_mark(pk_vm *vm);
pdckpt_status pk_op_stop(pk_vm *vm);
pdckpt_status pk_op_pop(pk_vm *vm);
pdckpt_status pk_op_pop_mark(pk_vm *vm);
pdckpt_status pk_op_dup(pk_vm *vm);
pdckpt_status pk_op_proto(pk_vm *vm);
pdckpt_status pk_op_frame(pk_vm *vm);
pdckpt_status pk_op_memo_put(pk_vm *vm);
pdckpt_status pk_op_memo_get(pk_vm *vm);
pdckpt_status pk_op_refused(pk_vm *vm); /* PERSID, BINPERSID, EXT*, NEXT_BUFFER */
pdckpt_status pk_op_readonly_buffer(pk_vm *vm);

/* ---- pickle_ops.c: data and container opcodes ---- */

pdckpt_status pk_op_none(pk_vm *vm);
pdckpt_status pk_op_bool(pk_vm *vm);
pdckpt_status pk_op_binint(pk_vm *vm);
pdckpt_status pk_op_long_bin(pk_vm *vm);
pdckpt_status pk_op_int_text(pk_vm *vm);
pdckpt_status pk_op_binfloat(pk_vm *vm);
pdckpt_status pk_op_float_text(pk_vm *vm);
pdckpt_status pk_op_text(pk_vm *vm);
pdckpt_status pk_op_unicode_text(pk_vm *vm);
pdckpt_status pk_op_py2_string(pk_vm *vm);
pdckpt_status pk_op_string_text(pk_vm *vm);
pdckpt_status pk_op_bytes(pk_vm *vm);
pdckpt_status pk_op_empty(pk_vm *vm);
pdckpt_status pk_op_mark_build(pk_vm *vm);
pdckpt_status pk_op_tuple_n(pk_vm *vm);
pdckpt_status pk_op_single_into(pk_vm *vm);
pdckpt_status pk_op_mark_into(pk_vm *vm);
/* An int from little-endian two's-complement bytes: INT, or builtins.int(bytes) when > 64 bits. */
pdckpt_status pk_make_long(pk_vm *vm, const uint8_t *b, size_t n, pdckpt_value **out);
/* Appends items stack[start..sp) to `target` (LIST/SET/OBJECT) and drops them. */
pdckpt_status pk_extend(pk_vm *vm, pdckpt_value *target, size_t start);
/* Sets pairs stack[start..sp) on `target` (DICT/OBJECT) and drops them. */
pdckpt_status pk_set_pairs(pk_vm *vm, pdckpt_value *target, size_t start);
/* A new tuple of items stack[start..sp) (which are dropped). */
pdckpt_status pk_make_tuple(pk_vm *vm, size_t start, pdckpt_value **out);

/* ---- pickle_calls.c: globals, calls, BUILD ---- */

pdckpt_status pk_op_global(pk_vm *vm);
pdckpt_status pk_op_stack_global(pk_vm *vm);
pdckpt_status pk_op_reduce(pk_vm *vm);
pdckpt_status pk_op_newobj(pk_vm *vm);
pdckpt_status pk_op_obj_inst(pk_vm *vm);
pdckpt_status pk_op_build(pk_vm *vm);

/* ---- pickle_numpy.c: structural numpy recognition ---- */

typedef struct pk_np_dtype {
    pdckpt_dtype dtype;
    size_t       size;
    bool         swap; /* stored big-endian: bytes must be swapped */
} pk_np_dtype;

/* A numpy.dtype object pdckpt can hold; false for structured, object, string, ... dtypes. */
bool pk_np_dtype_of(const pdckpt_value *d, pk_np_dtype *out);
/* A tensor over C-order little-endian bytes `b` in the input: zero-copy when the input allows. */
pdckpt_status pk_array_view(pk_vm *vm, pk_np_dtype dt, int32_t nd, const int64_t *dims,
                            const uint8_t *b, pdckpt_value **out);

bool pk_is_reconstruct(const pdckpt_value *obj);           /* an object _reconstruct made */
bool pk_is_reconstruct_global(const pdckpt_value *global); /* the function itself */
bool pk_is_frombuffer(const pdckpt_value *global);
bool pk_is_np_scalar(const pdckpt_value *global);
/* BUILD on a _reconstruct object: the tensor, or *out = NULL when the state is not an array
 * pdckpt can hold (then the object keeps the state, opaque). */
pdckpt_status pk_ndarray_build(pk_vm *vm, pdckpt_value *obj, pdckpt_value *state,
                               pdckpt_value **out);
/* numpy.core.numeric._frombuffer(buf, dtype, shape, order); *out NULL when not convertible. */
pdckpt_status pk_frombuffer(pk_vm *vm, pdckpt_value *args, pdckpt_value **out);
/* numpy.core.multiarray.scalar(dtype, bytes) -> INT/FLOAT/BOOL (complex: a 0-d tensor). */
pdckpt_status pk_np_scalar(pk_vm *vm, pdckpt_value *args, pdckpt_value **out);
/* A copy of `t` (borrowed tensor) sharing its data, carrying `name`. */
pdckpt_status pk_tensor_renamed(pk_vm *vm, const pdckpt_value *t, const char *name,
                                pdckpt_value **out);

/* ---- pickle_array.c: the ndarray fast path ---- */

/* BINGET / LONG_BINGET: an ndarray's whole opcode sequence when it starts here (vm->shortcut),
 * else an ordinary GET. */
pdckpt_status pk_op_get_array(pk_vm *vm);

/* ---- pickle_live.c: consumer mode ---- */

/* Walks the opcodes (arguments skipped by `skip`) and sets up vm->live: which memo entries a GET
 * fetches.  A stream the walk cannot follow is left to the run to report. */
pdckpt_status pk_live_walk(pk_vm *vm, bool (*skip)(pdk_cursor *, const pk_opinfo *));
/* The kept slot of memo entry idx in *slot, NULL when no GET fetches it; `store` counts a first
 * store in vm->memo_count. */
pdckpt_status pk_live_slot(pk_vm *vm, uint64_t idx, bool store, pdckpt_value ***slot);
void          pk_live_free(pk_vm *vm);
/* A consumer's error at the current opcode: names the input and the opcode's offset. */
pdckpt_status pk_consumer_failed(pk_vm *vm, pdckpt_status st);
/* Consumer mode: offers a SETITEM(S) pair to the consumer; *taken: it kept it. */
pdckpt_status pk_offer_pair(pk_vm *vm, const pdckpt_value *dict, const pdckpt_value *key,
                            const pdckpt_value *value, bool *taken);

/* ---- pickle_run.c: the dispatch table ---- */

/* Runs opcodes to STOP; the result is left in vm->result. */
pdckpt_status pk_vm_run(pk_vm *vm);

/* ---- pickle_paddle.c: Paddle's conventions on the loaded root ---- */

pdckpt_status pk_paddle_finish(pk_vm *vm, pdckpt_value **root);

#endif /* PDK_PICKLE_VM_H */
