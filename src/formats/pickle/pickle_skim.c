/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_skim.c — a pickle file's skeleton, read without its large payloads (pickle_skim.h).
 * Only the opcode table (pickle_opcodes.h) is known here: each opcode's argument is skipped by
 * its kind, nothing is interpreted, so the pickle reader alone decides what the file means when
 * it parses the image.  The opcodes are read through a window that starts small after every
 * payload jumped over (a tensor's header is a few hundred bytes) and doubles while none is, so a
 * file of many small values is read in few large reads.
 */
#include "pickle_skim.h"

#include "pickle_opcodes.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define WINDOW_MIN ((uint64_t)16 << 10)
#define WINDOW_MAX ((uint64_t)4 << 20)

typedef struct skimmer {
    pdk_skim     *s;
    uint64_t      pos;    /* the next opcode */
    uint64_t      have;   /* the image holds the file's bytes up to here (from pos on) */
    uint64_t      window; /* the next read's size */
    pdckpt_error *err;
} skimmer;

pdckpt_status pdk_skim_read(const pdk_skim *s, void *dst, uint64_t off, size_t n,
                            pdckpt_error *err) {
    uint8_t *d = dst;
    size_t   done = 0;
    while (done < n) {
        ssize_t got = pread(s->fd, d + done, n - done, (off_t)(off + done));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0)
            return pdk_fail_sys(err, errno, s->name, "pread at offset %llu",
                                (unsigned long long)(off + done));
        if (got == 0)
            return pdk_fail(err, PDCKPT_ERR_IO, s->name, (int64_t)(off + done),
                            "expected %llu bytes at offset %llu, the file ends first (truncated "
                            "since it was opened)",
                            (unsigned long long)n, (unsigned long long)off);
        done += (size_t)got;
    }
    return PDCKPT_OK;
}

/* The image holds the file's bytes up to `end` (from the current opcode on). */
static pdckpt_status need(skimmer *k, uint64_t end, const char *what) {
    if (end <= k->have) return PDCKPT_OK;
    pdk_skim *s = k->s;
    if (end > s->len)
        return pdk_fail(k->err, PDCKPT_ERR_FORMAT, s->name, (int64_t)k->pos,
                        "expected %s within the file, found its end at %llu bytes", what,
                        (unsigned long long)s->len);
    uint64_t to = k->have + k->window > end ? k->have + k->window : end;
    if (to > s->len) to = s->len;
    PDK_TRY(pdk_skim_read(s, s->image + k->have, k->have, (size_t)(to - k->have), k->err));
    k->have = to;
    if (k->window < WINDOW_MAX) k->window *= 2;
    return PDCKPT_OK;
}

/* The end of the '\n'-terminated line starting at `at`. */
static pdckpt_status line_end(skimmer *k, uint64_t at, uint64_t *end) {
    for (;;) {
        PDK_TRY(need(k, at + 1, "a line ending"));
        const uint8_t *nl = memchr(k->s->image + at, '\n', (size_t)(k->have - at));
        if (nl) {
            *end = (uint64_t)(nl - k->s->image) + 1;
            return PDCKPT_OK;
        }
        at = k->have;
    }
}

static bool is_payload(uint8_t op) {
    return op == PK_OP_BINBYTES || op == PK_OP_BINBYTES8 || op == PK_OP_BYTEARRAY8;
}

static pdckpt_status add_hole(skimmer *k, uint64_t at, uint64_t len) {
    pdk_skim *s = k->s;
    if (s->n_holes == s->cap_holes) {
        size_t         cap = s->cap_holes ? 2 * s->cap_holes : 64;
        pdk_skim_hole *h = realloc(s->holes, cap * sizeof *h);
        if (!h) return pdk_fail_nomem(k->err, "the skimmed payloads");
        s->holes = h;
        s->cap_holes = cap;
    }
    s->holes[s->n_holes++] = (pdk_skim_hole){at, len};
    s->skipped += len;
    return PDCKPT_OK;
}

/* A counted argument: a little-endian length, then that many bytes, jumped over when large. */
static pdckpt_status skip_counted(skimmer *k, uint8_t op, uint64_t min_payload, uint64_t *next) {
    const pk_opinfo *info = &pk_opcodes[op];
    PDK_TRY(need(k, k->pos + 1 + info->size, pk_op_name(op)));
    uint64_t n = 0;
    for (int i = info->size - 1; i >= 0; i--) n = n << 8 | k->s->image[k->pos + 1 + (unsigned)i];
    uint64_t at = k->pos + 1 + info->size;
    if (n > k->s->len - at)
        return pdk_fail(k->err, PDCKPT_ERR_FORMAT, k->s->name, (int64_t)k->pos,
                        "expected the %llu bytes of %s within the file, found its end at %llu",
                        (unsigned long long)n, pk_op_name(op), (unsigned long long)k->s->len);
    *next = at + n;
    if (!is_payload(op) || n < min_payload) return need(k, at + n, pk_op_name(op));
    PDK_TRY(add_hole(k, at, n));
    if (k->have < at + n) k->have = at + n; /* unread: the image keeps zero pages there */
    k->window = WINDOW_MIN;
    return PDCKPT_OK;
}

/* One opcode at k->pos: *next is the one after it; *stop at STOP. */
static pdckpt_status skip_op(skimmer *k, uint64_t min_payload, uint64_t *next, bool *stop) {
    PDK_TRY(need(k, k->pos + 1, "an opcode"));
    uint8_t          op = k->s->image[k->pos];
    const pk_opinfo *info = &pk_opcodes[op];
    if (!info->name)
        return pdk_fail(k->err, PDCKPT_ERR_FORMAT, k->s->name, (int64_t)k->pos,
                        "expected a pickle opcode, found byte 0x%02x", op);
    *stop = op == PK_OP_STOP;
    switch (info->arg) {
    case PK_ARG_NONE: *next = k->pos + 1; return PDCKPT_OK;
    case PK_ARG_FIXED: /* FRAME too: the framed opcodes follow and are skimmed one by one */
        *next = k->pos + 1 + info->size;
        return need(k, *next, pk_op_name(op));
    case PK_ARG_COUNTED: return skip_counted(k, op, min_payload, next);
    case PK_ARG_LINE: return line_end(k, k->pos + 1, next);
    default: PDK_TRY(line_end(k, k->pos + 1, next)); return line_end(k, *next, next);
    }
}

static pdckpt_status skim_ops(skimmer *k, uint64_t min_payload) {
    for (bool stop = false; !stop;) {
        uint64_t next = 0;
        PDK_TRY(skip_op(k, min_payload, &next, &stop));
        k->pos = next;
    }
    /* what follows STOP (nothing, in any pickle Paddle or pdckpt writes) is read as it is, so
     * the reader sees the file's own bytes there */
    return need(k, k->s->len, "the bytes after STOP");
}

pdckpt_status pdk_skim_open(int fd, const struct stat *st, const char *name, uint64_t min_payload,
                            pdk_skim *out, pdckpt_error *err) {
    memset(out, 0, sizeof *out);
    out->fd = fd;
    out->st = *st;
    out->name = name;
    if (st->st_size <= 0)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, name, 0, "expected a pickle, found an empty file");
    out->len = (size_t)st->st_size;
    void *m = mmap(NULL, out->len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return pdk_fail_sys(err, errno, name, "mmap of %zu bytes", out->len);
    out->image = m;
    skimmer k = {out, 0, 0, WINDOW_MIN, err};
    return skim_ops(&k, min_payload);
}

void pdk_skim_free(pdk_skim *s) {
    if (!s) return;
    if (s->image) munmap(s->image, s->len);
    if (s->fd >= 0) close(s->fd);
    free(s->holes);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}

bool pdk_skim_offset(const pdk_skim *s, const void *p, uint64_t n, uint64_t *off) {
    uintptr_t a = (uintptr_t)p, base = (uintptr_t)s->image;
    if (!s->image || a < base || a - base > s->len || n > s->len - (a - base)) return false;
    *off = a - base;
    return true;
}

bool pdk_skim_holed(const pdk_skim *s, uint64_t off, uint64_t n) {
    size_t lo = 0, hi = s->n_holes; /* the first hole ending past off (holes are in order) */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->holes[mid].at + s->holes[mid].len <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->n_holes && s->holes[lo].at < off + n;
}

pdckpt_status pdk_skim_check(const pdk_skim *s, pdckpt_error *err) {
    struct stat now;
    if (fstat(s->fd, &now) != 0) return pdk_fail_sys(err, errno, s->name, "fstat");
    const struct stat *was = &s->st;
    bool               same =
        now.st_size == was->st_size && now.st_ino == was->st_ino &&
        now.st_mtim.tv_sec == was->st_mtim.tv_sec && now.st_mtim.tv_nsec == was->st_mtim.tv_nsec &&
        now.st_ctim.tv_sec == was->st_ctim.tv_sec && now.st_ctim.tv_nsec == was->st_ctim.tv_nsec;
    if (!same)
        return pdk_fail(err, PDCKPT_ERR_IO, s->name, -1,
                        "expected the file unchanged while it was read, found it modified");
    return PDCKPT_OK;
}
