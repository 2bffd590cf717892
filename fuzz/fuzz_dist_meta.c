/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_dist_meta.c — fuzz target for libpdckpt_mpi's parsers of bytes it did not produce itself:
 * the sharded checkpoint's metadata file (Paddle's pickled Metadata into the index of pieces and
 * files, and its listing into the metadata tree)
 * and a rank's state description (skeleton) as another rank sends it, decoded into trees.
 * The first byte picks the parser (file, skeleton, or a metadata tree in the codec); the rest
 * is its input.
 */
#include "formats/distcp/pdk_distcp.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void index_of(const pdckpt_value *tree) {
    pdckpt_error   err = PDCKPT_ERROR_INIT;
    pdk_meta_index ix;
    if (pdk_meta_index_build(tree, "<fuzz>", &ix, &err) == PDCKPT_OK) {
        for (size_t k = 0; k < ix.n_keys; k++) (void)pdk_meta_find(&ix, ix.keys[k].key);
        pdk_blob       compact = {0};
        pdk_meta_index back;
        if (pdk_meta_index_encode(&ix, &compact, &err) == PDCKPT_OK &&
            pdk_meta_index_decode(compact.data, compact.len, "<fuzz>", &back, &err) == PDCKPT_OK)
            pdk_meta_index_free(&back);
        pdk_blob_free(&compact);
        pdk_meta_index_free(&ix);
    }
}

/* A metadata file: straight into the index (what loads do), and with its listing, the tree
 * pdckpt_sharded_read_metadata builds from it, indexed again. */
static void meta_file(const uint8_t *data, size_t size) {
    pdckpt_error   err = PDCKPT_ERROR_INIT;
    pdckpt_value  *tree = NULL;
    pdk_blob       bytes = {0};
    pdk_meta_index ix;
    pdk_meta_list  list = {.keep_pieces = true};
    pdk_blob_put(&bytes, data, size);
    if (!bytes.failed &&
        pdk_meta_decode_index(&bytes, "<fuzz>", 0, &ix, NULL, NULL, &err) == PDCKPT_OK)
        pdk_meta_index_free(&ix);
    pdk_blob_free(&bytes);
    pdk_error_reset(&err);
    pdk_blob_put(&bytes, data, size);
    if (bytes.failed ||
        pdk_meta_decode_index(&bytes, "<fuzz>", 0, &ix, &list, NULL, &err) != PDCKPT_OK) {
        pdk_blob_free(&bytes);
        return;
    }
    pdk_blob_free(&bytes);
    if (pdk_meta_tree_from_list(&ix, &list, &tree, &err) == PDCKPT_OK) index_of(tree);
    pdckpt_value_free(tree);
    pdk_meta_index_free(&ix);
    pdk_meta_list_free(&list);
}

/* A tree in the library's codec, so the fuzzer reaches the index checks directly; the same bytes
 * as the compact index another rank broadcasts. */
static void meta_tree(const uint8_t *data, size_t size) {
    pdckpt_error   err = PDCKPT_ERROR_INIT;
    pdk_meta_index compact;
    if (pdk_meta_index_decode(data, size, "<fuzz>", &compact, &err) == PDCKPT_OK)
        pdk_meta_index_free(&compact);
    pdk_rd        r = {data, size, 0, "<fuzz>", &err};
    pdckpt_value *tree = NULL;
    if (pdk_codec_decode(&r, NULL, NULL, NULL, &tree) != PDCKPT_OK) return;
    index_of(tree);
    pdckpt_value_free(tree);
}

static pdckpt_value *make_tensor(void *ctx, uint64_t ordinal, pdckpt_error *err) {
    const pdk_skel *sk = ctx;
    pdckpt_value   *t = NULL;
    if (ordinal >= sk->n_tensors || sk->descs[ordinal].n_bytes > (1u << 20)) {
        err->status = PDCKPT_ERR_FORMAT;
        return NULL;
    }
    return pdk_tensor_from_desc(&sk->descs[ordinal], NULL, &t, err) == PDCKPT_OK ? t : NULL;
}

static void skeleton(const uint8_t *data, size_t size) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    pdk_skel     sk;
    if (pdk_skel_parse(data, size, 0, &sk, &err) == PDCKPT_OK) {
        pdk_merge_plan plan = {.skels = &sk, .n_ranks = 1, .opt = true};
        if (pdk_merge_plan_build(&plan, &err) == PDCKPT_OK)
            for (size_t i = 0; i < sk.n_entries; i++) {
                (void)pdk_merge_winner(&plan, 0, &sk.entries[i]);
                if (!sk.entries[i].tree) continue;
                pdckpt_error  e = PDCKPT_ERROR_INIT;
                pdk_rd        r = {sk.entries[i].tree, sk.entries[i].tree_len, 0, "<fuzz>", &e};
                pdckpt_value *v = NULL;
                if (pdk_codec_decode(&r, NULL, make_tensor, &sk, &v) == PDCKPT_OK)
                    pdckpt_value_free(v);
            }
        pdk_merge_plan_free(&plan);
    }
    pdk_skel_free(&sk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    switch (data[0] % 3) {
    case 0: meta_file(data + 1, size - 1); break;
    case 1: skeleton(data + 1, size - 1); break;
    default: meta_tree(data + 1, size - 1); break;
    }
    return 0;
}
