/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sink_file.c — file sinks.  The atomic one writes a temp file beside the target and publishes it
 * with rename only after the data is synced, then syncs the directory, so a crash leaves either
 * the old file or the new one; it never opens the target with O_TRUNC (a reader may have it
 * mapped).  The plain one creates a fresh file inside a directory transaction (dir_tx.c).
 * A save replaces only a regular file: through a symbolic link it replaces the file the link
 * names (the link stays), keeping that file's mode and, where the process may, its owner; a
 * directory, FIFO, socket or device at the target is refused and left alone.
 */
#define _GNU_SOURCE /* sync_file_range */
#include "pdk_io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_BUFFER (1u << 20)

/* How a file sink opens its file. */
typedef enum sink_mode {
    SINK_PLAIN,   /* a new file inside a directory transaction */
    SINK_ATOMIC,  /* temporary + rename, through a symbolic link at the target */
    SINK_INNER,   /* the same, a link at the target refused */
    SINK_SIDECAR, /* SINK_INNER without the sweep: its file's own save swept its temporaries */
} sink_mode;

typedef struct file_sink {
    pdk_sink     base;
    int          fd;
    bool         atomic;
    bool         durable;
    char         temp[PATH_MAX];   /* what is being written */
    char         path[PATH_MAX];   /* the name the caller gave (errors) */
    char         target[PATH_MAX]; /* what is replaced: `path` with symbolic links followed */
    pdk_sidecar *sum;              /* checksum sidecar being hashed, or NULL */
    uint64_t     written;          /* bytes written so far */
    uint64_t     kicked;           /* bytes whose writeback has been started */
} file_sink;

#define WRITE_CHUNK ((size_t)8 << 20)

/* A durable save starts the disk writing each 8 MiB as soon as it is in the page cache, so the
 * final fdatasync waits for the tail only: the disk works while the rest is being made (a W2
 * pickle is 0.5 s of conversion).  A hint: if the kernel refuses it, fdatasync still does all. */
static void kick_writeback(file_sink *fs) {
#ifdef SYNC_FILE_RANGE_WRITE
    if (!fs->durable || fs->written - fs->kicked < WRITE_CHUNK) return;
    (void)sync_file_range(fs->fd, (off_t)fs->kicked, (off_t)(fs->written - fs->kicked),
                          SYNC_FILE_RANGE_WRITE);
    fs->kicked = fs->written;
#else
    (void)fs;
#endif
}

static pdckpt_status file_emit(pdk_sink *sink, const void *bytes, size_t len, pdckpt_error *err) {
    file_sink     *fs = (file_sink *)sink;
    const uint8_t *p = bytes;
    if (fs->sum) PDK_TRY(pdk_sidecar_update(fs->sum, bytes, len, err));
    while (len > 0) {
        /* At most 8 MiB per write(): Linux copies a huge write into the page cache several
         * times slower than the same bytes in pieces (1 GiB in one call: 2.65 s; in 1-64 MiB
         * calls: 0.31-0.35 s on the benchmark machine, see BENCHMARKS.md). */
        size_t  chunk = len > WRITE_CHUNK ? WRITE_CHUNK : len;
        ssize_t n = write(fs->fd, p, chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return pdk_fail_sys(err, errno, fs->path, "write");
        if (n == 0) return pdk_fail_sys(err, EIO, fs->path, "write");
        p += n;
        len -= (size_t)n;
        fs->written += (uint64_t)n;
        kick_writeback(fs);
    }
    return PDCKPT_OK;
}

static pdckpt_status file_finish(pdk_sink *sink, pdckpt_error *err) {
    file_sink  *fs = (file_sink *)sink;
    const char *shown = fs->path;
    if (fs->durable && fdatasync(fs->fd) != 0) return pdk_fail_sys(err, errno, shown, "fsync");
    int fd = fs->fd;
    fs->fd = -1;
    if (close(fd) != 0) return pdk_fail_sys(err, errno, shown, "close");
    if (!fs->atomic) return PDCKPT_OK;
    /* A sidecar describing the old file goes first, so no crash pairs it with the new one. */
    PDK_TRY(pdk_sidecar_remove_stale(fs->target, fs->durable, err));
    if (rename(fs->temp, fs->target) != 0) return pdk_fail_sys(err, errno, fs->path, "rename");
    fs->temp[0] = '\0'; /* published: nothing left to discard */
    if (fs->sum) return pdk_sidecar_publish(fs->sum, fs->target, fs->durable, err); /* syncs dir */
    return fs->durable ? pdk_fsync_dir_of(fs->target, false, err) : PDCKPT_OK;
}

static void file_discard(pdk_sink *sink) {
    file_sink *fs = (file_sink *)sink;
    if (fs->fd >= 0) close(fs->fd);
    fs->fd = -1;
    if (fs->temp[0]) unlink(fs->temp);
    fs->temp[0] = '\0';
}

static void file_destroy(pdk_sink *sink) {
    pdk_sidecar_free(((file_sink *)sink)->sum);
    pdk_free(sink->alloc, sink, sizeof(file_sink));
}

static const pdk_sink_ops file_ops = {file_emit, file_finish, file_discard, file_destroy};

/* What an atomic save may replace: nothing, or a regular file (through links when `follow`). */
static pdckpt_status check_target(file_sink *fs, bool follow, struct stat *old, bool *exists,
                                  pdckpt_error *err) {
    const char *p = fs->path;
    if (follow)
        PDK_TRY(pdk_resolve_save_target(p, fs->target, sizeof fs->target, old, exists, err));
    if (!follow) {
        snprintf(fs->target, sizeof fs->target, "%s", p);
        *exists = lstat(p, old) == 0;
        if (!*exists && errno != ENOENT) return pdk_fail_sys(err, errno, p, "stat");
    }
    if (!*exists || S_ISREG(old->st_mode)) return PDCKPT_OK;
    if (S_ISDIR(old->st_mode))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, p, -1,
                        "expected a file (or nothing) at the save target, found a directory; a "
                        "file save never replaces a directory (paddle.save raises "
                        "IsADirectoryError here)");
    pdk_error_reset(err);
    pdckpt_status st = pdk_refuse_file_kind(old->st_mode, p, err);
    pdk_error_prefix(err, "not replaced: ");
    return st;
}

/* The new file takes the replaced one's permissions, and its owner where the process may give
 * it (root, or a group it belongs to); otherwise the owner is the saving user, as for any new
 * file.  Not its set-user-ID, set-group-ID and sticky bits: a checkpoint is no program, and a
 * new file of the saving user's with another's set-ID bit would run as the saver. */
static pdckpt_status keep_mode(file_sink *fs, const struct stat *old, pdckpt_error *err) {
    if (fchmod(fs->fd, old->st_mode & 0777) != 0)
        return pdk_fail_sys(err, errno, fs->path, "chmod of the new file");
    if ((old->st_uid != geteuid() || old->st_gid != getegid()) &&
        fchown(fs->fd, old->st_uid, old->st_gid) != 0 &&
        fchown(fs->fd, (uid_t)-1, old->st_gid) != 0)
        errno = 0; /* not permitted: the saving user owns it */
    return PDCKPT_OK;
}

static pdckpt_status create_temp(file_sink *fs, sink_mode mode, pdckpt_error *err) {
    struct stat old;
    bool        exists = false;
    if (fs->atomic) {
        PDK_TRY(check_target(fs, mode == SINK_ATOMIC, &old, &exists, err));
        /* debris of a writer that was killed: this file's temporaries and its sidecars' */
        if (mode != SINK_SIDECAR) pdk_remove_stale_temps(fs->target);
        PDK_TRY(pdk_temp_path_beside(fs->target, fs->temp, sizeof fs->temp, err));
    }
    /* 0666 & ~umask, like any new file; O_EXCL so we never clobber anything in place. */
    fs->fd = open(fs->temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fs->fd < 0) {
        fs->temp[0] = '\0';
        return pdk_fail_sys(err, errno, fs->path, "create %s",
                            fs->atomic ? "temporary file" : "file");
    }
    return exists ? keep_mode(fs, &old, err) : PDCKPT_OK;
}

/* `path` is where the bytes go; errors name `shown` (a directory save's file by its final name,
 * not by the temporary directory it is written in). */
static pdckpt_status open_file_sink(const char *path, const char *shown, sink_mode mode,
                                    bool durable, const pdckpt_allocator *a, pdk_sink **out,
                                    pdckpt_error *err) {
    bool atomic = mode != SINK_PLAIN;
    *out = NULL;
    if (strlen(path) >= PATH_MAX || strlen(shown) >= PATH_MAX)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1, "path too long");
    file_sink *fs = pdk_alloc(a, sizeof *fs);
    if (!fs) return pdk_fail_nomem(err, "file sink");
    memset(fs, 0, sizeof *fs);
    fs->fd = -1;
    fs->atomic = atomic;
    fs->durable = durable;
    pdckpt_status st = pdk_sink_init(&fs->base, &file_ops, a, fs->path, FILE_BUFFER, err);
    snprintf(fs->path, sizeof fs->path, "%s", atomic ? path : shown);
    if (!atomic) snprintf(fs->temp, sizeof fs->temp, "%s", path);
    if (st == PDCKPT_OK) st = create_temp(fs, mode, err);
    if (st != PDCKPT_OK) {
        pdk_sink_abort(&fs->base);
        return st;
    }
    *out = &fs->base;
    return PDCKPT_OK;
}

pdckpt_status pdk_sink_open_atomic_file(const char *path, bool durable, const pdckpt_allocator *a,
                                        pdk_sink **out, pdckpt_error *err) {
    return open_file_sink(path, path, SINK_ATOMIC, durable, a, out, err);
}

static pdckpt_status open_unfollowed(const char *path, sink_mode mode, bool durable,
                                     const pdckpt_allocator *a, pdk_sink **out, pdckpt_error *err) {
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1,
                        "not replaced: a symbolic link inside a checkpoint directory is not "
                        "followed");
    return open_file_sink(path, path, mode, durable, a, out, err);
}

pdckpt_status pdk_sink_open_atomic_inner(const char *path, bool durable, const pdckpt_allocator *a,
                                         pdk_sink **out, pdckpt_error *err) {
    return open_unfollowed(path, SINK_INNER, durable, a, out, err);
}

pdckpt_status pdk_sink_open_sidecar(const char *path, bool durable, const pdckpt_allocator *a,
                                    pdk_sink **out, pdckpt_error *err) {
    return open_unfollowed(path, SINK_SIDECAR, durable, a, out, err);
}

pdckpt_status pdk_sink_open_plain_file(const char *path, const char *shown, bool durable,
                                       const pdckpt_allocator *a, pdk_sink **out,
                                       pdckpt_error *err) {
    return open_file_sink(path, shown, SINK_PLAIN, durable, a, out, err);
}

pdckpt_status pdk_sink_enable_checksum(pdk_sink *sink, pdckpt_error *err) {
    file_sink *fs = (file_sink *)sink;
    if (sink->ops != &file_ops || !fs->atomic || sink->written)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, sink->name, -1,
                        "checksum sidecars are written for files saved atomically");
    /* refused before any byte is written, not after the new file is in place */
    PDK_TRY(pdk_sidecar_check_free(fs->target, err));
    return fs->sum ? PDCKPT_OK : pdk_sidecar_new(sink->alloc, &fs->sum, err);
}
