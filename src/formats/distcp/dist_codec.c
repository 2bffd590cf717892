/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_codec.c — a small, bounded binary codec for value trees without tensor data: the shape
 * of a rank's state (scalars, strings, containers, opaque objects, and tensors as references to
 * an ordinal) that travels between ranks, and the sharded checkpoint's metadata tree.
 * Little-endian; one tag byte per node; every count is checked against the bytes left before
 * anything is allocated, nesting is limited, and tensor descriptions are validated (dtype, dims,
 * byte size) exactly as a file's would be.
 */
#include "pdk_distcp.h"

#include <stdlib.h>
#include <string.h>

enum {
    TAG_NONE = 0,
    TAG_FALSE = 1,
    TAG_TRUE = 2,
    TAG_INT = 3,
    TAG_FLOAT = 4,
    TAG_STRING = 5,
    TAG_BYTES = 6,
    TAG_LIST = 7,
    TAG_TUPLE = 8,
    TAG_SET = 9,
    TAG_DICT = 10,
    TAG_TENSOR = 11,
    TAG_OBJECT = 12,
};
#define MAX_DEPTH 200

void pdk_tensor_list_free(pdk_tensor_list *l) {
    free(l->items);
    memset(l, 0, sizeof *l);
}

static pdckpt_status list_add(pdk_tensor_list *l, const pdckpt_value *t, pdckpt_error *err) {
    if (l->len == l->cap) {
        size_t               cap = l->cap ? l->cap * 2 : 64;
        const pdckpt_value **grown = realloc(l->items, cap * sizeof *grown);
        if (!grown) return pdk_fail_nomem(err, "tensor list");
        l->items = grown;
        l->cap = cap;
    }
    l->items[l->len++] = t;
    return PDCKPT_OK;
}

/* ---- encoding ---- */

typedef struct enc {
    pdk_blob        *out;
    pdk_tensor_list *tensors;
    pdckpt_error    *err;
} enc;

static pdckpt_status encode(enc *e, const pdckpt_value *v, int depth);

static pdckpt_status encode_items(enc *e, const pdckpt_value *v, int depth, bool dict) {
    size_t n = pdckpt_value_len(v);
    pdk_blob_u64(e->out, n);
    for (size_t i = 0; i < n; i++) {
        if (dict) PDK_TRY(encode(e, pdckpt_dict_key_at(v, i), depth + 1));
        PDK_TRY(encode(e, pdckpt_value_at(v, i), depth + 1));
    }
    return PDCKPT_OK;
}

static pdckpt_status encode_optional(enc *e, const pdckpt_value *v, int depth) {
    pdk_blob_u8(e->out, v != NULL);
    return v ? encode(e, v, depth + 1) : PDCKPT_OK;
}

static pdckpt_status encode_object(enc *e, const pdckpt_value *v, int depth) {
    pdk_blob_u8(e->out, TAG_OBJECT);
    pdk_blob_u8(e->out, (uint8_t)pdckpt_object_kind_of(v));
    const char *module = pdckpt_object_module(v), *name = pdckpt_object_name(v);
    pdk_blob_str(e->out, module ? module : "", module ? strlen(module) : 0);
    pdk_blob_str(e->out, name ? name : "", name ? strlen(name) : 0);
    PDK_TRY(encode_optional(e, pdckpt_object_args(v), depth));
    PDK_TRY(encode_optional(e, pdckpt_object_state(v), depth));
    return encode_optional(e, pdckpt_object_items(v), depth);
}

static pdckpt_status encode_tensor(enc *e, const pdckpt_value *v) {
    if (!e->tensors)
        return pdk_fail(e->err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "expected no tensors in this tree, found one");
    pdk_blob_u8(e->out, TAG_TENSOR);
    pdk_blob_u64(e->out, e->tensors->len);
    return list_add(e->tensors, v, e->err);
}

static pdckpt_status encode_scalar(enc *e, const pdckpt_value *v) {
    pdckpt_kind kind = pdckpt_value_kind(v);
    bool        b;
    int64_t     i;
    double      f;
    size_t      len;
    const char *s;
    switch (kind) {
    case PDCKPT_KIND_NONE: pdk_blob_u8(e->out, TAG_NONE); return PDCKPT_OK;
    case PDCKPT_KIND_BOOL:
        pdckpt_value_get_bool(v, &b);
        pdk_blob_u8(e->out, b ? TAG_TRUE : TAG_FALSE);
        return PDCKPT_OK;
    case PDCKPT_KIND_INT:
        pdckpt_value_get_int(v, &i);
        pdk_blob_u8(e->out, TAG_INT);
        pdk_blob_u64(e->out, (uint64_t)i);
        return PDCKPT_OK;
    case PDCKPT_KIND_FLOAT: {
        pdckpt_value_get_float(v, &f);
        uint64_t bits;
        memcpy(&bits, &f, 8);
        pdk_blob_u8(e->out, TAG_FLOAT);
        pdk_blob_u64(e->out, bits);
        return PDCKPT_OK;
    }
    case PDCKPT_KIND_STRING:
        s = pdckpt_value_get_string(v, &len);
        pdk_blob_u8(e->out, TAG_STRING);
        pdk_blob_str(e->out, s, len);
        return PDCKPT_OK;
    default:
        s = pdckpt_value_get_bytes(v, &len);
        pdk_blob_u8(e->out, TAG_BYTES);
        pdk_blob_str(e->out, s ? s : "", s ? len : 0);
        return PDCKPT_OK;
    }
}

static pdckpt_status encode(enc *e, const pdckpt_value *v, int depth) {
    if (depth > MAX_DEPTH)
        return pdk_fail(e->err, PDCKPT_ERR_LIMIT, NULL, -1, "expected nesting depth <= %d",
                        MAX_DEPTH);
    switch (pdckpt_value_kind(v)) {
    case PDCKPT_KIND_LIST: pdk_blob_u8(e->out, TAG_LIST); return encode_items(e, v, depth, false);
    case PDCKPT_KIND_TUPLE: pdk_blob_u8(e->out, TAG_TUPLE); return encode_items(e, v, depth, false);
    case PDCKPT_KIND_SET: pdk_blob_u8(e->out, TAG_SET); return encode_items(e, v, depth, false);
    case PDCKPT_KIND_DICT: pdk_blob_u8(e->out, TAG_DICT); return encode_items(e, v, depth, true);
    case PDCKPT_KIND_TENSOR: return encode_tensor(e, v);
    case PDCKPT_KIND_OBJECT: return encode_object(e, v, depth);
    default: return encode_scalar(e, v);
    }
}

pdckpt_status pdk_codec_encode(const pdckpt_value *root, pdk_blob *out, pdk_tensor_list *tensors,
                               pdckpt_error *err) {
    if (!root) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "expected a tree, found NULL");
    enc e = {out, tensors, err};
    PDK_TRY(encode(&e, root, 0));
    return pdk_blob_check(out, err, "an encoded tree");
}

/* ---- decoding ---- */

typedef struct dec {
    pdk_rd                 *r;
    const pdckpt_allocator *a;
    pdk_tensor_ref_fn       fn;
    void                   *ctx;
} dec;

static pdckpt_status decode(dec *c, int depth, pdckpt_value **out);

static pdckpt_status add_item(dec *c, pdckpt_value *container, bool dict, int depth) {
    pdckpt_value *key = NULL, *val = NULL;
    if (dict) PDK_TRY(decode(c, depth + 1, &key));
    pdckpt_status st = decode(c, depth + 1, &val);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(key);
        return st;
    }
    if (!dict) return pdckpt_value_append(container, val, c->r->err);
    size_t before = pdckpt_value_len(container);
    PDK_TRY(pdckpt_dict_set_value(container, key, val, c->r->err));
    if (pdckpt_value_len(container) == before) return pdk_rd_fail(c->r, "duplicate dict key");
    return PDCKPT_OK;
}

static pdckpt_status decode_items(dec *c, pdckpt_kind kind, int depth, pdckpt_value **out) {
    bool     dict = kind == PDCKPT_KIND_DICT;
    uint64_t n;
    PDK_TRY(pdk_rd_count(c->r, &n, dict ? 2 : 1, "container items"));
    *out = pdckpt_value_new_container(c->a, kind);
    if (!*out) return pdk_fail_nomem(c->r->err, "a container");
    for (uint64_t i = 0; i < n; i++) PDK_TRY(add_item(c, *out, dict, depth));
    return PDCKPT_OK;
}

static pdckpt_status decode_optional(dec *c, int depth, pdckpt_value **out) {
    uint8_t present;
    *out = NULL;
    PDK_TRY(pdk_rd_u8(c->r, &present, "an object part flag"));
    if (present > 1) return pdk_rd_fail(c->r, "expected 0 or 1 for an object part flag");
    return present ? decode(c, depth + 1, out) : PDCKPT_OK;
}

static pdckpt_status decode_object(dec *c, int depth, pdckpt_value **out) {
    uint8_t       kind;
    char         *module = NULL, *name = NULL;
    pdckpt_value *parts[3] = {NULL, NULL, NULL};
    pdckpt_status st = pdk_rd_u8(c->r, &kind, "object kind");
    if (st == PDCKPT_OK && kind > PDCKPT_OBJECT_GLOBAL)
        st = pdk_rd_fail(c->r, "expected an object kind 0..2, found %u", kind);
    if (st == PDCKPT_OK) st = pdk_rd_strdup(c->r, &module, "object module");
    if (st == PDCKPT_OK) st = pdk_rd_strdup(c->r, &name, "object name");
    for (int i = 0; i < 3 && st == PDCKPT_OK; i++) st = decode_optional(c, depth, &parts[i]);
    if (st == PDCKPT_OK) {
        *out = pdckpt_value_new_object(c->a, (pdckpt_object_kind)kind, module, name, parts[0],
                                       parts[1]);
        parts[0] = parts[1] = NULL;
        if (!*out)
            st = pdk_fail_nomem(c->r->err, "an object");
        else if (parts[2])
            st = pdckpt_object_set_items(*out, parts[2], c->r->err);
        parts[2] = NULL;
    }
    for (int i = 0; i < 3; i++) pdckpt_value_free(parts[i]);
    free(module);
    free(name);
    return st;
}

static pdckpt_status decode_scalar(dec *c, uint8_t tag, pdckpt_value **out) {
    uint64_t    u;
    const char *s;
    size_t      len;
    switch (tag) {
    case TAG_NONE: *out = pdckpt_value_new_none(c->a); break;
    case TAG_FALSE:
    case TAG_TRUE: *out = pdckpt_value_new_bool(c->a, tag == TAG_TRUE); break;
    case TAG_INT:
        PDK_TRY(pdk_rd_u64(c->r, &u, "an int"));
        *out = pdckpt_value_new_int(c->a, (int64_t)u);
        break;
    case TAG_FLOAT: {
        PDK_TRY(pdk_rd_u64(c->r, &u, "a float"));
        double f;
        memcpy(&f, &u, 8);
        *out = pdckpt_value_new_float(c->a, f);
        break;
    }
    case TAG_STRING:
    case TAG_BYTES:
        PDK_TRY(pdk_rd_str(c->r, &s, &len, "a string"));
        *out = tag == TAG_STRING ? pdckpt_value_new_string(c->a, s, len)
                                 : pdckpt_value_new_bytes(c->a, s, len);
        break;
    default: return pdk_rd_fail(c->r, "expected a node tag 0..12, found %u", tag);
    }
    return *out ? PDCKPT_OK : pdk_fail_nomem(c->r->err, "a scalar");
}

static pdckpt_status decode_tensor(dec *c, pdckpt_value **out) {
    uint64_t ordinal;
    PDK_TRY(pdk_rd_u64(c->r, &ordinal, "a tensor reference"));
    if (!c->fn) return pdk_rd_fail(c->r, "expected no tensor references in this tree");
    *out = c->fn(c->ctx, ordinal, c->r->err);
    if (*out) return PDCKPT_OK;
    if (c->r->err->status == PDCKPT_OK)
        pdk_rd_fail(c->r, "bad tensor reference %llu", (unsigned long long)ordinal);
    return c->r->err->status;
}

static pdckpt_status decode(dec *c, int depth, pdckpt_value **out) {
    *out = NULL;
    if (depth > MAX_DEPTH) return pdk_rd_fail(c->r, "expected nesting depth <= %d", MAX_DEPTH);
    uint8_t tag;
    PDK_TRY(pdk_rd_u8(c->r, &tag, "a node tag"));
    pdckpt_status st;
    switch (tag) {
    case TAG_LIST: st = decode_items(c, PDCKPT_KIND_LIST, depth, out); break;
    case TAG_TUPLE: st = decode_items(c, PDCKPT_KIND_TUPLE, depth, out); break;
    case TAG_SET: st = decode_items(c, PDCKPT_KIND_SET, depth, out); break;
    case TAG_DICT: st = decode_items(c, PDCKPT_KIND_DICT, depth, out); break;
    case TAG_TENSOR: st = decode_tensor(c, out); break;
    case TAG_OBJECT: st = decode_object(c, depth, out); break;
    default: st = decode_scalar(c, tag, out); break;
    }
    if (st != PDCKPT_OK) {
        pdckpt_value_free(*out);
        *out = NULL;
    }
    return st;
}

pdckpt_status pdk_codec_decode(pdk_rd *r, const pdckpt_allocator *a, pdk_tensor_ref_fn fn,
                               void *ctx, pdckpt_value **out) {
    dec c = {r, a, fn, ctx};
    return decode(&c, 0, out);
}

/* ---- tensor descriptions ---- */

void pdk_codec_put_desc(pdk_blob *b, const pdckpt_tensor_view *v) {
    pdk_blob_u8(b, (uint8_t)v->dtype);
    pdk_blob_u8(b, (uint8_t)v->n_dims);
    for (int32_t i = 0; i < v->n_dims; i++) pdk_blob_u64(b, (uint64_t)v->dims[i]);
    pdk_blob_str(b, v->name ? v->name : "", v->name ? strlen(v->name) : 0);
    pdk_blob_u8(b, v->name != NULL);
    pdk_blob_u32(b, (uint32_t)v->n_lod_levels);
    for (int32_t l = 0; l < v->n_lod_levels; l++) {
        pdk_blob_u64(b, v->lod_lens[l]);
        for (uint64_t j = 0; j < v->lod_lens[l]; j++) pdk_blob_u64(b, v->lod[l][j]);
    }
}

void pdk_tensor_desc_free(pdk_tensor_desc *d) {
    for (int32_t l = 0; l < d->n_lod; l++) free(d->lod[l]);
    free(d->lod);
    free(d->lod_lens);
    free(d->name);
    memset(d, 0, sizeof *d);
}

static pdckpt_status get_lod(pdk_rd *r, pdk_tensor_desc *d) {
    uint32_t levels;
    PDK_TRY(pdk_rd_u32(r, &levels, "LoD level count"));
    if (levels > 64 || levels > (r->len - r->pos) / 8)
        return pdk_rd_fail(r, "expected at most 64 LoD levels, found %u", levels);
    d->lod_lens = calloc(levels + 1, sizeof *d->lod_lens);
    d->lod = calloc(levels + 1, sizeof *d->lod);
    if (!d->lod_lens || !d->lod) return pdk_fail_nomem(r->err, "LoD");
    for (uint32_t l = 0; l < levels; l++) {
        uint64_t n;
        PDK_TRY(pdk_rd_count(r, &n, 8, "LoD offsets"));
        d->lod[l] = malloc(n ? (size_t)n * 8 : 1);
        if (!d->lod[l]) return pdk_fail_nomem(r->err, "LoD");
        d->lod_lens[l] = n;
        d->n_lod = (int32_t)l + 1;
        for (uint64_t j = 0; j < n; j++) PDK_TRY(pdk_rd_u64(r, &d->lod[l][j], "a LoD offset"));
    }
    return PDCKPT_OK;
}

static pdckpt_status get_shape(pdk_rd *r, pdk_tensor_desc *d) {
    uint8_t dtype, n_dims;
    PDK_TRY(pdk_rd_u8(r, &dtype, "dtype"));
    PDK_TRY(pdk_rd_u8(r, &n_dims, "dims count"));
    if (dtype == 0 || dtype >= PDCKPT_DTYPE_COUNT || n_dims > PDCKPT_MAX_DIMS)
        return pdk_rd_fail(r, "expected a dtype 1..%d and at most %d dims, found %u and %u",
                           PDCKPT_DTYPE_COUNT - 1, PDCKPT_MAX_DIMS, dtype, n_dims);
    d->dtype = (pdckpt_dtype)dtype;
    d->n_dims = n_dims;
    uint64_t bytes = pdckpt_dtype_size(d->dtype);
    for (int32_t i = 0; i < n_dims; i++) {
        uint64_t dim;
        PDK_TRY(pdk_rd_u64(r, &dim, "a dim"));
        if (dim > (uint64_t)INT64_MAX || (dim && bytes > (UINT64_C(1) << 62) / dim))
            return pdk_rd_fail(r, "tensor dim %llu makes the tensor too large",
                               (unsigned long long)dim);
        d->dims[i] = (int64_t)dim;
        bytes *= dim;
    }
    d->n_bytes = bytes;
    return PDCKPT_OK;
}

pdckpt_status pdk_codec_get_desc(pdk_rd *r, pdk_tensor_desc *d) {
    memset(d, 0, sizeof *d);
    pdckpt_status st = get_shape(r, d);
    uint8_t       has_name = 0;
    if (st == PDCKPT_OK) st = pdk_rd_strdup(r, &d->name, "tensor name");
    if (st == PDCKPT_OK) st = pdk_rd_u8(r, &has_name, "tensor name flag");
    if (st == PDCKPT_OK && !has_name) {
        free(d->name);
        d->name = NULL;
    }
    if (st == PDCKPT_OK) st = get_lod(r, d);
    if (st != PDCKPT_OK) pdk_tensor_desc_free(d);
    return st;
}

static pdckpt_status dress(pdckpt_value *t, const char *name, int32_t n_lod,
                           const uint64_t *const *lod, const uint64_t *lens, pdckpt_error *err) {
    if (name) PDK_TRY(pdckpt_tensor_set_name(t, name, err));
    if (n_lod > 0) PDK_TRY(pdckpt_tensor_set_lod(t, n_lod, lod, lens, err));
    return PDCKPT_OK;
}

pdckpt_status pdk_tensor_from_desc(const pdk_tensor_desc *d, const pdckpt_allocator *a,
                                   pdckpt_value **out, pdckpt_error *err) {
    PDK_TRY(pdckpt_tensor_new(a, d->dtype, d->n_dims, d->dims, out, err));
    pdckpt_status st =
        dress(*out, d->name, d->n_lod, (const uint64_t *const *)d->lod, d->lod_lens, err);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(*out);
        *out = NULL;
    }
    return st;
}

pdckpt_status pdk_tensor_borrow(const pdckpt_tensor_view *v, const pdckpt_allocator *a,
                                pdckpt_value **out, pdckpt_error *err) {
    PDK_TRY(
        pdckpt_tensor_new_in_buffer(a, v->dtype, v->n_dims, v->dims, v->buffer, v->data, out, err));
    pdckpt_status st = dress(*out, v->name, v->n_lod_levels, v->lod, v->lod_lens, err);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(*out);
        *out = NULL;
    }
    return st;
}

pdckpt_status pdk_tensor_placeholder(const pdk_tensor_desc *d, const void *data,
                                     const pdckpt_allocator *a, pdckpt_value **out,
                                     pdckpt_error *err) {
    PDK_TRY(pdckpt_tensor_new_borrowed(a, d->dtype, d->n_dims, d->dims, data, out, err));
    pdckpt_status st =
        dress(*out, d->name, d->n_lod, (const uint64_t *const *)d->lod, d->lod_lens, err);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(*out);
        *out = NULL;
    }
    return st;
}
