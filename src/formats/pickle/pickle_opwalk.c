/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_opwalk.c — the opcode walk shared by the placed read and the skim (pickle_opwalk.h).
 * A window keeps the bytes it holds past the position asked for, so a read never fetches a
 * byte twice; its reads start small after a payload jumped over (a tensor's header is a few
 * hundred bytes) and double while none is, so a file of many small values is read in few reads.
 */
#include "pickle_opwalk.h"

#include "pickle_opcodes.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

void pk_win_buffer(pk_win *w, int fd, uint64_t size, uint8_t *buf, size_t cap) {
    *w = (pk_win){.fd = fd, .size = size, .buf = buf, .cap = cap};
    w->min = w->next = w->max = cap;
}

void pk_win_image(pk_win *w, int fd, uint64_t size, uint8_t *image, uint64_t min, uint64_t max) {
    *w = (pk_win){.fd = fd, .size = size, .image = image, .min = min, .next = min, .max = max};
}

static uint8_t *held(const pk_win *w, uint64_t pos) {
    return w->image ? w->image + pos : w->buf + (pos - w->start);
}

static inline bool holds(const pk_win *w, uint64_t pos, uint64_t k) {
    return pos >= w->start && k <= w->len && pos - w->start <= w->len - k;
}

/* Holds [pos, pos + k) and what the next read adds: the bytes held from pos stay. */
static bool fill(pk_win *w, uint64_t pos, uint64_t k) {
    uint64_t end = w->start + w->len;
    uint64_t keep = pos >= w->start && pos < end ? end - pos : 0;
    if (!w->image && keep) memmove(w->buf, w->buf + (pos - w->start), (size_t)keep);
    w->start = pos;
    w->len = (size_t)keep;
    uint64_t want = k > w->next ? k : w->next;
    if (want > w->size - pos) want = w->size - pos;
    uint8_t *dst = held(w, pos);
    while (w->len < want) {
        ssize_t n = pread(w->fd, dst + w->len, (size_t)(want - w->len), (off_t)(pos + w->len));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            w->err = n < 0 ? errno : 0;
            break;
        }
        w->len += (size_t)n;
    }
    if (w->next < w->max) w->next *= 2;
    return k <= w->len;
}

const uint8_t *pk_win_at(pk_win *w, uint64_t pos, uint64_t k) {
    if (holds(w, pos, k)) return held(w, pos);
    if (pos > w->size || k > w->size - pos || (!w->image && k > w->cap)) return NULL;
    return fill(w, pos, k) ? held(w, pos) : NULL;
}

typedef struct walker {
    pk_win       *w;
    pk_walk       r;
    uint64_t      min_payload, budget;
    pk_payload_fn fn;
    void         *ctx;
} walker;

static bool fail(walker *k, pk_walk_status status, const char *what) {
    k->r.status = status;
    k->r.what = what;
    return false;
}

/* Bytes [pos, pos + n) held, else the walk's failure expecting `what`. */
static const uint8_t *need(walker *k, uint64_t pos, uint64_t n, const char *what) {
    if (holds(k->w, pos, n)) return held(k->w, pos); /* the common case, inline */
    const uint8_t *p = pk_win_at(k->w, pos, n);
    if (p) return p;
    pk_win *w = k->w;
    if (pos > w->size || n > w->size - pos)
        fail(k, PK_WALK_END, what);
    else
        fail(k, !w->image && n > w->cap ? PK_WALK_LONG : PK_WALK_IO, what);
    return NULL;
}

/* Moves *pos past the next '\n'. */
static bool skip_line(walker *k, uint64_t *pos) {
    for (uint64_t n = 1;;) {
        const uint8_t *p = need(k, *pos, n, "a line ending");
        if (!p) return false;
        size_t         held_n = (size_t)(k->w->start + k->w->len - *pos);
        const uint8_t *nl = memchr(p, '\n', held_n);
        if (nl) {
            *pos += (uint64_t)(nl - p) + 1;
            return true;
        }
        n = held_n + 1;
    }
}

/* Moves *pos over n argument bytes, which an image must hold. */
static bool pass(walker *k, uint64_t *pos, uint64_t n, const char *what) {
    if (n > k->w->size - *pos) return fail(k, PK_WALK_END, what);
    if (k->w->image && !need(k, *pos, n, what)) return false;
    *pos += n;
    return true;
}

static bool is_payload(uint8_t op) {
    return op == PK_OP_BINBYTES || op == PK_OP_BINBYTES8 || op == PK_OP_BYTEARRAY8;
}

/* A little-endian length, then that many bytes: a large payload is reported and jumped over. */
static bool skip_counted(walker *k, uint64_t *pos) {
    const pk_opinfo *info = &pk_opcodes[k->r.op];
    const uint8_t   *b = need(k, *pos, info->size, info->name);
    if (!b) return false;
    uint64_t n = 0;
    for (size_t i = info->size; i-- > 0;) n = n << 8 | b[i];
    *pos += info->size;
    if (n > k->w->size - *pos) {
        k->r.count = n;
        return fail(k, PK_WALK_END, info->name);
    }
    if (!is_payload(k->r.op) || n < k->min_payload) return pass(k, pos, n, info->name);
    if (!k->fn(k->ctx, k->r.at, *pos, n)) return fail(k, PK_WALK_CALLBACK, info->name);
    k->r.walked -= n; /* added back with the opcode's span */
    *pos += n;
    k->w->next = k->w->min;
    return true;
}

static bool skip_arg(walker *k, uint64_t *pos) {
    const pk_opinfo *info = &pk_opcodes[k->r.op];
    switch (info->arg) {
    case PK_ARG_NONE: return true;
    case PK_ARG_FIXED: return pass(k, pos, info->size, info->name); /* FRAME: its opcodes follow */
    case PK_ARG_COUNTED: return skip_counted(k, pos);
    case PK_ARG_LINE: return skip_line(k, pos);
    default: return skip_line(k, pos) && skip_line(k, pos);
    }
}

pk_walk pk_opwalk(pk_win *w, uint64_t pos, uint64_t min_payload, uint64_t budget, pk_payload_fn fn,
                  void *ctx) {
    walker k = {w, {0}, min_payload, budget, fn, ctx};
    for (;;) {
        k.r.at = pos;
        const uint8_t *b = need(&k, pos, 1, "an opcode");
        if (!b) return k.r;
        k.r.op = *b;
        if (!pk_opcodes[*b].name) return fail(&k, PK_WALK_OPCODE, "a pickle opcode"), k.r;
        pos++;
        if (k.r.op == PK_OP_STOP) return k.r; /* PK_WALK_STOP */
        if (!skip_arg(&k, &pos)) return k.r;
        k.r.walked += pos - k.r.at;
        if (k.r.walked > budget) return fail(&k, PK_WALK_BUDGET, NULL), k.r;
    }
}
