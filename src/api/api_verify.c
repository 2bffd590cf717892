/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_verify.c — full structural verification: load with the extra semantic checks on, from a
 * private read rather than a mapping (an I/O error then surfaces as EIO instead of SIGBUS), and
 * touch every tensor byte.  The format loaders themselves insist that every input byte is
 * accounted for.  A "<file>.xxh3" sidecar (xxh_sidecar.c) is checked first, on the raw bytes; a
 * bad block is then named by the tensors whose data it holds, found from a mapped load.
 */
#include "../formats/pdk_format.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

typedef struct touch_ctx {
    pdckpt_verify_report *report;
    uint64_t              digest;
} touch_ctx;

static int touch(void *ctx, const pdckpt_path_step *path, size_t depth, const pdckpt_value *leaf) {
    (void)path;
    (void)depth;
    touch_ctx *tc = ctx;
    tc->report->n_leaves++;
    pdckpt_tensor_view v;
    if (!pdckpt_tensor_get_memory(leaf, &v, NULL)) return 0;
    tc->report->n_tensors++;
    tc->report->n_data_bytes += v.n_bytes;
    if (v.n_bytes) tc->digest ^= XXH3_64bits(v.data, (size_t)v.n_bytes);
    return 0;
}

typedef struct locate_ctx {
    uint64_t lo, hi; /* the bad block */
    uint64_t file_size;
    char     names[200];
    size_t   n_found;
} locate_ctx;

/* The leaf's dict keys joined by '/' ("opt/moment1"), or its index. */
static void leaf_name(const pdckpt_path_step *path, size_t depth, char *out, size_t cap) {
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < depth && used + 1 < cap; i++) {
        const char *key = path[i].key ? pdckpt_value_get_string(path[i].key, NULL) : NULL;
        int         n =
            key ? snprintf(out + used, cap - used, "%s%s", used ? "/" : "", key)
                        : snprintf(out + used, cap - used, "%s%" PRId64, used ? "/" : "", path[i].index);
        if (n < 0) return;
        used += (size_t)n < cap - used ? (size_t)n : cap - used - 1;
    }
}

static int locate(void *ctx, const pdckpt_path_step *path, size_t depth, const pdckpt_value *leaf) {
    locate_ctx        *lc = ctx;
    pdckpt_tensor_view v;
    if (!pdckpt_tensor_get_memory(leaf, &v, NULL) || !v.buffer || !v.n_bytes) return 0;
    const uint8_t *base = pdk_buffer_data(v.buffer);
    const uint8_t *data = v.data;
    /* Tensors that point into the buffer holding the whole file (mapped or read); a tensor
     * copied into its own buffer tells nothing about file offsets. */
    if (pdk_buffer_size(v.buffer) != lc->file_size || data < base ||
        data + v.n_bytes > base + lc->file_size)
        return 0;
    uint64_t off = (uint64_t)(data - base);
    if (off >= lc->hi || off + v.n_bytes <= lc->lo) return 0;
    char name[128];
    if (v.name)
        snprintf(name, sizeof name, "%s", v.name);
    else
        leaf_name(path, depth, name, sizeof name);
    size_t used = strlen(lc->names);
    if (lc->n_found++ < 3)
        snprintf(lc->names + used, sizeof lc->names - used, "%s'%s' [%" PRIu64 ", %" PRIu64 ")",
                 used ? ", " : "", name, off, off + v.n_bytes);
    return 0;
}

/* Fails with CORRUPT for a block whose digest differs, naming the tensors it holds. */
static pdckpt_status report_bad_block(const char *path, const pdckpt_load_options *opts,
                                      const pdk_sidecar_result *res, pdckpt_error *err) {
    locate_ctx          lc = {res->offset, res->offset + res->len, res->file_size, "", 0};
    pdckpt_load_options mapped = *opts;
    mapped.zero_copy = true;
    mapped.verify = false;
    mapped.progress = NULL;
    pdckpt_value *root = NULL;
    pdckpt_error  ignored = PDCKPT_ERROR_INIT;
    char          where[300];
    if (pdckpt_load_file(path, &mapped, &root, NULL, &ignored) != PDCKPT_OK)
        snprintf(where, sizeof where, "headers: the file no longer parses (%.200s)",
                 ignored.message);
    else {
        pdckpt_value_walk(root, locate, &lc, &ignored);
        if (lc.n_found)
            snprintf(where, sizeof where, "tensor %s%s", lc.names, lc.n_found > 3 ? ", ..." : "");
        else
            snprintf(where, sizeof where, "headers (no tensor data in this block)");
    }
    pdckpt_value_free(root);
    return pdk_fail(err, PDCKPT_ERR_CORRUPT, path, (int64_t)res->offset,
                    "xxh3-128 of bytes [%" PRIu64 ", %" PRIu64 ") is %s, %s%s says %s; in %s",
                    res->offset, res->offset + res->len, res->got, path, PDCKPT_CHECKSUM_SUFFIX,
                    res->want, where);
}

pdckpt_status pdckpt_verify_file(const char *path, const pdckpt_load_options *given,
                                 pdckpt_verify_report *report, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdckpt_load_options opts = PDCKPT_LOAD_OPTIONS_INIT;
    if (given) opts = *given;
    opts.verify = true;
    opts.zero_copy = false;
    pdckpt_verify_report local_report;
    if (!report) report = &local_report;
    memset(report, 0, sizeof *report);
    pdk_sidecar_result sum;
    PDK_TRY(pdk_sidecar_check(path, opts.allocator, &sum, err));
    if (sum.bad) return report_bad_block(path, &opts, &sum, err);
    pdckpt_value *root = NULL;
    PDK_TRY(pdckpt_load_file(path, &opts, &root, &report->format, err));
    report->checksum_checked = sum.checked;
    touch_ctx     tc = {report, 0};
    pdckpt_status st = pdckpt_value_walk(root, touch, &tc, err);
    pdckpt_value_free(root);
    return st;
}
