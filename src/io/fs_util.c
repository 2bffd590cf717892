/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fs_util.c — small filesystem helpers for atomic publication: unique temp names beside a target
 * (same directory, so rename never crosses filesystems), directory fsync, and a remove-tree that
 * never follows symlinks.
 */
#define _GNU_SOURCE
#include "pdk_io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void split_path(const char *path, char *dir, size_t dir_cap, const char **base) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, dir_cap, ".");
        *base = path;
    } else if (slash == path) {
        snprintf(dir, dir_cap, "/");
        *base = slash + 1;
    } else {
        snprintf(dir, dir_cap, "%.*s", (int)(slash - path), path);
        *base = slash + 1;
    }
}

/* Room a temporary's name takes beyond its stem: ".<stem>.pdckpt-tmp-<pid>-<16 hex>" (a pid of
 * up to 10 digits; ".pdckpt-dist-<16 hex>" is shorter). */
enum { TEMP_TAG_ROOM = 1 + 12 + 10 + 1 + 16, TEMP_STEM_MAX = NAME_MAX - TEMP_TAG_ROOM };

size_t pdk_temp_stem(const char *base, size_t base_len, char *out) {
    if (base_len <= TEMP_STEM_MAX) {
        memcpy(out, base, base_len);
        out[base_len] = '\0';
        return base_len;
    }
    /* Too long for a temporary beside it: its first bytes, '~' and the FNV-1a of the whole name,
     * still one name's stem, so a sweep for `base` knows its own and no other name's. */
    size_t keep = TEMP_STEM_MAX - 17;
    memcpy(out, base, keep);
    snprintf(out + keep, 18, "~%016llx", (unsigned long long)pdk_hash_bytes(0, base, base_len));
    return TEMP_STEM_MAX;
}

pdckpt_status pdk_temp_path_beside(const char *path, char *out, size_t cap, pdckpt_error *err) {
    char        dir[PATH_MAX], stem[NAME_MAX + 1];
    const char *base;
    split_path(path, dir, sizeof dir, &base);
    if (*base == '\0')
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1, "expected a file name, found none");
    pdk_temp_stem(base, strlen(base), stem);
    uint64_t nonce = pdk_random_u64();
    int      n = snprintf(out, cap, "%s/.%s.pdckpt-tmp-%ld-%016llx", dir, stem, (long)getpid(),
                          (unsigned long long)nonce);
    if (n < 0 || (size_t)n >= cap)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1, "path too long for a temporary name");
    return PDCKPT_OK;
}

pdckpt_status pdk_fsync_dir_of(const char *path, bool is_dir, pdckpt_error *err) {
    char        dir[PATH_MAX];
    const char *base;
    if (is_dir)
        snprintf(dir, sizeof dir, "%s", path);
    else
        split_path(path, dir, sizeof dir, &base);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    /* Errors name the checkpoint (`path`); the directory is what was being synced. */
    if (fd < 0) return pdk_fail_sys(err, errno, path, "open its directory '%s' to sync it", dir);
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    /* Some filesystems cannot sync directories (EINVAL); the rename is then as durable as the FS
     * allows, which is what every other writer gets too. */
    if (rc != 0 && saved != EINVAL && saved != EROFS)
        return pdk_fail_sys(err, saved, path, "fsync of its directory '%s'", dir);
    return PDCKPT_OK;
}

/* Removes the entry `name` of the directory open as `dfd`, a directory's contents first, by
 * descriptors only: each level is opened relative to its parent with O_NOFOLLOW, so a component
 * someone swaps for a symbolic link mid-walk makes that open fail instead of leading the walk
 * elsewhere (nftw opens subdirectories by their full path).  Deeper than `depth` levels is left. */
static void remove_at(int dfd, const char *name, int depth) {
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return;
    if (!S_ISDIR(st.st_mode)) {
        unlinkat(dfd, name, 0);
        return;
    }
    if (depth <= 0) return;
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return;
    struct stat now;
    DIR        *d = fstat(fd, &now) == 0 && now.st_dev == st.st_dev && now.st_ino == st.st_ino
                        ? fdopendir(fd)
                        : NULL;
    if (!d) {
        close(fd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            remove_at(fd, de->d_name, depth - 1);
    closedir(d);
    unlinkat(dfd, name, AT_REMOVEDIR);
}

/* How deep a temporary directory is emptied: a save's own are two levels deep. */
enum { REMOVE_TREE_DEPTH = 64 };

void pdk_remove_tree_at(int dfd, const char *name) {
    remove_at(dfd, name, REMOVE_TREE_DEPTH);
}

void pdk_remove_tree(const char *path) {
    char        dir[PATH_MAX];
    const char *base;
    size_t      base_len;
    pdk_split_path(path, dir, sizeof dir, &base, &base_len);
    char name[NAME_MAX + 1];
    if (base_len == 0 || base_len > NAME_MAX) return;
    snprintf(name, sizeof name, "%.*s", (int)base_len, base);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return;
    pdk_remove_tree_at(dfd, name);
    close(dfd);
}

bool pdk_is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool pdk_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool pdk_ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

pdckpt_status pdk_path_join_suffix(char *out, const char *dir, const char *name, const char *suffix,
                                   pdckpt_error *err) {
    int n = snprintf(out, PDCKPT_PATH_MAX, "%s%s%s%s", dir, *dir ? "/" : "", name, suffix);
    if (n < 0 || n >= PDCKPT_PATH_MAX)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, *dir ? dir : name, -1, "path too long: %s%s%s%s",
                        dir, *dir ? "/" : "", name, suffix);
    return PDCKPT_OK;
}

pdckpt_status pdk_make_dirs(const char *dir, pdckpt_error *err) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, dir, -1, "path too long");
    if (!*path || pdk_is_directory(path)) return PDCKPT_OK;
    for (char *p = path + 1;; p++) {
        bool end = *p == '\0';
        if (*p != '/' && !end) continue;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return pdk_fail_sys(err, errno, path, "create directory");
        if (end) return PDCKPT_OK;
        *p = '/';
    }
}

pdckpt_status pdk_make_parent_dirs(const char *path, pdckpt_error *err) {
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1, "path too long");
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') dir[--n] = '\0'; /* "out/dir/" names out/dir */
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return PDCKPT_OK;
    *slash = '\0';
    return pdk_make_dirs(dir, err);
}

/* The writer's pid in a temporary's tag ".pdckpt-tmp-<pid>-<hex>" at `tag`; 0 when it is none. */
static long tag_pid(const char *tag) {
    if (!tag || strncmp(tag, ".pdckpt-tmp-", 12) != 0) return 0;
    char *end;
    long  pid = strtol(tag + 12, &end, 10);
    return *end == '-' && pid > 0 ? pid : 0;
}

/* The pid of the writer of `entry` when it is a temporary of the file `name` (its stem, '.',
 * the tag ".pdckpt-tmp-<pid>-<hex>"), else 0. */
static long temp_of(const char *entry, const char *name, size_t len) {
    char   stem[NAME_MAX + 1];
    size_t n = pdk_temp_stem(name, len, stem);
    if (entry[0] != '.' || strncmp(entry + 1, stem, n) != 0) return 0;
    return tag_pid(entry + 1 + n);
}

/* Parses the pid out of ".<base>.pdckpt-tmp-<pid>-<hex>", or out of a temporary of one of its
 * sidecars ".<base>.pdkidx.pdckpt-tmp-<pid>-<hex>" (the same for .xxh3); 0 when the name is
 * neither.  Only those suffixes: ".<base>.<any>.pdckpt-tmp-" is also a temporary of the file
 * "<base>.<any>" (saving "m" swept "m.pdparams"'s), which this save does not write.  A long
 * name's temporaries carry its stem, and a sidecar's its own name's (pdk_temp_stem): the first
 * bytes and a hash of "<base>.pdkidx", not base's stem and the suffix. */
static long temp_owner(const char *entry, const char *base) {
    /* the lazy-open index and the checksum sidecar */
    static const char *const sidecars[] = {PDK_NAME_INDEX, PDCKPT_CHECKSUM_SUFFIX};
    size_t                   n = strlen(base);
    long                     pid = n <= NAME_MAX ? temp_of(entry, base, n) : 0;
    for (size_t i = 0; !pid && n <= NAME_MAX && i < sizeof sidecars / sizeof *sidecars; i++) {
        char   side[NAME_MAX + 16];
        size_t k = strlen(sidecars[i]);
        if (n + k >= sizeof side) break;
        memcpy(side, base, n);
        memcpy(side + n, sidecars[i], k + 1);
        pid = temp_of(entry, side, n + k);
    }
    return pid;
}

/* Whether process `pid` still runs.  A zombie does not: a writer killed with SIGKILL whose parent
 * died too waits for init to reap it, and its temporaries must be swept meanwhile.  Where /proc
 * cannot tell, a process that exists runs. */
static bool pid_runs(long pid) {
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) return false;
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f) return true;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *paren = strrchr(stat, ')'); /* the command name may hold spaces and ')' */
    return !(paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'));
}

bool pdk_read_head_nofollow(const char *path, void *buf, size_t len) {
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && pread(fd, buf, len, 0) == (ssize_t)len;
    close(fd);
    return ok;
}

bool pdk_sidecar_writers_covered(const struct stat *side, const struct stat *file, bool groups) {
    if (side->st_uid != file->st_uid && side->st_uid != 0) return false;
    if (groups && (side->st_mode & S_IWGRP) &&
        !((file->st_mode & S_IWGRP) && side->st_gid == file->st_gid))
        return false;
    return !(side->st_mode & S_IWOTH) || (file->st_mode & S_IWOTH);
}

/* Whether the entry `name` of `dfd` is this user's: a temporary a save of this user left.  Another
 * user's entry named like one (planted in a shared directory, or that user's killed save) is not
 * this save's to remove: root sweeping /tmp removed every user's look-alike. */
static bool owned_by_us(int dfd, const char *name) {
    struct stat st;
    return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_uid == geteuid();
}

void pdk_remove_stale_temps(const char *path) {
    char        dir[PATH_MAX];
    const char *base;
    split_path(path, dir, sizeof dir, &base);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        long pid = temp_owner(de->d_name, base);
        /* Only temps whose writer is gone: a live writer (or an unrelated process that reuses
         * the pid) keeps its file.  Temps from other hosts cannot be told apart; they stay. */
        if (pid <= 0 || pid == (long)getpid() || pid_runs(pid)) continue;
        if (owned_by_us(dirfd(d), de->d_name)) pdk_remove_tree_at(dirfd(d), de->d_name);
    }
    closedir(d);
}

/* Joins a relative link target onto the directory of `link` (in place into out). */
static pdckpt_status follow_link(const char *link, const char *dest, char *out, size_t cap,
                                 const char *shown, pdckpt_error *err) {
    char        dir[PATH_MAX];
    const char *base;
    split_path(link, dir, sizeof dir, &base);
    int n =
        dest[0] == '/' ? snprintf(out, cap, "%s", dest) : snprintf(out, cap, "%s/%s", dir, dest);
    if (n < 0 || (size_t)n >= cap)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, shown, -1, "path too long after following links");
    return PDCKPT_OK;
}

pdckpt_status pdk_resolve_save_target(const char *path, char *out, size_t cap, struct stat *st,
                                      bool *exists, pdckpt_error *err) {
    if (strlen(path) >= cap) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1, "path too long");
    snprintf(out, cap, "%s", path);
    for (int hops = 0; hops <= 40; hops++) {
        if (lstat(out, st) != 0) {
            if (errno != ENOENT) return pdk_fail_sys(err, errno, path, "stat");
            *exists = false; /* a new file (possibly where a dangling link points) */
            return PDCKPT_OK;
        }
        if (!S_ISLNK(st->st_mode)) {
            *exists = true;
            return PDCKPT_OK;
        }
        char    dest[PATH_MAX], next[PATH_MAX];
        ssize_t n = readlink(out, dest, sizeof dest - 1);
        if (n < 0) return pdk_fail_sys(err, errno, path, "readlink");
        dest[n] = '\0';
        PDK_TRY(follow_link(out, dest, next, sizeof next, path, err));
        snprintf(out, cap, "%s", next);
    }
    return pdk_fail_sys(err, ELOOP, path, "follow symbolic links");
}

/* ---- shared by the sharded format's writers (every rank computes the same temp names) ---- */

pdckpt_status pdk_path_join(const char *dir, const char *name, char *out, size_t cap,
                            pdckpt_error *err) {
    size_t dl = strlen(dir);
    bool   slash = dl > 0 && dir[dl - 1] == '/';
    int    n = snprintf(out, cap, "%s%s%s", dir, slash || dl == 0 ? "" : "/", name);
    if (n < 0 || (size_t)n >= cap)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, dir, -1, "path too long (over %zu bytes)", cap);
    return PDCKPT_OK;
}

void pdk_split_path(const char *path, char *dir, size_t dir_cap, const char **base,
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

pdckpt_status pdk_temp_path_tagged(const char *path, uint64_t tag, char *out, size_t cap,
                                   pdckpt_error *err) {
    char        dir[PATH_MAX];
    const char *base;
    size_t      base_len;
    char        stem[NAME_MAX + 1];
    pdk_split_path(path, dir, sizeof dir, &base, &base_len);
    pdk_temp_stem(base, base_len, stem);
    int n = snprintf(out, cap, "%s/.%s.pdckpt-dist-%016llx", dir, stem, (unsigned long long)tag);
    if (n < 0 || (size_t)n >= cap)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1, "path too long");
    return PDCKPT_OK;
}

uint64_t pdk_random_tag(void) {
    return pdk_random_u64();
}

/* A directory cannot be renamed over a non-empty one: exchange them, then drop the old. */
static pdckpt_status replace_dir(const char *from, const char *to, const char *shown,
                                 pdckpt_error *err) {
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_EXCHANGE) == 0) {
        pdk_remove_tree(from); /* now holds the old directory */
        return PDCKPT_OK;
    }
    if (errno != EINVAL && errno != ENOSYS) return pdk_fail_sys(err, errno, shown, "rename");
    char old[PATH_MAX];
    PDK_TRY(pdk_temp_path_beside(to, old, sizeof old, err));
    if (rename(to, old) != 0) return pdk_fail_sys(err, errno, shown, "rename aside");
    if (rename(from, to) != 0) {
        int saved = errno;
        rename(old, to); /* put the old one back */
        return pdk_fail_sys(err, saved, shown, "rename");
    }
    pdk_remove_tree(old);
    return PDCKPT_OK;
}

pdckpt_status pdk_rename_replace(const char *from, const char *to, const char *shown,
                                 pdckpt_error *err) {
    if (pdk_is_directory(from) && pdk_is_directory(to)) return replace_dir(from, to, shown, err);
    if (rename(from, to) != 0) return pdk_fail_sys(err, errno, shown, "rename");
    return PDCKPT_OK;
}

pdckpt_status pdk_rename_replace_durable(const char *from, const char *to, bool durable,
                                         pdckpt_error *err) {
    PDK_TRY(pdk_rename_replace(from, to, to, err));
    if (!durable) return PDCKPT_OK;
    char        dir[PATH_MAX];
    const char *base;
    size_t      base_len;
    pdk_split_path(to, dir, sizeof dir, &base, &base_len);
    return pdk_fsync_dir_of(dir, true, err);
}

static pdckpt_status write_all(int fd, const char *path, const uint8_t *p, size_t len,
                               pdckpt_error *err) {
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return pdk_fail_sys(err, errno, path, "write");
        p += n;
        len -= (size_t)n;
    }
    return PDCKPT_OK;
}

pdckpt_status pdk_write_file_atomic(const char *path, const void *data, size_t len, bool durable,
                                    pdckpt_error *err) {
    char tmp[PATH_MAX + 64];
    PDK_TRY(pdk_temp_path_tagged(path, pdk_random_tag(), tmp, sizeof tmp, err));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) return pdk_fail_sys(err, errno, tmp, "create");
    pdckpt_status st = write_all(fd, tmp, data, len, err);
    if (st == PDCKPT_OK && durable && fdatasync(fd) != 0)
        st = pdk_fail_sys(err, errno, tmp, "fdatasync");
    if (close(fd) != 0 && st == PDCKPT_OK) st = pdk_fail_sys(err, errno, tmp, "close");
    if (st == PDCKPT_OK) st = pdk_rename_replace_durable(tmp, path, durable, err);
    if (st != PDCKPT_OK) unlink(tmp);
    return st;
}

/* Whether `name` is a ".<x>.pdckpt-tmp-<pid>-<hex>" temporary whose writer still runs (a save
 * into the same directory by another process, or by a thread of this one). */
static bool live_writer(const char *name) {
    long pid = tag_pid(strstr(name, ".pdckpt-tmp-"));
    return pid > 0 && pid_runs(pid);
}

void pdk_sweep_temps(const char *dir, const char *base) {
    DIR *d = opendir(dir);
    if (!d) return;
    char needle[512] = "";
    char stem[NAME_MAX + 1];
    if (base) pdk_temp_stem(base, strlen(base), stem);
    if (base) snprintf(needle, sizeof needle, ".%s.pdckpt-", stem);
    size_t         nl = strlen(needle);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name; /* ours may hold the core's (".." + ...) */
        if (n[0] != '.' || (!strstr(n, ".pdckpt-dist-") && !strstr(n, ".pdckpt-tmp-"))) continue;
        if (base && strncmp(n, needle, nl) != 0 && strncmp(n + 1, needle, nl) != 0) continue;
        if (live_writer(n)) continue; /* not debris: its save is still running */
        if (owned_by_us(dirfd(d), n)) pdk_remove_tree_at(dirfd(d), n);
    }
    closedir(d);
}
