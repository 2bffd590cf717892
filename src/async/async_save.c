/* SPDX-License-Identifier: Apache-2.0 */
/*
 * async_save.c — asynchronous saves (issue 7): the caller's pause is one pass of memcpy into a
 * reusable staging buffer plus a copy of the (small) tree structure; a persistent worker thread
 * then writes the snapshot through the ordinary save path, so the file is exactly what a
 * synchronous save would write, atomically and durably.
 */
#include "../formats/pdk_format.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct pdckpt_async_saver {
    pdckpt_save_options    opts;
    pthread_t              thread;
    pthread_mutex_t        mu;
    pthread_cond_t         cv;
    bool                   has_job, stop;
    pdckpt_value          *snapshot; /* job: what to write */
    char                  *path;
    const pdckpt_sink_ops *sink_ops;
    void                  *sink_self;
    pdckpt_status          status; /* outcome of the last job */
    pdckpt_error           error;
    pdckpt_buffer         *staging; /* reused while big enough */
    size_t                 staging_size;
};

#define STAGE_ALIGN 64

static size_t stage_round(uint64_t n) {
    return (size_t)((n + STAGE_ALIGN - 1) & ~(uint64_t)(STAGE_ALIGN - 1));
}

static int sum_tensor_bytes(void *ctx, const pdckpt_path_step *p, size_t d,
                            const pdckpt_value *leaf) {
    (void)p;
    (void)d;
    pdckpt_tensor_view v;
    if (pdckpt_tensor_get_memory(leaf, &v, NULL)) *(uint64_t *)ctx += stage_round(v.n_bytes);
    return 0;
}

typedef struct copier {
    const pdckpt_allocator *alloc;
    pdckpt_buffer          *staging;
    uint8_t                *base;
    size_t                  used;
    pdckpt_error           *err;
} copier;

static pdckpt_value *copy_value(copier *c, const pdckpt_value *v, int depth);

static pdckpt_value *copy_tensor(copier *c, const pdckpt_value *v) {
    pdckpt_tensor_view
         t; /* the memory as it is: a Fortran-order snapshot writes paddle.save's bytes */
    bool fortran = false;
    pdckpt_tensor_get_memory(v, &t, &fortran);
    uint8_t *dst = c->base + c->used;
    if (t.n_bytes) memcpy(dst, t.data, (size_t)t.n_bytes);
    c->used += stage_round(t.n_bytes);
    pdckpt_value *out = NULL;
    if (pdckpt_tensor_new_in_buffer(c->alloc, t.dtype, t.n_dims, t.dims, c->staging, dst, &out,
                                    c->err) != PDCKPT_OK)
        return NULL;
    if ((fortran && pdckpt_tensor_set_fortran(out, c->err) != PDCKPT_OK) ||
        (t.name && pdckpt_tensor_set_name(out, t.name, c->err) != PDCKPT_OK) ||
        (t.n_lod_levels &&
         pdckpt_tensor_set_lod(out, t.n_lod_levels, t.lod, t.lod_lens, c->err) != PDCKPT_OK)) {
        pdckpt_value_free(out);
        return NULL;
    }
    return out;
}

static pdckpt_value *copy_container(copier *c, const pdckpt_value *v, int depth) {
    pdckpt_kind   kind = pdckpt_value_kind(v);
    pdckpt_value *out = pdckpt_value_new_container(c->alloc, kind);
    if (!out) return NULL;
    for (size_t i = 0; i < pdckpt_value_len(v); i++) {
        pdckpt_value *item = copy_value(c, pdckpt_value_at(v, i), depth + 1);
        pdckpt_status st = PDCKPT_ERR_NOMEM;
        if (item && kind == PDCKPT_KIND_DICT) {
            pdckpt_value *key = copy_value(c, pdckpt_dict_key_at(v, i), depth + 1);
            st =
                key ? pdckpt_dict_set_value(out, key, item, c->err) : (pdckpt_value_free(item), st);
        } else if (item) {
            st = pdckpt_value_append(out, item, c->err);
        }
        if (st != PDCKPT_OK) {
            pdckpt_value_free(out);
            return NULL;
        }
    }
    return out;
}

static pdckpt_value *copy_object(copier *c, const pdckpt_value *v, int depth) {
    const pdckpt_value *parts[3] = {pdckpt_object_args(v), pdckpt_object_state(v),
                                    pdckpt_object_items(v)};
    pdckpt_value       *copies[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++)
        if (parts[i] && !(copies[i] = copy_value(c, parts[i], depth + 1))) {
            for (int j = 0; j < i; j++) pdckpt_value_free(copies[j]);
            return NULL;
        }
    pdckpt_value *out =
        pdckpt_value_new_object(c->alloc, pdckpt_object_kind_of(v), pdckpt_object_module(v),
                                pdckpt_object_name(v), copies[0], copies[1]);
    if (out && copies[2] && pdckpt_object_set_items(out, copies[2], c->err) != PDCKPT_OK) {
        pdckpt_value_free(out);
        return NULL;
    }
    if (!out) pdckpt_value_free(copies[2]);
    return out;
}

static pdckpt_value *copy_value(copier *c, const pdckpt_value *v, int depth) {
    if (depth > PDCKPT_MAX_WALK_DEPTH) return NULL;
    const pdckpt_allocator *a = c->alloc;
    size_t                  len;
    const void             *bytes;
    bool                    b;
    int64_t                 i;
    double                  f;
    switch (pdckpt_value_kind(v)) {
    case PDCKPT_KIND_NONE: return pdckpt_value_new_none(a);
    case PDCKPT_KIND_BOOL: pdckpt_value_get_bool(v, &b); return pdckpt_value_new_bool(a, b);
    case PDCKPT_KIND_INT: pdckpt_value_get_int(v, &i); return pdckpt_value_new_int(a, i);
    case PDCKPT_KIND_FLOAT: pdckpt_value_get_float(v, &f); return pdckpt_value_new_float(a, f);
    case PDCKPT_KIND_STRING:
        bytes = pdckpt_value_get_string(v, &len);
        return pdckpt_value_new_string(a, bytes, len);
    case PDCKPT_KIND_BYTES:
        bytes = pdckpt_value_get_bytes(v, &len);
        return pdckpt_value_new_bytes(a, bytes, len);
    case PDCKPT_KIND_TENSOR: return copy_tensor(c, v);
    case PDCKPT_KIND_OBJECT: return copy_object(c, v, depth);
    default: return copy_container(c, v, depth);
    }
}

static void *worker(void *arg) {
    pdckpt_async_saver *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->has_job && !s->stop) pthread_cond_wait(&s->cv, &s->mu);
        if (!s->has_job) break;
        pdckpt_value *snapshot = s->snapshot;
        pthread_mutex_unlock(&s->mu);
        pdckpt_error  err = PDCKPT_ERROR_INIT;
        pdckpt_status st =
            s->sink_ops ? pdk_save_callback(snapshot, s->sink_ops, s->sink_self, &s->opts, &err)
                        : pdk_save_path(snapshot, s->path, &s->opts, &err);
        pdckpt_value_free(snapshot); /* drops the staging references before we report done */
        pthread_mutex_lock(&s->mu);
        s->status = st;
        s->error = err;
        s->snapshot = NULL;
        s->has_job = false;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

pdckpt_status pdckpt_async_saver_new(const pdckpt_save_options *opts, pdckpt_async_saver **out,
                                     pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!out) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "out is NULL");
    pdckpt_save_options taken;
    PDK_TRY(pdk_save_options_take(opts, &taken, err));
    pdckpt_async_saver *s = pdk_calloc(taken.allocator, 1, sizeof *s);
    if (!s) return pdk_fail_nomem(err, "async saver");
    s->opts = taken;
    s->opts.progress = NULL; /* the caller's callback must not run on our thread */
    pdk_error_reset(&s->error);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->thread, NULL, worker, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        pdk_free(taken.allocator, s, sizeof *s);
        return pdk_fail(err, PDCKPT_ERR_NOMEM, NULL, -1, "cannot start the async save thread");
    }
    *out = s;
    return PDCKPT_OK;
}

/* Waits for the job in flight; returns its status and copies its error.  Lock held by caller. */
static pdckpt_status wait_locked(pdckpt_async_saver *s, pdckpt_error *err) {
    while (s->has_job) pthread_cond_wait(&s->cv, &s->mu);
    pdckpt_status st = s->status;
    if (st != PDCKPT_OK && err) *err = s->error;
    s->status = PDCKPT_OK; /* a failure is reported once */
    pdk_error_reset(&s->error);
    return st;
}

pdckpt_status pdckpt_async_wait(pdckpt_async_saver *saver, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!saver) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "saver is NULL");
    pthread_mutex_lock(&saver->mu);
    pdckpt_status st = wait_locked(saver, err);
    pthread_mutex_unlock(&saver->mu);
    return st;
}

/* Makes sure the staging buffer holds `need` bytes and nobody else uses it. */
static pdckpt_status reserve_staging(pdckpt_async_saver *s, uint64_t need, pdckpt_error *err) {
    if (need > SIZE_MAX) return pdk_fail_nomem(err, "staging buffer");
    if (s->staging && s->staging_size >= need) return PDCKPT_OK;
    pdckpt_buffer_release(s->staging);
    s->staging = NULL;
    s->staging_size = 0;
    s->staging = pdk_buffer_new_alloc(s->opts.allocator, need ? (size_t)need : STAGE_ALIGN, false);
    if (!s->staging) return pdk_fail_nomem(err, "staging buffer");
    s->staging_size = (size_t)need;
    return PDCKPT_OK;
}

static pdckpt_status snapshot(pdckpt_async_saver *s, const pdckpt_value *root, pdckpt_value **out,
                              pdckpt_error *err) {
    uint64_t need = 0;
    PDK_TRY(pdckpt_value_walk(root, sum_tensor_bytes, &need, err));
    PDK_TRY(reserve_staging(s, need, err));
    copier c = {s->opts.allocator, s->staging, pdk_buffer_data(s->staging), 0, err};
    *out = copy_value(&c, root, 0);
    if (!*out) return err->status != PDCKPT_OK ? err->status : pdk_fail_nomem(err, "snapshot");
    return PDCKPT_OK;
}

/* The target as the caller named it when it called: a relative path is resolved against the
 * working directory now, not when the worker opens it (a chdir before the write made the save
 * land in -- and replace -- another directory's file of that name). */
static pdckpt_status path_now(const pdckpt_allocator *a, const char *path, char **out,
                              pdckpt_error *err) {
    char full[PATH_MAX];
    if (path[0] != '/') {
        if (!getcwd(full, sizeof full))
            return pdk_fail_sys(err, errno, path, "resolve against the working directory");
        size_t n = strlen(full);
        if (snprintf(full + n, sizeof full - n, "%s%s", full[n - 1] == '/' ? "" : "/", path) >=
            (int)(sizeof full - n))
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1, "path too long");
        path = full;
    }
    *out = pdk_strndup(a, path, strlen(path));
    return *out ? PDCKPT_OK : pdk_fail_nomem(err, "path");
}

pdckpt_status pdckpt_async_save(pdckpt_async_saver *saver, const pdckpt_value *root,
                                const char *path, const pdckpt_sink_ops *sink_ops, void *sink_self,
                                pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!saver || !root || (!path && !sink_ops))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1,
                        "async save needs a saver, a root and a target");
    pthread_mutex_lock(&saver->mu);
    pdckpt_status st = wait_locked(saver, err);
    char         *path_copy = NULL;
    if (st == PDCKPT_OK && path) st = path_now(saver->opts.allocator, path, &path_copy, err);
    pdckpt_value *snap = NULL;
    if (st == PDCKPT_OK) st = snapshot(saver, root, &snap, err);
    if (st == PDCKPT_OK) {
        pdk_strfree(saver->opts.allocator, saver->path);
        saver->path = path_copy;
        saver->sink_ops = sink_ops;
        saver->sink_self = sink_self;
        saver->snapshot = snap;
        saver->has_job = true;
        pthread_cond_broadcast(&saver->cv);
    } else {
        pdk_strfree(saver->opts.allocator, path_copy);
    }
    pthread_mutex_unlock(&saver->mu);
    return st;
}

uint64_t pdckpt_async_staging_bytes(const pdckpt_async_saver *saver) {
    return saver ? saver->staging_size : 0;
}

void pdckpt_async_saver_free(pdckpt_async_saver *saver) {
    if (!saver) return;
    pthread_mutex_lock(&saver->mu);
    while (saver->has_job) pthread_cond_wait(&saver->cv, &saver->mu);
    saver->stop = true;
    pthread_cond_broadcast(&saver->cv);
    pthread_mutex_unlock(&saver->mu);
    pthread_join(saver->thread, NULL);
    pthread_mutex_destroy(&saver->mu);
    pthread_cond_destroy(&saver->cv);
    pdckpt_buffer_release(saver->staging);
    pdk_strfree(saver->opts.allocator, saver->path);
    pdk_free(saver->opts.allocator, saver, sizeof *saver);
}
