/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_pir_json.c — fuzz target for the Paddle 3 PIR JSON program reader: the input is read as a
 * PIR program (every accessor walked) and loaded as the `pir-json` value tree.  Errors are
 * expected; crashes, leaks and sanitizer reports are bugs.
 */
#include <pdckpt.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.format = PDCKPT_FORMAT_PIR_JSON;
    pdckpt_program *p = NULL;
    if (pdckpt_program_load_memory(data, size, &lo, &p, NULL) == PDCKPT_OK) {
        for (size_t i = 0; i < pdckpt_program_n_vars(p); i++) {
            pdckpt_program_var v;
            pdckpt_program_var_at(p, i, &v);
        }
        size_t             n;
        const char *const *names = pdckpt_program_persistables(p, &n);
        for (size_t i = 0; i < n; i++) {
            pdckpt_program_var v;
            pdckpt_program_find_var(p, names[i], &v);
        }
        pdckpt_program_feeds(p, &n);
        pdckpt_program_fetches(p, &n);
        pdckpt_program_free(p);
    }
    pdckpt_value *tree = NULL;
    if (pdckpt_load_memory(data, size, &lo, &tree, NULL, NULL) == PDCKPT_OK)
        pdckpt_value_free(tree);
    return 0;
}
