/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_program.c — fuzz target for the ProgramDesc reader (wire validation, protobuf-c unpack,
 * the selection rule), the program-named combined loader and the .pdiparams.info decoder.  The
 * input is read as a program (every accessor walked, then the input itself loaded as the
 * program's parameters), as a combined file named by a fixed program, and as a .info pickle.
 * Errors are expected; crashes, leaks and sanitizer reports are bugs.
 */
#include "formats/pdk_program.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fixed program (PIR JSON, readable here): a float32 [2] and an int64 [-1] parameter. */
static const char fixed_program[] =
    "{\"base_code\":{\"magic\":\"pir\",\"version\":1},\"program\":{\"regions\":[{\"blocks\":[{"
    "\"ops\":[{\"#\":\"p\",\"A\":[0,1,1,\"b\"],\"O\":{\"%\":1,\"TT\":{\"#\":\"0.t_dtensor\","
    "\"D\":[{\"#\":\"0.t_i64\"},[-1],\"NCHW\",[],0]}}},{\"#\":\"p\",\"A\":[0,1,1,\"a\"],"
    "\"O\":{\"%\":2,\"TT\":{\"#\":\"0.t_dtensor\",\"D\":[{\"#\":\"0.t_f32\"},[2],\"NCHW\",[],0]}}}"
    "]}]}]}}";

static void walk(const pdckpt_program *p) {
    for (size_t i = 0; i < pdckpt_program_n_vars(p); i++) {
        pdckpt_program_var v;
        pdckpt_program_var_at(p, i, &v);
        pdckpt_program_find_var(p, v.name, &v);
    }
    size_t n;
    pdckpt_program_persistables(p, &n);
    pdckpt_program_feeds(p, &n);
    pdckpt_program_fetches(p, &n);
}

static void as_params(const pdckpt_program *p, const uint8_t *data, size_t size) {
    pdckpt_value *out = NULL;
    if (pdckpt_deserialize_persistables(p, data, size, NULL, &out, NULL) == PDCKPT_OK)
        pdckpt_value_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.format = PDCKPT_FORMAT_PROGRAM;
    pdckpt_program *p = NULL;
    if (pdckpt_program_load_memory(data, size, &lo, &p, NULL) == PDCKPT_OK) {
        walk(p);
        as_params(p, data, size);
        pdckpt_program_free(p);
    }
    pdckpt_value *tree = NULL;
    if (pdckpt_load_memory(data, size, &lo, &tree, NULL, NULL) == PDCKPT_OK)
        pdckpt_value_free(tree);
    if (pdckpt_program_load_memory(fixed_program, sizeof fixed_program - 1, NULL, &p, NULL) ==
        PDCKPT_OK) {
        as_params(p, data, size);
        pdckpt_program_free(p);
    }
    pdk_input in;
    pdk_input_from_memory(data, size, false, &in);
    pdckpt_load_options io = PDCKPT_LOAD_OPTIONS_INIT;
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    if (pdk_params_info_parse(&in, &io, &tree, &err) == PDCKPT_OK) pdckpt_value_free(tree);
    return 0;
}
