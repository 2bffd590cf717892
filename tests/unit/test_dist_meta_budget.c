/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_dist_meta_budget.c — what decoding a sharded checkpoint's metadata may hold (issue 20):
 * the decode of "<id>.metadata" (Paddle's pickled Metadata, 16,000 pieces of 4,000 keys, no
 * index sidecar) counts everything it allocates against the load's max_alloc_bytes, and needs
 * at most 8 times the file (the value tree it built before needed about 30 times, and the
 * budget did not apply to it at all).  The load asks for one small key whose piece lives in its
 * own data file, so the data files cost nothing beside the metadata.  pdckpt_sharded_read_keys
 * reads the same metadata's keys.
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

int main(void) {
    dir = tu_tempdir();
    RUN(test_decode_fits_in_eight_times_the_file);
    RUN(test_read_keys);
    tu_rmtree(dir);
    free(dir);
    return CHECK_SUMMARY();
}
