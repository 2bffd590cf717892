/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_meta.c — decoding a sharded checkpoint's metadata (issue 20): for each PIECES, the
 * "<id>.metadata" of PIECES / 4 float32 keys cut into 4 row pieces (bench/dist_scale.sh's layout,
 * as pdckpt writes it, no sidecar) is decoded in a fresh process each way, which reports its
 * time and its peak resident memory above what it held before (VmHWM - VmRSS):
 *   index  the load's decode, straight into the piece index (pdk_meta_decode_index), with the
 *          peak its counting allocator saw;
 *   keys   pdckpt_sharded_read_keys (what `pdckpt dist merge` reads): the same decode, then the
 *          keys' dtypes and global shapes as values;
 *   list   pdckpt_sharded_list (what `pdckpt ls` reads): the same decode, the builder keeping
 *          every piece and entry as listed;
 *   tree   pdckpt_sharded_read_metadata: the list, then the value tree it returns.
 * Usage: pdckpt_bench_dist_meta DIR [PIECES...]   (default 8000 64000 256000)
 */
#include "formats/distcp/pdk_distcp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char  line[256];
    long  v = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, strlen(field)) == 0) v = atol(line + strlen(field));
    if (f) fclose(f);
    return v;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static size_t write_metadata(const char *dir, size_t n) {
    pdk_meta_piece *p = calloc(n, sizeof *p);
    int64_t        *dims = calloc(n * 3, sizeof *dims);
    char(*keys)[48] = calloc(n / 4 + 1, sizeof *keys);
    static const char *files[4] = {"0_0.distcp", "1_0.distcp", "2_0.distcp", "3_0.distcp"};
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    for (size_t i = 0; i < n; i++) {
        snprintf(keys[i / 4], sizeof keys[0], "model.layers.%zu.mlp.w_0", i / 4);
        dims[3 * i] = 32, dims[3 * i + 1] = 8 * (int64_t)(i % 4), dims[3 * i + 2] = 8;
        p[i] = (pdk_meta_piece){keys[i / 4],      PDCKPT_DTYPE_FLOAT32, 1,           &dims[3 * i],
                                &dims[3 * i + 1], &dims[3 * i + 2],     files[i % 4]};
    }
    pdckpt_value *tree = NULL;
    pdk_blob      blob = {0};
    char          path[4200];
    if (pdk_meta_tree_new(NULL, p, n, &tree, &err) || pdk_meta_encode(tree, NULL, &blob, &err) ||
        pdk_meta_path(dir, 0, path, sizeof path, &err) ||
        pdk_write_file_atomic(path, blob.data, blob.len, false, &err)) {
        fprintf(stderr, "%s\n", err.message);
        exit(1);
    }
    size_t len = blob.len;
    pdckpt_value_free(tree);
    pdk_blob_free(&blob);
    free(p), free(dims), free(keys);
    return len;
}

/* One decode in this (child) process; prints its line. */
static int decode(const char *dir, const char *way, size_t len) {
    bool          index = strcmp(way, "index") == 0, keys = strcmp(way, "keys") == 0;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    char          path[4200];
    pdk_blob      bytes = {0};
    uint64_t      counted = 0;
    long          before = status_kb("VmRSS:");
    double        t0 = now();
    pdckpt_status st;
    if (index) {
        pdk_meta_index ix;
        st = pdk_meta_path(dir, 0, path, sizeof path, &err);
        if (st == PDCKPT_OK)
            st = pdk_read_small_file(path, len + 1, &bytes.data, &bytes.len, NULL, &err);
        if (st == PDCKPT_OK) st = pdk_meta_decode_index(&bytes, path, 0, &ix, NULL, &counted, &err);
        if (st == PDCKPT_OK) pdk_meta_index_free(&ix);
    } else if (strcmp(way, "list") == 0) {
        pdckpt_sharded_listing *l = NULL;
        st = pdckpt_sharded_list(dir, 0, 0, &l, NULL, &err);
        pdckpt_sharded_listing_free(l);
    } else {
        pdckpt_value *meta = NULL;
        st = keys ? pdckpt_sharded_read_keys(dir, 0, &meta, NULL, &err)
                  : pdckpt_sharded_read_metadata(dir, 0, &meta, NULL, &err);
        pdckpt_value_free(meta);
    }
    double s = now() - t0;
    if (st != PDCKPT_OK) return fprintf(stderr, "%s\n", err.message), 1;
    double peak = (double)(status_kb("VmHWM:") - before) * 1024;
    printf("%-5s %9.3f s  peak %7.1f MB = %4.1fx", way, s, peak / 1e6, peak / (double)len);
    if (index) printf("  (counted %.1fx)", (double)counted / (double)len);
    printf("\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--decode") == 0) /* a fresh process per decode */
        return decode(argv[3], argv[2], strtoull(argv[4], NULL, 10));
    if (argc < 2) return fprintf(stderr, "usage: %s DIR [PIECES...]\n", argv[0]), 2;
    static const char *dflt[] = {"8000", "64000", "256000"};
    int                n = argc > 2 ? argc - 2 : 3;
    for (int i = 0; i < n; i++) {
        size_t pieces = strtoull(argc > 2 ? argv[i + 2] : dflt[i], NULL, 10);
        size_t len = write_metadata(argv[1], pieces);
        printf("== %zu pieces, metadata %.1f MB\n", pieces, (double)len / 1e6);
        fflush(stdout);
        static const char *ways[] = {"index", "keys", "list", "tree"};
        for (int way = 0; way < 4; way++) {
            char size[32];
            snprintf(size, sizeof size, "%zu", len);
            char *args[] = {argv[0], "--decode", (char *)ways[way], argv[1], size, NULL};
            pid_t pid = fork();
            if (pid == 0) {
                execv("/proc/self/exe", args);
                _exit(127);
            }
            int status = 0;
            waitpid(pid, &status, 0);
            if (!WIFEXITED(status) || WEXITSTATUS(status)) return 1;
        }
    }
    return 0;
}
