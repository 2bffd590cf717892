/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tnum.c — Paddle 1.5/1.6 `fluid.save_dygraph` files written by C++ SaveTensorToDisk (spec
 * binary-and-static-formats.md §5.2; pickle-and-distributed-formats.md §3.2), which today's Paddle
 * cannot read: 256 reserved bytes (uninitialised in Paddle's writer, zeros in ours), "TNUM", a u64
 * count, then per tensor "NAME", u64 length, the name, and an inner tensor stream (version, desc,
 * data; no LoD).  The root is a DICT name -> tensor; tensors carry their name.  Written sorted
 * byte-wise by name, as Paddle's std::map does.
 */
#include "pdk_format.h"

#include <stdio.h>
#include <string.h>

#define TNUM_RESERVED   256
#define TNUM_HEADER     (TNUM_RESERVED + 4 + 8)
#define TNUM_MIN_RECORD (4 + 8 + 4 + 4) /* NAME, length, version, desc size */

static int tnum_sniff(const pdk_input *in) {
    if (in->len < TNUM_HEADER || memcmp(in->data + TNUM_RESERVED, "TNUM", 4) != 0)
        return PDK_SNIFF_NO;
    uint64_t count = pdk_load_u64le(in->data + TNUM_RESERVED + 4);
    if (count == 0) return in->len == TNUM_HEADER ? PDK_SNIFF_CERTAIN : PDK_SNIFF_LIKELY;
    bool named = in->len >= TNUM_HEADER + 4 && memcmp(in->data + TNUM_HEADER, "NAME", 4) == 0;
    return named && count <= (in->len - TNUM_HEADER) / TNUM_MIN_RECORD ? PDK_SNIFF_CERTAIN
                                                                       : PDK_SNIFF_LIKELY;
}

static pdckpt_status expect_mark(pdk_cursor *cur, const char *mark, const char *what) {
    size_t         at = cur->pos;
    const uint8_t *b;
    PDK_TRY(pdk_cur_bytes(cur, 4, &b, what));
    if (memcmp(b, mark, 4) == 0) return PDCKPT_OK;
    char found[20];
    snprintf(found, sizeof found, "%02x %02x %02x %02x", b[0], b[1], b[2], b[3]);
    return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT, "expected the %s \"%s\", found bytes %s",
                           what, mark, found);
}

/* One record: "NAME", length, name, inner tensor stream. */
static pdckpt_status read_record(pdk_cursor *cur, const pdk_input *in,
                                 const pdckpt_load_options *opts, pdckpt_value *dict) {
    PDK_TRY(expect_mark(cur, "NAME", "tensor name mark"));
    size_t   at = cur->pos;
    uint64_t len;
    PDK_TRY(pdk_cur_u64le(cur, &len, "tensor name length"));
    if (len == 0 || len > pdk_cur_left(cur))
        return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT,
                               "expected a tensor name length of 1..%zu (bytes left), found %llu",
                               pdk_cur_left(cur), (unsigned long long)len);
    const uint8_t *name;
    PDK_TRY(pdk_cur_bytes(cur, len, &name, "tensor name"));
    size_t bad;
    if (!pdk_utf8_valid(name, (size_t)len, &bad))
        return pdk_cur_fail_at(cur, cur->pos - (size_t)len + bad, PDCKPT_ERR_FORMAT,
                               "expected a tensor name in UTF-8, found byte 0x%02x", name[bad]);
    if (memchr(name, '\0', (size_t)len))
        return pdk_cur_fail_at(cur, at + 8, PDCKPT_ERR_FORMAT,
                               "expected a tensor name without NUL");
    char *key = pdk_strndup(opts->allocator, (const char *)name, (size_t)len);
    if (!key) return pdk_fail_nomem(cur->err, "tensor name");
    pdckpt_value *t = NULL;
    pdckpt_status st;
    if (pdckpt_dict_get(dict, key)) {
        st = pdk_cur_fail_at(cur, at + 8, PDCKPT_ERR_FORMAT,
                             "expected unique tensor names, found '%s' twice", key);
    } else {
        st = pdk_tensor_inner_read(cur, in, opts, &t);
        if (st == PDCKPT_OK) st = pdckpt_tensor_set_name(t, key, cur->err);
        if (st == PDCKPT_OK) {
            st = pdckpt_dict_set(dict, key, t, cur->err); /* takes t either way */
            t = NULL;
        }
        pdckpt_value_free(t);
        if (st != PDCKPT_OK) pdk_error_prefix(cur->err, "tensor '%s': ", key);
    }
    pdk_strfree(opts->allocator, key);
    return st;
}

static pdckpt_status read_all(pdk_cursor *cur, const pdk_input *in, const pdckpt_load_options *opts,
                              pdckpt_value *dict) {
    PDK_TRY(pdk_cur_skip(cur, TNUM_RESERVED, "reserved header"));
    PDK_TRY(expect_mark(cur, "TNUM", "tensor count mark"));
    size_t   at = cur->pos;
    uint64_t count;
    PDK_TRY(pdk_cur_u64le(cur, &count, "tensor count"));
    if (count > pdk_cur_left(cur) / TNUM_MIN_RECORD)
        return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT,
                               "expected a tensor count <= %zu (bytes left / %d), found %llu",
                               pdk_cur_left(cur) / TNUM_MIN_RECORD, TNUM_MIN_RECORD,
                               (unsigned long long)count);
    for (uint64_t i = 0; i < count; i++) {
        PDK_TRY(read_record(cur, in, opts, dict));
        if (opts->progress && opts->progress(opts->progress_ctx, cur->pos, cur->len))
            return pdk_fail(cur->err, PDCKPT_ERR_ARGUMENT, in->name, -1, "cancelled");
    }
    /* Paddle stops after the last tensor; verification insists nothing follows. */
    if (opts->verify && pdk_cur_left(cur) > 0)
        return pdk_cur_fail(cur,
                            "expected the end of the file after %llu tensors, found %zu more "
                            "bytes",
                            (unsigned long long)count, pdk_cur_left(cur));
    return PDCKPT_OK;
}

static pdckpt_status tnum_load(const pdk_input *in, const pdckpt_load_options *opts,
                               pdckpt_value **out, pdckpt_error *err) {
    pdckpt_value *dict = pdckpt_value_new_container(opts->allocator, PDCKPT_KIND_DICT);
    if (!dict) return pdk_fail_nomem(err, "TNUM root");
    pdk_cursor cur;
    pdk_cur_init(&cur, in->data, in->len, in->name, err);
    pdckpt_status st = read_all(&cur, in, opts, dict);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(dict);
        return st;
    }
    *out = dict;
    return PDCKPT_OK;
}

static pdckpt_status write_record(pdk_sink *sink, const pdk_flat_entry *e, pdckpt_error *err) {
    pdckpt_tensor_view v;
    pdckpt_tensor_get_memory(e->tensor, &v, NULL);
    if (v.n_lod_levels)
        return pdk_fail(err, PDCKPT_ERR_UNSUPPORTED, sink->name, -1,
                        "tensor '%s': the TNUM format cannot hold LoD", e->name);
    uint8_t head[12];
    memcpy(head, "NAME", 4);
    pdk_store_u64le(head + 4, strlen(e->name));
    PDK_TRY(pdk_sink_write(sink, head, sizeof head, err));
    PDK_TRY(pdk_sink_write(sink, e->name, strlen(e->name), err));
    pdckpt_status st = pdk_tensor_inner_write(sink, e->tensor, err);
    if (st != PDCKPT_OK) pdk_error_prefix(err, "tensor '%s': ", e->name);
    return st;
}

static pdckpt_status tnum_save(const pdckpt_value *root, pdk_sink *sink,
                               const pdckpt_save_options *opts, pdckpt_error *err) {
    pdk_flat_list flat;
    PDK_TRY(pdk_flat_collect(root, opts, NULL, &flat, err));
    pdk_flat_sort_by_name(&flat); /* std::map order */
    uint8_t head[TNUM_HEADER] = {0};
    memcpy(head + TNUM_RESERVED, "TNUM", 4);
    pdk_store_u64le(head + TNUM_RESERVED + 4, flat.len);
    pdckpt_status st = pdk_sink_write(sink, head, sizeof head, err);
    for (size_t i = 0; i < flat.len && st == PDCKPT_OK; i++) {
        if (i && strcmp(flat.entries[i - 1].name, flat.entries[i].name) == 0)
            st = pdk_fail(err, PDCKPT_ERR_ARGUMENT, sink->name, -1,
                          "two tensors are both named '%s'", flat.entries[i].name);
        if (st == PDCKPT_OK) st = write_record(sink, &flat.entries[i], err);
    }
    pdk_flat_free(&flat);
    return st;
}

const pdk_format pdk_format_tnum = {
    .id = PDCKPT_FORMAT_TNUM,
    .name = "tnum",
    .suffixes = (const char *const[]){".tnum", NULL},
    .sniff = tnum_sniff,
    .load = tnum_load,
    .save = tnum_save,
};
