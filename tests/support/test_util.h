/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_util.h — helpers shared by the C tests: temporary directories, files, random tensors.
 */
#ifndef PDCKPT_TEST_UTIL_H
#define PDCKPT_TEST_UTIL_H

#include <pdckpt.h>
#include <stddef.h>

/* A fresh empty directory under $TMPDIR; free() the returned path. */
char *tu_tempdir(void);
/* tu_tempdir, unless $TMPDIR lives in memory (tmpfs, ramfs: every page stays cached, so dropping
 * a file from the page cache is a no-op); then a fresh directory under the working directory.
 * For tests that measure cold reads. */
char *tu_disk_tempdir(void);
void  tu_rmtree(const char *path);
int   tu_write_file(const char *path, const void *data, size_t len);
/* Reads a whole file into malloc'ed memory; NULL on failure. */
void *tu_read_file(const char *path, size_t *len);
int   tu_file_exists(const char *path);
/* Counts directory entries whose name starts with `prefix` (e.g. leftover temp files). */
int tu_count_entries(const char *dir, const char *prefix);
/* The path of `rel` among the real Paddle fixtures: $PDCKPT_SHARED/fixtures/real (as the Python
 * tests and scripts/env.sh find them), else ../shared/fixtures/real beside the source tree.  A
 * static buffer: the next call overwrites it.  rel "" names the directory. */
const char *tu_fixture(const char *rel);
/* A tensor of `dtype` and shape with pseudo-random bytes from `seed` (bool: 0/1). */
pdckpt_value *tu_random_tensor(pdckpt_dtype dtype, int32_t n_dims, const int64_t *dims,
                               unsigned seed);

#endif
