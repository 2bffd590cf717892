/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_flatten.c — pdckpt_value_flatten, the one tree flattener (flat formats, the MPI writers,
 * `pdckpt dist shard`): '.'-joined names in tree order, Paddle's (name, tensor) tuples, the name
 * table skipped at the top, and the two flags that let nesting and non-tensor leaves through.
 */
#include "check.h"
#include "test_util.h"

#include <string.h>

static pdckpt_value *tensor(void) {
    pdckpt_value *t = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    int64_t       dims[1] = {2};
    CHECK_OK(pdckpt_tensor_new(NULL, PDCKPT_DTYPE_FLOAT32, 1, dims, &t, &err), &err);
    return t;
}

/* {"a": T, "blocks": [{"w": T}, ("w_0", T)], "lr": 0.1, PDCKPT_NAME_TABLE_KEY: {"a": "x"}} */
static pdckpt_value *tree(void) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *root = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_value *blocks = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST);
    pdckpt_value *inner = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_value *pair = pdckpt_value_new_container(NULL, PDCKPT_KIND_TUPLE);
    pdckpt_value *names = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    CHECK_OK(pdckpt_dict_set(inner, "w", tensor(), &err), &err);
    CHECK_OK(pdckpt_value_append(pair, pdckpt_value_new_string(NULL, "w_0", 3), &err), &err);
    CHECK_OK(pdckpt_value_append(pair, tensor(), &err), &err);
    CHECK_OK(pdckpt_value_append(blocks, inner, &err), &err);
    CHECK_OK(pdckpt_value_append(blocks, pair, &err), &err);
    CHECK_OK(pdckpt_dict_set(names, "a", pdckpt_value_new_string(NULL, "x", 1), &err), &err);
    CHECK_OK(pdckpt_dict_set(root, "a", tensor(), &err), &err);
    CHECK_OK(pdckpt_dict_set(root, "blocks", blocks, &err), &err);
    CHECK_OK(pdckpt_dict_set(root, "lr", pdckpt_value_new_float(NULL, 0.1), &err), &err);
    CHECK_OK(pdckpt_dict_set(root, PDCKPT_NAME_TABLE_KEY, names, &err), &err);
    return root;
}

static void test_names_in_tree_order(void) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *root = tree();
    pdckpt_flat   flat;
    unsigned      all = PDCKPT_FLATTEN_NESTED | PDCKPT_FLATTEN_SKIP_NON_TENSORS;
    CHECK_OK(pdckpt_value_flatten(root, all, &flat, &err), &err);
    CHECK_EQ_INT(flat.len, 3);
    CHECK_EQ_INT(flat.n_skipped, 1); /* lr */
    CHECK_STR(flat.entries[0].name, "a");
    CHECK_STR(flat.entries[1].name, "blocks.0.w");
    CHECK_STR(flat.entries[2].name, "blocks.1");
    for (size_t i = 0; i < flat.len; i++)
        CHECK(pdckpt_value_kind(flat.entries[i].tensor) == PDCKPT_KIND_TENSOR);
    pdckpt_flat_free(&flat);
    CHECK(flat.entries == NULL && flat.len == 0);
    pdckpt_value_free(root);
}

static void test_flags_refuse_what_they_do_not_allow(void) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *root = tree();
    pdckpt_flat   flat;
    CHECK_STATUS(pdckpt_value_flatten(root, PDCKPT_FLATTEN_SKIP_NON_TENSORS, &flat, &err),
                 PDCKPT_ERR_UNSUPPORTED, &err); /* "blocks" is nested */
    CHECK(flat.len == 0 && flat.entries == NULL);
    CHECK_STATUS(pdckpt_value_flatten(root, PDCKPT_FLATTEN_NESTED, &flat, &err),
                 PDCKPT_ERR_UNSUPPORTED, &err); /* "lr" is not a tensor */
    CHECK(strstr(err.message, "'lr'") != NULL);
    pdckpt_flat_free(&flat);
    CHECK_STATUS(pdckpt_value_flatten(NULL, 0, &flat, &err), PDCKPT_ERR_ARGUMENT, &err);
    pdckpt_value_free(root);
}

/* How pdckpt_check_restore names entries: every leaf, '/', an int key by its digits. */
static void test_all_leaves_with_slashes(void) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *root = tree();
    pdckpt_value *by_int = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    CHECK_OK(pdckpt_dict_set_value(by_int, pdckpt_value_new_int(NULL, 7), tensor(), &err), &err);
    CHECK_OK(pdckpt_dict_set(root, "state", by_int, &err), &err);
    pdckpt_flat flat;
    CHECK_OK(
        pdckpt_value_flatten(root, PDCKPT_FLATTEN_ALL_LEAVES | PDCKPT_FLATTEN_SLASH, &flat, &err),
        &err);
    CHECK_EQ_INT(flat.len, 5);
    CHECK_STR(flat.entries[1].name, "blocks/0/w");
    CHECK_STR(flat.entries[3].name, "lr");
    CHECK(pdckpt_value_kind(flat.entries[3].tensor) == PDCKPT_KIND_FLOAT);
    CHECK_STR(flat.entries[4].name, "state/7");
    pdckpt_flat_free(&flat);
    pdckpt_value_free(root);
}

int main(void) {
    RUN(test_names_in_tree_order);
    RUN(test_flags_refuse_what_they_do_not_allow);
    RUN(test_all_leaves_with_slashes);
    return CHECK_SUMMARY();
}
