/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_dist_read.c — the read plan of a resharded copy-path load (dist_read.c) against a file of
 * known bytes: every overlap lands bit for bit where it belongs in a box filled with a sentinel,
 * and nothing outside it is written.  The plan's edges: gaps around the read-through limit
 * (0, 1, 2047, 2048, 2049 bytes, 6 KiB), more runs than one batch or one call holds, runs longer
 * than a read-through span, a 3-D overlap, a piece ending exactly at the end of the file, an
 * empty overlap, and a file truncated after its skim (inside a gap that would be read through,
 * inside a run): an IO error naming the file and the offset where it ends.
 */
#include "check.h"
#include "formats/distcp/pdk_distcp.h"
#include "formats/pickle/pickle_skim.h"
#include "test_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SENTINEL 0xa5
#define HEAD     166 /* the piece starts off page alignment, as in a .distcp pickle */

static char *dir;

/* The file's byte at `at`: no two nearby offsets alike, so a misplaced run shows. */
static uint8_t file_byte(uint64_t at) {
    return (uint8_t)((at * 2654435761u) >> 13);
}

/* A file of HEAD bytes and then `piece` bytes of file_byte, nothing after; its path in `path`. */
static void write_file(const char *name, uint64_t piece, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", dir, name);
    size_t   len = (size_t)(HEAD + piece);
    uint8_t *b = malloc(len);
    for (size_t i = 0; i < len; i++) b[i] = file_byte(i);
    CHECK(tu_write_file(path, b, len) == 0);
    free(b);
}

static void open_skim(const char *path, pdk_skim *s) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    int          fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat  st;
    CHECK(fd >= 0 && fstat(fd, &st) == 0);
    CHECK_OK(pdk_skim_init(fd, &st, path, s, &err), &err);
}

/* An overlap of a piece of `src` (elem-byte elements, at file offset HEAD) and a box of `dst`. */
typedef struct layout {
    int32_t n;
    size_t  elem;
    int64_t src[3], src_off[3], dst[3], dst_off[3], shape[3];
} layout;

static uint64_t volume(int32_t n, const int64_t *shape) {
    uint64_t v = 1;
    for (int32_t d = 0; d < n; d++) v *= (uint64_t)shape[d];
    return v;
}

/* The C-order element offsets in the piece (*s) and in the box (*t) of the overlap's element i. */
static void element_offsets(const layout *l, uint64_t i, uint64_t *s, uint64_t *t) {
    uint64_t ss = 1, ts = 1;
    *s = *t = 0;
    for (int32_t d = l->n - 1; d >= 0; d--) {
        uint64_t k = i % (uint64_t)l->shape[d];
        i /= (uint64_t)l->shape[d];
        *s += ((uint64_t)l->src_off[d] + k) * ss;
        *t += ((uint64_t)l->dst_off[d] + k) * ts;
        ss *= (uint64_t)l->src[d];
        ts *= (uint64_t)l->dst[d];
    }
}

/* The box the reads should give: the sentinel, and the overlap copied element by element. */
static uint8_t *expected_box(const layout *l) {
    size_t   n = (size_t)(volume(l->n, l->dst) * l->elem);
    uint8_t *want = malloc(n ? n : 1);
    memset(want, SENTINEL, n);
    for (uint64_t i = 0; i < volume(l->n, l->shape); i++) {
        uint64_t s, t;
        element_offsets(l, i, &s, &t);
        for (size_t b = 0; b < l->elem; b++)
            want[t * l->elem + b] = file_byte(HEAD + s * l->elem + b);
    }
    return want;
}

static pdckpt_status read_into(const pdk_skim *s, const layout *l, uint8_t *box,
                               pdckpt_error *err) {
    pdk_overlap_read o = {l->n,   l->elem,    HEAD,     l->src, l->src_off,
                          l->dst, l->dst_off, l->shape, box};
    uint8_t         *scratch = malloc(PDK_DIST_READ_CHUNK);
    memset(scratch, SENTINEL, PDK_DIST_READ_CHUNK);
    pdckpt_status st = pdk_dist_read_overlap(s, &o, scratch, err);
    free(scratch);
    return st;
}

/* Reads the overlap of `l` from a file holding exactly its piece; the box must be the expected
 * one byte for byte. */
static void expect_reads(const char *what, const layout *l) {
    char     path[4096];
    pdk_skim s;
    write_file("piece", volume(l->n, l->src) * l->elem, path, sizeof path);
    open_skim(path, &s);
    size_t   n = (size_t)(volume(l->n, l->dst) * l->elem);
    uint8_t *box = malloc(n ? n : 1), *want = expected_box(l);
    memset(box, SENTINEL, n);
    pdckpt_error err = PDCKPT_ERROR_INIT;
    CHECK_OK(read_into(&s, l, box, &err), &err);
    if (memcmp(box, want, n) != 0) {
        size_t at = 0;
        while (box[at] == want[at]) at++;
        fprintf(stderr, "%s: box byte %zu is %u, expected %u\n", what, at, box[at], want[at]);
        CHECK(!"the box equals the overlap cut element by element");
    }
    free(box);
    free(want);
    pdk_skim_free(&s);
}

/* A column band of a 2-D piece of `rows` rows of run + gap bytes: the band's runs of `run`
 * bytes start `at` (<= gap) into each row, so they are `gap` bytes apart. */
static layout column(uint64_t rows, uint64_t run, uint64_t gap, int64_t at) {
    int64_t cols = (int64_t)(run + gap);
    return (layout){2,
                    1,
                    {(int64_t)rows, cols},
                    {0, at},
                    {(int64_t)rows, (int64_t)run},
                    {0, 0},
                    {(int64_t)rows, (int64_t)run}};
}

static void test_gaps_around_the_read_through_limit(void) {
    static const uint64_t gaps[] = {1, 2047, 2048, 2049, 6144};
    for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++)
        for (uint64_t run = 1; run <= 4096; run *= 8) {
            char what[64];
            snprintf(what, sizeof what, "run %llu gap %llu", (unsigned long long)run,
                     (unsigned long long)gaps[g]);
            layout l = column(37, run, gaps[g], 0);
            expect_reads(what, &l);
            l = column(37, run, gaps[g], (int64_t)gaps[g]); /* last in its rows: ends the file */
            expect_reads(what, &l);
        }
}

static void test_whole_rows_and_boxes_offset_in_the_box(void) {
    layout rows = {2, 4, {64, 33}, {10, 0}, {40, 33}, {5, 0}, {20, 33}}; /* gap 0: one run */
    expect_reads("whole rows", &rows);
    layout block = {2, 4, {50, 40}, {7, 13}, {30, 30}, {3, 4}, {20, 17}};
    expect_reads("a block into the middle of a box", &block);
    layout one = {2, 8, {9, 9}, {8, 8}, {1, 1}, {0, 0}, {1, 1}}; /* the file's last element */
    expect_reads("the last element", &one);
}

static void test_more_runs_than_a_batch_or_a_call(void) {
    /* 1,500 runs: past a batch of runs and past 512 runs (1,023 iovecs) in one call */
    layout l = column(1500, 8, 24, 8);
    expect_reads("1,500 runs 24 B apart", &l);
    l = column(1025, 2048, 1024, 0);
    expect_reads("1,025 runs of 2 KiB 1 KiB apart", &l);
}

static void test_runs_longer_than_a_span(void) {
    layout l = column(5, 300 << 10, 1024, 0); /* 300 KiB runs 1 KiB apart */
    expect_reads("300 KiB runs", &l);
    l = column(3, 1 << 20, 2048, 0);
    expect_reads("1 MiB runs", &l);
}

static void test_three_dims_and_empty(void) {
    layout cube = {3, 2, {6, 20, 70}, {1, 3, 5}, {8, 17, 64}, {2, 0, 1}, {4, 15, 60}};
    expect_reads("a 3-D overlap", &cube);
    layout inner = {3, 4, {4, 4, 300}, {1, 1, 0}, {2, 2, 300}, {0, 0, 0}, {2, 2, 300}};
    expect_reads("whole last dim, strided middle", &inner);
    layout none = {2, 4, {4, 4}, {0, 0}, {4, 4}, {0, 0}, {0, 4}};
    expect_reads("an empty overlap", &none);
}

/* The file cut to `keep` bytes after its skim: the read fails with an IO error that names it
 * and the offset where the file now ends. */
static void expect_truncated(const char *what, const layout *l, uint64_t keep) {
    char     path[4096];
    pdk_skim s;
    write_file("cut", volume(l->n, l->src) * l->elem, path, sizeof path);
    open_skim(path, &s);
    CHECK(truncate(path, (off_t)keep) == 0);
    size_t   n = (size_t)(volume(l->n, l->dst) * l->elem);
    uint8_t *box = malloc(n);
    memset(box, SENTINEL, n);
    pdckpt_error err = PDCKPT_ERROR_INIT;
    CHECK_STATUS(read_into(&s, l, box, &err), PDCKPT_ERR_IO, &err);
    CHECK_STR(err.source, path);
    CHECK_EQ_INT(err.offset, (int64_t)keep);
    if (!strstr(err.message, "ends first")) fprintf(stderr, "%s: %s\n", what, err.message);
    CHECK(strstr(err.message, "ends first") != NULL);
    free(box);
    pdk_skim_free(&s);
}

static void test_file_truncated_after_the_skim(void) {
    layout near = column(64, 512, 1024, 0); /* read through: the cut falls in a gap */
    expect_truncated("inside a gap read through", &near, HEAD + 10 * 1536 + 700);
    layout far = column(64, 2048, 6144, 0); /* a pread a run: the cut falls in a run */
    expect_truncated("inside a run", &far, HEAD + 20 * 8192 + 1000);
    layout whole = column(8, 1 << 20, 0, 0);
    expect_truncated("inside one long run", &whole, HEAD + (3 << 20) + 5);
}

int main(void) {
    dir = tu_tempdir();
    RUN(test_gaps_around_the_read_through_limit);
    RUN(test_whole_rows_and_boxes_offset_in_the_box);
    RUN(test_more_runs_than_a_batch_or_a_call);
    RUN(test_runs_longer_than_a_span);
    RUN(test_three_dims_and_empty);
    RUN(test_file_truncated_after_the_skim);
    tu_rmtree(dir);
    free(dir);
    return CHECK_SUMMARY();
}
