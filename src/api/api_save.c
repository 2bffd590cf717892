/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_save.c — public save entry points: argument checks, then the save the formats layer runs
 * (src/formats/format_io.c: files through the atomic sink, directories through a directory
 * transaction, memory and caller sinks through the same writers; the format from the options or
 * the target's name).  And pdckpt_parse_size, the size syntax of max_shard_size.
 */
#include "../formats/pdk_format.h"

#include <string.h>

pdckpt_status pdckpt_save_file(const pdckpt_value *root, const char *path,
                               const pdckpt_save_options *given, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!path) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "path is NULL");
    return pdk_save_path(root, path, given, err);
}

pdckpt_status pdckpt_save_memory(const pdckpt_value *root, const pdckpt_save_options *given,
                                 void **out_data, size_t *out_len, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!out_data || !out_len)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, "<memory>", -1, "out is NULL");
    return pdk_save_bytes(root, given, out_data, out_len, err);
}

pdckpt_status pdckpt_save_sink(const pdckpt_value *root, const pdckpt_sink_ops *ops, void *self,
                               const pdckpt_save_options *given, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    return pdk_save_callback(root, ops, self, given, err);
}

/* Digits with an optional fraction, as a double the way Python's float() rounds it (an exact
 * integer mantissa divided by an exact power of ten); *exact keeps integers exact. */
static const char *parse_number(const char *s, double *value, uint64_t *exact, bool *integral) {
    uint64_t mant = 0;
    int      digits = 0, frac = 0;
    bool     dot = false;
    for (; (*s >= '0' && *s <= '9') || (*s == '.' && !dot); s++) {
        if (*s == '.') {
            dot = true;
            continue;
        }
        if (digits >= 18) return NULL;
        mant = mant * 10 + (uint64_t)(*s - '0');
        digits++;
        frac += dot;
    }
    if (digits == 0) return NULL;
    double scale = 1;
    for (int i = 0; i < frac; i++) scale *= 10;
    *value = (double)mant / scale;
    *exact = mant;
    *integral = frac == 0;
    return s;
}

pdckpt_status pdckpt_parse_size(const char *text, uint64_t *out, pdckpt_error *err) {
    static const struct {
        const char *unit;
        uint64_t    mult;
    } units[] = {{"", 1},
                 {"B", 1},
                 {"KB", 1000ull},
                 {"MB", 1000000ull},
                 {"GB", 1000000000ull},
                 {"TB", 1000000000000ull},
                 {"KIB", 1ull << 10},
                 {"MIB", 1ull << 20},
                 {"GIB", 1ull << 30},
                 {"TIB", 1ull << 40}};
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!text || !out) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "text/out is NULL");
    const char *s = text + strspn(text, " \t");
    double      value;
    uint64_t    exact;
    bool        integral;
    char        unit[8] = "";
    size_t      n = 0;
    if ((s = parse_number(s, &value, &exact, &integral)) != NULL) {
        s += strspn(s, " \t");
        while (*s && *s != ' ' && *s != '\t' && n < sizeof unit - 1)
            unit[n++] = (char)(*s >= 'a' && *s <= 'z' ? *s - 32 : *s), s++;
        unit[n] = '\0';
        s += strspn(s, " \t");
    }
    for (size_t i = 0; s && *s == '\0' && i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(unit, units[i].unit) != 0) continue;
        double bytes = value * (double)units[i].mult; /* huggingface_hub: int(float * unit) */
        if (integral && exact <= UINT64_MAX / units[i].mult)
            bytes = (double)(exact * units[i].mult);
        if (bytes >= 1 && bytes < 9223372036854775808.0) {
            *out = integral && exact <= UINT64_MAX / units[i].mult ? exact * units[i].mult
                                                                   : (uint64_t)bytes;
            return PDCKPT_OK;
        }
        break;
    }
    return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                    "expected a size such as 5GB, 500MB, 2GiB or 1000000 (bytes, at least 1), "
                    "found '%s'",
                    text);
}
