/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_combined.c — concatenated streams: byte-wise name order on save, index naming without a
 * name list, exact-end checks with one, and the save-to-memory bytes equal to the file bytes.
 */
#include "check.h"
#include "test_util.h"

#include <stdlib.h>

static pdckpt_value *state_of(const char *const *names, size_t n) {
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    for (size_t i = 0; i < n; i++) {
        int64_t dims[1] = {(int64_t)i + 1};
        pdckpt_dict_set(d, names[i], tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 1, dims, (unsigned)i),
                        NULL);
    }
    return d;
}

static pdckpt_value *load(const void *bytes, size_t len, const char *const *names, size_t n,
                          pdckpt_status want, pdckpt_error *err) {
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.format = PDCKPT_FORMAT_COMBINED;
    lo.names = names;
    lo.n_names = n;
    pdckpt_value *out = NULL;
    CHECK_STATUS(pdckpt_load_memory(bytes, len, &lo, &out, NULL, err), want, err);
    return out;
}

static void test_sorted_on_save(void) {
    /* Insertion order differs from byte order: '_' (0x5f) sorts after '.' and digits, and
     * upper case before lower case. */
    static const char *const names[] = {"fc_10.w_0", "fc_1.w_0", "Fc.b", "fc_1.b_0", "@COUNTER@"};
    static const char *const sorted[] = {"@COUNTER@", "Fc.b", "fc_1.b_0", "fc_1.w_0", "fc_10.w_0"};
    pdckpt_error             err = PDCKPT_ERROR_INIT;
    pdckpt_value            *state = state_of(names, 5);
    pdckpt_save_options      so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_COMBINED;
    void  *bytes;
    size_t len;
    CHECK_OK(pdckpt_save_memory(state, &so, &bytes, &len, &err), &err);
    pdckpt_value *list = load(bytes, len, NULL, 0, PDCKPT_OK, &err);
    CHECK_EQ_INT(pdckpt_value_kind(list), PDCKPT_KIND_LIST);
    for (size_t i = 0; i < 5; i++)
        CHECK(pdckpt_value_equal(pdckpt_value_at(list, i), pdckpt_dict_get(state, sorted[i])));
    pdckpt_value      *named = load(bytes, len, sorted, 5, PDCKPT_OK, &err);
    pdckpt_tensor_view v;
    CHECK(pdckpt_tensor_get(pdckpt_dict_get(named, "fc_10.w_0"), &v) &&
          strcmp(v.name, "fc_10.w_0") == 0);
    for (size_t i = 0; i < 5; i++)
        CHECK(
            pdckpt_value_equal(pdckpt_dict_get(named, names[i]), pdckpt_dict_get(state, names[i])));
    pdckpt_free(NULL, bytes, len);
    pdckpt_value_free(list);
    pdckpt_value_free(named);
    pdckpt_value_free(state);
}

static void test_name_count_mismatch(void) {
    static const char *const names[] = {"a", "b", "c"};
    pdckpt_error             err = PDCKPT_ERROR_INIT;
    pdckpt_value            *state = state_of(names, 3);
    pdckpt_save_options      so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_COMBINED;
    void  *bytes;
    size_t len;
    CHECK_OK(pdckpt_save_memory(state, &so, &bytes, &len, &err), &err);
    /* Fewer names than tensors: the file does not end after the last named one. */
    pdckpt_value_free(load(bytes, len, names, 2, PDCKPT_ERR_FORMAT, &err));
    CHECK(strstr(err.message, "expected end of file after 2 tensors, found") != NULL);
    /* More names than tensors: the file ends early. */
    static const char *const four[] = {"a", "b", "c", "d"};
    pdckpt_value_free(load(bytes, len, four, 4, PDCKPT_ERR_FORMAT, &err));
    CHECK(strstr(err.message, "expected 4 tensors, found 3: the file ends before 'd'") != NULL);
    CHECK_EQ_INT(err.offset, (int64_t)len);
    pdckpt_value_free(load(bytes, 0, NULL, 0, PDCKPT_ERR_FORMAT, &err));
    pdckpt_free(NULL, bytes, len);
    pdckpt_value_free(state);
}

static void test_list_root_keeps_order(void) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *list = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST);
    for (unsigned i = 0; i < 4; i++) {
        int64_t dims[1] = {4 - (int64_t)i};
        pdckpt_value_append(list, tu_random_tensor(PDCKPT_DTYPE_INT8, 1, dims, i), NULL);
    }
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_COMBINED;
    void  *bytes;
    size_t len;
    CHECK_OK(pdckpt_save_memory(list, &so, &bytes, &len, &err), &err);
    pdckpt_value *back = load(bytes, len, NULL, 0, PDCKPT_OK, &err);
    CHECK(pdckpt_value_equal(list, back));
    pdckpt_free(NULL, bytes, len);
    pdckpt_value_free(back);
    pdckpt_value_free(list);
}

static void test_non_tensor_leaves(void) {
    pdckpt_error             err = PDCKPT_ERROR_INIT;
    static const char *const names[] = {"w"};
    pdckpt_value            *state = state_of(names, 1);
    pdckpt_dict_set(state, "epoch", pdckpt_value_new_int(NULL, 3), NULL);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_COMBINED;
    void  *bytes = NULL;
    size_t len = 0;
    CHECK_STATUS(pdckpt_save_memory(state, &so, &bytes, &len, &err), PDCKPT_ERR_UNSUPPORTED, &err);
    CHECK(strstr(err.message, "found a int at 'epoch'") != NULL);
    so.skip_non_tensors = true;
    CHECK_OK(pdckpt_save_memory(state, &so, &bytes, &len, &err), &err);
    pdckpt_free(NULL, bytes, len);
    pdckpt_value_free(state);
}

int main(void) {
    RUN(test_sorted_on_save);
    RUN(test_name_count_mismatch);
    RUN(test_list_root_keeps_order);
    RUN(test_non_tensor_leaves);
    return CHECK_SUMMARY();
}
