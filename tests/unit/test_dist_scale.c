/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_dist_scale.c — a sharded checkpoint of many tiny pieces (issue 20): every rank holds
 * PIECES / ranks one-dimensional pieces, one per key, each key cut into one piece per rank (the
 * issue's reproduction).  The checkpoint must save, list (pdckpt_sharded_read_metadata, what
 * `pdckpt ls` uses) and load back bit for bit on the same ranks and resharded (every rank loading
 * whole tensors of a subset of keys).  The default, 4 ranks x 16,000 pieces, failed to load before
 * the metadata decode scaled with the file.
 *
 *   test_dist_scale [PIECES] [--json] [--dir DIR]
 * (bench/dist_scale.sh runs it at 8,000 ... 64,000 pieces; --dir saves into DIR, kept.)
 *
 * With --json rank 0 prints one line of timings: {"pieces", "ranks", "save_s", "load_s",
 * "reshard_s", "meta_bytes"}.
 */
#include "mpi_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ELEMS 8 /* float32 elements per piece */

static size_t n_keys;
static bool   json;

static void key_name(size_t k, char *out, size_t cap) {
    snprintf(out, cap, "model.layers.%zu.mlp.w_0", k);
}

static float value_at(size_t k, int64_t i) {
    return (float)k * 0.5f + (float)i;
}

static pdckpt_value *piece(size_t k, int rank) {
    pdckpt_value *t = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_tensor_new(NULL, PDCKPT_DTYPE_FLOAT32, 1, (int64_t[]){ELEMS}, &t, &err), &err);
    float *f = pdckpt_tensor_data_mut(t);
    for (int64_t i = 0; i < ELEMS; i++) f[i] = value_at(k, (int64_t)rank * ELEMS + i);
    return t;
}

typedef struct state {
    char            **keys;
    pdckpt_value    **values;
    pdckpt_mpi_shard *shards;
    int64_t           global, offset;
} state;

static void state_new(state *s) {
    s->keys = calloc(n_keys, sizeof *s->keys);
    s->values = calloc(n_keys, sizeof *s->values);
    s->shards = calloc(n_keys, sizeof *s->shards);
    s->global = (int64_t)mt_size * ELEMS;
    s->offset = (int64_t)mt_rank * ELEMS;
    for (size_t k = 0; k < n_keys; k++) {
        char name[64];
        key_name(k, name, sizeof name);
        s->keys[k] = strdup(name);
        s->values[k] = piece(k, mt_rank);
        s->shards[k] = (pdckpt_mpi_shard){s->keys[k], s->values[k], &s->global, &s->offset};
    }
}

static void state_free(state *s) {
    for (size_t k = 0; k < n_keys; k++) {
        free(s->keys[k]);
        pdckpt_value_free(s->values[k]);
    }
    free(s->keys);
    free(s->values);
    free(s->shards);
}

/* Every value of `t` (the box at `offset` of key k) as written. */
static bool holds(const pdckpt_value *t, size_t k, int64_t offset, int64_t len) {
    pdckpt_tensor_view v;
    if (!t || !pdckpt_tensor_get(t, &v) || v.n_dims != 1 || v.dims[0] != len) return false;
    for (int64_t i = 0; i < len; i++) { /* a zero-copy piece may sit unaligned in its file */
        float f;
        memcpy(&f, (const uint8_t *)v.data + i * (int64_t)sizeof f, sizeof f);
        if (f != value_at(k, offset + i)) return false;
    }
    return true;
}

static double load_own(const state *s, const char *dir) {
    pdckpt_mpi_request *reqs = calloc(n_keys, sizeof *reqs);
    int64_t             shape = ELEMS;
    for (size_t k = 0; k < n_keys; k++)
        reqs[k] = (pdckpt_mpi_request){s->keys[k], 1, &s->offset, &shape};
    pdckpt_value *out = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    mt_barrier(MPI_COMM_WORLD);
    double t0 = mt_now();
    CHECK_OK(pdckpt_mpi_load_sharded(MPI_COMM_WORLD, dir, reqs, n_keys, NULL, &out, &err), &err);
    double took = mt_now() - t0;
    size_t bad = 0;
    for (size_t k = 0; out && k < n_keys; k++)
        bad += !holds(pdckpt_dict_get(out, s->keys[k]), k, s->offset, ELEMS);
    CHECK_EQ_INT(bad, 0);
    pdckpt_value_free(out);
    free(reqs);
    return took;
}

/* Resharded: rank r loads whole tensors of the keys k with k % ranks == r. */
static double load_whole(const state *s, const char *dir) {
    pdckpt_mpi_request *reqs = calloc(n_keys, sizeof *reqs);
    size_t              n = 0;
    for (size_t k = (size_t)mt_rank; k < n_keys; k += (size_t)mt_size)
        reqs[n++] = (pdckpt_mpi_request){s->keys[k], 1, NULL, NULL};
    pdckpt_value      *out = NULL;
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    o.load.zero_copy = false;
    mt_barrier(MPI_COMM_WORLD);
    double t0 = mt_now();
    CHECK_OK(pdckpt_mpi_load_sharded(MPI_COMM_WORLD, dir, reqs, n, &o, &out, &err), &err);
    double took = mt_now() - t0;
    size_t bad = 0;
    for (size_t k = (size_t)mt_rank; out && k < n_keys; k += (size_t)mt_size)
        bad += !holds(pdckpt_dict_get(out, s->keys[k]), k, 0, s->global);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(pdckpt_value_len(out), n);
    pdckpt_value_free(out);
    free(reqs);
    return took;
}

/* What `pdckpt ls` reads: every key, every piece. */
static void list_metadata(const char *dir, int64_t id) {
    pdckpt_value *meta = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_sharded_read_metadata(dir, id, &meta, NULL, &err), &err);
    const pdckpt_value *sdm = pdckpt_dict_get(meta, "state_dict_metadata");
    CHECK_EQ_INT(pdckpt_value_len(sdm), n_keys);
    CHECK_EQ_INT(pdckpt_value_len(pdckpt_dict_get(meta, "storage_metadata")),
                 n_keys * (size_t)mt_size);
    pdckpt_value_free(meta);
}

int main(int argc, char **argv) {
    mt_init(&argc, &argv);
    size_t      pieces = 16000;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else
            pieces = (size_t)strtoull(argv[i], NULL, 10);
    }
    n_keys = pieces / (size_t)mt_size;
    if (!dir) dir = mt_shared_dir();
    state s;
    state_new(&s);
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    o.save.durable = false; /* the planning and metadata are measured, not the disk */
    pdckpt_error err = PDCKPT_ERROR_INIT;
    int64_t      id = -1;
    mt_barrier(MPI_COMM_WORLD);
    double t0 = mt_now();
    CHECK_OK(pdckpt_mpi_save_sharded(MPI_COMM_WORLD, s.shards, n_keys, dir, &o, &id, &err), &err);
    double save_s = mt_now() - t0;
    CHECK_EQ_INT(id, 0);
    if (mt_rank == 0) list_metadata(dir, id);
    double      load_s = load_own(&s, dir);
    double      reshard_s = load_whole(&s, dir);
    struct stat st;
    long long meta_bytes = stat(mt_path(dir, "0.metadata"), &st) == 0 ? (long long)st.st_size : -1;
    if (mt_rank == 0 && json)
        printf("{\"pieces\": %zu, \"ranks\": %d, \"save_s\": %.3f, \"load_s\": %.3f, "
               "\"reshard_s\": %.3f, \"meta_bytes\": %lld}\n",
               n_keys * (size_t)mt_size, mt_size, save_s, load_s, reshard_s, meta_bytes);
    else if (mt_rank == 0)
        printf("%zu pieces on %d ranks: save %.2f s, load %.2f s, reshard %.2f s, metadata %lld "
               "bytes\n",
               n_keys * (size_t)mt_size, mt_size, save_s, load_s, reshard_s, meta_bytes);
    state_free(&s);
    return mt_finish();
}
