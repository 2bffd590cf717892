/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_pickle_skim.c — differential fuzz target for the pickle skim (src/formats/pickle/
 * pickle_skim.c), what the copy path of a resharded load reads instead of a whole data file.  The
 * input, as a file, is skimmed with every payload of 16 bytes or more left unread; then (abort on
 * any difference) the image holds the input's bytes everywhere but in the payloads skipped, and
 * every tensor the pickle reader finds in the image, read from the file at the offset the image
 * gives, equals the same tensor parsed from the input itself.  The same input is also skimmed as
 * a combined file of tensor streams (src/formats/distcp/dist_skim_stream.c, over the stream
 * format's header walk) and, when the skim follows it, checked the same way against the combined
 * reader.  Errors are expected and fine.
 */
#define _GNU_SOURCE
#include "formats/distcp/pdk_distcp.h"
#include "formats/pickle/pickle_skim.h"

#include <pdckpt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int as_file(const uint8_t *data, size_t size, struct stat *st) {
    int fd = memfd_create("pdckpt-fuzz-skim", MFD_CLOEXEC);
    if (fd < 0) abort();
    for (size_t done = 0; done < size;) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) abort();
        done += (size_t)n;
    }
    if (fstat(fd, st) != 0) abort();
    return fd;
}

/* Outside the skipped payloads, the image is the file. */
static void check_image(const pdk_skim *s, const uint8_t *data) {
    uint64_t at = 0;
    for (size_t h = 0; h <= s->n_holes; h++) {
        uint64_t end = h < s->n_holes ? s->holes[h].at : s->len;
        if (end < at || end > s->len) abort();
        if (memcmp(s->image + at, data + at, (size_t)(end - at)) != 0) abort();
        if (h < s->n_holes) at = s->holes[h].at + s->holes[h].len;
    }
}

static void compare_tensors(const pdk_skim *s, const pdckpt_value *a, const pdckpt_value *b) {
    unsigned     flags = PDCKPT_FLATTEN_NESTED | PDCKPT_FLATTEN_SKIP_NON_TENSORS;
    pdckpt_flat  fa = {0}, fb = {0};
    pdckpt_error err = PDCKPT_ERROR_INIT;
    if (pdckpt_value_flatten(a, flags, &fa, &err) == PDCKPT_OK &&
        pdckpt_value_flatten(b, flags, &fb, &err) == PDCKPT_OK && fa.len == fb.len) {
        for (size_t i = 0; i < fa.len; i++) {
            pdckpt_tensor_view va, vb;
            uint64_t           at;
            if (strcmp(fa.entries[i].name, fb.entries[i].name) != 0 ||
                !pdckpt_tensor_get(fa.entries[i].tensor, &va) ||
                !pdckpt_tensor_get(fb.entries[i].tensor, &vb) || va.n_bytes != vb.n_bytes ||
                !pdk_skim_offset(s, vb.data, vb.n_bytes, &at) || !va.n_bytes)
                continue; /* not the same tensor, or one the reader converted */
            uint8_t *bytes = malloc((size_t)va.n_bytes);
            if (!bytes) abort();
            if (pdk_skim_read(s, bytes, at, (size_t)va.n_bytes, &err) != PDCKPT_OK ||
                memcmp(bytes, va.data, (size_t)va.n_bytes) != 0)
                abort();
            free(bytes);
        }
    }
    pdckpt_flat_free(&fa);
    pdckpt_flat_free(&fb);
}

/* Skims `data` as `format` (the pickle walk or the stream walk), then compares with the reader. */
static void check_skim(const uint8_t *data, size_t size, pdckpt_format format) {
    struct stat   st;
    int           fd = as_file(data, size, &st);
    pdk_skim      s;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    bool          followed = true;
    pdckpt_status got = format == PDCKPT_FORMAT_PICKLE
                            ? pdk_skim_open(fd, &st, "<fuzz>", 16, &s, &err)
                            : pdk_skim_init(fd, &st, "<fuzz>", &s, &err);
    if (got == PDCKPT_OK && format != PDCKPT_FORMAT_PICKLE)
        got = pdk_skim_streams(&s, 16, &followed, &err);
    if (got == PDCKPT_OK && followed) {
        check_image(&s, data);
        pdckpt_load_options o = PDCKPT_LOAD_OPTIONS_INIT;
        o.format = format;
        o.zero_copy = true;
        o.max_alloc_bytes = (uint64_t)64 << 20;
        pdckpt_value *a = NULL, *b = NULL;
        if (pdckpt_load_memory(data, size, &o, &a, NULL, &err) == PDCKPT_OK &&
            pdckpt_load_memory(s.image, s.len, &o, &b, NULL, &err) == PDCKPT_OK)
            compare_tensors(&s, a, b);
        pdckpt_value_free(a);
        pdckpt_value_free(b);
    }
    pdk_skim_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0 || size > ((size_t)16 << 20)) return 0;
    check_skim(data, size, PDCKPT_FORMAT_PICKLE);
    check_skim(data, size, PDCKPT_FORMAT_COMBINED);
    return 0;
}
