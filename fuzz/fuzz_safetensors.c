/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_safetensors.c — fuzz target for the safetensors header parser and range checks.
 */
#include <pdckpt.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.format = PDCKPT_FORMAT_SAFETENSORS;
    pdckpt_value *out = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    if (pdckpt_load_memory(data, size, &lo, &out, NULL, &err) == PDCKPT_OK) pdckpt_value_free(out);
    return 0;
}
