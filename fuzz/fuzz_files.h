/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_files.h — the one way the fuzz targets that load from disk put an input there.  A
 * harness must not fail quietly: a file it cannot write would fuzz nothing, so it aborts.
 */
#ifndef PDCKPT_FUZZ_FILES_H
#define PDCKPT_FUZZ_FILES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Writes `len` bytes to `path` (an empty file for len 0). */
static inline void fuzz_put_file(const char *path, const uint8_t *bytes, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (len && fwrite(bytes, 1, len, f) != len) abort();
    if (fclose(f) != 0) abort();
}

#endif
