/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_lazy.c — pdckpt_lazy_*: a pdckpt-written pickle opened through its index, entries made on
 * access (issue 18).  The index and its trust rules are src/formats/pickle/pickle_index.c's.
 */
#include "../formats/pickle/pickle.h"

#include <string.h>
#include <sys/stat.h>

pdckpt_status pdckpt_lazy_open(const char *path, const pdckpt_load_options *given,
                               pdckpt_lazy **out, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!out) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1, "out is NULL");
    *out = NULL;
    if (!path) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "path is NULL");
    pdckpt_load_options opts;
    PDK_TRY(pdk_load_options_take(given, &opts, err));
    struct stat st;
    if (opts.verify || opts.names || opts.program_path || opts.progress ||
        (opts.format != PDCKPT_FORMAT_AUTO && opts.format != PDCKPT_FORMAT_PICKLE) ||
        stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return PDCKPT_OK; /* nothing to open lazily: the caller loads */
    opts.zero_copy = true;
    *out = pdk_pickle_lazy_open(path, &st, &opts);
    return PDCKPT_OK;
}

size_t pdckpt_lazy_len(const pdckpt_lazy *lazy) {
    return lazy ? pdk_pickle_lazy_len(lazy) : 0;
}

pdckpt_kind pdckpt_lazy_kind(const pdckpt_lazy *lazy) {
    return lazy ? pdk_pickle_lazy_kind(lazy) : PDCKPT_KIND_NONE;
}

const char *pdckpt_lazy_key_text(const pdckpt_lazy *lazy, size_t i, size_t *len) {
    size_t      n = 0;
    const char *s = lazy ? pdk_pickle_lazy_key_text(lazy, i, &n) : NULL;
    if (len) *len = s ? n : 0;
    return s;
}

/* Entry i's key or value, made now; each entry is checked as it is made (pickle_index.c). */
static pdckpt_status lazy_entry(const pdckpt_lazy *lazy, size_t i, bool key, pdckpt_value **out,
                                pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!out) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "out is NULL");
    *out = NULL;
    if (!lazy) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "no entry %zu (0 entries)", i);
    return pdk_pickle_lazy_get(lazy, i, key, out, err);
}

pdckpt_status pdckpt_lazy_key(const pdckpt_lazy *lazy, size_t i, pdckpt_value **out,
                              pdckpt_error *err) {
    return lazy_entry(lazy, i, true, out, err);
}

pdckpt_status pdckpt_lazy_get(const pdckpt_lazy *lazy, size_t i, pdckpt_value **out,
                              pdckpt_error *err) {
    return lazy_entry(lazy, i, false, out, err);
}

void pdckpt_lazy_close(pdckpt_lazy *lazy) {
    pdk_pickle_lazy_close(lazy);
}
