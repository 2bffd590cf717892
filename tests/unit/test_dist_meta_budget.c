/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_dist_meta_budget.c — what decoding a sharded checkpoint's metadata may hold (issue 20):
 * the decode of "<id>.metadata" (Paddle's pickled Metadata, 16,000 pieces of 4,000 keys, no
 * index sidecar) counts everything it allocates against the load's max_alloc_bytes, and needs
 * at most 8 times the file (the value tree it built before needed about 30 times, and the
 * budget did not apply to it at all).  The load asks for one small key whose piece lives in its
 * own data file, so the data files cost nothing beside the metadata.  pdckpt_sharded_read_keys
 * reads the same metadata's keys; pdckpt_sharded_list (`pdckpt ls`) lists it within the same
 * budget, and pdckpt_sharded_read_metadata's tree is rebuilt from that list.
 */
#include "check.h"
#include "formats/distcp/pdk_distcp.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KEYS  4000
#define RANKS 4

static char *dir;
static char  keys_of[KEYS + 1][40];

/* The metadata of KEYS float32 keys cut in RANKS pieces (in files no load here opens) and one
 * key, "probe", whole in 9_0.distcp; its size. */
static size_t write_checkpoint(void) {
    static int64_t  dims[KEYS * RANKS + 1][3];
    pdk_meta_piece *p = calloc(KEYS * RANKS + 1, sizeof *p);
    static char     files[RANKS][16];
    size_t          n = 0;
    for (int r = 0; r < RANKS; r++) snprintf(files[r], sizeof files[r], "%d_0.distcp", r);
    for (size_t k = 0; k < KEYS; k++) {
        snprintf(keys_of[k], sizeof keys_of[k], "model.layers.%zu.mlp.w_0", k);
        for (int r = 0; r < RANKS; r++, n++) {
            dims[n][0] = 8 * RANKS, dims[n][1] = 8 * r, dims[n][2] = 8;
            p[n] = (pdk_meta_piece){keys_of[k],  PDCKPT_DTYPE_FLOAT32, 1,       &dims[n][0],
                                    &dims[n][1], &dims[n][2],          files[r]};
        }
    }
    snprintf(keys_of[KEYS], sizeof keys_of[KEYS], "probe");
    dims[n][0] = 4, dims[n][1] = 0, dims[n][2] = 4;
    p[n] = (pdk_meta_piece){keys_of[KEYS], PDCKPT_DTYPE_FLOAT32, 1,           &dims[n][0],
                            &dims[n][1],   &dims[n][2],          "9_0.distcp"};
    n++;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *tree = NULL, *state = NULL, *t = NULL;
    pdk_blob      blob = {0};
    char          path[4200];
    CHECK_OK(pdk_meta_tree_new(NULL, p, n, &tree, &err), &err);
    CHECK_OK(pdk_meta_encode(tree, NULL, &blob, &err), &err);
    CHECK_OK(pdk_meta_path(dir, 0, path, sizeof path, &err), &err);
    CHECK_OK(pdk_write_file_atomic(path, blob.data, blob.len, false, &err), &err);
    CHECK_OK(pdckpt_tensor_new(NULL, PDCKPT_DTYPE_FLOAT32, 1, (int64_t[]){4}, &t, &err), &err);
    ((float *)pdckpt_tensor_data_mut(t))[3] = 7.0f;
    state = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    CHECK_OK(pdckpt_dict_set(state, "probe", t, &err), &err);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_PICKLE;
    snprintf(path, sizeof path, "%s/9_0.distcp", dir);
    CHECK_OK(pdckpt_save_file(state, path, &so, &err), &err);
    size_t len = blob.len;
    pdckpt_value_free(state);
    pdckpt_value_free(tree);
    pdk_blob_free(&blob);
    free(p);
    return len;
}

static pdckpt_status load_probe(uint64_t budget, pdckpt_value **out, pdckpt_error *err) {
    pdckpt_load_options        lo = PDCKPT_LOAD_OPTIONS_INIT;
    const pdckpt_shard_request req = {"probe", 1, NULL, NULL};
    lo.max_alloc_bytes = budget;
    return pdckpt_sharded_load(dir, 0, &req, 1, &lo, out, err);
}

static void test_decode_fits_in_eight_times_the_file(void) {
    size_t        len = write_checkpoint();
    pdckpt_value *out = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    CHECK(len > (size_t)2 << 20); /* large enough that the constant parts do not matter */
    CHECK_OK(load_probe((uint64_t)len * 8, &out, &err), &err);
    pdckpt_tensor_view v;
    CHECK(pdckpt_tensor_get(pdckpt_dict_get(out, "probe"), &v) && v.n_elements == 4 &&
          ((const float *)v.data)[3] == 7.0f);
    pdckpt_value_free(out);
    /* and the budget is the load's: with the file's size alone it is refused, naming the file */
    CHECK_STATUS(load_probe(len, &out, &err), PDCKPT_ERR_LIMIT, &err);
    CHECK(strstr(err.source, "0.metadata") && strstr(err.message, "max_alloc_bytes"));
    CHECK(out == NULL);
}

/* pdckpt_sharded_read_keys: every key in the metadata's order, its dtype and global shape. */
static void test_read_keys(void) {
    pdckpt_value *keys = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    int64_t       id = -1, dim = 0;
    CHECK_OK(pdckpt_sharded_read_keys(dir, -1, &keys, &id, &err), &err);
    CHECK(id == 0 && pdckpt_value_len(keys) == KEYS + 1);
    CHECK_STR(pdckpt_value_get_string(pdckpt_dict_key_at(keys, 1), NULL), keys_of[1]);
    const pdckpt_value *first = pdckpt_dict_get(keys, keys_of[0]);
    CHECK_STR(pdckpt_value_get_string(pdckpt_dict_get(first, "dtype"), NULL), "float32");
    const pdckpt_value *shape = pdckpt_dict_get(first, "global_shape");
    CHECK(pdckpt_value_len(shape) == 1 && pdckpt_value_get_int(pdckpt_value_at(shape, 0), &dim) &&
          dim == 8 * RANKS);
    shape = pdckpt_dict_get(pdckpt_dict_get(keys, "probe"), "global_shape");
    CHECK(pdckpt_value_get_int(pdckpt_value_at(shape, 0), &dim) && dim == 4);
    pdckpt_value_free(keys);
}

/* pdckpt_sharded_list (`pdckpt ls`): the same decode, counted against the budget it is given,
 * keeping every piece and entry in the metadata's order. */
static void test_list_fits_in_eight_times_the_file(void) {
    struct stat sb;
    char        path[4200];
    snprintf(path, sizeof path, "%s/0.metadata", dir);
    CHECK(stat(path, &sb) == 0);
    uint64_t                len = (uint64_t)sb.st_size;
    pdckpt_sharded_listing *l = NULL;
    pdckpt_error            err = PDCKPT_ERROR_INIT;
    int64_t                 id = -1;
    CHECK_OK(pdckpt_sharded_list(dir, -1, len * 8, &l, &id, &err), &err);
    CHECK(id == 0 && pdckpt_sharded_listing_n_tensors(l) == KEYS + 1 &&
          pdckpt_sharded_listing_n_pieces(l) == KEYS * RANKS + 1);
    pdckpt_sharded_tensor_info t;
    CHECK(pdckpt_sharded_listing_tensor_at(l, 1, &t) && strcmp(t.key, keys_of[1]) == 0 &&
          t.dtype == PDCKPT_DTYPE_FLOAT32 && t.n_dims == 1 && t.global_shape[0] == 8 * RANKS);
    pdckpt_sharded_piece_info p; /* the 7th entry: key 1's piece on rank 2 */
    CHECK(pdckpt_sharded_listing_piece_at(l, RANKS + 2, &p) && strcmp(p.key, keys_of[1]) == 0 &&
          strcmp(p.file, "2_0.distcp") == 0 && p.n_dims == 1 && p.global_offset[0] == 16 &&
          p.local_shape && p.local_shape[0] == 8 && !p.flattened && !p.has_replica_id);
    CHECK(!pdckpt_sharded_listing_piece_at(l, KEYS * RANKS + 1, &p));
    pdckpt_sharded_listing_free(l);
    l = NULL;
    CHECK_STATUS(pdckpt_sharded_list(dir, -1, len, &l, &id, &err), PDCKPT_ERR_LIMIT, &err);
    CHECK(strstr(err.source, "0.metadata") && strstr(err.message, "max_alloc_bytes"));
    CHECK(l == NULL);
}

/* pdckpt_sharded_read_metadata: the tree rebuilt from the list, in Paddle's field order. */
static void test_read_metadata_tree(void) {
    pdckpt_value *meta = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    int64_t       v = 0;
    CHECK_OK(pdckpt_sharded_read_metadata(dir, -1, &meta, NULL, &err), &err);
    const pdckpt_value *sdm = pdckpt_dict_get(meta, "state_dict_metadata");
    const pdckpt_value *storage = pdckpt_dict_get(meta, "storage_metadata");
    CHECK(pdckpt_value_len(sdm) == KEYS + 1 && pdckpt_value_len(storage) == KEYS * RANKS + 1);
    const pdckpt_value *piece = pdckpt_value_at(pdckpt_dict_get(sdm, keys_of[2]), 3);
    CHECK_STR(pdckpt_value_get_string(pdckpt_dict_key_at(piece, 2), NULL), "dtype");
    CHECK(pdckpt_value_get_int(pdckpt_value_at(pdckpt_dict_get(piece, "global_offset"), 0), &v) &&
          v == 24);
    const pdckpt_value *item = pdckpt_value_at(storage, 2 * RANKS + 3), *index;
    index = pdckpt_value_at(item, 0);
    CHECK_STR(pdckpt_value_get_string(pdckpt_value_at(index, 0), NULL), keys_of[2]);
    CHECK(pdckpt_value_kind(pdckpt_value_at(index, 4)) == PDCKPT_KIND_NONE); /* replica_id */
    CHECK(pdckpt_value_get_int(pdckpt_value_at(pdckpt_value_at(index, 5), 0), &v) && v == 8);
    CHECK_STR(pdckpt_value_get_string(pdckpt_value_at(item, 1), NULL), "3_0.distcp");
    const pdckpt_value *path = pdckpt_dict_get(pdckpt_dict_get(meta, "flat_mapping"), "probe");
    CHECK_STR(pdckpt_value_get_string(pdckpt_value_at(path, 0), NULL), "probe");
    pdckpt_value_free(meta);
}

/* Paddle 2.6's layout: pieces {global_offset, local_shape} without dtype or global shape,
 * LocalTensorIndex without local_shape; the dtypes are in the data files.  V26_KEYS keys of 4
 * pieces, each key's pieces in files 0-3 (each holding a piece of every key). */
#define V26_KEYS 2000

static pdckpt_value *ints1(int64_t v) {
    pdckpt_value *t = pdckpt_value_new_container(NULL, PDCKPT_KIND_TUPLE);
    pdckpt_value_append(t, pdckpt_value_new_int(NULL, v), NULL);
    return t;
}

static void v26_key(pdckpt_value *sdm, pdckpt_value *storage, pdckpt_value **files, size_t k) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *list = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST), *t = NULL;
    CHECK_OK(pdckpt_dict_set(sdm, keys_of[k], list, &err), &err);
    for (int r = 0; r < RANKS; r++) {
        pdckpt_value *m = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
        pdckpt_dict_set(m, "global_offset", ints1(8 * r), NULL);
        pdckpt_dict_set(m, "local_shape", ints1(8), NULL);
        CHECK_OK(pdckpt_value_append(list, m, &err), &err);
        pdckpt_value *index = pdckpt_value_new_container(NULL, PDCKPT_KIND_TUPLE);
        pdckpt_value *item = pdckpt_value_new_container(NULL, PDCKPT_KIND_TUPLE);
        pdckpt_value_append(index, pdckpt_value_new_string(NULL, keys_of[k], SIZE_MAX), NULL);
        pdckpt_value_append(index, ints1(8 * r), NULL);
        for (int f = 0; f < 4; f++) pdckpt_value_append(index, pdckpt_value_new_none(NULL), NULL);
        char name[32];
        snprintf(name, sizeof name, "%d_0.distcp", r);
        pdckpt_value_append(item, index, NULL);
        pdckpt_value_append(item, pdckpt_value_new_string(NULL, name, SIZE_MAX), NULL);
        CHECK_OK(pdckpt_value_append(storage, item, &err), &err);
        CHECK_OK(pdckpt_tensor_new(NULL, PDCKPT_DTYPE_INT16, 1, (int64_t[]){8}, &t, &err), &err);
        CHECK_OK(pdckpt_dict_set(files[r], keys_of[k], t, &err), &err);
    }
}

static size_t write_v26(const char *d) {
    pdckpt_value *tree = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT), *files[RANKS];
    pdckpt_value *sdm = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_value *storage = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST);
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    for (int r = 0; r < RANKS; r++) files[r] = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    for (size_t k = 0; k < V26_KEYS; k++) v26_key(sdm, storage, files, k);
    pdckpt_dict_set(tree, "state_dict_metadata", sdm, NULL);
    pdckpt_dict_set(tree, "storage_metadata", storage, NULL);
    pdckpt_dict_set(tree, "flat_mapping", pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT), NULL);
    pdk_blob blob = {0};
    char     path[4300];
    CHECK_OK(pdk_meta_encode(tree, NULL, &blob, &err), &err);
    CHECK_OK(pdk_meta_path(d, 0, path, sizeof path, &err), &err);
    CHECK_OK(pdk_write_file_atomic(path, blob.data, blob.len, false, &err), &err);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_PICKLE;
    for (int r = 0; r < RANKS; r++) {
        snprintf(path, sizeof path, "%s/%d_0.distcp", d, r);
        CHECK_OK(pdckpt_save_file(files[r], path, &so, &err), &err);
        pdckpt_value_free(files[r]);
    }
    size_t len = blob.len;
    pdk_blob_free(&blob);
    pdckpt_value_free(tree);
    return len;
}

/* Its decode is the same one, counted against the same budget: it was decoded into the whole
 * tree, whatever max_alloc_bytes said.  (Its pieces take fewer bytes in the file than 3.x's, so
 * the same records are more times the file: ~11x here, 13x with the listing.) */
static void test_paddle26_metadata_within_the_budget(void) {
    char d[4096];
    snprintf(d, sizeof d, "%s/v26", dir);
    CHECK(mkdir(d, 0755) == 0);
    uint64_t                len = write_v26(d);
    pdckpt_sharded_listing *l = NULL;
    pdckpt_error            err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_sharded_list(d, 0, len * 16, &l, NULL, &err), &err);
    pdckpt_sharded_tensor_info t;
    pdckpt_sharded_piece_info  p;
    CHECK(pdckpt_sharded_listing_tensor_at(l, 5, &t) && strcmp(t.key, keys_of[5]) == 0 &&
          t.dtype == PDCKPT_DTYPE_INT16 && t.n_dims == 1 && t.global_shape[0] == 8 * RANKS);
    CHECK(pdckpt_sharded_listing_piece_at(l, 5 * RANKS + 1, &p) && strcmp(p.key, keys_of[5]) == 0 &&
          p.global_offset[0] == 8 && p.local_shape && p.local_shape[0] == 8 && !p.has_replica_id);
    pdckpt_sharded_listing_free(l);
    pdckpt_load_options        lo = PDCKPT_LOAD_OPTIONS_INIT;
    const pdckpt_shard_request req = {keys_of[7], 1, NULL, NULL};
    pdckpt_value              *out = NULL;
    lo.max_alloc_bytes = len * 16;
    CHECK_OK(pdckpt_sharded_load(d, 0, &req, 1, &lo, &out, &err), &err);
    pdckpt_tensor_view v;
    CHECK(pdckpt_tensor_get(pdckpt_dict_get(out, keys_of[7]), &v) && v.n_elements == 8 * RANKS &&
          v.dtype == PDCKPT_DTYPE_INT16);
    pdckpt_value_free(out);
    lo.max_alloc_bytes = len;
    CHECK_STATUS(pdckpt_sharded_load(d, 0, &req, 1, &lo, &out, &err), PDCKPT_ERR_LIMIT, &err);
    CHECK(strstr(err.source, "0.metadata") && strstr(err.message, "max_alloc_bytes"));
}

int main(void) {
    dir = tu_tempdir();
    RUN(test_decode_fits_in_eight_times_the_file);
    RUN(test_read_keys);
    RUN(test_list_fits_in_eight_times_the_file);
    RUN(test_read_metadata_tree);
    RUN(test_paddle26_metadata_within_the_budget);
    tu_rmtree(dir);
    free(dir);
    return CHECK_SUMMARY();
}
