/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_fs.c — the filesystem steps of distributed commits: temporary names beside a target,
 * renames that replace a file or a whole directory, directory syncs, and the atomic write of a
 * small file (the sharded checkpoint's metadata).  The order every commit follows is the core's
 * (docs/DESIGN.md "Atomic, durable writes"): write a temp, sync it, rename, sync the directory.
 */
#define _GNU_SOURCE
#include "dist_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

pdckpt_status pdk_path_join(const char *dir, const char *name, char *out, size_t cap,
                            pdckpt_error *err) {
    size_t dl = strlen(dir);
    bool   slash = dl > 0 && dir[dl - 1] == '/';
    int    n = snprintf(out, cap, "%s%s%s", dir, slash || dl == 0 ? "" : "/", name);
    if (n < 0 || (size_t)n >= cap)
        return pdk_dist_fail(err, PDCKPT_ERR_ARGUMENT, dir, "path too long (over %zu bytes)", cap);
    return PDCKPT_OK;
}

/* Splits "a/b/c" into the directory "a/b" (or ".") and the base "c", ignoring trailing '/'. */
void pdk_dist_split_path(const char *path, char *dir, size_t dir_cap, const char **base,
                         size_t *base_len) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t slash = n;
    while (slash > 0 && path[slash - 1] != '/') slash--;
    *base = path + slash;
    *base_len = n - slash;
    if (slash == 0)
        snprintf(dir, dir_cap, ".");
    else
        snprintf(dir, dir_cap, "%.*s", (int)(slash > 1 ? slash - 1 : 1), path);
}

pdckpt_status pdk_dist_temp_beside(const char *path, uint64_t tag, char *out, size_t cap,
                                   pdckpt_error *err) {
    char        dir[4096];
    const char *base;
    size_t      base_len;
    pdk_dist_split_path(path, dir, sizeof dir, &base, &base_len);
    int n = snprintf(out, cap, "%s/.%.*s.pdckpt-dist-%016llx", dir, (int)base_len, base,
                     (unsigned long long)tag);
    if (n < 0 || (size_t)n >= cap)
        return pdk_dist_fail(err, PDCKPT_ERR_ARGUMENT, path, "path too long");
    return PDCKPT_OK;
}

pdckpt_status pdk_dist_fsync_dir(const char *dir, pdckpt_error *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return pdk_dist_fail_sys(err, errno, dir, "open directory");
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL) return pdk_dist_fail_sys(err, e, dir, "fsync directory");
    return PDCKPT_OK;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void pdk_dist_remove(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A directory cannot be renamed over a non-empty one: exchange them, then drop the old. */
static pdckpt_status replace_dir(const char *from, const char *to, pdckpt_error *err) {
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_EXCHANGE) == 0) {
        pdk_dist_remove(from);
        return PDCKPT_OK;
    }
    if (errno != EINVAL && errno != ENOSYS) return pdk_dist_fail_sys(err, errno, to, "rename");
    char aside[4200];
    snprintf(aside, sizeof aside, "%s.pdckpt-old", from);
    if (rename(to, aside) != 0) return pdk_dist_fail_sys(err, errno, to, "rename aside");
    if (rename(from, to) != 0) {
        int e = errno;
        rename(aside, to);
        return pdk_dist_fail_sys(err, e, to, "rename");
    }
    pdk_dist_remove(aside);
    return PDCKPT_OK;
}

pdckpt_status pdk_dist_rename(const char *from, const char *to, bool durable, pdckpt_error *err) {
    struct stat src, dst;
    if (lstat(from, &src) != 0) return pdk_dist_fail_sys(err, errno, from, "stat");
    bool dirs = S_ISDIR(src.st_mode) && lstat(to, &dst) == 0 && S_ISDIR(dst.st_mode);
    if (dirs)
        PDK_DTRY(replace_dir(from, to, err));
    else if (rename(from, to) != 0)
        return pdk_dist_fail_sys(err, errno, to, "rename");
    if (!durable) return PDCKPT_OK;
    char        dir[4096];
    const char *base;
    size_t      base_len;
    pdk_dist_split_path(to, dir, sizeof dir, &base, &base_len);
    return pdk_dist_fsync_dir(dir, err);
}

pdckpt_status pdk_dist_mkdirs(const char *dir, pdckpt_error *err) {
    char buf[4096];
    int  n = snprintf(buf, sizeof buf, "%s", dir);
    if (n < 0 || (size_t)n >= sizeof buf)
        return pdk_dist_fail(err, PDCKPT_ERR_ARGUMENT, dir, "path too long");
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return pdk_dist_fail_sys(err, errno, buf, "mkdir");
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return pdk_dist_fail_sys(err, errno, buf, "mkdir");
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return pdk_dist_fail(err, PDCKPT_ERR_IO, dir, "expected a directory");
    return PDCKPT_OK;
}

static pdckpt_status write_all(int fd, const char *path, const uint8_t *p, size_t len,
                               pdckpt_error *err) {
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return pdk_dist_fail_sys(err, errno, path, "write");
        p += n;
        len -= (size_t)n;
    }
    return PDCKPT_OK;
}

pdckpt_status pdk_write_file_atomic(const char *path, const void *data, size_t len, bool durable,
                                    pdckpt_error *err) {
    char tmp[4200];
    PDK_DTRY(pdk_dist_temp_beside(path, pdk_dist_random_tag(), tmp, sizeof tmp, err));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) return pdk_dist_fail_sys(err, errno, tmp, "create");
    pdckpt_status st = write_all(fd, tmp, data, len, err);
    if (st == PDCKPT_OK && durable && fdatasync(fd) != 0)
        st = pdk_dist_fail_sys(err, errno, tmp, "fdatasync");
    if (close(fd) != 0 && st == PDCKPT_OK) st = pdk_dist_fail_sys(err, errno, tmp, "close");
    if (st == PDCKPT_OK) st = pdk_dist_rename(tmp, path, durable, err);
    if (st != PDCKPT_OK) unlink(tmp);
    return st;
}

uint64_t pdk_dist_random_tag(void) {
    uint64_t tag = 0;
    if (getrandom(&tag, sizeof tag, GRND_NONBLOCK) == (ssize_t)sizeof tag && tag) return tag;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return pdk_hash_bytes(pdk_hash_bytes(0, &ts, sizeof ts), &(pid_t){getpid()}, sizeof(pid_t));
}

void pdk_dist_sweep_temps(const char *dir, const char *base) {
    DIR *d = opendir(dir);
    if (!d) return;
    char needle[512] = "", full[4200];
    if (base) snprintf(needle, sizeof needle, ".%s.pdckpt-", base);
    size_t         nl = strlen(needle);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name; /* ours may hold the core's (".." + ...) */
        if (n[0] != '.' || (!strstr(n, ".pdckpt-dist-") && !strstr(n, ".pdckpt-tmp-"))) continue;
        if (base && strncmp(n, needle, nl) != 0 && strncmp(n + 1, needle, nl) != 0) continue;
        if (snprintf(full, sizeof full, "%s/%s", dir, n) < (int)sizeof full) pdk_dist_remove(full);
    }
    closedir(d);
}
