/*
 * api_verify.c — full structural verification: load with the extra semantic checks on, from a
 * private read rather than a mapping (an I/O error then surfaces as EIO instead of SIGBUS), and
 * touch every tensor byte.  The format loaders themselves insist that every input byte is
 * accounted for.
 */
#include "../formats/pdk_format.h"

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
    if (!pdckpt_tensor_get(leaf, &v)) return 0;
    tc->report->n_tensors++;
    tc->report->n_data_bytes += v.n_bytes;
    if (v.n_bytes) tc->digest ^= XXH3_64bits(v.data, (size_t)v.n_bytes);
    return 0;
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
    pdckpt_value *root = NULL;
    PDK_TRY(pdckpt_load_file(path, &opts, &root, &report->format, err));
    touch_ctx tc = {report, 0};
    pdckpt_status st = pdckpt_value_walk(root, touch, &tc, err);
    pdckpt_value_free(root);
    return st;
}
