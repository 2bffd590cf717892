/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_checksum.c — checksum sidecars through the public API (runs plain and under ASan): a save
 * with `checksum` writes "<file>.xxh3" and leaves the file as a plain save writes it; verify
 * reports the sidecar; one flipped byte fails with CORRUPT at its block's offset naming the
 * tensor; a later plain save removes the stale sidecar; a directory format refuses the option.
 */
#include "check.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

static pdckpt_value *two_tensors(void) {
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    int64_t       small[1] = {100}, big[1] = {5000};
    pdckpt_dict_set(d, "bias", tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 1, small, 3), NULL);
    pdckpt_dict_set(d, "weight", tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 1, big, 4), NULL);
    return d;
}

static void test_sidecar_roundtrip_and_flip(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    char        *dir = tu_tempdir();
    char         plain[4200], path[4200], side[4300];
    snprintf(plain, sizeof plain, "%s/plain.safetensors", dir);
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    snprintf(side, sizeof side, "%s%s", path, PDCKPT_CHECKSUM_SUFFIX);
    pdckpt_value       *root = two_tensors();
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    CHECK_OK(pdckpt_save_file(root, plain, &so, &err), &err);
    so.checksum = true;
    CHECK_OK(pdckpt_save_file(root, path, &so, &err), &err);
    CHECK(tu_file_exists(side));
    size_t   n_plain, n;
    uint8_t *a = tu_read_file(plain, &n_plain), *b = tu_read_file(path, &n);
    CHECK(a && b && n == n_plain && memcmp(a, b, n) == 0);
    pdckpt_verify_report report;
    CHECK_OK(pdckpt_verify_file(path, NULL, &report, &err), &err);
    CHECK(report.checksum_checked);
    b[n - 10] ^= 0x10; /* the last bytes of "weight" */
    CHECK(tu_write_file(path, b, n) == 0);
    CHECK_STATUS(pdckpt_verify_file(path, NULL, &report, &err), PDCKPT_ERR_CORRUPT, &err);
    CHECK_EQ_INT(err.offset, (int64_t)((n - 10) / 4096 * 4096));
    CHECK(strstr(err.message, "'weight'") != NULL);
    CHECK_STR(err.source, path);
    so.checksum = false; /* a plain save over it drops the sidecar of the old file */
    CHECK_OK(pdckpt_save_file(root, path, &so, &err), &err);
    CHECK(!tu_file_exists(side));
    CHECK_OK(pdckpt_verify_file(path, NULL, &report, &err), &err);
    CHECK(!report.checksum_checked);
    free(a);
    free(b);
    pdckpt_value_free(root);
    tu_rmtree(dir);
    free(dir);
}

static void test_directory_format_refuses_checksum(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    char        *dir = tu_tempdir();
    char         path[4200];
    snprintf(path, sizeof path, "%s/vars", dir);
    pdckpt_value       *root = two_tensors();
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_VARS_DIR;
    so.checksum = true;
    CHECK_STATUS(pdckpt_save_file(root, path, &so, &err), PDCKPT_ERR_ARGUMENT, &err);
    CHECK(!tu_file_exists(path));
    pdckpt_value_free(root);
    tu_rmtree(dir);
    free(dir);
}

int main(void) {
    RUN(test_sidecar_roundtrip_and_flip);
    RUN(test_directory_format_refuses_checksum);
    return CHECK_SUMMARY();
}
