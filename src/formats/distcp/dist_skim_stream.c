/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_skim_stream.c — the skim of a combined data file (.pdiparams: tensor streams one after
 * another, tensor_stream.c) for the copy path of a resharded load: each stream's headers (its
 * version, LoD and TensorDesc) are read into the skim's image and its data, when large, is
 * left unread as a hole (pickle_skim.h), so the combined reader parses the image as it would
 * the file and each overlap is then read with pread (dist_read.c).  The walk only finds where
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

/* The data bytes of the TensorDesc of `len` bytes at `at` (read), false when it is not one. */
static bool desc_bytes(const pdk_skim *s, uint64_t at, uint64_t len, uint64_t *bytes) {
    pdckpt_error       scratch = PDCKPT_ERROR_INIT;
    pdk_cursor         cur;
    pdk_pb_tensor_desc d;
    pdk_cur_init(&cur, s->image + at, (size_t)len, s->name, &scratch);
    if (pdk_pb_tensor_desc_parse(&cur, &d) != PDCKPT_OK || d.dtype == PDCKPT_DTYPE_INVALID)
        return false;
    uint64_t n = pdckpt_dtype_size(d.dtype);
    for (int32_t i = 0; i < d.n_dims; i++) {
        uint64_t dim = (uint64_t)d.dims[i];
        if (dim && n > s->len / dim) return false; /* more than the file holds */
        n *= dim;
    }
    *bytes = n;
    return true;
}

/* One stream at *p: its headers read, its data read or left unread; *p moves past it. */
static bool stream(pdk_skim *s, uint64_t *p, uint64_t min_payload, pdckpt_status *st,
                   pdckpt_error *err) {
    uint64_t at = *p, levels, n, bytes;
    if (!fill(s, at, 12, st, err) || pdk_load_u32le(s->image + at) != 0) return false;
    levels = pdk_load_u64le(s->image + at + 4);
    at += 12;
    for (uint64_t l = 0; l < levels; l++) { /* each level takes >= 8 bytes: bounded by the file */
        if (!fill(s, at, 8, st, err)) return false;
        n = pdk_load_u64le(s->image + at);
        if (!fill(s, at + 8, n, st, err)) return false;
        at += 8 + n;
    }
    if (!fill(s, at, 8, st, err) || pdk_load_u32le(s->image + at) != 0) return false;
    n = pdk_load_u32le(s->image + at + 4); /* the desc's size, an int32 */
    if (n > INT32_MAX || !fill(s, at + 8, n, st, err) || !desc_bytes(s, at + 8, n, &bytes))
        return false;
    at += 8 + n;
    if (at > s->len || bytes > s->len - at) return false;
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
