/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_internal.h — what the modules of libpdckpt_mpi (src/mpi/) share: the communicator, bounded
 * waits and error agreement, grouped transfers and MPI-IO.  Everything else they use is the
 * internal core compiled into this library too (src/formats/distcp/pdk_distcp.h and below).
 * Nothing here is public.
 */
#ifndef PDK_DIST_INTERNAL_H
#define PDK_DIST_INTERNAL_H

#include "../formats/distcp/pdk_distcp.h"
#include "pdckpt_mpi.h"

/* ---- dist_comm.c: the communicator, bounded waits, error agreement ---- */

typedef struct pdk_dist {
    MPI_Comm comm; /* a private duplicate: our messages never meet the caller's */
    int      rank, size;
    double   timeout_s;
    bool     broken; /* a wait timed out or MPI failed: no further communication is attempted */
    const struct pdk_peer *peers; /* every rank's host and process (dist_alive.c), or NULL */
    bool                   ready; /* comm is usable (its non-blocking duplication finished) */
} pdk_dist;

/* dist_alive.c: every rank's (host, pid, start time), exchanged once per caller communicator
 * and cached on it; a waiting rank checks the ranks on its host and hears of deaths the others
 * found, so a dead rank fails the others in about a second instead of at timeout_s. */
void          pdk_alive_cached(pdk_dist *d, MPI_Comm user); /* before the first wait */
pdckpt_status pdk_alive_init(pdk_dist *d, MPI_Comm user, pdckpt_error *err);
pdckpt_status pdk_alive_check(pdk_dist *d, const char *what, pdckpt_error *err);

/* The start of every public call: errors go to `local` when the caller passed none (and start
 * cleared); NULL options are the defaults, which it returns. */
const pdckpt_mpi_options *pdk_mpi_begin(const pdckpt_mpi_options *opts, pdckpt_error **err,
                                        pdckpt_error *local);
pdckpt_status             pdk_dist_open(MPI_Comm comm, const pdckpt_mpi_options *opts, pdk_dist *d,
                                        pdckpt_error *err);
void                      pdk_dist_close(pdk_dist *d);
/* Waits for every request until the deadline; on timeout fails with ERR_MPI naming `what`. */
pdckpt_status pdk_dist_wait(pdk_dist *d, int n, MPI_Request *reqs, const char *what,
                            pdckpt_error *err);
/* The same for requests that move data: never naps between tests (MPI progresses a large
 * message only while it is called). */
pdckpt_status pdk_dist_wait_data(pdk_dist *d, int n, MPI_Request *reqs, const char *what,
                                 pdckpt_error *err);
pdckpt_status pdk_dist_mpi_fail(pdckpt_error *err, int rc, const char *what);
/* Every rank contributes its status; all return the lowest failing rank's error ("rank R: ..."),
 * or OK when none failed. */
pdckpt_status pdk_dist_agree(pdk_dist *d, pdckpt_status local, pdckpt_error *err);
/* Fails with MISMATCH on every rank unless `value` is the same on all ranks. */
pdckpt_status pdk_dist_same(pdk_dist *d, uint64_t value, const char *what, pdckpt_error *err);
/* Sets *same to whether `value` is the same on all ranks. */
pdckpt_status pdk_dist_compare(pdk_dist *d, uint64_t value, bool *same, pdckpt_error *err);
/* Broadcasts `len` bytes from `root` (len known everywhere). */
pdckpt_status pdk_dist_bcast(pdk_dist *d, void *buf, size_t len, int root, pdckpt_error *err);
/* Broadcasts a blob whose length only `root` knows. */
pdckpt_status pdk_dist_bcast_blob(pdk_dist *d, pdk_blob *b, int root, pdckpt_error *err);
/* Every rank's blob to every rank: `all` holds them back to back, rank r's at offsets[r] with
 * length offsets[r+1] - offsets[r] (offsets: size+1 entries, malloc'd). */
pdckpt_status pdk_dist_allgather(pdk_dist *d, const pdk_blob *mine, pdk_blob *all, size_t **offsets,
                                 pdckpt_error *err);

/* Every rank's blob to `root` only (all/offsets as pdk_dist_allgather there, empty elsewhere). */
pdckpt_status pdk_dist_gather(pdk_dist *d, const pdk_blob *mine, int root, pdk_blob *all,
                              size_t **offsets, pdckpt_error *err);
/* The reverse: rank r receives root's all[offsets[r]..offsets[r+1]) into `mine`. */
pdckpt_status pdk_dist_scatter(pdk_dist *d, const pdk_blob *all, const size_t *offsets, int root,
                               pdk_blob *mine, pdckpt_error *err);

/* ---- dist_transfer.c: grouped point-to-point transfers ---- */

/* One tensor (or its whole byte range) that moves from `src` to `dst`. */
typedef struct pdk_xfer_item {
    int         src, dst;
    uint64_t    n_bytes;
    const void *send; /* on src: where the bytes are */
    void       *recv; /* on dst: where they go */
} pdk_xfer_item;

/* Moves every item, in rounds: per destination, the byte stream of its items (in list order)
 * is cut into groups of at most `group_bytes` (items are split across groups when needed), and
 * round g moves group g of every destination.  Sends go from `send`, receives into `recv`,
 * without staging copies.  Items must be listed in the same order on every rank. */
pdckpt_status pdk_dist_transfer(pdk_dist *d, const pdk_xfer_item *items, size_t n,
                                uint64_t group_bytes, uint64_t *rounds, pdckpt_error *err);

/* ---- dist_mpiio.c: one file written by every rank ---- */

/* ARGUMENT unless `path` is set and the coordinator is a rank of the job. */
pdckpt_status pdk_mpiio_check_target(const char *path, const pdckpt_mpi_options *o, int size,
                                     pdckpt_error *err);
pdckpt_status pdk_mpiio_write_at(MPI_File fh, uint64_t at, const void *bytes, size_t len,
                                 pdckpt_error *err);
/* This rank's part of the file (called on every rank between the collective open and sync). */
typedef pdckpt_status (*pdk_mpiio_writer)(MPI_File fh, void *ctx, pdckpt_error *err);
/* Builds `path` under a temporary name with MPI-IO (every rank runs fn), syncs, closes, agrees,
 * and the coordinator renames it into place; a failure anywhere leaves the old file. */
pdckpt_status pdk_mpiio_commit(pdk_dist *d, const char *path, const pdckpt_mpi_options *o,
                               pdk_mpiio_writer fn, void *ctx, pdckpt_error *err);
/* dist_mpiio_pickle.c: the .pdparams / .pdopt case of pdckpt_mpi_save_combined. */
pdckpt_status pdk_mpiio_save_pickle(MPI_Comm comm, const pdckpt_value *local, const char *path,
                                    const pdckpt_mpi_options *opts, pdckpt_error *err);

#endif /* PDK_DIST_INTERNAL_H */
