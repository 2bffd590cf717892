/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_pickle_index.c — the lazy-open index "<file>.pdkidx" (src/formats/pickle/pickle_index.c)
 * under hostile edits, run under ASan/UBSan by ctest: bodies changed byte by byte with their hash
 * made to match again (so the decoder itself reads garbage), and truncations.  Whatever the index
 * holds, a zero-copy open must succeed (an index never fails an open), and an untouched index
 * must give exactly what parsing gives.  Stale and rewritten pickles:
 * tests/py/test_pickle_index.py.
 */
#include "check.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define HEADER (8 + 9 * 8)

/* Large tensors (so the index is written) and one of every plain value kind. */
static pdckpt_value *state(void) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    int64_t       dims[2] = {128, 160};
    for (int i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof key, "layer%d.weight", i);
        CHECK_OK(
            pdckpt_dict_set(d, key, tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, dims, 7u + i), &err),
            &err);
    }
    pdckpt_value *list = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST);
    CHECK_OK(pdckpt_value_append(list, pdckpt_value_new_string(NULL, "a", 1), &err), &err);
    CHECK_OK(pdckpt_value_append(list, pdckpt_value_new_float(NULL, 2.5), &err), &err);
    CHECK_OK(pdckpt_value_append(list, pdckpt_value_new_bool(NULL, true), &err), &err);
    CHECK_OK(pdckpt_value_append(list, pdckpt_value_new_none(NULL), &err), &err);
    CHECK_OK(pdckpt_value_append(list, pdckpt_value_new_bytes(NULL, "xyz", 3), &err), &err);
    CHECK_OK(pdckpt_dict_set(d, "extra", list, &err), &err);
    CHECK_OK(pdckpt_dict_set(d, "step", pdckpt_value_new_int(NULL, -12345), &err), &err);
    return d;
}

static pdckpt_value *open_lazy(const char *path) {
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT_WITH(true);
    pdckpt_value       *tree = NULL;
    CHECK_OK(pdckpt_load_file(path, &lo, &tree, NULL, &err), &err);
    return tree;
}

static void write_rehashed(const char *idx_path, uint8_t *idx, size_t len) {
    uint64_t n = len - HEADER, h = XXH3_64bits(idx + HEADER, n);
    memcpy(idx + HEADER - 16, &n, 8); /* little-endian hosts, as the index */
    memcpy(idx + HEADER - 8, &h, 8);
    CHECK(tu_write_file(idx_path, idx, len) == 0);
}

static void test_hostile_indexes(void) {
    char         *dir = tu_tempdir(), path[2048], idx_path[4096];
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *src = state(), *parsed = NULL;
    snprintf(path, sizeof path, "%s/m.pdparams", dir);
    snprintf(idx_path, sizeof idx_path, "%s.pdkidx", path);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.durable = false;
    CHECK_OK(pdckpt_save_file(src, path, &so, &err), &err);
    CHECK(tu_file_exists(idx_path));
    pdckpt_load_options ro = PDCKPT_LOAD_OPTIONS_INIT;
    CHECK_OK(pdckpt_load_file(path, &ro, &parsed, NULL, &err), &err);
    pdckpt_value *lazy = open_lazy(path);
    CHECK(pdckpt_value_equal(lazy, parsed));
    pdckpt_value_free(lazy);
    size_t   len = 0;
    uint8_t *orig = tu_read_file(idx_path, &len), *idx = malloc(len);
    CHECK(orig && idx && len > HEADER);
    for (size_t at = HEADER; at < len; at += 3) { /* every third body byte, rehashed */
        memcpy(idx, orig, len);
        idx[at] ^= (uint8_t)(0x5A + at);
        write_rehashed(idx_path, idx, len);
        pdckpt_value_free(open_lazy(path));
    }
    for (size_t cut = 0; cut < len; cut += 5) { /* truncations, with and without a matching hash */
        memcpy(idx, orig, len);
        CHECK(tu_write_file(idx_path, idx, cut) == 0);
        pdckpt_value_free(open_lazy(path));
        if (cut > HEADER) write_rehashed(idx_path, idx, cut);
        lazy = open_lazy(path);
        CHECK(lazy != NULL);
        pdckpt_value_free(lazy);
    }
    free(orig);
    free(idx);
    pdckpt_value_free(parsed);
    pdckpt_value_free(src);
    tu_rmtree(dir);
    free(dir);
}

int main(void) {
    RUN(test_hostile_indexes);
    return CHECK_SUMMARY();
}
