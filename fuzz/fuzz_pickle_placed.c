/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_pickle_placed.c — differential fuzz target for the placed read of a pickle file
 * (src/formats/pickle/pickle_place.c + src/io/input.c: a scan before the read finds the large
 * payloads, and filler FRAMEs are inserted so each lands aligned), which only a load from a file
 * with require_aligned and without zero_copy takes.  The input is written to a file and loaded so,
 * then loaded from memory (no filler) with the same limits; abort when the two disagree:
 *  - the memory load succeeds and the placed one does not, or they give different trees;
 *  - both fail with different statuses or offsets (the placed error's offset is turned back into
 *    the file's: the filler is not the file's);
 *  - the placed load succeeds where the memory one fails, unless the failure is a FRAME longer
 *    than what is left (filler makes more bytes left: the reader checks a FRAME only against that).
 * Both must also hand back tensors 64-byte aligned.  Errors are expected and fine.
 */
#include "fuzz_files.h"

#include <pdckpt.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir_[64] = "", file_[96] = "";

static void cleanup(void) {
    unlink(file_);
    rmdir(dir_);
}

static const char *work_file(void) {
    if (!dir_[0]) {
        snprintf(dir_, sizeof dir_, "/tmp/pdckpt-fuzz-placed-XXXXXX");
        if (!mkdtemp(dir_)) abort();
        snprintf(file_, sizeof file_, "%s/m.pdparams", dir_);
        atexit(cleanup);
    }
    return file_;
}

static void check_aligned(const pdckpt_value *tree) {
    pdckpt_flat  flat = {0};
    pdckpt_error err = PDCKPT_ERROR_INIT;
    unsigned     flags = PDCKPT_FLATTEN_NESTED | PDCKPT_FLATTEN_SKIP_NON_TENSORS;
    if (pdckpt_value_flatten(tree, flags, &flat, &err) != PDCKPT_OK) return;
    for (size_t i = 0; i < flat.len; i++) {
        pdckpt_tensor_view tv;
        if (pdckpt_tensor_get(flat.entries[i].tensor, &tv) && tv.n_bytes &&
            ((uintptr_t)tv.data & 63))
            abort();
    }
    pdckpt_flat_free(&flat);
}

static void compare(pdckpt_status got_file, const pdckpt_error *ef, const pdckpt_value *tf,
                    pdckpt_status got_mem, const pdckpt_error *em, const pdckpt_value *tm) {
    if (got_mem == PDCKPT_OK && got_file != PDCKPT_OK) abort();
    if (got_mem == PDCKPT_OK) {
        if (!pdckpt_value_equal(tf, tm)) abort();
        check_aligned(tf);
        check_aligned(tm);
        return;
    }
    if (got_file == PDCKPT_OK) {
        if (!strstr(em->message, "frame")) abort();
        return;
    }
    if (ef->status != em->status || ef->offset != em->offset) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0 || size > ((size_t)4 << 20)) return 0;
    const char *path = work_file();
    fuzz_put_file(path, data, size);
    pdckpt_load_options o = PDCKPT_LOAD_OPTIONS_INIT;
    o.format = PDCKPT_FORMAT_PICKLE;
    o.zero_copy = false;
    o.require_aligned = true;
    o.max_alloc_bytes = (uint64_t)64 << 20;
    pdckpt_value *tf = NULL, *tm = NULL;
    pdckpt_error  ef = PDCKPT_ERROR_INIT, em = PDCKPT_ERROR_INIT;
    pdckpt_status got_file = pdckpt_load_file(path, &o, &tf, NULL, &ef);
    pdckpt_status got_mem = pdckpt_load_memory(data, size, &o, &tm, NULL, &em);
    compare(got_file, &ef, tf, got_mem, &em, tm);
    pdckpt_value_free(tf);
    pdckpt_value_free(tm);
    return 0;
}
