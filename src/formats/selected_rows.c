/* SPDX-License-Identifier: Apache-2.0 */
/*
 * selected_rows.c — Paddle's SelectedRows stream (spec binary-and-static-formats.md §2.1):
 * u32 version 0, u64 row count R, R x int64 rows, int64 height, then an inner tensor stream
 * (version, TensorDesc, data; no LoD header).  Nothing in the bytes tells it from a tensor file:
 * only a program declaring the variable SELECTED_ROWS leads here, or a whole file that parses as
 * one (the `selected-rows` format: paddle.save(selected_rows, path, use_binary_format=True); a
 * tensor file never parses as one to its end, nor the reverse).  In the value tree it is a DICT
 * {"rows": int64 tensor [R], "height": int, "value": tensor}.
 */
#include "pdk_program.h"

#include <string.h>

static pdckpt_status put(pdckpt_value *dict, const char *key, pdckpt_value *v, pdckpt_error *err) {
    if (!v) return pdk_fail_nomem(err, "SelectedRows");
    return pdckpt_dict_set(dict, key, v, err);
}

static pdckpt_status read_rows(pdk_cursor *cur, const pdk_input *in,
                               const pdckpt_load_options *opts, pdckpt_value **rows) {
    size_t   at = cur->pos;
    uint64_t n;
    PDK_TRY(pdk_cur_u64le(cur, &n, "SelectedRows row count"));
    if (n > pdk_cur_left(cur) / 8)
        return pdk_cur_fail_at(
            cur, at, PDCKPT_ERR_FORMAT,
            "expected SelectedRows row count <= %zu (bytes left / 8), found %llu",
            pdk_cur_left(cur) / 8, (unsigned long long)n);
    const uint8_t *data;
    PDK_TRY(pdk_cur_bytes(cur, n * 8, &data, "SelectedRows rows"));
    int64_t dims[1] = {(int64_t)n};
    return pdk_tensor_from_input(in, opts, PDCKPT_DTYPE_INT64, 1, dims, data, rows, cur->err);
}

pdckpt_status pdk_selected_rows_read(pdk_cursor *cur, const pdk_input *in,
                                     const pdckpt_load_options *opts, pdckpt_value **out) {
    size_t   at = cur->pos;
    uint32_t version;
    PDK_TRY(pdk_cur_u32le(cur, &version, "SelectedRows version"));
    if (version != 0)
        return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT,
                               "expected SelectedRows version 0, found %u", version);
    pdckpt_value *dict = pdckpt_value_new_container(opts->allocator, PDCKPT_KIND_DICT);
    if (!dict) return pdk_fail_nomem(cur->err, "SelectedRows");
    pdckpt_value *rows = NULL, *value = NULL;
    uint64_t      height = 0;
    pdckpt_status st = read_rows(cur, in, opts, &rows);
    if (st == PDCKPT_OK) st = put(dict, "rows", rows, cur->err);
    if (st == PDCKPT_OK) st = pdk_cur_u64le(cur, &height, "SelectedRows height");
    if (st == PDCKPT_OK)
        st = put(dict, "height", pdckpt_value_new_int(opts->allocator, (int64_t)height), cur->err);
    if (st == PDCKPT_OK) st = pdk_tensor_inner_read(cur, in, opts, &value);
    if (st == PDCKPT_OK) st = put(dict, "value", value, cur->err);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(dict);
        return st;
    }
    *out = dict;
    return PDCKPT_OK;
}

/* The parts of a SelectedRows DICT, checked. */
static pdckpt_status parts(const pdckpt_value *sr, const char *name, pdckpt_tensor_view *rows,
                           int64_t *height, const pdckpt_value **value, pdckpt_error *err) {
    const pdckpt_value *r =
        pdckpt_value_kind(sr) == PDCKPT_KIND_DICT ? pdckpt_dict_get(sr, "rows") : NULL;
    *value = r ? pdckpt_dict_get(sr, "value") : NULL;
    bool ok = r && pdckpt_tensor_get(r, rows) && rows->dtype == PDCKPT_DTYPE_INT64 &&
              rows->n_dims == 1 && pdckpt_value_get_int(pdckpt_dict_get(sr, "height"), height) &&
              pdckpt_value_kind(*value) == PDCKPT_KIND_TENSOR;
    if (!ok)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "SELECTED_ROWS variable '%s': expected a dict {\"rows\": int64 tensor "
                        "[R], \"height\": int, \"value\": tensor}",
                        name);
    return PDCKPT_OK;
}

pdckpt_status pdk_selected_rows_write(pdk_sink *sink, const pdckpt_value *sr, const char *name,
                                      pdckpt_error *err) {
    pdckpt_tensor_view  rows;
    int64_t             height;
    const pdckpt_value *value;
    PDK_TRY(parts(sr, name, &rows, &height, &value, err));
    uint8_t head[12];
    pdk_store_u32le(head, 0);
    pdk_store_u64le(head + 4, rows.n_elements);
    PDK_TRY(pdk_sink_write(sink, head, sizeof head, err));
    PDK_TRY(pdk_sink_write(sink, rows.data, (size_t)rows.n_bytes, err));
    pdk_store_u64le(head, (uint64_t)height);
    PDK_TRY(pdk_sink_write(sink, head, 8, err));
    return pdk_tensor_inner_write(sink, value, err);
}

/* ---- the `selected-rows` format: exactly one stream per file ---- */

bool pdk_selected_rows_length(const pdk_input *in, size_t *end) {
    return pdk_stream_length(in, pdk_selected_rows_read, end);
}

static int sr_sniff(const pdk_input *in) {
    return pdk_stream_sniff_one(in, pdk_selected_rows_read);
}

static pdckpt_status sr_load(const pdk_input *in, const pdckpt_load_options *opts,
                             pdckpt_value **out, pdckpt_error *err) {
    return pdk_stream_load_one(in, opts, pdk_selected_rows_read, "SelectedRows", out, err);
}

static pdckpt_status sr_save(const pdckpt_value *root, pdk_sink *sink,
                             const pdckpt_save_options *opts, pdckpt_error *err) {
    (void)opts;
    return pdk_selected_rows_write(sink, root, "SelectedRows", err);
}

const pdk_format pdk_format_selected_rows = {
    .id = PDCKPT_FORMAT_SELECTED_ROWS,
    .name = "selected-rows",
    .sniff = sr_sniff,
    .load = sr_load,
    .save = sr_save,
};
