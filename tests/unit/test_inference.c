/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_inference.c — program-named checkpoints: the real inference models (1.x directories, the
 * 358-tensor ppyolo .pdiparams, the PIR model) load by directory and by prefix with the program's
 * names; combined files checked against programs (more, fewer, dtype, shape, -1 dims); static
 * save/load in all three modes and back; SelectedRows variable files; .pdiparams.info.
 */
#include "check.h"
#include "pb_build.h"
#include "test_util.h"

#include <stdlib.h>
#include <sys/stat.h>

static const char *fixture(const char *rel) {
    return tu_fixture(rel);
}

static pdckpt_value *load_ok(const char *path, const pdckpt_load_options *lo, pdckpt_format want) {
    pdckpt_value *out = NULL;
    pdckpt_format f = PDCKPT_FORMAT_AUTO;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_load_file(path, lo, &out, &f, &err), &err);
    CHECK_EQ_INT(f, want);
    return out;
}

static void test_real_inference_models(void) {
    /* ppyolo: 358 tensors in the program's sorted order (spec §3.2; SOURCES.md) */
    char prefix[4200];
    snprintf(prefix, sizeof prefix, "%s", fixture("ppyolo_tiny-pdiparams-paddle2.4.0/model"));
    pdckpt_value *d = load_ok(prefix, NULL, PDCKPT_FORMAT_INFERENCE);
    CHECK_EQ_INT(pdckpt_value_len(d), 358);
    pdckpt_tensor_view v;
    CHECK(pdckpt_tensor_get(pdckpt_dict_get(d, "conv2d_0.w_0"), &v) && v.n_dims == 4 &&
          strcmp(v.name, "conv2d_0.w_0") == 0);
    for (size_t i = 1; i < pdckpt_value_len(d); i++)
        CHECK(strcmp(pdckpt_value_get_string(pdckpt_dict_key_at(d, i - 1), NULL),
                     pdckpt_value_get_string(pdckpt_dict_key_at(d, i), NULL)) < 0);
    pdckpt_value *dir =
        load_ok(fixture("ppyolo_tiny-pdiparams-paddle2.4.0"), NULL, PDCKPT_FORMAT_INFERENCE);
    CHECK(pdckpt_value_equal(d, dir));
    pdckpt_value_free(dir);
    /* the same file named by an explicit program */
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.program_path = fixture("ppyolo_tiny-pdiparams-paddle2.4.0/model.pdmodel");
    char params[4400];
    snprintf(params, sizeof params, "%s.pdiparams", prefix);
    pdckpt_value *named = load_ok(params, &lo, PDCKPT_FORMAT_COMBINED);
    CHECK(pdckpt_value_equal(d, named));
    pdckpt_value_free(named);
    pdckpt_value_free(d);
    /* PIR: 145 parameters by sorted name, file consumed exactly */
    d = load_ok(fixture("pp-lcnet-x0_25-textline-ori-pir-paddle3/inference"), NULL,
                PDCKPT_FORMAT_INFERENCE);
    CHECK_EQ_INT(pdckpt_value_len(d), 145);
    CHECK(pdckpt_tensor_get(pdckpt_dict_get(d, "linear_0.w_0_deepcopy_143"), &v) && v.n_dims == 2 &&
          v.dims[0] == 128 && v.dims[1] == 2);
    pdckpt_value_free(d);
    /* 1.x directory of variable files */
    d = load_ok(fixture("fit_a_line-sepfiles-2019-05"), NULL, PDCKPT_FORMAT_INFERENCE);
    CHECK(pdckpt_value_len(d) == 2 && pdckpt_tensor_get(pdckpt_dict_get(d, "fc_0.w_0"), &v) &&
          v.dims[0] == 13 && v.dims[1] == 1);
    pdckpt_value_free(d);
}

static void test_real_partial_and_program_only(void) {
    pdckpt_value *out = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    /* rna-lstm holds 1 of the 54 parameters its __model__ names: a plain directory by default,
     * and a clear NOT_FOUND when the program is asked for */
    pdckpt_value *d =
        load_ok(fixture("rna-lstm-fluid1.8.3-adam-ckpt"), NULL, PDCKPT_FORMAT_VARS_DIR);
    CHECK_EQ_INT(pdckpt_value_len(d), 6);
    pdckpt_value_free(d);
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.format = PDCKPT_FORMAT_INFERENCE;
    CHECK_STATUS(pdckpt_load_file(fixture("rna-lstm-fluid1.8.3-adam-ckpt"), &lo, &out, NULL, &err),
                 PDCKPT_ERR_NOT_FOUND, &err);
    CHECK_STR(err.message, "expected a file for the program's persistable variable "
                           "'embedding_0.w_0', found none");
    CHECK_STATUS(pdckpt_load_file(fixture("program-only-ocr-paddle2.5.1"), NULL, &out, NULL, &err),
                 PDCKPT_ERR_NOT_FOUND, &err);
    CHECK(strstr(err.message, "inference.pdiparams") != NULL);
    CHECK_STATUS(pdckpt_load_file(fixture("luotao1-example-2018-01-fluid0.11-pickled"), NULL, &out,
                                  NULL, &err),
                 PDCKPT_ERR_UNSUPPORTED, &err);
    CHECK_STATUS(
        pdckpt_load_file(fixture("program-only-ocr-paddle2.5.1/inference"), NULL, &out, NULL, &err),
        PDCKPT_ERR_NOT_FOUND, &err);
    CHECK(strstr(err.message, "no parameters") != NULL);
}

static void test_params_info(void) {
    pdckpt_value *info = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    CHECK_OK(
        pdckpt_load_params_info(fixture("ppyolo_tiny-pdiparams-paddle2.4.0/model.pdiparams.info"),
                                NULL, &info, &err),
        &err);
    CHECK_EQ_INT(pdckpt_value_len(info), 360);
    const pdckpt_value *e = pdckpt_dict_get(info, "conv2d_0.w_0");
    bool                b;
    CHECK(pdckpt_value_get_string(pdckpt_dict_get(e, "structured_name"), NULL) &&
          strcmp(pdckpt_value_get_string(pdckpt_dict_get(e, "structured_name"), NULL),
                 "backbone.conv1.conv.weight") == 0);
    CHECK(pdckpt_value_get_bool(pdckpt_dict_get(e, "stop_gradient"), &b) && !b);
    CHECK(pdckpt_value_get_bool(pdckpt_dict_get(e, "trainable"), &b) && b);
    pdckpt_value_free(info);
    CHECK_OK(pdckpt_load_params_info(
                 fixture("program-only-pphgnetv2-paddle2.6.2/inference.pdiparams.info"), NULL,
                 &info, &err),
             &err);
    CHECK_EQ_INT(pdckpt_value_len(info), 275);
    e = pdckpt_dict_get(info, "batch_norm2d_1.w_1_deepcopy_10");
    CHECK_STR(pdckpt_value_get_string(pdckpt_dict_get(e, "structured_name"), NULL),
              "base_model.stem.stem2a.bn._mean");
    CHECK(pdckpt_value_get_bool(pdckpt_dict_get(e, "trainable"), &b) && !b);
    pdckpt_value_free(info);
}

static void test_params_info_hostile(void) {
    static const struct {
        const char   *bytes;
        size_t        len;
        pdckpt_status want;
        const char   *message;
    } cases[] = {
        /* d = {}; d["k"] = d: a cycle, refused */
        {"\x80\x02}q\x00X\x01\x00\x00\x00kh\x00s.", 15, PDCKPT_ERR_UNSUPPORTED,
         "a dict cannot contain itself"},
        /* a GLOBAL off the allowlist: refused where it is named */
        {"\x80\x02"
         "cos\nsystem\n.",
         14, PDCKPT_ERR_UNSUPPORTED,
         "GLOBAL: refusing global os.system: not on pdckpt's allowlist"},
        /* an allowed GLOBAL: recorded as a name (never resolved), then not the .info shape */
        {"\x80\x02"
         "ccollections\nOrderedDict\n.",
         28, PDCKPT_ERR_FORMAT, "(a dict of dicts), found an object"},
        /* string longer than the file */
        {"\x80\x02}X\xff\x00\x00\x00"
         "ab",
         10, PDCKPT_ERR_FORMAT, "expected 255 bytes of text, found 2"},
        /* memo index from nowhere */
        {"\x80\x02h\x07.", 5, PDCKPT_ERR_FORMAT, "memo entry 7"},
        /* SETITEMS with an odd count */
        {"\x80\x02}(X\x01\x00\x00\x00ku.", 13, PDCKPT_ERR_FORMAT, "key/value pairs"},
        /* trailing bytes */
        {"\x80\x02}.\x00", 5, PDCKPT_ERR_FORMAT, "end of the input after STOP"},
        /* {"k": 1}: a pickle, but a variable without its attribute dict */
        {"\x80\x02}X\x01\x00\x00\x00kK\x01s.", 13, PDCKPT_ERR_FORMAT, "found an int for 'k'"},
    };
    char *dir = tu_tempdir();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/case%zu.info", dir, i);
        tu_write_file(path, cases[i].bytes, cases[i].len);
        pdckpt_value *out = NULL;
        pdckpt_error  err = PDCKPT_ERROR_INIT;
        CHECK_STATUS(pdckpt_load_params_info(path, NULL, &out, &err), cases[i].want, &err);
        if (!strstr(err.message, cases[i].message)) {
            fprintf(stderr, "case %zu: \"%s\" lacks \"%s\"\n", i, err.message, cases[i].message);
            CHECK(false);
        }
        /* -1: the pickle decoded, but not to the .info shape (no single byte is at fault) */
        CHECK(err.offset >= (i == 2 || i == 7 ? -1 : 0) && err.offset <= (int64_t)cases[i].len);
    }
    tu_rmtree(dir);
    free(dir);
}

/* ---- synthetic programs ---- */

static pdckpt_program *program_of(tu_buf *block) {
    tu_buf prog = {0};
    tu_pb_block(&prog, 0, -1, block);
    pdckpt_program *p = NULL;
    pdckpt_error    err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_program_load_memory(prog.data, prog.len, NULL, &p, &err), &err);
    tu_buf_free(&prog);
    return p;
}

/* b: int64 [-1], a: float32 [2, 3], c: float16 [4] (declared out of order). */
static pdckpt_program *dense_program(void) {
    tu_buf  b = {0};
    int64_t da[2] = {2, 3}, db[1] = {-1}, dc[1] = {4};
    tu_pb_var(&b, "b", 7, 3, 1, db, 1);
    tu_pb_var(&b, "a", 7, 5, 2, da, 1);
    tu_pb_var(&b, "c", 7, 4, 1, dc, 1);
    tu_pb_var(&b, "x", 7, 5, 2, da, 0);
    tu_pb_var(&b, "feed", 9, -1, 0, NULL, 1);
    return program_of(&b);
}

static pdckpt_value *dense_state(int64_t b_len) {
    pdckpt_value *s = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    int64_t       da[2] = {2, 3}, db[1] = {b_len}, dc[1] = {4};
    pdckpt_dict_set(s, "c", tu_random_tensor(PDCKPT_DTYPE_FLOAT16, 1, dc, 3), NULL);
    pdckpt_dict_set(s, "a", tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, da, 1), NULL);
    pdckpt_dict_set(s, "b", tu_random_tensor(PDCKPT_DTYPE_INT64, 1, db, 2), NULL);
    pdckpt_dict_set(s, "unrelated", tu_random_tensor(PDCKPT_DTYPE_INT8, 1, dc, 9), NULL);
    return s;
}

static void check_same(const pdckpt_value *loaded, const pdckpt_value *state) {
    static const char *const names[] = {"a", "b", "c"};
    CHECK_EQ_INT(pdckpt_value_len(loaded), 3);
    for (size_t i = 0; i < 3; i++) {
        CHECK_STR(pdckpt_value_get_string(pdckpt_dict_key_at(loaded, i), NULL), names[i]);
        CHECK(pdckpt_value_equal(pdckpt_dict_get(loaded, names[i]),
                                 pdckpt_dict_get(state, names[i])));
    }
}

static void test_static_round_trips(void) {
    pdckpt_program *p = dense_program();
    pdckpt_value   *state = dense_state(5);
    pdckpt_error    err = PDCKPT_ERROR_INIT;
    char           *dir = tu_tempdir(), sub[4200], model[4400];
    pdckpt_value   *out = NULL;
    /* combined file inside a directory that does not exist yet */
    snprintf(sub, sizeof sub, "%s/new/deeper", dir);
    CHECK_OK(pdckpt_save_persistables(p, state, sub, "params", NULL, &err), &err);
    CHECK_OK(pdckpt_load_persistables(p, sub, "params", NULL, &out, &err), &err);
    check_same(out, state);
    pdckpt_value_free(out);
    /* memory: the same bytes as the file */
    void  *bytes = NULL;
    size_t len = 0, flen = 0;
    CHECK_OK(pdckpt_serialize_persistables(p, state, NULL, &bytes, &len, &err), &err);
    snprintf(model, sizeof model, "%s/params", sub);
    void *file = tu_read_file(model, &flen);
    CHECK(file && flen == len && memcmp(file, bytes, len) == 0);
    free(file);
    CHECK_OK(pdckpt_deserialize_persistables(p, bytes, len, NULL, &out, &err), &err);
    check_same(out, state);
    pdckpt_value_free(out);
    pdckpt_free(NULL, bytes, len);
    /* variable files into an existing directory: other files stay */
    snprintf(model, sizeof model, "%s/__model__", dir);
    tu_write_file(model, "keep", 4);
    CHECK_OK(pdckpt_save_persistables(p, state, dir, NULL, NULL, &err), &err);
    CHECK(tu_file_exists(model));
    CHECK_OK(pdckpt_load_persistables(p, dir, NULL, NULL, &out, &err), &err);
    check_same(out, state);
    pdckpt_value_free(out);
    /* variable files into a new directory */
    snprintf(sub, sizeof sub, "%s/vars", dir);
    CHECK_OK(pdckpt_save_persistables(p, state, sub, NULL, NULL, &err), &err);
    CHECK_EQ_INT(tu_count_entries(sub, ""), 5); /* ".", "..", a, b, c */
    pdckpt_value_free(state);
    pdckpt_program_free(p);
    tu_rmtree(dir);
    free(dir);
}

/* A combined file saved from `names` of `state` (in that order), read with the dense program. */
static pdckpt_status load_against(const pdckpt_program *p, const pdckpt_value *list,
                                  pdckpt_error *err) {
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_COMBINED;
    void  *bytes = NULL;
    size_t len = 0;
    CHECK_OK(pdckpt_save_memory(list, &so, &bytes, &len, err), err);
    pdckpt_value *out = NULL;
    pdckpt_status st = pdckpt_deserialize_persistables(p, bytes, len, NULL, &out, err);
    pdckpt_value_free(out);
    pdckpt_free(NULL, bytes, len);
    return st;
}

static pdckpt_value *list_of(pdckpt_value *a, pdckpt_value *b, pdckpt_value *c, pdckpt_value *d) {
    pdckpt_value *l = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST);
    pdckpt_value *items[4] = {a, b, c, d};
    for (int i = 0; i < 4; i++)
        if (items[i]) pdckpt_value_append(l, items[i], NULL);
    return l;
}

static void test_combined_checked_against_program(void) {
    pdckpt_program *p = dense_program();
    pdckpt_error    err = PDCKPT_ERROR_INIT;
    int64_t         d23[2] = {2, 3}, d32[2] = {3, 2}, d7[1] = {7}, d4[1] = {4};
    pdckpt_value   *a = tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, d23, 1);
    pdckpt_value   *b = tu_random_tensor(PDCKPT_DTYPE_INT64, 1, d7, 2); /* [-1] matches 7 */
    pdckpt_value   *c = tu_random_tensor(PDCKPT_DTYPE_FLOAT16, 1, d4, 3);
    pdckpt_value   *l =
        list_of(pdckpt_value_retain(a), pdckpt_value_retain(b), pdckpt_value_retain(c), NULL);
    CHECK_OK(load_against(p, l, &err), &err);
    pdckpt_value_free(l);
    l = list_of(pdckpt_value_retain(a), pdckpt_value_retain(b), NULL, NULL);
    CHECK_STATUS(load_against(p, l, &err), PDCKPT_ERR_FORMAT, &err);
    CHECK_STR(err.message, "expected 3 tensors (the program's persistable variables), found 2: "
                           "the file ends before 'c'");
    pdckpt_value_free(l);
    l = list_of(pdckpt_value_retain(a), pdckpt_value_retain(b), pdckpt_value_retain(c),
                pdckpt_value_retain(c));
    CHECK_STATUS(load_against(p, l, &err), PDCKPT_ERR_FORMAT, &err);
    CHECK_STR(err.message, "expected end of file after the program's 3 persistable variables, "
                           "found 32 more bytes");
    pdckpt_value_free(l);
    l = list_of(tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, d32, 1), pdckpt_value_retain(b),
                pdckpt_value_retain(c), NULL);
    CHECK_STATUS(load_against(p, l, &err), PDCKPT_ERR_MISMATCH, &err);
    CHECK_STR(err.message, "variable 'a': the program declares float32 [2, 3], the file holds "
                           "float32 [3, 2]");
    CHECK_EQ_INT(err.offset, 0);
    pdckpt_value_free(l);
    l = list_of(pdckpt_value_retain(a), tu_random_tensor(PDCKPT_DTYPE_INT32, 1, d7, 2),
                pdckpt_value_retain(c), NULL);
    CHECK_STATUS(load_against(p, l, &err), PDCKPT_ERR_MISMATCH, &err);
    CHECK_STR(err.message,
              "variable 'b': the program declares int64 [-1], the file holds int32 [7]");
    CHECK_EQ_INT(err.offset, 20 + 6 + 24); /* after a's 20-byte header, 6-byte desc, 24 bytes */
    pdckpt_value_free(l);
    pdckpt_value_free(a);
    pdckpt_value_free(b);
    pdckpt_value_free(c);
    pdckpt_program_free(p);
}

static void test_static_save_errors(void) {
    pdckpt_program *p = dense_program();
    pdckpt_error    err = PDCKPT_ERROR_INIT;
    char           *dir = tu_tempdir(), path[4200];
    pdckpt_value   *state = dense_state(5);
    pdckpt_dict_remove(state, "c");
    CHECK_STATUS(pdckpt_save_persistables(p, state, dir, "params", NULL, &err),
                 PDCKPT_ERR_NOT_FOUND, &err);
    CHECK_STR(err.message, "expected the state to hold the program's persistable variable 'c', "
                           "found no such key and no tensor of that Paddle name");
    int64_t d5[1] = {5};
    pdckpt_dict_set(state, "c", tu_random_tensor(PDCKPT_DTYPE_FLOAT16, 1, d5, 3), NULL);
    snprintf(path, sizeof path, "%s/vars", dir);
    CHECK_STATUS(pdckpt_save_persistables(p, state, path, NULL, NULL, &err), PDCKPT_ERR_MISMATCH,
                 &err);
    CHECK_STR(err.message, "variable 'c': the program declares float16 [4], the file holds "
                           "float16 [5]");
    CHECK(!tu_file_exists(path));
    CHECK_EQ_INT(tu_count_entries(dir, "."), 2); /* nothing left behind: only "." and ".." */
    pdckpt_value_free(state);
    pdckpt_program_free(p);
    /* a program that selects nothing writes nothing and loads as an empty dict */
    tu_buf b = {0};
    tu_pb_var(&b, "feed", 9, -1, 0, NULL, 1);
    p = program_of(&b);
    state = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    CHECK_OK(pdckpt_save_persistables(p, state, dir, "params", NULL, &err), &err);
    snprintf(path, sizeof path, "%s/params", dir);
    CHECK(!tu_file_exists(path));
    pdckpt_value *out = NULL;
    CHECK_OK(pdckpt_load_persistables(p, dir, "params", NULL, &out, &err), &err);
    CHECK(out && pdckpt_value_len(out) == 0);
    pdckpt_value_free(out);
    pdckpt_value_free(state);
    pdckpt_program_free(p);
    tu_rmtree(dir);
    free(dir);
}

static pdckpt_value *selected_rows_value(void) {
    pdckpt_value *sr = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    int64_t       d3[1] = {3}, d32[2] = {3, 2};
    pdckpt_value *rows = NULL;
    pdckpt_tensor_new(NULL, PDCKPT_DTYPE_INT64, 1, d3, &rows, NULL);
    int64_t *r = pdckpt_tensor_data_mut(rows);
    r[0] = 0;
    r[1] = 5;
    r[2] = 9;
    pdckpt_dict_set(sr, "rows", rows, NULL);
    pdckpt_dict_set(sr, "height", pdckpt_value_new_int(NULL, 10), NULL);
    pdckpt_dict_set(sr, "value", tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, d32, 4), NULL);
    return sr;
}

static void test_selected_rows_files(void) {
    tu_buf  b = {0};
    int64_t dsr[2] = {-1, 2}, dw[1] = {2};
    tu_pb_var(&b, "emb", 8, 5, 2, dsr, 1);
    tu_pb_var(&b, "w", 7, 5, 1, dw, 1);
    pdckpt_program *p = program_of(&b);
    pdckpt_value   *state = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(state, "emb", selected_rows_value(), NULL);
    pdckpt_dict_set(state, "w", tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 1, dw, 5), NULL);
    pdckpt_error err = PDCKPT_ERROR_INIT;
    char        *dir = tu_tempdir(), path[4200];
    snprintf(path, sizeof path, "%s/model", dir);
    CHECK_OK(pdckpt_save_persistables(p, state, path, NULL, NULL, &err), &err);
    /* spec §2.1: u32 0 | u64 3 | rows | i64 height | inner tensor stream */
    snprintf(path, sizeof path, "%s/model/emb", dir);
    size_t               len = 0;
    uint8_t             *bytes = tu_read_file(path, &len);
    static const uint8_t head[] = {0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  0, 0,  0, 0, 0,
                                   5, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0,  0, 10, 0, 0, 0,
                                   0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 8, 5, 16, 3, 16, 2};
    CHECK(bytes && len == sizeof head + 24 && memcmp(bytes, head, sizeof head) == 0);
    free(bytes);
    pdckpt_value *out = NULL;
    snprintf(path, sizeof path, "%s/model", dir);
    CHECK_OK(pdckpt_load_persistables(p, path, NULL, NULL, &out, &err), &err);
    CHECK(pdckpt_value_equal(pdckpt_dict_get(out, "emb"), pdckpt_dict_get(state, "emb")));
    CHECK(pdckpt_value_equal(pdckpt_dict_get(out, "w"), pdckpt_dict_get(state, "w")));
    pdckpt_value_free(out);
    CHECK_STATUS(pdckpt_save_persistables(p, state, dir, "params", NULL, &err),
                 PDCKPT_ERR_UNSUPPORTED, &err);
    CHECK(strstr(err.message, "'emb' is SELECTED_ROWS, which a combined file cannot hold") != NULL);
    pdckpt_value_free(state);
    pdckpt_program_free(p);
    tu_rmtree(dir);
    free(dir);
}

static void test_locate(void) {
    pdckpt_inference_paths paths;
    pdckpt_error           err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_inference_locate(fixture("ppyolo_tiny-pdiparams-paddle2.4.0"), &paths, &err),
             &err);
    CHECK(strstr(paths.program, "/model.pdmodel") && strstr(paths.params, "/model.pdiparams") &&
          strstr(paths.info, "/model.pdiparams.info") && !paths.vars_dir[0]);
    CHECK_OK(pdckpt_inference_locate(fixture("hand-writing-sepfiles-paddle2.1.0"), &paths, &err),
             &err);
    CHECK(strstr(paths.program, "/__model__") && !paths.params[0] && paths.vars_dir[0]);
    CHECK_OK(
        pdckpt_inference_locate(
            fixture("pp-lcnet-x0_25-textline-ori-pir-paddle3/inference.pdiparams"), &paths, &err),
        &err);
    CHECK(strstr(paths.program, "/inference.json") && !paths.info[0]);
    char *dir = tu_tempdir(), path[4200];
    snprintf(path, sizeof path, "%s/a.pdmodel", dir);
    tu_write_file(path, "x", 1);
    snprintf(path, sizeof path, "%s/b.pdmodel", dir);
    tu_write_file(path, "x", 1);
    CHECK_STATUS(pdckpt_inference_locate(dir, &paths, &err), PDCKPT_ERR_ARGUMENT, &err);
    snprintf(path, sizeof path, "%s/b.pdiparams", dir);
    tu_write_file(path, "x", 1);
    CHECK_OK(pdckpt_inference_locate(dir, &paths, &err), &err); /* the one with parameters */
    CHECK(strstr(paths.program, "/b.pdmodel") != NULL);
    snprintf(path, sizeof path, "%s/nothing", dir);
    CHECK_STATUS(pdckpt_inference_locate(path, &paths, &err), PDCKPT_ERR_NOT_FOUND, &err);
    tu_rmtree(dir);
    free(dir);
}

/* ---- allocation failure on every path (as test_oom.c does for the other formats) ---- */

typedef struct failing {
    long countdown; /* allocations left before the failure; < 0 = never fail */
} failing;

static void *fail_alloc(void *ctx, size_t size, size_t alignment) {
    failing *f = ctx;
    if (f->countdown == 0) return NULL;
    if (f->countdown > 0) f->countdown--;
    size_t rounded = (size + alignment - 1) / alignment * alignment;
    return aligned_alloc(alignment < sizeof(void *) ? sizeof(void *) : alignment, rounded);
}

static void fail_free(void *ctx, void *ptr, size_t size) {
    (void)ctx;
    (void)size;
    free(ptr);
}

typedef struct oom_case {
    tu_buf              program; /* ProgramDesc bytes */
    void               *params;  /* its combined file */
    size_t              params_len;
    const char         *info_path;
    const pdckpt_value *state;
} oom_case;

/* Parses the program, loads its parameters, saves them again and reads a .info, all through the
 * failing allocator. */
static pdckpt_status oom_op(const pdckpt_allocator *a, const oom_case *c, pdckpt_error *err) {
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.allocator = a;
    lo.zero_copy = false;
    pdckpt_program     *p = NULL;
    pdckpt_value       *out = NULL, *info = NULL;
    void               *bytes = NULL;
    size_t              len = 0;
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.allocator = a;
    pdckpt_status st = pdckpt_program_load_memory(c->program.data, c->program.len, &lo, &p, err);
    if (st == PDCKPT_OK)
        st = pdckpt_deserialize_persistables(p, c->params, c->params_len, &lo, &out, err);
    if (st == PDCKPT_OK) st = pdckpt_serialize_persistables(p, c->state, &so, &bytes, &len, err);
    if (st == PDCKPT_OK) st = pdckpt_load_params_info(c->info_path, &lo, &info, err);
    pdckpt_free(a, bytes, len);
    pdckpt_value_free(info);
    pdckpt_value_free(out);
    pdckpt_program_free(p);
    return st;
}

static void test_every_allocation_failure(void) {
    tu_buf  b = {0};
    int64_t da[2] = {2, 3}, db[1] = {-1}, dc[1] = {4};
    tu_pb_var(&b, "b", 7, 3, 1, db, 1);
    tu_pb_var(&b, "a", 7, 5, 2, da, 1);
    tu_pb_var(&b, "c", 7, 4, 1, dc, 1);
    tu_pb_var(&b, "feed", 9, -1, 0, NULL, 1);
    char        info[4200];
    const char *src = getenv("PDCKPT_SOURCE_DIR");
    snprintf(info, sizeof info, "%s/fuzz/corpus/fuzz_program/params.info", src ? src : ".");
    oom_case c = {{0}, NULL, 0, info, NULL};
    tu_pb_block(&c.program, 0, -1, &b);
    pdckpt_value   *state = dense_state(5);
    pdckpt_program *p = dense_program();
    pdckpt_error    err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_serialize_persistables(p, state, NULL, &c.params, &c.params_len, &err), &err);
    c.state = state;
    long n = 0;
    for (; n < 100000; n++) {
        failing          f = {n};
        pdckpt_allocator a = {fail_alloc, fail_free, &f};
        pdckpt_status    st = oom_op(&a, &c, &err);
        if (st == PDCKPT_OK) break;
        if (st != PDCKPT_ERR_NOMEM) {
            char line[1200];
            fprintf(stderr, "allocation %ld: expected nomem, got %s\n", n,
                    pdckpt_error_format(&err, line, sizeof line));
            CHECK(false);
            break;
        }
    }
    CHECK(n > 50);
    pdckpt_free(NULL, c.params, c.params_len);
    tu_buf_free(&c.program);
    pdckpt_value_free(state);
    pdckpt_program_free(p);
}

int main(void) {
    RUN(test_real_inference_models);
    RUN(test_every_allocation_failure);
    RUN(test_real_partial_and_program_only);
    RUN(test_params_info);
    RUN(test_params_info_hostile);
    RUN(test_static_round_trips);
    RUN(test_combined_checked_against_program);
    RUN(test_static_save_errors);
    RUN(test_selected_rows_files);
    RUN(test_locate);
    return CHECK_SUMMARY();
}
