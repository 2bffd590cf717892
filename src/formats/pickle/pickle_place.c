/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_place.c — where a pickle's large byte payloads are, found before the file is read, so the
 * read puts each payload at an aligned place (input.c, pdk_input_open_placed) and no tensor is
 * moved afterwards (relayout.c's memmove over the whole file cost a warm load a third of its
 * time).  The scan walks the opcodes with the opcode table through a small window of preads,
 * jumping over large payloads, and gives up on a file whose opcodes are a large share of it (small
 * tensors: the scan would read it twice; those are aligned by relayout.c).  The filler inserted
 * before a payload's opcode is FRAME opcodes of length 0: the reader checks a FRAME's length only
 * against what is left, the array fast path skips FRAMEs, so the stream means what the file means.
 * A scan that is wrong about a hostile file costs nothing but alignment: filler goes only between
 * opcodes the reader walks the same way, and the reader still checks everything.
 */
#include "pickle.h"
#include "pickle_opcodes.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#define WIN_BYTES ((size_t)64 << 10)
/* Smaller payloads are left where they are (relayout.c aligns them: little to move). */
#define PLACE_MIN ((uint64_t)16 << 10)
/* The scan gives up when the opcode bytes (all but the payloads placed) pass 1/SCAN_SHARE of
 * the file. */
#define SCAN_SHARE 16
#define FRAME_LEN  9u  /* FRAME and its 8-byte length */
#define FRAME_INV  57u /* 9 * 57 = 1 (mod 64): FRAME_LEN's inverse modulo PDK_DATA_ALIGN */

typedef struct win {
    int      fd;
    uint64_t size, start; /* the file's size; the file offset of buf[0] */
    size_t   len;         /* bytes valid in buf */
    uint8_t  buf[WIN_BYTES];
} win;

/* Bytes [pos, pos + k) of the file (k <= WIN_BYTES), NULL past its end or on a read error. */
static const uint8_t *win_at(win *w, uint64_t pos, size_t k) {
    if (pos > w->size || k > w->size - pos) return NULL;
    if (pos >= w->start && pos + k <= w->start + w->len) return w->buf + (pos - w->start);
    size_t want = w->size - pos < WIN_BYTES ? (size_t)(w->size - pos) : WIN_BYTES, got = 0;
    while (got < want) {
        ssize_t n = pread(w->fd, w->buf + got, want - got, (off_t)(pos + got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    w->start = pos;
    w->len = got;
    return k <= got ? w->buf : NULL;
}

/* Moves *pos past the next '\n' within one window. */
static bool skip_line(win *w, uint64_t *pos) {
    for (int tries = 0; tries < 2; tries++) {
        const uint8_t *p = win_at(w, *pos, 1);
        if (!p) return false;
        const uint8_t *nl = memchr(p, '\n', (size_t)(w->start + w->len - *pos));
        if (nl) {
            *pos += (uint64_t)(nl - p) + 1;
            return true;
        }
        if (*pos == w->start) return false; /* a whole window without a line end */
        w->len = 0;                         /* read again from *pos */
    }
    return false;
}

typedef struct place_list {
    const pdckpt_allocator *a;
    pdk_place              *items;
    size_t                  n, cap;
} place_list;

static bool push(place_list *l, uint64_t at, uint64_t payload) {
    if (l->n == l->cap) {
        size_t     cap = l->cap ? l->cap * 2 : 64;
        pdk_place *grown = pdk_alloc(l->a, cap * sizeof *grown);
        if (!grown) return false;
        if (l->n) memcpy(grown, l->items, l->n * sizeof *grown);
        pdk_free(l->a, l->items, l->cap * sizeof *l->items);
        l->items = grown;
        l->cap = cap;
    }
    l->items[l->n++] = (pdk_place){at, payload};
    return true;
}

static bool is_payload(uint8_t op) {
    return op == PK_OP_BINBYTES || op == PK_OP_BINBYTES8 || op == PK_OP_BYTEARRAY8;
}

/* Moves *pos past the argument of the opcode at `at` (its byte already passed); a large payload
 * is recorded, not counted in *walked.  False when the stream cannot be followed. */
static bool skip_arg(win *w, place_list *l, uint8_t op, uint64_t at, uint64_t *pos,
                     uint64_t *walked) {
    const pk_opinfo *info = &pk_opcodes[op];
    const uint8_t   *b;
    uint64_t         n = info->size;
    switch (info->arg) {
    case PK_ARG_NONE: return true;
    case PK_ARG_LINES2: return skip_line(w, pos) && skip_line(w, pos);
    case PK_ARG_LINE: return skip_line(w, pos);
    case PK_ARG_COUNTED:
        if (!(b = win_at(w, *pos, info->size))) return false;
        n = 0;
        for (size_t i = 0; i < info->size; i++) n |= (uint64_t)b[i] << (8 * i);
        *pos += info->size;
        if (n > w->size - *pos) return false;
        if (is_payload(op) && n >= PLACE_MIN) {
            *walked -= n;
            if (!push(l, at, *pos)) return false;
        }
        break;
    default: break; /* FIXED: `size` bytes */
    }
    if (n > w->size - *pos) return false;
    *pos += n;
    return true;
}

/* The places of a protocol 2-5 pickle that runs to a STOP; 0 for anything else. */
static size_t walk_opcodes(win *w, place_list *l) {
    const uint8_t *h = win_at(w, 0, 2);
    if (!h || h[0] != PK_OP_PROTO || h[1] < 2 || h[1] > 5) return 0;
    uint64_t pos = 2, walked = 0, budget = w->size / SCAN_SHARE + WIN_BYTES;
    for (;;) {
        uint64_t       at = pos;
        const uint8_t *b = win_at(w, pos, 1);
        if (!b || !pk_opcodes[*b].name) return 0;
        uint8_t op = *b;
        pos++;
        if (op == PK_OP_STOP) return l->n;
        if (!skip_arg(w, l, op, at, &pos, &walked)) return 0;
        walked += pos - at;
        if (walked > budget) return 0;
    }
}

static size_t pickle_scan(int fd, uint64_t size, const pdckpt_allocator *a, pdk_place **out) {
    *out = NULL;
    place_list l = {a, NULL, 0, 0};
    win       *w = pdk_alloc(a, sizeof *w);
    if (!w) return 0;
    w->fd = fd;
    w->size = size;
    w->start = 0;
    w->len = 0;
    size_t n = walk_opcodes(w, &l);
    pdk_free(a, w, sizeof *w);
    if (!n) {
        pdk_free(a, l.items, l.cap * sizeof *l.items);
        return 0;
    }
    if (l.cap != n) { /* the caller frees n items */
        pdk_place *exact = pdk_alloc(a, n * sizeof *exact);
        if (exact) memcpy(exact, l.items, n * sizeof *exact);
        pdk_free(a, l.items, l.cap * sizeof *l.items);
        if (!exact) return 0;
        l.items = exact;
    }
    *out = l.items;
    return n;
}

/* k FRAMEs of length 0, k the least with k * 9 = need (mod 64). */
static size_t pickle_fill(uint8_t *dst, size_t need) {
    size_t k = (need * FRAME_INV) % PDK_DATA_ALIGN;
    if (dst)
        for (size_t i = 0; i < k; i++) {
            memset(dst + i * FRAME_LEN, 0, FRAME_LEN);
            dst[i * FRAME_LEN] = PK_OP_FRAME;
        }
    return k * FRAME_LEN;
}

const pdk_placer pdk_pickle_placer = {pickle_scan, pickle_fill, (PDK_DATA_ALIGN - 1) * FRAME_LEN};
