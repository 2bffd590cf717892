/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_vars_dir.c — per-variable directories: '/' names become subdirectories, non-variable files
 * are skipped, a corrupt variable file is named in the error, invalid names are refused, and a
 * save replaces the whole directory atomically without leaving temp directories behind.
 */
#include "check.h"
#include "test_util.h"

#include <stdlib.h>
#include <sys/stat.h>

static pdckpt_value *sample(unsigned seed) {
    static const char *const names[] = {"mlp/MLP_0/FC_0.w_0", "mlp/MLP_0/FC_0.b_0",
                                        "@LR_DECAY_COUNTER@", "fc_0.w_0"};
    pdckpt_value            *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    for (unsigned i = 0; i < 4; i++) {
        int64_t dims[2] = {3, (int64_t)i + 1};
        pdckpt_dict_set(d, names[i], tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, dims, seed + i),
                        NULL);
    }
    return d;
}

static bool same_by_key(const pdckpt_value *a, const pdckpt_value *b) {
    if (pdckpt_value_len(a) != pdckpt_value_len(b)) return false;
    for (size_t i = 0; i < pdckpt_value_len(a); i++) {
        const char *k = pdckpt_value_get_string(pdckpt_dict_key_at(a, i), NULL);
        if (!pdckpt_value_equal(pdckpt_value_at(a, i), pdckpt_dict_get(b, k))) return false;
    }
    return true;
}

static void test_round_trip_with_subdirectories(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    char        *dir = tu_tempdir();
    char         target[4200], file[4300];
    snprintf(target, sizeof target, "%s/save_dir", dir);
    pdckpt_value       *state = sample(1);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_VARS_DIR;
    CHECK_OK(pdckpt_save_file(state, target, &so, &err), &err);
    snprintf(file, sizeof file, "%s/mlp/MLP_0/FC_0.w_0", target);
    CHECK(tu_file_exists(file));
    /* Files that are not variables are ignored. */
    snprintf(file, sizeof file, "%s/__model__", target);
    tu_write_file(file, "\x0a\x00", 2);
    snprintf(file, sizeof file, "%s/model.pdiparams.info", target);
    tu_write_file(file, "\x80\x02}q\x00.", 6);
    snprintf(file, sizeof file, "%s/.DS_Store", target);
    tu_write_file(file, "junk", 4);
    pdckpt_value *back = NULL;
    pdckpt_format format;
    /* A __model__ that does not parse is the directory's error (paddle.load fails on it)... */
    CHECK_EQ_INT(pdckpt_load_file(target, NULL, &back, &format, &err), PDCKPT_ERR_FORMAT);
    CHECK(strstr(err.source, "__model__") != NULL);
    /* ...and asked for, the variable files load without it. */
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.format = PDCKPT_FORMAT_VARS_DIR;
    CHECK_OK(pdckpt_load_file(target, &lo, &back, &format, &err), &err);
    CHECK_EQ_INT(format, PDCKPT_FORMAT_VARS_DIR);
    CHECK(same_by_key(state, back));
    CHECK_STR(pdckpt_value_get_string(pdckpt_dict_key_at(back, 0), NULL), "@LR_DECAY_COUNTER@");
    pdckpt_value_free(back);
    pdckpt_value_free(state);
    tu_rmtree(dir);
    free(dir);
}

static void test_corrupt_variable_is_named(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    char        *dir = tu_tempdir();
    char         target[4200], file[4300];
    snprintf(target, sizeof target, "%s/vars", dir);
    pdckpt_value *state = sample(2);
    strcat(target, "/"); /* a trailing slash names a directory: vars-dir */
    CHECK_OK(pdckpt_save_file(state, target, NULL, &err), &err);
    target[strlen(target) - 1] = '\0';
    snprintf(file, sizeof file, "%s/fc_0.w_0", target);
    tu_write_file(file, "\x01\x00\x00\x00", 4);
    pdckpt_value *back = NULL;
    CHECK_STATUS(pdckpt_load_file(target, NULL, &back, NULL, &err), PDCKPT_ERR_FORMAT, &err);
    CHECK_STR(err.source, file);
    CHECK_EQ_INT(err.offset, 0);
    CHECK_STR(err.message, "expected tensor stream version 0, found 1");
    pdckpt_value_free(state);
    tu_rmtree(dir);
    free(dir);
}

static void test_atomic_replace(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    char        *dir = tu_tempdir();
    char         target[4200];
    snprintf(target, sizeof target, "%s/ckpt", dir);
    pdckpt_value       *first = sample(3), *second = sample(40);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_VARS_DIR;
    CHECK_OK(pdckpt_save_file(first, target, &so, &err), &err);
    CHECK_OK(pdckpt_save_file(second, target, &so, &err), &err);
    pdckpt_value *back = NULL;
    CHECK_OK(pdckpt_load_file(target, NULL, &back, NULL, &err), &err);
    CHECK(same_by_key(second, back));
    pdckpt_value_free(back);
    /* A failing save (a name that escapes the directory) leaves the old one untouched. */
    pdckpt_dict_set(first, "../escape", tu_random_tensor(PDCKPT_DTYPE_INT8, 0, NULL, 1), NULL);
    CHECK_STATUS(pdckpt_save_file(first, target, &so, &err), PDCKPT_ERR_ARGUMENT, &err);
    CHECK(strstr(err.message, "'..'") != NULL);
    CHECK_OK(pdckpt_load_file(target, NULL, &back, NULL, &err), &err);
    CHECK(same_by_key(second, back));
    CHECK_EQ_INT(tu_count_entries(dir, ".ckpt.pdckpt-tmp"), 0);
    pdckpt_value_free(back);
    pdckpt_value_free(first);
    pdckpt_value_free(second);
    tu_rmtree(dir);
    free(dir);
}

static void test_bad_names(void) {
    static const char *const bad[] = {"/abs", "a//b", "a/./b", "a/", ""};
    pdckpt_error             err = PDCKPT_ERROR_INIT;
    char                    *dir = tu_tempdir();
    char                     target[4200];
    snprintf(target, sizeof target, "%s/out", dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
        pdckpt_dict_set(d, bad[i], tu_random_tensor(PDCKPT_DTYPE_INT8, 0, NULL, 1), NULL);
        pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
        so.format = PDCKPT_FORMAT_VARS_DIR;
        CHECK_STATUS(pdckpt_save_file(d, target, &so, &err), PDCKPT_ERR_ARGUMENT, &err);
        CHECK(!tu_file_exists(target));
        pdckpt_value_free(d);
    }
    /* "a" as a file and "a/b" below it cannot both exist. */
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(d, "a", tu_random_tensor(PDCKPT_DTYPE_INT8, 0, NULL, 1), NULL);
    pdckpt_dict_set(d, "a/b", tu_random_tensor(PDCKPT_DTYPE_INT8, 0, NULL, 1), NULL);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_VARS_DIR;
    CHECK_STATUS(pdckpt_save_file(d, target, &so, &err), PDCKPT_ERR_IO, &err);
    CHECK(!tu_file_exists(target));
    CHECK_EQ_INT(tu_count_entries(dir, "."), 2); /* only "." and ".." */
    pdckpt_value_free(d);
    tu_rmtree(dir);
    free(dir);
}

/* A name ending in "/" names a directory, and the one directory format a save writes without
 * being told is the per-variable directory (Paddle's save_vars/save_persistables layout): even
 * when the name before the slash carries a file suffix. */
static void test_trailing_slash_names_a_directory(void) {
    CHECK_EQ_INT(pdckpt_format_from_path("out/"), PDCKPT_FORMAT_VARS_DIR);
    CHECK_EQ_INT(pdckpt_format_from_path("out/model.pdparams/"), PDCKPT_FORMAT_VARS_DIR);
    CHECK_EQ_INT(pdckpt_format_from_path("out/model.pdparams"), PDCKPT_FORMAT_PICKLE);
    pdckpt_error err = PDCKPT_ERROR_INIT;
    char        *dir = tu_tempdir();
    CHECK_EQ_INT(pdckpt_format_from_path(dir), PDCKPT_FORMAT_VARS_DIR); /* it exists */
    char target[4200], file[4300];
    snprintf(target, sizeof target, "%s/m.pdparams/", dir);
    pdckpt_value *state = sample(7), *back = NULL;
    CHECK_OK(pdckpt_save_file(state, target, NULL, &err), &err);
    snprintf(file, sizeof file, "%sfc_0.w_0", target);
    CHECK(tu_file_exists(file)); /* one file per variable, not a pickle named m.pdparams */
    pdckpt_format format;
    CHECK_OK(pdckpt_load_file(target, NULL, &back, &format, &err), &err);
    CHECK_EQ_INT(format, PDCKPT_FORMAT_VARS_DIR);
    CHECK(same_by_key(state, back));
    pdckpt_value_free(back);
    pdckpt_value_free(state);
    tu_rmtree(dir);
    free(dir);
}

int main(void) {
    RUN(test_round_trip_with_subdirectories);
    RUN(test_corrupt_variable_is_named);
    RUN(test_atomic_replace);
    RUN(test_bad_names);
    RUN(test_trailing_slash_names_a_directory);
    return CHECK_SUMMARY();
}
