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

/* What every Paddle kernel that reads a SelectedRows assumes (docs/formats.md, "SelectedRows"):
 * row i of `value` holds logical row rows[i] of a [height, ...] table, so 0 <= rows[i] < height,
 * and `value` has a row for each of them.  Paddle's own reader checks none of it (only the
 * version); its kernels then index out of bounds.  Fewer rows than `value` has is real: a table
 * initialised by uniform_random keeps its capacity with no rows yet (1.8's save_persistables). */
/* The first of the n rows outside [0, height), or n. */
static uint64_t first_bad_row(const uint8_t *rows, uint64_t n, int64_t height) {
    for (uint64_t i = 0; i < n; i++) {
        int64_t r = (int64_t)pdk_load_u64le(rows + i * 8);
        if (r < 0 || r >= height) return i;
    }
    return n;
}

/* Whether `value` has a row for each of the n rows (its shape alone: no C copy). */
static bool value_holds(const pdckpt_value *value, uint64_t n, pdckpt_tensor_view *v) {
    if (!pdckpt_tensor_get_memory(value, v, NULL)) return n == 0;
    return n == 0 || (v->n_dims >= 1 && (uint64_t)v->dims[0] >= n);
}

static pdckpt_status check_rows(pdk_cursor *cur, size_t rows_at, const uint8_t *rows, uint64_t n,
                                int64_t height) {
    uint64_t i = first_bad_row(rows, n, height);
    if (i == n) return PDCKPT_OK;
    return pdk_cur_fail_at(cur, rows_at + (size_t)i * 8, PDCKPT_ERR_FORMAT,
                           "expected SelectedRows row %llu in [0, height %lld), found %lld",
                           (unsigned long long)i, (long long)height,
                           (long long)pdk_load_u64le(rows + i * 8));
}

static pdckpt_status check_value(pdk_cursor *cur, size_t at, uint64_t n,
                                 const pdckpt_value *value) {
    pdckpt_tensor_view v = {0};
    if (value_holds(value, n, &v)) return PDCKPT_OK;
    return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT,
                           "expected a SelectedRows value tensor with at least %llu rows (one "
                           "per stored row), found %d dims, first %lld",
                           (unsigned long long)n, (int)v.n_dims,
                           (long long)(v.n_dims ? v.dims[0] : 0));
}

/* The stream up to the value tensor: rows (checked against the height when `check`) and height. */
static pdckpt_status read_head(pdk_cursor *cur, bool check, const uint8_t **rows, uint64_t *n,
                               int64_t *height) {
    size_t   at = cur->pos;
    uint32_t version;
    PDK_TRY(pdk_cur_u32le(cur, &version, "SelectedRows version"));
    if (version != 0)
        return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT,
                               "expected SelectedRows version 0, found %u", version);
    at = cur->pos;
    PDK_TRY(pdk_cur_u64le(cur, n, "SelectedRows row count"));
    if (*n > pdk_cur_left(cur) / 8)
        return pdk_cur_fail_at(
            cur, at, PDCKPT_ERR_FORMAT,
            "expected SelectedRows row count <= %zu (bytes left / 8), found %llu",
            pdk_cur_left(cur) / 8, (unsigned long long)*n);
    size_t rows_at = cur->pos;
    PDK_TRY(pdk_cur_bytes(cur, *n * 8, rows, "SelectedRows rows"));
    at = cur->pos;
    uint64_t h;
    PDK_TRY(pdk_cur_u64le(cur, &h, "SelectedRows height"));
    *height = (int64_t)h;
    if (check && *height < 0)
        return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT,
                               "expected SelectedRows height >= 0, found %lld", (long long)*height);
    return check ? check_rows(cur, rows_at, *rows, *n, *height) : PDCKPT_OK;
}

static pdckpt_status read_stream(pdk_cursor *cur, const pdk_input *in,
                                 const pdckpt_load_options *opts, bool check, pdckpt_value **out) {
    const uint8_t *data = NULL;
    uint64_t       n = 0;
    int64_t        height = 0;
    PDK_TRY(read_head(cur, check, &data, &n, &height));
    pdckpt_value *dict = pdckpt_value_new_container(opts->allocator, PDCKPT_KIND_DICT);
    if (!dict) return pdk_fail_nomem(cur->err, "SelectedRows");
    int64_t       dims[1] = {(int64_t)n};
    pdckpt_value *rows = NULL, *value = NULL;
    size_t        value_at = cur->pos;
    pdckpt_status st =
        pdk_tensor_from_input(in, opts, PDCKPT_DTYPE_INT64, 1, dims, data, &rows, cur->err);
    if (st == PDCKPT_OK) st = put(dict, "rows", rows, cur->err);
    if (st == PDCKPT_OK)
        st = put(dict, "height", pdckpt_value_new_int(opts->allocator, height), cur->err);
    if (st == PDCKPT_OK) st = pdk_tensor_inner_read(cur, in, opts, &value);
    if (st == PDCKPT_OK) st = put(dict, "value", value, cur->err);
    if (st == PDCKPT_OK && check) st = check_value(cur, value_at, n, value);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(dict);
        return st;
    }
    *out = dict;
    return PDCKPT_OK;
}

pdckpt_status pdk_selected_rows_read(pdk_cursor *cur, const pdk_input *in,
                                     const pdckpt_load_options *opts, pdckpt_value **out) {
    return read_stream(cur, in, opts, true, out);
}

/* Its shape alone, for telling the format from the bytes: a stream that breaks the rules above
 * is still recognised, so loading it names the rule rather than "unknown format". */
static pdckpt_status read_shape(pdk_cursor *cur, const pdk_input *in,
                                const pdckpt_load_options *opts, pdckpt_value **out) {
    return read_stream(cur, in, opts, false, out);
}

/* The rule check_rows and check_value apply on reading, for what is about to be written. */
static bool consistent(const pdckpt_tensor_view *rows, int64_t height, const pdckpt_value *value) {
    pdckpt_tensor_view v;
    uint64_t           n = rows->n_elements;
    return height >= 0 && pdckpt_value_kind(value) == PDCKPT_KIND_TENSOR &&
           value_holds(value, n, &v) && first_bad_row(rows->data, n, height) == n;
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
    if (!consistent(rows, *height, *value))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "SELECTED_ROWS variable '%s': expected height >= 0, every row in [0, "
                        "height) and a value tensor with at least one row per stored row",
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
    return pdk_stream_length(in, read_shape, end);
}

static int sr_sniff(const pdk_input *in) {
    return pdk_stream_sniff_one(in, read_shape);
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
