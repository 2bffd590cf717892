/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_shard_index.c — fuzz target for Hugging Face sharded checkpoints (src/formats/
 * shard_index.c, sharded_load.c): the input is the index ("model.safetensors.index.json",
 * "model_state.pdparams.index.json") of a directory holding two real shards written by pdckpt
 * (tensors a, b | c) and a link "out.<ext>" to a file outside the directory that holds a tensor
 * named "secret".  Each directory is loaded through the registry, by its path and by the index's.
 * Abort when a load succeeds with the outside file's tensor in it; errors are expected and fine.
 */
#include "fuzz_files.h"

#include <pdckpt.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct kind {
    const char   *sub, *ext, *index;
    pdckpt_format format;
} kind;

static const kind kinds[2] = {
    {"st", ".safetensors", "model.safetensors.index.json", PDCKPT_FORMAT_SAFETENSORS_SHARDED},
    {"pk", ".pdparams", "model_state.pdparams.index.json", PDCKPT_FORMAT_PICKLE_SHARDED},
};

static char top_[64] = "";

static void path_of(char *out, size_t cap, const char *sub, const char *name) {
    snprintf(out, cap, "%.63s%s%.31s%s%.63s", top_, sub ? "/" : "", sub ? sub : "", name ? "/" : "",
             name ? name : "");
}

static void tensor(pdckpt_value *dict, const char *name, int64_t n) {
    pdckpt_value *t = NULL;
    int64_t       dims[1] = {n};
    if (pdckpt_tensor_new(NULL, PDCKPT_DTYPE_FLOAT32, 1, dims, &t, NULL) != PDCKPT_OK) abort();
    memset(pdckpt_tensor_data_mut(t), 0x3f, (size_t)n * 4);
    if (pdckpt_dict_set(dict, name, t, NULL) != PDCKPT_OK) abort();
}

/* dir/<sub>/: the shards and index of {a, b, c} in 16-byte shards; outside: {secret}. */
static void make_kind(const kind *k) {
    char path[256], link[256], target[64];
    path_of(path, sizeof path, k->sub, NULL);
    pdckpt_value *root = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    tensor(root, "a", 4);
    tensor(root, "b", 4);
    tensor(root, "c", 2);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = k->format;
    so.max_shard_size = 16;
    so.durable = false;
    if (pdckpt_save_file(root, path, &so, NULL) != PDCKPT_OK) abort();
    pdckpt_value_free(root);
    root = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    tensor(root, "secret", 3);
    snprintf(target, sizeof target, "outside%s", k->ext);
    path_of(path, sizeof path, NULL, target);
    so.format = k->format == PDCKPT_FORMAT_SAFETENSORS_SHARDED ? PDCKPT_FORMAT_SAFETENSORS
                                                               : PDCKPT_FORMAT_PICKLE;
    so.max_shard_size = 0;
    if (pdckpt_save_file(root, path, &so, NULL) != PDCKPT_OK) abort();
    pdckpt_value_free(root);
    snprintf(target, sizeof target, "../outside%s", k->ext);
    snprintf(path, sizeof path, "out%s", k->ext);
    path_of(link, sizeof link, k->sub, path);
    if (symlink(target, link) != 0) abort();
}

static void cleanup(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", top_);
    if (strncmp(top_, "/tmp/pdckpt-fuzz-shards-", 24) == 0 && system(cmd) != 0) return;
}

static void setup(void) {
    if (top_[0]) return;
    snprintf(top_, sizeof top_, "/tmp/pdckpt-fuzz-shards-XXXXXX");
    if (!mkdtemp(top_)) abort();
    atexit(cleanup);
    for (int i = 0; i < 2; i++) make_kind(&kinds[i]);
}

static void load(const char *path) {
    pdckpt_value *out = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    if (pdckpt_load_file(path, NULL, &out, NULL, &err) != PDCKPT_OK) return;
    if (pdckpt_dict_get(out, "secret")) abort(); /* a shard outside the directory was read */
    pdckpt_value_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup();
    for (int i = 0; i < 2; i++) {
        char dir[256], index[256];
        path_of(dir, sizeof dir, kinds[i].sub, NULL);
        path_of(index, sizeof index, kinds[i].sub, kinds[i].index);
        fuzz_put_file(index, data, size);
        load(dir);
        load(index);
    }
    return 0;
}
