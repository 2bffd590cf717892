/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_dist_skim.c — the copy path of a resharded load (zero_copy off) reads only the bytes each
 * box needs: a data file's pickle is skimmed without its large payloads (pickle_skim.c) and the
 * overlaps are read with pread (dist_read.c).  Checked here: boxes of every shape (row bands,
 * shifted bands, column bands, blocks, a narrow column, one element, whole tensors) equal the
 * same boxes cut from the saved tensors, on both paths; the skim leaves the payloads unread and
 * places them exactly, on pickles pdckpt wrote and on real Paddle's; and hostile files — a
 * payload length past the end, a truncated file, a lying length, a file truncated or rewritten
 * after the skim — fail with an error naming the file and the offset.
 */
#include "check.h"
#include "formats/distcp/pdk_distcp.h"
#include "formats/pickle/pickle_skim.h"
#include "test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RANKS 2

static char         *dir;
static const int64_t W_SHAPE[2] = {300, 257}, C_SHAPE[3] = {40, 33, 70}, S_SHAPE[2] = {5, 3};
static pdckpt_value *w, *c, *s;

/* Rank r's pieces: w in row bands, c split on its last dim, s whole on rank 0. */
static size_t make_rank(int r, pdckpt_value **pieces, int64_t (*offs)[3], pdckpt_shard *shards) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    int64_t      wp[2] = {RANKS, 1}, cp[3] = {1, 1, RANKS}, shape[3];
    pdckpt_shard_box(2, W_SHAPE, wp, r, offs[0], shape);
    CHECK_OK(pdckpt_shard_slice(w, offs[0], shape, &pieces[0], &err), &err);
    pdckpt_shard_box(3, C_SHAPE, cp, r, offs[1], shape);
    CHECK_OK(pdckpt_shard_slice(c, offs[1], shape, &pieces[1], &err), &err);
    shards[0] = (pdckpt_shard){"w", pieces[0], W_SHAPE, offs[0]};
    shards[1] = (pdckpt_shard){"c", pieces[1], C_SHAPE, offs[1]};
    shards[2] = (pdckpt_shard){"s", s, S_SHAPE, NULL};
    return r == 0 ? 3 : 2;
}

static void save(pdckpt_format format) {
    pdckpt_error         err = PDCKPT_ERROR_INIT;
    pdckpt_value        *pieces[RANKS][2];
    int64_t              offs[RANKS][2][3];
    pdckpt_shard         shards[RANKS][3];
    size_t               n[RANKS], len[RANKS];
    uint8_t             *desc[RANKS];
    pdckpt_sharded_plan *plan = NULL;
    for (int r = 0; r < RANKS; r++) {
        n[r] = make_rank(r, pieces[r], offs[r], shards[r]);
        CHECK_OK(pdckpt_sharded_describe(shards[r], n[r], &desc[r], &len[r], &err), &err);
    }
    CHECK_OK(pdckpt_sharded_plan_new(dir, -1, format, false, (const uint8_t *const *)desc, len,
                                     RANKS, &plan, &err),
             &err);
    for (int r = 0; r < RANKS; r++) {
        uint8_t *a;
        size_t   an;
        CHECK_OK(pdckpt_sharded_plan_assignment(plan, r, &a, &an, &err), &err);
        CHECK_OK(pdckpt_sharded_write(a, an, shards[r], n[r], dir, NULL, &err), &err);
        pdckpt_free(NULL, a, an);
        pdckpt_free(NULL, desc[r], len[r]);
        pdckpt_value_free(pieces[r][0]);
        pdckpt_value_free(pieces[r][1]);
    }
    CHECK_OK(pdckpt_sharded_plan_commit(plan, 0, &err), &err);
    pdckpt_sharded_plan_free(plan);
}

/* One box of `key` loaded both ways equals the box cut from the saved tensor. */
static void expect_box(const char *key, const pdckpt_value *whole, int32_t nd, const int64_t *off,
                       const int64_t *shape) {
    pdckpt_value *want = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_shard_slice(whole, off, shape, &want, &err), &err);
    for (int zero_copy = 0; zero_copy < 2; zero_copy++) {
        pdckpt_load_options  o = PDCKPT_LOAD_OPTIONS_INIT;
        pdckpt_shard_request q = {key, nd, off, shape};
        pdckpt_value        *got = NULL;
        o.zero_copy = zero_copy;
        CHECK_OK(pdckpt_sharded_load(dir, -1, &q, 1, &o, &got, &err), &err);
        if (!pdckpt_value_equal(pdckpt_dict_get(got, key), want))
            fprintf(stderr, "  %s box at %lld,%lld of %lld,%lld differs (zero_copy %d)\n", key,
                    (long long)off[0], (long long)off[1], (long long)shape[0], (long long)shape[1],
                    zero_copy);
        CHECK(pdckpt_value_equal(pdckpt_dict_get(got, key), want));
        pdckpt_value_free(got);
    }
    pdckpt_value_free(want);
}

static void test_boxes_equal_on_both_paths(void) {
    const int64_t w_boxes[][4] = {
        {0, 0, 150, 257},  {75, 0, 150, 257}, {0, 0, 300, 128}, {0, 128, 300, 129},
        {140, 60, 20, 90}, {0, 100, 300, 1},  {299, 256, 1, 1}, {0, 0, 300, 257},
        {149, 0, 2, 257},  {10, 3, 280, 250},
    };
    for (size_t i = 0; i < sizeof w_boxes / sizeof w_boxes[0]; i++)
        expect_box("w", w, 2, w_boxes[i], w_boxes[i] + 2);
    const int64_t c_boxes[][6] = {
        {0, 0, 0, 40, 33, 70}, {20, 0, 0, 20, 33, 70}, {0, 0, 20, 40, 33, 30},
        {5, 7, 34, 10, 20, 2}, {0, 16, 0, 40, 1, 70},  {39, 32, 69, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof c_boxes / sizeof c_boxes[0]; i++)
        expect_box("c", c, 3, c_boxes[i], c_boxes[i] + 3);
    const int64_t s_box[4] = {1, 1, 3, 2};
    expect_box("s", s, 2, s_box, s_box + 2);
    pdckpt_value       *all = NULL; /* every key whole, copy path */
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    pdckpt_load_options o = PDCKPT_LOAD_OPTIONS_INIT;
    o.zero_copy = false;
    CHECK_OK(pdckpt_sharded_load(dir, -1, NULL, 0, &o, &all, &err), &err);
    CHECK(pdckpt_value_equal(pdckpt_dict_get(all, "w"), w));
    CHECK(pdckpt_value_equal(pdckpt_dict_get(all, "c"), c));
    CHECK(pdckpt_value_equal(pdckpt_dict_get(all, "s"), s));
    pdckpt_value_free(all);
}

/* The path of the data file whose name starts with `rank_`. */
static void data_file(int rank, char *out, size_t cap) {
    DIR           *d = opendir(dir);
    struct dirent *e;
    char           prefix[16];
    snprintf(prefix, sizeof prefix, "%d_", rank);
    out[0] = '\0';
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && strstr(e->d_name, ".distcp") &&
            !strstr(e->d_name, ".pdkidx"))
            snprintf(out, cap, "%s/%s", dir, e->d_name);
    if (d) closedir(d);
    CHECK(out[0] != '\0');
}

/* Skims `path`, parses the image and checks every tensor's bytes, read from the file at the
 * offset the skim gives, against an ordinary load.  Returns the payload bytes left unread. */
static uint64_t skim_and_compare(const char *path, uint64_t min_payload) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdk_skim      sk;
    struct stat   st;
    int           fd = open(path, O_RDONLY | O_CLOEXEC);
    pdckpt_value *ref = NULL, *img = NULL;
    CHECK(fd >= 0 && fstat(fd, &st) == 0);
    CHECK_OK(pdk_skim_open(fd, &st, path, min_payload, &sk, &err), &err);
    pdckpt_load_options o = PDCKPT_LOAD_OPTIONS_INIT;
    CHECK_OK(pdckpt_load_file(path, &o, &ref, NULL, &err), &err);
    o.zero_copy = true;
    o.format = PDCKPT_FORMAT_PICKLE;
    CHECK_OK(pdckpt_load_memory(sk.image, sk.len, &o, &img, NULL, &err), &err);
    pdckpt_flat a = {0}, b = {0};
    CHECK_OK(pdckpt_value_flatten(ref, PDCKPT_FLATTEN_NESTED | PDCKPT_FLATTEN_SKIP_NON_TENSORS, &a,
                                  &err),
             &err);
    CHECK_OK(pdckpt_value_flatten(img, PDCKPT_FLATTEN_NESTED | PDCKPT_FLATTEN_SKIP_NON_TENSORS, &b,
                                  &err),
             &err);
    CHECK_EQ_INT(a.len, b.len);
    uint64_t placed = 0;
    for (size_t i = 0; i < a.len && i < b.len; i++) {
        pdckpt_tensor_view va, vb;
        uint64_t           at;
        CHECK(pdckpt_tensor_get(a.entries[i].tensor, &va) &&
              pdckpt_tensor_get(b.entries[i].tensor, &vb));
        CHECK_EQ_INT(va.n_bytes, vb.n_bytes);
        if (!pdk_skim_offset(&sk, vb.data, vb.n_bytes, &at) || va.n_bytes != vb.n_bytes) continue;
        uint8_t *bytes = malloc(vb.n_bytes + 1);
        CHECK_OK(pdk_skim_read(&sk, bytes, at, vb.n_bytes, &err), &err);
        CHECK(memcmp(bytes, va.data, vb.n_bytes) == 0);
        placed += pdk_skim_holed(&sk, at, vb.n_bytes) ? vb.n_bytes : 0;
        free(bytes);
    }
    CHECK_EQ_INT(placed, sk.skipped); /* every payload left unread belongs to a tensor */
    pdckpt_flat_free(&a);
    pdckpt_flat_free(&b);
    pdckpt_value_free(img);
    pdckpt_value_free(ref);
    uint64_t skipped = sk.skipped;
    pdk_skim_free(&sk);
    return skipped;
}

static void test_skim_places_payloads(void) {
    char path[4200];
    data_file(0, path, sizeof path);
    uint64_t skipped = skim_and_compare(path, (uint64_t)64 << 10);
    /* rank 0 stores w's band (150 x 257 float32) and c's half (40 x 33 x 35 int16) */
    CHECK_EQ_INT(skipped, 150 * 257 * 4 + 40 * 33 * 35 * 2);
    /* real Paddle pickles (paddle.save, protocol 4): tensors of 4 KiB and more left unread */
    const char *real[] = {
        "paddle.save-2022-12-proto4/model.pdparams", "hapi-lenet-paddle3-numpy2/mnist.pdparams",
        "hapi-lenet-paddle3-numpy2/mnist.pdopt", "paddlex-ppyolotiny-momentum-2025/model.pdopt"};
    for (size_t i = 0; i < sizeof real / sizeof real[0]; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s", tu_fixture(real[i]));
        CHECK(skim_and_compare(p, 4096) > 0);
    }
}

/* A copy of the checkpoint whose rank-0 data file is replaced by `bytes`. */
static void expect_load_fails(const uint8_t *bytes, size_t len, const char *path, int64_t offset) {
    CHECK_EQ_INT(tu_write_file(path, bytes, len), 0);
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    pdckpt_value       *got = NULL;
    pdckpt_load_options o = PDCKPT_LOAD_OPTIONS_INIT;
    o.zero_copy = false;
    pdckpt_status st = pdckpt_sharded_load(dir, -1, NULL, 0, &o, &got, &err);
    CHECK(st != PDCKPT_OK && got == NULL);
    CHECK(strstr(err.source, strrchr(path, '/')) != NULL);
    if (offset >= 0) CHECK_EQ_INT(err.offset, offset);
    fprintf(stderr, "  refused: %s: %lld: %s\n", err.source, (long long)err.offset, err.message);
}

/* The offset of the BINBYTES / BINBYTES8 opcode holding `n` bytes. */
static size_t find_payload(const uint8_t *b, size_t len, uint32_t n) {
    for (size_t i = 0; i + 9 < len; i++)
        if (b[i] == 'B' && memcmp(b + i + 1, &n, 4) == 0) return i;
    for (size_t i = 0; i + 9 < len; i++) {
        uint64_t n8 = n;
        if (b[i] == 0x8e && memcmp(b + i + 1, &n8, 8) == 0) return i;
    }
    return len;
}

static void test_hostile_data_files(void) {
    char path[4200];
    data_file(0, path, sizeof path);
    size_t   len;
    uint8_t *orig = tu_read_file(path, &len), *bad = malloc(len);
    uint32_t n = 150 * 257 * 4;
    size_t   at = find_payload(orig, len, n);
    CHECK(orig && bad && at < len);
    if (!orig || !bad || at >= len) return;
    unlink(path); /* the save made it read-only: write a new file in its place */
    /* a payload running past the end of the file */
    memcpy(bad, orig, len);
    if (bad[at] == 'B') {
        uint32_t huge = 0xFFFFFF00u;
        memcpy(bad + at + 1, &huge, 4);
    } else {
        uint64_t huge = UINT64_C(1) << 60;
        memcpy(bad + at + 1, &huge, 8);
    }
    expect_load_fails(bad, len, path, (int64_t)at);
    unlink(path);
    /* truncated inside that payload */
    expect_load_fails(orig, at + 100, path, (int64_t)at);
    unlink(path);
    /* a lying length (8 bytes short): the opcodes after it are misread, and refused */
    memcpy(bad, orig, len);
    uint32_t shorter = n - 8;
    if (bad[at] == 'B') memcpy(bad + at + 1, &shorter, 4);
    expect_load_fails(bad, len, path, -1);
    unlink(path);
    /* not an opcode where one is expected: right after the payload */
    memcpy(bad, orig, len);
    size_t after = at + 1 + (orig[at] == 'B' ? 4 : 8) + n;
    bad[after] = 0xff;
    expect_load_fails(bad, len, path, (int64_t)after);
    unlink(path);
    CHECK_EQ_INT(tu_write_file(path, orig, len), 0); /* the checkpoint as it was */
    free(orig);
    free(bad);
}

/* A piece the reader converts (here: flagged Fortran-order, so it is transposed while parsed) is
 * not a view of the file's bytes: the copy path reads that file whole and loads what the mapped
 * path loads. */
static void test_converted_piece_read_whole(void) {
    char path[4200];
    data_file(0, path, sizeof path);
    size_t   len;
    uint8_t *orig = tu_read_file(path, &len), *bad = malloc(len);
    size_t   at = find_payload(orig, len, 150 * 257 * 4);
    CHECK(orig && bad && at < len && at > 0 && orig[at - 1] == 0x89); /* NEWFALSE: not Fortran */
    if (!orig || !bad || at >= len || at == 0) return;
    memcpy(bad, orig, len);
    bad[at - 1] = 0x88; /* NEWTRUE */
    unlink(path);
    CHECK_EQ_INT(tu_write_file(path, bad, len), 0);
    const int64_t box[4] = {100, 7, 80, 200};
    pdckpt_value *got[2] = {NULL, NULL}, *want = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    for (int zero_copy = 0; zero_copy < 2; zero_copy++) {
        pdckpt_load_options  o = PDCKPT_LOAD_OPTIONS_INIT;
        pdckpt_shard_request q = {"w", 2, box, box + 2};
        o.zero_copy = zero_copy;
        CHECK_OK(pdckpt_sharded_load(dir, -1, &q, 1, &o, &got[zero_copy], &err), &err);
    }
    CHECK_OK(pdckpt_shard_slice(w, box, box + 2, &want, &err), &err);
    CHECK(pdckpt_value_equal(pdckpt_dict_get(got[0], "w"), pdckpt_dict_get(got[1], "w")));
    CHECK(!pdckpt_value_equal(pdckpt_dict_get(got[0], "w"), want)); /* it was converted */
    pdckpt_value_free(got[0]);
    pdckpt_value_free(got[1]);
    pdckpt_value_free(want);
    unlink(path);
    CHECK_EQ_INT(tu_write_file(path, orig, len), 0);
    free(orig);
    free(bad);
}

/* A data file rewritten in place (truncated, then written in two halves) by another program
 * while copy-path loads run: every load returns the box of one version whole, or a clean error;
 * never a mix, never a signal.  Versions A and B differ only in w's payload, so a skim of one
 * and reads of the other would mix them unnoticed but for the check after the reads.  After
 * each rewrite the rewriter waits for two more loads to end, so the second of them ran between
 * two rewrites (it must load whole) however slow the machine; the first may overlap it. */
typedef struct rewriter {
    const char    *path;
    const uint8_t *v[2];
    size_t         len;
    atomic_int     stop, loads_done, rewrites;
} rewriter;

static void *rewrite_loop(void *arg) {
    rewriter *r = arg;
    for (int i = 0; !atomic_load(&r->stop); i++) {
        int fd = open(r->path, O_WRONLY | O_TRUNC | O_CLOEXEC);
        if (fd < 0) continue;
        const uint8_t *b = r->v[i % 2];
        size_t         half = r->len / 2;
        if (write(fd, b, half) != (ssize_t)half ||
            write(fd, b + half, r->len - half) != (ssize_t)(r->len - half))
            fprintf(stderr, "  rewrite %d: short write\n", i);
        close(fd);
        atomic_fetch_add(&r->rewrites, 1);
        int then = atomic_load(&r->loads_done);
        while (!atomic_load(&r->stop) && atomic_load(&r->loads_done) < then + 2) usleep(200);
    }
    return NULL;
}

static pdckpt_value *load_w_box(const int64_t *box, pdckpt_error *err) {
    pdckpt_load_options  o = PDCKPT_LOAD_OPTIONS_INIT;
    pdckpt_shard_request q = {"w", 2, box, box + 2};
    pdckpt_value        *got = NULL;
    o.zero_copy = false;
    pdckpt_sharded_load(dir, -1, &q, 1, &o, &got, err);
    return got;
}

static void test_rewritten_in_place_while_loading(void) {
    char path[4200];
    data_file(0, path, sizeof path);
    size_t   len;
    uint8_t *a = tu_read_file(path, &len), *b = malloc(len);
    size_t   at = find_payload(a, len, 150 * 257 * 4);
    CHECK(a && b && at < len);
    if (!a || !b || at >= len) return;
    memcpy(b, a, len);
    for (size_t i = at + 5; i < at + 5 + 150 * 257 * 4; i++) b[i] ^= 0x5a;
    const int64_t box[4] = {100, 7, 80, 200};
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *want[2];
    unlink(path);
    CHECK_EQ_INT(tu_write_file(path, b, len), 0);
    want[1] = load_w_box(box, &err);
    CHECK_OK(pdckpt_shard_slice(w, box, box + 2, &want[0], &err), &err);
    CHECK(want[1] && !pdckpt_value_equal(want[0], pdckpt_dict_get(want[1], "w")));
    rewriter  r = {path, {a, b}, len, 0, 0, 0};
    pthread_t t;
    int       ok = 0, failed = 0, mixed = 0, other = 0;
    CHECK_EQ_INT(pthread_create(&t, NULL, rewrite_loop, &r), 0);
    /* 300 loads, and on until 30 rewrites have ended: a load takes ~50 us, a rewrite longer,
     * and a rewriter descheduled on a busy machine could otherwise span every load */
    int n = 0;
    for (; n < 300 || (atomic_load(&r.rewrites) < 30 && n < 1000000); n++) {
        pdckpt_error  e = PDCKPT_ERROR_INIT;
        pdckpt_value *got = load_w_box(box, &e);
        if (got) {
            const pdckpt_value *g = pdckpt_dict_get(got, "w");
            bool                one = pdckpt_value_equal(g, want[0]) ||
                       pdckpt_value_equal(g, pdckpt_dict_get(want[1], "w"));
            ok += one, mixed += !one;
        } else if (e.status == PDCKPT_ERR_IO || e.status == PDCKPT_ERR_FORMAT) {
            if (!failed++) fprintf(stderr, "  e.g. %s: %s\n", e.source, e.message);
        } else {
            fprintf(stderr, "  unexpected: %s: %s\n", e.source, e.message);
            other++;
        }
        pdckpt_value_free(got);
        atomic_fetch_add(&r.loads_done, 1);
    }
    atomic_store(&r.stop, 1);
    pthread_join(t, NULL);
    fprintf(stderr, "  %d loads during %d rewrites: %d whole, %d clean errors, %d mixed\n", n,
            atomic_load(&r.rewrites), ok, failed, mixed);
    CHECK_EQ_INT(mixed, 0);
    CHECK_EQ_INT(other, 0);
    CHECK(ok > 0 && atomic_load(&r.rewrites) >= 30);
    unlink(path);
    CHECK_EQ_INT(tu_write_file(path, a, len), 0);
    pdckpt_value_free(want[0]);
    pdckpt_value_free(want[1]);
    free(a);
    free(b);
}

/* After the skim, the file is truncated, then rewritten: reads and the final check say so. */
static void test_file_changed_after_skim(void) {
    char path[4200];
    data_file(0, path, sizeof path);
    size_t   len;
    uint8_t *orig = tu_read_file(path, &len);
    char     copy[4300];
    snprintf(copy, sizeof copy, "%s/changed.pkl", dir);
    CHECK(orig && tu_write_file(copy, orig, len) == 0);
    int         fd = open(copy, O_RDWR | O_CLOEXEC);
    struct stat st;
    CHECK(fd >= 0 && fstat(fd, &st) == 0);
    pdk_skim     sk;
    pdckpt_error err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdk_skim_open(fd, &st, copy, (uint64_t)64 << 10, &sk, &err), &err);
    CHECK(sk.n_holes == 2);
    uint64_t at = sk.holes[1].at, n = sk.holes[1].len;
    uint8_t *buf = malloc(n);
    CHECK(ftruncate(fd, (off_t)(at + n / 2)) == 0);
    CHECK_EQ_INT(pdk_skim_read(&sk, buf, at, n, &err), PDCKPT_ERR_IO);
    CHECK(strcmp(err.source, copy) == 0 && err.offset == (int64_t)(at + n / 2));
    fprintf(stderr, "  truncated: %s: %lld: %s\n", err.source, (long long)err.offset, err.message);
    pdckpt_error err2 = PDCKPT_ERROR_INIT;
    CHECK_EQ_INT(pdk_skim_check(&sk, &err2), PDCKPT_ERR_IO);
    CHECK(strstr(err2.message, "modified") != NULL);
    free(buf);
    pdk_skim_free(&sk);
    free(orig);
    unlink(copy);
}

/* The bytes this process has read so far (/proc/self/io rchar). */
static uint64_t bytes_read(void) {
    FILE              *f = fopen("/proc/self/io", "r");
    unsigned long long n = 0;
    char               line[128];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "rchar: %llu", &n) == 1) break;
    if (f) fclose(f);
    return n;
}

/* A checkpoint saved with data files of `format` (into a new `dir`): boxes equal on both paths,
 * and ten rows of w on the copy path read far fewer bytes than its data file holds (the skim
 * reads the headers, then the rows).  Returns rank 0's data file in *path. */
static void save_as(pdckpt_format format, const char *ext, char *path, size_t cap) {
    dir = tu_tempdir();
    save(format);
    test_boxes_equal_on_both_paths();
    DIR *d = opendir(dir);
    path[0] = '\0';
    for (struct dirent *e; d && (e = readdir(d));)
        if (strncmp(e->d_name, "0_", 2) == 0 && strstr(e->d_name, ext))
            snprintf(path, cap, "%s/%s", dir, e->d_name);
    if (d) closedir(d);
    struct stat st;
    CHECK(path[0] != '\0' && stat(path, &st) == 0 && st.st_size > 150 * 257 * 4);
    const int64_t box[4] = {10, 0, 10, 257}; /* ten rows: 10 KiB of a 190 KiB file */
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    uint64_t      before = bytes_read();
    pdckpt_value *got = load_w_box(box, &err), *want = NULL;
    uint64_t      read = bytes_read() - before;
    CHECK_OK(pdckpt_shard_slice(w, box, box + 2, &want, &err), &err);
    CHECK(got && pdckpt_value_equal(pdckpt_dict_get(got, "w"), want));
    fprintf(stderr, "  %s: ten rows of w: %llu bytes read, data file %lld bytes\n", ext,
            (unsigned long long)read, (long long)st.st_size);
    CHECK(read < (uint64_t)st.st_size / 4);
    pdckpt_value_free(got);
    pdckpt_value_free(want);
}

/* Loads rows of w from the file at `path` after `n` bytes at `at` were overwritten: the
 * format's reader refuses it, naming the file. */
static void expect_refused(const char *path, uint64_t at, const void *bytes, size_t n) {
    int fd = open(path, O_RDWR | O_CLOEXEC);
    CHECK(fd >= 0 && pwrite(fd, bytes, n, (off_t)at) == (ssize_t)n);
    close(fd);
    const int64_t box[4] = {10, 0, 10, 257};
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *got = load_w_box(box, &err);
    CHECK(got == NULL && err.status == PDCKPT_ERR_FORMAT && strstr(err.source, path) != NULL);
    fprintf(stderr, "  refused: %s: %lld: %s\n", err.source, (long long)err.offset, err.message);
    pdckpt_value_free(got);
}

/* Safetensors data files: the header is read, the data left unread; a file truncated after its
 * skim is an IO error naming it; a header length past the end is the reader's error. */
static void test_safetensors_files_read_only_their_bytes(void) {
    char *pickles = dir, path[4200];
    save_as(PDCKPT_FORMAT_SAFETENSORS, ".safetensors", path, sizeof path);
    pdckpt_error err = PDCKPT_ERROR_INIT;
    struct stat  st;
    int          fd = open(path, O_RDWR | O_CLOEXEC);
    pdk_skim     sk;
    uint64_t     hlen = 0;
    CHECK(fd >= 0 && fstat(fd, &st) == 0 && pread(fd, &hlen, 8, 0) == 8);
    CHECK_OK(pdk_skim_open_prefix(fd, &st, path, 8 + hlen, &sk, &err), &err);
    CHECK(sk.n_holes == 1 && sk.holes[0].at == 8 + hlen && sk.skipped == st.st_size - 8 - hlen);
    uint8_t buf[64];
    CHECK(ftruncate(fd, st.st_size - 10) == 0);
    CHECK_EQ_INT(pdk_skim_read(&sk, buf, (uint64_t)st.st_size - 64, 64, &err), PDCKPT_ERR_IO);
    CHECK(strcmp(err.source, path) == 0 && err.offset == st.st_size - 10);
    pdk_skim_free(&sk);
    hlen = (uint64_t)st.st_size;
    expect_refused(path, 0, &hlen, 8);
    tu_rmtree(dir);
    free(dir);
    dir = pickles;
}

/* Combined (.pdiparams) data files: each tensor stream's headers are read, its data left
 * unread when large; a stream the walk cannot follow (a TensorDesc size past the end, a
 * version that is not 0) is read whole and the combined reader's error names the file. */
static void test_combined_files_read_only_their_bytes(void) {
    char *pickles = dir, path[4200];
    save_as(PDCKPT_FORMAT_COMBINED, ".pdiparams", path, sizeof path);
    pdckpt_error err = PDCKPT_ERROR_INIT;
    struct stat  st;
    int          fd = open(path, O_RDONLY | O_CLOEXEC);
    pdk_skim     sk;
    bool         followed = false;
    CHECK(fd >= 0 && fstat(fd, &st) == 0);
    CHECK_OK(pdk_skim_init(fd, &st, path, &sk, &err), &err);
    CHECK_OK(pdk_skim_streams(&sk, (uint64_t)64 << 10, &followed, &err), &err);
    /* rank 0 stores c's half (92,400 bytes) and w's band (154,200 bytes); s (60) is read */
    CHECK(followed && sk.n_holes == 2 && sk.skipped == 40 * 33 * 35 * 2 + 150 * 257 * 4);
    pdk_skim_free(&sk);
    uint8_t huge[4] = {0xff, 0xff, 0xff, 0x7f}, one[4] = {1, 0, 0, 0};
    expect_refused(path, 16, huge, 4); /* the first stream's TensorDesc size */
    expect_refused(path, 0, one, 4);   /* its version */
    tu_rmtree(dir);
    free(dir);
    dir = pickles;
}

int main(void) {
    dir = tu_tempdir();
    w = tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, W_SHAPE, 11);
    c = tu_random_tensor(PDCKPT_DTYPE_INT16, 3, C_SHAPE, 12);
    s = tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, S_SHAPE, 13);
    save(PDCKPT_FORMAT_AUTO);
    RUN(test_boxes_equal_on_both_paths);
    RUN(test_skim_places_payloads);
    RUN(test_hostile_data_files);
    RUN(test_converted_piece_read_whole);
    RUN(test_rewritten_in_place_while_loading);
    RUN(test_boxes_equal_on_both_paths); /* the restored checkpoint loads as before */
    RUN(test_file_changed_after_skim);
    RUN(test_safetensors_files_read_only_their_bytes);
    RUN(test_combined_files_read_only_their_bytes);
    pdckpt_value_free(w);
    pdckpt_value_free(c);
    pdckpt_value_free(s);
    tu_rmtree(dir);
    free(dir);
    return CHECK_SUMMARY();
}
