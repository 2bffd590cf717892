/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pdk_core.h — internal declarations shared by every layer: error helpers, allocation, buffers.
 * Nothing here is public API; include/pdckpt.h is.  See docs/DESIGN.md ("Rules every module
 * keeps") for why errors are first-wins records and why every allocation takes an allocator.
 */
#ifndef PDK_CORE_H
#define PDK_CORE_H

#include "pdckpt.h"

#include <stdarg.h>

#if defined(__GNUC__)
#define PDK_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#define PDK_NODISCARD                    __attribute__((warn_unused_result))
#else
#define PDK_PRINTF(fmt_index, first_arg)
#define PDK_NODISCARD
#endif

/* Returns early with the status of `expr` when it is not OK. */
#define PDK_TRY(expr)                                                                              \
    do {                                                                                           \
        pdckpt_status pdk_try_status_ = (expr);                                                    \
        if (pdk_try_status_ != PDCKPT_OK) return pdk_try_status_;                                  \
    } while (0)

/* ---- errors (status.c) ---- */

/* Records an error unless one is already recorded (first error wins) and returns the recorded
 * status.  `source` may be NULL (keeps what is there), `offset` -1 when none applies. */
/* The one wording of what an error for want of bytes adds (the pickle VM, the safetensors
 * reader): the input looks cut short, as an interrupted download or copy leaves it. */
#define PDK_TRUNCATED_HINT "it looks truncated -- an interrupted download, copy or save?"
pdckpt_status pdk_fail(pdckpt_error *err, pdckpt_status status, const char *source, int64_t offset,
                       const char *fmt, ...) PDK_PRINTF(5, 6);
pdckpt_status pdk_failv(pdckpt_error *err, pdckpt_status status, const char *source, int64_t offset,
                        const char *fmt, va_list ap);
/* Records an IO error for `errnum` ("<what>: <strerror>"). */
pdckpt_status pdk_fail_sys(pdckpt_error *err, int errnum, const char *source, const char *fmt, ...)
    PDK_PRINTF(4, 5);
pdckpt_status pdk_fail_nomem(pdckpt_error *err, const char *what);
/* error_text.c: vsnprintf into `dst` (NUL-terminated), but each "%s" argument is made display-safe
 * and, when the whole would not fit, the longest are cut in the middle ("head[...N bytes...]tail")
 * so that the format's own words all survive.  Returns the length written. */
size_t pdk_format_bounded(char *dst, size_t cap, const char *fmt, va_list ap);
/* s[0..len) display-safe in at most `budget` bytes (cut in the middle as above) into dst[cap]. */
size_t pdk_display_cut(const char *s, size_t len, size_t budget, char *dst, size_t cap);
/* Prepends context to an already recorded message ("tensor 'w': " + message). */
void pdk_error_prefix(pdckpt_error *err, const char *fmt, ...) PDK_PRINTF(2, 3);
/* Appends a hint to an already recorded message (at most 160 bytes; the message is cut in its
 * middle if both would not fit). */
void pdk_error_suffix(pdckpt_error *err, const char *fmt, ...) PDK_PRINTF(2, 3);
void pdk_error_reset(pdckpt_error *err);
/* Sets err->source when it is still empty (outer layers know the path, inner ones may not). */
void pdk_error_set_source(pdckpt_error *err, const char *source);
/* Sets err->source even when already set (an inner layer named a temporary). */
void pdk_error_replace_source(pdckpt_error *err, const char *source);

/* ---- options (options.c) ---- */

/* The options a call uses: `given` (or the defaults when NULL) read as far as its struct_size
 * says, library defaults filled in.  ARGUMENT / UNSUPPORTED for a struct this library cannot
 * read. */
pdckpt_status pdk_load_options_take(const pdckpt_load_options *given, pdckpt_load_options *out,
                                    pdckpt_error *err);
pdckpt_status pdk_save_options_take(const pdckpt_save_options *given, pdckpt_save_options *out,
                                    pdckpt_error *err);

/* ---- allocation (alloc.c) ---- */

#define PDK_DATA_ALIGN 64

void *pdk_alloc(const pdckpt_allocator *a, size_t size); /* 16-byte aligned; NULL on failure */
void *pdk_alloc_aligned(const pdckpt_allocator *a, size_t size, size_t alignment);
void *pdk_calloc(const pdckpt_allocator *a, size_t count, size_t size);
void  pdk_free(const pdckpt_allocator *a, void *ptr, size_t size);
/* Grows an array of `elem` bytes from *cap to at least `need` entries (doubling). */
pdckpt_status pdk_grow(const pdckpt_allocator *a, void **array, size_t *cap, size_t need,
                       size_t elem, pdckpt_error *err);
char         *pdk_strndup(const pdckpt_allocator *a, const char *s, size_t len);
void          pdk_strfree(const pdckpt_allocator *a, char *s); /* frees a pdk_strndup'ed string */
/* Overflow-checked arithmetic; return false on overflow. */
bool pdk_mul_u64(uint64_t a, uint64_t b, uint64_t *out);
bool pdk_add_u64(uint64_t a, uint64_t b, uint64_t *out);

/* ---- buffers (buffer.c) ---- */

typedef void (*pdk_buffer_destroy_fn)(void *ctx, void *data, size_t size);
/* Large blocks of the default allocator (block_cache.c): from this size on, a buffer's memory is
 * a page-aligned block of its own, and a freed one is kept for reuse by the next load. */
#define PDK_BLOCK_MIN ((size_t)32 << 20)
bool  pdk_block_cache_on(size_t size);
void *pdk_block_get(size_t size, size_t *len); /* *len: the block's length, for pdk_block_put */
void  pdk_block_put(void *data, size_t len);
/* Hands the whole pages of block [data, data + len) past its first `used` bytes back to the
 * kernel (they read as zeros if touched again). */
void pdk_block_drop_tail(void *data, size_t len, size_t used);
/* Owned allocation of `size` bytes (zero-filled when `zero`), PDK_DATA_ALIGN aligned. */
pdckpt_buffer *pdk_buffer_new_alloc(const pdckpt_allocator *a, size_t size, bool zero);
/* Wraps memory that `destroy` releases when the last reference goes. */
pdckpt_buffer *pdk_buffer_new_custom(const pdckpt_allocator *a, void *data, size_t size,
                                     bool mapped, pdk_buffer_destroy_fn destroy, void *ctx);
void          *pdk_buffer_data(const pdckpt_buffer *buffer);
size_t         pdk_buffer_size(const pdckpt_buffer *buffer);
/* Nothing will read `buffer` past its first `used` bytes again (relayout packed every tensor
 * below): a block's pages past there go back to the kernel; other memory is left as it is. */
void pdk_buffer_drop_tail(pdckpt_buffer *buffer, size_t used);
/* Position of the string key key[0..len) in `dict` (hashed once the dict has 8 entries), or
 * SIZE_MAX when it is not there. */
size_t pdk_dict_find(const pdckpt_value *dict, const char *key, size_t len);
/* A hint that string `key` is about to be looked up or set in `dict`: starts loading its slot
 * of the hash index, so a caller inserting many keys overlaps those cache misses. */
void pdk_dict_prefetch(const pdckpt_value *dict, const pdckpt_value *key);
/* A dict pickled as it is (a pickle's root without paddle.save's name table: paddle.static.save,
 * paddle.save's generic path): writers of pickles write it back so, not as a state dict. */
bool pdk_dict_is_plain(const pdckpt_value *dict);
void pdk_dict_set_plain(pdckpt_value *dict, bool plain);
/* References held on `buffer` right now (for a caller that knows every holder). */
size_t pdk_buffer_refs(const pdckpt_buffer *buffer);
/* Moves the data of every tensor of `root` that lies in `buf` (an allocation the load owns) down
 * to PDK_DATA_ALIGN-aligned places inside it, in file order, so a load that read the file into
 * one buffer hands out aligned tensors without a second allocation (relayout.c).  Nothing is
 * moved unless the tree's tensors and `held` references of the caller are all of buf's holders
 * and no two tensors overlap partly; a tensor that cannot be moved stays where it is.  Then the
 * buffer's pages past the last tensor go back (pdk_buffer_drop_tail).  Returns how many
 * tensors' data is now aligned. */
size_t pdk_tree_relayout(pdckpt_value *root, pdckpt_buffer *buf, size_t held);

/* ---- random.c, table_hash.c: random values; hashes of in-memory tables keyed by file bytes ----
 */

/* A random value, never 0 (getrandom; the clock, pid and addresses mixed if that fails). */
uint64_t pdk_random_u64(void);

/* One random value per process (getrandom, read once): the seed of every in-memory hash table
 * keyed by bytes a file chose, so crafted keys cannot all land in one slot. */
uint64_t pdk_hash_seed(void);
/* XXH3 of bytes[0..len), seeded by the process seed when h == 0, else chained from h (the hash
 * of the key's earlier parts).  Differs between processes: never persist or share it. */
uint64_t pdk_table_hash(uint64_t h, const void *bytes, size_t len);
/* FNV-1a, seed with 0: the same in every process, for hashes that are persisted (the sidecar's
 * metadata hash, a long name's temporaries) or compared across ranks.  In-memory tables keyed by
 * file bytes use pdk_table_hash (seeded per process) instead: this one's collisions can be chosen.
 */
uint64_t pdk_hash_bytes(uint64_t h, const void *bytes, size_t len);

/* ---- dtype table (dtype.c) ---- */

typedef struct pdk_dtype_info {
    const char *name;        /* numpy name */
    const char *numpy_code;  /* numpy dtype code without byte order: "f4", "b1", ... */
    char        byteorder;   /* '<' or '|' as numpy pickles it */
    const char *safetensors; /* safetensors dtype string, NULL when it has none */
    int         paddle;      /* VarType code or -1 */
    uint8_t     size;
    uint8_t     dlpack_code; /* DLDataTypeCode */
    uint8_t     dlpack_bits;
} pdk_dtype_info;
const pdk_dtype_info *pdk_dtype_info_of(pdckpt_dtype dtype); /* NULL for INVALID/unknown */
pdckpt_dtype          pdk_dtype_from_safetensors(const char *name, size_t len);
pdckpt_dtype          pdk_dtype_from_numpy_code(const char *code, size_t len);
/* Position in safetensors' Dtype enum (its writer's layout order), -1 when it has no name. */
int pdk_dtype_safetensors_rank(pdckpt_dtype dtype);
/* Bits per element of safetensors' packed sub-byte dtypes (F4: 4, F6_*: 6), 0 for others. */
int pdk_dtype_safetensors_subbyte(const char *name, size_t len);

/* ---- values (value.c, tensor.c) ---- */

const pdckpt_allocator *pdk_value_allocator(const pdckpt_value *value);
/* Memory order, the one place that knows how numpy lays out a Fortran-order array
 * (tensor_order.c).  orders_differ: column-major and row-major bytes of `dims` differ (at least
 * two dims longer than one and no zero dim; numpy's is_fortran = F- and not C-contiguous).
 * fortran_to_c: the n elements of `item` bytes of column-major `src` into row-major `dst`. */
bool pdk_orders_differ(int32_t n_dims, const int64_t *dims);
void pdk_fortran_to_c(uint8_t *dst, const uint8_t *src, int32_t n_dims, const int64_t *dims,
                      uint64_t n, size_t item);
/* Rows [r0, r1) of the first dim longer than one (at least two are), in C order: the contiguous
 * part of the C-order bytes that those rows are. */
void pdk_fortran_to_c_rows(uint8_t *dst, const uint8_t *src, int32_t n_dims, const int64_t *dims,
                           size_t item, uint64_t r0, uint64_t r1);
/* pdckpt_tensor_get for a reader of the data: a Fortran-order tensor's C copy that cannot be
 * allocated is a NOMEM error (naming `source`), one past its load's budget a LIMIT error, not a
 * view with NULL data. */
pdckpt_status pdk_tensor_c_view(const pdckpt_value *tensor, pdckpt_tensor_view *out,
                                const char *source, pdckpt_error *err);
/* For a writer: the tensor's C-order bytes handed to `fn` in order -- all at once when they are
 * its memory or a kept copy, else (Fortran order) made a chunk of about PDK_C_CHUNK bytes at a
 * time in one buffer (whole rows of the first dim longer than one; one row when a row is larger)
 * charged to the tensor's budget while it lives, so a save of many transposed tensors holds no
 * copy of them.  Errors as pdk_tensor_c_view's; fn's stop it. */
#define PDK_C_CHUNK ((uint64_t)4 << 20)
typedef pdckpt_status (*pdk_c_chunk_fn)(void *ctx, const void *data, uint64_t len,
                                        pdckpt_error *err);
pdckpt_status pdk_tensor_c_chunks(const pdckpt_value *tensor, pdk_c_chunk_fn fn, void *ctx,
                                  const char *source, pdckpt_error *err);
/* A load's allocation budget as it stands after the load, charged by the C-order copies its
 * Fortran-order tensors make when they make them (tensor_order.c; a writer's chunk buffer is given
 * back once written); shared by those tensors, freed with the last.  new: `limit`
 * (max_alloc_bytes) left; spent: the load's own allocations come off; attach: the tensor's copies
 * are charged to it (a reference taken). */
typedef struct pdk_budget pdk_budget;
pdk_budget               *pdk_budget_new(const pdckpt_allocator *a, uint64_t limit);
void                      pdk_budget_spent(pdk_budget *b, uint64_t bytes);
void                      pdk_budget_release(pdk_budget *b);
void                      pdk_tensor_attach_budget(pdckpt_value *tensor, pdk_budget *b);
pdk_budget               *pdk_tensor_budget(const pdckpt_value *tensor);
/* `copy` (a new tensor over `of`'s memory, under another name) is one object with `of` in the
 * file: pdckpt_tensor_origin answers `of`'s origin for both (held by `copy`). */
void pdk_tensor_set_origin(pdckpt_value *copy, const pdckpt_value *of);
/* Notes where in its file a TENSOR or OBJECT value was made (a pickle's opcode), unless it
 * knows already; other values keep no offset (pdckpt_value_offset). */
void pdk_value_note_at(pdckpt_value *value, int64_t at);
/* Number of dims / shape checks shared by every tensor constructor. */
pdckpt_status pdk_tensor_sizes(pdckpt_dtype dtype, int32_t n_dims, const int64_t *dims,
                               uint64_t *n_elements, uint64_t *n_bytes, pdckpt_error *err);
/* pdckpt_tensor_new without zeroing the data: for a caller that writes every byte before the
 * tensor is seen (a resharded load whose pieces were checked to cover the box). */
pdckpt_status pdk_tensor_new_unzeroed(const pdckpt_allocator *a, pdckpt_dtype dtype, int32_t n_dims,
                                      const int64_t *dims, pdckpt_value **out, pdckpt_error *err);
/* A string value's bytes compared with a C string of given length. */
bool pdk_value_is_string(const pdckpt_value *value, const char *s, size_t len);
/* binary16 bits of `d` when it is exactly a half (NaN payloads in the top 10 bits), else false. */
bool pdk_double_to_half(double d, uint16_t *out);
/* A STRING or BYTES value over data[0..len) without a copy: `owner` (retained; NULL when the
 * memory outlives the value anyway, as a parser's input outlives its run) keeps the bytes alive.
 * The bytes are not NUL-terminated and may be moved by pdk_tree_relayout, so such a value is a
 * parser's working value: it is made owned (pdk_value_own) before it becomes part of a result.
 * The caller checks text (UTF-8) first, as for pdckpt_value_new_string. */
pdckpt_value *pdk_value_new_borrowed(const pdckpt_allocator *a, pdckpt_kind kind, const void *data,
                                     size_t len, pdckpt_buffer *owner);
/* References held on `value` right now (1: whoever holds it is its only holder). */
size_t pdk_value_refs(const pdckpt_value *value);
/* Whether `value` borrows its bytes; *owner (when given) receives the holder (may be NULL). */
bool pdk_value_is_borrowed(const pdckpt_value *value, pdckpt_buffer **owner);
/* Gives a borrowed STRING/BYTES its own NUL-terminated copy, in place (the value keeps its
 * identity and every holder sees the copy), and releases the owner.  False when out of memory
 * (the value is unchanged); true at once for every other value. */
bool pdk_value_own(pdckpt_value *value);
/* True when a dict's hash index hashes every part of `key` (no depth, width or work cut-off):
 * such keys cannot be made to collide by differing only where the hash does not look. */
bool pdk_key_hash_complete(const pdckpt_value *key);
/* The most keys with a partial hash a reader puts in one dict: such keys can all share a slot,
 * and each insert then compares with every one before it.  Paddle never writes any (its object
 * keys, LocalTensorIndex, hash whole); 16,384 crafted tuple or object keys took 47 s to load
 * (docs/RELIABILITY.md, "Complexity attacks"), 256 take milliseconds. */
#define PDK_MAX_WEAK_KEYS 256u
#define PDK_WEAK_KEYS_EXPECTED                                                                     \
    "expected at most %u keys in one dict that are deeply nested tuples or large objects, found "  \
    "more"
/* A tuple or object key the dict index hashes only in part (the others never are: their kind is
 * tested first, so string keys cost no extra hashing). */
bool pdk_key_is_weak(const pdckpt_value *key);

/* ---- flatten.c: a tree as an ordered list of (name, tensor) for flat formats (the one
 * flattener; pdckpt_value_flatten is its public face) ---- */

typedef pdckpt_flat_entry pdk_flat_entry; /* the public entry */

typedef struct pdk_flat_list {
    pdk_flat_entry         *entries;
    size_t                  len;
    size_t                  cap;
    const pdckpt_allocator *alloc;
    bool                    from_list; /* the root was a LIST: names are indexes */
} pdk_flat_list;

/* ARGUMENT: `prefix`.`key` holds a NUL byte, which a flat format's C-string names would cut. */
pdckpt_status pdk_flat_nul_in_name(pdckpt_error *err, const char *file, const char *prefix,
                                   const char *key);
/* Collects the tensors of `root` (a TENSOR, a DICT with string keys or a LIST; nested dicts and
 * lists join their keys with '.').  Non-tensor leaves fail with UNSUPPORTED unless
 * opts->skip_non_tensors.  Keys listed in `skip_keys` (top level only) are ignored. */
pdckpt_status pdk_flat_collect(const pdckpt_value *root, const pdckpt_save_options *opts,
                               const char *const *skip_keys, pdk_flat_list *out, pdckpt_error *err);
void          pdk_flat_sort_by_name(pdk_flat_list *list); /* byte-wise, like Python's sorted() */
/* ARGUMENT when two entries share a name (a dict LIST root's names are indexes: never). */
pdckpt_status pdk_flat_check_unique(pdk_flat_list *list, pdckpt_error *err);
void          pdk_flat_free(pdk_flat_list *list);

#endif /* PDK_CORE_H */
