/*
 * bench_c.c — the C API side of the benchmark (bench/bench.py drives it, one process per
 * measurement so peak RSS is the operation's own):
 *   bench_c save SRC DST FORMAT DURABLE   load SRC (untimed), then time pdckpt_save_file(DST)
 *   bench_c load DST                      time pdckpt_load_file (default: read into memory) +
 *                                         reading every tensor byte
 *   bench_c load-map DST                  the same with zero_copy (the file mapped)
 *   bench_c open DST                      time pdckpt_load_file alone (mapped, nothing touched)
 * Prints one JSON object: seconds, peak_rss_kib (getrusage), bytes.
 */
#include <pdckpt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long peak_rss_kib(void) {
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

static int fail(const pdckpt_error *err) {
    fprintf(stderr, "bench_c: %s\n", err->message);
    return 1;
}

int main(int argc, char **argv) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *tree = NULL;
    if (argc == 6 && strcmp(argv[1], "save") == 0) {
        /* The state must be in memory, as a trainer's is: read, not mapped (a mapped source
         * would make the save time include reading it from disk). */
        pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
        lo.zero_copy = false;
        if (pdckpt_load_file(argv[2], &lo, &tree, NULL, &err) != PDCKPT_OK) return fail(&err);
        long                before_kib = peak_rss_kib();
        pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
        bool                known = false;
        so.format = pdckpt_format_from_name(argv[4], &known);
        if (!known) return 2;
        so.durable = atoi(argv[5]) != 0;
        double t0 = now();
        if (pdckpt_save_file(tree, argv[3], &so, &err) != PDCKPT_OK) return fail(&err);
        double t1 = now();
        printf("{\"seconds\": %.6f, \"peak_rss_kib\": %ld}\n", t1 - t0,
               peak_rss_kib() - before_kib);
    } else if (argc == 3 && (strcmp(argv[1], "load") == 0 || strcmp(argv[1], "load-map") == 0 ||
                             strcmp(argv[1], "open") == 0)) {
        touch_ctx           t = {0, 0};
        pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
        lo.zero_copy = strcmp(argv[1], "load") != 0; /* open is the lazy, mapped reader */
        double t0 = now();
        if (pdckpt_load_file(argv[2], &lo, &tree, NULL, &err) != PDCKPT_OK) return fail(&err);
        if (argv[1][0] == 'l' && pdckpt_value_walk(tree, touch, &t, &err) != PDCKPT_OK)
            return fail(&err);
        double t1 = now();
        printf("{\"seconds\": %.6f, \"peak_rss_kib\": %ld, \"bytes\": %llu, \"sum\": %llu}\n",
               t1 - t0, peak_rss_kib(), (unsigned long long)t.bytes, (unsigned long long)t.sum);
    } else {
        fprintf(stderr, "usage: bench_c save SRC DST FORMAT DURABLE | load|load-map|open DST\n");
        return 2;
    }
    pdckpt_value_free(tree);
    return 0;
}
