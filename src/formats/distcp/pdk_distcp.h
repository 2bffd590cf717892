/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pdk_distcp.h — the sharded checkpoint format (PDCKPT_FORMAT_DISTCP) without MPI: its metadata
 * (Paddle's pickled Metadata and the compact index), the value-tree codec ranks exchange, the
 * planning of a sharded save (pieces, writers, tiling), the merge plan of a gather, the id
 * lifecycle and the local loader.  Compiled into libpdckpt (the registry reaches the format
 * through it) and, with the rest of the core, into libpdckpt_mpi, whose src/mpi/ adds only the
 * communication.  Nothing here is public.
 */
#ifndef PDK_DISTCP_H
#define PDK_DISTCP_H

#include "../pdk_format.h" /* the core, io and the format-level load and save (format_io.c) */

/* ---- dist_util.c: byte buffers, the bounded reader, the arena ---- */

/* A growable byte buffer (malloc). */
typedef struct pdk_blob {
    uint8_t *data;
    size_t   len, cap;
    bool     failed; /* an append ran out of memory; checked once at the end */
} pdk_blob;
void          pdk_blob_put(pdk_blob *b, const void *bytes, size_t len);
void          pdk_blob_u8(pdk_blob *b, uint8_t v);
void          pdk_blob_u32(pdk_blob *b, uint32_t v);
void          pdk_blob_u64(pdk_blob *b, uint64_t v);
void          pdk_blob_str(pdk_blob *b, const char *s, size_t len); /* u64 length + bytes */
pdckpt_status pdk_blob_check(const pdk_blob *b, pdckpt_error *err, const char *what);
void          pdk_blob_free(pdk_blob *b);

/* Bounded reader over bytes another rank (or a file) produced: every read checks what is left. */
typedef struct pdk_rd {
    const uint8_t *p;
    size_t         len, pos;
    const char    *source; /* for errors: "metadata file ...", "rank 2's skeleton" */
    pdckpt_error  *err;
} pdk_rd;
pdckpt_status pdk_rd_fail(pdk_rd *r, const char *fmt, ...) PDK_PRINTF(2, 3);
pdckpt_status pdk_rd_u8(pdk_rd *r, uint8_t *v, const char *what);
pdckpt_status pdk_rd_u32(pdk_rd *r, uint32_t *v, const char *what);
pdckpt_status pdk_rd_u64(pdk_rd *r, uint64_t *v, const char *what);
/* A 0/1 flag and, when it is 1, two u64 (a flattened piece's run, in the plan's records and the
 * index alike); *a and *b stay as they are when the flag is 0. */
pdckpt_status pdk_rd_flagged_pair(pdk_rd *r, uint8_t *flag, uint64_t *a, uint64_t *b,
                                  const char *what_a, const char *what_b);
/* A count of items that each take at least `min_item` bytes: refused when more than could fit. */
pdckpt_status pdk_rd_count(pdk_rd *r, uint64_t *n, size_t min_item, const char *what);
/* A length-prefixed string, borrowed from the input (not NUL-terminated). */
pdckpt_status pdk_rd_str(pdk_rd *r, const char **s, size_t *len, const char *what);
/* The same, copied and NUL-terminated (free with free()). */
pdckpt_status pdk_rd_strdup(pdk_rd *r, char **s, const char *what);

/* A bump allocator for big short-lived trees (the metadata a save builds): millions of small
 * values cost one pointer bump each and are released together, never one by one. */
typedef struct pdk_arena {
    struct pdk_arena_chunk *chunks;
    pdckpt_allocator        allocator; /* hands out from the arena; its free is a no-op */
    const pdckpt_allocator *parent;    /* where its chunks come from (NULL: malloc) */
} pdk_arena;
void pdk_arena_init(pdk_arena *ar);
/* The same with chunks from `parent` (a counting allocator). */
void pdk_arena_init_on(pdk_arena *ar, const pdckpt_allocator *parent);
void pdk_arena_release(pdk_arena *ar);
/* Reads a whole small file (metadata) into a malloc'd buffer, at most `limit` bytes. */
/* dir/name joined into out, once `name` is found to be a regular file beneath `dir` reached
 * without a symbolic link (the name comes from the metadata: a link could lead anywhere). */
pdckpt_status pdk_dist_data_path(const char *dir, const char *name, char *out, size_t cap,
                                 pdckpt_error *err);
/* ARGUMENT when a symbolic link is at a data file's name: the atomic save would replace the file
 * it names (outside the checkpoint, planted by whoever could write the directory). */
pdckpt_status pdk_dist_data_target(const char *path, pdckpt_error *err);
/* A file inside a checkpoint directory (metadata, its index) read whole: only a regular file of
 * at most `limit` bytes reached without a symbolic link in its last component; its status in
 * *st when st is not NULL. */
pdckpt_status pdk_read_small_file(const char *path, size_t limit, uint8_t **data, size_t *len,
                                  struct stat *st, pdckpt_error *err);

/* ---- dist_codec.c: the bounded value-tree codec (tree shapes, metadata) ---- */

/* Tensors met while encoding, in order; their ordinals are what the encoded tree refers to. */
typedef struct pdk_tensor_list {
    const pdckpt_value **items;
    size_t               len, cap;
} pdk_tensor_list;
void pdk_tensor_list_free(pdk_tensor_list *l);

/* Encodes `root`.  Tensors become references to their ordinal in `tensors` (appended); with
 * tensors == NULL a tensor is an error. */
pdckpt_status pdk_codec_encode(const pdckpt_value *root, pdk_blob *out, pdk_tensor_list *tensors,
                               pdckpt_error *err);
/* Called for every tensor reference while decoding; returns a new value for it (owned by the
 * tree being built) or NULL after recording an error. */
typedef pdckpt_value *(*pdk_tensor_ref_fn)(void *ctx, uint64_t ordinal, pdckpt_error *err);
pdckpt_status pdk_codec_decode(pdk_rd *r, const pdckpt_allocator *a, pdk_tensor_ref_fn fn,
                               void *ctx, pdckpt_value **out);

/* A tensor's description without its data. */
typedef struct pdk_tensor_desc {
    pdckpt_dtype dtype;
    int32_t      n_dims;
    int64_t      dims[PDCKPT_MAX_DIMS];
    uint64_t     n_bytes;
    char        *name; /* malloc'd or NULL */
    int32_t      n_lod;
    uint64_t    *lod_lens; /* malloc'd */
    uint64_t   **lod;      /* malloc'd */
} pdk_tensor_desc;
void          pdk_codec_put_desc(pdk_blob *b, const pdckpt_tensor_view *v);
pdckpt_status pdk_codec_get_desc(pdk_rd *r, pdk_tensor_desc *d);
void          pdk_tensor_desc_free(pdk_tensor_desc *d);
/* A new owned, zero-filled tensor with the description's dtype, shape, name and LoD. */
pdckpt_status pdk_tensor_from_desc(const pdk_tensor_desc *d, const pdckpt_allocator *a,
                                   pdckpt_value **out, pdckpt_error *err);
/* A tensor with the description's dtype, shape, name and LoD whose data pointer is `data`
 * (borrowed: a streamed gather's placeholder address, never read). */
pdckpt_status pdk_tensor_placeholder(const pdk_tensor_desc *d, const void *data,
                                     const pdckpt_allocator *a, pdckpt_value **out,
                                     pdckpt_error *err);
/* A tensor borrowing `view`'s data, with its name and LoD. */
pdckpt_status pdk_tensor_borrow(const pdckpt_tensor_view *v, const pdckpt_allocator *a,
                                pdckpt_value **out, pdckpt_error *err);

/* ---- dist_plan.c: shard geometry ---- */

/* Copies the box `shape` from src (a C-order array of src_shape, starting at src_off) into dst
 * (dst_shape, at dst_off).  Runs of whole rows are merged into single memcpys. */
void pdk_box_copy(int32_t n_dims, size_t elem, const void *src, const int64_t *src_shape,
                  const int64_t *src_off, void *dst, const int64_t *dst_shape,
                  const int64_t *dst_off, const int64_t *shape);
/* Intersection of boxes a and b: false when empty (some extent <= 0). */
bool pdk_box_overlap(int32_t n_dims, const int64_t *a_off, const int64_t *a_shape,
                     const int64_t *b_off, const int64_t *b_shape, int64_t *off, int64_t *shape);
/* Boxes a and b are the same. */
bool pdk_box_equal(int32_t n_dims, const int64_t *a_off, const int64_t *a_shape,
                   const int64_t *b_off, const int64_t *b_shape);
/* Product of dims, saturating at INT64_MAX (1 for 0-d). */
int64_t pdk_box_volume(int32_t n_dims, const int64_t *shape);

/* ---- dist_shard_plan.c, dist_tiling.c: the plan of a sharded save (on the coordinator) ---- */

/* One piece as a rank described it.  A flattened one (Paddle's sharding v2) is the run
 * [flat_begin, flat_end) of the row-major flattening of the box (offset, shape). */
typedef struct pdk_shard_rec {
    char        *key;
    pdckpt_dtype dtype;
    int32_t      n_dims;
    int64_t     *global, *offset, *shape; /* one allocation */
    bool         flat;
    int64_t      flat_begin, flat_end;
    int          rank;
    size_t       local; /* index in that rank's shard array */
    size_t       piece; /* its distinct piece (SIZE_MAX: not stored) */
} pdk_shard_rec;

/* A distinct stored piece: its replicas are order[run_from..run_to), by rank. */
typedef struct pdk_shard_piece {
    pdk_shard_rec *first; /* first appearance (lowest rank) */
    size_t         run_from, run_to;
    int            writer; /* rank whose data file stores it */
    bool           stored; /* false: an empty piece, only counted in the writers' loads */
} pdk_shard_piece;

typedef struct pdk_shard_plan {
    pdk_shard_rec   *recs; /* rank by rank, each rank's in its order */
    size_t           n_recs;
    pdk_shard_rec  **order;  /* by key, box, rank */
    pdk_shard_piece *pieces; /* first-appearance order, as Paddle iterates them; the empty
                              * ones not stored too (`stored` false), which place their key */
    size_t         n_pieces;
    int64_t        id;
    int64_t        file_base; /* rank r writes "<file_base + r>_<id><ext>", */
    const int64_t *numbers;   /* or "<file_base + numbers[r]>..." (Paddle's global ranks) */
    pdckpt_format  format;
} pdk_shard_plan;

/* Reads every rank's descriptions (gathered: rank r's at offs[r]..offs[r+1]). */
pdckpt_status pdk_shard_plan_read(const pdk_blob *all, const size_t *offs, int size,
                                  pdk_shard_plan *p, pdckpt_error *err);
/* Checks the pieces, finds the distinct ones and their writers. */
pdckpt_status pdk_shard_plan_build(pdk_shard_plan *p, int size, pdckpt_error *err);
/* Rank r's write list at offsets[r]: u64 count, then the local indices it writes. */
pdckpt_status pdk_shard_plan_write_lists(const pdk_shard_plan *p, int size, pdk_blob *out,
                                         size_t **offsets, pdckpt_error *err);
void          pdk_shard_plan_free(pdk_shard_plan *p);
/* The data file name of `rank` in this plan. */
void pdk_shard_data_name(const pdk_shard_plan *p, int rank, char *out, size_t cap);
/* The distinct, same-key pieces `boxes` (in the plan's order: by box, then run; reordered) tile
 * their global box exactly: MISMATCH naming the key otherwise.  Runs of one box that cover it
 * exactly count as the box; other runs as their dense boxes (pdk_run_boxes). */
pdckpt_status pdk_check_tiling(pdk_shard_rec **boxes, size_t n, pdckpt_error *err);
/* Do the non-empty boxes b[0..n) (n >= 1, one key, n_dims >= 1; reordered) overlap?  MISMATCH
 * naming two of them if so (dist_sweep.c). */
pdckpt_status pdk_tiling_overlap(pdk_shard_rec **b, size_t n, pdckpt_error *err);

/* ---- dist_lifecycle.c: ids, the commit protocol's cleanup, keep_last ---- */

/* Before a sharded save, on the coordinator: creates `dir`, removes temporaries and uncommitted
 * data files, picks the id (`wanted`, or one past every id seen) and the first data-file number
 * (0, or past the files a committed `wanted` still names). */
pdckpt_status pdk_lifecycle_prepare(const char *dir, int64_t wanted, int size, bool durable,
                                    int64_t *id, int64_t *base, pdckpt_error *err);
/* After the metadata of `id` is committed: removes the files it superseded and the committed ids
 * beyond keep_last (0 = keep all).  Best effort: the save has succeeded. */
void pdk_lifecycle_after_commit(const char *dir, int64_t id, int64_t base, int size,
                                int32_t keep_last, bool durable);

/* ---- dist_meta.c: the sharded checkpoint's metadata ---- */

/* One stored piece of a key, and the file that holds it. */
typedef struct pdk_piece {
    int64_t    *offset, *shape; /* n_dims each (one allocation) */
    const char *file;           /* borrowed from the index */
    size_t      file_ix;        /* its index in files */
    /* Paddle's flattened pieces (sharding v2): the stored tensor is the 1-D run [flat_begin,
     * flat_end) of the row-major flattening of the box the metadata names; the index holds it as
     * dense boxes (dist_unflatten.c), each stored from element flat_at of that 1-D tensor. */
    bool    flat;
    int64_t flat_at, flat_begin, flat_end;
} pdk_piece;

typedef struct pdk_key_meta {
    char        *key;
    pdckpt_dtype dtype;
    int32_t      n_dims;
    int64_t     *global_shape;
    pdk_piece   *pieces; /* sorted by dim-0 offset once the index is built */
    size_t       n_pieces;
    int64_t     *reach; /* reach[i]: the largest dim-0 end of pieces[0..i] (n_dims > 0) */
} pdk_key_meta;

typedef struct pdk_meta_index {
    pdk_key_meta *keys;
    size_t        n_keys;
    size_t       *slots; /* key hash table: index + 1 into keys, 0 = empty */
    size_t        n_slots;
    char        **files; /* distinct file names (also those holding only extra replicas) */
    size_t        n_files;
} pdk_meta_index;

/* dist_unflatten.c: replaces every flattened piece of the index by the dense boxes its run covers
 * (at most 2 x n_dims - 1, each contiguous in the run); an empty run covers nothing and goes.
 * LIMIT, before any is cut, when the boxes would take more than `max_bytes`. */
pdckpt_status pdk_meta_unflatten(pdk_meta_index *ix, uint64_t max_bytes, const char *source,
                                 pdckpt_error *err);
/* The one place that cuts a run into boxes (loads and the save's tiling check): calls `fn` for
 * each dense box of the run [begin, end) of the row-major flattening of a box of `shape`
 * (n_dims >= 0; 0 <= begin <= end <= its volume < 2^62), in run order: its offset inside the
 * box, its shape and the run element it starts at (relative to begin).  At most
 * 2 x n_dims - 1 boxes (one for a 0-d box). */
#define PDK_RUN_MAX_BOXES(n_dims) ((n_dims) > 0 ? 2 * (size_t)(n_dims)-1 : 1)
typedef pdckpt_status (*pdk_run_box_fn)(void *ctx, const int64_t *off, const int64_t *shape,
                                        int64_t at, pdckpt_error *err);
pdckpt_status pdk_run_boxes(int32_t n_dims, const int64_t *shape, int64_t begin, int64_t end,
                            pdk_run_box_fn fn, void *ctx, pdckpt_error *err);

/* One distinct piece as the save plan records it (first-appearance order); a flattened one
 * is the run [flat_begin, flat_end) of the box (offset, shape). */
typedef struct pdk_meta_piece {
    const char    *key;
    pdckpt_dtype   dtype;
    int32_t        n_dims;
    const int64_t *global_shape, *offset, *shape;
    const char    *file;
    bool           flat;
    int64_t        flat_begin, flat_end;
    bool           key_only; /* an empty piece not stored: places its key, lists nothing */
} pdk_meta_piece;
/* Shared leaves for a tree (dist_meta_pool.c): each call returns a new reference to the one
 * value of that content (NULL: out of memory); freeing the pool drops only its own references. */
typedef struct pdk_meta_pool pdk_meta_pool;
pdk_meta_pool               *pdk_meta_pool_new(void);
void                         pdk_meta_pool_free(pdk_meta_pool *p);
pdckpt_value                *pdk_meta_pool_str(pdk_meta_pool *p, const char *s);
pdckpt_value                *pdk_meta_pool_int(pdk_meta_pool *p, int64_t v);
pdckpt_value                *pdk_meta_pool_ints(pdk_meta_pool *p, int32_t n, const int64_t *v);
pdckpt_value                *pdk_meta_pool_none(pdk_meta_pool *p);
pdckpt_value                *pdk_meta_pool_bool(pdk_meta_pool *p, bool b);
/* The metadata tree for `pieces` (see pdckpt_sharded_read_metadata for its shape). */
pdckpt_status pdk_meta_tree_new(const pdckpt_allocator *a, const pdk_meta_piece *pieces, size_t n,
                                pdckpt_value **out, pdckpt_error *err);
/* One LocalTensorMetadata (a piece: is_index false) or LocalTensorIndex (a storage entry) read
 * from either form of the metadata -- Paddle's pickled objects (dist_meta_read.c) or the tree
 * (dist_meta_tree.c) -- with dims = offset, shape and (pieces) global shape, n_dims each. */
typedef struct pdk_meta_rec {
    const char  *key;   /* an index's tensor_key (NUL-free) */
    pdckpt_dtype dtype; /* a piece's; PDCKPT_DTYPE_INVALID when it has none (Paddle 2.6) */
    int32_t      n_dims;
    bool         is_index, has_global, flat;
    bool         has_shape;            /* an index's local_shape (Paddle 2.6 has none) */
    bool         has_replica;          /* an index's replica_id is an int (not None, not absent) */
    int64_t      flat_begin, flat_end; /* flat: the flattened_range */
    int64_t      replica;              /* an index's replica_id (None: 0) */
    int64_t      dims[];
} pdk_meta_rec;
#define PDK_META_REC_MAX (sizeof(pdk_meta_rec) + 3 * PDCKPT_MAX_DIMS * sizeof(int64_t))
/* Parses a LocalTensorMetadata's fields (a dict) / a LocalTensorIndex's (a dict of fields, or
 * the tree's tuple in declaration order) into `out` (PDK_META_REC_MAX bytes); the key is
 * borrowed from `m`.  FORMAT errors name `source`. */
pdckpt_status pdk_meta_rec_piece(const pdckpt_value *m, const char *source, pdk_meta_rec *out,
                                 pdckpt_error *err);
pdckpt_status pdk_meta_rec_index(const pdckpt_value *m, bool tuple, const char *source,
                                 pdk_meta_rec *out, pdckpt_error *err);
/* The bytes a record takes. */
size_t pdk_meta_rec_size(const pdk_meta_rec *rec);

/* The metadata as its file lists it (pdckpt_sharded_list, pdckpt_sharded_read_metadata), kept by
 * the index's builder when asked (pdk_meta_build_keep): every piece of state_dict_metadata and
 * every distinct storage_metadata entry (extra replicas included), each in the file's order. */
typedef struct pdk_meta_item {
    size_t  key;  /* index into the index's keys */
    size_t  file; /* an entry's: index into the index's files */
    size_t  dims; /* into the list's dims: offset, then (has_shape) shape, n_dims each */
    int32_t n_dims;
    bool    flat, has_shape, has_replica;
    int64_t flat_begin, flat_end, replica;
} pdk_meta_item;
typedef struct pdk_meta_list {
    pdk_meta_item *pieces, *entries;
    size_t         n_pieces, n_entries, cap_pieces, cap_entries;
    int64_t       *dims;
    size_t         n_dims, cap_dims;
    pdckpt_value  *flat_mapping; /* the file's (NULL: none) */
    bool           keep_pieces;  /* set by the caller: pieces and flat_mapping too (the tree) */
} pdk_meta_list;
void pdk_meta_list_free(pdk_meta_list *l);
/* What the list holds, in heap bytes. */
uint64_t pdk_meta_list_cost(const pdk_meta_list *l);

/* Builds an index from records (dist_meta_build.c): begin, every key with its pieces (in the
 * metadata's order; `piece` gives piece i), the storage entries, end.  Any failure frees what
 * was built (end must still be called: it frees the builder). */
typedef struct pdk_meta_builder pdk_meta_builder;
typedef const pdk_meta_rec *(*pdk_meta_piece_fn)(void *ctx, size_t i, pdckpt_error *err);
pdckpt_status pdk_meta_build_begin(const char *source, size_t n_keys, pdk_meta_index *out,
                                   pdk_meta_builder **b, pdckpt_error *err);
pdckpt_status pdk_meta_build_key(pdk_meta_builder *b, const pdckpt_value *key, size_t n_pieces,
                                 pdk_meta_piece_fn piece, void *ctx);
pdckpt_status pdk_meta_build_storage(pdk_meta_builder *b, size_t n_entries);
/* `file`: the entry's file name (NULL: it was not a string without NUL). */
pdckpt_status pdk_meta_build_entry(pdk_meta_builder *b, const pdk_meta_rec *index,
                                   const char *file);
/* A file name value's text, NULL unless a string without NUL. */
const char   *pdk_meta_file_name(const pdckpt_value *file);
pdckpt_status pdk_meta_build_end(pdk_meta_builder *b, pdckpt_status st);
/* The bytes the flattened pieces' boxes may take in the index (default: no limit). */
void pdk_meta_build_limit(pdk_meta_builder *b, uint64_t max_bytes);
/* Keeps every piece and entry in `list` as well (filled as they come; freed by the caller). */
void pdk_meta_build_keep(pdk_meta_builder *b, pdk_meta_list *list);

/* Reads a metadata tree (Paddle's Metadata fields) into an index, checking every piece. */
pdckpt_status pdk_meta_index_build(const pdckpt_value *meta, const char *source,
                                   pdk_meta_index *out, pdckpt_error *err);
/* The same with the flattened pieces' boxes held to `max_bytes` (pdk_meta_build_limit). */
pdckpt_status       pdk_meta_index_build_limited(const pdckpt_value *meta, const char *source,
                                                 uint64_t max_bytes, pdk_meta_index *out,
                                                 pdckpt_error *err);
void                pdk_meta_index_free(pdk_meta_index *ix);
const pdk_key_meta *pdk_meta_find(const pdk_meta_index *ix, const char *key);
/* Builds the key table (a key twice is an error); sorts every key's pieces (reach), refusing
 * pieces that overlap. */
pdckpt_status pdk_meta_index_keys(pdk_meta_index *ix, const char *source, pdckpt_error *err);
pdckpt_status pdk_meta_index_sort(pdk_meta_index *ix, const char *source, pdckpt_error *err);
/* The first piece of `km` whose dim-0 interval may reach past `begin` (pieces from there on are
 * the candidates until one starts at or after the box's dim-0 end): a binary search. */
size_t pdk_meta_first_piece(const pdk_key_meta *km, int64_t begin);
/* The index in a compact binary form (what the coordinator broadcasts instead of the pickle:
 * the other ranks never unpickle the metadata), and back, checking every count and bound. */
pdckpt_status pdk_meta_index_encode(const pdk_meta_index *ix, pdk_blob *out, pdckpt_error *err);
pdckpt_status pdk_meta_index_decode(const uint8_t *data, size_t len, const char *source,
                                    pdk_meta_index *out, pdckpt_error *err);
/* The sidecar "<id>.pdkidx" a save writes just before the metadata: the compact index, with the
 * length and FNV-1a hash of the metadata it was built from.  A loader uses it only when both
 * match the metadata it read (a stale sidecar of an interrupted re-save is ignored), and decodes
 * it with every check; otherwise it unpickles the metadata. */
#define PDK_SIDECAR_SUFFIX PDK_NAME_INDEX
pdckpt_status pdk_meta_sidecar_path(const char *dir, int64_t id, char *out, size_t cap,
                                    pdckpt_error *err);
pdckpt_status pdk_meta_sidecar_write(const char *dir, int64_t id, const pdk_blob *meta,
                                     const pdk_meta_index *ix, bool durable, pdckpt_error *err);
/* True, with the compact index in `compact`, when a matching sidecar exists that no one may
 * write who may not write the metadata (`meta_st`, pdk_sidecar_writers_covered): its hash only
 * binds it to the metadata's bytes, which anyone can read. */
bool pdk_meta_sidecar_read(const char *dir, int64_t id, const uint8_t *meta, size_t meta_len,
                           const struct stat *meta_st, pdk_blob *compact);

/* The metadata file "<id>.metadata": Paddle's pickled Metadata dataclass, converted to and from
 * the tree above (dist_meta.c).  Its classes live in this module (Paddle 2.6-3.1: the old one). */
#define PDK_META_MODULE     "paddle.distributed.flex_checkpoint.dcp.metadata"
#define PDK_META_MODULE_OLD "paddle.distributed.checkpoint.metadata"
#define PDK_META_SUFFIX     ".metadata"
/* Limits of a metadata file (docs/formats.md): at most 2 GiB (about 15 million pieces), decoded
 * within 64 times its size plus 64 MiB of memory (what it needs is about 30 times). */
#define PDK_META_MAX_BYTES    ((size_t)1 << 31)
#define PDK_META_ALLOC_FACTOR 64
#define PDK_META_ALLOC_BASE   (UINT64_C(64) << 20)
/* `a` allocates the intermediate tree of Paddle's objects (NULL: default). */
pdckpt_status pdk_meta_encode(const pdckpt_value *meta, const pdckpt_allocator *a, pdk_blob *out,
                              pdckpt_error *err);
/* The metadata file's bytes straight into its index (dist_meta_read.c): Paddle's objects become
 * compact records as the pickle reader builds them (pdk_pickle_load_consumed), never a value
 * tree.  Everything the decode allocates counts against `max_alloc_bytes` (0: the default,
 * PDK_META_LIVE_FACTOR x the file + PDK_META_ALLOC_BASE); *peak (may be NULL) receives the most
 * it held at once, the file's bytes included.  `bytes` (the file) is freed as soon as the pickle
 * has been run: nothing decoded borrows it. */
#define PDK_META_LIVE_FACTOR 8
/* Paddle 2.6's metadata (pieces without dtype) is completed from the data files beside `source`,
 * the metadata file's path.  With `list` (may be NULL; zeroed or freed, keep_pieces set) the
 * entries are also kept as listed, and with keep_pieces the pieces and a copy of the file's
 * flat_mapping (counted too). */
pdckpt_status pdk_meta_decode_index(pdk_blob *bytes, const char *source, uint64_t max_alloc_bytes,
                                    pdk_meta_index *ix, pdk_meta_list *list, uint64_t *peak,
                                    pdckpt_error *err);
/* The tree pdckpt_sharded_read_metadata returns, from an index and its list (dist_meta_tree.c). */
pdckpt_status pdk_meta_tree_from_list(const pdk_meta_index *ix, const pdk_meta_list *list,
                                      pdckpt_value **out, pdckpt_error *err);
pdckpt_status pdk_meta_path(const char *dir, int64_t id, char *out, size_t cap, pdckpt_error *err);
/* Scans `dir`: the newest id with metadata (-1 if none) and the largest id seen in any data or
 * metadata file name (-1 if none). */
pdckpt_status pdk_meta_scan(const char *dir, int64_t *newest_complete, int64_t *largest_seen,
                            pdckpt_error *err);
/* A name in a sharded checkpoint directory: "<id>.metadata", its "<id>.pdkidx" sidecar or a data
 * file "<number>_<id><ext>"
 * (number: the writing rank, plus a base when an id is saved again; .vars is a directory). */
typedef struct pdk_ckpt_name {
    bool    is_meta, is_dir, is_index; /* is_index: the "<id>.pdkidx" sidecar */
    int64_t id, number;
} pdk_ckpt_name;
bool pdk_parse_ckpt_name(const char *name, pdk_ckpt_name *out);
/* "<rank>_<id><ext>" for a data file in `format`, and the format a data file name implies. */
const char   *pdk_data_file_ext(pdckpt_format format);
pdckpt_format pdk_data_file_format(const char *name);

/* ---- dist_merge.c: the merge plan of a gather (skeletons of every rank's state) ---- */

/* One merge unit of a rank's state: a top-level key, or (parent >= 0) a key of the
 * master_weights dict at entries[parent].  Its tensors are ordinals [first, first + count). */
typedef struct pdk_skel_entry {
    const char    *key; /* borrowed from the gathered bytes, not NUL-terminated */
    size_t         key_len;
    int32_t        parent;
    bool           merged; /* master_weights whose keys merge one by one */
    uint64_t       first, count;
    const uint8_t *tree; /* the encoded value (NULL when merged) */
    size_t         tree_len;
} pdk_skel_entry;

typedef struct pdk_skel {
    char             source[64];
    uint64_t         n_tensors;
    pdk_tensor_desc *descs;
    bool             is_dict;
    pdk_skel_entry  *entries;
    size_t           n_entries, cap_entries;
} pdk_skel;

pdckpt_status pdk_skel_encode(const pdckpt_value *state, bool opt, pdk_blob *out,
                              pdk_tensor_list *tl, pdckpt_error *err);
pdckpt_status pdk_skel_parse(const uint8_t *data, size_t len, int rank, pdk_skel *sk,
                             pdckpt_error *err);
void          pdk_skel_free(pdk_skel *sk);

struct kslot;
typedef struct pdk_merge_plan {
    pdk_skel     *skels; /* one per rank */
    int           n_ranks;
    bool          opt;
    bool          mw_merged;
    bool          same_keys; /* opt: every rank has the same top-level keys in the same order */
    struct kslot *slots;
    size_t        n_slots;
    pdckpt_error *err;
} pdk_merge_plan;

pdckpt_status pdk_merge_plan_build(pdk_merge_plan *p, pdckpt_error *err);
void          pdk_merge_plan_free(pdk_merge_plan *p);
/* The rank whose value of `e` ends up in `target`'s merged state. */
int pdk_merge_winner(const pdk_merge_plan *p, int target, const pdk_skel_entry *e);

/* Gives the merged state on a writing rank (whose own state is `local`) the shape
 * paddle.distributed.save gives it: for opt, when the ranks' top-level keys differ,
 * _gather_state_dict's -- tensors named by their keys, master_weights then the writer's own
 * LR_Scheduler (none when it has none) last -- and when they are the same, the writer's own
 * state; the name table the union of the ranks' (every merged top-level tensor). */
pdckpt_status pdk_merge_finish(const pdk_merge_plan *p, const pdckpt_value *local,
                               pdckpt_value *merged, const pdckpt_allocator *alloc,
                               pdckpt_error *err);

/* ---- dist_load.c: the local loader ---- */

/* Loads `reqs` (and with all_keys every key whole, in the metadata's order) from the checkpoint
 * whose index is `ix` in `dir` into a new dict. */
pdckpt_status pdk_distcp_load(const pdk_meta_index *ix, const char *dir,
                              const pdckpt_load_options *lo, const pdckpt_shard_request *reqs,
                              size_t n, bool all_keys, pdckpt_value **out, pdckpt_error *err);
/* The bytes of "<id>.metadata" for `wanted` (-1: the newest complete id, in *id); `st` (or NULL)
 * receives the file's status, which a sidecar's trust is judged by. */
pdckpt_status pdk_distcp_read_meta_bytes(const char *dir, int64_t wanted, int64_t *id,
                                         pdk_blob *out, struct stat *st, pdckpt_error *err);
/* The coordinator's side of a load: reads the metadata of `wanted` (-1: newest), its index (from
 * the sidecar when it matches) and that index's compact form; `path` receives the metadata path. */
pdckpt_status pdk_distcp_read_index(const char *dir, int64_t wanted, uint64_t max_alloc_bytes,
                                    int64_t *id, pdk_meta_index *ix, pdk_blob *compact, char *path,
                                    size_t cap, pdckpt_error *err);

/* ---- dist_read.c: overlaps read from a skimmed data file (zero_copy off) ---- */

/* The window a strided overlap is read through (the caller's scratch buffer holds this much):
 * small enough to stay in the L2 cache between the read into it and the copies out of it (a
 * 1 MiB window made 1 KiB runs 1 KiB apart cost 370-385 ns a KiB against 253-292 through
 * 256 KiB; a column band of 512 B runs 1.5 KiB apart, 9 % less CPU in the whole load). */
#define PDK_DIST_READ_CHUNK ((size_t)256 << 10)

/* One overlap to copy: the piece's data starts at file offset `at` and is a C-order array of
 * src_shape; the overlap `shape` at src_off goes to dst (dst_shape, at dst_off). */
typedef struct pdk_overlap_read {
    int32_t        n_dims;
    size_t         elem;
    uint64_t       at;
    const int64_t *src_shape, *src_off, *dst_shape, *dst_off, *shape;
    uint8_t       *dst;
} pdk_overlap_read;

struct pdk_skim;
/* Reads only the overlap's bytes from the file: each run of the overlap (a row, or a block of
 * whole rows) straight into dst with one pread, runs a few KiB apart or closer read together
 * through `scratch` and scattered by memcpy.  A file truncated since the skim is an IO error
 * naming it. */
pdckpt_status pdk_dist_read_overlap(const struct pdk_skim *s, const pdk_overlap_read *r,
                                    uint8_t *scratch, pdckpt_error *err);

/* ---- dist_skim_stream.c: the skim of a combined (.pdiparams) data file ---- */

/* Walks the tensor streams of the file of skim `s` (pdk_skim_init): headers read into the
 * image, data of min_payload bytes or more left unread.  *followed false (and OK) when the
 * walk cannot follow the file: it is then read whole.  Errors are the reads'. */
pdckpt_status pdk_skim_streams(struct pdk_skim *s, uint64_t min_payload, bool *followed,
                               pdckpt_error *err);

/* ---- dist_save_steps.c: the MPI-free steps of a sharded save ---- */

/* This rank's pieces as the planner reads them (pdk_shard_plan_read); runs[i] (runs may be
 * NULL) says whether shards[i] is a flattened run. */
pdckpt_status pdk_shard_describe(const pdckpt_shard *shards, const pdckpt_shard_run *runs, size_t n,
                                 pdk_blob *out, pdckpt_error *err);
/* Adds to `tree` the pieces a write list (pdk_shard_plan_write_lists) names, borrowed. */
pdckpt_status pdk_shard_build_tree(const uint8_t *list, size_t len, const pdckpt_shard *shards,
                                   size_t n, const pdckpt_allocator *a, pdckpt_value *tree,
                                   pdckpt_error *err);
/* The metadata of plan `p` (and its index sidecar), written atomically into `dir`. */
pdckpt_status pdk_shard_write_meta(const pdk_shard_plan *p, const char *dir, bool durable,
                                   pdckpt_error *err);

#endif /* PDK_DISTCP_H */
