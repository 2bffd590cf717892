/* SPDX-License-Identifier: Apache-2.0 */
/*
 * static_tool.c — a test helper that exposes the in-memory static API to the Paddle interop tests
 * (tests/py/test_programs.py), which have no other way to call it:
 *   pdckpt_static_tool serialize PROGRAM STATE OUT        pdckpt_serialize_persistables -> OUT
 *   pdckpt_static_tool deserialize PROGRAM IN OUT         pdckpt_deserialize_persistables(IN
 *                                                         read into memory) -> OUT (safetensors)
 * STATE is any file pdckpt loads (e.g. safetensors).  Exit 0 on success, 1 with the error.
 */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const pdckpt_error *err) {
    char line[1200];
    fprintf(stderr, "pdckpt_static_tool: %s\n", pdckpt_error_format(err, line, sizeof line));
    return 1;
}

static int serialize(const pdckpt_program *p, const char *state_path, const char *out) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *state = NULL;
    if (pdckpt_load_file(state_path, NULL, &state, NULL, &err) != PDCKPT_OK) return fail(&err);
    void         *data = NULL;
    size_t        len = 0;
    pdckpt_status st = pdckpt_serialize_persistables(p, state, NULL, &data, &len, &err);
    pdckpt_value_free(state);
    if (st != PDCKPT_OK) return fail(&err);
    int rc = tu_write_file(out, data, len) == 0 ? 0 : 1;
    pdckpt_free(NULL, data, len);
    return rc;
}

static int deserialize(const pdckpt_program *p, const char *in, const char *out) {
    size_t len = 0;
    void  *data = tu_read_file(in, &len);
    if (!data) return 1;
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    pdckpt_value       *state = NULL;
    pdckpt_status       st = pdckpt_deserialize_persistables(p, data, len, NULL, &state, &err);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_SAFETENSORS;
    if (st == PDCKPT_OK) st = pdckpt_save_file(state, out, &so, &err);
    pdckpt_value_free(state);
    free(data);
    return st == PDCKPT_OK ? 0 : fail(&err);
}

int main(int argc, char **argv) {
    if (argc != 5 || (strcmp(argv[1], "serialize") != 0 && strcmp(argv[1], "deserialize") != 0)) {
        fprintf(stderr, "usage: pdckpt_static_tool serialize|deserialize PROGRAM IN OUT\n");
        return 2;
    }
    pdckpt_error    err = PDCKPT_ERROR_INIT;
    pdckpt_program *p = NULL;
    if (pdckpt_program_load_file(argv[2], NULL, &p, &err) != PDCKPT_OK) return fail(&err);
    int rc = strcmp(argv[1], "serialize") == 0 ? serialize(p, argv[3], argv[4])
                                               : deserialize(p, argv[3], argv[4]);
    pdckpt_program_free(p);
    return rc;
}
