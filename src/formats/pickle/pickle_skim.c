/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_skim.c — a pickle file's skeleton, read without its large payloads (pickle_skim.h).
 * The opcode walk (pickle_opwalk.c) fills the image as it goes and reports each large payload,
 * kept here as a hole; nothing is interpreted, so the pickle reader alone decides what the file
 * means when it parses the image.  What the walk cannot follow is a FORMAT error here.
 */
#include "pickle_skim.h"

#include "pickle_opwalk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The walk's reads: small after each payload jumped over, doubling to WINDOW_MAX. */
#define WINDOW_MIN ((uint64_t)16 << 10)
#define WINDOW_MAX ((uint64_t)4 << 20)

typedef struct skimmer {
    pdk_skim     *s;
    pdckpt_status status; /* of a failed add_hole */
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

/* The walk's payload callback: a payload left unread. */
static bool add_hole(void *ctx, uint64_t op_at, uint64_t at, uint64_t len) {
    skimmer  *k = ctx;
    pdk_skim *s = k->s;
    (void)op_at;
    if (s->n_holes == s->cap_holes) {
        size_t         cap = s->cap_holes ? 2 * s->cap_holes : 64;
        pdk_skim_hole *h = realloc(s->holes, cap * sizeof *h);
        if (!h) {
            k->status = pdk_fail_nomem(k->err, "the skimmed payloads");
            return false;
        }
        s->holes = h;
        s->cap_holes = cap;
    }
    s->holes[s->n_holes++] = (pdk_skim_hole){at, len};
    s->skipped += len;
    return true;
}

/* Why the walk could not follow the file, as an error naming it and the opcode's offset. */
static pdckpt_status walk_error(const skimmer *k, const pk_win *w, const pk_walk *r) {
    const pdk_skim *s = k->s;
    uint64_t        off = w->start + w->len;
    switch (r->status) {
    case PK_WALK_OPCODE:
        return pdk_fail(k->err, PDCKPT_ERR_FORMAT, s->name, (int64_t)r->at,
                        "expected a pickle opcode, found byte 0x%02x", r->op);
    case PK_WALK_END:
        if (r->count)
            return pdk_fail(k->err, PDCKPT_ERR_FORMAT, s->name, (int64_t)r->at,
                            "expected the %llu bytes of %s within the file, found its end at %llu",
                            (unsigned long long)r->count, r->what, (unsigned long long)s->len);
        return pdk_fail(k->err, PDCKPT_ERR_FORMAT, s->name, (int64_t)r->at,
                        "expected %s within the file, found its end at %llu bytes", r->what,
                        (unsigned long long)s->len);
    case PK_WALK_CALLBACK: return k->status;
    default: break;
    }
    if (w->err)
        return pdk_fail_sys(k->err, w->err, s->name, "pread at offset %llu",
                            (unsigned long long)off);
    return pdk_fail(k->err, PDCKPT_ERR_IO, s->name, (int64_t)off,
                    "expected %llu bytes, the file ends first at offset %llu (truncated since it "
                    "was opened)",
                    (unsigned long long)s->len, (unsigned long long)off);
}

static pdckpt_status skim_ops(skimmer *k, uint64_t min_payload) {
    pk_win w;
    pk_win_image(&w, k->s->fd, k->s->len, k->s->image, WINDOW_MIN, WINDOW_MAX);
    pk_walk r = pk_opwalk(&w, 0, min_payload, UINT64_MAX, add_hole, k);
    if (r.status != PK_WALK_STOP) return walk_error(k, &w, &r);
    /* what follows STOP (nothing, in any pickle Paddle or pdckpt writes) is read as it is, so
     * the reader sees the file's own bytes there */
    if (!pk_win_at(&w, r.at + 1, k->s->len - (r.at + 1))) {
        r.status = PK_WALK_IO;
        return walk_error(k, &w, &r);
    }
    return PDCKPT_OK;
}

pdckpt_status pdk_skim_init(int fd, const struct stat *st, const char *name, pdk_skim *out,
                            pdckpt_error *err) {
    memset(out, 0, sizeof *out);
    out->fd = fd;
    out->st = *st;
    out->name = name;
    if (st->st_size <= 0)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, name, 0, "expected data, found an empty file");
    out->len = (size_t)st->st_size;
    void *m = mmap(NULL, out->len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return pdk_fail_sys(err, errno, name, "mmap of %zu bytes", out->len);
    out->image = m;
    return PDCKPT_OK;
}

pdckpt_status pdk_skim_open(int fd, const struct stat *st, const char *name, uint64_t min_payload,
                            pdk_skim *out, pdckpt_error *err) {
    PDK_TRY(pdk_skim_init(fd, st, name, out, err));
    skimmer k = {out, PDCKPT_OK, err};
    return skim_ops(&k, min_payload);
}

pdckpt_status pdk_skim_open_prefix(int fd, const struct stat *st, const char *name, uint64_t prefix,
                                   pdk_skim *out, pdckpt_error *err) {
    PDK_TRY(pdk_skim_init(fd, st, name, out, err));
    if (prefix > out->len)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, name, (int64_t)out->len,
                        "expected a header of %llu bytes, the file ends first at %zu",
                        (unsigned long long)prefix, out->len);
    PDK_TRY(pdk_skim_read(out, out->image, 0, (size_t)prefix, err));
    return prefix < out->len ? pdk_skim_add_hole(out, prefix, out->len - prefix, err) : PDCKPT_OK;
}

pdckpt_status pdk_skim_add_hole(pdk_skim *s, uint64_t at, uint64_t len, pdckpt_error *err) {
    skimmer k = {s, PDCKPT_OK, err};
    return add_hole(&k, at, at, len) ? PDCKPT_OK : k.status;
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
