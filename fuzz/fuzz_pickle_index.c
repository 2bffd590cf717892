/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_pickle_index.c — fuzz target for the lazy-open index ("<pickle>.pdkidx",
 * src/formats/pickle/pickle_index.c): the decoder of a sidecar file anyone can plant beside a
 * pickle.  A real sidecar is only believed when its header's stamp and body hash match, which no
 * mutation would find, so most inputs are sealed here first (as a planted file can be: the
 * hashes are not secret).  Input: byte 0 picks the mode, bytes 1-3 (little-endian) split the
 * rest into the pickle the index describes and the index bytes.
 *   mode 0: the index bytes as a whole file, header and all (the checks on the header);
 *   mode 1: the index bytes as a body, sealed for the pickle (the value decoder, with the
 *           default budget and with small limits);
 *   mode 2: the pickle part parsed, its index encoded and decoded again: the two trees must be
 *           equal (the index holds exactly what a parse gives).
 *   mode 3: the index bytes as a body, sealed, opened entry by entry (pdckpt_lazy_*'s checks:
 *           the entry table at the open, each key and value as it is made, payloads included).
 * Every value of a decoded tree is touched, so ASan sees any pointer outside the pickle.
 */
#include "formats/pickle/pickle.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

volatile unsigned fuzz_pickle_index_sink;

static void touch(const pdckpt_value *v, int depth) {
    pdckpt_tensor_view tv;
    size_t             len = 0;
    const char        *s = pdckpt_value_get_string(v, &len);
    unsigned           sum = 0;
    for (size_t i = 0; s && i < len; i++) sum += (unsigned char)s[i];
    if (pdckpt_tensor_get(v, &tv)) {
        for (uint64_t i = 0; i < tv.n_bytes; i++) sum += ((const unsigned char *)tv.data)[i];
        for (const char *n = tv.name; n && *n; n++) sum += (unsigned char)*n;
    }
    fuzz_pickle_index_sink += sum;
    for (size_t i = 0; depth < 300 && i < pdckpt_value_len(v); i++) {
        if (pdckpt_value_kind(v) == PDCKPT_KIND_DICT) touch(pdckpt_dict_key_at(v, i), depth + 1);
        touch(pdckpt_value_at(v, i), depth + 1);
    }
}

static void decode(const uint8_t *idx, size_t len, const pdk_input *in, const struct stat *st,
                   const pdckpt_load_options *lo) {
    pdckpt_value *tree = NULL;
    if (pdk_pickle_index_decode(idx, len, in, st, lo, &tree)) touch(tree, 0);
    pdckpt_value_free(tree);
}

/* The body sealed for the pickle, decoded with the default limits and with small ones. */
static void sealed(const uint8_t *body, size_t n, const pdk_input *in, const struct stat *st) {
    uint8_t *idx = malloc(PDK_PICKLE_INDEX_HEADER + n);
    if (!idx) return;
    memcpy(idx + PDK_PICKLE_INDEX_HEADER, body, n);
    pdk_pickle_index_seal(idx, PDK_PICKLE_INDEX_HEADER + n, in, st, n & 1);
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    decode(idx, PDK_PICKLE_INDEX_HEADER + n, in, st, &lo);
    lo.max_depth = 4;
    lo.max_alloc_bytes = 1 << 12;
    lo.max_tensor_bytes = 64;
    decode(idx, PDK_PICKLE_INDEX_HEADER + n, in, st, &lo);
    free(idx);
}

/* The body sealed for the pickle, opened entry by entry: every key text, key and value made
 * (or refused), with the default limits. */
static void lazy(const uint8_t *body, size_t n, const pdk_input *in, const struct stat *st) {
    uint8_t *idx = malloc(PDK_PICKLE_INDEX_HEADER + n);
    if (!idx) return;
    memcpy(idx + PDK_PICKLE_INDEX_HEADER, body, n);
    pdk_pickle_index_seal(idx, PDK_PICKLE_INDEX_HEADER + n, in, st, n & 1);
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT_WITH(true);
    pdk_pickle_lazy    *l = pdk_pickle_lazy_decode(idx, PDK_PICKLE_INDEX_HEADER + n, in, st, &lo);
    for (size_t i = 0; l && i < pdk_pickle_lazy_len(l) && i < 4096; i++) {
        pdckpt_error  err = PDCKPT_ERROR_INIT;
        pdckpt_value *v = NULL;
        size_t        len = 0;
        const char   *s = pdk_pickle_lazy_key_text(l, i, &len);
        for (size_t j = 0; s && j < len; j++) fuzz_pickle_index_sink += (unsigned char)s[j];
        for (int key = 0; key < 2; key++) {
            if (pdk_pickle_lazy_get(l, i, key, &v, &err) == PDCKPT_OK)
                touch(v, 0);
            else if (err.status != PDCKPT_ERR_CORRUPT && err.status != PDCKPT_ERR_NOMEM)
                abort();
            pdckpt_value_free(v);
        }
    }
    pdk_pickle_lazy_close(l);
    free(idx);
}

/* Parse and index of the same pickle must agree. */
static void round_trip(const pdk_input *in, const struct stat *st) {
    uint8_t            *idx = NULL;
    size_t              len = 0, cap = 0;
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    pdckpt_value       *parsed = NULL, *indexed = NULL;
    lo.format = PDCKPT_FORMAT_PICKLE;
    if (!pdk_pickle_index_encode(in, st, NULL, &idx, &len, &cap)) return;
    if (pdckpt_load_memory(in->data, in->len, &lo, &parsed, NULL, NULL) != PDCKPT_OK) abort();
    if (!pdk_pickle_index_decode(idx, len, in, st, &lo, &indexed)) abort();
    if (!pdckpt_value_equal(parsed, indexed)) abort();
    touch(indexed, 0);
    pdckpt_value_free(parsed);
    pdckpt_value_free(indexed);
    pdk_free(NULL, idx, cap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    size_t split = (size_t)data[1] | (size_t)data[2] << 8 | (size_t)data[3] << 16;
    if (split > size - 4) split = size - 4;
    const uint8_t *pickle = data + 4, *rest = pickle + split;
    size_t         n_rest = size - 4 - split;
    pdk_input      in;
    struct stat    st;
    memset(&st, 0, sizeof st);
    st.st_size = (off_t)split;
    st.st_ino = 7; /* any stamp: the seal copies it */
    pdk_input_from_memory(pickle, split, true, &in);
    switch (data[0] % 4) {
    case 0: {
        pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
        decode(rest, n_rest, &in, &st, &lo);
        break;
    }
    case 1: sealed(rest, n_rest, &in, &st); break;
    case 3: lazy(rest, n_rest, &in, &st); break;
    default: round_trip(&in, &st); break;
    }
    return 0;
}
