/* SPDX-License-Identifier: Apache-2.0 */
/*
 * options.c — the one place where a caller's load or save options become the options a call
 * uses: NULL means the defaults, `struct_size` says how much of the struct the caller's header
 * knew (0: this header's), and the limits that 0 leaves to the library get their values.  A
 * caller built against an older header passes a shorter struct: its fields are taken and the
 * newer ones keep their defaults.  A newer header's longer struct is taken only when every field
 * this library does not know is zero (as Linux's copy_struct_from_user), since it cannot honour
 * options it has never heard of.
 */
#include "pdk_core.h"

#include <stddef.h>
#include <string.h>

static pdckpt_status take(void *out, size_t out_size, const void *given, size_t given_size,
                          const char *what, pdckpt_error *err) {
    if (given_size == 0) given_size = out_size;
    if (given_size < sizeof(uint32_t) + sizeof(void *))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "%s: struct_size %zu is too small (initialise the options with "
                        "PDCKPT_%s_INIT)",
                        what, given_size, what[0] == 'l' ? "LOAD_OPTIONS" : "SAVE_OPTIONS");
    const unsigned char *extra = (const unsigned char *)given + out_size;
    for (size_t i = 0; given_size > out_size && i < given_size - out_size; i++)
        if (extra[i])
            return pdk_fail(err, PDCKPT_ERR_UNSUPPORTED, NULL, -1,
                            "%s from a newer pdckpt (%zu bytes; this library knows %zu) set an "
                            "option this library does not have",
                            what, given_size, out_size);
    memcpy(out, given, given_size < out_size ? given_size : out_size);
    return PDCKPT_OK;
}

pdckpt_status pdk_load_options_take(const pdckpt_load_options *given, pdckpt_load_options *out,
                                    pdckpt_error *err) {
    static const pdckpt_load_options defaults = PDCKPT_LOAD_OPTIONS_INIT;
    *out = defaults;
    if (given) PDK_TRY(take(out, sizeof *out, given, given->struct_size, "load_options", err));
    out->struct_size = sizeof *out;
    if (out->max_depth == 0) out->max_depth = 200;
    if (out->max_memo == 0) out->max_memo = 1u << 24;
    return PDCKPT_OK;
}

pdckpt_status pdk_save_options_take(const pdckpt_save_options *given, pdckpt_save_options *out,
                                    pdckpt_error *err) {
    static const pdckpt_save_options defaults = PDCKPT_SAVE_OPTIONS_INIT;
    *out = defaults;
    if (given) PDK_TRY(take(out, sizeof *out, given, given->struct_size, "save_options", err));
    out->struct_size = sizeof *out;
    return PDCKPT_OK;
}

pdckpt_load_options pdckpt_load_options_default(void) {
    static const pdckpt_load_options defaults = PDCKPT_LOAD_OPTIONS_INIT;
    return defaults;
}

pdckpt_save_options pdckpt_save_options_default(void) {
    static const pdckpt_save_options defaults = PDCKPT_SAVE_OPTIONS_INIT;
    return defaults;
}
