/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pdckpt.h — save and load PaddlePaddle checkpoints from C.
 *
 * pdckpt reads and writes every on-disk format PaddlePaddle uses for training state,
 * byte-compatible with Paddle, without Python:
 *
 *   format        what it is                                         read  write
 *   tensor        one binary tensor stream (LoDTensor/DenseTensor)    yes   yes
 *   combined      concatenated tensor streams (save_combine,          yes   yes
 *                 __params__, .pdiparams); names come from the caller
 *   vars-dir      a directory with one tensor file per variable       yes   yes
 *   safetensors   the ecosystem's interchange format                  yes   yes
 *   pickle, tnum, dygraph-dir, program, pir-json, distcp              (see docs/formats.md)
 *
 * Everything a load returns is a tree of pdckpt_value nodes (dicts, lists, scalars, tensors, opaque
 * Python objects).  Everything a save takes is such a tree.  Byte layouts: docs/formats.md.
 *
 * Conventions used throughout this header:
 *   - Every call that can fail returns a pdckpt_status and takes `pdckpt_error *err` last.  `err`
 *     may be NULL.  Calls that cannot fail do not: accessors and predicates (pdckpt_tensor_get,
 *     pdckpt_value_get_int, pdckpt_dict_get, pdckpt_format_can_load, ...) return bool or a pointer,
 *     where false / NULL means "not this kind" or "not there" and is no error.  (Turning
 *     pdckpt_tensor_get into a status would silently invert every `if (!pdckpt_tensor_get(...))`
 *     already written, so the line is drawn at failure, not at the return type.)  Public entry
 * points reset `*err` first; on failure it names the source, the byte offset and what was expected
 * versus what was found.  The library never prints and never aborts on input, and keeps no global
 * mutable state.  All calls are thread-safe on distinct objects.
 *   - "borrowed" pointers stay owned by their owner; "transferred" pointers become the callee's,
 *     whether the call succeeds or fails (so callers never have to clean up after a failed insert).
 *   - Destructors accept NULL.
 *   - Options structs start with struct_size (set by the PDCKPT_*_INIT macros, which C++ can use
 *     too): a program built against this header keeps working with later libraries.
 */
#ifndef PDCKPT_H
#define PDCKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(PDCKPT_BUILDING) && defined(__GNUC__)
#define PDCKPT_API __attribute__((visibility("default")))
#else
#define PDCKPT_API
#endif

/* ---------------------------------------------------------------------------------------------
 * Version
 * ------------------------------------------------------------------------------------------- */
#define PDCKPT_VERSION_MAJOR 0
#define PDCKPT_VERSION_MINOR 1
#define PDCKPT_VERSION_PATCH 0
#define PDCKPT_VERSION_NUMBER                                                                      \
    (PDCKPT_VERSION_MAJOR * 10000 + PDCKPT_VERSION_MINOR * 100 + PDCKPT_VERSION_PATCH)
#define PDCKPT_VERSION_STRING "0.1.0"

/* The library's own version, so a binding can check that header and library match. */
PDCKPT_API unsigned    pdckpt_version_number(void);
PDCKPT_API const char *pdckpt_version_string(void);

/* ---------------------------------------------------------------------------------------------
 * Status and errors
 * ------------------------------------------------------------------------------------------- */

/* Values are pinned: they never change meaning or number. */
typedef enum pdckpt_status {
    PDCKPT_OK = 0,
    PDCKPT_ERR_ARGUMENT = 1,    /* the caller passed something invalid (NULL, bad name, ...) */
    PDCKPT_ERR_NOMEM = 2,       /* an allocation failed */
    PDCKPT_ERR_IO = 3,          /* the OS refused a read/write/rename/fsync; see sys_errno */
    PDCKPT_ERR_FORMAT = 4,      /* the bytes are not a valid file of the expected format */
    PDCKPT_ERR_UNSUPPORTED = 5, /* valid, but pdckpt does not handle it (dtype, opcode, ...) */
    PDCKPT_ERR_NOT_FOUND = 6,   /* a file, key or variable does not exist */
    PDCKPT_ERR_MISMATCH = 7,    /* two things that must agree do not (program vs params, ...) */
    PDCKPT_ERR_LIMIT = 8,       /* a configured limit (size, depth, memo) would be exceeded */
    PDCKPT_ERR_MPI = 9,         /* an MPI call failed, or another rank reported an error */
    PDCKPT_ERR_CORRUPT = 10,    /* a checksum does not match the data */
} pdckpt_status;

/* Caller-owned error record.  Filling it never allocates, so even ENOMEM can be described. */
typedef struct pdckpt_error {
    pdckpt_status status;       /* PDCKPT_OK when nothing failed */
    int           sys_errno;    /* errno of the failing system call, else 0 */
    int64_t       offset;       /* byte offset into `source`, or -1 when no offset applies */
    char          source[512];  /* file path, "<memory>", "<sink>", or "" */
    char          message[512]; /* one line: what was expected, what was found */
} pdckpt_error;
/* The size is part of the ABI and stays.  Names quoted in `message` are made display-safe and,
 * when the whole would not fit, cut in their middle ("head[...N bytes...]tail"), so the words
 * saying what was expected always survive; pdckpt_error_format cuts a long `source` likewise. */

#define PDCKPT_ERROR_INIT                                                                          \
    {                                                                                              \
        PDCKPT_OK, 0, -1, {0}, {                                                                   \
            0                                                                                      \
        }                                                                                          \
    }

/* Stable lower-case name of a status ("ok", "format", "io", ...). Never NULL. */
PDCKPT_API const char *pdckpt_status_name(pdckpt_status status);

/* Formats `err` as "<source>: offset <n>: <message>" (parts that are unset are left out) into
 * `buf` (always NUL-terminated when `size` > 0).  Returns `buf`. */
PDCKPT_API const char *pdckpt_error_format(const pdckpt_error *err, char *buf, size_t size);

/* ---------------------------------------------------------------------------------------------
 * Allocator
 * ------------------------------------------------------------------------------------------- */

/* A user allocator.  `alloc` returns memory aligned to `alignment` (a power of two) or NULL;
 * `free` receives the size that was asked for.  NULL everywhere means malloc/aligned_alloc/free.
 * The allocator struct must outlive every object allocated through it. */
typedef struct pdckpt_allocator {
    void *(*alloc)(void *ctx, size_t size, size_t alignment);
    void (*free)(void *ctx, void *ptr, size_t size);
    void *ctx;
} pdckpt_allocator;

/* Frees memory the library handed to the caller (pdckpt_save_memory) with `allocator`
 * (NULL = default).  `size` is the size reported with the memory. */
PDCKPT_API void pdckpt_free(const pdckpt_allocator *allocator, void *ptr, size_t size);

/* ---------------------------------------------------------------------------------------------
 * Data types
 * ------------------------------------------------------------------------------------------- */

typedef enum pdckpt_dtype {
    PDCKPT_DTYPE_INVALID = 0,
    PDCKPT_DTYPE_BOOL = 1,
    PDCKPT_DTYPE_UINT8 = 2,
    PDCKPT_DTYPE_INT8 = 3,
    PDCKPT_DTYPE_INT16 = 4,
    PDCKPT_DTYPE_UINT16 = 5, /* numpy only; Paddle pickles bfloat16 as uint16 bits */
    PDCKPT_DTYPE_INT32 = 6,
    PDCKPT_DTYPE_UINT32 = 7, /* numpy only */
    PDCKPT_DTYPE_INT64 = 8,
    PDCKPT_DTYPE_UINT64 = 9, /* numpy only */
    PDCKPT_DTYPE_FLOAT16 = 10,
    PDCKPT_DTYPE_BFLOAT16 = 11,
    PDCKPT_DTYPE_FLOAT32 = 12,
    PDCKPT_DTYPE_FLOAT64 = 13,
    PDCKPT_DTYPE_COMPLEX64 = 14,
    PDCKPT_DTYPE_COMPLEX128 = 15,
    PDCKPT_DTYPE_FLOAT8_E4M3FN = 16,
    PDCKPT_DTYPE_FLOAT8_E5M2 = 17,
    /* safetensors' F8_E4M3FNUZ / F8_E5M2FNUZ / F8_E8M0 (ml_dtypes' names).  Neither Paddle nor
     * numpy has them: pdckpt carries their bytes (safetensors to safetensors, DLPack, ml_dtypes
     * arrays) and refuses them for Paddle's formats. */
    PDCKPT_DTYPE_FLOAT8_E4M3FNUZ = 18,
    PDCKPT_DTYPE_FLOAT8_E5M2FNUZ = 19,
    PDCKPT_DTYPE_FLOAT8_E8M0FNU = 20,
} pdckpt_dtype;
#define PDCKPT_DTYPE_COUNT 21

/* Bytes per element (0 for INVALID). */
PDCKPT_API size_t pdckpt_dtype_size(pdckpt_dtype dtype);
/* numpy's name: "float32", "bfloat16", "float8_e4m3fn", ... ("invalid" for unknown values). */
PDCKPT_API const char *pdckpt_dtype_name(pdckpt_dtype dtype);
/* Inverse of pdckpt_dtype_name; INVALID when unknown. */
PDCKPT_API pdckpt_dtype pdckpt_dtype_from_name(const char *name);
/* Paddle's VarType.Type code (FP32 = 5, ...), or -1 when Paddle's binary formats cannot hold it
 * (uint16/uint32/uint64). */
PDCKPT_API int pdckpt_dtype_to_paddle(pdckpt_dtype dtype);
/* Inverse: INVALID for codes that are not loadable element types (LOD_TENSOR=7, SIZE_T=19, ...). */
PDCKPT_API pdckpt_dtype pdckpt_dtype_from_paddle(int code);

/* ---------------------------------------------------------------------------------------------
 * Buffers: refcounted owners of tensor memory
 * ------------------------------------------------------------------------------------------- */

/* A buffer owns a block of memory: an allocation or a read-only file mapping.  Tensors whose data
 * lives in a buffer hold a reference, so the memory stays valid while any tensor (or any caller who
 * retained the buffer, e.g. a NumPy array or a DLPack capsule) still uses it.  Reference counting
 * is atomic, so buffers may be retained and released from any thread. */
typedef struct pdckpt_buffer pdckpt_buffer;

PDCKPT_API pdckpt_buffer *pdckpt_buffer_retain(pdckpt_buffer *buffer);  /* returns buffer */
PDCKPT_API void           pdckpt_buffer_release(pdckpt_buffer *buffer); /* NULL ok */
/* True when the memory is a read-only file mapping. */
PDCKPT_API bool pdckpt_buffer_is_mapped(const pdckpt_buffer *buffer);
/* Large loads (32 MiB and more) read into blocks of their own; when the last tensor using one is
 * gone, up to four freed blocks (1/8 of physical memory in all; environment PDCKPT_BLOCK_CACHE=
 * <bytes> sets the cap, 0 turns it off) are kept for the next load, so a process that loads in a
 * loop does not fault its memory in again.  The kernel may reclaim their pages under memory
 * pressure (MADV_FREE); this hands them all back now. */
PDCKPT_API void pdckpt_trim_memory(void);

/* ---------------------------------------------------------------------------------------------
 * Values: the nested, ordered tree every load returns and every save takes
 * ------------------------------------------------------------------------------------------- */

typedef enum pdckpt_kind {
    PDCKPT_KIND_NONE = 0,
    PDCKPT_KIND_BOOL = 1,
    PDCKPT_KIND_INT = 2,    /* int64 */
    PDCKPT_KIND_FLOAT = 3,  /* double */
    PDCKPT_KIND_STRING = 4, /* UTF-8 text, length-counted (may contain NUL) */
    PDCKPT_KIND_BYTES = 5,
    PDCKPT_KIND_LIST = 6,
    PDCKPT_KIND_TUPLE = 7,
    PDCKPT_KIND_DICT = 8, /* ordered; keys are values (strings in every Paddle state dict) */
    PDCKPT_KIND_TENSOR = 9,
    PDCKPT_KIND_OBJECT = 10, /* a pickled Python object pdckpt carries but never runs */
    PDCKPT_KIND_SET = 11,
} pdckpt_kind;

/* How an opaque object was built in its pickle; the writer reproduces the same construction. */
typedef enum pdckpt_object_kind {
    PDCKPT_OBJECT_REDUCE = 0, /* callable(*args), then optional BUILD(state) */
    PDCKPT_OBJECT_NEWOBJ = 1, /* cls.__new__(cls, *args), then optional BUILD(state) */
    PDCKPT_OBJECT_GLOBAL = 2, /* a bare reference to module.name (a class or function) */
} pdckpt_object_kind;

#define PDCKPT_MAX_DIMS 64

typedef struct pdckpt_value pdckpt_value;

/* Frees a value and everything below it (tensor buffers are released). NULL ok. */
PDCKPT_API void pdckpt_value_free(pdckpt_value *value);
/* Adds a reference: a value may be shared by several parents (pickle memo references are).
 * Shared values must be treated as read-only.  Returns value. */
PDCKPT_API pdckpt_value *pdckpt_value_retain(pdckpt_value *value);
PDCKPT_API pdckpt_kind   pdckpt_value_kind(const pdckpt_value *value);
/* Stable lower-case kind name ("dict", "tensor", ...). */
PDCKPT_API const char *pdckpt_kind_name(pdckpt_kind kind);
/* The value has more than one holder (several parents, or a retain besides its parent): a walk
 * of the tree may meet it more than once.  False: it appears once, below its one parent. */
PDCKPT_API bool pdckpt_value_shared(const pdckpt_value *value);

/* Scalar constructors.  Each returns a new value owned by the caller, or NULL when out of memory.
 * `allocator` may be NULL and must outlive the value. */
PDCKPT_API pdckpt_value *pdckpt_value_new_none(const pdckpt_allocator *allocator);
PDCKPT_API pdckpt_value *pdckpt_value_new_bool(const pdckpt_allocator *allocator, bool v);
PDCKPT_API pdckpt_value *pdckpt_value_new_int(const pdckpt_allocator *allocator, int64_t v);
PDCKPT_API pdckpt_value *pdckpt_value_new_float(const pdckpt_allocator *allocator, double v);
/* Copies `len` bytes of UTF-8 (NUL-terminated copy kept).  len == SIZE_MAX means strlen(s). */
PDCKPT_API pdckpt_value *pdckpt_value_new_string(const pdckpt_allocator *allocator, const char *s,
                                                 size_t len);
PDCKPT_API pdckpt_value *pdckpt_value_new_bytes(const pdckpt_allocator *allocator,
                                                const void *bytes, size_t len);
/* Containers start empty. kind is LIST, TUPLE, DICT or SET; anything else returns NULL. */
PDCKPT_API pdckpt_value *pdckpt_value_new_container(const pdckpt_allocator *allocator,
                                                    pdckpt_kind             kind);

/* Scalar getters: return false (and leave *out alone) when the value is of another kind.
 * pdckpt_value_get_int also accepts BOOL; pdckpt_value_get_float also accepts INT. */
PDCKPT_API bool pdckpt_value_get_bool(const pdckpt_value *value, bool *out);
PDCKPT_API bool pdckpt_value_get_int(const pdckpt_value *value, int64_t *out);
PDCKPT_API bool pdckpt_value_get_float(const pdckpt_value *value, double *out);
/* STRING or BYTES contents (borrowed; valid while the value lives); NULL for other kinds.
 * Strings are NUL-terminated in memory, `len` excludes the terminator. */
PDCKPT_API const char *pdckpt_value_get_string(const pdckpt_value *value, size_t *len);
PDCKPT_API const void *pdckpt_value_get_bytes(const pdckpt_value *value, size_t *len);

/* Containers.  pdckpt_value_len is the number of items (dict: entries), 0 for non-containers.
 * pdckpt_value_at returns the i-th item (dict: the i-th value), borrowed, or NULL. */
PDCKPT_API size_t              pdckpt_value_len(const pdckpt_value *value);
PDCKPT_API const pdckpt_value *pdckpt_value_at(const pdckpt_value *value, size_t i);
/* Mutable access to the i-th item for callers who own the tree exclusively. */
PDCKPT_API pdckpt_value *pdckpt_value_at_mut(pdckpt_value *value, size_t i);
/* For a caller taking apart a tree it holds alone (converting it entry by entry, then freeing it):
 * releases the i-th item and, in a dict, its key, and leaves None in their places, so their memory
 * is free while the rest is still being converted.  The container is then fit only to be read in
 * order and freed: a dict no longer finds that key.  False for anything but a container and an
 * index below its length. */
PDCKPT_API bool pdckpt_value_release_at(pdckpt_value *container, size_t i);
/* Appends to a LIST, TUPLE or SET.  `item` is transferred. */
PDCKPT_API pdckpt_status pdckpt_value_append(pdckpt_value *container, pdckpt_value *item,
                                             pdckpt_error *err);

/* Dicts.  Keys keep insertion order; setting an existing key replaces its value in place (Python
 * semantics).  Lookups by string key are O(1) on average. */
PDCKPT_API const pdckpt_value *pdckpt_dict_key_at(const pdckpt_value *dict, size_t i);
/* Finds the value of a string key (borrowed) or NULL. */
PDCKPT_API const pdckpt_value *pdckpt_dict_get(const pdckpt_value *dict, const char *key);
PDCKPT_API pdckpt_value       *pdckpt_dict_get_mut(pdckpt_value *dict, const char *key);
/* Sets dict[key] = value; the key is copied, `value` is transferred. */
PDCKPT_API pdckpt_status pdckpt_dict_set(pdckpt_value *dict, const char *key, pdckpt_value *value,
                                         pdckpt_error *err);
/* Sets dict[key] = value for any hashable key value; both are transferred. */
PDCKPT_API pdckpt_status pdckpt_dict_set_value(pdckpt_value *dict, pdckpt_value *key,
                                               pdckpt_value *value, pdckpt_error *err);
/* Removes a string key; returns true if it was present. */
PDCKPT_API bool pdckpt_dict_remove(pdckpt_value *dict, const char *key);
/* Whether a dict stands for a collections.OrderedDict (a pickle's nested model.state_dict()):
 * the pickle writer then writes it as one, as Python does.  Other formats ignore it.  set:
 * false when `dict` is not a dict. */
PDCKPT_API bool pdckpt_dict_is_ordered(const pdckpt_value *dict);
PDCKPT_API bool pdckpt_dict_set_ordered(pdckpt_value *dict, bool ordered);

/* numpy scalars.  A pickle's numpy.float32(x), numpy.int64(n), numpy.bool_(b) (Paddle 1.8's LR
 * scheduler state, a user's metric) loads as a FLOAT / INT / BOOL value that remembers its numpy
 * dtype: Python gets the numpy scalar back and the pickle writer writes it as numpy pickles it.
 * get: false for a plain number.  set: false (nothing changed) unless the dtype holds the value
 * (BOOL: bool; INT: int8-64 / uint8-64 in range; FLOAT: float16 / float32 holding it exactly,
 * NaN payloads included, float64; an unnamed 0-d TENSOR of its own dtype: complex64/128, which
 * no number holds; a big int of at most 64 bits: uint64). */
PDCKPT_API bool pdckpt_value_numpy_scalar(const pdckpt_value *value, pdckpt_dtype *dtype);
PDCKPT_API bool pdckpt_value_set_numpy_scalar(pdckpt_value *value, pdckpt_dtype dtype);

/* Big ints.  An int beyond 64 bits (pickle's LONG1 / LONG4) is held as the object builtins.int(b),
 * `b` its little-endian two's-complement bytes (CPython writes the shortest form); these calls
 * are the one place that knows that form.  new: NULL when `n` is 0 or out of memory.  get: the
 * bytes (borrowed) and their count, or NULL when `value` is not such an int.  decimal: its
 * decimal text into `buf` (false when it is not one, longer than 512 bytes, or `cap` < 3n + 3). */
PDCKPT_API pdckpt_value *pdckpt_value_new_bigint(const pdckpt_allocator *allocator,
                                                 const void *bytes, size_t n);
PDCKPT_API const void   *pdckpt_value_get_bigint(const pdckpt_value *value, size_t *n);
PDCKPT_API bool          pdckpt_bigint_decimal(const pdckpt_value *value, char *buf, size_t cap);

/* Deep structural equality: same kinds, keys, order, dtypes, shapes, LoD, bytes, names ignored.
 * Floats compare by bit pattern (so NaN equals the same NaN). */
PDCKPT_API bool pdckpt_value_equal(const pdckpt_value *a, const pdckpt_value *b);

/* Opaque objects: module.name plus the values that rebuild them in Python.  All arguments are
 * transferred; `args` and `state` may be NULL.  Returns NULL when out of memory. */
PDCKPT_API pdckpt_value       *pdckpt_value_new_object(const pdckpt_allocator *allocator,
                                                       pdckpt_object_kind kind, const char *module,
                                                       const char *name, pdckpt_value *args,
                                                       pdckpt_value *state);
PDCKPT_API pdckpt_object_kind  pdckpt_object_kind_of(const pdckpt_value *object);
PDCKPT_API const char         *pdckpt_object_module(const pdckpt_value *object);
PDCKPT_API const char         *pdckpt_object_name(const pdckpt_value *object);
PDCKPT_API const pdckpt_value *pdckpt_object_args(const pdckpt_value *object);  /* or NULL */
PDCKPT_API const pdckpt_value *pdckpt_object_state(const pdckpt_value *object); /* or NULL */
/* Items added after construction (pickle APPENDS/SETITEMS on an object): a LIST or DICT, or NULL.
 */
PDCKPT_API const pdckpt_value *pdckpt_object_items(const pdckpt_value *object);
/* Replace state / items (transferred; the old ones are freed). */
PDCKPT_API pdckpt_status pdckpt_object_set_state(pdckpt_value *object, pdckpt_value *state,
                                                 pdckpt_error *err);
PDCKPT_API pdckpt_status pdckpt_object_set_items(pdckpt_value *object, pdckpt_value *items,
                                                 pdckpt_error *err);

/* ---------------------------------------------------------------------------------------------
 * Tensors
 * ------------------------------------------------------------------------------------------- */

/* A borrowed look at a tensor.  Every pointer is valid until the tensor value is freed. */
typedef struct pdckpt_tensor_view {
    pdckpt_dtype   dtype;
    int32_t        n_dims;            /* 0 for a 0-d (scalar) tensor */
    const int64_t *dims;              /* n_dims entries, each >= 0 */
    uint64_t       n_elements;        /* product of dims (1 for 0-d) */
    uint64_t       n_bytes;           /* n_elements * element size */
    const void    *data;              /* C order (pdckpt_tensor_get_memory: see there), native
                                         little-endian; may be unaligned; NULL iff n_bytes == 0 */
    bool                   read_only; /* data lives in a read-only mapping or borrowed memory */
    const char            *name;      /* Paddle variable name carried with the tensor, or NULL */
    int32_t                n_lod_levels;
    const uint64_t        *lod_lens; /* n_lod_levels entries: offsets per level */
    const uint64_t *const *lod;      /* n_lod_levels arrays of cumulative offsets */
    pdckpt_buffer         *buffer;   /* owner of data (borrowed; retain it to keep data alive), or
                                        NULL when the data is borrowed from the caller */
} pdckpt_tensor_view;

/* New tensor with owned, zero-filled, 64-byte-aligned data.  n_dims <= PDCKPT_MAX_DIMS; dims >= 0;
 * the byte size must fit in 63 bits.  Fails with ARGUMENT or NOMEM. */
PDCKPT_API pdckpt_status pdckpt_tensor_new(const pdckpt_allocator *allocator, pdckpt_dtype dtype,
                                           int32_t n_dims, const int64_t *dims, pdckpt_value **out,
                                           pdckpt_error *err);
/* New tensor that borrows `data` (n_elements * size bytes, C order): nothing is copied, and the
 * caller keeps `data` valid and unchanged until the value is freed.  Saving such a tree writes
 * straight from the caller's memory. */
PDCKPT_API pdckpt_status pdckpt_tensor_new_borrowed(const pdckpt_allocator *allocator,
                                                    pdckpt_dtype dtype, int32_t n_dims,
                                                    const int64_t *dims, const void *data,
                                                    pdckpt_value **out, pdckpt_error *err);
/* New tensor whose data lives inside `buffer` (retained by the tensor). */
PDCKPT_API pdckpt_status pdckpt_tensor_new_in_buffer(const pdckpt_allocator *allocator,
                                                     pdckpt_dtype dtype, int32_t n_dims,
                                                     const int64_t *dims, pdckpt_buffer *buffer,
                                                     const void *data, pdckpt_value **out,
                                                     pdckpt_error *err);
/* Fills `out`; false when `value` is not a tensor. */
PDCKPT_API bool pdckpt_tensor_get(const pdckpt_value *value, pdckpt_tensor_view *out);
/* Memory order.  A tensor's data may be column-major (Fortran order), as an F-contiguous NumPy
 * array or a transposed paddle.Tensor holds it; paddle.save pickles such an array as numpy does
 * (is_fortran=True, the memory as it is), and pdckpt's pickle writer does the same.  Every other
 * reader of a tensor wants C order: pdckpt_tensor_get gives it for any tensor (a Fortran-order
 * tensor's C-order copy is made on the first call, kept with the tensor and freed with it; false
 * when that copy cannot be allocated or, for a loaded tensor, would pass what the load's
 * max_alloc_bytes left: the copies are charged when made).  set_fortran: declares the data a tensor
 * holds now column-major (ARGUMENT once pdckpt_tensor_get made its C copy; pdckpt_tensor_data_mut
 * then gives NULL); a no-op when the two orders lay the elements out alike (numpy's rule: fewer
 * than two dims longer than one, or no elements), so a Fortran-order tensor is always one whose
 * bytes differ from C order.  get_memory: the tensor's own memory, no copy, *fortran set when it is
 * column-major (the view's `data` is then not C order); also the cheap way to read a tensor's
 * shape, dtype and name. */
PDCKPT_API pdckpt_status pdckpt_tensor_set_fortran(pdckpt_value *tensor, pdckpt_error *err);
PDCKPT_API bool          pdckpt_tensor_is_fortran(const pdckpt_value *tensor);
PDCKPT_API bool pdckpt_tensor_get_memory(const pdckpt_value *value, pdckpt_tensor_view *out,
                                         bool *fortran);
/* Writable data of a tensor with owned data (from pdckpt_tensor_new); NULL otherwise. */
PDCKPT_API void *pdckpt_tensor_data_mut(pdckpt_value *tensor);
/* Sets (copies) or clears (NULL) the Paddle variable name carried with the tensor. */
PDCKPT_API pdckpt_status pdckpt_tensor_set_name(pdckpt_value *tensor, const char *name,
                                                pdckpt_error *err);
/* The tensor this one was made from under another name, else the tensor itself (NULL: not a
 * tensor).  A pickle's one array under several keys of a state dict with paddle.save's name table
 * is one tensor value per key (each carries its key's name), all with the same origin: one
 * object in the file, as pickle (paddle.load(return_numpy=True)) gives it. */
PDCKPT_API const pdckpt_value *pdckpt_tensor_origin(const pdckpt_value *tensor);
/* Where in its file a loaded TENSOR or OBJECT value was made (a pickle's opcode: an array's
 * REDUCE, an object's GLOBAL / REDUCE / NEWOBJ), so that what fails on it later (a conversion)
 * can say where; -1 when unknown (other kinds, other formats, values built by the caller). */
PDCKPT_API int64_t pdckpt_value_offset(const pdckpt_value *value);
/* Replaces the LoD: `n_levels` arrays of cumulative offsets (copied). */
PDCKPT_API pdckpt_status pdckpt_tensor_set_lod(pdckpt_value *tensor, int32_t n_levels,
                                               const uint64_t *const *levels,
                                               const uint64_t *level_lens, pdckpt_error *err);
/* Reinterprets the element type without touching bytes; sizes must match (uint16 <-> bfloat16). */
PDCKPT_API pdckpt_status pdckpt_tensor_reinterpret(pdckpt_value *tensor, pdckpt_dtype dtype,
                                                   pdckpt_error *err);
/* Reinterprets every tensor of dtype `from` in the tree (opaque objects' contents included) as
 * `to`, in place and without touching bytes; sizes must match.  For the rare file whose bits mean
 * another type than its format says (`pdckpt convert --reinterpret uint16=bfloat16`).  Shared
 * tensors change for every parent.  `n_changed` (may be NULL) receives the number retyped. */
PDCKPT_API pdckpt_status pdckpt_value_reinterpret_all(pdckpt_value *root, pdckpt_dtype from,
                                                      pdckpt_dtype to, uint64_t *n_changed,
                                                      pdckpt_error *err);

/* ---------------------------------------------------------------------------------------------
 * Walking a tree
 * ------------------------------------------------------------------------------------------- */

/* One step of the path from the root to a leaf: a dict key, or a list/tuple/set index. */
typedef struct pdckpt_path_step {
    const pdckpt_value *key;   /* dict key (usually a STRING), or NULL for an index */
    int64_t             index; /* position in the parent container */
} pdckpt_path_step;

/* Called for every leaf (anything that is not a list, tuple, set or dict; objects and tensors are
 * leaves) in order.  Return non-zero to stop the walk early. */
typedef int (*pdckpt_visit_fn)(void *ctx, const pdckpt_path_step *path, size_t depth,
                               const pdckpt_value *leaf);
/* Walks `root` depth-first in order.  An empty container is not a leaf and is not visited.
 * Returns OK, or LIMIT if nesting exceeds PDCKPT_MAX_WALK_DEPTH. */
#define PDCKPT_MAX_WALK_DEPTH 256
PDCKPT_API pdckpt_status pdckpt_value_walk(const pdckpt_value *root, pdckpt_visit_fn fn, void *ctx,
                                           pdckpt_error *err);

/* A tree as the (name, tensor) list flat formats store: dict keys and list indexes joined with
 * '.' ("blocks.0.linear.weight"), Paddle's (name, tensor) tuples counted as tensors, the name table
 * (PDCKPT_NAME_TABLE_KEY) at the top skipped.  The one flattener every caller uses (flat formats,
 * the MPI writers, the CLI). */
typedef struct pdckpt_flat_entry {
    char               *name;   /* owned by the list */
    const pdckpt_value *tensor; /* borrowed from the tree (any leaf with ALL_LEAVES) */
} pdckpt_flat_entry;
typedef struct pdckpt_flat {
    pdckpt_flat_entry *entries; /* in tree order */
    size_t             len;
    size_t             n_skipped; /* leaves PDCKPT_FLATTEN_SKIP_NON_TENSORS dropped */
    size_t             cap;       /* private */
} pdckpt_flat;
/* Containers below the top level flatten too (else UNSUPPORTED names the nested one). */
#define PDCKPT_FLATTEN_NESTED 1u
/* Leaves that are not tensors are dropped and counted (else UNSUPPORTED names the first). */
#define PDCKPT_FLATTEN_SKIP_NON_TENSORS 2u
/* Every leaf is an entry (`tensor` then holds the leaf, whatever its kind); implies NESTED. */
#define PDCKPT_FLATTEN_ALL_LEAVES 4u
/* Names joined with '/', and a dict key that is not a string named by its int value, else by
 * "<kind key N>" (how pdckpt_check_restore names entries). */
#define PDCKPT_FLATTEN_SLASH 8u
/* Errors: UNSUPPORTED (see the flags; a dict key that is not a string; a name of 4096 bytes or
 * more), LIMIT (nesting deeper than PDCKPT_MAX_WALK_DEPTH), NOMEM, ARGUMENT.  `*out` is empty on
 * error; free it with pdckpt_flat_free either way. */
PDCKPT_API pdckpt_status pdckpt_value_flatten(const pdckpt_value *root, unsigned flags,
                                              pdckpt_flat *out, pdckpt_error *err);
PDCKPT_API void          pdckpt_flat_free(pdckpt_flat *flat);

/* ---------------------------------------------------------------------------------------------
 * Formats
 * ------------------------------------------------------------------------------------------- */

typedef enum pdckpt_format {
    PDCKPT_FORMAT_AUTO = 0,        /* detect from the bytes (load) or the name (save) */
    PDCKPT_FORMAT_TENSOR = 1,      /* one binary tensor stream; root is a TENSOR */
    PDCKPT_FORMAT_COMBINED = 2,    /* concatenated streams; root is a DICT (named) or LIST */
    PDCKPT_FORMAT_VARS_DIR = 3,    /* directory, one file per variable; root is a DICT */
    PDCKPT_FORMAT_SAFETENSORS = 4, /* root is a DICT (+ "__metadata__" dict of strings) */
    PDCKPT_FORMAT_PICKLE = 5,      /* .pdparams / .pdopt pickles */
    PDCKPT_FORMAT_TNUM = 6,        /* Paddle 1.6 save_dygraph binary container */
    PDCKPT_FORMAT_DYGRAPH_DIR = 7, /* Paddle 1.5 dygraph save_persistables directory */
    PDCKPT_FORMAT_PROGRAM = 8,     /* ProgramDesc (__model__, .pdmodel) */
    PDCKPT_FORMAT_PIR_JSON = 9,    /* Paddle 3 PIR program (model.json) */
    PDCKPT_FORMAT_DISTCP = 10,     /* sharded checkpoint directory (.distcp + .metadata) */
    PDCKPT_FORMAT_INFERENCE = 11,  /* program + params: a directory or a path prefix; root is a
                                      DICT name -> tensor, names byte-wise sorted */

    /* one SelectedRows stream (paddle.save(..., use_binary_format=True)); root is a DICT
     * {"rows": int64 tensor [R], "height": int, "value": tensor} */
    PDCKPT_FORMAT_SELECTED_ROWS = 12,
    /* Hugging Face sharded checkpoints: "model-00001-of-0000N.safetensors" (PaddleNLP:
     * "model_state-00001-of-0000N.pdparams") + "model.safetensors.index.json" ("model_state.
     * pdparams.index.json") = {"metadata": {"total_size": n}, "weight_map": {name: file}}.  Load
     * from the index file or the directory holding it; root is a DICT name -> tensor in
     * weight_map order (+ "__metadata__", the first safetensors shard's).  Saved by
     * pdckpt_save_file with save_options.max_shard_size (see there). */
    PDCKPT_FORMAT_SAFETENSORS_SHARDED = 13,
    PDCKPT_FORMAT_PICKLE_SHARDED = 14,
} pdckpt_format;
#define PDCKPT_FORMAT_COUNT 15

/* The dict key under which paddle.save stores a state dict's name table
 * {structured name: Paddle variable name}; Paddle (and pdckpt) drop it on load by default. */
#define PDCKPT_NAME_TABLE_KEY "StructuredToParameterName@@"

/* Stable name ("tensor", "combined", "vars-dir", "safetensors", "pickle", ...). */
PDCKPT_API const char *pdckpt_format_name(pdckpt_format format);
/* Inverse; AUTO for "auto" and for unknown names (check with pdckpt_format_name). */
PDCKPT_API pdckpt_format pdckpt_format_from_name(const char *name, bool *known);
/* True when this build can load / save the format. */
PDCKPT_API bool pdckpt_format_can_load(pdckpt_format format);
PDCKPT_API bool pdckpt_format_can_save(pdckpt_format format);
/* The file-name endings that imply `format`, NULL-terminated (empty when none): the registry's
 * one list, which saves and pdckpt_format_from_path read.  The first is the name Paddle 2.x gives
 * such a file (".pdparams" for pickle, whose second is the optimizer state's ".pdopt"; ".pdmodel";
 * ".pdiparams"); bindings name files from it instead of spelling suffixes of their own. */
PDCKPT_API const char *const *pdckpt_format_suffixes(pdckpt_format format);

/* Progress reporting: `done` out of `total` units (bytes).  Return non-zero to cancel; the call
 * then fails with ERR_ARGUMENT "cancelled" and leaves no output behind. */
typedef int (*pdckpt_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/* ---------------------------------------------------------------------------------------------
 * Loading
 * ------------------------------------------------------------------------------------------- */

/* Every options struct starts with struct_size, which PDCKPT_*_OPTIONS_INIT sets to the size
 * this header knows: a library built later reads only that much (newer fields keep their
 * defaults), so programs keep working across versions.  0 means this header's size.  Initialise
 * options with the INIT macros (C) or the *_default() functions (both work in C++). */
typedef struct pdckpt_load_options {
    uint32_t                struct_size; /* sizeof(pdckpt_load_options) as the caller knew it */
    const pdckpt_allocator *allocator;   /* NULL: default */
    pdckpt_format           format;      /* AUTO: detect from the bytes */
    /* false (default): files are read into memory the tree owns, so nothing another program
     * does to the file later (truncate, rewrite in place) can change or kill what was loaded.
     * true: files are mapped and tensors point into the mapping (no copy, pages read on first
     * touch) -- but a truncation of the file by another program then raises SIGBUS when a
     * tensor is touched, and an in-place rewrite changes the tensors' bytes.  Ask for it only
     * when nothing rewrites the file in place (pdckpt's own saves never do: they rename). */
    bool zero_copy;
    /* Tensors' data 64-byte aligned: a file read into memory has its tensors moved into place
     * inside that one buffer (no second allocation); mapped or caller memory is copied. */
    bool     require_aligned;
    uint64_t max_tensor_bytes; /* refuse larger declared tensors (LIMIT) */
    uint64_t max_alloc_bytes;  /* total the loader may allocate; 0 = the size of
                                  the input times 4 plus 64 MiB */
    uint32_t max_depth;        /* nesting limit for pickles (0 = 200) */
    uint64_t max_memo;         /* pickle memo entries (0 = 1<<24) */
    /* combined: the ordered variable names.  When set the file must hold exactly these tensors and
     * end right after the last; the root is a DICT.  When NULL the root is a LIST. */
    const char *const *names;
    size_t             n_names;
    const char        *program_path; /* program naming a combined file (.pdmodel/.json) */
    bool               verify;       /* extra semantic checks (LoD monotonic, ...) */
    pdckpt_progress_fn progress;
    void              *progress_ctx;
    /* Pickles: globals ("module.name") to accept beyond pdckpt's allowlist (docs/RELIABILITY.md).
     * They are carried as inert opaque objects, never imported or called.  Names in builtins
     * and attribute paths cannot be allowed (ARGUMENT). */
    const char *const *allowed_globals;
    size_t             n_allowed_globals;
    /* Threads that read a file into memory (not with zero_copy): 0 = one per online core.  Each
     * takes a contiguous part of at least 32 MiB, so small files are read by one thread. */
    uint32_t threads;
} pdckpt_load_options;

#ifdef __cplusplus /* C++ before 20 has no designated initialisers */
#define PDCKPT_LOAD_OPTIONS_INIT (pdckpt_load_options_default())
#else
/* The defaults; _WITH(true) for mapping loads (see zero_copy). */
#define PDCKPT_LOAD_OPTIONS_INIT_WITH(zero_copy_)                                                  \
    {                                                                                              \
        .struct_size = sizeof(pdckpt_load_options), .allocator = NULL,                             \
        .format = PDCKPT_FORMAT_AUTO, .zero_copy = (zero_copy_), .require_aligned = false,         \
        .max_tensor_bytes = UINT64_MAX, .max_alloc_bytes = 0, .max_depth = 0, .max_memo = 0,       \
        .names = NULL, .n_names = 0, .program_path = NULL, .verify = false, .progress = NULL,      \
        .progress_ctx = NULL, .allowed_globals = NULL, .n_allowed_globals = 0, .threads = 0        \
    }
#define PDCKPT_LOAD_OPTIONS_INIT PDCKPT_LOAD_OPTIONS_INIT_WITH(false)
#endif
/* The defaults as a value: what PDCKPT_LOAD_OPTIONS_INIT is in C++ (and usable from C). */
PDCKPT_API pdckpt_load_options pdckpt_load_options_default(void);

/* Loads the file or directory at `path`.  `opts` may be NULL (defaults).  On success `*out` is a
 * new tree owned by the caller whose tensor data is a private copy (read, two threads for large
 * files; a file that changes while it is read is read again, and after a few tries the load fails
 * with IO).  With zero_copy, tensor data points into a read-only mapping that stays alive as
 * long as any tensor (or retained buffer) uses it (see zero_copy for the hazard).  `*out_format`
 * (may be NULL) receives the format that was read.  Errors: ARGUMENT, NOT_FOUND, IO, FORMAT,
 * UNSUPPORTED, MISMATCH, LIMIT, NOMEM. */
PDCKPT_API pdckpt_status pdckpt_load_file(const char *path, const pdckpt_load_options *opts,
                                          pdckpt_value **out, pdckpt_format *out_format,
                                          pdckpt_error *err);
/* A pdckpt-written pickle opened through its index "<path>.pdkidx" (docs/pickles.md, "The
 * lazy-open index"): nothing of the pickle is parsed, and each top-level entry (a dict's value, a
 * list's item) is made when asked for, its tensors pointing into the mapped file as with
 * zero_copy.  *out is NULL (and PDCKPT_OK returned) when `path` has no index that belongs to the
 * file as it is now or its root is not a dict, list or tuple: load the file then.  `opts` (NULL:
 * defaults) gives the allocator and limits; a format other than AUTO/PICKLE, names, a program,
 * verify or progress mean "load instead" (NULL).  Errors: ARGUMENT, NOMEM. */
typedef struct pdckpt_lazy pdckpt_lazy;
PDCKPT_API pdckpt_status   pdckpt_lazy_open(const char *path, const pdckpt_load_options *opts,
                                            pdckpt_lazy **out, pdckpt_error *err);
PDCKPT_API size_t          pdckpt_lazy_len(const pdckpt_lazy *lazy);
/* The root's kind: DICT, LIST or TUPLE. */
PDCKPT_API pdckpt_kind pdckpt_lazy_kind(const pdckpt_lazy *lazy);
/* Entry i's key as UTF-8 text (not NUL-terminated) when the root is a dict and the key a str;
 * NULL otherwise (and for an entry that does not decode: pdckpt_lazy_key says why).  Valid until
 * pdckpt_lazy_close. */
PDCKPT_API const char *pdckpt_lazy_key_text(const pdckpt_lazy *lazy, size_t i, size_t *len);
/* Entry i's key (an INT index for a list or tuple) / value, made now; the caller frees it.
 * Each entry is checked as it is made: CORRUPT when the index entry is damaged or forged, or the
 * pickle no longer holds a tensor's data where the index says (it changed since the save). */
PDCKPT_API pdckpt_status pdckpt_lazy_key(const pdckpt_lazy *lazy, size_t i, pdckpt_value **out,
                                         pdckpt_error *err);
PDCKPT_API pdckpt_status pdckpt_lazy_get(const pdckpt_lazy *lazy, size_t i, pdckpt_value **out,
                                         pdckpt_error *err);
/* Values made from it stay valid (they hold the mapping).  NULL ok. */
PDCKPT_API void pdckpt_lazy_close(pdckpt_lazy *lazy);
/* Loads from bytes in memory (the seeds' dirname=None mode).  With zero_copy the tree borrows
 * `data`, which must then stay valid and unchanged until the tree is freed; otherwise the tensor
 * data is copied.  Directory formats cannot be loaded from memory. */
PDCKPT_API pdckpt_status pdckpt_load_memory(const void *data, size_t len,
                                            const pdckpt_load_options *opts, pdckpt_value **out,
                                            pdckpt_format *out_format, pdckpt_error *err);
/* The length of the first object in `data`, for reading objects written one after another into
 * one stream (paddle.save to a file object, twice): a pickle up to and including its STOP, a
 * tensor or SelectedRows stream up to the end of its data.  `*out_format` (may be NULL) says
 * which.  FORMAT when `data` starts with none of them (other formats fill the whole input). */
PDCKPT_API pdckpt_status pdckpt_object_length(const void *data, size_t len, size_t *out,
                                              pdckpt_format *out_format, pdckpt_error *err);
/* Detects the format of a file or directory without loading it: the format pdckpt_load_file
 * (default options) reports for `path`, from pdckpt_resolve. */
PDCKPT_API pdckpt_status pdckpt_detect_format(const char *path, pdckpt_format *out,
                                              pdckpt_error *err);

/* What a path names, as pdckpt_load_file finds it: the one place that knows Paddle's file names
 * (prefixes such as "out/model" for out/model.pdmodel + out/model.pdiparams, index files,
 * parameters named by the program beside them).  Callers (the CLI, Python) ask instead of
 * guessing from suffixes. */
#define PDCKPT_PATH_MAX 4096 /* the longest path pdckpt_resolve and inference_locate return */
typedef struct pdckpt_resolved {
    pdckpt_format format;                  /* what pdckpt_load_file reports with default options */
    char          target[PDCKPT_PATH_MAX]; /* the file or directory holding the tensors; for a
                                            * paddle.static.save prefix, the prefix itself */
    char program[PDCKPT_PATH_MAX];         /* the program naming the tensors, or "" */
    char info[PDCKPT_PATH_MAX]; /* the .pdiparams.info with their structured names, or "" */
} pdckpt_resolved;
/* NOT_FOUND (or the stat error) when the path names nothing pdckpt can load; FORMAT when its bytes
 * match no format (or two equally). */
PDCKPT_API pdckpt_status pdckpt_resolve(const char *path, pdckpt_resolved *out, pdckpt_error *err);
/* The structured-names file Paddle writes beside a parameters file or its program (X.pdiparams,
 * X.pdmodel, X.json -> X.pdiparams.info; dir/__model__ -> dir/__variables.info__): its name into
 * `out` (PDCKPT_PATH_MAX; "" when too long), true when that file exists. */
PDCKPT_API bool pdckpt_info_path(const char *path, char *out);

/* ---------------------------------------------------------------------------------------------
 * Saving
 * ------------------------------------------------------------------------------------------- */

typedef enum pdckpt_numpy_module {
    PDCKPT_NUMPY_CORE = 0,  /* "numpy.core.multiarray": readable by numpy 1.x and 2.x */
    PDCKPT_NUMPY__CORE = 1, /* "numpy._core.multiarray": what numpy >= 2 writes */
} pdckpt_numpy_module;

/* Pickles: which of paddle.save's two layouts to write.  AUTO chooses from the tree (a dict of
 * tensors -- named or not: a tree read from safetensors has no Paddle names -- takes the state-dict
 * layout; a pickle's root dict read without a name table, e.g. paddle.static.save's, keeps the
 * layout it was read in, also through pdckpt's safetensors tree).  A caller that knows which
 * tensors are paddle.Tensors and which NumPy arrays (the Python module) applies paddle.save's own
 * rule and says so: STATE_DICT is _legacy_save's (tensors as ndarrays plus the name table), GENERIC
 * _pickle_save's (the object as it is).  STATIC_PARAMS is paddle.static.save's X.pdparams: GENERIC,
 * except that with protocol 2 or 3 a top-level array of more than 2^30 - 1 bytes is split as
 * Paddle splits it (`key@@.0`, `key@@.1`, ... after the other entries, then
 * "UnpackBigParamInfor@@"), which paddle.load and static.load join (pdckpt_static_save uses it;
 * its X.pdopt, which Paddle writes whole, stays GENERIC). */
typedef enum pdckpt_pickle_layout {
    PDCKPT_PICKLE_LAYOUT_AUTO = 0,
    PDCKPT_PICKLE_LAYOUT_STATE_DICT = 1,
    PDCKPT_PICKLE_LAYOUT_GENERIC = 2,
    PDCKPT_PICKLE_LAYOUT_STATIC_PARAMS = 3,
} pdckpt_pickle_layout;

/* Told about each value a save left out because the caller asked for it (skip_non_tensors):
 * its '.'-joined key path and kind.  Called on the saving thread, before the save completes. */
typedef void (*pdckpt_drop_fn)(void *ctx, const char *path, pdckpt_kind kind);

typedef struct pdckpt_save_options {
    uint32_t struct_size; /* sizeof(pdckpt_save_options) as the caller knew it (see load) */
    const pdckpt_allocator
                       *allocator; /* NULL: default (also allocates pdckpt_save_memory output) */
    pdckpt_format       format;    /* AUTO: from the path's suffix */
    bool                durable;   /* fsync file and directory before returning */
    int                 protocol;  /* pickle protocol 2, 3 or 4 */
    pdckpt_numpy_module numpy_module;
    bool                skip_non_tensors; /* flat formats: drop non-tensor leaves instead of
                                             failing with UNSUPPORTED */
    pdckpt_progress_fn progress;
    void              *progress_ctx;
    bool               checksum; /* also write a "<file>.xxh3" sidecar (see "Integrity") */
    /* Pickles: globals ("module.name") that may be written beyond pdckpt's allowlist (a tree
     * naming any other global is refused with UNSUPPORTED: Python would import and call it). */
    const char *const *allowed_globals;
    size_t             n_allowed_globals;
    pdckpt_drop_fn     on_drop; /* may be NULL: see pdckpt_drop_fn */
    void              *on_drop_ctx;
    /* Hugging Face sharding (safetensors, pickle): 0 writes one file; N > 0 splits the tensors,
     * in tree order, into shards of at most N tensor bytes as huggingface_hub does (a tensor larger
     * than N gets a shard of its own), named "<prefix>-00001-of-0000K<ext>", plus the index
     * "<prefix><ext>.index.json".  The target is a directory ("out/": prefix "model" for
     * safetensors, "model_state" for pickles) or "out/<prefix><ext>[.index.json]".  When
     * everything fits in one shard the single file "<prefix><ext>" is written, as Hugging Face
     * does.  Atomic as a unit: every shard and the index go to temporaries first and are synced;
     * then the shards are renamed and the index last (the commit point).  Format
     * SAFETENSORS_SHARDED / PICKLE_SHARDED with 0 means huggingface_hub's default, 5 GB. */
    uint64_t             max_shard_size;
    pdckpt_pickle_layout pickle_layout; /* pickles: see pdckpt_pickle_layout (AUTO) */
} pdckpt_save_options;

#ifdef __cplusplus
#define PDCKPT_SAVE_OPTIONS_INIT (pdckpt_save_options_default())
#else
#define PDCKPT_SAVE_OPTIONS_INIT                                                                   \
    {                                                                                              \
        .struct_size = sizeof(pdckpt_save_options), .allocator = NULL,                             \
        .format = PDCKPT_FORMAT_AUTO, .durable = true, .protocol = 4,                              \
        .numpy_module = PDCKPT_NUMPY_CORE, .skip_non_tensors = false, .progress = NULL,            \
        .progress_ctx = NULL, .checksum = false, .allowed_globals = NULL, .n_allowed_globals = 0,  \
        .on_drop = NULL, .on_drop_ctx = NULL, .max_shard_size = 0,                                 \
        .pickle_layout = PDCKPT_PICKLE_LAYOUT_AUTO                                                 \
    }
#endif
PDCKPT_API pdckpt_save_options pdckpt_save_options_default(void);

/* Saves `root` to `path` atomically: the bytes go to a temporary file (or directory) beside
 * `path`, are synced (unless !durable), and are renamed over `path`; then the directory is synced.
 * On any error the temporary is removed and an existing `path` is left untouched.  A file is never
 * truncated in place, so readers that mapped the old file keep reading it intact. */
PDCKPT_API pdckpt_status pdckpt_save_file(const pdckpt_value *root, const char *path,
                                          const pdckpt_save_options *opts, pdckpt_error *err);
/* Saves to a new memory block (allocated with opts->allocator), returned in *out_data and *out_len;
 * free it with pdckpt_free(opts->allocator, data, len). */
PDCKPT_API pdckpt_status pdckpt_save_memory(const pdckpt_value        *root,
                                            const pdckpt_save_options *opts, void **out_data,
                                            size_t *out_len, pdckpt_error *err);

/* Bring-your-own storage.  `write` must write all `len` bytes or fail; `commit` is called once
 * after the last write; `abort` (may be NULL) instead of commit when the save fails. */
#define PDCKPT_SINK_OPS_VERSION 1
typedef struct pdckpt_sink_ops {
    int version; /* PDCKPT_SINK_OPS_VERSION */
    pdckpt_status (*write)(void *self, const void *bytes, size_t len, pdckpt_error *err);
    pdckpt_status (*commit)(void *self, pdckpt_error *err);
    void (*abort)(void *self);
} pdckpt_sink_ops;
PDCKPT_API pdckpt_status pdckpt_save_sink(const pdckpt_value *root, const pdckpt_sink_ops *ops,
                                          void *self, const pdckpt_save_options *opts,
                                          pdckpt_error *err);

/* Parses a shard size as huggingface_hub does ("5GB" = 5 * 10^9; KB, MB, GB, TB, decimal, any
 * case, a fraction allowed: "1.5GB") and also "KiB".."TiB" (powers of 1024) and plain bytes
 * ("1000000").  ARGUMENT for anything else, zero, or a value beyond 2^63. */
PDCKPT_API pdckpt_status pdckpt_parse_size(const char *text, uint64_t *out, pdckpt_error *err);

/* Infers a format from a path's name (".pdiparams" -> combined, ".safetensors", ".pdparams" ->
 * pickle, ...); an existing directory or a name ending in "/" (which names a directory, whatever
 * suffix precedes the slash) -> vars-dir, the directory Paddle's save_vars/save_persistables
 * write.  AUTO when nothing matches. */
PDCKPT_API pdckpt_format pdckpt_format_from_path(const char *path);

/* ---------------------------------------------------------------------------------------------
 * Verification
 * ------------------------------------------------------------------------------------------- */

/* What a verification found (fields may be appended). */
typedef struct pdckpt_verify_report {
    pdckpt_format format;           /* the format that was read */
    uint64_t      n_tensors;        /* tensors in the checkpoint */
    uint64_t      n_data_bytes;     /* tensor data bytes, all of which were read */
    uint64_t      n_leaves;         /* all leaves, tensors included */
    bool          checksum_checked; /* a "<file>.xxh3" sidecar was found and matched */
} pdckpt_verify_report;

/* Full structural check of a file or directory: loads it with opts->verify set, reads every data
 * byte (from a private read, so an I/O error is reported rather than raised as SIGBUS), and
 * requires that every byte of the input is accounted for.  `opts` and `report` may be NULL. */
PDCKPT_API pdckpt_status pdckpt_verify_file(const char *path, const pdckpt_load_options *opts,
                                            pdckpt_verify_report *report, pdckpt_error *err);

/* ---------------------------------------------------------------------------------------------
 * Asynchronous saves
 * ------------------------------------------------------------------------------------------- */

/* A background saver: pdckpt_async_save copies every tensor's bytes into one reusable staging
 * buffer (the caller's pause is essentially that memcpy), then returns while a worker thread
 * writes the snapshot with pdckpt_save_file.  The caller may change or free its tensors as soon as
 * pdckpt_async_save returns.  One save is in flight at a time: a new save first waits for the
 * previous one.  The staging buffer only grows to the largest state saved, so memory stays flat
 * over repeated saves.  A saver is not thread-safe; use one per training loop. */
typedef struct pdckpt_async_saver pdckpt_async_saver;

/* `opts` (copied; may be NULL) applies to every save of this saver. */
PDCKPT_API pdckpt_status pdckpt_async_saver_new(const pdckpt_save_options *opts,
                                                pdckpt_async_saver **out, pdckpt_error *err);
/* Waits for the previous save, reports its failure if it failed (and then does not start a new
 * one), snapshots `root` and starts writing it to `path`.  `sink_ops`/`sink_self` may replace the
 * file: pass NULL for a file save. */
PDCKPT_API pdckpt_status pdckpt_async_save(pdckpt_async_saver *saver, const pdckpt_value *root,
                                           const char *path, const pdckpt_sink_ops *sink_ops,
                                           void *sink_self, pdckpt_error *err);
/* Waits until the save in flight (if any) has finished and returns its status. */
PDCKPT_API pdckpt_status pdckpt_async_wait(pdckpt_async_saver *saver, pdckpt_error *err);
/* Bytes currently reserved for staging (for monitoring memory). */
PDCKPT_API uint64_t pdckpt_async_staging_bytes(const pdckpt_async_saver *saver);
/* Waits for the save in flight, stops the worker and frees everything.  NULL ok. */
PDCKPT_API void pdckpt_async_saver_free(pdckpt_async_saver *saver);

/* ---------------------------------------------------------------------------------------------
 * Programs, inference models and static save/load
 *
 * A Paddle program (`__model__` / `*.pdmodel` ProgramDesc from Fluid 0.12 to Paddle 3.x, or a
 * Paddle 3 PIR `model.json` / `inference.json`) says which variables a static checkpoint holds:
 * combined files (`.pdiparams`, `__params__`, save_persistables with a filename, save-to-memory
 * bytes) store no names, so the program supplies them.  pdckpt applies Paddle's own selection
 * rule: every block's persistable variables except FEED_MINIBATCH / FETCH_LIST / READER / RAW,
 * de-duplicated, in byte-wise ascending name order (PIR: the persistable parameters and
 * persistable `pd_op.data` values, by name).  Loads check each tensor's dtype and dims against
 * the program (-1 matches any size) and fail with ERR_MISMATCH naming the variable.
 *
 * pdckpt_load_file also understands inference models directly: a directory (`__model__` + one file
 * per variable, `__model__` + `__params__`, `X.pdmodel` + `X.pdiparams`, `X.json` +
 * `X.pdiparams`, `__model__.json` + files) or a path prefix (`dir/model` for `dir/model.pdmodel`
 * or `dir/model.json` + `dir/model.pdiparams`); the format is PDCKPT_FORMAT_INFERENCE and the root
 * a DICT name -> tensor in the program's (sorted) order.  With load_options.program_path set, any
 * combined file or directory of variable files is read with that program's names.
 * ------------------------------------------------------------------------------------------- */

typedef struct pdckpt_program pdckpt_program;

/* One variable of a program, as the program declares it (borrowed from the program). */
typedef struct pdckpt_program_var {
    const char *name;
    int32_t     block;            /* index of the declaring block (PIR: 0 for the top block) */
    int32_t     var_type;         /* Paddle VarType code of the kind: 7 lod/dense tensor, 8 selected
                                     rows, 9 feed, 10 fetch, 13 tensor array, 17 raw, ... (-1 PIR
                                     types pdckpt does not know) */
    const char    *var_type_name; /* "lod_tensor", "selected_rows", "feed_minibatch", ... */
    pdckpt_dtype   dtype;         /* element type; INVALID when none or not loadable */
    int32_t        data_type;     /* Paddle's element type code, -1 when the kind has none */
    int32_t        n_dims;
    const int64_t *dims; /* -1 = unknown when the program was built (batch sizes) */
    int32_t        lod_level;
    bool           persistable;
    bool           is_parameter; /* 2.x+ ProgramDescs and PIR; false when the program is silent */
    bool           stop_gradient;
    bool           saved; /* chosen by the selection rule: stored in checkpoints */
} pdckpt_program_var;

/* Reads a program file (format by content: ProgramDesc or PIR JSON; opts->format may force
 * PROGRAM or PIR_JSON).  No size limit below what the file needs (Paddle's C++ reader stops at
 * 64 MiB); memory is bounded by opts->max_alloc_bytes.  Fluid 0.11's pickled `__model__` is
 * refused with UNSUPPORTED.  Errors: NOT_FOUND, IO, FORMAT (with the byte offset), LIMIT, NOMEM. */
PDCKPT_API pdckpt_status pdckpt_program_load_file(const char *path, const pdckpt_load_options *opts,
                                                  pdckpt_program **out, pdckpt_error *err);
PDCKPT_API pdckpt_status pdckpt_program_load_memory(const void *data, size_t len,
                                                    const pdckpt_load_options *opts,
                                                    pdckpt_program **out, pdckpt_error *err);
PDCKPT_API void          pdckpt_program_free(pdckpt_program *program); /* NULL ok */
/* PDCKPT_FORMAT_PROGRAM or PDCKPT_FORMAT_PIR_JSON. */
PDCKPT_API pdckpt_format pdckpt_program_format(const pdckpt_program *program);
/* ProgramDesc `version` (e.g. 2004000 = Paddle 2.4.0; absent before 1.7) or PIR base_code version;
 * -1 when the file has none. */
PDCKPT_API int64_t pdckpt_program_version(const pdckpt_program *program);
PDCKPT_API size_t  pdckpt_program_n_blocks(const pdckpt_program *program);
PDCKPT_API size_t  pdckpt_program_n_ops(const pdckpt_program *program);
/* All declared variables, block by block in declaration order (names may repeat across blocks). */
PDCKPT_API size_t pdckpt_program_n_vars(const pdckpt_program *program);
PDCKPT_API bool   pdckpt_program_var_at(const pdckpt_program *program, size_t i,
                                        pdckpt_program_var *out);
/* The declaration a checkpoint entry refers to (for a repeated name the last one, as in Paddle). */
PDCKPT_API bool pdckpt_program_find_var(const pdckpt_program *program, const char *name,
                                        pdckpt_program_var *out);
/* The variables a combined file or static save holds, in file order: usable directly as
 * pdckpt_load_options.names.  Borrowed; *n receives the count. */
PDCKPT_API const char *const *pdckpt_program_persistables(const pdckpt_program *program, size_t *n);
/* Feed targets (`feed` ops by column / PIR data ops) and fetch targets (`fetch` ops by column). */
PDCKPT_API const char *const *pdckpt_program_feeds(const pdckpt_program *program, size_t *n);
PDCKPT_API const char *const *pdckpt_program_fetches(const pdckpt_program *program, size_t *n);
/* MISMATCH unless `tensor` matches the program's declaration of `name` (dtype, rank, dims with -1
 * matching anything); NOT_FOUND when the program has no such variable. */
PDCKPT_API pdckpt_status pdckpt_program_check(const pdckpt_program *program, const char *name,
                                              const pdckpt_value *tensor, pdckpt_error *err);

/* The files of an inference model found from a directory or a path prefix. */
typedef struct pdckpt_inference_paths {
    char program[PDCKPT_PATH_MAX];  /* the program file */
    char params[PDCKPT_PATH_MAX];   /* the combined parameter file, or "" for per-variable files */
    char vars_dir[PDCKPT_PATH_MAX]; /* directory of per-variable files when params is "" */
    char info[PDCKPT_PATH_MAX];     /* `X.pdiparams.info` / `__variables.info__`, or "" if absent */
} pdckpt_inference_paths;

/* Finds the program and parameters of the inference model at `path` (a directory, or a prefix
 * such as "out/model" for out/model.pdmodel + out/model.pdiparams).  NOT_FOUND when there is
 * none; ARGUMENT when several programs could be meant. */
PDCKPT_API pdckpt_status pdckpt_inference_locate(const char *path, pdckpt_inference_paths *out,
                                                 pdckpt_error *err);

/* Reads a `.pdiparams.info` (jit.save's protocol-2 pickle of {variable name: {structured_name,
 * stop_gradient, trainable}}) into a DICT of DICTs. */
PDCKPT_API pdckpt_status pdckpt_load_params_info(const char *path, const pdckpt_load_options *opts,
                                                 pdckpt_value **out, pdckpt_error *err);

/* Static save/load, as Paddle's save_persistables / load_persistables (and save_vars with the
 * persistable predicate).  `state` is a DICT variable name -> tensor holding at least every
 * variable the program selects (others are ignored); each is checked against its declaration.
 * A SELECTED_ROWS variable is a DICT {"rows": int64 tensor [R], "height": int, "value": tensor}.
 *   - dirname, filename == NULL: one file per variable in `dirname` (a '/' in a name makes a
 *     subdirectory; SELECTED_ROWS variables get SelectedRows streams).  A new directory is built
 *     beside its target and swapped in; into an existing directory (an inference model's, next to
 *     its `__model__`) each file is replaced atomically, other files are kept.
 *   - filename != NULL: one combined file `dirname/filename` (dirname NULL: `filename` is the
 *     path), written atomically: this is how new weights become a `.pdiparams` Paddle runs.
 * A program that selects no variable writes nothing, as Paddle does. */
PDCKPT_API pdckpt_status pdckpt_save_persistables(const pdckpt_program *program,
                                                  const pdckpt_value *state, const char *dirname,
                                                  const char                *filename,
                                                  const pdckpt_save_options *opts,
                                                  pdckpt_error              *err);
/* Loads what pdckpt_save_persistables (or Paddle) saved: a DICT name -> tensor in the program's
 * order.  Files must hold exactly the program's variables (a combined file must end right after
 * the last); per-variable files that the program does not name are ignored. */
PDCKPT_API pdckpt_status pdckpt_load_persistables(const pdckpt_program *program,
                                                  const char *dirname, const char *filename,
                                                  const pdckpt_load_options *opts,
                                                  pdckpt_value **out, pdckpt_error *err);
/* The same bytes as a combined file, in memory (Paddle's serialize_persistables /
 * deserialize_persistables).  Free *out_data with pdckpt_free(opts->allocator, data, len). */
PDCKPT_API pdckpt_status pdckpt_serialize_persistables(const pdckpt_program      *program,
                                                       const pdckpt_value        *state,
                                                       const pdckpt_save_options *opts,
                                                       void **out_data, size_t *out_len,
                                                       pdckpt_error *err);
PDCKPT_API pdckpt_status pdckpt_deserialize_persistables(const pdckpt_program *program,
                                                         const void *data, size_t len,
                                                         const pdckpt_load_options *opts,
                                                         pdckpt_value **out, pdckpt_error *err);

/* The `paddle.static.save(program, "X")` checkpoint as one unit: the program `X.pdmodel`
 * (legacy IR) or `X.json` (PIR), the parameters `X.pdparams` and the optimizer's variables
 * `X.pdopt` (optional, as in paddle.static.load).  *out is a DICT {"pdparams": DICT name ->
 * tensor, "pdopt": DICT name -> tensor}; every variable the program selects must be in one of
 * them (NOT_FOUND names it) and every tensor must match its declaration (MISMATCH; NOT_FOUND for
 * a tensor the program lacks).  Which file holds what is Paddle's choice and is kept as found:
 * legacy IR puts parameters in .pdparams and everything else in .pdopt; PIR (Paddle 3.3) also
 * puts the learning-rate variable in .pdparams.  pdckpt_load_file("X") on such a prefix (no
 * X.pdiparams beside it) returns the same tree with format PICKLE, so `pdckpt ls X` lists it. */
PDCKPT_API pdckpt_status pdckpt_static_load(const char *prefix, const pdckpt_load_options *opts,
                                            pdckpt_value **out, pdckpt_error *err);
/* Writes ckpt["pdparams"] to `prefix.pdparams` and ckpt["pdopt"] (when present) to
 * `prefix.pdopt`, each atomically, as pickles paddle.static.load accepts (opts->protocol etc.
 * apply; the program file is left as it is). */
PDCKPT_API pdckpt_status pdckpt_static_save(const pdckpt_value *ckpt, const char *prefix,
                                            const pdckpt_save_options *opts, pdckpt_error *err);

/* ---------------------------------------------------------------------------------------------
 * Paddle 1.x dygraph checkpoints: loading (the seeds' load_persistables / load_dygraph)
 * ------------------------------------------------------------------------------------------- */

/* Paddle 1.5 fluid.dygraph.load_persistables(dirname): a save_persistables directory.
 * `*params` receives a DICT variable name -> tensor (a name with '/' comes from subdirectories;
 * each tensor carries its name); `*optimizers` a DICT optimizer file name -> what the file's
 * pickle holds (LearningRateDecay objects come back as opaque OBJECTs with their attributes as
 * state), empty when there is no optimizers/ directory.  Either out may be NULL; `opts` may be
 * NULL.  Errors: ARGUMENT (not a directory), NOT_FOUND, IO, FORMAT, UNSUPPORTED, LIMIT, NOMEM. */
PDCKPT_API pdckpt_status pdckpt_dygraph_load_persistables(const char                *dirname,
                                                          const pdckpt_load_options *opts,
                                                          pdckpt_value             **params,
                                                          pdckpt_value             **optimizers,
                                                          pdckpt_error              *err);

/* Paddle 1.7/1.8 fluid.load_dygraph(model_path) (and 1.6 TNUM files, and 2.x paddle.save
 * pickles): a ".pdparams" or ".pdopt" suffix on `model_path` is dropped; <prefix>.pdparams must
 * exist (NOT_FOUND otherwise) and is loaded into `*params`; <prefix>.pdopt, when it exists, into
 * `*opt` (else `*opt` = NULL).  Like Paddle, "StructuredToParameterName@@" is removed from both
 * unless `keep_name_table`; tensors keep their Paddle names either way.  Outs may be NULL. */
PDCKPT_API pdckpt_status pdckpt_load_dygraph(const char                *model_path,
                                             const pdckpt_load_options *opts, bool keep_name_table,
                                             pdckpt_value **params, pdckpt_value **opt,
                                             pdckpt_error *err);

/* ---------------------------------------------------------------------------------------------
 * Paddle 1.x dygraph saves: fluid.save_dygraph (1.7/1.8) and save_persistables (1.5)
 * ------------------------------------------------------------------------------------------- */

/* fluid.save_dygraph(state_dict, model_path) of Paddle 1.7/1.8: `params` (a DICT: a layer's
 * parameters) is written to "<model_path>.pdparams" and `opt` (a DICT: an optimizer's state --
 * accumulators, "LR_Scheduler", "global_step") to "<model_path>.pdopt", each a protocol-2 pickle
 * on Paddle's state-dict path (tensors as ndarrays plus the "StructuredToParameterName@@" table;
 * arrays above 2^30-1 bytes split as paddle.save splits them), whatever opts->protocol says.
 * Either may be NULL (that file is not written).  Each file is replaced atomically, the .pdparams
 * first.  paddle.load and fluid.load_dygraph read both. */
PDCKPT_API pdckpt_status pdckpt_save_dygraph(const pdckpt_value *params, const pdckpt_value *opt,
                                             const char                *model_path,
                                             const pdckpt_save_options *opts, pdckpt_error *err);

/* fluid.dygraph.save_persistables(model_dict, dirname, optimizers) of Paddle 1.5: every tensor of
 * `model_dict` (a DICT) becomes a binary tensor file "<dirname>/<tensor name>" (its key when the
 * tensor has no name; a '/' in a name makes subdirectories), and every entry of `optimizers` (a
 * DICT optimizer name -> value, normally the LearningRateDecay object as an OBJECT; may be NULL)
 * a protocol-2 pickle "<dirname>/optimizers/<name>".  The directory is built beside `dirname` and
 * swapped in atomically (replacing what was there).  Loading it back: PDCKPT_FORMAT_DYGRAPH_DIR,
 * whose root is a DICT keyed by relative path ("optimizers/<name>" for the pickles). */
PDCKPT_API pdckpt_status pdckpt_dygraph_save_persistables(const pdckpt_value        *model_dict,
                                                          const char                *dirname,
                                                          const pdckpt_value        *optimizers,
                                                          const pdckpt_save_options *opts,
                                                          pdckpt_error              *err);

/* ---------------------------------------------------------------------------------------------
 * Restore check: will a checkpoint restore into this model / optimizer?
 * ------------------------------------------------------------------------------------------- */

/* Paddle's set_state_dict matches entries by name and silently skips (or asserts on) what does not
 * match -- e.g. optimizer accumulators "<param>_moment1_<n>" whose unique_name counter <n> (or the
 * parameter's own counter) differs after the model was built differently (Paddle issue #32926).
 * pdckpt_check_restore compares what a model or optimizer expects (a tree with the expected
 * names, dtypes and shapes: its own freshly saved state) with a loaded checkpoint.
 *
 * Entries are the leaves of both trees named by their dict keys joined with '/' (list indexes as
 * numbers), e.g. "linear_0.w_0_moment1_0" or "LR_Scheduler/last_epoch"; a (name, tensor) tuple
 * counts as its tensor; the "StructuredToParameterName@@" table is not an entry.  Tensors must
 * agree in dtype (uint16 stands for bfloat16 and int8 for float8, as Paddle pickles them) and
 * shape; other values only in being present and not being a tensor where a tensor is expected.
 * The command line runs it as `pdckpt check EXPECTED LOADED`. */
typedef enum pdckpt_restore_issue_kind {
    PDCKPT_RESTORE_MISSING = 1,    /* expected, absent from the checkpoint */
    PDCKPT_RESTORE_UNEXPECTED = 2, /* in the checkpoint, not expected */
    PDCKPT_RESTORE_DTYPE = 3,      /* in both, different element types */
    PDCKPT_RESTORE_SHAPE = 4,      /* in both, different shapes */
    PDCKPT_RESTORE_KIND = 5,       /* in both, a tensor on one side and not on the other */
} pdckpt_restore_issue_kind;

typedef struct pdckpt_restore_issue {
    pdckpt_restore_issue_kind kind;
    char                     *name;     /* the entry's name (owned by the report) */
    const pdckpt_value       *expected; /* borrowed from `expected`; NULL when UNEXPECTED */
    const pdckpt_value       *loaded;   /* borrowed from `loaded`; NULL when MISSING */
    /* The entry in this one's place on the other side -- the k-th of the names that equal this
     * one but for their digits (unique_name counters), the same model listing its state in the
     * same order -- when its name differs from this one's; else NULL.  The likely intended
     * match of a MISSING or UNEXPECTED entry, or the real partner of a mismatched one. */
    char *counterpart;
} pdckpt_restore_issue;

typedef struct pdckpt_restore_report {
    size_t                n_expected, n_loaded; /* entries on each side */
    size_t                n_matched;            /* in both and compatible */
    size_t                n_missing, n_unexpected, n_mismatched;
    pdckpt_restore_issue *issues; /* mismatches and missing entries in the
                                     expected tree's order, then unexpected ones */
    size_t n_issues;
} pdckpt_restore_report;

/* Fills `report` (which borrows from both trees: free the report first).  Returns OK when the
 * comparison ran, whatever it found; the checkpoint restores cleanly iff report->n_issues == 0.
 * Errors: ARGUMENT, NOMEM, LIMIT (nesting deeper than PDCKPT_MAX_WALK_DEPTH). */
PDCKPT_API pdckpt_status pdckpt_check_restore(const pdckpt_value    *expected,
                                              const pdckpt_value    *loaded,
                                              pdckpt_restore_report *report, pdckpt_error *err);
PDCKPT_API void          pdckpt_restore_report_free(pdckpt_restore_report *report);
/* "missing", "unexpected", "dtype", "shape", "kind". */
PDCKPT_API const char *pdckpt_restore_issue_kind_name(pdckpt_restore_issue_kind kind);

/* ---------------------------------------------------------------------------------------------
 * JSON text
 * ------------------------------------------------------------------------------------------- */

/* pdckpt's one JSON string writer: safetensors headers, Hugging Face shard indexes and the
 * command line's --json output all quote strings through it.  It writes \" and \\, control bytes
 * as \u00xx (lower-case hex) and copies everything else as it is (UTF-8 or not: check first where
 * it matters).  Flags make it write as a reference writer does, byte for byte:
 *   PDCKPT_JSON_SHORT  \b \f \n \r \t for those five, as Python's json and serde_json (the
 *                      safetensors writer) do;
 *   PDCKPT_JSON_ASCII  every code point past U+007E as \uxxxx (a surrogate pair past U+FFFF), as
 *                      json.dumps' ensure_ascii does; the text must then be valid UTF-8;
 *   PDCKPT_JSON_DISPLAY JSON a terminal may show (the command line's --json): also the
 *                      characters pdckpt_display_text escapes (DEL, C1 and bidi controls, U+2028,
 *                      U+2029) as \uxxxx, and each byte that is not UTF-8 as \udcxx, the lone
 *                      surrogate Python's "surrogateescape" decodes it to (so
 *                      json.loads(t).encode("utf-8", "surrogateescape") gives the bytes back). */
#define PDCKPT_JSON_SHORT   1u
#define PDCKPT_JSON_ASCII   2u
#define PDCKPT_JSON_DISPLAY 4u
/* Where the text goes: must take all `len` bytes or fail (a pdckpt_sink_ops write fits). */
typedef pdckpt_status (*pdckpt_write_fn)(void *self, const void *bytes, size_t len,
                                         pdckpt_error *err);
/* Writes `s[0..len)` as one JSON string literal, quotes included.  Errors: ARGUMENT (NULL
 * arguments; not UTF-8 under PDCKPT_JSON_ASCII, naming the byte offset), or what `write` returns.
 */
PDCKPT_API pdckpt_status pdckpt_json_write_string(const char *s, size_t len, unsigned flags,
                                                  pdckpt_write_fn write, void *self,
                                                  pdckpt_error *err);

/* ---------------------------------------------------------------------------------------------
 * Display-safe text (docs/RELIABILITY.md, "Names from a file on a terminal")
 *
 * Every name in a checkpoint (keys, variable names, dtype strings, metadata) is the file author's
 * choice.  Printed raw it could carry terminal escapes (colours, window titles, OSC 52 clipboard
 * writes), newlines that forge output lines, or bidi controls that reorder what is seen.  The
 * command line prints every such name through pdckpt_display_text, and error messages are made
 * display-safe where they are formatted.  The names the library returns stay byte-exact.
 * ------------------------------------------------------------------------------------------- */

/* Renders `s[0..len)` for a person into `buf` (NUL-terminated when `cap` > 0; cut only between
 * whole characters or escapes).  Printable ASCII and UTF-8 of printable code points (any script)
 * are copied; the rest becomes a visible escape:
 *   \n \r \t           those three control bytes
 *   \xhh               any other C0 control byte, DEL, and each byte that is not UTF-8
 *                      (truncated or overlong sequences, encoded surrogates, past U+10FFFF)
 *   \uhhhh             C1 controls U+0080-U+009F, the bidi controls U+061C, U+200E, U+200F,
 *                      U+202A-U+202E, U+2066-U+2069, and U+2028, U+2029 (line breaks)
 *   \\                 a backslash, so every escape is unambiguous, unless the flag
 *   PDCKPT_DISPLAY_KEEP_BACKSLASH keeps it: for error messages, which outer layers re-wrap (an
 *                      escape must not be escaped twice).
 * Returns the length of the whole rendering (as snprintf does): a `cap` of that plus one holds
 * it all. */
#define PDCKPT_DISPLAY_KEEP_BACKSLASH 1u
PDCKPT_API size_t pdckpt_display_text(const char *s, size_t len, unsigned flags, char *buf,
                                      size_t cap);
/* Terminal columns of display-safe text (as pdckpt_display_text writes it), for aligning
 * tables: 2 for East Asian wide characters, 0 for combining marks, 1 for the rest. */
PDCKPT_API size_t pdckpt_display_width(const char *text, size_t len);

/* ---------------------------------------------------------------------------------------------
 * Sharded checkpoints, locally (PDCKPT_FORMAT_DISTCP; no MPI)
 *
 * A sharded checkpoint directory (written by pdckpt_mpi_save_sharded or Paddle's
 * save_state_dict; layout in pdckpt_mpi.h and docs/formats.md) read by one process: its metadata,
 * any boxes of its tensors, or (pdckpt_load_file on the directory) every tensor whole.
 * ------------------------------------------------------------------------------------------- */

/* A box of a global tensor: key, offset and shape in the global tensor. */
typedef struct pdckpt_shard_request {
    const char    *key;
    int32_t        n_dims;        /* must equal the global tensor's */
    const int64_t *global_offset; /* NULL = all zeros */
    const int64_t *local_shape;   /* NULL = the global shape (the whole tensor) */
} pdckpt_shard_request;

/* Loads the requested boxes of checkpoint `id` (-1: the newest complete one) in `dir` into a dict
 * {key: tensor}, opening only the data files that overlap them; with n_requests == 0 every key
 * is loaded whole (what `pdckpt dist merge` writes).  `opts` as pdckpt_load_file's (NULL:
 * defaults). */
PDCKPT_API pdckpt_status pdckpt_sharded_load(const char *dir, int64_t id,
                                             const pdckpt_shard_request *requests,
                                             size_t n_requests, const pdckpt_load_options *opts,
                                             pdckpt_value **out, pdckpt_error *err);
/* Reads the metadata of checkpoint `id` (-1: the newest complete one) in `dir` as a value tree
 * with Paddle's Metadata fields:
 *   {"state_dict_metadata": {key: [{"global_offset": (..), "local_shape": (..), "dtype": "float32",
 *                                   "global_shape": (..), "is_flattened": False,
 *                                   "flattened_range": None}, ...]},
 *    "storage_metadata": [((key, global_offset, is_flattened, flattened_range, replica_id,
 *                           local_shape), file_name), ...],
 *    "flat_mapping": {key: (key,)}}
 * Paddle's dataclasses become their field dicts; a LocalTensorIndex is the tuple of its fields in
 * declaration order, and storage_metadata, a dict keyed by them in the file, is the list of its
 * items here.  Built from pdckpt_sharded_list's records (the decode holds at most 8 times the
 * file + 64 MiB, then the tree is built): every field in this shape whatever the file wrote
 * (Paddle 2.6's metadata completed with dtypes, global shapes and local shapes, flattened
 * fields False / None).  Its repeated leaves (strings, ints, tuples of ints, None, bools) are
 * shared values, as a pickle's memo references are: read-only (pdckpt_value_shared).  `*out_id`
 * (may be NULL) receives the id. */
PDCKPT_API pdckpt_status pdckpt_sharded_read_metadata(const char *dir, int64_t id,
                                                      pdckpt_value **metadata, int64_t *out_id,
                                                      pdckpt_error *err);
/* The metadata of checkpoint `id` (-1: the newest complete one) in `dir` as its file lists it,
 * without building Paddle's objects as values (`pdckpt ls` reads it): every tensor (key, dtype,
 * global shape) in state_dict_metadata's order and every stored piece in storage_metadata's order
 * (extra replicas included), each checked as a load checks them.  Decoding holds at most
 * `max_alloc_bytes` (0: 8 times the metadata file + 64 MiB; about 5 times is what it needs),
 * else LIMIT naming the file.  Paddle 2.6's metadata (no dtypes) is completed from the data
 * files, as a load does.  `*out_id` (may be NULL) receives the id. */
typedef struct pdckpt_sharded_listing pdckpt_sharded_listing;
typedef struct pdckpt_sharded_tensor_info {
    const char    *key;
    pdckpt_dtype   dtype;
    int32_t        n_dims;
    const int64_t *global_shape;
} pdckpt_sharded_tensor_info;
/* One storage_metadata entry (borrowed from the listing). */
typedef struct pdckpt_sharded_piece_info {
    const char    *key;
    const char    *file; /* the data file that holds it */
    int32_t        n_dims;
    const int64_t *global_offset;
    const int64_t *local_shape; /* NULL when the entry names none; Paddle 2.6: its piece's */
    bool           flattened;   /* the entry stores the run [flat_begin, flat_end) of the box */
    int64_t        flat_begin, flat_end;
    bool           has_replica_id; /* false: replica_id None */
    int64_t        replica_id;     /* > 0: an extra copy (save_replicas=True) that loads skip */
} pdckpt_sharded_piece_info;
PDCKPT_API pdckpt_status pdckpt_sharded_list(const char *dir, int64_t id, uint64_t max_alloc_bytes,
                                             pdckpt_sharded_listing **out, int64_t *out_id,
                                             pdckpt_error *err);
PDCKPT_API size_t        pdckpt_sharded_listing_n_tensors(const pdckpt_sharded_listing *listing);
PDCKPT_API bool   pdckpt_sharded_listing_tensor_at(const pdckpt_sharded_listing *listing, size_t i,
                                                   pdckpt_sharded_tensor_info *out);
PDCKPT_API size_t pdckpt_sharded_listing_n_pieces(const pdckpt_sharded_listing *listing);
PDCKPT_API bool   pdckpt_sharded_listing_piece_at(const pdckpt_sharded_listing *listing, size_t i,
                                                  pdckpt_sharded_piece_info *out);
PDCKPT_API void   pdckpt_sharded_listing_free(pdckpt_sharded_listing *listing); /* NULL ok */
/* The keys of checkpoint `id` (-1: the newest complete one) in `dir`, in the metadata's order, as
 * a dict {key: {"dtype": "float32", "global_shape": (..)}}: what a loader checks its targets
 * against.  Read from the checkpoint's index (its "<id>.pdkidx" sidecar when that matches the
 * metadata, else the metadata decoded straight into the index, every piece checked), never as
 * the tree pdckpt_sharded_read_metadata builds; `*out_id` (may be NULL) receives the id. */
PDCKPT_API pdckpt_status pdckpt_sharded_read_keys(const char *dir, int64_t id, pdckpt_value **keys,
                                                  int64_t *out_id, pdckpt_error *err);
/* Garbage collection of a sharded checkpoint directory: removes temporaries and data files no
 * committed metadata names (killed or failed saves, generations a re-save of an id replaced),
 * and, when keep_last > 0, every complete checkpoint but the newest keep_last (largest ids;
 * metadata first, so a kill mid-way never leaves a torn committed checkpoint).  Must not run
 * while a job saves into `dir`.  Counts go to the out-pointers (may be NULL). */
PDCKPT_API pdckpt_status pdckpt_sharded_gc(const char *dir, int32_t keep_last,
                                           size_t *checkpoints_removed, size_t *files_removed,
                                           pdckpt_error *err);
/* True when `dir` holds at least one complete sharded checkpoint. */
PDCKPT_API bool pdckpt_sharded_is_checkpoint(const char *dir);

/* Paddle's balanced_split: `n` elements in `parts` pieces of ceil(n / parts), the last one
 * shorter; piece `index` starts at `*offset` and holds `*len` (clipped at n, so never negative).
 * */
PDCKPT_API void pdckpt_shard_split(int64_t n, int64_t parts, int64_t index, int64_t *offset,
                                   int64_t *len);
/* The box of piece `index` when dimension d of `global_shape` is cut into parts[d] pieces
 * (row-major piece numbering over the grid; index taken modulo the number of pieces, so extra
 * ranks hold replicas). */
PDCKPT_API void pdckpt_shard_box(int32_t n_dims, const int64_t *global_shape, const int64_t *parts,
                                 int64_t index, int64_t *offset, int64_t *shape);

/* A tensor holding the box (`offset`, `shape`) of `tensor`: a view of its memory when the box is
 * one contiguous range (the view keeps the tensor's buffer alive; a tensor that borrows caller
 * memory passes the borrow on), else a copy. */
PDCKPT_API pdckpt_status pdckpt_shard_slice(const pdckpt_value *tensor, const int64_t *offset,
                                            const int64_t *shape, pdckpt_value **out,
                                            pdckpt_error *err);
/* Scans `dir`: the newest complete checkpoint id and the largest id any data or metadata file
 * carries (-1 when none; a larger `largest` than `newest` means later saves never completed).
 * */
PDCKPT_API pdckpt_status pdckpt_sharded_scan(const char *dir, int64_t *newest_complete,
                                             int64_t *largest_seen, pdckpt_error *err);

/* ---------------------------------------------------------------------------------------------
 * Sharded saves over the caller's own collectives (no MPI)
 *
 * The steps of pdckpt_mpi_save_sharded for a job whose ranks talk through something else
 * (Paddle's process group: pdckpt.distributed.save_state_dict; a launcher's store).  The caller
 * moves the bytes between ranks; the files, the dedup of replicas and the commit protocol are
 * pdckpt_mpi_save_sharded's (docs/distributed.md):
 *   1. every rank:   pdckpt_sharded_describe(its pieces) -> bytes, sent to the coordinator
 *   2. coordinator:  pdckpt_sharded_plan_new(all descriptions, in rank order) prepares the
 *                    directory (sweeps temporaries and uncommitted data files, picks the id and
 *                    file numbers), checks that the pieces tile every tensor (MISMATCH naming
 *                    the key when they overlap or leave a hole) and picks the one rank that
 *                    writes each distinct piece; pdckpt_sharded_plan_assignment(r) -> bytes
 *                    sent to rank r
 *   3. every rank:   pdckpt_sharded_write(its assignment) writes its data file, atomically and
 *                    durably (or pdckpt_sharded_data_file + an async saver, in the background)
 *   4. coordinator, only once every rank's write succeeded: pdckpt_sharded_plan_commit writes
 *                    the metadata atomically -- the commit point -- then removes what it
 *                    superseded.  On any failure, pdckpt_sharded_plan_free without committing:
 *                    nothing is committed (a re-saved id keeps its previous checkpoint) and the
 *                    next save or pdckpt_sharded_gc removes the new data files.
 * Every rank must pass the same dir.  Bytes from other ranks are decoded with every bound
 * checked (a broken description fails with FORMAT naming the rank).
 * ------------------------------------------------------------------------------------------- */

/* One piece of a global tensor held by this rank (pdckpt_mpi_shard is this type). */
typedef struct pdckpt_shard {
    const char         *key;           /* flat key ("linear_0.w_0") */
    const pdckpt_value *tensor;        /* the piece, C order; its shape is the local shape */
    const int64_t      *global_shape;  /* tensor's n_dims entries; NULL = the piece's shape */
    const int64_t      *global_offset; /* where the piece starts; NULL = all zeros */
} pdckpt_shard;

/* This rank's pieces (at most one per key) as bytes for the coordinator; free *out with
 * pdckpt_free(NULL, *out, *out_len).  Errors: ARGUMENT (a piece that does not fit its global
 * shape, a key twice). */
PDCKPT_API pdckpt_status pdckpt_sharded_describe(const pdckpt_shard *shards, size_t n_shards,
                                                 uint8_t **out, size_t *out_len, pdckpt_error *err);

/* Paddle's flattened piece (sharding v2 and stage 3: a ShardedWeight with is_flattened): the
 * shard's tensor is 1-D and holds the elements [begin, end) of the row-major flattening of the
 * box at the shard's global_offset whose shape is box_shape (Paddle's local_shape).  The
 * metadata lists it as Paddle's save_state_dict does (is_flattened True, flattened_range
 * (begin, end), local_shape the box's); an empty run (begin == end) is not stored. */
typedef struct pdckpt_shard_run {
    bool           flattened; /* false: the shard is an ordinary box (the rest is unused) */
    int32_t        n_dims;    /* the global tensor's: global_shape, global_offset, box_shape */
    const int64_t *box_shape; /* n_dims entries; NULL = the global shape */
    int64_t        begin, end;
} pdckpt_shard_run;

/* pdckpt_sharded_describe with runs[i] saying whether shards[i] is a flattened run (runs NULL:
 * none is).  The plan then checks that the runs and boxes of each key tile it (runs of one box
 * that cover it exactly count as that box; otherwise each run as the dense boxes it is made of),
 * dedups identical runs as Paddle does (same key, box and range) and writes them into the
 * metadata.  Errors as pdckpt_sharded_describe's (also: a run outside its box, a tensor that is
 * not 1-D or not end - begin elements). */
PDCKPT_API pdckpt_status pdckpt_sharded_describe_runs(const pdckpt_shard     *shards,
                                                      const pdckpt_shard_run *runs, size_t n_shards,
                                                      uint8_t **out, size_t *out_len,
                                                      pdckpt_error *err);

typedef struct pdckpt_sharded_plan pdckpt_sharded_plan;

/* On the coordinator: plans checkpoint `unique_id` (-1: one past every id in `dir`) of `n_ranks`
 * ranks in `dir` (created if missing) from their descriptions (rank r's at descriptions[r],
 * lengths[r] bytes).  `data_format`: AUTO or PICKLE (".distcp", as Paddle), SAFETENSORS,
 * COMBINED or VARS_DIR.  `durable`: sync what the sweep removed and, at commit, the metadata. */
PDCKPT_API pdckpt_status pdckpt_sharded_plan_new(const char *dir, int64_t unique_id,
                                                 pdckpt_format data_format, bool durable,
                                                 const uint8_t *const *descriptions,
                                                 const size_t *lengths, int n_ranks,
                                                 pdckpt_sharded_plan **out, pdckpt_error *err);
/* The same with rank r's data file numbered file_numbers[r] (distinct, in [0, 2^31)) rather than
 * r: Paddle names data files by the global rank, so a job saving over a sub-group passes its
 * members' global ranks.  NULL: rank order (pdckpt_sharded_plan_new). */
PDCKPT_API pdckpt_status pdckpt_sharded_plan_new_numbered(
    const char *dir, int64_t unique_id, pdckpt_format data_format, bool durable,
    const uint8_t *const *descriptions, const size_t *lengths, int n_ranks,
    const int64_t *file_numbers, pdckpt_sharded_plan **out, pdckpt_error *err);
/* The id the plan saves. */
PDCKPT_API int64_t pdckpt_sharded_plan_id(const pdckpt_sharded_plan *plan);
/* What rank `rank` writes: its data file's name and id, and which of its pieces go there (the
 * replicas it does not write stay out); free *out with pdckpt_free(NULL, *out, *out_len). */
PDCKPT_API pdckpt_status pdckpt_sharded_plan_assignment(const pdckpt_sharded_plan *plan, int rank,
                                                        uint8_t **out, size_t *out_len,
                                                        pdckpt_error *err);
/* Call only when every rank's data file is written: writes "<id>.metadata" atomically (the
 * commit), then removes the data files it superseded and, with keep_last > 0, the committed
 * checkpoints beyond the newest keep_last (best effort: the save has succeeded).  Once. */
PDCKPT_API pdckpt_status pdckpt_sharded_plan_commit(pdckpt_sharded_plan *plan, int32_t keep_last,
                                                    pdckpt_error *err);
PDCKPT_API void          pdckpt_sharded_plan_free(pdckpt_sharded_plan *plan); /* NULL ok */

/* The data file an assignment asks of this rank: `*tree` a new dict {key: piece} borrowing the
 * shards' tensors (empty when this rank stores nothing: then no file is written), its path in
 * `dir` and its format (what opts->format must be when saving it, e.g. through an async saver).
 * `shards` must be the ones this rank described. */
PDCKPT_API pdckpt_status pdckpt_sharded_data_file(const uint8_t *assignment, size_t len,
                                                  const pdckpt_shard *shards, size_t n_shards,
                                                  const char *dir, pdckpt_value **tree, char *path,
                                                  size_t path_cap, pdckpt_format *format,
                                                  pdckpt_error *err);
/* pdckpt_sharded_data_file, then the file saved with `opts` (NULL: defaults, durable; format is
 * set from the assignment): atomic, so a failure leaves no partial file. */
PDCKPT_API pdckpt_status pdckpt_sharded_write(const uint8_t *assignment, size_t len,
                                              const pdckpt_shard *shards, size_t n_shards,
                                              const char *dir, const pdckpt_save_options *opts,
                                              pdckpt_error *err);

/* ---------------------------------------------------------------------------------------------
 * Integrity: checksum sidecars
 * ------------------------------------------------------------------------------------------- */

/* With pdckpt_save_options.checksum set, pdckpt_save_file writing a single-file format (tensor,
 * combined, safetensors, pickle) also writes "<file>" PDCKPT_CHECKSUM_SUFFIX: xxh3-128 of every
 * 4 KiB block, hashed in the same pass as the data, so the checkpoint itself stays byte-identical
 * to what Paddle writes.  Any old sidecar is removed before the new file is renamed in and the new
 * one is published right after, so a crash can leave a file without a sidecar but never with a
 * sidecar of another file.  A directory format with checksum set fails with ARGUMENT.
 * pdckpt_verify_file checks the sidecar when there is one (report->checksum_checked) and fails
 * with CORRUPT naming the file, the byte offset of the first bad block and the tensor(s) whose
 * data it holds (or "headers" when none).  The format is described in docs/RELIABILITY.md. */
#define PDCKPT_CHECKSUM_SUFFIX ".xxh3"

/* ---------------------------------------------------------------------------------------------
 * Tensor statistics (what `pdckpt stats` and pdckpt.stats() print)
 * ------------------------------------------------------------------------------------------- */

/* Summary of one tensor's values, each element converted to double (bool as 0/1; bfloat16,
 * float16 and float8 decoded exactly).  min, max, mean and std (population) are over the finite
 * elements and are NaN when there are none; 64-bit integers beyond 2^53 lose precision. */
typedef struct pdckpt_tensor_stats {
    uint64_t n_elements;
    uint64_t n_nan;
    uint64_t n_pos_inf;
    uint64_t n_neg_inf;
    uint64_t n_zero;
    double   min;
    double   max;
    double   mean;
    double   std;
} pdckpt_tensor_stats;

/* Fills `out` in one pass over the data.  Errors: ARGUMENT (not a tensor), UNSUPPORTED (complex
 * dtypes, which have no order). */
PDCKPT_API pdckpt_status pdckpt_tensor_stats_compute(const pdckpt_value  *tensor,
                                                     pdckpt_tensor_stats *out, pdckpt_error *err);

#ifdef __cplusplus
}
#endif
#endif /* PDCKPT_H */
