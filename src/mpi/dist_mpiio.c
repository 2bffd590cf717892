/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_mpiio.c — one combined file (spec binary-and-static-formats.md §3: concatenated tensor
 * streams in byte-wise name order, what save_combine writes) written by all ranks at once with
 * MPI-IO.  Ranks exchange only names and stream sizes; every rank computes the same layout and
 * writes its own tensors' streams at their offsets, produced by the core's own tensor writer
 * into a sink that forwards to MPI_File_write_at (tensor data goes straight from tensor memory).
 * The file is built under a temporary name, synced, closed and agreed on before the coordinator
 * renames it into place, so a failure anywhere leaves the previous file untouched.
 */
#include "dist_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WRITE_CHUNK (1u << 30)

typedef struct entry {
    char    *name;
    uint64_t size;  /* bytes of its tensor stream */
    uint64_t shape; /* hash of dtype and dims: duplicates must agree */
    int      rank;
    size_t   local;
    uint64_t offset; /* in the file */
    int      writer;
} entry;

typedef struct layout {
    entry   *entries; /* every rank's, then sorted by name */
    size_t   n;
    uint64_t total;
} layout;

/* ---- sizes: the core's tensor writer into a counting sink ---- */

static pdckpt_status count_write(void *self, const void *bytes, size_t len, pdckpt_error *err) {
    (void)bytes;
    (void)err;
    *(uint64_t *)self += len;
    return PDCKPT_OK;
}

static const pdckpt_sink_ops count_ops = {PDCKPT_SINK_OPS_VERSION, count_write, NULL, NULL};

static uint64_t shape_hash(const pdckpt_tensor_view *v) {
    uint64_t h = pdk_hash_bytes(0, &v->dtype, sizeof v->dtype);
    return pdk_hash_bytes(h, v->dims, (size_t)v->n_dims * sizeof *v->dims);
}

static pdckpt_status describe(const pdckpt_flat *l, const pdckpt_save_options *save, pdk_blob *out,
                              pdckpt_error *err) {
    pdckpt_save_options o = *save;
    o.format = PDCKPT_FORMAT_TENSOR;
    pdk_blob_u64(out, l->len);
    for (size_t i = 0; i < l->len; i++) {
        uint64_t           size = 0;
        pdckpt_tensor_view v;
        pdckpt_tensor_get(l->entries[i].tensor, &v);
        pdckpt_status st = pdk_save_callback(l->entries[i].tensor, &count_ops, &size, &o, err);
        if (st != PDCKPT_OK) {
            pdk_error_prefix(err, "tensor '%s': ", l->entries[i].name);
            return st;
        }
        pdk_blob_str(out, l->entries[i].name, strlen(l->entries[i].name));
        pdk_blob_u64(out, size);
        pdk_blob_u64(out, shape_hash(&v));
    }
    return pdk_blob_check(out, err, "tensor sizes");
}

/* ---- the layout every rank computes ---- */

static pdckpt_status read_entries(const pdk_blob *all, const size_t *offs, int size, layout *lay,
                                  pdckpt_error *err) {
    size_t cap = 0;
    for (int r = 0; r < size; r++) {
        char source[64];
        snprintf(source, sizeof source, "rank %d's tensor sizes", r);
        pdk_rd   rd = {all->data + offs[r], offs[r + 1] - offs[r], 0, source, err};
        uint64_t n;
        PDK_TRY(pdk_rd_count(&rd, &n, 24, "tensors"));
        if (lay->n + n > cap) {
            cap = (lay->n + (size_t)n) * 2;
            entry *grown = realloc(lay->entries, cap * sizeof *grown);
            if (!grown) return pdk_fail_nomem(err, "the file layout");
            lay->entries = grown;
        }
        for (uint64_t i = 0; i < n; i++) {
            entry *e = &lay->entries[lay->n++];
            memset(e, 0, sizeof *e);
            e->rank = r;
            e->local = (size_t)i;
            e->writer = -1;
            PDK_TRY(pdk_rd_strdup(&rd, &e->name, "a tensor name"));
            PDK_TRY(pdk_rd_u64(&rd, &e->size, "a stream size"));
            PDK_TRY(pdk_rd_u64(&rd, &e->shape, "a shape hash"));
        }
    }
    return PDCKPT_OK;
}

static int cmp_entry(const void *a, const void *b) {
    const entry *x = a, *y = b;
    int          c = strcmp(x->name, y->name);
    return c ? c : x->rank - y->rank;
}

/* Names sorted byte-wise; a name on several ranks is written once, by the least loaded. */
static pdckpt_status plan_layout(layout *lay, int size, pdckpt_error *err) {
    if (lay->n > 1) qsort(lay->entries, lay->n, sizeof *lay->entries, cmp_entry);
    uint64_t *load = calloc(size > 0 ? (size_t)size : 1, sizeof *load);
    if (!load) return pdk_fail_nomem(err, "the file layout");
    for (size_t i = 0, j; i < lay->n; i = j) {
        for (j = i + 1; j < lay->n && strcmp(lay->entries[j].name, lay->entries[i].name) == 0; j++)
            if (lay->entries[j].shape != lay->entries[i].shape ||
                lay->entries[j].size != lay->entries[i].size) {
                free(load);
                return pdk_fail(err, PDCKPT_ERR_MISMATCH, NULL, -1,
                                "tensor '%s' differs in dtype or shape between ranks %d and %d",
                                lay->entries[i].name, lay->entries[i].rank, lay->entries[j].rank);
            }
        if (j == i + 1) load[lay->entries[i].rank] += lay->entries[i].size;
    }
    lay->total = 0;
    for (size_t i = 0, j; i < lay->n; i = j) {
        int best = lay->entries[i].rank;
        for (j = i + 1; j < lay->n && strcmp(lay->entries[j].name, lay->entries[i].name) == 0; j++)
            if (load[lay->entries[j].rank] < load[best]) best = lay->entries[j].rank;
        if (j > i + 1) load[best] += lay->entries[i].size;
        for (size_t k = i; k < j; k++) {
            lay->entries[k].writer = best;
            lay->entries[k].offset = lay->total;
        }
        lay->total += lay->entries[i].size;
    }
    free(load);
    if (lay->n == 0)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "a combined file needs at least one tensor, found none on any rank");
    return PDCKPT_OK;
}

static void layout_free(layout *lay) {
    for (size_t i = 0; i < lay->n; i++) free(lay->entries[i].name);
    free(lay->entries);
    memset(lay, 0, sizeof *lay);
}

/* ---- writing: the tensor writer into a sink that writes at the stream's offset ---- */

pdckpt_status pdk_mpiio_write_at(MPI_File fh, uint64_t at, const void *bytes, size_t len,
                                 pdckpt_error *err) {
    for (size_t done = 0; done < len;) {
        int        n = (int)(len - done < WRITE_CHUNK ? len - done : WRITE_CHUNK);
        MPI_Status status;
        int rc = MPI_File_write_at(fh, (MPI_Offset)(at + done), (const uint8_t *)bytes + done, n,
                                   MPI_BYTE, &status);
        int wrote = 0;
        if (rc == MPI_SUCCESS) MPI_Get_count(&status, MPI_BYTE, &wrote);
        if (rc != MPI_SUCCESS) return pdk_dist_mpi_fail(err, rc, "MPI_File_write_at");
        if (wrote != n) return pdk_fail(err, PDCKPT_ERR_IO, NULL, -1, "short MPI-IO write");
        done += (size_t)n;
    }
    return PDCKPT_OK;
}

typedef struct file_sink {
    MPI_File fh;
    uint64_t at;
} file_sink;

static pdckpt_status file_write(void *self, const void *bytes, size_t len, pdckpt_error *err) {
    file_sink *fs = self;
    PDK_TRY(pdk_mpiio_write_at(fs->fh, fs->at, bytes, len, err));
    fs->at += len;
    return PDCKPT_OK;
}

static const pdckpt_sink_ops file_ops = {PDCKPT_SINK_OPS_VERSION, file_write, NULL, NULL};

typedef struct combined_job {
    const pdk_dist            *d;
    const layout              *lay;
    const pdckpt_flat         *l;
    const pdckpt_save_options *save;
} combined_job;

/* This rank's tensor streams, each at its offset. */
static pdckpt_status write_mine(MPI_File fh, void *ctx, pdckpt_error *err) {
    const combined_job *job = ctx;
    pdckpt_save_options o = *job->save;
    o.format = PDCKPT_FORMAT_TENSOR;
    for (size_t i = 0; i < job->lay->n; i++) {
        const entry *e = &job->lay->entries[i];
        if (e->rank != job->d->rank || e->writer != job->d->rank) continue;
        file_sink fs = {fh, e->offset};
        PDK_TRY(pdk_save_callback(job->l->entries[e->local].tensor, &file_ops, &fs, &o, err));
        if (fs.at != e->offset + e->size)
            return pdk_fail(err, PDCKPT_ERR_IO, NULL, -1,
                            "tensor '%s': wrote %llu bytes, planned %llu", e->name,
                            (unsigned long long)(fs.at - e->offset), (unsigned long long)e->size);
    }
    return PDCKPT_OK;
}

/* Collective: every rank opens, writes its part, syncs and closes; all agree on the result. */
static pdckpt_status write_file(pdk_dist *d, const char *temp, bool durable, pdk_mpiio_writer fn,
                                void *ctx, pdckpt_error *err) {
    MPI_File fh;
    int      rc = MPI_File_open(d->comm, temp, MPI_MODE_CREATE | MPI_MODE_EXCL | MPI_MODE_WRONLY,
                                MPI_INFO_NULL, &fh);
    pdckpt_status st = rc == MPI_SUCCESS ? PDCKPT_OK : pdk_dist_mpi_fail(err, rc, "MPI_File_open");
    st = pdk_dist_agree(d, st, err);
    if (st != PDCKPT_OK) return st;
    MPI_File_set_errhandler(fh, MPI_ERRORS_RETURN);
    st = fn(fh, ctx, err);
    if (durable) { /* collective: every rank calls it, whatever happened above */
        rc = MPI_File_sync(fh);
        if (rc != MPI_SUCCESS && st == PDCKPT_OK) st = pdk_dist_mpi_fail(err, rc, "MPI_File_sync");
    }
    rc = MPI_File_close(&fh);
    if (rc != MPI_SUCCESS && st == PDCKPT_OK) st = pdk_dist_mpi_fail(err, rc, "MPI_File_close");
    return pdk_dist_agree(d, st, err);
}

pdckpt_status pdk_mpiio_check_target(const char *path, const pdckpt_mpi_options *o, int size,
                                     pdckpt_error *err) {
    if (!path) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "path is NULL");
    if (o->coordinator < 0 || o->coordinator >= size)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "coordinator %d is not in the job",
                        o->coordinator);
    return PDCKPT_OK;
}

static pdckpt_status local_checks(const pdk_dist *d, const pdckpt_value *local, const char *path,
                                  const pdckpt_mpi_options *o, pdckpt_flat *l, pdckpt_error *err) {
    PDK_TRY(pdk_mpiio_check_target(path, o, d->size, err));
    if (pdckpt_value_kind(local) != PDCKPT_KIND_DICT)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "expected a dict of this rank's tensors, found %s",
                        local ? pdckpt_kind_name(pdckpt_value_kind(local)) : "NULL");
    unsigned how =
        PDCKPT_FLATTEN_NESTED | (o->save.skip_non_tensors ? PDCKPT_FLATTEN_SKIP_NON_TENSORS : 0);
    return pdckpt_value_flatten(local, how, l, err);
}

static pdckpt_status plan_all(pdk_dist *d, const pdk_blob *mine, layout *lay, pdckpt_error *err) {
    pdk_blob      all = {0};
    size_t       *offs = NULL;
    pdckpt_status st = pdk_dist_allgather(d, mine, &all, &offs, err);
    if (st == PDCKPT_OK) st = read_entries(&all, offs, d->size, lay, err);
    if (st == PDCKPT_OK) st = plan_layout(lay, d->size, err);
    free(offs);
    pdk_blob_free(&all);
    return st;
}

/* Temporaries that killed writes of this file left behind. */
static void sweep_beside(const char *path) {
    char        dir[4200], base[256];
    const char *b;
    size_t      blen;
    pdk_split_path(path, dir, sizeof dir, &b, &blen);
    snprintf(base, sizeof base, "%.*s", (int)blen, b);
    pdk_sweep_temps(dir, base);
}

pdckpt_status pdk_mpiio_commit(pdk_dist *d, const char *path, const pdckpt_mpi_options *o,
                               pdk_mpiio_writer fn, void *ctx, pdckpt_error *err) {
    uint64_t      tag = pdk_random_tag();
    char          temp[4200] = "";
    pdckpt_status st = pdk_dist_same(d,
                                     pdk_hash_bytes(pdk_hash_bytes(0, path, strlen(path)),
                                                    &o->coordinator, sizeof o->coordinator),
                                     "path and coordinator", err);
    if (st == PDCKPT_OK && d->rank == o->coordinator) sweep_beside(path);
    if (st == PDCKPT_OK) st = pdk_dist_bcast(d, &tag, sizeof tag, o->coordinator, err);
    if (st == PDCKPT_OK)
        st = pdk_dist_agree(d, pdk_temp_path_tagged(path, tag, temp, sizeof temp, err), err);
    if (st != PDCKPT_OK) return st;
    st = write_file(d, temp, o->save.durable, fn, ctx, err);
    pdckpt_status renamed = PDCKPT_OK;
    if (d->rank == o->coordinator) {
        if (st == PDCKPT_OK) renamed = pdk_rename_replace_durable(temp, path, o->save.durable, err);
        if (st != PDCKPT_OK || renamed != PDCKPT_OK) unlink(temp);
    }
    return st == PDCKPT_OK ? pdk_dist_agree(d, renamed, err) : st;
}

pdckpt_status pdckpt_mpi_save_combined(MPI_Comm comm, const pdckpt_value *local, const char *path,
                                       const pdckpt_mpi_options *opts, pdckpt_error *err) {
    pdckpt_error scratch = PDCKPT_ERROR_INIT;
    opts = pdk_mpi_begin(opts, &err, &scratch);
    pdckpt_format format = opts->save.format;
    if (format == PDCKPT_FORMAT_AUTO && path) format = pdckpt_format_from_path(path);
    if (format == PDCKPT_FORMAT_PICKLE) return pdk_mpiio_save_pickle(comm, local, path, opts, err);
    pdk_dist    d;
    pdckpt_flat l = {0};
    pdk_blob    mine = {0};
    layout      lay = {0};
    PDK_TRY(pdk_dist_open(comm, opts, &d, err));
    pdckpt_status st = local_checks(&d, local, path, opts, &l, err);
    if (st == PDCKPT_OK) st = describe(&l, &opts->save, &mine, err);
    st = pdk_dist_agree(&d, st, err);
    if (st == PDCKPT_OK) st = pdk_dist_agree(&d, plan_all(&d, &mine, &lay, err), err);
    combined_job job = {&d, &lay, &l, &opts->save};
    if (st == PDCKPT_OK) st = pdk_mpiio_commit(&d, path, opts, write_mine, &job, err);
    layout_free(&lay);
    pdk_blob_free(&mine);
    pdckpt_flat_free(&l);
    pdk_dist_close(&d);
    return st;
}
