/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_program.c — program reading: every real fixture program parses with the counts
 * ../shared/fixtures/real/SOURCES.md gives; Paddle's selection rule on hand-built programs (all
 * blocks, FEED/FETCH/READER/RAW excluded, duplicates collapsed to the last declaration, byte-wise
 * order); -1 dims; packed dims and unknown fields; feed/fetch by column; every truncation
 * refused with an offset; the Fluid 0.11 layouts refused; a program above Paddle's 64 MiB
 * protobuf limit; the allocation budget.
 */
#include "check.h"
#include "pb_build.h"
#include "test_util.h"

#include <stdlib.h>

static const char *fixtures(void) {
    return tu_fixture("");
}

typedef struct expect {
    const char *path;
    int64_t     version;
    size_t      blocks, vars, ops, saved;
    const char *first; /* first persistable (sorted) */
    int64_t     first_dim0;
} expect;

static void check_fixture(const expect *e) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", fixtures(), e->path);
    pdckpt_program *p = NULL;
    pdckpt_error    err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_program_load_file(path, NULL, &p, &err), &err);
    if (!p) return;
    size_t             n;
    const char *const *names = pdckpt_program_persistables(p, &n);
    CHECK_EQ_INT(pdckpt_program_version(p), e->version);
    CHECK_EQ_INT(pdckpt_program_n_blocks(p), e->blocks);
    CHECK_EQ_INT(pdckpt_program_n_vars(p), e->vars);
    CHECK_EQ_INT(pdckpt_program_n_ops(p), e->ops);
    CHECK_EQ_INT(n, e->saved);
    CHECK_STR(names[0], e->first);
    for (size_t i = 1; i < n; i++) CHECK(strcmp(names[i - 1], names[i]) < 0);
    pdckpt_program_var v;
    CHECK(pdckpt_program_find_var(p, e->first, &v) && v.n_dims >= 1 && v.dims[0] == e->first_dim0);
    pdckpt_program_free(p);
}

static void test_fixture_programs(void) {
    static const expect table[] = {
        {"luotao1-example-2018-02-fluid0.12/__model__", -1, 1, 18, 11, 6, "fc_0.b_0", 200},
        {"fit_a_line-sepfiles-2019-05/__model__", -1, 1, 8, 5, 2, "fc_0.b_0", 1},
        {"dqn-sepfiles-custom-names-paddle1.x/__model__", -1, 1, 35, 23, 10, "policy_conv1", 32},
        {"hand-writing-sepfiles-paddle2.1.0/__model__", 2001000, 1, 19, 12, 6, "fc_0.b_0", 100},
        {"rna-lstm-fluid1.8.3-adam-ckpt/__model__", 1008003, 1, 154, 63, 54, "embedding_0.w_0", 6},
        {"fluid-save-program-paddlex-1.7.2/best_model.pdmodel", 1007002, 6, 1445, 846, 588,
         "@LR_DECAY_COUNTER@", 1},
        {"ppyolo_tiny-pdiparams-paddle2.4.0/model.pdmodel", 2004000, 1, 775, 281, 358,
         "batch_norm2d_0.b_0", 8},
        {"program-only-ocr-paddle2.5.1/inference.pdmodel", 2005001, 1, 536, 210, 196,
         "batch_norm2d_0.b_0", 64},
        {"program-only-pphgnetv2-paddle2.6.2/inference.pdmodel", 2006002, 1, 555, 194, 275,
         "batch_norm2d_0.b_0_deepcopy_2", 16},
        {"program-only-ppocrv5-rec-paddle3.1.0/inference.pdmodel", 3001000, 1, 983, 318, 458,
         "batch_norm2d_0.b_0", 32},
        {"pp-lcnet-x0_25-textline-ori-pir-paddle3/inference.json", 1, 1, 146, 260, 145,
         "batch_norm2d_0.b_0_deepcopy_2", 8},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) check_fixture(&table[i]);
}

static void test_fixture_feeds_and_types(void) {
    char path[4200];
    snprintf(path, sizeof path, "%s/ppyolo_tiny-pdiparams-paddle2.4.0/model.pdmodel", fixtures());
    pdckpt_program *p = NULL;
    pdckpt_error    err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_program_load_file(path, NULL, &p, &err), &err);
    size_t             n;
    const char *const *feeds = pdckpt_program_feeds(p, &n);
    CHECK_EQ_INT(n, 3); /* spec §6.2: stored scale_factor, image, im_shape; columns 2, 1, 0 */
    CHECK_STR(feeds[0], "im_shape");
    CHECK_STR(feeds[1], "image");
    CHECK_STR(feeds[2], "scale_factor");
    pdckpt_program_var v;
    CHECK(pdckpt_program_find_var(p, "image", &v));
    CHECK(!v.saved && v.n_dims == 4 && v.dims[0] == -1); /* batch dimension unknown */
    CHECK(pdckpt_program_find_var(p, "feed", &v));
    CHECK(v.var_type == 9 && v.persistable && !v.saved); /* the holder is excluded by type */
    CHECK_STR(v.var_type_name, "feed_minibatch");
    pdckpt_program_free(p);
    snprintf(path, sizeof path, "%s/rna-lstm-fluid1.8.3-adam-ckpt/__model__", fixtures());
    CHECK_OK(pdckpt_program_load_file(path, NULL, &p, &err), &err);
    feeds = pdckpt_program_feeds(p, &n);
    CHECK(n == 2 && pdckpt_program_persistables(p, &n) && n == 54);
    pdckpt_program_free(p);
}

static void test_fluid011_refused(void) {
    char            path[4200];
    pdckpt_program *p = NULL;
    pdckpt_error    err = PDCKPT_ERROR_INIT;
    snprintf(path, sizeof path, "%s/luotao1-example-2018-01-fluid0.11-pickled/__model__",
             fixtures());
    CHECK_STATUS(pdckpt_program_load_file(path, NULL, &p, &err), PDCKPT_ERR_UNSUPPORTED, &err);
    CHECK(strstr(err.message, "Fluid 0.11's pickled __model__") != NULL);
    pdckpt_format f;
    CHECK_OK(pdckpt_detect_format(path, &f, &err), &err);
    CHECK_EQ_INT(f, PDCKPT_FORMAT_PICKLE); /* what the file is; only a program load refuses it */
    snprintf(path, sizeof path, "%s/luotao1-example-2018-01-fluid0.11-pickled/__model__.dat",
             fixtures());
    CHECK_STATUS(pdckpt_program_load_file(path, NULL, &p, &err), PDCKPT_ERR_FORMAT, &err);
    CHECK(strstr(err.message, "VarDesc.type (field 2)") && strstr(err.message, "Fluid 0.11"));
    CHECK(err.offset > 0);
}

/* Two blocks; duplicates, excluded kinds, non-persistables, and names whose byte order differs
 * from naive expectations ('B' < '_' < 'a' < 0xc3 'é'). */
static tu_buf rule_program(void) {
    tu_buf  prog = {0}, b0 = {0}, b1 = {0};
    int64_t d2[2] = {-1, 4}, d1[1] = {3};
    tu_pb_var(&b0, "z.w", 7, 5, 2, d2, 1);
    tu_pb_var(&b0, "\xc3\xa9t\xc3\xa9", 7, 3, 1, d1, 1);
    tu_pb_var(&b0, "feed", 9, -1, 0, NULL, 1);
    tu_pb_var(&b0, "fetch", 10, -1, 0, NULL, 1);
    tu_pb_var(&b0, "reader", 15, -1, 0, NULL, 1);
    tu_pb_var(&b0, "raw", 17, -1, 0, NULL, 1);
    tu_pb_var(&b0, "tmp", 7, 5, 1, d1, 0);
    tu_pb_var(&b0, "absent_flag", 7, 5, 1, d1, -1);
    tu_pb_var(&b0, "B", 7, 5, 1, d1, 1);
    tu_pb_var(&b0, "dup", 7, 5, 1, d1, 1);
    tu_pb_var(&b0, "rows", 8, 5, 2, d2, 1);
    tu_pb_op(&b0, "feed", "X", "feed", "Out", "x1", 1);
    tu_pb_op(&b0, "feed", "X", "feed", "Out", "x0", 0);
    tu_pb_op(&b0, "fetch", "X", "z.w", "Out", "fetch", 0);
    tu_pb_block(&prog, 0, -1, &b0);
    tu_pb_var(&b1, "_sub", 7, 6, 0, NULL, 1);
    tu_pb_var(&b1, "dup", 7, 4, 1, d1, 1); /* redeclared in block 1: this one counts */
    tu_pb_var(&b1, "a", 7, 5, 1, d1, 1);
    tu_pb_block(&prog, 1, 0, &b1);
    tu_pb_version(&prog, 2006000);
    return prog;
}

static void test_selection_rule(void) {
    tu_buf          bytes = rule_program();
    pdckpt_program *p = NULL;
    pdckpt_error    err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_program_load_memory(bytes.data, bytes.len, NULL, &p, &err), &err);
    size_t                   n;
    const char *const       *names = pdckpt_program_persistables(p, &n);
    static const char *const want[] = {"B", "_sub", "a", "dup", "rows", "z.w", "\xc3\xa9t\xc3\xa9"};
    CHECK_EQ_INT(n, 7);
    for (size_t i = 0; i < n && i < 7; i++) CHECK_STR(names[i], want[i]);
    pdckpt_program_var v;
    CHECK(pdckpt_program_find_var(p, "dup", &v) && v.block == 1 && v.dtype == PDCKPT_DTYPE_FLOAT16);
    CHECK(pdckpt_program_find_var(p, "z.w", &v) && v.n_dims == 2 && v.dims[0] == -1);
    CHECK(pdckpt_program_find_var(p, "_sub", &v) && v.n_dims == 0 &&
          v.dtype == PDCKPT_DTYPE_FLOAT64);
    CHECK(pdckpt_program_find_var(p, "rows", &v) && v.var_type == 8 && v.saved);
    CHECK(pdckpt_program_find_var(p, "absent_flag", &v) && !v.persistable && !v.saved);
    CHECK_EQ_INT(pdckpt_program_n_blocks(p), 2);
    CHECK_EQ_INT(pdckpt_program_version(p), 2006000);
    const char *const *feeds = pdckpt_program_feeds(p, &n);
    CHECK(n == 2 && strcmp(feeds[0], "x0") == 0 && strcmp(feeds[1], "x1") == 0);
    const char *const *fetches = pdckpt_program_fetches(p, &n);
    CHECK(n == 1 && strcmp(fetches[0], "z.w") == 0);
    pdckpt_program_free(p);
    tu_buf_free(&bytes);
}

/* Packed dims (allowed by protobuf, never written by Paddle) and unknown fields of every wire
 * type read the same as the plain form. */
static void test_packed_and_unknown(void) {
    tu_buf prog = {0}, block = {0}, var = {0}, type = {0}, lod = {0}, tensor = {0}, packed = {0};
    tu_pb_varint(&packed, 784);
    tu_pb_varint(&packed, UINT64_MAX); /* -1 */
    tu_pb_uint(&tensor, 1, 5);
    tu_pb_msg(&tensor, 2, &packed);
    tu_pb_msg(&lod, 1, &tensor);
    tu_pb_uint(&type, 1, 7);
    tu_pb_msg(&type, 3, &lod);
    tu_pb_uint(&type, 99, 7); /* unknown varint */
    tu_pb_str(&var, 1, "w");
    tu_pb_msg(&var, 2, &type);
    tu_pb_uint(&var, 3, 1);
    tu_buf_put(&var, "\x45\x01\x02\x03\x04", 5);                 /* unknown field 8, 32-bit */
    tu_buf_put(&var, "\x49\x01\x02\x03\x04\x05\x06\x07\x08", 9); /* unknown field 9, 64-bit */
    tu_pb_msg(&block, 3, &var);
    tu_pb_block(&prog, 0, -1, &block);
    pdckpt_program *p = NULL;
    pdckpt_error    err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_program_load_memory(prog.data, prog.len, NULL, &p, &err), &err);
    pdckpt_program_var v;
    CHECK(pdckpt_program_find_var(p, "w", &v) && v.n_dims == 2 && v.dims[0] == 784 &&
          v.dims[1] == -1 && v.saved);
    pdckpt_program_free(p);
    tu_buf_free(&prog);
}

/* Every prefix either parses (it ends at a top-level field boundary: protobuf cannot tell) or is
 * refused as FORMAT with an offset inside the prefix. */
static void test_every_truncation(void) {
    tu_buf bytes = rule_program();
    size_t refused = 0;
    for (size_t n = 0; n < bytes.len; n++) {
        pdckpt_program *p = NULL;
        pdckpt_error    err = PDCKPT_ERROR_INIT;
        pdckpt_status   st = pdckpt_program_load_memory(bytes.data, n, NULL, &p, &err);
        pdckpt_program_free(p);
        if (st == PDCKPT_OK) continue;
        refused++;
        CHECK_EQ_INT(st, PDCKPT_ERR_FORMAT);
        CHECK(err.offset >= 0 && (size_t)err.offset <= n);
    }
    CHECK(refused >= bytes.len - 3); /* only the block and version boundaries parse */
    tu_buf_free(&bytes);
}

/* A program above the 64 MiB at which Paddle's C++ protobuf stops (a 65 MiB op attribute, the
 * way huge programs get big) reads; a budget below what it needs is a LIMIT error. */
static void test_program_above_64_mib(void) {
    size_t big = (size_t)65 << 20;
    char  *s = malloc(big + 1);
    if (!s) return;
    memset(s, 'x', big);
    s[big] = '\0';
    tu_buf  prog = {0}, block = {0}, op = {0}, attr = {0};
    int64_t d[1] = {2};
    tu_pb_var(&block, "w", 7, 5, 1, d, 1);
    tu_pb_str(&attr, 1, "blob");
    tu_pb_uint(&attr, 2, 2); /* STRING */
    tu_pb_bytes(&attr, 5, s, big);
    free(s);
    tu_pb_str(&op, 3, "huge");
    tu_pb_msg(&op, 4, &attr);
    tu_pb_msg(&block, 4, &op);
    tu_pb_block(&prog, 0, -1, &block);
    CHECK(prog.len > ((size_t)64 << 20));
    pdckpt_program *p = NULL;
    pdckpt_error    err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_program_load_memory(prog.data, prog.len, NULL, &p, &err), &err);
    size_t n;
    CHECK(p && pdckpt_program_persistables(p, &n) && n == 1 && pdckpt_program_n_ops(p) == 1);
    pdckpt_program_free(p);
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.max_alloc_bytes = 1 << 20;
    CHECK_STATUS(pdckpt_program_load_memory(prog.data, prog.len, &lo, &p, &err), PDCKPT_ERR_LIMIT,
                 &err);
    tu_buf_free(&prog);
}

static void expect_bad(const void *bytes, size_t len, pdckpt_status want, int64_t offset,
                       const char *message) {
    pdckpt_program *p = NULL;
    pdckpt_error    err = PDCKPT_ERROR_INIT;
    CHECK_STATUS(pdckpt_program_load_memory(bytes, len, NULL, &p, &err), want, &err);
    CHECK_EQ_INT(err.offset, offset);
    if (!strstr(err.message, message)) {
        fprintf(stderr, "message \"%s\" lacks \"%s\"\n", err.message, message);
        CHECK(false);
    }
    pdckpt_program_free(p);
}

static void test_malformed_programs(void) {
    expect_bad("", 0, PDCKPT_ERR_FORMAT, 0, "at least one block");
    /* BlockDesc without parent_idx (required) */
    expect_bad("\x0a\x02\x08\x00", 4, PDCKPT_ERR_FORMAT, 2,
               "BlockDesc: expected required field 'parent_idx' (2), found none");
    /* a block longer than the file */
    expect_bad("\x0a\x09\x08\x00", 4, PDCKPT_ERR_FORMAT, 1, "expected a length <= 2");
    /* VarDesc.name (string) as a varint */
    expect_bad("\x0a\x08\x08\x00\x10\x00\x1a\x02\x08\x01", 10, PDCKPT_ERR_FORMAT, 8,
               "VarDesc.name (field 1): expected a length-delimited value, found a varint");
    /* wire type 3 (group) */
    expect_bad("\x0a\x04\x08\x00\x10\x00\x0b", 7, PDCKPT_ERR_FORMAT, 6,
               "ProgramDesc.blocks (field 1): expected a length-delimited value, found a group");
    /* neither protobuf nor JSON */
    expect_bad("\x00\x00\x00\x00", 4, PDCKPT_ERR_FORMAT, 0, "found first byte 0x00");
}

/* ---- PIR JSON ---- */

static const char pir_text[] =
    "{\"base_code\":{\"magic\":\"pir\",\"trainable\":true,\"version\":1},\"program\":{\"regions\":"
    "[{\"#\":\"region_0\",\"blocks\":[{\"#\":\"block_0\",\"args\":[],\"ops\":["
    "{\"#\":\"p\",\"A\":[0,1,1,\"w_b\"],\"DA\":[],\"O\":{\"%\":1,\"TT\":{\"#\":\"0.t_dtensor\","
    "\"D\":[{\"#\":\"0.t_f32\"},[3,2],\"NCHW\",[],0]}},\"OA\":[1,0,1],\"QA\":[]},"
    "{\"#\":\"p\",\"A\":[0,0,0,\"mean\"],\"O\":{\"%\":2,\"TT\":{\"#\":\"0.t_dtensor\","
    "\"D\":[{\"#\":\"0.t_f16\"},[2],\"NCHW\",[],0]}},\"OA\":[1,1,0]},"
    "{\"#\":\"p\",\"A\":[0,1,0,\"not_saved\"],\"O\":{\"%\":3,\"TT\":{\"#\":\"0.t_dtensor\","
    "\"D\":[{\"#\":\"0.t_i64\"},[1],\"NCHW\",[],0]}},\"OA\":[0,1,1]},"
    "{\"#\":\"p\",\"A\":[0,1,0,\"A_first\"],\"O\":{\"%\":4,\"TT\":{\"#\":\"0.t_dtensor\","
    "\"D\":[{\"#\":\"0.t_bf16\"},[],\"NCHW\",[],0]}}},"
    "{\"#\":\"1.data\",\"A\":[{\"AT\":{\"#\":\"0.a_str\",\"D\":\"x\"},\"N\":\"name\"}],"
    "\"O\":[{\"%\":5,\"TT\":{\"#\":\"0.t_dtensor\",\"D\":[{\"#\":\"0.t_f32\"},[-1,3],\"NCHW\",[],0]"
    "}}],"
    "\"OA\":[{\"AT\":{\"#\":\"0.a_array\",\"D\":[{\"#\":\"0.a_bool\",\"D\":false}]},\"N\":\"stop_"
    "gradient\"}]},"
    "{\"#\":\"1.data\",\"A\":[{\"AT\":{\"#\":\"0.a_str\",\"D\":\"lr\"},\"N\":\"name\"}],"
    "\"O\":[{\"%\":6,\"TT\":{\"#\":\"0.t_dtensor\",\"D\":[{\"#\":\"0.t_f32\"},[1],\"NCHW\",[],0]}}]"
    ","
    "\"OA\":[{\"AT\":{\"#\":\"0.a_array\",\"D\":[{\"#\":\"0.a_bool\",\"D\":true}]},\"N\":"
    "\"persistable\"}]},"
    "{\"#\":\"1.matmul\",\"I\":[{\"%\":5},{\"%\":1}],\"O\":[{\"%\":7}]},"
    "{\"#\":\"1.fetch\",\"A\":[{\"AT\":{\"#\":\"0.a_str\",\"D\":\"out1\"},\"N\":\"name\"},"
    "{\"AT\":{\"#\":\"0.a_i32\",\"D\":1},\"N\":\"col\"}],\"I\":[{\"%\":7}]},"
    "{\"#\":\"1.fetch\",\"A\":[{\"AT\":{\"#\":\"0.a_str\",\"D\":\"out0\"},\"N\":\"name\"},"
    "{\"AT\":{\"#\":\"0.a_i32\",\"D\":0},\"N\":\"col\"}],\"I\":[{\"%\":7}]}"
    "]}]}]}}";

static void test_pir_program(void) {
    pdckpt_program *p = NULL;
    pdckpt_error    err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_program_load_memory(pir_text, sizeof pir_text - 1, NULL, &p, &err), &err);
    if (!p) return;
    CHECK_EQ_INT(pdckpt_program_format(p), PDCKPT_FORMAT_PIR_JSON);
    CHECK_EQ_INT(pdckpt_program_version(p), 1);
    CHECK_EQ_INT(pdckpt_program_n_ops(p), 9);
    size_t             n;
    const char *const *names = pdckpt_program_persistables(p, &n);
    /* all persistable parameter ops + the persistable data value, by name; not_saved has
     * OA persistable 0 (Paddle's save_vars_pir keeps only persistable values) */
    static const char *const want[] = {"A_first", "lr", "mean", "w_b"};
    CHECK_EQ_INT(n, 4);
    for (size_t i = 0; i < n && i < 4; i++) CHECK_STR(names[i], want[i]);
    pdckpt_program_var v;
    CHECK(pdckpt_program_find_var(p, "w_b", &v) && v.dtype == PDCKPT_DTYPE_FLOAT32 &&
          v.n_dims == 2 && v.dims[0] == 3 && v.dims[1] == 2 && v.is_parameter);
    CHECK(pdckpt_program_find_var(p, "mean", &v) && v.dtype == PDCKPT_DTYPE_FLOAT16 &&
          !v.is_parameter);
    CHECK(pdckpt_program_find_var(p, "A_first", &v) && v.dtype == PDCKPT_DTYPE_BFLOAT16 &&
          v.n_dims == 0);
    CHECK(pdckpt_program_find_var(p, "x", &v) && !v.saved && v.dims[0] == -1);
    const char *const *fetches = pdckpt_program_fetches(p, &n);
    CHECK(n == 2 && strcmp(fetches[0], "out0") == 0 && strcmp(fetches[1], "out1") == 0);
    const char *const *feeds = pdckpt_program_feeds(p, &n);
    CHECK(n == 2 && strcmp(feeds[0], "x") == 0);
    pdckpt_program_free(p);
}

static void test_pir_malformed(void) {
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.format = PDCKPT_FORMAT_PIR_JSON;
    pdckpt_program   *p = NULL;
    pdckpt_error      err = PDCKPT_ERROR_INIT;
    static const char wrong_magic[] = "{\"base_code\":{\"magic\":\"pdmodel\"},\"program\":{}}";
    CHECK_STATUS(pdckpt_program_load_memory(wrong_magic, sizeof wrong_magic - 1, &lo, &p, &err),
                 PDCKPT_ERR_FORMAT, &err);
    CHECK_STR(err.message,
              "expected base_code.magic \"pir\" (a Paddle 3 PIR program), found \"pdmodel\"");
    CHECK_STATUS(pdckpt_program_load_memory(pir_text, 100, &lo, &p, &err), PDCKPT_ERR_FORMAT, &err);
    CHECK(err.offset > 0 && err.offset <= 100 && strstr(err.message, "JSON"));
    static const char bad_param[] =
        "{\"base_code\":{\"magic\":\"pir\",\"version\":1},\"program\":{\"regions\":[{\"blocks\":"
        "[{\"ops\":[{\"#\":\"p\",\"A\":[0,1,1]}]}]}]}}";
    CHECK_STATUS(pdckpt_program_load_memory(bad_param, sizeof bad_param - 1, &lo, &p, &err),
                 PDCKPT_ERR_FORMAT, &err);
    CHECK(strstr(err.message, "PIR op 1 ('p'): expected A = [") != NULL);
    lo.max_alloc_bytes = 4096;
    CHECK_STATUS(pdckpt_program_load_memory(pir_text, sizeof pir_text - 1, &lo, &p, &err),
                 PDCKPT_ERR_LIMIT, &err);
}

int main(void) {
    RUN(test_fixture_programs);
    RUN(test_fixture_feeds_and_types);
    RUN(test_fluid011_refused);
    RUN(test_selection_rule);
    RUN(test_packed_and_unknown);
    RUN(test_every_truncation);
    RUN(test_program_above_64_mib);
    RUN(test_malformed_programs);
    RUN(test_pir_program);
    RUN(test_pir_malformed);
    return CHECK_SUMMARY();
}
