/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_c.c — the C API side of the benchmark (bench/bench.py drives it, one process per
 * measurement so peak RSS is the operation's own):
 *   bench_c save SRC DST FORMAT DURABLE   load SRC and recycle as much memory (untimed), then
 *                                         time pdckpt_save_file(DST)
 *   bench_c load DST                      time pdckpt_load_file (default: read into memory) +
 *                                         reading every tensor byte
 *   bench_c load-map DST                  the same with zero_copy (the file mapped)
 *   bench_c open DST                      time pdckpt_load_file alone (nothing touched)
 *   bench_c loadfile PATH ROUNDS          the load half of pertensor on an existing file (one
 *                                         paddle.save wrote): medians per tensor, read and
 *                                         zero-copy, wall clock and process CPU time
 *   bench_c lazyopen PATH ROUNDS          zero-copy opens of a pdckpt-written pickle, cold (its
 *                                         pages dropped with fadvise) and warm, with its index
 *                                         and without, and pdckpt_lazy_open with every key
 *                                         listed (entries made on access); medians in ms
 *   bench_c memcpy BYTES THREADS          time copying BYTES into fresh (never touched) memory
 *                                         with THREADS threads: the limit of any load that
 *                                         hands out memory of its own
 *   bench_c pertensor FORMAT PATH N ROUNDS  per-tensor cost in C (issue 18): a state dict of N
 *                                         named 1 KiB float32 tensors (W2 at N = 100000) saved
 *                                         to PATH (not durable) and loaded back, read and
 *                                         zero-copy, ROUNDS times alternating; prints the
 *                                         medians in microseconds per tensor, wall clock and
 *                                         process CPU time
 * Prints one JSON object: seconds, peak_rss_kib (getrusage), bytes.
 */
#include "bench_clock.h"
#include <fcntl.h>

#include <pdckpt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* VmHWM, not ru_maxrss: that also keeps the peak an exiting thread saw, which the reset before
 * a timed step (clear_refs) cannot clear. */
static long peak_rss_kib(void) {
    uint64_t hwm = bench_status_kib("VmHWM:");
    if (hwm > 0) return (long)hwm;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

typedef struct touch_ctx {
    uint64_t sum, bytes;
} touch_ctx;

/* Reads every byte of every tensor (8 bytes at a time; the tail byte by byte). */
static int touch(void *ctx, const pdckpt_path_step *path, size_t depth, const pdckpt_value *v) {
    (void)path, (void)depth;
    touch_ctx         *t = ctx;
    pdckpt_tensor_view tv;
    if (!pdckpt_tensor_get(v, &tv) || !tv.n_bytes) return 0;
    const unsigned char *p = tv.data;
    uint64_t             s = 0, w;
    size_t               i = 0;
    for (; i + 8 <= tv.n_bytes; i += 8) {
        memcpy(&w, p + i, 8);
        s += w;
    }
    for (; i < tv.n_bytes; i++) s += p[i];
    t->sum += s;
    t->bytes += tv.n_bytes;
    return 0;
}

typedef struct copy_part {
    unsigned char       *dst;
    const unsigned char *src;
    size_t               len;
} copy_part;

static void *copy_part_run(void *arg) {
    copy_part *p = arg;
    memcpy(p->dst, p->src, p->len);
    return NULL;
}

/* The source is resident (written first); the destination is a fresh allocation, so the copy
 * pays its page faults as a load into new memory does. */
static int bench_memcpy(size_t bytes, int threads) {
    if (threads < 1 || threads > 64) return 2;
    unsigned char *src = malloc(bytes), *dst = malloc(bytes);
    if (!src || !dst) return 1;
    memset(src, 0x5a, bytes);
    pthread_t tid[64];
    copy_part part[64];
    size_t    chunk = (bytes / (size_t)threads + 4095) & ~(size_t)4095;
    double    t0 = bench_wall();
    for (int i = 0; i < threads; i++) {
        size_t off = chunk * (size_t)i < bytes ? chunk * (size_t)i : bytes;
        size_t len = bytes - off < chunk ? bytes - off : chunk;
        part[i] = (copy_part){dst + off, src + off, len};
        pthread_create(&tid[i], NULL, copy_part_run, &part[i]);
    }
    for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
    double t1 = bench_wall();
    printf("{\"seconds\": %.6f, \"peak_rss_kib\": %ld, \"check\": %d}\n", t1 - t0, peak_rss_kib(),
           dst[bytes - 1]);
    free(src);
    free(dst);
    return 0;
}

static int fail(const pdckpt_error *err) {
    fprintf(stderr, "bench_c: %s\n", err->message);
    return 1;
}

/* A W2-like state dict: n tensors of 256 float32, named as Paddle names parameters. */
static pdckpt_value *w2_state(size_t n, pdckpt_error *err) {
    pdckpt_value *dict = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    int64_t       dim = 256;
    for (size_t i = 0; dict && i < n; i++) {
        char          key[64], name[64];
        pdckpt_value *t = NULL;
        snprintf(key, sizeof key, "layer%zu.weight", i);
        snprintf(name, sizeof name, "linear_%zu.w_0", i);
        if (pdckpt_tensor_new(NULL, PDCKPT_DTYPE_FLOAT32, 1, &dim, &t, err) != PDCKPT_OK ||
            pdckpt_tensor_set_name(t, name, err) != PDCKPT_OK ||
            pdckpt_dict_set(dict, key, t, err) != PDCKPT_OK) {
            pdckpt_value_free(dict);
            return NULL;
        }
        float *d = pdckpt_tensor_data_mut(t);
        for (int k = 0; k < 256; k++) d[k] = (float)(i + (size_t)k);
    }
    return dict;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Saves (buffered, to the page cache) and loads (read mode and zero-copy) alternately, so a busy
 * machine hurts all alike.  The loaded tree is freed outside the timing: it is the caller's. */
static int bench_pertensor(const char *format, const char *path, size_t n, int rounds) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *state = w2_state(n, &err);
    if (!state) return fail(&err);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    bool                known = false;
    so.format = pdckpt_format_from_name(format, &known);
    so.durable = false;
    if (!known || rounds < 1 || rounds > 64 || n == 0) return 2;
    double save[64], load[64], open[64], load_cpu[64], open_cpu[64];
    for (int r = 0; r < rounds; r++) {
        double t0 = bench_wall();
        if (pdckpt_save_file(state, path, &so, &err) != PDCKPT_OK) return fail(&err);
        save[r] = (bench_wall() - t0) * 1e6 / (double)n;
        for (int zc = 0; zc < 2; zc++) {
            pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT_WITH(zc != 0);
            pdckpt_value       *tree = NULL;
            double              t2 = bench_wall(), c2 = bench_cpu();
            if (pdckpt_load_file(path, &lo, &tree, NULL, &err) != PDCKPT_OK) return fail(&err);
            (zc ? open : load)[r] = (bench_wall() - t2) * 1e6 / (double)n;
            (zc ? open_cpu : load_cpu)[r] = (bench_cpu() - c2) * 1e6 / (double)n;
            pdckpt_value_free(tree);
        }
    }
    printf("{\"format\": \"%s\", \"tensors\": %zu, \"save_us\": %.3f, \"load_us\": %.3f, "
           "\"load_zero_copy_us\": %.3f, \"load_cpu_us\": %.3f, \"load_zero_copy_cpu_us\": %.3f}\n",
           format, n, median(save, rounds), median(load, rounds), median(open, rounds),
           median(load_cpu, rounds), median(open_cpu, rounds));
    pdckpt_value_free(state);
    return 0;
}

static int count_tensor(void *ctx, const pdckpt_path_step *path, size_t depth,
                        const pdckpt_value *v) {
    (void)path, (void)depth;
    *(size_t *)ctx += pdckpt_value_kind(v) == PDCKPT_KIND_TENSOR;
    return 0;
}

/* The load half of pertensor on an existing file (one paddle.save wrote, say). */
static int bench_loadfile(const char *path, int rounds) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    double       load[64], load_cpu[64], open[64], open_cpu[64];
    size_t       n = 0;
    if (rounds < 1 || rounds > 64) return 2;
    for (int r = 0; r < rounds; r++) {
        for (int zc = 0; zc < 2; zc++) {
            pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT_WITH(zc != 0);
            pdckpt_value       *tree = NULL;
            double              t0 = bench_wall(), c0 = bench_cpu();
            if (pdckpt_load_file(path, &lo, &tree, NULL, &err) != PDCKPT_OK) return fail(&err);
            double wall = bench_wall() - t0, cpu = bench_cpu() - c0;
            n = 0;
            if (pdckpt_value_walk(tree, count_tensor, &n, &err) != PDCKPT_OK || !n) return 1;
            (zc ? open : load)[r] = wall * 1e6 / (double)n;
            (zc ? open_cpu : load_cpu)[r] = cpu * 1e6 / (double)n;
            pdckpt_value_free(tree);
        }
    }
    printf("{\"tensors\": %zu, \"load_us\": %.3f, \"load_zero_copy_us\": %.3f, "
           "\"load_cpu_us\": %.3f, \"load_zero_copy_cpu_us\": %.3f}\n",
           n, median(load, rounds), median(open, rounds), median(load_cpu, rounds),
           median(open_cpu, rounds));
    return 0;
}

/* Drops the file's pages from the page cache (only this file's: the machine is shared). */
static void drop_cached(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return;
    posix_fadvise(fileno(f), 0, 0, POSIX_FADV_DONTNEED);
    fclose(f);
}

/* Lazy (zero-copy) opens of PATH, cold and warm, with its "<PATH>.pdkidx" index and without it
 * (the index renamed away for that open), interleaved ROUNDS times; medians in milliseconds. */
/* pdckpt_lazy_open and every key's text, as pdckpt.open + keys() need them. */
static pdckpt_status open_lazy_keys(const char *path, pdckpt_error *err) {
    pdckpt_lazy  *l = NULL;
    pdckpt_status st = pdckpt_lazy_open(path, NULL, &l, err);
    if (st == PDCKPT_OK && !l) return fprintf(stderr, "no lazy open\n"), PDCKPT_ERR_FORMAT;
    size_t len, sum = 0;
    for (size_t i = 0; l && i < pdckpt_lazy_len(l); i++)
        sum += pdckpt_lazy_key_text(l, i, &len) ? len : 0;
    pdckpt_lazy_close(l);
    return sum || st != PDCKPT_OK ? st : PDCKPT_ERR_FORMAT;
}

static int bench_lazyopen(const char *path, int rounds) {
    char idx[4096], off[4096];
    snprintf(idx, sizeof idx, "%s.pdkidx", path);
    snprintf(off, sizeof off, "%s.pdkidx.off", path);
    double       t[6][64]; /* with/without index, lazy x cold/warm */
    pdckpt_error err = PDCKPT_ERROR_INIT;
    if (rounds < 1 || rounds > 64) return 2;
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < 6; k++) {
            bool without = k == 2 || k == 3, cold = !(k & 1);
            if (without && rename(idx, off) != 0) return fprintf(stderr, "no index\n"), 1;
            if (cold) drop_cached(path), drop_cached(idx);
            pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT_WITH(true);
            pdckpt_value       *tree = NULL;
            double              t0 = bench_wall();
            pdckpt_status       st = k >= 4 ? open_lazy_keys(path, &err)
                                            : pdckpt_load_file(path, &lo, &tree, NULL, &err);
            t[k][r] = (bench_wall() - t0) * 1e3;
            pdckpt_value_free(tree);
            if (without) rename(off, idx);
            if (st != PDCKPT_OK) return fail(&err);
        }
    printf("{\"index_cold_ms\": %.2f, \"index_warm_ms\": %.2f, \"parse_cold_ms\": %.2f, "
           "\"parse_warm_ms\": %.2f, \"lazy_cold_ms\": %.2f, \"lazy_warm_ms\": %.2f}\n",
           median(t[0], rounds), median(t[1], rounds), median(t[2], rounds), median(t[3], rounds),
           median(t[4], rounds), median(t[5], rounds));
    return 0;
}

int main(int argc, char **argv) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *tree = NULL;
    if (argc == 6 && strcmp(argv[1], "pertensor") == 0)
        return bench_pertensor(argv[2], argv[3], strtoull(argv[4], NULL, 10), atoi(argv[5]));
    if (argc == 4 && strcmp(argv[1], "loadfile") == 0)
        return bench_loadfile(argv[2], atoi(argv[3]));
    if (argc == 4 && strcmp(argv[1], "lazyopen") == 0)
        return bench_lazyopen(argv[2], atoi(argv[3]));
    if (argc == 4 && strcmp(argv[1], "memcpy") == 0)
        return bench_memcpy(strtoull(argv[2], NULL, 10), atoi(argv[3]));
    if (argc == 6 && strcmp(argv[1], "save") == 0) {
        /* The state must be in memory, as a trainer's is: read, not mapped (a mapped source
         * would make the save time include reading it from disk). */
        pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
        lo.zero_copy = false;
        if (pdckpt_load_file(argv[2], &lo, &tree, NULL, &err) != PDCKPT_OK) return fail(&err);
        struct stat src;
        bench_recycle_memory(stat(argv[2], &src) == 0 ? (size_t)src.st_size : 0);
        long                before_kib = peak_rss_kib();
        pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
        bool                known = false;
        so.format = pdckpt_format_from_name(argv[4], &known);
        if (!known) return 2;
        so.durable = atoi(argv[5]) != 0;
        double t0 = bench_wall();
        if (pdckpt_save_file(tree, argv[3], &so, &err) != PDCKPT_OK) return fail(&err);
        double t1 = bench_wall();
        printf("{\"seconds\": %.6f, \"peak_rss_kib\": %ld}\n", t1 - t0,
               peak_rss_kib() - before_kib);
    } else if (argc == 3 && (strcmp(argv[1], "load") == 0 || strcmp(argv[1], "load-map") == 0 ||
                             strcmp(argv[1], "open") == 0)) {
        touch_ctx           t = {0, 0};
        pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
        lo.zero_copy = strcmp(argv[1], "load") != 0; /* open is the lazy, mapped reader */
        double t0 = bench_wall();
        if (pdckpt_load_file(argv[2], &lo, &tree, NULL, &err) != PDCKPT_OK) return fail(&err);
        if (argv[1][0] == 'l' && pdckpt_value_walk(tree, touch, &t, &err) != PDCKPT_OK)
            return fail(&err);
        double t1 = bench_wall();
        printf("{\"seconds\": %.6f, \"peak_rss_kib\": %ld, \"bytes\": %llu, \"sum\": %llu}\n",
               t1 - t0, peak_rss_kib(), (unsigned long long)t.bytes, (unsigned long long)t.sum);
    } else {
        fprintf(stderr, "usage: bench_c save SRC DST FORMAT DURABLE | load|load-map|open DST | "
                        "memcpy B T\n");
        return 2;
    }
    pdckpt_value_free(tree);
    return 0;
}
