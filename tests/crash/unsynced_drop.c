/* SPDX-License-Identifier: Apache-2.0 */
/*
 * unsynced_drop.c — an LD_PRELOAD shim that simulates a power loss inside a saving process, to
 * show that pdckpt's order (write, fsync the file, rename, fsync the directory) is what keeps a
 * checkpoint old-or-new.  It counts calls to write/pwrite/fsync/fdatasync/close/rename/renameat2;
 * on the PDCKPT_CRASH_AT-th one (before running it) it "crashes": every file whose writes were not
 * followed by an fsync/fdatasync gets back the bytes it had at its last sync (a file never synced
 * is truncated to 0 bytes, ext4's delayed-allocation outcome), and then the process SIGKILLs
 * itself.  Renames are kept (the metadata reached the disk before the data, which POSIX allows)
 * unless PDCKPT_SHIM_RENAMES=revert: then each rename() whose directory was not fsynced afterwards
 * is undone, newest first (the other legal outcome: the metadata never reached the disk).
 * PDCKPT_SHIM_DIR (required) holds the shadow copies; PDCKPT_SHIM_COUNT names a file that gets
 * the number of counted calls when the process exits normally.
 * Fault mode (PDCKPT_FAIL_AT=N): instead of crashing, the N-th counted call fails with errno
 * PDCKPT_FAIL_ERRNO (default EIO) without doing anything (close still closes), as a full or
 * broken disk would make it fail; read/pread are counted too in this mode, and with
 * PDCKPT_FAIL_MMAP=1 every mmap of a file fails with ENODEV, so loads take their read path;
 * PDCKPT_FAIL_READS_ONLY=1 counts only the reads.
 * Limits: only paths opened through open/openat relative to the cwd are tracked; renameat2
 * (RENAME_EXCHANGE) moves tracked paths but is never reverted; creations and unlinks are treated
 * as durable at once (they cannot change what the target name points at).  Test code, not part
 * of the library.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FD  1024
#define MAX_REC 512

typedef struct rec { /* a file written through the shim */
    char path[PATH_MAX];
    bool dirty;      /* written since its last sync */
    bool has_shadow; /* shadow holds its bytes at the last sync (else: nothing durable) */
    char shadow[PATH_MAX];
} rec;

typedef struct pending { /* a rename() not yet made durable by an fsync of its directory */
    char from[PATH_MAX], to[PATH_MAX], aside[PATH_MAX]; /* aside: the replaced file, linked */
} pending;

static struct {
    int  kind;
    int  rec;
    char path[PATH_MAX];
} fds[MAX_FD]; /* kind 1 file, 2 dir */
static rec     recs[MAX_REC];
static int     n_recs;
static pending renames[MAX_REC];
static int     n_renames;
static long    calls;
static int     n_shadows;

#define REAL(name, type) ((type)dlsym(RTLD_NEXT, name))
typedef int (*open_fn)(const char *, int, ...);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*read_fn)(int, void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef int (*fd_fn)(int);
typedef int (*rename_fn)(const char *, const char *);
typedef int (*rename2_fn)(int, const char *, int, const char *, unsigned);

static void copy_file(const char *from, const char *to) {
    int     in = REAL("open", open_fn)(from, O_RDONLY | O_CLOEXEC);
    int     out = REAL("open", open_fn)(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    char    buf[65536];
    ssize_t n;
    while (in >= 0 && out >= 0 && (n = REAL("read", read_fn)(in, buf, sizeof buf)) > 0)
        if (REAL("write", write_fn)(out, buf, (size_t)n) != n) break;
    if (in >= 0) REAL("close", fd_fn)(in);
    if (out >= 0) REAL("close", fd_fn)(out);
}

static void new_shadow(char *out) {
    const char *dir = getenv("PDCKPT_SHIM_DIR");
    snprintf(out, PATH_MAX, "%s/shadow-%ld-%d", dir ? dir : "/tmp", (long)getpid(), n_shadows++);
}

static void crash(void) {
    for (int i = 0; i < n_recs; i++) {
        if (!recs[i].dirty || access(recs[i].path, F_OK) != 0) continue;
        if (recs[i].has_shadow)
            copy_file(recs[i].shadow, recs[i].path);
        else if (truncate(recs[i].path, 0) != 0)
            abort();
    }
    const char *mode = getenv("PDCKPT_SHIM_RENAMES");
    for (int i = n_renames; mode && strcmp(mode, "revert") == 0 && i-- > 0;) {
        REAL("rename", rename_fn)(renames[i].to, renames[i].from);
        if (renames[i].aside[0]) REAL("rename", rename_fn)(renames[i].aside, renames[i].to);
    }
    kill(getpid(), SIGKILL);
}

static long env_long(const char *name, long dflt) {
    const char *v = getenv(name);
    return v && *v ? atol(v) : dflt;
}

/* Counts one call; crashes at PDCKPT_CRASH_AT, or returns true when it must fail instead. */
static bool count_any(void) {
    static long crash_at = -1, fail_at, fail_errno;
    if (crash_at < 0) {
        crash_at = env_long("PDCKPT_CRASH_AT", 0);
        fail_at = env_long("PDCKPT_FAIL_AT", 0);
        fail_errno = env_long("PDCKPT_FAIL_ERRNO", EIO);
    }
    if (++calls == crash_at) crash();
    if (calls != fail_at) return false;
    errno = (int)fail_errno;
    return true;
}

/* write/sync/close/rename calls (not counted when only reads are). */
static bool count_call(void) {
    return !getenv("PDCKPT_FAIL_READS_ONLY") && count_any();
}

/* Reads are counted in fault mode only, so crash-point numbers stay those of the writes. */
static bool count_read(void) {
    return getenv("PDCKPT_FAIL_AT") != NULL && count_any();
}

__attribute__((destructor)) static void report_count(void) {
    const char *path = getenv("PDCKPT_SHIM_COUNT");
    if (!path) return;
    FILE *f = fopen(path, "w");
    if (f) fprintf(f, "%ld\n", calls), fclose(f);
}

static int find_rec(const char *path) {
    for (int i = 0; i < n_recs; i++)
        if (strcmp(recs[i].path, path) == 0) return i;
    return -1;
}

/* Tracks an fd opened for writing (a file) or as a directory (for its fsync). */
static void track_open(int fd, const char *path, int flags, bool existed) {
    if (fd < 0 || fd >= MAX_FD) return;
    fds[fd].kind = 0;
    snprintf(fds[fd].path, PATH_MAX, "%s", path);
    if (flags & O_DIRECTORY) fds[fd].kind = 2;
    if ((flags & O_ACCMODE) == O_RDONLY || (flags & O_DIRECTORY)) return;
    int r = find_rec(path);
    if (r < 0 && n_recs < MAX_REC) {
        r = n_recs++;
        memset(&recs[r], 0, sizeof recs[r]);
        snprintf(recs[r].path, PATH_MAX, "%s", path);
        if (existed) { /* what was there before this process is taken as durable */
            new_shadow(recs[r].shadow);
            copy_file(path, recs[r].shadow);
            recs[r].has_shadow = true;
        }
    }
    fds[fd].kind = r < 0 ? 0 : 1;
    fds[fd].rec = r;
}

static int open_common(const char *name, int dirfd, const char *path, int flags, mode_t mode) {
    bool existed = access(path, F_OK) == 0;
    int  fd;
    if (dirfd == AT_FDCWD && strcmp(name, "open") == 0)
        fd = REAL("open", open_fn)(path, flags, mode);
    else
        fd = ((int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, name))(dirfd, path, flags,
                                                                            mode);
    if (dirfd == AT_FDCWD) track_open(fd, path, flags, existed);
    return fd;
}

static mode_t mode_arg(int flags, va_list ap) {
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return open_common("open", AT_FDCWD, path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return open_common("open", AT_FDCWD, path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return open_common("openat", dirfd, path, flags, mode);
}

static void mark_written(int fd) {
    if (fd >= 0 && fd < MAX_FD && fds[fd].kind == 1) recs[fds[fd].rec].dirty = true;
}

ssize_t write(int fd, const void *buf, size_t n) {
    if (count_call()) return -1;
    mark_written(fd);
    return REAL("write", write_fn)(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    if (count_call()) return -1;
    mark_written(fd);
    return REAL("pwrite", pwrite_fn)(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    return pwrite(fd, buf, n, off);
}

static void dir_synced(const char *dir) {
    int kept = 0;
    for (int i = 0; i < n_renames; i++) {
        char parent[PATH_MAX];
        snprintf(parent, sizeof parent, "%s", renames[i].to);
        char *slash = strrchr(parent, '/');
        if (slash) *slash = '\0';
        if (!slash || strcmp(parent, dir) != 0) renames[kept++] = renames[i];
    }
    n_renames = kept;
}

static int sync_common(int fd, const char *name) {
    if (count_call()) return -1;
    int rc = REAL(name, fd_fn)(fd);
    if (rc != 0 || fd < 0 || fd >= MAX_FD) return rc;
    if (fds[fd].kind == 2) dir_synced(fds[fd].path);
    if (fds[fd].kind != 1) return rc;
    rec *r = &recs[fds[fd].rec];
    if (!r->has_shadow) new_shadow(r->shadow);
    copy_file(r->path, r->shadow); /* these bytes are on disk now */
    r->has_shadow = true;
    r->dirty = false;
    return rc;
}

int fsync(int fd) {
    return sync_common(fd, "fsync");
}
int fdatasync(int fd) {
    return sync_common(fd, "fdatasync");
}

int close(int fd) {
    bool fail = count_call();
    if (fd >= 0 && fd < MAX_FD) fds[fd].kind = 0;
    int rc = REAL("close", fd_fn)(fd); /* Linux frees the descriptor even when close fails */
    if (!fail) return rc;
    errno = (int)env_long("PDCKPT_FAIL_ERRNO", EIO);
    return -1;
}

/* Moves tracked paths from `from` (a file, or a directory and everything below) to `to`. */
static void move_paths(const char *from, const char *to) {
    size_t n = strlen(from);
    for (int i = 0; i < n_recs; i++) {
        char *p = recs[i].path;
        if (strncmp(p, from, n) != 0 || (p[n] != '\0' && p[n] != '/')) continue;
        char moved[PATH_MAX];
        snprintf(moved, sizeof moved, "%s%s", to, p + n);
        snprintf(p, PATH_MAX, "%s", moved);
    }
}

int rename(const char *from, const char *to) {
    if (count_call()) return -1;
    pending p;
    memset(&p, 0, sizeof p);
    snprintf(p.from, PATH_MAX, "%s", from);
    snprintf(p.to, PATH_MAX, "%s", to);
    struct stat st;
    if (lstat(to, &st) == 0 && S_ISREG(st.st_mode)) {
        new_shadow(p.aside);
        if (link(to, p.aside) != 0) p.aside[0] = '\0';
    }
    int rc = REAL("rename", rename_fn)(from, to);
    if (rc != 0) return rc;
    move_paths(from, to);
    if (n_renames < MAX_REC) renames[n_renames++] = p;
    return rc;
}

int renameat2(int fa, const char *a, int fb, const char *b, unsigned flags) {
    if (count_call()) return -1;
    int rc = REAL("renameat2", rename2_fn)(fa, a, fb, b, flags);
    if (rc != 0 || fa != AT_FDCWD || fb != AT_FDCWD) return rc;
    if (flags & RENAME_EXCHANGE) { /* a <-> b, via a name that cannot clash */
        move_paths(a, "\x01swap");
        move_paths(b, a);
        move_paths("\x01swap", b);
    } else {
        move_paths(a, b);
    }
    return rc;
}

/* ---- fault mode only: reads and mappings ---- */

typedef ssize_t (*pread_fn)(int, void *, size_t, off_t);
typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);

ssize_t read(int fd, void *buf, size_t n) {
    if (count_read()) return -1;
    return REAL("read", read_fn)(fd, buf, n);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off) {
    if (count_read()) return -1;
    return REAL("pread", pread_fn)(fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off) {
    return pread(fd, buf, n, off);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    if (fd >= 0 && !(flags & MAP_ANONYMOUS) && getenv("PDCKPT_FAIL_MMAP")) {
        errno = ENODEV;
        return MAP_FAILED;
    }
    return REAL("mmap", mmap_fn)(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    return mmap(addr, len, prot, flags, fd, off);
}
