/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_binary.c — fuzz target for the binary readers: the input is loaded as a tensor stream, as
 * a combined file (with and without a name list) and by auto-detection.  Any crash, leak or
 * sanitizer report is a bug; errors are expected and fine.
 */
#include <pdckpt.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const names[] = {"a", "b"};
    const pdckpt_format      formats[] = {PDCKPT_FORMAT_TENSOR, PDCKPT_FORMAT_COMBINED,
                                          PDCKPT_FORMAT_COMBINED, PDCKPT_FORMAT_AUTO};
    for (int i = 0; i < 4; i++) {
        pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
        lo.format = formats[i];
        lo.verify = (i & 1) != 0;
        if (i == 2) {
            lo.names = names;
            lo.n_names = 2;
        }
        pdckpt_value *out = NULL;
        pdckpt_error  err = PDCKPT_ERROR_INIT;
        if (pdckpt_load_memory(data, size, &lo, &out, NULL, &err) == PDCKPT_OK)
            pdckpt_value_free(out);
    }
    return 0;
}
