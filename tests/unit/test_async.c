/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_async.c — asynchronous saves: the file holds the state as it was when pdckpt_async_save
 * returned (the caller may overwrite its tensors at once); the call returns while the write is
 * still blocked; memory stays flat over 100 saves; a background failure is reported by the next
 * call and the saver keeps working; repeated saves reuse one staging area of the state's size.
 * That the pause never waits for the disk is proven without a clock by the blocked-write test;
 * how long it takes is the benchmark's business (a timed bound here failed on a loaded machine).
 */
#include "check.h"
#include "test_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static atomic_llong outstanding; /* bytes allocated through the counting allocator */

static void *counting_alloc(void *ctx, size_t size, size_t alignment) {
    (void)ctx;
    size_t rounded = (size + alignment - 1) / alignment * alignment;
    void  *p = aligned_alloc(alignment < sizeof(void *) ? sizeof(void *) : alignment, rounded);
    if (p) atomic_fetch_add(&outstanding, (long long)size);
    return p;
}

static void counting_free(void *ctx, void *ptr, size_t size) {
    (void)ctx;
    atomic_fetch_sub(&outstanding, (long long)size);
    free(ptr);
}

static const pdckpt_allocator counting = {counting_alloc, counting_free, NULL};

static pdckpt_value *make_state(float **data_out) {
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    int64_t       dims[2] = {256, 256};
    pdckpt_value *w = tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, dims, 1);
    *data_out = pdckpt_tensor_data_mut(w);
    pdckpt_dict_set(d, "w", w, NULL);
    pdckpt_value *lr = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(lr, "last_epoch", pdckpt_value_new_int(NULL, 3), NULL);
    pdckpt_dict_set(d, "LR_Scheduler", lr, NULL);
    return d;
}

static void test_snapshot_semantics(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    char        *dir = tu_tempdir();
    char         path[4200];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    float        *data;
    pdckpt_value *state = make_state(&data);
    pdckpt_value *expected = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(expected, "w", pdckpt_value_retain(pdckpt_dict_get_mut(state, "w")), NULL);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.skip_non_tensors = true;
    pdckpt_async_saver *saver = NULL;
    CHECK_OK(pdckpt_async_saver_new(&so, &saver, &err), &err);
    float first = data[0];
    CHECK_OK(pdckpt_async_save(saver, state, path, NULL, NULL, &err), &err);
    data[0] = first + 1.0f; /* the training step goes on at once */
    CHECK_OK(pdckpt_async_wait(saver, &err), &err);
    pdckpt_value *back = NULL;
    CHECK_OK(pdckpt_load_file(path, NULL, &back, NULL, &err), &err);
    pdckpt_tensor_view v;
    CHECK(pdckpt_tensor_get(pdckpt_dict_get(back, "w"), &v));
    float got;
    memcpy(&got, v.data, sizeof got);
    CHECK(got == first);
    pdckpt_value_free(back);
    pdckpt_async_saver_free(saver);
    pdckpt_value_free(expected);
    pdckpt_value_free(state);
    tu_rmtree(dir);
    free(dir);
}

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    bool            open, entered;
    size_t          bytes;
} gate;

static pdckpt_status gated_write(void *self, const void *bytes, size_t len, pdckpt_error *err) {
    (void)bytes;
    (void)err;
    gate *g = self;
    pthread_mutex_lock(&g->mu);
    g->entered = true;
    pthread_cond_broadcast(&g->cv);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    g->bytes += len;
    pthread_mutex_unlock(&g->mu);
    return PDCKPT_OK;
}

static void test_returns_before_the_write(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    gate         g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, 0};
    const pdckpt_sink_ops ops = {PDCKPT_SINK_OPS_VERSION, gated_write, NULL, NULL};
    float                *data;
    pdckpt_value         *state = make_state(&data);
    pdckpt_save_options   so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_SAFETENSORS;
    so.skip_non_tensors = true;
    pdckpt_async_saver *saver = NULL;
    CHECK_OK(pdckpt_async_saver_new(&so, &saver, &err), &err);
    CHECK_OK(pdckpt_async_save(saver, state, NULL, &ops, &g, &err), &err);
    pthread_mutex_lock(&g.mu); /* the write has started and is blocked, yet we are back */
    while (!g.entered) pthread_cond_wait(&g.cv, &g.mu);
    CHECK(g.bytes == 0);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    CHECK_OK(pdckpt_async_wait(saver, &err), &err);
    CHECK(g.bytes > 256 * 256 * 4);
    pdckpt_async_saver_free(saver);
    pdckpt_value_free(state);
}

static void test_flat_memory_and_failures(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    char        *dir = tu_tempdir();
    char         path[4200];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    float              *data;
    pdckpt_value       *state = make_state(&data);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.allocator = &counting;
    so.skip_non_tensors = true;
    so.durable = false;
    pdckpt_async_saver *saver = NULL;
    CHECK_OK(pdckpt_async_saver_new(&so, &saver, &err), &err);
    long long after_first = 0;
    for (int i = 0; i < 100; i++) {
        data[0] = (float)i;
        CHECK_OK(pdckpt_async_save(saver, state, path, NULL, NULL, &err), &err);
        CHECK_OK(pdckpt_async_wait(saver, &err), &err);
        if (i == 0) after_first = atomic_load(&outstanding);
    }
    CHECK_EQ_INT(atomic_load(&outstanding), after_first);
    CHECK_EQ_INT(pdckpt_async_staging_bytes(saver), 256 * 256 * 4);
    char bad[4300];
    snprintf(bad, sizeof bad, "%s/w.safetensors", path); /* beneath a file: no directory there */
    CHECK_OK(pdckpt_async_save(saver, state, bad, NULL, NULL, &err), &err);
    CHECK_STATUS(pdckpt_async_wait(saver, &err), PDCKPT_ERR_IO, &err); /* ENOTDIR */
    CHECK_OK(pdckpt_async_save(saver, state, path, NULL, NULL, &err), &err);
    CHECK_OK(pdckpt_async_wait(saver, &err), &err);
    pdckpt_async_saver_free(saver);
    CHECK_EQ_INT(atomic_load(&outstanding), 0);
    pdckpt_value_free(state);
    tu_rmtree(dir);
    free(dir);
}

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median5(double *v) {
    qsort(v, 5, sizeof *v, cmp_double);
    return v[2];
}

/* 32 MiB in 16 tensors saved 5 times: the staging area grows once, to the state's size, and every
 * save's file holds the state.  The pause is printed next to one memcpy for a human reader. */
static void test_staging_is_reused(void) {
    enum { N = 16, ROWS = 512, COLS = 1024 };
    pdckpt_error err = PDCKPT_ERROR_INIT;
    char        *dir = tu_tempdir();
    char         path[4200];
    snprintf(path, sizeof path, "%s/s.pdiparams", dir);
    pdckpt_value *state = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "w%02d", i);
        pdckpt_dict_set(state, name,
                        tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, (int64_t[]){ROWS, COLS}, i),
                        NULL);
    }
    const size_t        bytes = (size_t)N * ROWS * COLS * 4;
    char               *copy = malloc(bytes);
    double              memcpy_s[5], pause_s[5];
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT; /* durable */
    pdckpt_async_saver *saver = NULL;
    CHECK_OK(pdckpt_async_saver_new(&so, &saver, &err), &err);
    CHECK_OK(pdckpt_async_save(saver, state, path, NULL, NULL, &err), &err); /* grows staging */
    CHECK_OK(pdckpt_async_wait(saver, &err), &err);
    for (int r = 0; r < 5; r++) {
        double t0 = seconds_now();
        for (int i = 0; i < N; i++) {
            pdckpt_tensor_view v;
            pdckpt_tensor_get(pdckpt_value_at(state, (size_t)i), &v);
            memcpy(copy + (size_t)i * v.n_bytes, v.data, v.n_bytes);
        }
        memcpy_s[r] = seconds_now() - t0;
        t0 = seconds_now();
        CHECK_OK(pdckpt_async_save(saver, state, path, NULL, NULL, &err), &err);
        pause_s[r] = seconds_now() - t0;
        CHECK_OK(pdckpt_async_wait(saver, &err), &err);
    }
    double m = median5(memcpy_s), p = median5(pause_s);
    printf("async pause %.2f ms vs memcpy %.2f ms (%.2fx)\n", p * 1e3, m * 1e3, p / m);
    CHECK_EQ_INT(pdckpt_async_staging_bytes(saver), bytes);
    pdckpt_async_saver_free(saver);
    pdckpt_value_free(state);
    free(copy);
    tu_rmtree(dir);
    free(dir);
}

/* A Fortran-order tensor (a transposed view, as paddle.save writes it) snapshots as it is: the
 * background pickle holds the same bytes as a synchronous save, is_fortran and all. */
static void test_fortran_order_snapshot(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    char        *dir = tu_tempdir(), sync_path[4200], async_path[4200];
    snprintf(sync_path, sizeof sync_path, "%s/sync.pdparams", dir);
    snprintf(async_path, sizeof async_path, "%s/async.pdparams", dir);
    pdckpt_value *state = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_value *w = tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, (int64_t[]){3, 5}, 7);
    CHECK_OK(pdckpt_tensor_set_fortran(w, &err), &err);
    pdckpt_dict_set(state, "w", w, NULL);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_PICKLE;
    CHECK_OK(pdckpt_save_file(state, sync_path, &so, &err), &err);
    pdckpt_async_saver *saver = NULL;
    CHECK_OK(pdckpt_async_saver_new(&so, &saver, &err), &err);
    CHECK_OK(pdckpt_async_save(saver, state, async_path, NULL, NULL, &err), &err);
    CHECK_OK(pdckpt_async_wait(saver, &err), &err);
    size_t sync_len = 0, async_len = 0;
    char  *sync_bytes = tu_read_file(sync_path, &sync_len);
    char  *async_bytes = tu_read_file(async_path, &async_len);
    CHECK(sync_bytes && async_bytes && sync_len == async_len &&
          memcmp(sync_bytes, async_bytes, sync_len) == 0);
    free(sync_bytes);
    free(async_bytes);
    pdckpt_async_saver_free(saver);
    pdckpt_value_free(state);
    tu_rmtree(dir);
    free(dir);
}

int main(void) {
    RUN(test_snapshot_semantics);
    RUN(test_returns_before_the_write);
    RUN(test_flat_memory_and_failures);
    RUN(test_staging_is_reused);
    RUN(test_fortran_order_snapshot);
    return CHECK_SUMMARY();
}
