/* SPDX-License-Identifier: Apache-2.0 */
/*
 * safe_open.c — the one way pdckpt opens what it reads (issue 16): opens never block and never
 * escape.  Every open is O_NONBLOCK (a FIFO or a device then opens at once instead of waiting
 * for a writer) and is checked with fstat before any byte is read; O_NONBLOCK is cleared again
 * for regular files.  Names that come from inside a checkpoint (a program's variable names, the
 * entries of a variable directory) are resolved beneath the checkpoint's directory: openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS where the kernel has it, else a walk that opens one
 * component at a time with O_NOFOLLOW.  Such a name must be relative and free of "." and ".."
 * components; a symbolic link anywhere in it is refused.
 */
#define _GNU_SOURCE
#include "pdk_io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

pdckpt_status pdk_check_inner_name(const char *name, const char *shown, pdckpt_error *err) {
    if (*name == '\0' || *name == '/')
        return pdk_fail(err, PDCKPT_ERR_FORMAT, shown, -1,
                        "variable name '%s' is not a relative path inside the checkpoint", name);
    for (const char *p = name; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return pdk_fail(err, PDCKPT_ERR_FORMAT, shown, -1,
                            "variable name '%s' has an empty, '.' or '..' path component: it "
                            "would resolve outside its own name",
                            name);
        p += n;
        if (*p == '/') p++;
    }
    return PDCKPT_OK;
}

/* Opens `rel` one component at a time, never following a symbolic link (O_NOFOLLOW makes the
 * final open fail with ELOOP, O_DIRECTORY|O_NOFOLLOW the intermediate ones with ENOTDIR/ELOOP). */
int pdk_open_beneath_walk(int dirfd, const char *rel, int flags) {
    char buf[PATH_MAX];
    if (strlen(rel) >= sizeof buf) return errno = ENAMETOOLONG, -1;
    strcpy(buf, rel);
    int   cur = dirfd;
    char *p = buf;
    for (char *slash; (slash = strchr(p, '/')) != NULL; p = slash + 1) {
        *slash = '\0';
        int next = openat(cur, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int saved = errno;
        if (cur != dirfd) close(cur);
        if (next < 0) return errno = saved == ENOTDIR ? ELOOP : saved, -1;
        cur = next;
    }
    int fd = openat(cur, p, flags | O_NOFOLLOW);
    int saved = errno;
    if (cur != dirfd) close(cur);
    errno = saved;
    return fd;
}

static int open_beneath(int dirfd, const char *rel, int flags) {
#ifdef SYS_openat2
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(unsigned)flags;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    int fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
    /* ENOSYS: kernel < 5.6; EPERM: a seccomp filter that does not know the call. */
    if (fd >= 0 || (errno != ENOSYS && errno != EPERM)) return fd;
#endif
    return pdk_open_beneath_walk(dirfd, rel, flags);
}

static const char *kind_of(mode_t mode) {
    return S_ISDIR(mode)    ? "a directory"
           : S_ISFIFO(mode) ? "a FIFO"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
           : S_ISSOCK(mode) ? "a socket"
           : S_ISLNK(mode)  ? "a symbolic link"
                            : "not a regular file";
}

pdckpt_status pdk_refuse_file_kind(mode_t mode, const char *shown, pdckpt_error *err) {
    return pdk_fail(err, PDCKPT_ERR_ARGUMENT, shown, -1, "expected a regular file, found %s",
                    kind_of(mode));
}

/* A file of /proc or /sys: regular, but its st_size (0, or a page) is not its length and its
 * contents are made as they are read (some never end: /proc/self/mem is the address space). */
static bool pseudo_file(int fd, const struct stat *st) {
    struct statfs fs;
    return S_ISREG(st->st_mode) && fstatfs(fd, &fs) == 0 &&
           (fs.f_type == 0x9fa0 /* PROC_SUPER_MAGIC */ || fs.f_type == 0x62656572 /* SYSFS */);
}

pdckpt_status pdk_open_read(int dirfd, const char *rel, unsigned how, const char *shown, int *fd,
                            struct stat *st, pdckpt_error *err) {
    *fd = -1;
    int flags =
        O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (how & PDK_OPEN_NOFOLLOW ? O_NOFOLLOW : 0);
    if (how & PDK_OPEN_BENEATH) PDK_TRY(pdk_check_inner_name(rel, shown, err));
    int f = how & PDK_OPEN_BENEATH ? open_beneath(dirfd, rel, flags) : openat(dirfd, rel, flags);
    if (f < 0 && (how & PDK_OPEN_BENEATH) && (errno == ELOOP || errno == EXDEV))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, shown, -1,
                        "'%s' leads through a symbolic link; links inside a checkpoint are not "
                        "followed",
                        rel);
    if (f < 0) return pdk_fail_sys(err, errno, shown, "open");
    pdckpt_status status = PDCKPT_OK;
    if (fstat(f, st) != 0)
        status = pdk_fail_sys(err, errno, shown, "stat");
    else if (S_ISDIR(st->st_mode) && !(how & PDK_OPEN_DIR_OK))
        status =
            pdk_fail(err, PDCKPT_ERR_ARGUMENT, shown, -1, "expected a file, found a directory");
    else if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode))
        status = pdk_refuse_file_kind(st->st_mode, shown, err);
    else if (pseudo_file(f, st)) /* never read: its size is unknown, its reads may not end */
        status = pdk_fail(err, PDCKPT_ERR_ARGUMENT, shown, -1,
                          "expected a regular file, found a file of /proc or /sys (its size, %lld "
                          "bytes as stat reports it, is not its length: not read)",
                          (long long)st->st_size);
    else if (fcntl(f, F_SETFL, O_RDONLY) != 0) /* reads of a regular file never block anyway */
        status = pdk_fail_sys(err, errno, shown, "fcntl");
    if (status != PDCKPT_OK) {
        close(f);
        return status;
    }
    *fd = f;
    return PDCKPT_OK;
}

bool pdk_is_regular_beneath(int dirfd, const char *rel) {
    pdckpt_error scratch = PDCKPT_ERROR_INIT;
    struct stat  st;
    int          fd;
    if (pdk_open_read(dirfd, rel, PDK_OPEN_BENEATH, rel, &fd, &st, &scratch) != PDCKPT_OK)
        return false;
    close(fd);
    return true;
}
