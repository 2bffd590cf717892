/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_skim_stream.c — the skim of a combined data file (.pdiparams: tensor streams one after
 * another, tensor_stream.c) for the copy path of a resharded load: each stream's headers (its
 * version, LoD and TensorDesc) are walked by the stream's own header walk (pdk_stream_walk),
 * which reads them into the skim's image as it meets them, and its data, when large, is left
 * unread as a hole (pickle_skim.h), so the combined reader parses the image as it would the
 * file and each overlap is then read with pread (dist_read.c).  The walk only finds where
 * data lies: a file it cannot follow is read whole, where the combined reader names what is
 * wrong, so a hostile file gets the same error either way.
 */
#include "../pickle/pickle_skim.h"
#include "pdk_distcp.h"

/* Reads [at, at + n) of the file into the image; false when it runs past the end. */
static bool fill(pdk_skim *s, uint64_t at, uint64_t n, pdckpt_status *st, pdckpt_error *err) {
    if (at > s->len || n > s->len - at) return false;
    *st = pdk_skim_read(s, s->image + at, at, (size_t)n, err);
    return *st == PDCKPT_OK;
}

typedef struct skim_walk {
    pdk_skim     *s;
    pdckpt_error *err; /* the load's: a read that fails is its error */
    pdckpt_status st;
} skim_walk;

/* The header walk's fetch: the headers are read from the file into the image as it meets them
 * (the cursor spans the image, so its bounds are the file's). */
static pdckpt_status fetch(pdk_stream_walk *w, size_t at, size_t n) {
    skim_walk *k = w->ctx;
    return k->st = pdk_skim_read(k->s, k->s->image + at, at, n, k->err);
}

/* One stream at *p: its headers read (tensor_stream.c's walk), its data read or left unread;
 * *p moves past it. */
static bool stream(pdk_skim *s, uint64_t *p, uint64_t min_payload, pdckpt_status *st,
                   pdckpt_error *err) {
    pdckpt_error    scratch = PDCKPT_ERROR_INIT; /* what the walk finds wrong: read whole */
    pdk_cursor      cur;
    skim_walk       k = {s, err, PDCKPT_OK};
    pdk_stream_walk w = {.cur = &cur, .ctx = &k, .fetch = fetch};
    pdk_cur_init(&cur, s->image, s->len, s->name, &scratch);
    cur.pos = (size_t)*p;
    if (pdk_stream_walk_outer(&w) != PDCKPT_OK) {
        *st = k.st;
        return false;
    }
    uint64_t at = cur.pos, bytes = w.n_bytes;
    if (bytes > s->len - at) return false;
    if (bytes >= min_payload) {
        if ((*st = pdk_skim_add_hole(s, at, bytes, err)) != PDCKPT_OK) return false;
    } else if (!fill(s, at, bytes, st, err)) {
        return false;
    }
    *p = at + bytes;
    return true;
}

pdckpt_status pdk_skim_streams(pdk_skim *s, uint64_t min_payload, bool *followed,
                               pdckpt_error *err) {
    pdckpt_status st = PDCKPT_OK;
    uint64_t      p = 0;
    *followed = false;
    while (p < s->len)
        if (!stream(s, &p, min_payload, &st, err)) return st;
    *followed = true;
    return PDCKPT_OK;
}
