/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_pickle.c — fuzz target for the pickle reader (spec pickle-and-distributed-formats.md §1):
 * the input is loaded as a pickle with default options, with small limits (depth, memo, memory),
 * without zero-copy and in verify mode, and by auto-detection; every value of a successful load
 * is touched (tensor bytes, strings, object parts).  Any crash, leak or sanitizer report is a bug;
 * errors are expected and fine.
 */
#include <pdckpt.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Where the touched bytes' sum goes, so the compiler keeps the reads. */
volatile unsigned fuzz_pickle_sink;

static void touch(const pdckpt_value *v, unsigned *sum, int depth);

static void touch_object(const pdckpt_value *v, unsigned *sum, int depth) {
    const char *m = pdckpt_object_module(v), *n = pdckpt_object_name(v);
    for (; m && *m; m++) *sum += (unsigned char)*m;
    for (; n && *n; n++) *sum += (unsigned char)*n;
    touch(pdckpt_object_args(v), sum, depth + 1);
    touch(pdckpt_object_state(v), sum, depth + 1);
    touch(pdckpt_object_items(v), sum, depth + 1);
}

/* Reads every byte a caller could read (ASan flags anything out of bounds or freed). */
static void touch(const pdckpt_value *v, unsigned *sum, int depth) {
    if (!v || depth > 300) return;
    pdckpt_tensor_view   tv;
    size_t               len = 0;
    const char          *s = pdckpt_value_get_string(v, &len);
    const unsigned char *b = pdckpt_value_get_bytes(v, &len);
    if (s) b = (const unsigned char *)s;
    for (size_t i = 0; b && i < len; i++) *sum += b[i];
    if (pdckpt_tensor_get(v, &tv)) {
        for (uint64_t i = 0; i < tv.n_bytes; i++) *sum += ((const unsigned char *)tv.data)[i];
        for (const char *n = tv.name; n && *n; n++) *sum += (unsigned char)*n;
    }
    if (pdckpt_value_kind(v) == PDCKPT_KIND_OBJECT) touch_object(v, sum, depth);
    for (size_t i = 0; i < pdckpt_value_len(v); i++) {
        touch(pdckpt_dict_key_at(v, i), sum, depth + 1);
        touch(pdckpt_value_at(v, i), sum, depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int i = 0; i < 4; i++) {
        pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
        lo.format = i == 3 ? PDCKPT_FORMAT_AUTO : PDCKPT_FORMAT_PICKLE;
        if (i == 1) {
            lo.max_depth = 8;
            lo.max_memo = 16;
            lo.max_alloc_bytes = 1 << 16;
        }
        if (i == 2) {
            lo.zero_copy = false;
            lo.verify = true;
            lo.require_aligned = true;
        }
        pdckpt_value *out = NULL;
        pdckpt_error  err = PDCKPT_ERROR_INIT;
        if (pdckpt_load_memory(data, size, &lo, &out, NULL, &err) == PDCKPT_OK) {
            unsigned sum = 0;
            touch(out, &sum, 0);
            fuzz_pickle_sink = sum;
            pdckpt_value_free(out);
        }
    }
    return 0;
}
