/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_place.c — where a pickle's large byte payloads are, found before the file is read, so the
 * read puts each payload at an aligned place (input.c, pdk_input_open_placed) and no tensor is
 * moved afterwards (relayout.c's memmove over the whole file cost a warm load a third of its
 * time).  The scan is the opcode walk (pickle_opwalk.c) through a small buffer, jumping over
 * large payloads; it gives up on anything the walk cannot follow and on a file whose opcodes are
 * a large share of it (small tensors: the scan would read it twice; relayout.c aligns those).  The
 * filler inserted before a payload's opcode is FRAME opcodes of length 0: the reader checks a
 * FRAME's length only against what is left, the array fast path skips FRAMEs, so the stream means
 * what the file means. A scan that is wrong about a hostile file costs nothing but alignment:
 * filler goes only between opcodes the reader walks the same way, and the reader still checks
 * everything.
 */
#include "pickle.h"
#include "pickle_opcodes.h"
#include "pickle_opwalk.h"

#include <string.h>

#define WIN_BYTES ((size_t)64 << 10)
/* Smaller payloads are left where they are (relayout.c aligns them: little to move). */
#define PLACE_MIN ((uint64_t)16 << 10)
/* The scan gives up when the opcode bytes (all but the payloads placed) pass 1/SCAN_SHARE of
 * the file. */
#define SCAN_SHARE 16
#define FRAME_LEN  9u  /* FRAME and its 8-byte length */
#define FRAME_INV  57u /* 9 * 57 = 1 (mod 64): FRAME_LEN's inverse modulo PDK_DATA_ALIGN */

typedef struct place_list {
    const pdckpt_allocator *a;
    pdk_place              *items;
    size_t                  n, cap;
} place_list;

/* The walk's payload callback. */
static bool push(void *ctx, uint64_t at, uint64_t payload, uint64_t len) {
    place_list *l = ctx;
    (void)len;
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

/* The places of a protocol 2-5 pickle that runs to a STOP; 0 for anything else. */
static size_t walk_places(pk_win *w, place_list *l) {
    const uint8_t *h = pk_win_at(w, 0, 2);
    if (!h || h[0] != PK_OP_PROTO || h[1] < 2 || h[1] > 5) return 0;
    uint64_t budget = w->size / SCAN_SHARE + WIN_BYTES;
    pk_walk  r = pk_opwalk(w, 2, PLACE_MIN, budget, push, l);
    return r.status == PK_WALK_STOP ? l->n : 0;
}

static size_t pickle_scan(int fd, uint64_t size, const pdckpt_allocator *a, pdk_place **out) {
    *out = NULL;
    place_list l = {a, NULL, 0, 0};
    uint8_t   *buf = pdk_alloc(a, WIN_BYTES);
    if (!buf) return 0;
    pk_win w;
    pk_win_buffer(&w, fd, size, buf, WIN_BYTES);
    size_t n = walk_places(&w, &l);
    pdk_free(a, buf, WIN_BYTES);
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
