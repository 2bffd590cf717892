/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_read.c — the copy path's reads of a resharded load (zero_copy off): an overlap of a
 * stored piece and a requested box is read from the data file with pread, only the byte ranges
 * it needs, the piece's offset in the file known from a skim of its pickle (pickle_skim.c).  A
 * read never maps the file, so one truncated or rewritten meanwhile gives an error, not SIGBUS.
 */
#include "../pickle/pickle_skim.h"
#include "pdk_distcp.h"

#include <string.h>

/* Runs closer than this are read together, the gaps with them: reading a gap from the page
 * cache costs about 0.13 ns a byte, a read of its own 0.35-0.45 us beyond its bytes, so gaps of
 * a few KiB cost more than a read of their own (measured: a column band of 2 KiB runs 6 KiB
 * apart loads in 0.017 s CPU read run by run, 0.030 s read as the covering rows; 2048 x 2048
 * float32, 8 tensors; per KiB of 2 KiB runs 6 KiB apart, 350 ns a pread each, 490-560 through
 * the window).  One preadv per stretch, gaps into a junk buffer, is no better for runs up to
 * 1 KiB and better for 2-16 KiB runs with gaps under 2 KiB, which a reshard seldom has
 * (bench/NOTES.md, fourth pass). */
#define READ_GAP ((uint64_t)2 << 10)
/* Runs this long go straight into the box, without the scratch window. */
#define READ_DIRECT ((uint64_t)256 << 10)
#define RUN_BATCH   1024

typedef struct run {
    uint64_t src, dst; /* byte offsets in the piece and in the box */
} run;

/* The overlap as runs of `len` contiguous bytes in both piece and box: dims [r, n) are merged
 * into a run, the odometer walks dims [0, r). */
typedef struct runs {
    int32_t  r;
    uint64_t len, left;
    uint64_t src_stride[PDCKPT_MAX_DIMS], dst_stride[PDCKPT_MAX_DIMS];
    uint64_t src0, dst0;
    int64_t  idx[PDCKPT_MAX_DIMS];
} runs;

static bool full(const pdk_overlap_read *o, int32_t d) {
    return o->shape[d] == o->src_shape[d] && o->shape[d] == o->dst_shape[d];
}

static void runs_init(const pdk_overlap_read *o, runs *w) {
    memset(w, 0, sizeof *w);
    int32_t n = o->n_dims;
    w->len = o->elem;
    w->left = pdk_box_volume(n, o->shape) > 0 ? 1 : 0;
    if (n == 0) return;
    w->src_stride[n - 1] = w->dst_stride[n - 1] = o->elem;
    for (int32_t d = n - 2; d >= 0; d--) {
        w->src_stride[d] = w->src_stride[d + 1] * (uint64_t)o->src_shape[d + 1];
        w->dst_stride[d] = w->dst_stride[d + 1] * (uint64_t)o->dst_shape[d + 1];
    }
    for (int32_t d = 0; d < n; d++) {
        w->src0 += (uint64_t)o->src_off[d] * w->src_stride[d];
        w->dst0 += (uint64_t)o->dst_off[d] * w->dst_stride[d];
    }
    w->r = n - 1;
    while (w->r > 0 && full(o, w->r)) w->r--;
    for (int32_t d = w->r; d < n; d++) w->len *= (uint64_t)o->shape[d];
    for (int32_t d = 0; d < w->r; d++) w->left *= (uint64_t)o->shape[d];
}

/* Up to `cap` next runs into out; returns how many. */
static size_t runs_next(const pdk_overlap_read *o, runs *w, run *out, size_t cap) {
    size_t n = 0;
    for (; n < cap && w->left; n++, w->left--) {
        uint64_t s = w->src0, t = w->dst0;
        for (int32_t d = 0; d < w->r; d++) {
            s += (uint64_t)w->idx[d] * w->src_stride[d];
            t += (uint64_t)w->idx[d] * w->dst_stride[d];
        }
        out[n] = (run){s, t};
        for (int32_t d = w->r - 1; d >= 0 && ++w->idx[d] == o->shape[d]; d--) w->idx[d] = 0;
    }
    return n;
}

/* The runs from `*i` that one read covers: close together and within the scratch window. */
static size_t window_end(const run *rs, size_t n, size_t i, uint64_t len) {
    size_t   j = i + 1;
    uint64_t end = rs[i].src + len;
    while (j < n && rs[j].src - end <= READ_GAP &&
           rs[j].src + len - rs[i].src <= PDK_DIST_READ_CHUNK)
        end = rs[j++].src + len;
    return j;
}

static pdckpt_status read_batch(const pdk_skim *s, const pdk_overlap_read *o, uint64_t len,
                                const run *rs, size_t n, uint8_t *scratch, pdckpt_error *err) {
    for (size_t i = 0; i < n;) {
        size_t j = len >= READ_DIRECT ? i + 1 : window_end(rs, n, i, len);
        if (j == i + 1) { /* a run alone: straight into the box */
            PDK_TRY(pdk_skim_read(s, o->dst + rs[i].dst, o->at + rs[i].src, (size_t)len, err));
            i++;
            continue;
        }
        uint64_t from = rs[i].src, span = rs[j - 1].src + len - from;
        PDK_TRY(pdk_skim_read(s, scratch, o->at + from, (size_t)span, err));
        for (; i < j; i++) memcpy(o->dst + rs[i].dst, scratch + (rs[i].src - from), (size_t)len);
    }
    return PDCKPT_OK;
}

pdckpt_status pdk_dist_read_overlap(const pdk_skim *s, const pdk_overlap_read *o, uint8_t *scratch,
                                    pdckpt_error *err) {
    runs w;
    run  rs[RUN_BATCH];
    runs_init(o, &w);
    for (size_t n; (n = runs_next(o, &w, rs, RUN_BATCH)) > 0;)
        PDK_TRY(read_batch(s, o, w.len, rs, n, scratch, err));
    return PDCKPT_OK;
}
