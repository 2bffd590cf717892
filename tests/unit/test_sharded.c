/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_sharded.c — Hugging Face sharded checkpoints: huggingface_hub's split (an oversized tensor
 * gets its own shard before the one being filled), round trips from the index file and from the
 * directory, no temporaries left, a single shard written as one file, and hostile indexes (names
 * leaving the directory, symlinks out, duplicates, entries missing from their shard, shard
 * tensors the index does not map) refused with the file and offset.  tests/py/test_huggingface.py
 * compares the bytes with huggingface_hub's and safetensors' own.
 */
#include "check.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *dir;

static const char *at(const char *name) {
    static char buf[4][4096];
    static int  next;
    char       *out = buf[next++ % 4];
    snprintf(out, sizeof buf[0], "%s/%s", dir, name);
    return out;
}

/* a: 100 B, b: 100 B, big: 400 B, c: 100 B (float32 [25] / [100]). */
static pdckpt_value *state(void) {
    pdckpt_value *s = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    int64_t       small[1] = {25}, large[1] = {100};
    pdckpt_dict_set(s, "a", tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 1, small, 1), NULL);
    pdckpt_dict_set(s, "b", tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 1, small, 2), NULL);
    pdckpt_dict_set(s, "big", tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 1, large, 3), NULL);
    pdckpt_dict_set(s, "c", tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 1, small, 4), NULL);
    return s;
}

static void save_sharded(const pdckpt_value *s, const char *target, uint64_t limit) {
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_SAFETENSORS;
    so.max_shard_size = limit;
    so.durable = false;
    CHECK_OK(pdckpt_save_file(s, target, &so, &err), &err);
}

static void test_split_and_round_trip(void) {
    pdckpt_value *s = state();
    save_sharded(s, at("out/"), 1); /* a directory target is created */
    save_sharded(s, at("out/model.safetensors"), 250);
    /* huggingface_hub's order: big (> 250) is met while {a, b} is still being filled, so big
     * takes shard 1, a and b shard 2 (closed when c would overflow it), c shard 3. */
    size_t len;
    char  *index = tu_read_file(at("out/model.safetensors.index.json"), &len);
    CHECK(index && strstr(index, "\"total_size\": 700"));
    CHECK(index && strstr(index, "\"big\": \"model-00001-of-00003.safetensors\",\n"
                                 "    \"a\": \"model-00002-of-00003.safetensors\",\n"
                                 "    \"b\": \"model-00002-of-00003.safetensors\",\n"
                                 "    \"c\": \"model-00003-of-00003.safetensors\"\n  }\n}"));
    free(index);
    CHECK_EQ_INT(tu_count_entries(at("out"), "."), 2); /* "." and "..": no temporaries left */
    /* The 4-shard save before left its own shards, which the new index does not name. */
    CHECK(tu_file_exists(at("out/model-00004-of-00004.safetensors")));
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *back = NULL;
    pdckpt_format got = PDCKPT_FORMAT_AUTO;
    CHECK_OK(pdckpt_load_file(at("out"), NULL, &back, &got, &err), &err);
    CHECK_EQ_INT(got, PDCKPT_FORMAT_SAFETENSORS_SHARDED);
    CHECK_EQ_INT(pdckpt_value_len(back), 4); /* in weight_map order */
    for (size_t i = 0; i < 4; i++) {
        const char *key = pdckpt_value_get_string(pdckpt_dict_key_at(s, i), NULL);
        CHECK(pdckpt_value_equal(pdckpt_value_at(s, i), pdckpt_dict_get(back, key)));
    }
    pdckpt_value_free(back);
    pdckpt_verify_report rep;
    CHECK_OK(pdckpt_verify_file(at("out/model.safetensors.index.json"), NULL, &rep, &err), &err);
    CHECK_EQ_INT(rep.n_tensors, 4);
    CHECK_EQ_INT(rep.n_data_bytes, 700);
    /* Everything in one shard: one file as Hugging Face writes it, and the stale index goes. */
    save_sharded(s, at("out/"), 10000);
    CHECK(tu_file_exists(at("out/model.safetensors")));
    CHECK(!tu_file_exists(at("out/model.safetensors.index.json")));
    pdckpt_value_free(s);
}

static void write_text(const char *name, const char *text) {
    CHECK_EQ_INT(tu_write_file(at(name), text, strlen(text)), 0);
}

/* Loads h/ after writing `index` over the index of a 3-shard save; checks status and text. */
static void expect_refused(const char *index, pdckpt_status want, const char *source_end,
                           const char *message_part) {
    tu_rmtree(at("h"));
    pdckpt_value *s = state();
    save_sharded(s, at("h/"), 250);
    pdckpt_value_free(s);
    write_text("h/model.safetensors.index.json", index);
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *back = NULL;
    CHECK_STATUS(pdckpt_load_file(at("h"), NULL, &back, NULL, &err), want, &err);
    size_t n = strlen(err.source), k = strlen(source_end);
    CHECK(n >= k && strcmp(err.source + n - k, source_end) == 0);
    if (!strstr(err.message, message_part)) fprintf(stderr, "message: %s\n", err.message);
    CHECK(strstr(err.message, message_part) != NULL);
    pdckpt_value_free(back);
}

#define MAP_HEAD "{\"metadata\": {\"total_size\": 700}, \"weight_map\": {"
#define S1       "\"model-00001-of-00003.safetensors\""
#define S2       "\"model-00002-of-00003.safetensors\""
#define S3       "\"model-00003-of-00003.safetensors\""

static void test_hostile_indexes(void) {
    expect_refused(MAP_HEAD "\"a\": \"../model-00001-of-00003.safetensors\"}}", PDCKPT_ERR_FORMAT,
                   "model.safetensors.index.json", "'.' or '..' path component");
    expect_refused(MAP_HEAD "\"a\": \"/etc/passwd.safetensors\"}}", PDCKPT_ERR_FORMAT,
                   "model.safetensors.index.json", "an absolute path");
    expect_refused(MAP_HEAD "\"a\": \"model-00001-of-00003.pdparams\"}}", PDCKPT_ERR_FORMAT,
                   "model.safetensors.index.json", "shard extension");
    expect_refused(MAP_HEAD "\"a\": " S1 ", \"b\": " S1 ", \"a\": " S1 "}}", PDCKPT_ERR_FORMAT,
                   "model.safetensors.index.json", "duplicate tensor name 'a'");
    expect_refused("{\"metadata\": {}}", PDCKPT_ERR_FORMAT, "model.safetensors.index.json",
                   "\"weight_map\"");
    /* b is in shard 2 but the index does not name it; c named in the wrong shard; d nowhere. */
    expect_refused(MAP_HEAD "\"big\": " S1 ", \"a\": " S2 ", \"c\": " S3 "}}", PDCKPT_ERR_FORMAT,
                   "model-00002-of-00003.safetensors", "tensor 'b' is in this shard but not");
    expect_refused(MAP_HEAD "\"big\": " S1 ", \"a\": " S2 ", \"b\": " S3 ", \"c\": " S3 "}}",
                   PDCKPT_ERR_FORMAT, "model-00002-of-00003.safetensors",
                   "tensor 'b' is in this shard, but");
    expect_refused(MAP_HEAD "\"big\": " S1 ", \"a\": " S2 ", \"b\": " S2 ", \"c\": " S2 "}}",
                   PDCKPT_ERR_FORMAT, "model-00002-of-00003.safetensors", "expected tensor 'c'");
    expect_refused(MAP_HEAD "\"big\": " S1 ", \"a\": " S2 ", \"b\": " S2 ", \"c\": " S3
                            ", \"d\": " S3 "}}",
                   PDCKPT_ERR_FORMAT, "model-00003-of-00003.safetensors", "expected tensor 'd'");
    expect_refused(MAP_HEAD "\"big\": " S1 ", \"a\": " S2 ", \"b\": " S2
                            ", \"c\": \"model-00009-of-00009.safetensors\"}}",
                   PDCKPT_ERR_NOT_FOUND, "model-00009-of-00009.safetensors", "");
    /* A shard that is a symlink to a file outside the directory. */
    tu_rmtree(at("outside.safetensors"));
    write_text("outside.safetensors", "x");
    tu_rmtree(at("h"));
    pdckpt_value *s = state();
    save_sharded(s, at("h/"), 250);
    pdckpt_value_free(s);
    unlink(at("h/model-00003-of-00003.safetensors"));
    CHECK_EQ_INT(symlink(at("outside.safetensors"), at("h/model-00003-of-00003.safetensors")), 0);
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *back = NULL;
    CHECK_STATUS(pdckpt_load_file(at("h/model.safetensors.index.json"), NULL, &back, NULL, &err),
                 PDCKPT_ERR_FORMAT, &err);
    CHECK(strstr(err.message, "found a link to") != NULL);
}

static void test_parse_size(void) {
    static const struct {
        const char *text;
        uint64_t    bytes;
    } ok[] = {{"5GB", 5000000000ull},  {"5gb", 5000000000ull},   {" 1.5 GB", 1500000000ull},
              {"500MB", 500000000ull}, {"2GiB", 2147483648ull},  {"1000", 1000},
              {"20KB", 20000},         {"1TB", 1000000000000ull}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t     got = 0;
        pdckpt_error err = PDCKPT_ERROR_INIT;
        CHECK_OK(pdckpt_parse_size(ok[i].text, &got, &err), &err);
        CHECK_EQ_INT(got, ok[i].bytes);
    }
    static const char *const bad[] = {"", "GB", "5XB", "0", "-1GB", "1e3", "5 G B", "0.0001KB"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t     got = 0;
        pdckpt_error err = PDCKPT_ERROR_INIT;
        CHECK_STATUS(pdckpt_parse_size(bad[i], &got, &err), PDCKPT_ERR_ARGUMENT, &err);
    }
}

int main(void) {
    dir = tu_tempdir();
    RUN(test_split_and_round_trip);
    RUN(test_hostile_indexes);
    RUN(test_parse_size);
    tu_rmtree(dir);
    free(dir);
    return CHECK_SUMMARY();
}
