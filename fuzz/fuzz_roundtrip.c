/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_roundtrip.c — load (any format) -> save (the same format, to memory) -> load -> save ->
 * load.  Saving normalises once (combined files sort by name, safetensors by dtype and name, a
 * pickled state dict gains Paddle's name table), so the property is a fixed point: the second
 * and third trees are equal and the two saves wrote the same bytes.  A single tensor stream has
 * nothing to normalise, so there the first tree must already come back.  Any breach aborts,
 * which the fuzzer reports as a crash.
 */
#include <pdckpt.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct saved {
    void  *bytes;
    size_t len;
} saved;

/* Saves `tree` in `format` and loads it back; false when the save refuses the tree. */
static bool save_and_reload(const pdckpt_value *tree, pdckpt_format format, saved *out,
                            pdckpt_value **reloaded) {
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = format;
    if (pdckpt_save_memory(tree, &so, &out->bytes, &out->len, &err) != PDCKPT_OK) return false;
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.format = format;
    if (pdckpt_load_memory(out->bytes, out->len, &lo, reloaded, NULL, &err) != PDCKPT_OK) abort();
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pdckpt_value *first = NULL, *second = NULL, *third = NULL;
    pdckpt_format format = PDCKPT_FORMAT_AUTO;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    if (pdckpt_load_memory(data, size, NULL, &first, &format, &err) != PDCKPT_OK) return 0;
    saved a = {0}, b = {0};
    if (save_and_reload(first, format, &a, &second)) {
        if (format == PDCKPT_FORMAT_TENSOR && !pdckpt_value_equal(first, second)) abort();
        if (!save_and_reload(second, format, &b, &third)) abort(); /* it saved the first time */
        if (!pdckpt_value_equal(second, third)) abort();
        if (a.len != b.len || memcmp(a.bytes, b.bytes, a.len) != 0) abort();
        pdckpt_value_free(second);
        pdckpt_value_free(third);
        pdckpt_free(NULL, a.bytes, a.len);
        pdckpt_free(NULL, b.bytes, b.len);
    }
    pdckpt_value_free(first);
    return 0;
}
