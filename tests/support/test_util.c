/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_util.c — see test_util.h.
 */
#define _GNU_SOURCE
#include "test_util.h"

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

char *tu_tempdir(void) {
    const char *base = getenv("TMPDIR");
    char        tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/pdckpt-test-XXXXXX", base ? base : "/tmp");
    char *dir = mkdtemp(tmpl);
    return dir ? strdup(dir) : NULL;
}

char *tu_disk_tempdir(void) {
    char         *dir = tu_tempdir();
    struct statfs fs;
    const long    tmpfs_magic = 0x01021994, ramfs_magic = (long)0x858458f6;
    if (!dir || statfs(dir, &fs) != 0 || (fs.f_type != tmpfs_magic && fs.f_type != ramfs_magic))
        return dir;
    rmdir(dir);
    free(dir);
    char tmpl[] = "pdckpt-cold-XXXXXX";
    return mkdtemp(tmpl) ? realpath(tmpl, NULL) : NULL;
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

void tu_rmtree(const char *path) {
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int tu_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int rc = fwrite(data, 1, len, f) == len ? 0 : -1;
    return fclose(f) == 0 ? rc : -1;
}

void *tu_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) *len = (size_t)n;
    return buf;
}

int tu_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int tu_count_entries(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int            n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) n++;
    closedir(d);
    return n;
}

pdckpt_value *tu_random_tensor(pdckpt_dtype dtype, int32_t n_dims, const int64_t *dims,
                               unsigned seed) {
    pdckpt_value *t = NULL;
    if (pdckpt_tensor_new(NULL, dtype, n_dims, dims, &t, NULL) != PDCKPT_OK) return NULL;
    pdckpt_tensor_view v;
    pdckpt_tensor_get(t, &v);
    unsigned char *p = pdckpt_tensor_data_mut(t);
    unsigned       state = seed * 2654435761u + 1;
    for (uint64_t i = 0; i < v.n_bytes; i++) {
        state = state * 1103515245u + 12345u;
        p[i] = (unsigned char)(state >> 16);
        if (dtype == PDCKPT_DTYPE_BOOL) p[i] &= 1;
    }
    return t;
}

const char *tu_fixture(const char *rel) {
    static char path[4200];
    const char *shared = getenv("PDCKPT_SHARED"), *src = getenv("PDCKPT_SOURCE_DIR");
    if (shared && *shared)
        snprintf(path, sizeof path, "%s/fixtures/real%s%s", shared, *rel ? "/" : "", rel);
    else
        snprintf(path, sizeof path, "%s/../shared/fixtures/real%s%s", src ? src : ".",
                 *rel ? "/" : "", rel);
    return path;
}
