/*
 * input.c — opens a file as one read-only byte range.  By default the file is read into memory
 * the load owns (pread, two threads for large files), so a later truncation or rewrite of the
 * file by another program cannot change or kill what was loaded.  Zero-copy loads map the file
 * instead (tensor data is then returned in place): faster to open, but a truncation by another
 * writer raises SIGBUS on the next touch and an in-place rewrite changes the returned arrays —
 * the caller asks for that explicitly.  Opens go through safe_open.c (never block, refuse
 * anything but a regular file).
 */
#include "pdk_io.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Small files are read rather than mapped: a mapping costs a VMA (vm.max_map_count is ~65k, and a
 * per-variable directory can hold more files than that) and page faults that a read avoids. */
#define MAP_MIN_BYTES (64u << 10)
/* Files at least this large are read by two threads (each half with its own preads): one thread
 * spends most of a warm read copying and faulting in fresh pages, which a second core halves. */
#define SPLIT_MIN_BYTES ((size_t)64 << 20)
/* Reads of a file that changes while it is read are retried this many times in all. */
#define READ_ATTEMPTS 4

static void unmap(void *ctx, void *data, size_t size) {
    (void)ctx;
    if (data && size) munmap(data, size);
}

typedef struct read_part {
    int      fd;
    uint8_t *dst;
    size_t   off, len;
    int      err;   /* errno of a failed pread, 0 */
    bool     ended; /* the file ended early */
} read_part;

static void *read_part_run(void *arg) {
    read_part *p = arg;
    size_t     done = 0;
    while (done < p->len) {
        size_t  want = p->len - done > ((size_t)1 << 30) ? (size_t)1 << 30 : p->len - done;
        ssize_t n = pread(p->fd, p->dst + done, want, (off_t)(p->off + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return p->err = errno, NULL;
        if (n == 0) return p->ended = true, NULL;
        done += (size_t)n;
    }
    return NULL;
}

/* Reads [0, size) into dst, the second half on a helper thread for large files. */
static void read_parts(int fd, uint8_t *dst, size_t size, read_part parts[2]) {
    size_t half = size >= SPLIT_MIN_BYTES ? (size / 2) & ~(size_t)4095 : size;
    parts[0] = (read_part){fd, dst, 0, half, 0, false};
    parts[1] = (read_part){fd, dst + half, half, size - half, 0, false};
    pthread_t helper;
    bool      threaded =
        parts[1].len > 0 && pthread_create(&helper, NULL, read_part_run, &parts[1]) == 0;
    read_part_run(&parts[0]);
    if (threaded)
        pthread_join(helper, NULL);
    else if (parts[1].len > 0)
        read_part_run(&parts[1]);
}

static bool same_version(const struct stat *a, const struct stat *b) {
    return a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec && a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
           a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* One attempt: *changed when the file was written (size, mtime or ctime moved) meanwhile. */
static pdckpt_status read_once(int fd, const char *path, const struct stat *before,
                               const pdckpt_allocator *a, pdckpt_buffer **out, bool *changed,
                               pdckpt_error *err) {
    size_t         size = (size_t)before->st_size;
    pdckpt_buffer *buf = size ? pdk_buffer_new_alloc(a, size, false) : NULL;
    if (size && !buf) return pdk_fail_nomem(err, "file contents");
    read_part parts[2];
    read_parts(fd, buf ? pdk_buffer_data(buf) : NULL, size, parts);
    struct stat after;
    int         e = parts[0].err ? parts[0].err : parts[1].err;
    if (!e && fstat(fd, &after) != 0) e = errno;
    *changed = !e && (parts[0].ended || parts[1].ended || !same_version(before, &after));
    if (e || *changed) {
        pdckpt_buffer_release(buf);
        if (e) return pdk_fail_sys(err, e, path, "read");
        return pdk_fail(err, PDCKPT_ERR_IO, path, -1,
                        "the file changed while it was being read (%d attempts): another "
                        "program is writing it",
                        READ_ATTEMPTS);
    }
    *out = buf;
    return PDCKPT_OK;
}

static pdckpt_status read_all(int fd, const char *path, struct stat *st, const pdckpt_allocator *a,
                              pdckpt_buffer **out, pdckpt_error *err) {
    for (int attempt = 1;; attempt++) {
        bool          changed = false;
        pdckpt_status status = read_once(fd, path, st, a, out, &changed, err);
        if (!changed || attempt == READ_ATTEMPTS) return status;
        pdk_error_reset(err);
        if (fstat(fd, st) != 0) return pdk_fail_sys(err, errno, path, "stat");
        if ((uint64_t)st->st_size > SIZE_MAX)
            return pdk_fail(err, PDCKPT_ERR_LIMIT, path, -1, "file does not fit in memory");
    }
}

static pdckpt_status map_file(int fd, const char *path, struct stat *st, const pdckpt_allocator *a,
                              pdckpt_buffer **out, pdckpt_error *err) {
    size_t size = (size_t)st->st_size;
    void  *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) return read_all(fd, path, st, a, out, err); /* e.g. no mmap on FS */
    *out = pdk_buffer_new_custom(a, map, size, true, unmap, NULL);
    if (*out) return PDCKPT_OK;
    munmap(map, size);
    return pdk_fail_nomem(err, "mapping");
}

static pdckpt_status open_input(int dirfd, const char *rel, unsigned how, const char *path,
                                bool zero_copy, const pdckpt_allocator *a, pdk_input *out,
                                pdckpt_error *err) {
    memset(out, 0, sizeof *out);
    out->name = path;
    int         fd;
    struct stat st;
    PDK_TRY(pdk_open_read(dirfd, rel, how, path, &fd, &st, err));
    pdckpt_status status = PDCKPT_OK;
    if ((uint64_t)st.st_size > SIZE_MAX)
        status = pdk_fail(err, PDCKPT_ERR_LIMIT, path, -1, "file does not fit in memory");
    if (status == PDCKPT_OK && st.st_size > 0) {
        status = zero_copy && (size_t)st.st_size >= MAP_MIN_BYTES
                     ? map_file(fd, path, &st, a, &out->owner, err)
                     : read_all(fd, path, &st, a, &out->owner, err);
        if (status == PDCKPT_OK && out->owner) { /* a retried read may find it emptied */
            out->data = pdk_buffer_data(out->owner);
            out->len = pdk_buffer_size(out->owner);
        }
    }
    close(fd);
    if (status == PDCKPT_OK && !out->data) out->data = (const uint8_t *)"";
    return status;
}

pdckpt_status pdk_input_open_file(const char *path, bool zero_copy, const pdckpt_allocator *a,
                                  pdk_input *out, pdckpt_error *err) {
    return open_input(AT_FDCWD, path, 0, path, zero_copy, a, out, err);
}

pdckpt_status pdk_input_open_file_at(int dirfd, const char *rel, const char *path, bool zero_copy,
                                     const pdckpt_allocator *a, pdk_input *out, pdckpt_error *err) {
    return open_input(dirfd, rel, PDK_OPEN_BENEATH, path, zero_copy, a, out, err);
}

void pdk_input_from_memory(const void *data, size_t len, bool zero_copy, pdk_input *out) {
    memset(out, 0, sizeof *out);
    out->data = data ? data : "";
    out->len = len;
    out->name = "<memory>";
    out->copy_tensors = !zero_copy;
}

void pdk_input_close(pdk_input *in) {
    if (!in) return;
    pdckpt_buffer_release(in->owner);
    in->owner = NULL;
    in->data = NULL;
    in->len = 0;
}
