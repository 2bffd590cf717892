/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_emit.h — a pickle writer that produces the bytes CPython's C pickler (_pickle.c, 3.8+)
 * produces for the same object graph, protocols 2-4 (spec pickle-and-distributed-formats.md
 * §1.7, §1.10).  Python decides memo hits by object identity; C trees have no Python objects,
 * so every memoizable thing is written with a pdk_pkl_key that stands for the Python object it
 * would be (see "identity" below).  Layered: this file's functions are CPython's save_* family;
 * pickle_emit_numpy.c adds numpy's ndarray/dtype reductions, pickle_emit_value.c and
 * pickle_emit_state.c Paddle's object model (generic and state-dict paths).
 */
#ifndef PDK_PICKLE_EMIT_H
#define PDK_PICKLE_EMIT_H

#include "../pdk_format.h"

/* Identity of a Python object (a memo key).
 *   FRESH   a new object nobody can refer to again: memoized (the index is consumed) and forgotten
 *   PTR     identity of a tree node (ptr) or of something derived from it (ptr, aux)
 *   STR     an interned str: equal text = same object
 *   ROOTKEY a state-dict key: the data entry, the name table and the big-array index share it
 *   CHAR    CPython's cached 0/1-character latin-1 str (aux = code point, 256 = empty)
 *   ICHAR   the interned 1-character str of source literals, where CPython 3.11 keeps one apart
 *           from the cached one (see pickle_emit.c)
 *   BYTE    CPython's cached 0/1-byte bytes (aux = byte, 256 = empty)
 *   GLOBAL  a class or function module.name (text = module, text2 = name, py3 spelling)
 *   DTYPE   a numpy builtin dtype singleton (aux = pdckpt_dtype written) */
typedef enum pdk_pkl_key_kind {
    PDK_KEY_FRESH = 0,
    PDK_KEY_PTR,
    PDK_KEY_STR,
    PDK_KEY_ROOTKEY,
    PDK_KEY_CHAR,
    PDK_KEY_ICHAR,
    PDK_KEY_BYTE,
    PDK_KEY_GLOBAL,
    PDK_KEY_DTYPE,
} pdk_pkl_key_kind;

typedef struct pdk_pkl_key {
    pdk_pkl_key_kind kind;
    const void      *ptr;  /* PTR identity, or STR/ROOTKEY/GLOBAL text */
    size_t           len;  /* text length */
    const void      *ptr2; /* GLOBAL: name text */
    size_t           len2;
    uint64_t         aux;
} pdk_pkl_key;

static inline pdk_pkl_key pdk_key_fresh(void) {
    pdk_pkl_key k = {PDK_KEY_FRESH, NULL, 0, NULL, 0, 0};
    return k;
}
static inline pdk_pkl_key pdk_key_ptr(const void *ptr, uint64_t aux) {
    pdk_pkl_key k = {PDK_KEY_PTR, ptr, 0, NULL, 0, aux};
    return k;
}
static inline pdk_pkl_key pdk_key_text(pdk_pkl_key_kind kind, const char *s, size_t len) {
    pdk_pkl_key k = {kind, s, len, NULL, 0, 0};
    return k;
}

typedef struct pdk_memo pdk_memo; /* pickle_emit_memo.c */

/* The pickler: protocol, output, frame buffer (protocol 4) and memo. */
typedef struct pdk_pkl {
    pdk_sink               *sink;
    const pdckpt_allocator *alloc;
    int                     proto;
    pdckpt_numpy_module     numpy_module;
    bool                    framing;  /* protocol 4, between PROTO and the end */
    bool                    in_frame; /* a frame has been started (frame_len may be 0) */
    uint8_t                *frame;    /* bytes of the open frame */
    size_t                  frame_len;
    size_t                  frame_cap;
    uint8_t                *scratch; /* latin-1 -> UTF-8 chunks (protocol 2) */
    pdk_memo               *memo;
    uint64_t                memo_next; /* index the next memoized object gets */
    unsigned                depth;     /* nesting of save calls, bounded */
    const char *const      *allowed;   /* the caller's allowed_globals (beyond the allowlist) */
    size_t                  n_allowed;
    pdckpt_error           *err;
    /* where tensor payloads land (the lazy-open index, pickle.h), or NULL; want_offset: the
     * next bytes object is a tensor's payload */
    struct pdk_pickle_offsets *offsets;
    bool                       want_offset;
    /* globals already written, by the caller's (module, name) pointers: every ndarray names
     * two, and the Python-2 spelling check costs a dozen strcmp (pickle_emit_global.c) */
    struct {
        const char *module, *name;
        uint64_t    index;
    } globals_seen[4];
    unsigned n_globals_seen;
} pdk_pkl;

#define PDK_PKL_MAX_DEPTH 512
#define PDK_PKL_BATCH     1000

/* ---- pickle_emit_memo.c: the memo (a hash table from key to index) ---- */
pdk_memo *pdk_memo_new(const pdckpt_allocator *a);
void      pdk_memo_free(pdk_memo *m);
/* Finds `key`; true and *index when present.  FRESH keys are never present. */
bool          pdk_memo_find(const pdk_memo *m, const pdk_pkl_key *key, uint64_t *index);
pdckpt_status pdk_memo_put(pdk_memo *m, const pdk_pkl_key *key, uint64_t index, pdckpt_error *err);

/* ---- pickle_emit.c ---- */

/* Starts a pickle: PROTO (and framing for protocol 4). */
pdckpt_status pdk_pkl_begin(pdk_pkl *p, pdk_sink *sink, const pdckpt_save_options *opts,
                            pdckpt_error *err);
/* STOP, commits the last frame and frees the pickler's memory (also on failure: pass ok=false). */
pdckpt_status pdk_pkl_end(pdk_pkl *p, bool ok);

/* CPython commits a frame of >= 64 KiB at the start of every save() call (atoms included). */
pdckpt_status pdk_pkl_boundary(pdk_pkl *p);
/* Raw opcode bytes into the current frame (or straight out without framing). */
pdckpt_status pdk_pkl_write(pdk_pkl *p, const void *bytes, size_t len);
pdckpt_status pdk_pkl_op(pdk_pkl *p, uint8_t opcode);
pdckpt_status pdk_pkl_save_long_bytes(pdk_pkl *p, const uint8_t *bytes, size_t n);
/* Looks the key up; on a hit writes BINGET/LONG_BINGET and sets *hit. */
pdckpt_status pdk_pkl_memo_get(pdk_pkl *p, const pdk_pkl_key *key, bool *hit);
/* Gives the object the next memo index: MEMOIZE (protocol 4) or BINPUT / LONG_BINPUT. */
pdckpt_status pdk_pkl_memoize(pdk_pkl *p, const pdk_pkl_key *key);
/* Enters / leaves a nested save (depth bound; the limit is a clear LIMIT error). */
pdckpt_status pdk_pkl_enter(pdk_pkl *p);
void          pdk_pkl_leave(pdk_pkl *p);

/* save() of atoms. */
pdckpt_status pdk_pkl_save_none(pdk_pkl *p);
pdckpt_status pdk_pkl_save_bool(pdk_pkl *p, bool v);
pdckpt_status pdk_pkl_save_int(pdk_pkl *p, int64_t v);
pdckpt_status pdk_pkl_save_float(pdk_pkl *p, double v);
/* save() of a str (UTF-8).  `key` is its identity unless CPython caches it (0/1 latin-1 chars). */
pdckpt_status pdk_pkl_save_str(pdk_pkl *p, const char *s, size_t len, pdk_pkl_key key);
/* save() of a str whose key (ROOTKEY text) the memo cannot hold yet and that only the caller will
 * refer to again, with pdk_pkl_get(*index): the bytes of save_str's miss, without a memo entry
 * (W2: the random-access table insert and lookup of 100,000 state-dict keys). */
pdckpt_status pdk_pkl_save_new_str(pdk_pkl *p, const char *s, size_t len, uint64_t *index);
/* What a memo hit writes for the object memoized at `index` (BINGET / LONG_BINGET). */
pdckpt_status pdk_pkl_get(pdk_pkl *p, uint64_t index);
/* save() of bytes: BINBYTES (3+) or _codecs.encode(latin-1 text) (2), streamed from `data`. */
pdckpt_status pdk_pkl_save_bytes(pdk_pkl *p, const void *data, uint64_t len, pdk_pkl_key key);
/* save() of a class or function (GLOBAL / STACK_GLOBAL), memoized by name.  Python-2 names
 * (__builtin__, copy_reg) are accepted and written as the protocol requires. */
pdckpt_status pdk_pkl_save_global(pdk_pkl *p, const char *module, const char *name);
/* A tuple of `n` ints (shapes, (0,)); never memo-shared. */
pdckpt_status pdk_pkl_save_int_tuple(pdk_pkl *p, const int64_t *v, size_t n);

/* Items of a dict, list or set written in CPython's batches: fn(ctx, i) saves item i (a value, or
 * a key and a value).  EXACT mimics batch_dict_exact/batch_set (an empty closing batch when the
 * count is a multiple of 1000, one item alone as SETITEM), LIST batch_list_exact, ITER the
 * iterator versions save_reduce uses for listitems/dictitems. */
typedef enum pdk_pkl_batch_mode {
    PDK_BATCH_DICT_EXACT,
    PDK_BATCH_LIST_EXACT,
    PDK_BATCH_SET,
    PDK_BATCH_DICT_ITER,
    PDK_BATCH_LIST_ITER,
} pdk_pkl_batch_mode;
typedef pdckpt_status (*pdk_pkl_item_fn)(pdk_pkl *p, void *ctx, size_t i);
pdckpt_status pdk_pkl_batch(pdk_pkl *p, pdk_pkl_batch_mode mode, size_t n, pdk_pkl_item_fn fn,
                            void *ctx);

/* Tuple framing: TUPLE1/2/3 for n <= 3, else MARK ... TUPLE (call begin, save n items, end). */
pdckpt_status pdk_pkl_tuple_begin(pdk_pkl *p, size_t n);
pdckpt_status pdk_pkl_tuple_end(pdk_pkl *p, size_t n, pdk_pkl_key key);

/* True when CPython interns a str constant with this text (all characters [A-Za-z0-9_]). */
bool pdk_pkl_is_name_like(const char *s, size_t len);

/* ---- pickle_emit_numpy.c: numpy's reductions ---- */

/* A numpy scalar value (pdckpt_value_numpy_scalar): multiarray.scalar(dtype, bytes). */
pdckpt_status pdk_pkl_save_np_scalar(pdk_pkl *p, const pdckpt_value *v, pdckpt_dtype dtype);
/* save() of an ndarray holding `n_bytes` bytes at `data` with the tensor's dtype and the given
 * shape, in C order or (fortran) column-major, as numpy's is_fortran says; memoized under `key`.
 * save_tensor_array: a tensor's own memory, in the order it has (pdckpt_tensor_get_memory). */
pdckpt_status pdk_pkl_save_ndarray(pdk_pkl *p, pdckpt_dtype dtype, int32_t n_dims,
                                   const int64_t *dims, const void *data, uint64_t n_bytes,
                                   bool fortran, pdk_pkl_key key);
pdckpt_status pdk_pkl_save_tensor_array(pdk_pkl *p, const pdckpt_value *tensor, pdk_pkl_key key);
/* numpy's element size for the dtype as Paddle pickles it (bfloat16 as uint16, float8 as int8);
 * 0 when numpy cannot hold it. */
size_t pdk_pkl_numpy_itemsize(pdckpt_dtype dtype);

/* ---- pickle_emit_value.c, pickle_emit_state.c: Paddle's object model (spec §1.1-1.5) ---- */

/* How a tensor is pickled: STATE = the ndarray Paddle's state-dict path makes; GENERIC = the
 * generic path's dispatch table (a named tensor becomes tuple((name, ndarray))). */
typedef enum pdk_pkl_mode { PDK_MODE_STATE, PDK_MODE_GENERIC } pdk_pkl_mode;

/* save() of any value as Paddle's pickler would see the object it stands for. */
pdckpt_status pdk_pkl_save_value(pdk_pkl *p, const pdckpt_value *v, pdk_pkl_mode mode);
/* The whole state-dict path: plain dict, ndarrays, name table, big-array split (protocol 2/3). */
pdckpt_status pdk_pkl_save_state_dict(pdk_pkl *p, const pdckpt_value *root);
/* paddle.static.save's X.pdparams: the root as the generic path writes it, except (protocols 2
 * and 3) its top-level arrays over 2^30 - 1 bytes, split as the state-dict path splits them. */
pdckpt_status pdk_pkl_save_static_params(pdk_pkl *p, const pdckpt_value *root);

#endif /* PDK_PICKLE_EMIT_H */
