/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_util.c — the small tools the sharded format's modules use (errors and the bounded cursor
 * are the core's): a growable byte buffer for encoded trees and messages, and a reader position
 * over the core's cursor that checks every length against the bytes left before it trusts it
 * (the bytes may come from another rank or from a file on disk).
 */
#include "pdk_distcp.h"

#include "../../core/cursor.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- blobs ---- */

void pdk_blob_put(pdk_blob *b, const void *bytes, size_t len) {
    if (b->failed || len == 0) return;
    if (len > SIZE_MAX / 2 - b->len) {
        b->failed = true;
        return;
    }
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len) cap *= 2;
        uint8_t *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, bytes, len);
    b->len += len;
}

void pdk_blob_u8(pdk_blob *b, uint8_t v) {
    pdk_blob_put(b, &v, 1);
}

void pdk_blob_u32(pdk_blob *b, uint32_t v) {
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    pdk_blob_put(b, le, 4);
}

void pdk_blob_u64(pdk_blob *b, uint64_t v) {
    pdk_blob_u32(b, (uint32_t)v);
    pdk_blob_u32(b, (uint32_t)(v >> 32));
}

void pdk_blob_str(pdk_blob *b, const char *s, size_t len) {
    pdk_blob_u64(b, len);
    pdk_blob_put(b, s, len);
}

pdckpt_status pdk_blob_check(const pdk_blob *b, pdckpt_error *err, const char *what) {
    return b->failed ? pdk_fail_nomem(err, what) : PDCKPT_OK;
}

void pdk_blob_free(pdk_blob *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* ---- bounded reader ---- */

pdckpt_status pdk_rd_fail(pdk_rd *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pdckpt_status st = pdk_failv(r->err, PDCKPT_ERR_FORMAT, r->source, (int64_t)r->pos, fmt, ap);
    va_end(ap);
    if (r->err && r->err->offset < 0) r->err->offset = (int64_t)r->pos;
    return st;
}

/* The reads go through the core's bounded cursor (the one place that checks lengths); pdk_rd is
 * its position kept between calls by the modules that decode ranks' and files' bytes. */
static pdk_cursor cursor_of(const pdk_rd *r) {
    pdk_cursor c;
    pdk_cur_init(&c, r->p, r->len, r->source, r->err);
    c.pos = r->pos;
    return c;
}

pdckpt_status pdk_rd_u8(pdk_rd *r, uint8_t *v, const char *what) {
    pdk_cursor c = cursor_of(r);
    PDK_TRY(pdk_cur_u8(&c, v, what));
    r->pos = c.pos;
    return PDCKPT_OK;
}

pdckpt_status pdk_rd_u32(pdk_rd *r, uint32_t *v, const char *what) {
    pdk_cursor c = cursor_of(r);
    PDK_TRY(pdk_cur_u32le(&c, v, what));
    r->pos = c.pos;
    return PDCKPT_OK;
}

pdckpt_status pdk_rd_u64(pdk_rd *r, uint64_t *v, const char *what) {
    pdk_cursor c = cursor_of(r);
    PDK_TRY(pdk_cur_u64le(&c, v, what));
    r->pos = c.pos;
    return PDCKPT_OK;
}

pdckpt_status pdk_rd_flagged_pair(pdk_rd *r, uint8_t *flag, uint64_t *a, uint64_t *b,
                                  const char *what_a, const char *what_b) {
    PDK_TRY(pdk_rd_u8(r, flag, "a flattened flag"));
    if (*flag > 1) return pdk_rd_fail(r, "expected a flattened flag 0 or 1");
    if (*flag) PDK_TRY(pdk_rd_u64(r, a, what_a));
    if (*flag) PDK_TRY(pdk_rd_u64(r, b, what_b));
    return PDCKPT_OK;
}

pdckpt_status pdk_rd_count(pdk_rd *r, uint64_t *n, size_t min_item, const char *what) {
    size_t at = r->pos;
    PDK_TRY(pdk_rd_u64(r, n, what));
    uint64_t left = r->len - r->pos;
    if (min_item && *n > left / min_item) {
        r->pos = at;
        return pdk_rd_fail(r, "expected at most %llu items for %s (bytes left), found %llu",
                           (unsigned long long)(left / min_item), what, (unsigned long long)*n);
    }
    return PDCKPT_OK;
}

pdckpt_status pdk_rd_str(pdk_rd *r, const char **s, size_t *len, const char *what) {
    uint64_t n;
    PDK_TRY(pdk_rd_count(r, &n, 1, what));
    *s = (const char *)r->p + r->pos;
    *len = (size_t)n;
    r->pos += (size_t)n;
    return PDCKPT_OK;
}

pdckpt_status pdk_rd_strdup(pdk_rd *r, char **s, const char *what) {
    const char *p;
    size_t      len;
    PDK_TRY(pdk_rd_str(r, &p, &len, what));
    if (memchr(p, '\0', len)) return pdk_rd_fail(r, "expected %s without NUL bytes", what);
    *s = malloc(len + 1);
    if (!*s) return pdk_fail_nomem(r->err, what);
    memcpy(*s, p, len);
    (*s)[len] = '\0';
    return PDCKPT_OK;
}

static pdckpt_status read_fd(int fd, const char *path, size_t size, uint8_t *dst,
                             pdckpt_error *err) {
    size_t done = 0;
    while (done < size) {
        ssize_t n = read(fd, dst + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return pdk_fail_sys(err, errno, path, "read");
        if (n == 0) return pdk_fail(err, PDCKPT_ERR_IO, path, -1, "file shrank while reading");
        done += (size_t)n;
    }
    return PDCKPT_OK;
}

pdckpt_status pdk_read_small_file(const char *path, size_t limit, uint8_t **data, size_t *len,
                                  struct stat *st_out, pdckpt_error *err) {
    int         fd = -1;
    struct stat st;
    char        dir[4096];
    const char *base;
    size_t      base_len;
    pdk_split_path(path, dir, sizeof dir, &base, &base_len);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return pdk_fail_sys(err, errno, path, "open its directory");
    /* never blocks: a FIFO or device named like a metadata file is refused, not opened; and
     * beneath the checkpoint's directory, so a symbolic link planted there is not followed */
    pdckpt_status s = pdk_open_read(dfd, base, PDK_OPEN_BENEATH, path, &fd, &st, err);
    close(dfd);
    PDK_TRY(s);
    if ((uint64_t)st.st_size > limit)
        s = pdk_fail(err, PDCKPT_ERR_LIMIT, path, -1,
                     "expected a regular file of at most %zu bytes, found %lld bytes", limit,
                     (long long)st.st_size);
    uint8_t *buf = NULL;
    if (s == PDCKPT_OK && !(buf = malloc(st.st_size ? (size_t)st.st_size : 1)))
        s = pdk_fail_nomem(err, "file contents");
    if (s == PDCKPT_OK) s = read_fd(fd, path, (size_t)st.st_size, buf, err);
    close(fd);
    if (s != PDCKPT_OK) {
        free(buf);
        return s;
    }
    *data = buf;
    *len = (size_t)st.st_size;
    if (st_out) *st_out = st;
    return PDCKPT_OK;
}

pdckpt_status pdk_dist_data_path(const char *dir, const char *name, char *out, size_t cap,
                                 pdckpt_error *err) {
    PDK_TRY(pdk_path_join(dir, name, out, cap, err));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return pdk_fail_sys(err, errno, dir, "open");
    int           fd = -1;
    struct stat   st;
    pdckpt_status s = pdk_open_read(dfd, name, PDK_OPEN_BENEATH, out, &fd, &st, err);
    if (fd >= 0) close(fd);
    close(dfd);
    return s;
}

pdckpt_status pdk_dist_data_target(const char *path, pdckpt_error *err) {
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISLNK(st.st_mode)) return PDCKPT_OK;
    return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1,
                    "not replaced: a symbolic link inside a sharded checkpoint directory is not "
                    "followed (a data file is written only where nothing is or over a file)");
}

/* ---- arena ---- */

#define ARENA_CHUNK ((size_t)4 << 20)

struct pdk_arena_chunk {
    struct pdk_arena_chunk *next;
    size_t                  used, cap;
    max_align_t             data[]; /* cap bytes */
};

static void *arena_alloc(void *ctx, size_t size, size_t alignment) {
    pdk_arena              *ar = ctx;
    struct pdk_arena_chunk *c = ar->chunks;
    if (alignment < sizeof(max_align_t)) alignment = sizeof(max_align_t);
    size_t at = c ? (c->used + alignment - 1) & ~(alignment - 1) : 0;
    if (!c || at > c->cap || size > c->cap - at) {
        size_t cap = size + alignment > ARENA_CHUNK ? size + alignment : ARENA_CHUNK;
        if (!(c = pdk_alloc(ar->parent, sizeof *c + cap))) return NULL;
        c->next = ar->chunks, c->used = 0, c->cap = cap;
        ar->chunks = c;
        at = 0;
    }
    c->used = at + size;
    return (uint8_t *)c->data + at;
}

static void arena_free(void *ctx, void *ptr, size_t size) {
    (void)ctx, (void)ptr, (void)size;
}

void pdk_arena_init_on(pdk_arena *ar, const pdckpt_allocator *parent) {
    ar->chunks = NULL;
    ar->allocator = (pdckpt_allocator){arena_alloc, arena_free, ar};
    ar->parent = parent;
}

void pdk_arena_init(pdk_arena *ar) {
    pdk_arena_init_on(ar, NULL);
}

void pdk_arena_release(pdk_arena *ar) {
    while (ar->chunks) {
        struct pdk_arena_chunk *next = ar->chunks->next;
        pdk_free(ar->parent, ar->chunks, sizeof *ar->chunks + ar->chunks->cap);
        ar->chunks = next;
    }
}
