/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_comm.c — the communication every collective is built from, with two guarantees:
 * bounded waits (every wait is a non-blocking operation polled against a deadline, so a rank
 * that died, hung or took another path costs the others at most `timeout_s`, never a hang) and
 * error agreement (after each phase all ranks learn the lowest failing rank's error and return
 * it, so every rank of a collective returns the same status).  Operations run on a private
 * duplicate of the caller's communicator, with MPI errors returned rather than fatal.
 */
#include "dist_internal.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK (1u << 30) /* MPI counts are ints: larger messages go in pieces */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

pdckpt_status pdk_dist_mpi_fail(pdckpt_error *err, int rc, const char *what) {
    char text[MPI_MAX_ERROR_STRING] = "";
    int  len = 0;
    MPI_Error_string(rc, text, &len);
    return pdk_fail(err, PDCKPT_ERR_MPI, NULL, -1, "MPI failed during %s: %s", what, text);
}

static pdckpt_status broken(pdk_dist *d, pdckpt_error *err) {
    d->broken = true;
    return err->status != PDCKPT_OK ? err->status : PDCKPT_ERR_MPI;
}

/* The progress loop behind every wait: test, and between tests yield the CPU (an oversubscribed
 * rank lets the others run) without sleeping — MPI moves a large message only while someone
 * calls into it, so a sleeping receiver stalls the transfer (the 2 ms naps this replaced made
 * gathers 6-15x slower than MPI-IO).  Only a control wait (an agreement, a small broadcast) that
 * has waited IDLE_S already — another rank is still computing or writing — naps NAP_NS between
 * tests, so a long wait does not burn a core. */
#define IDLE_S 0.05
#define NAP_NS 200000L
/* A wait longer than this checks, every LIVENESS_S, that no rank has died (dist_alive.c). */
#define LIVENESS_S 0.5

static pdckpt_status wait_loop(pdk_dist *d, int n, MPI_Request *reqs, const char *what, bool data,
                               pdckpt_error *err) {
    if (d->broken) return broken(d, err);
    if (n == 0) return PDCKPT_OK;
    double start = now_s(), deadline = start + d->timeout_s, checked = start;
    for (;;) {
        int done = 0;
        int rc = MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) {
            pdk_dist_mpi_fail(err, rc, what);
            return broken(d, err);
        }
        if (done) return PDCKPT_OK;
        double t = now_s();
        if (t > deadline) {
            pdk_fail(err, PDCKPT_ERR_MPI, NULL, -1,
                     "rank %d: timed out after %.1f s waiting for %s (another rank did not "
                     "take part: it died, hung, or was called differently)",
                     d->rank, d->timeout_s, what);
            return broken(d, err);
        }
        if (t - checked > LIVENESS_S) {
            checked = t;
            if (pdk_alive_check(d, what, err) != PDCKPT_OK) return broken(d, err);
        }
        if (!data && t - start > IDLE_S) {
            struct timespec ts = {0, NAP_NS};
            nanosleep(&ts, NULL);
        } else {
            sched_yield();
        }
    }
}

pdckpt_status pdk_dist_wait(pdk_dist *d, int n, MPI_Request *reqs, const char *what,
                            pdckpt_error *err) {
    return wait_loop(d, n, reqs, what, false, err);
}

pdckpt_status pdk_dist_wait_data(pdk_dist *d, int n, MPI_Request *reqs, const char *what,
                                 pdckpt_error *err) {
    return wait_loop(d, n, reqs, what, true, err);
}

const pdckpt_mpi_options *pdk_mpi_begin(const pdckpt_mpi_options *opts, pdckpt_error **err,
                                        pdckpt_error *local) {
    static const pdckpt_mpi_options defaults = PDCKPT_MPI_OPTIONS_INIT;
    if (!*err) *err = local;
    pdk_error_reset(*err);
    return opts ? opts : &defaults;
}

pdckpt_status pdk_dist_open(MPI_Comm comm, const pdckpt_mpi_options *opts, pdk_dist *d,
                            pdckpt_error *err) {
    memset(d, 0, sizeof *d);
    d->comm = MPI_COMM_NULL;
    int ready = 0, finished = 0;
    MPI_Initialized(&ready);
    MPI_Finalized(&finished);
    if (!ready || finished)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "MPI is not initialized");
    if (comm == MPI_COMM_NULL)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "the communicator is MPI_COMM_NULL");
    d->timeout_s = opts && opts->timeout_s > 0 ? opts->timeout_s : PDCKPT_MPI_DEFAULT_TIMEOUT;
    MPI_Comm_rank(comm, &d->rank);
    MPI_Comm_size(comm, &d->size);
    pdk_alive_cached(d, comm);
    MPI_Request req;
    int         rc = MPI_Comm_idup(comm, &d->comm, &req);
    if (rc != MPI_SUCCESS) return pdk_dist_mpi_fail(err, rc, "duplicating the communicator");
    pdckpt_status st = pdk_dist_wait(d, 1, &req, "duplicating the communicator", err);
    if (st != PDCKPT_OK) {
        d->comm = MPI_COMM_NULL; /* unfinished: it cannot be freed */
        return st;
    }
    MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
    d->ready = true;
    return pdk_alive_init(d, comm, err);
}

void pdk_dist_close(pdk_dist *d) {
    /* A broken communicator may hold unfinished operations; freeing it could block. */
    if (d->comm != MPI_COMM_NULL && !d->broken) MPI_Comm_free(&d->comm);
    d->comm = MPI_COMM_NULL;
}

/* The error record as it travels from the failing rank to all others. */
typedef struct wire_error {
    int32_t status, sys_errno;
    int64_t offset;
    char    source[512];
    char    message[512];
} wire_error;

static void apply_wire(const wire_error *w, int rank, pdckpt_error *err) {
    pdckpt_error e = PDCKPT_ERROR_INIT;
    e.status = w->status > 0 && w->status <= PDCKPT_ERR_CORRUPT ? (pdckpt_status)w->status
                                                                : PDCKPT_ERR_MPI;
    e.sys_errno = w->sys_errno;
    e.offset = w->offset;
    memcpy(e.source, w->source, sizeof e.source);
    e.source[sizeof e.source - 1] = '\0';
    memcpy(e.message, w->message, sizeof e.message);
    e.message[sizeof e.message - 1] = '\0';
    if (strncmp(e.message, "rank ", 5) != 0) pdk_error_prefix(&e, "rank %d: ", rank);
    *err = e;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Every rank sends (its status as "lowest failing rank", its deadline); the minimum of both comes
 * back.  A rank that sees the result only after the earliest deadline knows that rank has given
 * up (timed out) and so treats the agreement as failed too: a rank that arrives late never goes
 * on to commit while the others have abandoned the operation. */
pdckpt_status pdk_dist_agree(pdk_dist *d, pdckpt_status local, pdckpt_error *err) {
    if (local != PDCKPT_OK && err->status == PDCKPT_OK)
        pdk_fail(err, local, NULL, -1, "failed without a message (status %s)",
                 pdckpt_status_name(local));
    if (d->broken) return broken(d, err);
    int64_t mine[2] = {local != PDCKPT_OK ? d->rank : d->size,
                       wall_ms() + (int64_t)(d->timeout_s * 1000)};
    int64_t     got[2] = {d->size, 0};
    MPI_Request req;
    int         rc = MPI_Iallreduce(mine, got, 2, MPI_INT64_T, MPI_MIN, d->comm, &req);
    if (rc != MPI_SUCCESS) return pdk_dist_mpi_fail(err, rc, "the error agreement");
    PDK_TRY(pdk_dist_wait(d, 1, &req, "the other ranks' status", err));
    if (wall_ms() > got[1]) {
        pdk_fail(err, PDCKPT_ERR_MPI, NULL, -1,
                 "rank %d: the other ranks' status came after another rank's deadline "
                 "(%.1f s): that rank has given up, so this one does too",
                 d->rank, d->timeout_s);
        return broken(d, err);
    }
    int first = (int)got[0];
    if (first >= d->size) return PDCKPT_OK;
    wire_error w;
    memset(&w, 0, sizeof w);
    if (d->rank == first) {
        w.status = (int32_t)err->status;
        w.sys_errno = err->sys_errno;
        w.offset = err->offset;
        memcpy(w.source, err->source, sizeof w.source);
        memcpy(w.message, err->message, sizeof w.message);
    }
    rc = MPI_Ibcast(&w, (int)sizeof w, MPI_BYTE, first, d->comm, &req);
    if (rc != MPI_SUCCESS) return pdk_dist_mpi_fail(err, rc, "sharing an error");
    pdckpt_error  scratch = PDCKPT_ERROR_INIT;
    pdckpt_status st = pdk_dist_wait(d, 1, &req, "the failing rank's error", &scratch);
    if (st != PDCKPT_OK) {
        if (err->status == PDCKPT_OK) *err = scratch;
        return err->status;
    }
    apply_wire(&w, first, err);
    return err->status;
}

pdckpt_status pdk_dist_compare(pdk_dist *d, uint64_t value, bool *same, pdckpt_error *err) {
    uint64_t    mine[2] = {value, ~value}, max[2] = {0, 0};
    MPI_Request req;
    int         rc = MPI_Iallreduce(mine, max, 2, MPI_UINT64_T, MPI_MAX, d->comm, &req);
    if (rc != MPI_SUCCESS) return pdk_dist_mpi_fail(err, rc, "comparing arguments");
    PDK_TRY(pdk_dist_wait(d, 1, &req, "comparing arguments", err));
    *same = max[0] == ~max[1]; /* max == min */
    return PDCKPT_OK;
}

pdckpt_status pdk_dist_same(pdk_dist *d, uint64_t value, const char *what, pdckpt_error *err) {
    bool same;
    PDK_TRY(pdk_dist_compare(d, value, &same, err));
    if (!same)
        return pdk_fail(err, PDCKPT_ERR_MISMATCH, NULL, -1,
                        "expected the same %s on every rank, found different ones", what);
    return PDCKPT_OK;
}

pdckpt_status pdk_dist_bcast(pdk_dist *d, void *buf, size_t len, int root, pdckpt_error *err) {
    for (size_t done = 0; done < len;) {
        int         n = (int)(len - done < CHUNK ? len - done : CHUNK);
        MPI_Request req;
        int         rc = MPI_Ibcast((uint8_t *)buf + done, n, MPI_BYTE, root, d->comm, &req);
        if (rc != MPI_SUCCESS) return pdk_dist_mpi_fail(err, rc, "a broadcast");
        PDK_TRY(len > (1u << 16) ? pdk_dist_wait_data(d, 1, &req, "a broadcast", err)
                                 : pdk_dist_wait(d, 1, &req, "a broadcast", err));
        done += (size_t)n;
    }
    return PDCKPT_OK;
}

pdckpt_status pdk_dist_bcast_blob(pdk_dist *d, pdk_blob *b, int root, pdckpt_error *err) {
    uint64_t len = b->len;
    PDK_TRY(pdk_dist_bcast(d, &len, sizeof len, root, err));
    pdckpt_status st = PDCKPT_OK;
    if (d->rank != root) {
        pdk_blob_free(b);
        b->data = malloc(len ? (size_t)len : 1);
        if (!b->data)
            st = pdk_fail_nomem(err, "a broadcast buffer");
        else
            b->len = b->cap = (size_t)len;
    }
    PDK_TRY(pdk_dist_agree(d, st, err));
    return pdk_dist_bcast(d, b->data, (size_t)len, root, err);
}

static pdckpt_status gather_lengths(pdk_dist *d, uint64_t mine, size_t **offsets,
                                    pdckpt_error *err) {
    uint64_t *lens = calloc((size_t)d->size, sizeof *lens);
    *offsets = calloc((size_t)d->size + 1, sizeof **offsets);
    pdckpt_status st = lens && *offsets ? PDCKPT_OK : pdk_fail_nomem(err, "gather offsets");
    PDK_TRY(pdk_dist_agree(d, st, err));
    MPI_Request req;
    int         rc = MPI_Iallgather(&mine, 1, MPI_UINT64_T, lens, 1, MPI_UINT64_T, d->comm, &req);
    st = rc == MPI_SUCCESS ? pdk_dist_wait(d, 1, &req, "gathering sizes", err)
                           : pdk_dist_mpi_fail(err, rc, "gathering sizes");
    for (int r = 0; r < d->size && st == PDCKPT_OK; r++) {
        if (lens[r] > (uint64_t)INT32_MAX - (*offsets)[r])
            st = pdk_fail(err, PDCKPT_ERR_LIMIT, NULL, -1,
                          "expected less than 2 GiB of metadata from all ranks together");
        else
            (*offsets)[r + 1] = (*offsets)[r] + (size_t)lens[r];
    }
    free(lens);
    return st;
}

pdckpt_status pdk_dist_allgather(pdk_dist *d, const pdk_blob *mine, pdk_blob *all, size_t **offsets,
                                 pdckpt_error *err) {
    memset(all, 0, sizeof *all);
    *offsets = NULL;
    PDK_TRY(gather_lengths(d, mine->len, offsets, err));
    size_t total = (*offsets)[d->size];
    int   *counts = malloc((size_t)d->size * sizeof *counts);
    int   *displs = malloc((size_t)d->size * sizeof *displs);
    all->data = malloc(total ? total : 1);
    pdckpt_status st =
        counts && displs && all->data ? PDCKPT_OK : pdk_fail_nomem(err, "gathered metadata");
    for (int r = 0; r < d->size && st == PDCKPT_OK; r++) {
        counts[r] = (int)((*offsets)[r + 1] - (*offsets)[r]);
        displs[r] = (int)(*offsets)[r];
    }
    st = pdk_dist_agree(d, st, err);
    if (st == PDCKPT_OK) {
        all->len = all->cap = total;
        MPI_Request req;
        int rc = MPI_Iallgatherv(mine->data, (int)mine->len, MPI_BYTE, all->data, counts, displs,
                                 MPI_BYTE, d->comm, &req);
        st = rc == MPI_SUCCESS ? pdk_dist_wait_data(d, 1, &req, "gathering metadata", err)
                               : pdk_dist_mpi_fail(err, rc, "gathering metadata");
    }
    free(counts);
    free(displs);
    return st;
}

/* counts/displs for a v-collective over `offsets` (size + 1 entries, total < 2 GiB). */
static pdckpt_status v_counts(const pdk_dist *d, const size_t *offsets, int **counts, int **displs,
                              pdckpt_error *err) {
    *counts = malloc((size_t)d->size * sizeof **counts);
    *displs = malloc((size_t)d->size * sizeof **displs);
    if (!*counts || !*displs) return pdk_fail_nomem(err, "collective counts");
    for (int r = 0; r < d->size; r++) {
        if (offsets[r + 1] > (size_t)INT32_MAX)
            return pdk_fail(err, PDCKPT_ERR_LIMIT, NULL, -1,
                            "expected less than 2 GiB of descriptions from all ranks");
        (*counts)[r] = (int)(offsets[r + 1] - offsets[r]);
        (*displs)[r] = (int)offsets[r];
    }
    return PDCKPT_OK;
}

pdckpt_status pdk_dist_gather(pdk_dist *d, const pdk_blob *mine, int root, pdk_blob *all,
                              size_t **offsets, pdckpt_error *err) {
    memset(all, 0, sizeof *all);
    *offsets = calloc((size_t)d->size + 1, sizeof **offsets);
    uint64_t     *lens = calloc((size_t)d->size, sizeof *lens), len = mine->len;
    int          *counts = NULL, *displs = NULL;
    bool          me = d->rank == root;
    pdckpt_status st = *offsets && lens ? PDCKPT_OK : pdk_fail_nomem(err, "gather offsets");
    st = pdk_dist_agree(d, st, err);
    MPI_Request req;
    int         rc = MPI_SUCCESS;
    if (st == PDCKPT_OK)
        rc = MPI_Igather(&len, 1, MPI_UINT64_T, lens, 1, MPI_UINT64_T, root, d->comm, &req);
    if (st == PDCKPT_OK)
        st = rc == MPI_SUCCESS ? pdk_dist_wait(d, 1, &req, "gathering sizes", err)
                               : pdk_dist_mpi_fail(err, rc, "gathering sizes");
    for (int r = 0; me && r < d->size && st == PDCKPT_OK; r++)
        (*offsets)[r + 1] = (*offsets)[r] + (lens[r] > INT32_MAX ? (size_t)INT32_MAX + 1 : lens[r]);
    if (st == PDCKPT_OK && me) st = v_counts(d, *offsets, &counts, &displs, err);
    if (st == PDCKPT_OK && me && !(all->data = malloc((*offsets)[d->size] + 1)))
        st = pdk_fail_nomem(err, "gathered descriptions");
    st = pdk_dist_agree(d, st, err);
    if (st == PDCKPT_OK) {
        all->len = all->cap = me ? (*offsets)[d->size] : 0;
        rc = MPI_Igatherv(mine->data, (int)mine->len, MPI_BYTE, all->data, counts, displs, MPI_BYTE,
                          root, d->comm, &req);
        st = rc == MPI_SUCCESS ? pdk_dist_wait_data(d, 1, &req, "gathering descriptions", err)
                               : pdk_dist_mpi_fail(err, rc, "gathering descriptions");
    }
    free(lens), free(counts), free(displs);
    return st;
}

pdckpt_status pdk_dist_scatter(pdk_dist *d, const pdk_blob *all, const size_t *offsets, int root,
                               pdk_blob *mine, pdckpt_error *err) {
    memset(mine, 0, sizeof *mine);
    int          *counts = NULL, *displs = NULL, len = 0;
    bool          me = d->rank == root;
    pdckpt_status st = me ? v_counts(d, offsets, &counts, &displs, err) : PDCKPT_OK;
    st = pdk_dist_agree(d, st, err);
    MPI_Request req;
    int         rc = MPI_SUCCESS;
    if (st == PDCKPT_OK)
        rc = MPI_Iscatter(counts, 1, MPI_INT, &len, 1, MPI_INT, root, d->comm, &req);
    if (st == PDCKPT_OK)
        st = rc == MPI_SUCCESS ? pdk_dist_wait(d, 1, &req, "scattering sizes", err)
                               : pdk_dist_mpi_fail(err, rc, "scattering sizes");
    if (st == PDCKPT_OK && !(mine->data = malloc((size_t)len + 1)))
        st = pdk_fail_nomem(err, "a scattered list");
    st = pdk_dist_agree(d, st, err);
    if (st == PDCKPT_OK) {
        mine->len = mine->cap = (size_t)len;
        rc = MPI_Iscatterv(me ? all->data : NULL, counts, displs, MPI_BYTE, mine->data, (int)len,
                           MPI_BYTE, root, d->comm, &req);
        st = rc == MPI_SUCCESS ? pdk_dist_wait_data(d, 1, &req, "scattering lists", err)
                               : pdk_dist_mpi_fail(err, rc, "scattering lists");
    }
    free(counts), free(displs);
    return st;
}
