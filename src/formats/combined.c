/* SPDX-License-Identifier: Apache-2.0 */
/*
 * combined.c — concatenated tensor streams: save_combine files, __params__, .pdiparams and the
 * seeds' save-to-memory bytes (spec binary-and-static-formats.md §3).  Nothing in the file says
 * how many tensors it holds or what they are called: given an ordered name list the file must
 * hold exactly those and end right after the last; without one, tensors are read to EOF and
 * named by index.  Dicts are written in byte-wise ascending name order, as every Paddle caller
 * passes them.
 */
#include "pdk_format.h"

#include <string.h>

static int combined_sniff(const pdk_input *in) {
    pdk_stream_probe p;
    pdk_stream_probe_init(&p, in);
    size_t count = 0;
    while (pdk_cur_left(&p.cur) > 0) {
        if (!pdk_stream_probe_next(&p, pdk_tensor_stream_read))
            return count >= 1 ? PDK_SNIFF_LIKELY : PDK_SNIFF_NO;
        count++;
    }
    /* One stream exactly is the `tensor` format's (it scores just below certain). */
    return count >= 2 ? PDK_SNIFF_CERTAIN : count == 1 ? PDK_SNIFF_LIKELY : PDK_SNIFF_NO;
}

static pdckpt_status load_named(pdk_cursor *cur, const pdk_input *in,
                                const pdckpt_load_options *opts, pdckpt_value *dict) {
    for (size_t i = 0; i < opts->n_names; i++) {
        const char *name = opts->names[i];
        if (pdckpt_dict_get(dict, name)) /* a second tensor would silently replace the first */
            return pdk_fail(cur->err, PDCKPT_ERR_ARGUMENT, in->name, -1,
                            "duplicate variable name '%s' in the name list (entry %zu)", name, i);
        if (pdk_cur_left(cur) == 0)
            return pdk_cur_fail(cur, "expected %zu tensors, found %zu: the file ends before '%s'",
                                opts->n_names, i, name);
        pdckpt_value *t = NULL;
        pdckpt_status st = pdk_tensor_stream_read(cur, in, opts, &t);
        if (st == PDCKPT_OK) st = pdckpt_tensor_set_name(t, name, cur->err);
        if (st == PDCKPT_OK)
            st = pdckpt_dict_set(dict, name, t, cur->err);
        else
            pdckpt_value_free(t);
        if (st != PDCKPT_OK) {
            pdk_error_prefix(cur->err, "tensor %zu '%s': ", i, name);
            return st;
        }
    }
    if (pdk_cur_left(cur) > 0)
        return pdk_cur_fail(cur, "expected end of file after %zu tensors, found %zu more bytes",
                            opts->n_names, pdk_cur_left(cur));
    return PDCKPT_OK;
}

static pdckpt_status load_unnamed(pdk_cursor *cur, const pdk_input *in,
                                  const pdckpt_load_options *opts, pdckpt_value *list) {
    if (pdk_cur_left(cur) == 0)
        return pdk_cur_fail(cur, "expected at least one tensor, found an empty file");
    for (size_t i = 0; pdk_cur_left(cur) > 0; i++) {
        pdckpt_value *t = NULL;
        pdckpt_status st = pdk_tensor_stream_read(cur, in, opts, &t);
        if (st == PDCKPT_OK) st = pdckpt_value_append(list, t, cur->err);
        if (st != PDCKPT_OK) {
            pdk_error_prefix(cur->err, "tensor %zu: ", i);
            return st;
        }
        if (opts->progress && opts->progress(opts->progress_ctx, cur->pos, cur->len))
            return pdk_fail(cur->err, PDCKPT_ERR_ARGUMENT, in->name, -1, "cancelled");
    }
    return PDCKPT_OK;
}

static pdckpt_status combined_load(const pdk_input *in, const pdckpt_load_options *opts,
                                   pdckpt_value **out, pdckpt_error *err) {
    bool          named = opts->names != NULL;
    pdckpt_value *root =
        pdckpt_value_new_container(opts->allocator, named ? PDCKPT_KIND_DICT : PDCKPT_KIND_LIST);
    if (!root) return pdk_fail_nomem(err, "combined root");
    pdk_cursor cur;
    pdk_cur_init(&cur, in->data, in->len, in->name, err);
    pdckpt_status st =
        named ? load_named(&cur, in, opts, root) : load_unnamed(&cur, in, opts, root);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(root);
        return st;
    }
    *out = root;
    return PDCKPT_OK;
}

static pdckpt_status combined_save(const pdckpt_value *root, pdk_sink *sink,
                                   const pdckpt_save_options *opts, pdckpt_error *err) {
    pdk_flat_list flat;
    PDK_TRY(pdk_flat_collect(root, opts, NULL, &flat, err));
    if (!flat.from_list) pdk_flat_sort_by_name(&flat);
    pdckpt_status st = PDCKPT_OK;
    if (flat.len == 0)
        st = pdk_fail(err, PDCKPT_ERR_ARGUMENT, sink->name, -1,
                      "a combined file needs at least one tensor, found none");
    for (size_t i = 0; i < flat.len && st == PDCKPT_OK; i++) {
        st = pdk_tensor_stream_write(sink, flat.entries[i].tensor, err);
        if (st != PDCKPT_OK) pdk_error_prefix(err, "tensor '%s': ", flat.entries[i].name);
    }
    pdk_flat_free(&flat);
    return st;
}

const pdk_format pdk_format_combined = {
    .id = PDCKPT_FORMAT_COMBINED,
    .name = "combined",
    .suffixes =
        (const char *const[]){PDK_NAME_PDIPARAMS, PDK_NAME_PARAMS_1X, PDK_NAME_VARS_1X, NULL},
    .locate = pdk_locate_params, /* X for a lone X.pdiparams (resolve.c) */
    .sniff = combined_sniff,
    .load = combined_load,
    .save = combined_save,
};
