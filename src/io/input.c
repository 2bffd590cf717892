/*
 * input.c — opens a file as one read-only byte range: mmap when zero-copy is wanted (tensor data
 * is then returned in place), else a private read.  The mapping lives in a refcounted buffer, so
 * it outlives the load for as long as any tensor points into it.
 */
#include "pdk_io.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Small files are read rather than mapped: a mapping costs a VMA (vm.max_map_count is ~65k, and a
 * per-variable directory can hold more files than that) and page faults that a read avoids. */
#define MAP_MIN_BYTES (64u << 10)

static void unmap(void *ctx, void *data, size_t size) {
    (void)ctx;
    if (data && size) munmap(data, size);
}

static pdckpt_status read_all(int fd, const char *path, size_t size, const pdckpt_allocator *a,
                              pdckpt_buffer **out, pdckpt_error *err) {
    pdckpt_buffer *buf = pdk_buffer_new_alloc(a, size, false);
    if (!buf) return pdk_fail_nomem(err, "file contents");
    uint8_t *dst = pdk_buffer_data(buf);
    size_t   done = 0;
    while (done < size) {
        ssize_t n = pread(fd, dst + done, size - done, (off_t)done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            pdckpt_buffer_release(buf);
            if (n == 0)
                return pdk_fail(err, PDCKPT_ERR_IO, path, (int64_t)done,
                                "file shrank while reading: expected %zu bytes", size);
            return pdk_fail_sys(err, errno, path, "read");
        }
        done += (size_t)n;
    }
    *out = buf;
    return PDCKPT_OK;
}

static pdckpt_status map_file(int fd, const char *path, size_t size, const pdckpt_allocator *a,
                              pdckpt_buffer **out, pdckpt_error *err) {
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) return read_all(fd, path, size, a, out, err); /* e.g. no mmap on FS */
    *out = pdk_buffer_new_custom(a, map, size, true, unmap, NULL);
    if (*out) return PDCKPT_OK;
    munmap(map, size);
    return pdk_fail_nomem(err, "mapping");
}

pdckpt_status pdk_input_open_file(const char *path, bool zero_copy, const pdckpt_allocator *a,
                                  pdk_input *out, pdckpt_error *err) {
    return pdk_input_open_file_at(AT_FDCWD, path, path, zero_copy, a, out, err);
}

pdckpt_status pdk_input_open_file_at(int dirfd, const char *rel, const char *path, bool zero_copy,
                                     const pdckpt_allocator *a, pdk_input *out, pdckpt_error *err) {
    memset(out, 0, sizeof *out);
    out->name = path;
    int fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return pdk_fail_sys(err, errno, path, "open");
    struct stat   st;
    pdckpt_status status = PDCKPT_OK;
    if (fstat(fd, &st) != 0)
        status = pdk_fail_sys(err, errno, path, "stat");
    else if (S_ISDIR(st.st_mode))
        status = pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1, "expected a file, found a directory");
    else if (!S_ISREG(st.st_mode))
        status = pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1, "expected a regular file");
    else if ((uint64_t)st.st_size > SIZE_MAX)
        status = pdk_fail(err, PDCKPT_ERR_LIMIT, path, -1, "file does not fit in memory");
    if (status == PDCKPT_OK && st.st_size > 0) {
        size_t size = (size_t)st.st_size;
        status = zero_copy && size >= MAP_MIN_BYTES ? map_file(fd, path, size, a, &out->owner, err)
                                                    : read_all(fd, path, size, a, &out->owner, err);
        if (status == PDCKPT_OK) {
            out->data = pdk_buffer_data(out->owner);
            out->len = size;
        }
    }
    close(fd);
    if (status == PDCKPT_OK && !out->data) out->data = (const uint8_t *)"";
    return status;
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
