/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle.h — the pickle module (.pdparams / .pdopt, spec pickle-and-distributed-formats.md §1-3),
 * split because its reader (a bounded VM that executes nothing, pickle_read.c) and its writer (a
 * CPython-identical emitter, pickle_write.c) share nothing but this descriptor (pickle_format.c).
 */
#ifndef PDK_PICKLE_H
#define PDK_PICKLE_H

#include "../pdk_format.h"

int pdk_pickle_sniff(const pdk_input *in);
/* True when `in` starts with a protocol 2-5 pickle whose opcodes run to a STOP; *end is just
 * after it (nothing is executed: the opcodes are only skipped over). */
bool          pdk_pickle_length(const pdk_input *in, size_t *end);
pdckpt_status pdk_pickle_load(const pdk_input *in, const pdckpt_load_options *opts,
                              pdckpt_value **out, pdckpt_error *err);
pdckpt_status pdk_pickle_save(const pdckpt_value *root, pdk_sink *sink,
                              const pdckpt_save_options *opts, pdckpt_error *err);

/* Consumer mode: a load that hands every instance BUILD completes (not a numpy array) to `build`
 * with its state before the state is set.  When `build` gives back a replacement (*out, a new
 * reference) the object becomes that value everywhere (stack, memo) and its state is dropped, so
 * a caller that turns many small objects into compact records of its own never holds them as
 * values.  The run keeps only what it can still reach: memo entries no GET fetches are not kept
 * and the identity map forgets values nothing else holds (pickle_live.c).  An error `build`
 * returns names the BUILD's offset.  The array fast path is off (the memo is not all kept). */
typedef struct pdk_pickle_consumer {
    pdckpt_status (*build)(void *ctx, const pdckpt_value *obj, const pdckpt_value *state,
                           pdckpt_value **out, pdckpt_error *err);
    /* Every key/value pair SETITEM(S) is about to put into `dict` (may be NULL): *taken drops
     * the pair (the caller has kept what it needs; text may still borrow the input). */
    pdckpt_status (*pair)(void *ctx, const pdckpt_value *dict, const pdckpt_value *key,
                          const pdckpt_value *value, bool *taken, pdckpt_error *err);
    void *ctx;
} pdk_pickle_consumer;
pdckpt_status pdk_pickle_load_consumed(const pdk_input *in, const pdckpt_load_options *opts,
                                       const pdk_pickle_consumer *consumer, pdckpt_value **out,
                                       pdckpt_error *err);

/* Finds a pickle's large byte payloads before it is read, for a read that lands each aligned
 * (pickle_place.c; pdk_input_open_placed). */
extern const pdk_placer pdk_pickle_placer;

/* Calls `fn` for every tensor paddle.load would return as a paddle.Tensor (pickle_tensors.c);
 * `path` is its '/'-joined key path.  `state_path`: the root is about to be written by the
 * state-dict path, whose generated name table lists every top-level tensor Paddle has a dtype
 * for (pdk_pickle_table_lists). */
typedef pdckpt_status (*pdk_pickle_tensor_fn)(void *ctx, pdckpt_value *tensor, const char *path,
                                              pdckpt_error *err);
pdckpt_status pdk_pickle_paddle_tensors(pdckpt_value *root, bool state_path,
                                        pdk_pickle_tensor_fn fn, void *ctx, pdckpt_error *err);

/* Whether a name table the writer generates lists a top-level tensor: not a uint32 or uint64
 * array, which no paddle.Tensor can hold (paddle.load of a table naming one raises), so it is
 * written as paddle.save writes a NumPy array beside Tensors: unlisted, loaded back an array. */
bool pdk_pickle_table_lists(const pdckpt_value *tensor);

/* Whether paddle.load can read back the top-level keys it acts on as `root` means them
 * (pickle_paddle.c): no "UnpackBigParamInfor@@" (only the writer makes one, when it splits an
 * array), and a name table that is a dict of str to str naming keys of `root`.  ARGUMENT naming
 * `file` otherwise: Paddle's loader would fail on the file, or join arrays that are not slices. */
pdckpt_status pdk_pickle_paddle_keys_ok(const pdckpt_value *root, const char *file,
                                        pdckpt_error *err);

/* Where a save put each tensor's bytes in the file, recorded by the writer for the lazy-open
 * index: `at` in the order the tensors were written.  `state_path`: the state-dict path wrote a
 * new name table and nothing split (so the loaded tree follows from the saved one, see
 * pickle_index.c); `ok` false when a payload could not be placed (protocol 2's latin-1 text, a
 * 1-byte payload shared through the memo). */
typedef struct pdk_pickle_offsets {
    const pdckpt_allocator *alloc;
    uint64_t               *at;
    size_t                  n, cap;
    size_t                  framed; /* at[framed..n) are relative to the open frame */
    bool                    ok, state_path;
    /* the file can hold no index, so no parse is tried: a payload stored as protocol 2's latin-1
     * text or an array split into slices (a load builds those arrays in new memory) */
    bool unindexable;
} pdk_pickle_offsets;

/* pdk_pickle_save recording `offs` (zeroed but for alloc; freed by pdk_pickle_offsets_free). */
pdckpt_status pdk_pickle_save_recorded(const pdckpt_value *root, pdk_sink *sink,
                                       const pdckpt_save_options *opts, pdk_pickle_offsets *offs,
                                       pdckpt_error *err);
void          pdk_pickle_offsets_free(pdk_pickle_offsets *offs);

/* The lazy-open index "<path>.pdkidx" (pickle_index.c).  Written after a pickle file save of
 * `root`: from the save itself (`offs`) for a state dict of tensors, else, for tensors averaging
 * at least PDK_PICKLE_INDEX_MIN_AVG bytes, from one parse (a failure only means no index); read
 * by zero-copy opens: true with the tree when the index belongs to the pickle as it is now,
 * false (nothing else happens) otherwise.  Never synced, even beside a durable save: an index
 * that a crash leaves torn, empty or stale fails its stamp and hash checks and is ignored (the
 * pickle is parsed), so a sync would buy nothing but a second fdatasync and directory sync. */
#define PDK_PICKLE_INDEX_MIN_AVG ((uint64_t)64 << 10)
void pdk_pickle_index_write(const pdckpt_value *root, const char *path,
                            const pdk_pickle_offsets *offs, const pdckpt_allocator *a);
bool pdk_pickle_index_load(const char *path, const struct stat *st, const pdckpt_load_options *opts,
                           pdckpt_value **out);
/* The same on bytes (and fuzz_pickle_index): the index `idx` of the pickle `in` that `st` stamps;
 * encode gives the index bytes (pdk_free(a, *idx, *cap)); seal writes the header of an index
 * whose body is in place (len bytes in all; `fortran`: it holds a column-major tensor). */
#define PDK_PICKLE_INDEX_HEADER (8 + 9 * 8)
bool pdk_pickle_index_decode(const uint8_t *idx, size_t len, const pdk_input *in,
                             const struct stat *st, const pdckpt_load_options *opts,
                             pdckpt_value **out);
bool pdk_pickle_index_encode(const pdk_input *in, const struct stat *st, const pdckpt_allocator *a,
                             uint8_t **idx, size_t *len, size_t *cap);
void pdk_pickle_index_seal(uint8_t *idx, size_t len, const pdk_input *in, const struct stat *st,
                           bool fortran);

/* The index opened for access entry by entry (pdckpt_lazy_open): NULL when there is no index
 * that belongs to the pickle as it is now, or its root is not a dict, list or tuple.  The open
 * checks the index's stamp, hash and entry table; each entry is checked when it is made. */
typedef struct pdckpt_lazy pdk_pickle_lazy; /* public: pdckpt_lazy */
pdk_pickle_lazy           *pdk_pickle_lazy_open(const char *path, const struct stat *st,
                                                const pdckpt_load_options *opts);
/* The same on bytes (fuzz_pickle_index): `idx` and `in` are borrowed and must outlive it. */
pdk_pickle_lazy *pdk_pickle_lazy_decode(const uint8_t *idx, size_t len, const pdk_input *in,
                                        const struct stat *st, const pdckpt_load_options *opts);
size_t           pdk_pickle_lazy_len(const pdk_pickle_lazy *l);
pdckpt_kind      pdk_pickle_lazy_kind(const pdk_pickle_lazy *l);
/* Entry i's key text when it is a str (a dict root), else NULL; valid until the close. */
const char *pdk_pickle_lazy_key_text(const pdk_pickle_lazy *l, size_t i, size_t *len);
/* Entry i's key (`key`) or value, made now and checked (a damaged or forged entry, or a tensor
 * whose payload is no longer where the index says, is CORRUPT). */
pdckpt_status pdk_pickle_lazy_get(const pdk_pickle_lazy *l, size_t i, bool key, pdckpt_value **out,
                                  pdckpt_error *err);
void          pdk_pickle_lazy_close(pdk_pickle_lazy *l);

#endif /* PDK_PICKLE_H */
