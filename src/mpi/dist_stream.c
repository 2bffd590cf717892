/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_stream.c — the streamed half of a gather to one writing rank (issue 20: the writer's
 * memory bounded by the group size, not by the merged state).  The merged tree holds a
 * placeholder for every large received tensor; its data pointer lies in a reserved read-only
 * range that is never touched (address space, not memory).  The format writers hand a large
 * payload to the sink whole, from the tensor's memory (pickle protocol 3/4 outside frames,
 * safetensors and tensor streams as they are), so the sink below recognises a placeholder's
 * address, asks the rank that holds the tensor for those bytes in chunks (two in flight, so
 * receiving overlaps writing) and writes each chunk on.  A placeholder whose bytes do not all
 * pass through the sink fails the save: nothing is guessed, no zero is ever written as data.
 * The senders answer requests straight from tensor memory until the writer says it is done.
 */
#include "dist_gather.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define TAG_REQ   0x7ff0
#define TAG_DATA  0x7ff1
#define DONE      UINT64_MAX
#define MAX_CHUNK (UINT64_C(4) << 20)

void pdk_stream_init(pdk_stream *s, uint64_t min_bytes, uint64_t group_bytes) {
    memset(s, 0, sizeof *s);
    s->min_bytes = min_bytes;
    uint64_t half = group_bytes / 2;
    s->chunk = half < MAX_CHUNK ? half : MAX_CHUNK;
    if (s->chunk < 512) s->chunk = 512;
}

void pdk_stream_free(pdk_stream *s) {
    if (s->base) munmap(s->base, s->map_len);
    free(s->items);
    free(s->send_data);
    free(s->send_bytes);
    memset(s, 0, sizeof *s);
}

bool pdk_stream_takes(const pdk_stream *s, uint64_t n_bytes) {
    return s->min_bytes > 0 && n_bytes >= s->min_bytes;
}

pdckpt_status pdk_stream_reserve(pdk_stream *s, uint64_t total, pdckpt_error *err) {
    if (total == 0) return PDCKPT_OK;
    if (total > SIZE_MAX / 2)
        return pdk_fail(err, PDCKPT_ERR_LIMIT, NULL, -1, "the gathered state is too large");
    void *m =
        mmap(NULL, (size_t)total, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return pdk_fail_nomem(err, "the placeholders' address range");
    s->base = m;
    s->map_len = (size_t)total;
    return PDCKPT_OK;
}

pdckpt_status pdk_stream_placeholder(pdk_stream *s, int src, uint64_t ordinal,
                                     const pdk_tensor_desc *desc, const pdckpt_allocator *a,
                                     pdckpt_value **out, pdckpt_error *err) {
    if (desc->n_bytes > s->map_len - s->used)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, NULL, -1, "a streamed tensor outside its range");
    if (s->n_items == s->cap_items) {
        size_t           cap = s->cap_items ? 2 * s->cap_items : 64;
        pdk_stream_item *grown = realloc(s->items, cap * sizeof *grown);
        if (!grown) return pdk_fail_nomem(err, "the stream list");
        s->items = grown;
        s->cap_items = cap;
    }
    const uint8_t *addr = s->base + s->used;
    PDK_TRY(pdk_tensor_placeholder(desc, addr, a, out, err));
    s->items[s->n_items++] = (pdk_stream_item){addr, desc->n_bytes, 0, src, ordinal};
    s->used += (size_t)desc->n_bytes;
    return PDCKPT_OK;
}

/* ---- the writer ---- */

typedef struct slot {
    uint64_t    req[4]; /* ordinal, offset, length, requesting rank */
    MPI_Request reqs[2];
    uint8_t    *buf;
    uint64_t    len;
    bool        busy; /* requests posted and not yet completed: buf may still be written */
} slot;

typedef struct stream_sink {
    pdk_dist              *d;
    pdk_stream            *s;
    const pdckpt_sink_ops *out_ops;
    void                  *out_self;
    slot                   slots[2];
} stream_sink;

static pdk_stream_item *find_item(pdk_stream *s, const uint8_t *b) {
    size_t lo = 0, hi = s->n_items;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->items[mid].addr + s->items[mid].n_bytes <= b)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->n_items && s->items[lo].addr <= b ? &s->items[lo] : NULL;
}

static pdckpt_status post_pull(stream_sink *ss, slot *sl, const pdk_stream_item *it, uint64_t off,
                               uint64_t len, pdckpt_error *err) {
    pdk_dist *d = ss->d;
    sl->req[0] = it->ordinal, sl->req[1] = off, sl->req[2] = len, sl->req[3] = (uint64_t)d->rank;
    sl->len = len;
    sl->reqs[0] = sl->reqs[1] = MPI_REQUEST_NULL;
    int rc = MPI_Irecv(sl->buf, (int)len, MPI_BYTE, it->src, TAG_DATA, d->comm, &sl->reqs[1]);
    sl->busy = rc == MPI_SUCCESS;
    if (rc == MPI_SUCCESS)
        rc = MPI_Isend(sl->req, 4, MPI_UINT64_T, it->src, TAG_REQ, d->comm, &sl->reqs[0]);
    return rc == MPI_SUCCESS ? PDCKPT_OK : pdk_dist_mpi_fail(err, rc, "asking for a tensor");
}

/* Bytes [off, off + len) of a placeholder: pulled chunk by chunk, two chunks in flight. */
static pdckpt_status pull(stream_sink *ss, pdk_stream_item *it, uint64_t off, uint64_t len,
                          pdckpt_error *err) {
    uint64_t chunk = ss->s->chunk, n = (len + chunk - 1) / chunk;
    for (uint64_t c = 0; c < n && c < 2; c++)
        PDK_TRY(post_pull(ss, &ss->slots[c], it, off + c * chunk,
                          len - c * chunk < chunk ? len - c * chunk : chunk, err));
    for (uint64_t c = 0; c < n; c++) {
        slot *sl = &ss->slots[c % 2];
        PDK_TRY(pdk_dist_wait_data(ss->d, 2, sl->reqs, "a streamed tensor", err));
        sl->busy = false;
        PDK_TRY(ss->out_ops->write(ss->out_self, sl->buf, (size_t)sl->len, err));
        uint64_t next = c + 2;
        if (next < n)
            PDK_TRY(post_pull(ss, sl, it, off + next * chunk,
                              len - next * chunk < chunk ? len - next * chunk : chunk, err));
    }
    it->got += len;
    return PDCKPT_OK;
}

static pdckpt_status sink_write(void *self, const void *bytes, size_t len, pdckpt_error *err) {
    stream_sink   *ss = self;
    const uint8_t *b = bytes;
    pdk_stream    *s = ss->s;
    if (!s->base || b < s->base || b >= s->base + s->map_len)
        return ss->out_ops->write(ss->out_self, bytes, len, err);
    pdk_stream_item *it = find_item(s, b);
    uint64_t         off = it ? (uint64_t)(b - it->addr) : 0;
    if (!it || len > it->n_bytes - off)
        return pdk_fail(err, PDCKPT_ERR_UNSUPPORTED, NULL, -1,
                        "the format writer handed over a streamed tensor's bytes in an "
                        "unexpected way; cannot place them");
    return pull(ss, it, off, len, err);
}

static pdckpt_status sink_commit(void *self, pdckpt_error *err) {
    stream_sink *ss = self;
    for (size_t i = 0; i < ss->s->n_items; i++)
        if (ss->s->items[i].got != ss->s->items[i].n_bytes)
            return pdk_fail(err, PDCKPT_ERR_UNSUPPORTED, NULL, -1,
                            "the format writer did not write a streamed tensor's bytes "
                            "straight from its memory (%llu of %llu bytes); gather without "
                            "streaming (another format or protocol)",
                            (unsigned long long)ss->s->items[i].got,
                            (unsigned long long)ss->s->items[i].n_bytes);
    return ss->out_ops->commit ? ss->out_ops->commit(ss->out_self, err) : PDCKPT_OK;
}

static void sink_abort(void *self) {
    stream_sink *ss = self;
    if (ss->out_ops->abort) ss->out_ops->abort(ss->out_self);
}

static const pdckpt_sink_ops stream_ops = {PDCKPT_SINK_OPS_VERSION, sink_write, sink_commit,
                                           sink_abort};

/* Every other rank stops serving (after a failure too: nobody waits for a timeout). */
static pdckpt_status release(pdk_dist *d, pdckpt_error *err) {
    if (d->broken) return PDCKPT_ERR_MPI;
    static const uint64_t done[4] = {DONE, 0, 0, 0};
    MPI_Request          *reqs = malloc((size_t)d->size * sizeof *reqs);
    if (!reqs) return pdk_fail_nomem(err, "release messages");
    int n = 0, rc = MPI_SUCCESS;
    for (int r = 0; r < d->size && rc == MPI_SUCCESS; r++)
        if (r != d->rank) rc = MPI_Isend(done, 4, MPI_UINT64_T, r, TAG_REQ, d->comm, &reqs[n++]);
    pdckpt_status st = rc == MPI_SUCCESS ? pdk_dist_wait(d, n, reqs, "releasing the senders", err)
                                         : pdk_dist_mpi_fail(err, rc, "releasing the senders");
    free(reqs);
    return st;
}

pdckpt_status pdk_stream_write(pdk_dist *d, pdk_stream *s, const pdckpt_value *tree,
                               const pdckpt_save_options *save, const pdckpt_sink_ops *out_ops,
                               void *out_self, pdckpt_error *err) {
    stream_sink   ss = {d, s, out_ops, out_self, {{.busy = false}, {.busy = false}}};
    pdckpt_status st = PDCKPT_OK;
    for (int i = 0; i < 2 && st == PDCKPT_OK; i++)
        if (!(ss.slots[i].buf = malloc((size_t)s->chunk)))
            st = pdk_fail_nomem(err, "a stream buffer");
    if (st == PDCKPT_OK)
        st = pdk_save_callback(tree, &stream_ops, &ss, save, err);
    else if (out_ops->abort)
        out_ops->abort(out_self);
    pdckpt_error scratch = PDCKPT_ERROR_INIT;
    for (int i = 0; i < 2; i++) /* a failure left a pull in flight: let it land first */
        if (ss.slots[i].busy && !d->broken &&
            pdk_dist_wait_data(d, 2, ss.slots[i].reqs, "a streamed tensor", &scratch) == PDCKPT_OK)
            ss.slots[i].busy = false;
    for (int i = 0; i < 2; i++)
        if (!ss.slots[i].busy) free(ss.slots[i].buf); /* else MPI may still write into it */
    pdckpt_status rel = release(d, st == PDCKPT_OK ? err : &scratch);
    return st != PDCKPT_OK ? st : rel;
}

void pdk_stream_release(pdk_dist *d) {
    pdckpt_error scratch = PDCKPT_ERROR_INIT;
    release(d, &scratch);
}

/* ---- the senders ---- */

typedef struct pending {
    MPI_Request reqs[8];
    int         n;
} pending;

static pdckpt_status answer(pdk_dist *d, const pdk_stream *s, const uint64_t *req, pending *p,
                            pdckpt_error *err) {
    uint64_t o = req[0], off = req[1], len = req[2], to = req[3];
    if (o >= s->n_send || off > s->send_bytes[o] || len > s->send_bytes[o] - off ||
        len > (uint64_t)INT32_MAX || to >= (uint64_t)d->size)
        return pdk_fail(err, PDCKPT_ERR_MPI, NULL, -1,
                        "the writer asked for bytes this rank does not hold (tensor %llu)",
                        (unsigned long long)o);
    if (p->n == 8) {
        PDK_TRY(pdk_dist_wait_data(d, p->n, p->reqs, "sending a streamed tensor", err));
        p->n = 0;
    }
    int rc = MPI_Isend((const uint8_t *)s->send_data[o] + off, (int)len, MPI_BYTE, (int)to,
                       TAG_DATA, d->comm, &p->reqs[p->n]);
    if (rc != MPI_SUCCESS) return pdk_dist_mpi_fail(err, rc, "sending a streamed tensor");
    p->n++;
    return PDCKPT_OK;
}

pdckpt_status pdk_stream_serve(pdk_dist *d, const pdk_stream *s, pdckpt_error *err) {
    pending       p = {.n = 0};
    pdckpt_status st = PDCKPT_OK;
    for (;;) {
        uint64_t    req[4];
        MPI_Request r;
        int         rc = MPI_Irecv(req, 4, MPI_UINT64_T, MPI_ANY_SOURCE, TAG_REQ, d->comm, &r);
        st = rc == MPI_SUCCESS ? pdk_dist_wait(d, 1, &r, "the writer's requests", err)
                               : pdk_dist_mpi_fail(err, rc, "waiting for the writer");
        if (st != PDCKPT_OK || req[0] == DONE) break;
        if ((st = answer(d, s, req, &p, err)) != PDCKPT_OK) break;
    }
    pdckpt_status sent = pdk_dist_wait_data(d, p.n, p.reqs, "sending a streamed tensor", err);
    return st != PDCKPT_OK ? st : sent;
}

/* ---- a plain file as the output ---- */

pdckpt_status pdk_file_out_open(pdk_file_out *f, const char *path, bool durable,
                                pdckpt_error *err) {
    f->path = path;
    f->durable = durable;
    f->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (f->fd < 0) return pdk_fail_sys(err, errno, path, "cannot create the file");
    return PDCKPT_OK;
}

static pdckpt_status file_write(void *self, const void *bytes, size_t len, pdckpt_error *err) {
    pdk_file_out  *f = self;
    const uint8_t *b = bytes;
    while (len > 0) {
        ssize_t n = write(f->fd, b, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return pdk_fail_sys(err, n < 0 ? errno : EIO, f->path, "cannot write");
        b += n;
        len -= (size_t)n;
    }
    return PDCKPT_OK;
}

static pdckpt_status file_commit(void *self, pdckpt_error *err) {
    pdk_file_out *f = self;
    int           failed = f->durable && fsync(f->fd) != 0 ? errno : 0;
    if (close(f->fd) != 0 && !failed) failed = errno;
    f->fd = -1;
    if (!failed) return PDCKPT_OK;
    return pdk_fail_sys(err, failed, f->path, "cannot sync the file");
}

static void file_abort(void *self) {
    pdk_file_out *f = self;
    if (f->fd >= 0) close(f->fd);
    if (f->fd != -2) unlink(f->path); /* once: the name may be taken again afterwards */
    f->fd = -2;
}

const pdckpt_sink_ops pdk_file_out_ops = {PDCKPT_SINK_OPS_VERSION, file_write, file_commit,
                                          file_abort};
