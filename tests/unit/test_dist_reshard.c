/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_dist_reshard.c — sharded checkpoints under mpirun (4 ranks): the reshard matrix.  Jobs of
 * N = 1..4 ranks (sub-communicators of the 4) save row-, column- and block-sharded tensors with
 * uneven splits, 0-d, empty and replicated tensors; jobs of M = 1..4 ranks load them with every
 * layout, bit-exact against contents computed independently from the global index.  Also: the
 * metadata (replicas written once, spread like Paddle's dedup), data formats, ids and
 * incomplete checkpoints, and failures agreed by every rank.
 */
#include "mpi_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef enum { ROW, COL, BLOCK, N_LAYOUTS } layout;
static const char *layout_name[] = {"row", "col", "block"};

typedef struct spec {
    const char  *key;
    pdckpt_dtype dtype;
    int32_t      n_dims;
    int64_t      dims[3];
    bool         replicated;
} spec;

static const spec specs[] = {
    {"row.w", PDCKPT_DTYPE_FLOAT32, 2, {7, 5}, false},
    {"col.w", PDCKPT_DTYPE_INT64, 2, {3, 11}, false},
    {"blk.w", PDCKPT_DTYPE_FLOAT16, 2, {9, 10}, false},
    {"vec.b", PDCKPT_DTYPE_INT32, 1, {13}, false},
    {"cube", PDCKPT_DTYPE_UINT8, 3, {5, 6, 7}, false},
    {"small", PDCKPT_DTYPE_FLOAT32, 2, {2, 3}, false},
    {"empty", PDCKPT_DTYPE_FLOAT32, 2, {0, 3}, false},
    {"scalar", PDCKPT_DTYPE_FLOAT64, 0, {0}, true},
    {"rep.w", PDCKPT_DTYPE_BFLOAT16, 2, {4, 4}, true},
};
#define N_SPECS (sizeof specs / sizeof specs[0])

/* Byte j of a global tensor, from its key: what every box is checked against. */
static uint8_t global_byte(const char *key, uint64_t j) {
    uint32_t h = 2166136261u;
    for (const char *p = key; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
    h ^= (uint32_t)(j * 2654435761u);
    h *= 0x9E3779B1u;
    return (uint8_t)(h >> 24);
}

static void parts_for(layout l, int world, const spec *s, int64_t *parts) {
    for (int32_t d = 0; d < s->n_dims; d++) parts[d] = 1;
    if (s->replicated || s->n_dims == 0) return;
    if (l == ROW || s->n_dims == 1)
        parts[0] = world;
    else if (l == COL)
        parts[s->n_dims - 1] = world;
    else {
        int c = 1;
        for (int k = 1; k * k <= world; k++)
            if (world % k == 0) c = k;
        parts[0] = world / c;
        parts[1] = c;
    }
}

/* The box's contents, element by element from global indices (independent of pdk_box_copy). */
static pdckpt_value *make_box(const spec *s, const int64_t *off, const int64_t *shape) {
    pdckpt_value *t = NULL;
    pdckpt_tensor_new(NULL, s->dtype, s->n_dims, shape, &t, NULL);
    pdckpt_tensor_view v;
    pdckpt_tensor_get(t, &v);
    uint8_t *dst = pdckpt_tensor_data_mut(t);
    size_t   elem = pdckpt_dtype_size(s->dtype);
    for (uint64_t e = 0; e < v.n_elements && v.n_bytes; e++) {
        uint64_t rest = e, global = 0, stride = 1;
        for (int32_t d = s->n_dims - 1; d >= 0; d--) {
            uint64_t i = rest % (uint64_t)shape[d];
            rest /= (uint64_t)shape[d];
            global += ((uint64_t)off[d] + i) * stride;
            stride *= (uint64_t)s->dims[d];
        }
        for (size_t b = 0; b < elem; b++)
            dst[e * elem + b] = global_byte(s->key, global * elem + b);
    }
    return t;
}

static pdckpt_status save_job(MPI_Comm comm, int world, int rank, layout l, const char *dir,
                              const pdckpt_mpi_options *o, int64_t *id, pdckpt_error *err) {
    pdckpt_mpi_shard shards[N_SPECS];
    pdckpt_value    *pieces[N_SPECS];
    int64_t          offs[N_SPECS][3], shapes[N_SPECS][3], parts[3];
    for (size_t i = 0; i < N_SPECS; i++) {
        parts_for(l, world, &specs[i], parts);
        pdckpt_shard_box(specs[i].n_dims, specs[i].dims, parts, rank, offs[i], shapes[i]);
        pieces[i] = make_box(&specs[i], offs[i], shapes[i]);
        shards[i] = (pdckpt_mpi_shard){specs[i].key, pieces[i], specs[i].dims, offs[i]};
    }
    pdckpt_status st = pdckpt_mpi_save_sharded(comm, shards, N_SPECS, dir, o, id, err);
    for (size_t i = 0; i < N_SPECS; i++) pdckpt_value_free(pieces[i]);
    return st;
}

static int load_job(MPI_Comm comm, int world, int rank, layout l, const char *dir) {
    pdckpt_mpi_request reqs[N_SPECS];
    int64_t            offs[N_SPECS][3], shapes[N_SPECS][3], parts[3];
    for (size_t i = 0; i < N_SPECS; i++) {
        parts_for(l, world, &specs[i], parts);
        pdckpt_shard_box(specs[i].n_dims, specs[i].dims, parts, rank, offs[i], shapes[i]);
        reqs[i] = (pdckpt_mpi_request){specs[i].key, specs[i].n_dims, offs[i], shapes[i]};
    }
    pdckpt_value      *got = NULL;
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    o.load.zero_copy = rank % 2 == 0; /* both: mapped (in place when exact) and copied */
    int bad = 0;
    CHECK_OK(pdckpt_mpi_load_sharded(comm, dir, reqs, N_SPECS, &o, &got, &err), &err);
    for (size_t i = 0; got && i < N_SPECS; i++) {
        pdckpt_value       *want = make_box(&specs[i], offs[i], shapes[i]);
        const pdckpt_value *have = pdckpt_dict_get(got, specs[i].key);
        if (!have || !pdckpt_value_equal(have, want)) {
            fprintf(stderr, "rank %d: %s differs\n", rank, specs[i].key);
            bad++;
        }
        pdckpt_value_free(want);
    }
    pdckpt_value_free(got);
    return bad + (got == NULL);
}

static MPI_Comm first_ranks(int n) {
    MPI_Comm c;
    MPI_Comm_split(MPI_COMM_WORLD, mt_rank < n ? 0 : MPI_UNDEFINED, mt_rank, &c);
    return c;
}

static void test_reshard_matrix(void) {
    const char *root = mt_shared_dir();
    int         failures = 0, loads = 0;
    for (int n = 1; n <= 4; n++) {
        MPI_Comm save_comm = first_ranks(n);
        for (int sl = 0; sl < N_LAYOUTS; sl++) {
            char dir[4200];
            snprintf(dir, sizeof dir, "%s/ckpt_%d_%s", root, n, layout_name[sl]);
            if (save_comm != MPI_COMM_NULL) {
                pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
                pdckpt_error       err = PDCKPT_ERROR_INIT;
                o.save.durable = false;
                CHECK_OK(save_job(save_comm, n, mt_rank, sl, dir, &o, NULL, &err), &err);
            }
            mt_barrier(MPI_COMM_WORLD);
            for (int m = 1; m <= 4; m++) {
                MPI_Comm load_comm = first_ranks(m);
                for (int ll = 0; ll < N_LAYOUTS && load_comm != MPI_COMM_NULL; ll++, loads++) {
                    int bad = load_job(load_comm, m, mt_rank, ll, dir);
                    if (bad)
                        fprintf(stderr, "saved by %d (%s), loaded by %d (%s): %d bad\n", n,
                                layout_name[sl], m, layout_name[ll], bad);
                    failures += bad;
                }
                if (load_comm != MPI_COMM_NULL) MPI_Comm_free(&load_comm);
                mt_barrier(MPI_COMM_WORLD);
            }
        }
        if (save_comm != MPI_COMM_NULL) MPI_Comm_free(&save_comm);
    }
    CHECK_EQ_INT(failures, 0);
    CHECK(loads > 0);
}

/* Which file stores each piece, straight from the metadata tree. */
static const char *file_of(const pdckpt_value *meta, const char *key) {
    const pdckpt_value *storage = pdckpt_dict_get(meta, "storage_metadata");
    for (size_t i = 0; i < pdckpt_value_len(storage); i++) {
        const pdckpt_value *item = pdckpt_value_at(storage, i);
        const char *k = pdckpt_value_get_string(pdckpt_value_at(pdckpt_value_at(item, 0), 0), NULL);
        if (k && strcmp(k, key) == 0)
            return pdckpt_value_get_string(pdckpt_value_at(item, 1), NULL);
    }
    return NULL;
}

static size_t count_key(const pdckpt_value *meta, const char *key) {
    size_t              n = 0;
    const pdckpt_value *storage = pdckpt_dict_get(meta, "storage_metadata");
    for (size_t i = 0; i < pdckpt_value_len(storage); i++) {
        const char *k = pdckpt_value_get_string(
            pdckpt_value_at(pdckpt_value_at(pdckpt_value_at(storage, i), 0), 0), NULL);
        n += k && strcmp(k, key) == 0;
    }
    return n;
}

static void test_metadata_and_replicas(void) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/ckpt_4_row", mt_shared_dir());
    if (mt_rank != 0) return;
    pdckpt_value *meta = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    int64_t       id = -1;
    CHECK_OK(pdckpt_sharded_read_metadata(dir, -1, &meta, &id, &err), &err);
    CHECK_EQ_INT(id, 0);
    CHECK(pdckpt_sharded_is_checkpoint(dir));
    const pdckpt_value *sdm = pdckpt_dict_get(meta, "state_dict_metadata");
    CHECK_EQ_INT(pdckpt_value_len(sdm), N_SPECS);
    CHECK_EQ_INT(pdckpt_value_len(pdckpt_dict_get(sdm, "row.w")), 4); /* 7 rows: 2,2,2,1 */
    CHECK_EQ_INT(pdckpt_value_len(pdckpt_dict_get(sdm, "rep.w")), 1); /* a replica, once */
    CHECK_EQ_INT(count_key(meta, "rep.w"), 1);
    CHECK_EQ_INT(count_key(meta, "scalar"), 1);
    const char *a = file_of(meta, "rep.w"), *b = file_of(meta, "scalar");
    CHECK(a && b && strcmp(a, b) != 0); /* replicated tensors spread over ranks */
    const pdckpt_value *dt =
        pdckpt_dict_get(pdckpt_value_at(pdckpt_dict_get(sdm, "blk.w"), 0), "dtype");
    CHECK_STR(pdckpt_value_get_string(dt, NULL), "float16");
    CHECK(tu_file_exists(mt_path(dir, "0_0.distcp")) && /* Paddle's layout by default */
          tu_file_exists(mt_path(dir, "0.metadata")));
    pdckpt_value_free(meta);
}

static void test_formats_ids_and_incomplete(void) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/ids", mt_shared_dir());
    static const pdckpt_format formats[] = {PDCKPT_FORMAT_COMBINED, PDCKPT_FORMAT_VARS_DIR,
                                            PDCKPT_FORMAT_SAFETENSORS};
    pdckpt_error               err = PDCKPT_ERROR_INIT;
    for (int i = 0; i < 3; i++) {
        pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
        o.data_format = formats[i];
        int64_t id = -1;
        CHECK_OK(save_job(MPI_COMM_WORLD, mt_size, mt_rank, (layout)i, dir, &o, &id, &err), &err);
        CHECK_EQ_INT(id, i); /* each save takes a new id: earlier checkpoints stay */
    }
    for (int i = 0; i < 3; i++) { /* every id loads, with its own layout and format */
        CHECK_EQ_INT(load_job(MPI_COMM_WORLD, mt_size, mt_rank, (layout)i, dir), 0);
    }
    mt_barrier(MPI_COMM_WORLD);
    /* Without its metadata, id 2 is incomplete: loading picks id 1 (its col layout fits). */
    if (mt_rank == 0) CHECK(remove(mt_path(dir, "2.metadata")) == 0);
    mt_barrier(MPI_COMM_WORLD);
    pdckpt_value *meta = NULL;
    int64_t       id = -1;
    CHECK_OK(pdckpt_sharded_read_metadata(dir, -1, &meta, &id, &err), &err);
    CHECK_EQ_INT(id, 1);
    pdckpt_value_free(meta);
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    id = -1;
    CHECK_OK(save_job(MPI_COMM_WORLD, mt_size, mt_rank, ROW, dir, &o, &id, &err), &err);
    CHECK_EQ_INT(id, 3); /* never reuses the ids of incomplete data files */
}

static void test_failures(void) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/fail", mt_shared_dir());
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    CHECK_OK(save_job(MPI_COMM_WORLD, mt_size, mt_rank, ROW, dir, &o, NULL, &err), &err);
    /* Rank 2 cannot write its data file (a directory is in the way): nobody writes metadata. */
    o.unique_id = 7;
    if (mt_rank == 0) mkdir(mt_path(dir, "2_7.distcp"), 0777);
    mt_barrier(MPI_COMM_WORLD);
    pdckpt_status st = save_job(MPI_COMM_WORLD, mt_size, mt_rank, ROW, dir, &o, NULL, &err);
    CHECK_EQ_INT(st, err.status);
    CHECK(st != PDCKPT_OK && strncmp(err.message, "rank 2: ", 8) == 0);
    CHECK(!tu_file_exists(mt_path(dir, "7.metadata")));
    /* Ranks disagree on the global shape of a key. */
    pdckpt_value    *t = mt_tensor(PDCKPT_DTYPE_FLOAT32, 1, (int64_t[]){2}, 1);
    int64_t          global = mt_rank == 1 ? 9 : 8, off = 2 * mt_rank;
    pdckpt_mpi_shard s = {"w", t, &global, &off};
    o.unique_id = -1;
    st = pdckpt_mpi_save_sharded(MPI_COMM_WORLD, &s, 1, dir, &o, NULL, &err);
    CHECK_EQ_INT(st, PDCKPT_ERR_MISMATCH);
    /* Pieces that leave a hole. */
    global = 10;
    st = pdckpt_mpi_save_sharded(MPI_COMM_WORLD, &s, 1, dir, &o, NULL, &err);
    CHECK_EQ_INT(st, PDCKPT_ERR_MISMATCH);
    CHECK(strstr(err.message, "cover 8 of its 10") != NULL);
    pdckpt_value_free(t);
    /* The earlier checkpoint is still the newest complete one and loads. */
    CHECK_EQ_INT(load_job(MPI_COMM_WORLD, mt_size, mt_rank, COL, dir), 0);
    /* A key the checkpoint does not have: NOT_FOUND on the asking rank, named everywhere. */
    pdckpt_mpi_request q = {mt_rank == 3 ? "nope" : "row.w", 2, NULL, NULL};
    pdckpt_value      *got = NULL;
    st = pdckpt_mpi_load_sharded(MPI_COMM_WORLD, dir, &q, 1, &o, &got, &err);
    CHECK_EQ_INT(st, PDCKPT_ERR_NOT_FOUND);
    CHECK(strncmp(err.message, "rank 3: ", 8) == 0 && got == NULL);
}

int main(int argc, char **argv) {
    mt_init(&argc, &argv);
    if (mt_size != 4) {
        fprintf(stderr, "run with 4 ranks\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    double t0 = mt_now();
    RUN(test_reshard_matrix);
    RUN(test_metadata_and_replicas);
    RUN(test_formats_ids_and_incomplete);
    RUN(test_failures);
    if (mt_rank == 0) printf("reshard tests took %.1f s\n", mt_now() - t0);
    return mt_finish();
}
