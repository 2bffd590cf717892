/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_dygraph_load.c — the Paddle 1.x dygraph layouts: the 1.6 TNUM container (read with
 * arbitrary reserved bytes, every check with its exact diagnosis, written sorted with zeroed
 * reserved bytes), the 1.5 save_persistables directory (subdirectories for '/' names,
 * optimizers/ pickles) through detection and pdckpt_dygraph_load_persistables, and
 * pdckpt_load_dygraph's .pdparams/.pdopt pairing and name-table handling.
 */
#include "byte_buf.h"
#include "check.h"
#include "test_util.h"

#include <stdlib.h>

/* One TNUM record: NAME, length, name, version 0, desc (FP32 = 5, dims), data. */
static void record(tu_buf *p, const char *name, int64_t dim, const float *data) {
    tu_buf_put(p, "NAME", 4);
    tu_buf_u64le(p, strlen(name));
    tu_buf_put(p, name, strlen(name));
    tu_buf_u32le(p, 0);
    uint8_t desc[4] = {0x08, 0x05, 0x10, (uint8_t)dim};
    tu_buf_u32le(p, 4);
    tu_buf_put(p, desc, 4);
    tu_buf_put(p, data, (size_t)dim * sizeof(float));
}

static void tnum_header(tu_buf *p, uint64_t count) {
    for (int i = 0; i < 256; i++) tu_buf_u8(p, (uint8_t)(i * 37 + 11)); /* garbage, as Paddle */
    tu_buf_put(p, "TNUM", 4);
    tu_buf_u64le(p, count);
}

static const float w[3] = {1, 2, 3}, b[1] = {-1};

static void check_tensor(const pdckpt_value *t, int64_t dim, const float *data, const char *name) {
    pdckpt_tensor_view v;
    CHECK(pdckpt_tensor_get(t, &v));
    if (!pdckpt_tensor_get(t, &v)) return;
    CHECK(v.dtype == PDCKPT_DTYPE_FLOAT32 && v.n_dims == 1 && v.dims[0] == dim);
    CHECK(memcmp(v.data, data, (size_t)dim * sizeof(float)) == 0);
    CHECK_STR(v.name, name);
}

static void test_tnum_read(void) {
    tu_buf p = {0};
    tnum_header(&p, 2);
    record(&p, "fc_0.b_0", 1, b);
    record(&p, "fc_0.w_0", 3, w);
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *v = NULL;
    pdckpt_format fmt = PDCKPT_FORMAT_AUTO;
    CHECK_OK(pdckpt_load_memory(p.data, p.len, NULL, &v, &fmt, &err), &err);
    CHECK_EQ_INT(fmt, PDCKPT_FORMAT_TNUM);
    CHECK_EQ_INT(pdckpt_value_len(v), 2);
    check_tensor(pdckpt_dict_get(v, "fc_0.w_0"), 3, w, "fc_0.w_0");
    check_tensor(pdckpt_dict_get(v, "fc_0.b_0"), 1, b, "fc_0.b_0");
    pdckpt_value_free(v);
    /* Paddle stops after the last tensor; verify mode wants nothing after it */
    tu_buf_put(&p, "junk", 4);
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.format = PDCKPT_FORMAT_TNUM;
    CHECK_OK(pdckpt_load_memory(p.data, p.len, &lo, &v, NULL, &err), &err);
    pdckpt_value_free(v);
    lo.verify = true;
    CHECK_STATUS(pdckpt_load_memory(p.data, p.len, &lo, &v, NULL, &err), PDCKPT_ERR_FORMAT, &err);
    CHECK_EQ_INT(err.offset, (int64_t)p.len - 4);
    CHECK_STR(err.message, "expected the end of the file after 2 tensors, found 4 more bytes");
    tu_buf_free(&p);
}

static void expect(const tu_buf *p, int64_t offset, const char *message) {
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.format = PDCKPT_FORMAT_TNUM;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *v = NULL;
    CHECK_STATUS(pdckpt_load_memory(p->data, p->len, &lo, &v, NULL, &err), PDCKPT_ERR_FORMAT, &err);
    CHECK_EQ_INT(err.offset, offset);
    CHECK_STR(err.message, message);
    pdckpt_value_free(v);
}

static void test_tnum_errors(void) {
    tu_buf p = {0};
    tnum_header(&p, 1);
    memcpy(p.data + 256, "TNUX", 4);
    expect(&p, 256, "expected the tensor count mark \"TNUM\", found bytes 54 4e 55 58");
    p.len = 0;
    tnum_header(&p, 1000);
    record(&p, "w", 3, w);
    expect(&p, 260, "expected a tensor count <= 1 (bytes left / 20), found 1000"); /* 37 left */
    p.len = 0;
    tnum_header(&p, 1);
    record(&p, "w", 3, w);
    memcpy(p.data + 268, "NAMX", 4);
    expect(&p, 268, "expected the tensor name mark \"NAME\", found bytes 4e 41 4d 58");
    p.len = 0;
    tnum_header(&p, 1);
    tu_buf_put(&p, "NAME", 4);
    tu_buf_u64le(&p, 1u << 30);
    tu_buf_put(&p, "w", 1);
    tu_buf_fill(&p, 0, 19); /* enough bytes left for one record, far fewer than the name claims */
    expect(&p, 272, "expected a tensor name length of 1..20 (bytes left), found 1073741824");
    p.len = 0;
    tnum_header(&p, 2);
    record(&p, "w", 3, w);
    record(&p, "w", 1, b);
    expect(&p, 305 + 12, "expected unique tensor names, found 'w' twice");
    p.len = 0;
    tnum_header(&p, 1);
    record(&p, "w", 3, w);
    p.len -= 2;
    expect(&p, 293, "tensor 'w': truncated tensor data: expected 12 bytes, found 10");
    p.len = 0;
    tu_buf_put(&p, "short", 5);
    expect(&p, 0, "truncated reserved header: expected 256 bytes, found 5");
    tu_buf_free(&p);
}

static void test_tnum_write(void) {
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    int64_t       d3[1] = {3}, d1[1] = {1};
    pdckpt_value *tw = NULL, *tb = NULL;
    pdckpt_tensor_new_borrowed(NULL, PDCKPT_DTYPE_FLOAT32, 1, d3, w, &tw, NULL);
    pdckpt_tensor_new_borrowed(NULL, PDCKPT_DTYPE_FLOAT32, 1, d1, b, &tb, NULL);
    pdckpt_dict_set(d, "fc_0.w_0", tw, NULL); /* out of order: the file is sorted */
    pdckpt_dict_set(d, "fc_0.b_0", tb, NULL);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_TNUM;
    void        *bytes = NULL;
    size_t       len = 0;
    pdckpt_error err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_save_memory(d, &so, &bytes, &len, &err), &err);
    tu_buf want = {0};
    tnum_header(&want, 2);
    memset(want.data, 0, 256);
    record(&want, "fc_0.b_0", 1, b);
    record(&want, "fc_0.w_0", 3, w);
    CHECK(len == want.len && memcmp(bytes, want.data, len) == 0);
    pdckpt_free(NULL, bytes, len);
    tu_buf_free(&want);
    pdckpt_value_free(d);
}

/* ---- 1.5 save_persistables directories ---- */

static void write_tensor(const char *dir, const char *rel, int64_t dim, const float *data) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    pdckpt_value *t = NULL;
    pdckpt_tensor_new_borrowed(NULL, PDCKPT_DTYPE_FLOAT32, 1, &dim, data, &t, NULL);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_TENSOR;
    so.durable = false;
    pdckpt_error err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_save_file(t, path, &so, &err), &err);
    pdckpt_value_free(t);
}

/* A protocol-2 pickle of a 1.5 LearningRateDecay object: NEWOBJ + BUILD with its __dict__. */
static const char lr_pickle[] =
    "\x80\x02"
    "cpaddle.fluid.dygraph.learning_rate_scheduler\nNaturalExpDecay\nq\x00)\x81q\x01}q\x02("
    "X\x08\x00\x00\x00step_numq\x03K\x05X\x09\x00\x00\x00step_sizeq\x04K\x01"
    "X\x0d\x00\x00\x00learning_rateq\x05G?\xb9\x99\x99\x99\x99\x99\x9aub.";

static void make_dirs(const char *path) {
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
    CHECK(system(cmd) == 0);
}

static char *make_dygraph_dir(void) {
    char *dir = tu_tempdir(), path[4200];
    snprintf(path, sizeof path, "%s/mlp/MLP_0", dir);
    make_dirs(path);
    write_tensor(dir, "mlp/MLP_0/FC_0.w_0", 3, w);
    write_tensor(dir, "mlp/MLP_0/FC_0.b_0", 1, b);
    write_tensor(dir, "emb.w_0", 1, b);
    snprintf(path, sizeof path, "%s/optimizers", dir);
    make_dirs(path);
    snprintf(path, sizeof path, "%s/optimizers/SGDOptimizer_0", dir);
    CHECK(tu_write_file(path, lr_pickle, sizeof lr_pickle - 1) == 0);
    return dir;
}

static void check_lr_object(const pdckpt_value *o) {
    CHECK_EQ_INT(pdckpt_value_kind(o), PDCKPT_KIND_OBJECT);
    CHECK_STR(pdckpt_object_module(o), "paddle.fluid.dygraph.learning_rate_scheduler");
    CHECK_STR(pdckpt_object_name(o), "NaturalExpDecay");
    CHECK_EQ_INT(pdckpt_object_kind_of(o), PDCKPT_OBJECT_NEWOBJ);
    int64_t step = 0;
    double  lr = 0;
    CHECK(pdckpt_value_get_int(pdckpt_dict_get(pdckpt_object_state(o), "step_num"), &step));
    CHECK(pdckpt_value_get_float(pdckpt_dict_get(pdckpt_object_state(o), "learning_rate"), &lr));
    CHECK(step == 5 && lr == 0.1);
}

static void test_dygraph_dir(void) {
    char         *dir = make_dygraph_dir();
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *v = NULL;
    pdckpt_format fmt = PDCKPT_FORMAT_AUTO;
    CHECK_OK(pdckpt_load_file(dir, NULL, &v, &fmt, &err), &err);
    CHECK_EQ_INT(fmt, PDCKPT_FORMAT_DYGRAPH_DIR);
    static const char *const keys[] = {"emb.w_0", "mlp/MLP_0/FC_0.b_0", "mlp/MLP_0/FC_0.w_0",
                                       "optimizers/SGDOptimizer_0"};
    CHECK_EQ_INT(pdckpt_value_len(v), 4);
    for (size_t i = 0; i < 4 && i < pdckpt_value_len(v); i++)
        CHECK_STR(pdckpt_value_get_string(pdckpt_dict_key_at(v, i), NULL), keys[i]);
    check_tensor(pdckpt_dict_get(v, "mlp/MLP_0/FC_0.w_0"), 3, w, "mlp/MLP_0/FC_0.w_0");
    check_lr_object(pdckpt_dict_get(v, "optimizers/SGDOptimizer_0"));
    pdckpt_value_free(v);
    pdckpt_value *params = NULL, *optimizers = NULL;
    CHECK_OK(pdckpt_dygraph_load_persistables(dir, NULL, &params, &optimizers, &err), &err);
    CHECK_EQ_INT(pdckpt_value_len(params), 3);
    check_tensor(pdckpt_dict_get(params, "mlp/MLP_0/FC_0.b_0"), 1, b, "mlp/MLP_0/FC_0.b_0");
    CHECK_EQ_INT(pdckpt_value_len(optimizers), 1);
    check_lr_object(pdckpt_dict_get(optimizers, "SGDOptimizer_0"));
    pdckpt_value_free(params);
    pdckpt_value_free(optimizers);
    /* a broken optimizer pickle is reported with its own path */
    char path[4200];
    snprintf(path, sizeof path, "%s/optimizers/SGDOptimizer_0", dir);
    CHECK(tu_write_file(path, lr_pickle, 40) == 0);
    CHECK_STATUS(pdckpt_dygraph_load_persistables(dir, NULL, &params, NULL, &err),
                 PDCKPT_ERR_FORMAT, &err);
    CHECK_STR(err.source, path);
    CHECK(params == NULL);
    tu_rmtree(dir);
    free(dir);
}

/* ---- 1.7/1.8 load_dygraph ---- */

/* {'w': ndarray f4 [1], 'StructuredToParameterName@@': {'w': 'fc_0.w_0'}}, protocol 2. */
static const char params_pickle[] =
    "\x80\x02}q\x00(X\x01\x00\x00\x00wq\x01"
    "cnumpy.core.multiarray\n_reconstruct\nq\x02"
    "cnumpy\nndarray\nq\x03K\x00\x85q\x04"
    "C\x01"
    "b\x87Rq\x05(K\x01K\x01\x85q\x06"
    "cnumpy\ndtype\n"
    "q\x07X\x02\x00\x00\x00"
    "f4q\x08\x89\x88\x87Rq\x09(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xff"
    "J\xff\xff\xff\xffK\x00tb\x89"
    "C\x04\x00\x00\x80?tbX\x1b\x00\x00\x00StructuredToParameterName@@"
    "}X\x01\x00\x00\x00wX\x08\x00\x00\x00"
    "fc_0.w_0su.";
static const char opt_pickle[] = "\x80\x02}(X\x0c\x00\x00\x00LR_Scheduler}X\x08\x00\x00\x00"
                                 "step_numK\x07sX\x1b\x00\x00\x00StructuredToParameterName@@}u.";

static void test_load_dygraph(void) {
    char *dir = tu_tempdir(), prefix[4200], path[4300];
    snprintf(prefix, sizeof prefix, "%s/model", dir);
    snprintf(path, sizeof path, "%s.pdparams", prefix);
    CHECK(tu_write_file(path, params_pickle, sizeof params_pickle - 1) == 0);
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *params = NULL, *opt = NULL;
    CHECK_OK(pdckpt_load_dygraph(prefix, NULL, false, &params, &opt, &err), &err);
    CHECK(opt == NULL && pdckpt_value_len(params) == 1);
    float one = 1.0f;
    check_tensor(pdckpt_dict_get(params, "w"), 1, &one, "fc_0.w_0");
    pdckpt_value_free(params);
    snprintf(path, sizeof path, "%s.pdopt", prefix);
    CHECK(tu_write_file(path, opt_pickle, sizeof opt_pickle - 1) == 0);
    CHECK_OK(pdckpt_load_dygraph(path, NULL, true, &params, &opt, &err), &err); /* .pdopt given */
    CHECK_EQ_INT(pdckpt_value_len(params), 2); /* the name table kept */
    CHECK_EQ_INT(pdckpt_value_len(opt), 2);
    int64_t step = 0;
    CHECK(pdckpt_value_get_int(pdckpt_dict_get(pdckpt_dict_get(opt, "LR_Scheduler"), "step_num"),
                               &step) &&
          step == 7);
    pdckpt_value_free(params);
    pdckpt_value_free(opt);
    snprintf(path, sizeof path, "%s/none.pdparams", dir);
    CHECK_STATUS(pdckpt_load_dygraph(path, NULL, false, &params, &opt, &err), PDCKPT_ERR_NOT_FOUND,
                 &err);
    CHECK_STR(err.source, path);
    CHECK_STR(err.message, "expected the parameter file of a save_dygraph checkpoint, found none");
    tu_rmtree(dir);
    free(dir);
}

int main(void) {
    RUN(test_tnum_read);
    RUN(test_tnum_errors);
    RUN(test_tnum_write);
    RUN(test_dygraph_dir);
    RUN(test_load_dygraph);
    return CHECK_SUMMARY();
}
