/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_value.c — the value tree: dict order and Python-style replacement, the hash index on large
 * dicts (string and non-string keys), removal, equality, the leaf walk, opaque objects, tensor
 * shape checks and sharing.
 */
#include "check.h"
#include "core/pdk_core.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>

static pdckpt_value *int_value(int64_t v) {
    return pdckpt_value_new_int(NULL, v);
}

static void test_dict_order_and_replace(void) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    CHECK_OK(pdckpt_dict_set(d, "b", int_value(1), &err), &err);
    CHECK_OK(pdckpt_dict_set(d, "a", int_value(2), &err), &err);
    CHECK_OK(pdckpt_dict_set(d, "b", int_value(3), &err), &err); /* replaces in place */
    CHECK_EQ_INT(pdckpt_value_len(d), 2);
    CHECK_STR(pdckpt_value_get_string(pdckpt_dict_key_at(d, 0), NULL), "b");
    int64_t v = 0;
    CHECK(pdckpt_value_get_int(pdckpt_dict_get(d, "b"), &v) && v == 3);
    CHECK(pdckpt_dict_remove(d, "b"));
    CHECK(!pdckpt_dict_remove(d, "b"));
    CHECK_EQ_INT(pdckpt_value_len(d), 1);
    CHECK(pdckpt_dict_get(d, "b") == NULL);
    CHECK_STATUS(pdckpt_dict_set(d, NULL, int_value(1), &err), PDCKPT_ERR_ARGUMENT, &err);
    pdckpt_value_free(d);
}

static void test_large_dict_index(void) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    char          key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "layer_%d.w_0_moment1_0", i);
        CHECK_OK(pdckpt_dict_set(d, key, int_value(i), &err), &err);
    }
    CHECK(pdckpt_dict_remove(d, "layer_17.w_0_moment1_0"));
    for (int i = 0; i < 5000; i += 7) {
        snprintf(key, sizeof key, "layer_%d.w_0_moment1_0", i);
        int64_t             v = -1;
        const pdckpt_value *found = pdckpt_dict_get(d, key);
        CHECK(i == 17 ? found == NULL : (pdckpt_value_get_int(found, &v) && v == i));
    }
    CHECK_EQ_INT(pdckpt_value_len(d), 4999);
    snprintf(key, sizeof key, "layer_%d.w_0_moment1_0", 4999);
    CHECK_STR(pdckpt_value_get_string(pdckpt_dict_key_at(d, 4998), NULL), key);
    pdckpt_value_free(d);
}

static void test_non_string_keys(void) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    CHECK_OK(pdckpt_dict_set_value(d, int_value(7), int_value(1), &err), &err);
    CHECK_OK(pdckpt_dict_set_value(d, int_value(7), int_value(2), &err), &err);
    CHECK_EQ_INT(pdckpt_value_len(d), 1);
    int64_t v;
    CHECK(pdckpt_value_get_int(pdckpt_value_at(d, 0), &v) && v == 2);
    pdckpt_value_free(d);
}

static pdckpt_value *pair_key(int64_t i) {
    pdckpt_value *t = pdckpt_value_new_container(NULL, PDCKPT_KIND_TUPLE);
    pdckpt_value_append(t, int_value(i), NULL);
    pdckpt_value_append(t, pdckpt_value_new_string(NULL, i % 2 ? "odd" : "even", SIZE_MAX), NULL);
    return t;
}

/* Ids as keys (vocabularies, param-group tables): 200,000 int keys and as many tuple keys go
 * through the hash index; a linear scan would take minutes here. */
static void test_many_hashed_non_string_keys(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    enum { N = 200000 };
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    for (int64_t i = 0; i < N; i++) {
        CHECK_OK(pdckpt_dict_set_value(d, int_value(i * 7919), int_value(i), &err), &err);
        CHECK_OK(pdckpt_dict_set_value(d, pair_key(i), int_value(-i), &err), &err);
    }
    CHECK_OK(pdckpt_dict_set_value(d, pdckpt_value_new_float(NULL, 0.5), int_value(1), &err), &err);
    for (int64_t i = 0; i < N; i += 3) { /* replaced in place, never appended */
        CHECK_OK(pdckpt_dict_set_value(d, int_value(i * 7919), int_value(i + 1), &err), &err);
        CHECK_OK(pdckpt_dict_set_value(d, pair_key(i), int_value(i + 2), &err), &err);
    }
    CHECK_OK(pdckpt_dict_set_value(d, pdckpt_value_new_float(NULL, 0.5), int_value(2), &err), &err);
    CHECK_EQ_INT(pdckpt_value_len(d), 2 * N + 1);
    int64_t v = 0;
    CHECK(pdckpt_value_get_int(pdckpt_value_at(d, 2 * 3000), &v) && v == 3001);
    CHECK(pdckpt_value_get_int(pdckpt_value_at(d, 2 * 3000 + 1), &v) && v == 3002);
    CHECK(pdckpt_value_get_int(pdckpt_value_at(d, 2 * 3001 + 1), &v) && v == -3001);
    CHECK(pdckpt_value_get_int(pdckpt_value_at(d, 2 * N), &v) && v == 2);
    pdckpt_value_free(d);
}

static pdckpt_value *sample_tree(float x) {
    pdckpt_value *root = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    int64_t       dims[2] = {2, 2};
    pdckpt_value *t = tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, dims, 1);
    ((float *)pdckpt_tensor_data_mut(t))[0] = x;
    pdckpt_dict_set(root, "w", t, NULL);
    pdckpt_value *lr = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(lr, "last_epoch", int_value(3), NULL);
    pdckpt_dict_set(lr, "last_lr", pdckpt_value_new_float(NULL, NAN), NULL);
    pdckpt_dict_set(root, "LR_Scheduler", lr, NULL);
    pdckpt_value *list = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST);
    pdckpt_value_append(list, pdckpt_value_new_string(NULL, "x", SIZE_MAX), NULL);
    pdckpt_value_append(list, pdckpt_value_new_none(NULL), NULL);
    pdckpt_dict_set(root, "extra", list, NULL);
    return root;
}

static void test_equality(void) {
    pdckpt_value *a = sample_tree(1.0f), *b = sample_tree(1.0f), *c = sample_tree(2.0f);
    CHECK(pdckpt_value_equal(a, b)); /* NaN equals the same NaN bit pattern */
    CHECK(!pdckpt_value_equal(a, c));
    pdckpt_value_free(a);
    pdckpt_value_free(b);
    pdckpt_value_free(c);
}

typedef struct walk_log {
    char text[512];
} walk_log;

static int log_leaf(void *ctx, const pdckpt_path_step *path, size_t depth,
                    const pdckpt_value *leaf) {
    walk_log *log = ctx;
    size_t    n = strlen(log->text);
    for (size_t i = 0; i < depth; i++) {
        const char *k = path[i].key ? pdckpt_value_get_string(path[i].key, NULL) : NULL;
        n += (size_t)(k ? snprintf(log->text + n, sizeof log->text - n, "/%s", k)
                        : snprintf(log->text + n, sizeof log->text - n, "/%lld",
                                   (long long)path[i].index));
    }
    snprintf(log->text + n, sizeof log->text - n, "=%s;",
             pdckpt_kind_name(pdckpt_value_kind(leaf)));
    return 0;
}

static void test_walk(void) {
    pdckpt_value *root = sample_tree(1.0f);
    walk_log      log = {{0}};
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_value_walk(root, log_leaf, &log, &err), &err);
    CHECK_STR(log.text, "/w=tensor;/LR_Scheduler/last_epoch=int;/LR_Scheduler/last_lr=float;"
                        "/extra/0=string;/extra/1=none;");
    pdckpt_value_free(root);
}

static void test_objects(void) {
    pdckpt_value *args = pdckpt_value_new_container(NULL, PDCKPT_KIND_TUPLE);
    pdckpt_value_append(args, int_value(5), NULL);
    pdckpt_value *state = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(state, "step_num", int_value(10), NULL);
    pdckpt_value *o = pdckpt_value_new_object(NULL, PDCKPT_OBJECT_NEWOBJ,
                                              "paddle.fluid.dygraph.learning_rate_scheduler",
                                              "NaturalExpDecay", args, state);
    CHECK(o != NULL);
    CHECK_EQ_INT(pdckpt_value_kind(o), PDCKPT_KIND_OBJECT);
    CHECK_EQ_INT(pdckpt_object_kind_of(o), PDCKPT_OBJECT_NEWOBJ);
    CHECK_STR(pdckpt_object_name(o), "NaturalExpDecay");
    CHECK_EQ_INT(pdckpt_value_len(pdckpt_object_args(o)), 1);
    CHECK(pdckpt_dict_get(pdckpt_object_state(o), "step_num") != NULL);
    pdckpt_value_free(o);
}

static void test_tensor_shapes(void) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *t = NULL;
    CHECK_OK(pdckpt_tensor_new(NULL, PDCKPT_DTYPE_FLOAT64, 0, NULL, &t, &err), &err);
    pdckpt_tensor_view v;
    CHECK(pdckpt_tensor_get(t, &v) && v.n_elements == 1 && v.n_bytes == 8 && v.data);
    pdckpt_value_free(t);
    int64_t empty[3] = {4, 0, 5};
    CHECK_OK(pdckpt_tensor_new(NULL, PDCKPT_DTYPE_INT8, 3, empty, &t, &err), &err);
    CHECK(pdckpt_tensor_get(t, &v) && v.n_elements == 0 && v.data == NULL);
    pdckpt_value_free(t);
    int64_t huge[2] = {INT64_MAX, 4};
    CHECK_STATUS(pdckpt_tensor_new(NULL, PDCKPT_DTYPE_FLOAT32, 2, huge, &t, &err), PDCKPT_ERR_LIMIT,
                 &err);
    int64_t negative[1] = {-1};
    CHECK_STATUS(pdckpt_tensor_new(NULL, PDCKPT_DTYPE_FLOAT32, 1, negative, &t, &err),
                 PDCKPT_ERR_ARGUMENT, &err);
    int64_t many[65] = {0};
    CHECK_STATUS(pdckpt_tensor_new(NULL, PDCKPT_DTYPE_FLOAT32, 65, many, &t, &err),
                 PDCKPT_ERR_ARGUMENT, &err);
    int64_t ten[1] = {10};
    CHECK_OK(pdckpt_tensor_new(NULL, PDCKPT_DTYPE_UINT16, 1, ten, &t, &err), &err);
    CHECK_OK(pdckpt_tensor_reinterpret(t, PDCKPT_DTYPE_BFLOAT16, &err), &err);
    CHECK_STATUS(pdckpt_tensor_reinterpret(t, PDCKPT_DTYPE_FLOAT32, &err), PDCKPT_ERR_ARGUMENT,
                 &err);
    uint64_t        level[3] = {0, 4, 10};
    const uint64_t *levels[1] = {level};
    uint64_t        lens[1] = {3};
    CHECK_OK(pdckpt_tensor_set_lod(t, 1, levels, lens, &err), &err);
    CHECK(pdckpt_tensor_get(t, &v) && v.n_lod_levels == 1 && v.lod[0][2] == 10);
    pdckpt_value_free(t);
}

static void test_borrowed_and_shared(void) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    float         data[4] = {1, 2, 3, 4};
    int64_t       dims[1] = {4};
    pdckpt_value *t = NULL;
    CHECK_OK(pdckpt_tensor_new_borrowed(NULL, PDCKPT_DTYPE_FLOAT32, 1, dims, data, &t, &err), &err);
    pdckpt_tensor_view v;
    CHECK(pdckpt_tensor_get(t, &v) && v.data == data && v.read_only && v.buffer == NULL);
    CHECK(pdckpt_tensor_data_mut(t) == NULL);
    /* One value under two parents (what pickle memo references produce). */
    pdckpt_value *a = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST);
    pdckpt_value *b = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST);
    CHECK_OK(pdckpt_value_append(a, t, &err), &err);
    CHECK(!pdckpt_value_shared(t) && !pdckpt_value_shared(a) && !pdckpt_value_shared(NULL));
    CHECK_OK(pdckpt_value_append(b, pdckpt_value_retain(t), &err), &err);
    CHECK(pdckpt_value_shared(t)); /* a walk meets it twice: converters must remember it */
    pdckpt_value_free(a);
    CHECK(!pdckpt_value_shared(t)); /* one parent left */
    CHECK(pdckpt_tensor_get(pdckpt_value_at(b, 0), &v) && ((const float *)v.data)[3] == 4);
    pdckpt_value_free(b);
    pdckpt_value *self = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST);
    CHECK_STATUS(pdckpt_value_append(self, self, &err), PDCKPT_ERR_ARGUMENT, &err);
}

/* Ints beyond 64 bits: made, read and printed through the one public form (bigint.c). */
static void test_big_ints(void) {
    static const uint8_t two64[] = {0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const uint8_t minus_two64[] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff};
    pdckpt_value        *v = pdckpt_value_new_bigint(NULL, two64, sizeof two64);
    pdckpt_value        *w = pdckpt_value_new_bigint(NULL, minus_two64, sizeof minus_two64);
    size_t               n = 0;
    const uint8_t       *b = pdckpt_value_get_bigint(v, &n);
    CHECK(b && n == sizeof two64 && memcmp(b, two64, n) == 0);
    CHECK_STR(pdckpt_object_module(v), "builtins");
    CHECK_STR(pdckpt_object_name(v), "int");
    char text[64];
    CHECK(pdckpt_bigint_decimal(v, text, sizeof text));
    CHECK_STR(text, "18446744073709551616");
    CHECK(pdckpt_bigint_decimal(w, text, sizeof text));
    CHECK_STR(text, "-18446744073709551616");
    CHECK(!pdckpt_bigint_decimal(v, text, 10)); /* too small a buffer */
    pdckpt_value *i = pdckpt_value_new_int(NULL, 5);
    CHECK(!pdckpt_value_get_bigint(i, &n) && !pdckpt_bigint_decimal(i, text, sizeof text));
    CHECK(pdckpt_value_new_bigint(NULL, two64, 0) == NULL);
    pdckpt_value_free(i);
    pdckpt_value_free(v);
    pdckpt_value_free(w);
}

/* A borrowed string holds its buffer, reads its bytes in place, and once owned has a
 * NUL-terminated copy of its own and lets the buffer go (issue 17). */
static void test_borrowed_strings(void) {
    pdckpt_buffer *buf = pdk_buffer_new_alloc(NULL, 16, true);
    memcpy(pdk_buffer_data(buf), "keyXbytes", 9);
    pdckpt_value *s =
        pdk_value_new_borrowed(NULL, PDCKPT_KIND_STRING, pdk_buffer_data(buf), 3, buf);
    pdckpt_value *b =
        pdk_value_new_borrowed(NULL, PDCKPT_KIND_BYTES, (char *)pdk_buffer_data(buf) + 4, 5, buf);
    CHECK(pdk_value_new_borrowed(NULL, PDCKPT_KIND_INT, "x", 1, buf) == NULL);
    CHECK_EQ_INT((int64_t)pdk_buffer_refs(buf), 3);
    pdckpt_buffer *owner = NULL;
    CHECK(pdk_value_is_borrowed(s, &owner) && owner == buf);
    size_t n = 0;
    CHECK(pdckpt_value_get_string(s, &n) == pdk_buffer_data(buf) && n == 3);
    CHECK(pdk_value_is_string(s, "key", 3));
    pdckpt_value *copy = pdckpt_value_new_string(NULL, "key", 3);
    CHECK(pdckpt_value_equal(s, copy));
    CHECK(pdk_value_own(s) && !pdk_value_is_borrowed(s, NULL));
    CHECK_EQ_INT((int64_t)pdk_buffer_refs(buf), 2);
    memset(pdk_buffer_data(buf), 'Z', 3); /* what relayout would do to the bytes */
    CHECK_STR(pdckpt_value_get_string(s, NULL), "key");
    CHECK(pdk_value_own(s) && pdk_value_own(copy)); /* owned values: nothing to do */
    pdckpt_value_free(b);                           /* a borrowed value freed releases its buffer */
    CHECK_EQ_INT((int64_t)pdk_buffer_refs(buf), 1);
    pdckpt_value_free(s);
    pdckpt_value_free(copy);
    pdckpt_buffer_release(buf);
}

/* pdckpt_value_release_at: the item and (dict) its key are released (a value held elsewhere
 * lives on) and None is left in their places; the rest of the dict still answers; misuse is
 * refused; the emptied container frees cleanly (the sanitizer build checks the counts). */
static void test_release_at(void) {
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_value *kept = int_value(7);
    for (int i = 0; i < 10; i++) { /* past the hashed-index threshold */
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        pdckpt_dict_set(d, key, i == 3 ? pdckpt_value_retain(kept) : int_value(i), NULL);
    }
    CHECK(pdckpt_value_shared(kept));
    CHECK(pdckpt_value_release_at(d, 3) && pdckpt_value_release_at(d, 5));
    CHECK(!pdckpt_value_shared(kept)); /* the dict's reference was released */
    CHECK_EQ_INT(pdckpt_value_len(d), 10);
    CHECK_EQ_INT(pdckpt_value_kind(pdckpt_dict_key_at(d, 3)), PDCKPT_KIND_NONE);
    CHECK_EQ_INT(pdckpt_value_kind(pdckpt_value_at(d, 5)), PDCKPT_KIND_NONE);
    CHECK(pdckpt_dict_get(d, "k3") == NULL);
    int64_t v = 0;
    CHECK(pdckpt_value_get_int(pdckpt_dict_get(d, "k4"), &v) && v == 4);
    CHECK(!pdckpt_value_release_at(d, 10) && !pdckpt_value_release_at(kept, 0));
    pdckpt_value *list = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST);
    pdckpt_value_append(list, pdckpt_value_retain(kept), NULL);
    CHECK(pdckpt_value_release_at(list, 0) && !pdckpt_value_shared(kept));
    CHECK_EQ_INT(pdckpt_value_kind(pdckpt_value_at(list, 0)), PDCKPT_KIND_NONE);
    pdckpt_value_free(list);
    pdckpt_value_free(kept);
    pdckpt_value_free(d);
}

int main(void) {
    RUN(test_dict_order_and_replace);
    RUN(test_large_dict_index);
    RUN(test_non_string_keys);
    RUN(test_many_hashed_non_string_keys);
    RUN(test_equality);
    RUN(test_borrowed_strings);
    RUN(test_walk);
    RUN(test_objects);
    RUN(test_tensor_shapes);
    RUN(test_borrowed_and_shared);
    RUN(test_big_ints);
    RUN(test_release_at);
    return CHECK_SUMMARY();
}
