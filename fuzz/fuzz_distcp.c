/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_distcp.c — fuzz target for the sharded checkpoint directory reached the way every caller
 * reaches it: through the registry (pdckpt_load_file on a directory: detection, then the distcp
 * descriptor's whole-state load: metadata pickle, piece index, data file, box copies).  Input:
 * u32 little-endian length N, N bytes written as "0.metadata", the rest as the data file
 * "0_0.distcp"; an empty rest writes no data file.
 */
#include "fuzz_files.h"

#include <pdckpt.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir_[64] = "";

static void put(const char *dir, const char *name, const uint8_t *bytes, size_t len);

static void cleanup(void) {
    put(dir_, "0.metadata", NULL, 0);
    put(dir_, "0_0.distcp", NULL, 0);
    rmdir(dir_);
}

static const char *work_dir(void) {
    if (!dir_[0]) {
        snprintf(dir_, sizeof dir_, "/tmp/pdckpt-fuzz-distcp-XXXXXX");
        if (!mkdtemp(dir_)) abort();
        atexit(cleanup);
    }
    return dir_;
}

static void put(const char *dir, const char *name, const uint8_t *bytes, size_t len) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!bytes) {
        unlink(path);
        return;
    }
    fuzz_put_file(path, bytes, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    size_t n =
        (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 | (size_t)data[3] << 24;
    if (n > size - 4) n = size - 4;
    const char *dir = work_dir();
    put(dir, "0.metadata", data + 4, n);
    put(dir, "0_0.distcp", size - 4 - n ? data + 4 + n : NULL, size - 4 - n);
    pdckpt_value *out = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_format format = PDCKPT_FORMAT_AUTO;
    if (pdckpt_load_file(dir, NULL, &out, &format, &err) == PDCKPT_OK) {
        if (format != PDCKPT_FORMAT_DISTCP) abort(); /* the registry must pick the format */
        pdckpt_value_free(out);
    }
    return 0;
}
