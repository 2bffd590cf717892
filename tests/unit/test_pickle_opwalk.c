/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_pickle_opwalk.c — the one walk over a pickle file's opcodes (pickle_opwalk.c), in both
 * its windows: a 64 KiB buffer (the placed read's scan) and a whole-file image (the skim).
 * Checked here: the large payloads reported exactly (opcode offset, payload offset, length),
 * small ones walked over; a line and a payload's length straddling a buffer's end; the image
 * holding every byte but the payloads; and each way a walk stops — a line longer than the
 * buffer, a payload past the end, a byte that is no opcode, the budget, the callback — at the
 * offset of the opcode it could not follow.
 */
#include "byte_buf.h"
#include "check.h"
#include "formats/pickle/pickle_opcodes.h"
#include "formats/pickle/pickle_opwalk.h"
#include "test_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUF ((size_t)64 << 10)
#define MIN ((uint64_t)16 << 10)

static char *dir;

/* An opcode with a little-endian length of `width` bytes, then n bytes of `fill`. */
static size_t counted(tu_buf *s, uint8_t code, unsigned width, uint64_t n, uint8_t fill) {
    size_t at = s->len;
    tu_buf_u8(s, code);
    tu_buf_le(s, n, width);
    tu_buf_fill(s, fill, (size_t)n);
    return at;
}

typedef struct seen {
    uint64_t op_at[8], at[8], len[8];
    size_t   n;
    size_t   stop_after; /* the callback returns false on this call (0: never) */
} seen;

static bool record(void *ctx, uint64_t op_at, uint64_t at, uint64_t len) {
    seen *s = ctx;
    if (s->n < 8) s->op_at[s->n] = op_at, s->at[s->n] = at, s->len[s->n] = len;
    s->n++;
    return s->n != s->stop_after;
}

/* Walks `s` written to a file, in a buffer window (image NULL) or filling `image`. */
static pk_walk walk(const tu_buf *s, uint8_t *image, uint64_t budget, seen *got) {
    char path[600];
    snprintf(path, sizeof path, "%s/p.pkl", dir);
    CHECK(tu_write_file(path, s->data, s->len) == 0);
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    uint8_t *buf = malloc(BUF);
    pk_win   w;
    if (image)
        pk_win_image(&w, fd, s->len, image, MIN, (uint64_t)4 << 20);
    else
        pk_win_buffer(&w, fd, s->len, buf, BUF);
    pk_walk r = pk_opwalk(&w, 0, MIN, budget, record, got);
    free(buf);
    close(fd);
    return r;
}

/* PROTO 4, a GLOBAL whose lines straddle the buffer's end, payloads large and small, STOP. */
static size_t build(tu_buf *s, size_t *large) {
    tu_buf_u8(s, PK_OP_PROTO), tu_buf_u8(s, 4);
    tu_buf_u8(s, PK_OP_FRAME);
    for (int i = 0; i < 8; i++) tu_buf_u8(s, 0);
    while (s->len < BUF - 300) counted(s, PK_OP_SHORT_BINBYTES, 1, 200, 'a');
    tu_buf_u8(s, PK_OP_GLOBAL);
    for (int i = 0; i < 500; i++) tu_buf_u8(s, 'm');
    tu_buf_put(s, "\nname\n", 6);
    counted(s, PK_OP_BINBYTES, 4, MIN - 1, 'b'); /* below the threshold: walked */
    large[0] = counted(s, PK_OP_BINBYTES8, 8, 100000, 'c');
    counted(s, PK_OP_SHORT_BINUNICODE, 1, 5, 'd');
    large[1] = counted(s, PK_OP_BYTEARRAY8, 8, MIN, 'e');
    large[2] = counted(s, PK_OP_BINBYTES, 4, 3 * BUF, 'f');
    tu_buf_u8(s, PK_OP_STOP);
    return s->len - 1;
}

static void test_walks_to_stop_in_both_windows(void) {
    tu_buf         s = {0};
    size_t         large[3], stop = build(&s, large);
    const uint64_t lens[3] = {100000, MIN, 3 * BUF}, widths[3] = {8, 8, 4};
    for (int mode = 0; mode < 2; mode++) {
        uint8_t *image = mode ? calloc(1, s.len) : NULL;
        seen     got = {.n = 0};
        pk_walk  r = walk(&s, image, UINT64_MAX, &got);
        CHECK_EQ_INT(r.status, PK_WALK_STOP);
        CHECK_EQ_INT(r.at, stop);
        CHECK_EQ_INT(got.n, 3);
        for (int i = 0; i < 3; i++) {
            CHECK_EQ_INT(got.op_at[i], large[i]);
            CHECK_EQ_INT(got.at[i], large[i] + 1 + widths[i]);
            CHECK_EQ_INT(got.len[i], lens[i]);
        }
        CHECK_EQ_INT(r.walked, stop - 100000 - MIN - 3 * BUF); /* up to STOP, payloads out */
        for (size_t i = 0; image && i < stop; i++) {
            bool hole = false;
            for (int j = 0; j < 3; j++) hole |= i >= got.at[j] && i < got.at[j] + got.len[j];
            if (!hole && image[i] != s.data[i]) {
                CHECK(!"the image holds the file's bytes outside the payloads");
                break;
            }
        }
        free(image);
    }
    tu_buf_free(&s);
}

/* The walk of `s` (filling an image or through a buffer) stops with `want` at `at`. */
static void check_stop(const tu_buf *s, bool image, uint64_t budget, size_t stop_after,
                       pk_walk_status want, uint64_t at) {
    uint8_t *img = image ? calloc(1, s->len) : NULL;
    seen     got = {.stop_after = stop_after};
    pk_walk  r = walk(s, img, budget, &got);
    CHECK_EQ_INT(r.status, want);
    CHECK_EQ_INT(r.at, at);
    free(img);
}

static void test_stops_at_the_opcode_it_cannot_follow(void) {
    tu_buf s = {0};
    size_t large[3];
    build(&s, large);
    check_stop(&s, false, 1000, 0, PK_WALK_BUDGET,
               2 + 9 + 4 * 202); /* the walk's bytes pass 1000 */
    check_stop(&s, true, UINT64_MAX, 2, PK_WALK_CALLBACK, large[1]);
    tu_buf t = {s.data, large[2] + 1000, 0}; /* the last payload cut short */
    check_stop(&t, true, UINT64_MAX, 0, PK_WALK_END, large[2]);
    s.data[large[1]] = 0xff;
    check_stop(&s, false, UINT64_MAX, 0, PK_WALK_OPCODE, large[1]);
    tu_buf l = {0}; /* a line longer than the buffer: only an image follows */
    tu_buf_u8(&l, PK_OP_PROTO), tu_buf_u8(&l, 2), tu_buf_u8(&l, PK_OP_INT);
    tu_buf_fill(&l, '7', BUF + 10);
    tu_buf_u8(&l, '\n'), tu_buf_u8(&l, PK_OP_STOP);
    check_stop(&l, false, UINT64_MAX, 0, PK_WALK_LONG, 2);
    check_stop(&l, true, UINT64_MAX, 0, PK_WALK_STOP, l.len - 1);
    l.len -= 2; /* no line end at all */
    check_stop(&l, true, UINT64_MAX, 0, PK_WALK_END, 2);
    tu_buf_free(&l);
    tu_buf_free(&s);
}

/* A payload's 8-byte length across the buffer's first 64 KiB: the bytes held are kept. */
static void test_a_length_straddling_the_buffer(void) {
    tu_buf s = {0};
    tu_buf_u8(&s, PK_OP_PROTO), tu_buf_u8(&s, 4);
    for (int i = 0; i < 254; i++) counted(&s, PK_OP_SHORT_BINBYTES, 1, 255, 'a');
    counted(&s, PK_OP_SHORT_BINBYTES, 1, 250, 'a');
    size_t at = counted(&s, PK_OP_BINBYTES8, 8, 3 * MIN, 'z');
    CHECK_EQ_INT(at, BUF - 4);
    tu_buf_u8(&s, PK_OP_STOP);
    seen    got = {.n = 0};
    pk_walk r = walk(&s, NULL, UINT64_MAX, &got);
    CHECK_EQ_INT(r.status, PK_WALK_STOP);
    CHECK_EQ_INT(got.n, 1);
    CHECK_EQ_INT(got.at[0], at + 9);
    CHECK_EQ_INT(got.len[0], 3 * MIN);
    tu_buf_free(&s);
}

int main(void) {
    dir = tu_tempdir();
    RUN(test_walks_to_stop_in_both_windows);
    RUN(test_a_length_straddling_the_buffer);
    RUN(test_stops_at_the_opcode_it_cannot_follow);
    tu_rmtree(dir);
    free(dir);
    return CHECK_SUMMARY();
}
