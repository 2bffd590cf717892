/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pdckpt_mpi.h — distributed save and load over MPI (libpdckpt_mpi, a separate library so
 * libpdckpt never needs MPI; it carries its own hidden copy of the internal core and exports only
 * pdckpt_mpi_*).  Link with -lpdckpt_mpi -lpdckpt and your MPI.
 *
 *   pdckpt_mpi_save           paddle.distributed.save: every rank saves its own state, or the
 *                             states of all ranks are merged and written only on `gather_to`
 *   pdckpt_mpi_gather         the same merge, handed back as a tree instead of written
 *   pdckpt_mpi_save_sharded   a sharded checkpoint: one data file per rank + metadata written last
 *   pdckpt_mpi_load_sharded   loads any boxes of a sharded checkpoint on any number of ranks
 *                             (resharding), reading only the byte ranges that overlap them
 *   pdckpt_mpi_save_combined  one combined file (.pdiparams) written by all ranks with MPI-IO
 *
 * Conventions (on top of pdckpt.h's):
 *   - Every pdckpt_mpi_* call is collective over `comm` and returns the same status on every rank.
 *     When any rank fails, every rank gets the error of the lowest failing rank, its message
 *     prefixed with "rank R: ".  A failed save leaves every previous file in place.
 *   - No rank waits longer than `timeout_s` for the others at any step (non-blocking MPI with a
 *     deadline).  A timeout returns PDCKPT_ERR_MPI; the communicator may then hold unfinished
 *     operations, so the job should end (MPI_Abort) rather than continue using it.
 *   - Options and arguments that shape the communication (gather_to, state_type,
 *     max_grouped_size, unique_id, coordinator, the path) must be the same on every rank; a
 *     difference is detected and reported as PDCKPT_ERR_MISMATCH.
 *   - Calls marked "Local" make no MPI call and need no MPI_Init.  The local calls on sharded
 *     checkpoints (pdckpt_sharded_*, pdckpt_shard_*) are in pdckpt.h and libpdckpt.
 */
#ifndef PDCKPT_MPI_H
#define PDCKPT_MPI_H

#include <mpi.h>
#include <pdckpt.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What a pdckpt_mpi_save merges (Paddle's `state_type`). */
typedef enum pdckpt_mpi_state_type {
    PDCKPT_MPI_PARAMS = 0, /* a flat state dict: top-level keys merge, later ranks win */
    PDCKPT_MPI_OPT = 1,    /* an optimizer state: also merges the "master_weights" dict key by
                              key; "LR_Scheduler" is the writing rank's own (none when
                              it has none); tensors are named by their keys, as Paddle's
                              _gather_state_dict names them.  When every rank has the same
                              top-level keys, the writer's own state, as Paddle */
} pdckpt_mpi_state_type;

#define PDCKPT_MPI_DEFAULT_GROUP   (UINT64_C(3) << 30) /* Paddle's default "3G" */
#define PDCKPT_MPI_MIN_GROUP       UINT64_C(1024)
#define PDCKPT_MPI_DEFAULT_TIMEOUT 600.0

typedef struct pdckpt_mpi_options {
    double   timeout_s;        /* longest wait for other ranks at one step; 0 = 600 */
    uint64_t max_grouped_size; /* bytes one transfer group may carry (>= 1 KiB);
                                  0 = 3 GiB.  pdckpt_mpi_parse_size reads "3G" */
    const int *gather_to;      /* save/gather: ranks that receive and write the
                                  merged state; NULL or none = every rank writes
                                  its own state to its own file */
    size_t                n_gather_to;
    pdckpt_mpi_state_type state_type;
    int                   coordinator; /* rank that writes metadata / renames (default 0) */
    int64_t               unique_id;   /* sharded: checkpoint id; -1 = a new id on save, the
                                          newest complete checkpoint on load */
    int32_t keep_last;                 /* sharded save: once committed, keep only the newest
                                          N complete checkpoints (largest ids); 0 = all */
    pdckpt_format data_format;         /* sharded save: format of the per-rank data files;
                                          AUTO = ".distcp" pickles, as Paddle */
    pdckpt_save_options save;          /* applies to every file written */
    pdckpt_load_options load;          /* applies to every file read; zero_copy (the default
                                          here, unlike a plain load) maps the data files so
                                          only the pages that hold needed bytes are read --
                                          a data file truncated in place by another program
                                          meanwhile raises SIGBUS (pdckpt_load_options) */
    const pdckpt_sink_ops *sink_ops;   /* pdckpt_mpi_save: this rank writes through the
                                          caller's sink instead of a file (may differ per
                                          rank; NULL = file) */
    void *sink_self;
} pdckpt_mpi_options;

#ifdef __cplusplus /* C++ before 20 has no designated initialisers */
#define PDCKPT_MPI_OPTIONS_INIT (pdckpt_mpi_options_default())
#else
#define PDCKPT_MPI_OPTIONS_INIT                                                                    \
    {                                                                                              \
        .timeout_s = 0, .max_grouped_size = 0, .gather_to = NULL, .n_gather_to = 0,                \
        .state_type = PDCKPT_MPI_PARAMS, .coordinator = 0, .unique_id = -1, .keep_last = 0,        \
        .data_format = PDCKPT_FORMAT_AUTO, .save = PDCKPT_SAVE_OPTIONS_INIT,                       \
        .load = PDCKPT_LOAD_OPTIONS_INIT_WITH(true), .sink_ops = NULL, .sink_self = NULL           \
    }
#endif
/* The defaults as a value: what PDCKPT_MPI_OPTIONS_INIT is in C++. */
PDCKPT_API pdckpt_mpi_options pdckpt_mpi_options_default(void);

/* Parses a group size as Paddle writes it: "<digits>" (bytes), "<digits>K", "M" or "G" (powers
 * of 1024).  Local. */
PDCKPT_API pdckpt_status pdckpt_mpi_parse_size(const char *text, uint64_t *out, pdckpt_error *err);

/* ---------------------------------------------------------------------------------------------
 * Gathered saves (paddle.distributed.save)
 * ------------------------------------------------------------------------------------------- */

/* Saves `state` (this rank's tree) collectively.
 *   gather_to none: every rank saves its own state to its own file: `path` with "{rank}"
 *     replaced by the rank, or, when `path` has no "{rank}" and the job has more than one rank,
 *     with ".rank<R>" inserted before the extension (see pdckpt_mpi_rank_path).
 *   gather_to ranks: the states of all ranks are merged (a dict per rank; for each top-level key
 *     the highest rank that has it wins, in the position where the key first appears — Python's
 *     dict.update over ranks in order) and written only on those ranks, to `path` ("{rank}" is
 *     replaced when present).  Only the winning tensors move, only to the writing ranks, straight
 *     from tensor memory, in rounds that carry at most max_grouped_size bytes per writing rank.
 * The format comes from opts->save.format or the path's name.  Files are committed in two
 * phases: every rank writes a temporary beside its target and syncs it; only when all succeeded
 * are they renamed into place, so a failure anywhere leaves every previous file intact. */
PDCKPT_API pdckpt_status pdckpt_mpi_save(MPI_Comm comm, const pdckpt_value *state, const char *path,
                                         const pdckpt_mpi_options *opts, pdckpt_error *err);

/* The merge of pdckpt_mpi_save without writing: on every rank in opts->gather_to `*merged`
 * receives the merged tree (elsewhere NULL).  Tensors this rank owned are borrowed from `state`
 * (keep it alive and unchanged while `*merged` lives); received tensors are owned.  Requires a
 * non-empty gather_to. */
PDCKPT_API pdckpt_status pdckpt_mpi_gather(MPI_Comm comm, const pdckpt_value *state,
                                           const pdckpt_mpi_options *opts, pdckpt_value **merged,
                                           pdckpt_error *err);

/* The file rank `rank` of `world` ranks writes for `path` when nothing is gathered:
 * "{rank}" replaced, else "dir/name.ext" -> "dir/name.rank<R>.ext" (world > 1), else `path`.
 * A trailing '/' (a directory target) is kept.  Local. */
PDCKPT_API pdckpt_status pdckpt_mpi_rank_path(const char *path, int rank, int world, char *out,
                                              size_t cap, pdckpt_error *err);

/* ---------------------------------------------------------------------------------------------
 * Sharded checkpoints
 *
 * A directory holding, per checkpoint id: one data file per rank that stores shards,
 * "<rank>_<id>.distcp" (a paddle.save pickle; or ".safetensors", ".pdiparams" combined, ".vars"
 * per-variable directories), each a flat dict {key: local piece}; and "<id>.metadata" naming the
 * global shape, dtype and pieces of every key and the file that holds each piece: Paddle's flex
 * checkpoint Metadata (state_dict_metadata, storage_metadata, flat_mapping), pickled as Paddle
 * pickles it, so paddle.distributed.load_state_dict reads these checkpoints and pdckpt reads
 * Paddle's save_state_dict output.  The metadata is
 * written last, atomically, after every data file is durable: a checkpoint id without metadata is
 * incomplete and is never loaded.  Replicated pieces (the same box on several ranks) are written
 * once, spread over ranks the way Paddle balances them.
 * ------------------------------------------------------------------------------------------- */

/* One piece of a global tensor held by this rank (pdckpt.h's pdckpt_shard: key, tensor, global
 * shape, global offset). */
typedef pdckpt_shard pdckpt_mpi_shard;

/* Saves the pieces of all ranks into `dir` (created if missing).  At most one piece per key per
 * rank; pieces of one key must agree on dtype and global shape and tile the global tensor
 * exactly (replicas allowed).  `*out_id` (may be NULL) receives the checkpoint id. */
PDCKPT_API pdckpt_status pdckpt_mpi_save_sharded(MPI_Comm comm, const pdckpt_mpi_shard *shards,
                                                 size_t n_shards, const char *dir,
                                                 const pdckpt_mpi_options *opts, int64_t *out_id,
                                                 pdckpt_error *err);
/* pdckpt_mpi_save_sharded with runs[i] saying whether shards[i] is Paddle's flattened piece
 * (pdckpt.h's pdckpt_shard_run, as pdckpt_sharded_describe_runs takes it: a 1-D run [begin, end)
 * of the row-major flattening of the box at the shard's global_offset; runs NULL: none is).  The
 * runs and boxes of each key must tile it; identical runs are stored once; the metadata lists
 * them as Paddle 3.x's save_state_dict does, and its load_state_dict reads them.  (A new
 * function: pdckpt_mpi_save_sharded keeps its signature.) */
PDCKPT_API pdckpt_status pdckpt_mpi_save_sharded_runs(MPI_Comm comm, const pdckpt_mpi_shard *shards,
                                                      const pdckpt_shard_run *runs, size_t n_shards,
                                                      const char               *dir,
                                                      const pdckpt_mpi_options *opts,
                                                      int64_t *out_id, pdckpt_error *err);

/* A box this rank wants (pdckpt.h's pdckpt_shard_request, the same box a local load takes). */
typedef pdckpt_shard_request pdckpt_mpi_request;

/* Loads the requested boxes: `*out` is a dict {key: tensor}.  Each rank opens only the data files
 * that overlap its boxes and copies only the overlapping bytes (with opts->load.zero_copy the
 * files are mapped, so only those pages are read; a box equal to a stored piece is then returned
 * in place, read-only).  Any number of ranks may load a checkpoint saved by any number.
 * opts->unique_id selects the checkpoint (-1: the newest complete one). */
PDCKPT_API pdckpt_status pdckpt_mpi_load_sharded(MPI_Comm comm, const char *dir,
                                                 const pdckpt_mpi_request *requests,
                                                 size_t n_requests, const pdckpt_mpi_options *opts,
                                                 pdckpt_value **out, pdckpt_error *err);

/* The local functions on sharded checkpoints (pdckpt_sharded_read_metadata, _load, _scan, _gc,
 * _is_checkpoint, pdckpt_shard_split, _box, _slice) are in pdckpt.h: libpdckpt has them, no MPI
 * needed. */

/* ---------------------------------------------------------------------------------------------
 * One combined file written by all ranks
 * ------------------------------------------------------------------------------------------- */

/* Writes the tensors of every rank's `local` tree (names flattened with '.', as the combined
 * format does) into one combined file at `path`, in byte-wise name order like Paddle's
 * save_combine: the bytes equal a single-process pdckpt_save_file of the union.  Each rank writes
 * its own tensors at computed offsets with MPI-IO, straight from tensor memory; nothing is
 * gathered.  A name held by several ranks (same dtype and shape required) is written once, by the
 * rank with the fewest bytes so far.  The file is built under a temporary name, synced, and
 * renamed by the coordinator only when every rank succeeded.
 *
 * A `.pdparams` / `.pdopt` path (or opts->save.format = PICKLE) writes one pickle instead, what
 * paddle.load reads: `local` must be a flat dict of tensors; the file is the single-process save
 * of the dict the ranks' dicts merge into (dict.update over ranks 0, 1, ...: a key keeps its first
 * place and takes the highest rank's tensor).  Tensors of 1 MiB and more are written by the
 * ranks that hold them at offsets the coordinator finds by running the pickle writer over
 * placeholders; smaller ones are gathered on the coordinator, which writes every other byte.
 * Protocol 3 or 4 (protocol 2's array bytes have value-dependent length): ARGUMENT otherwise. */
PDCKPT_API pdckpt_status pdckpt_mpi_save_combined(MPI_Comm comm, const pdckpt_value *local,
                                                  const char *path, const pdckpt_mpi_options *opts,
                                                  pdckpt_error *err);

#ifdef __cplusplus
}
#endif
#endif /* PDCKPT_MPI_H */
