/* SPDX-License-Identifier: Apache-2.0 */
/*
 * st_tree.c — a whole value tree through safetensors: the tensors go in as ordinary entries
 * (named by their '.'-joined path), and the structure, Paddle names and non-tensor leaves go in
 * `__metadata__["pdckpt.tree"]`, a JSON text other readers ignore (docs/formats.md):
 *   {"v":1,"root":NODE}   NODE = null | true | false | "str"
 *   | {"t":key[,"n":paddle name][,"F":1]} (a tensor; F: column-major, the file holds its C order)
 *   | {"i":"int64"} | {"f":"16 hex digits: the double's bits"} | {"b":"hex"} (bytes)
 *   | {"x":"hex"} (a str that is not UTF-8) | {"l":[..]} | {"u":[..]} (tuple) | {"s":[..]} (set)
 *   | {"d":[[KEY,NODE],..][,"f":"o"|"p"|"op"]} (an OrderedDict; a pickle's root without a name
 *   table) | {"N":["dtype",NODE]} (a numpy scalar: the number, bool, big int or 0-d complex tensor)
 *   | {"o":{"k":kind,"m":module,"n":name[,"a":..][,"s":..][,"i":..]}}
 * Reading it back is bounded like every parser here (depth, sizes from the input only).
 */
#include "st_tree.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 200

/* ---- writing ---- */

typedef struct enc {
    pdk_sink      *out;
    pdk_flat_list *flat;
    char           path[4096];
    size_t         path_len; /* a key with a NUL inside makes strlen(path) shorter */
    bool           cut;      /* a key on the path holds a NUL, which would cut a tensor's name */
    pdckpt_error  *err;
} enc;

static pdckpt_status put(enc *e, const char *s) {
    return pdk_sink_write(e->out, s, strlen(s), e->err);
}

static pdckpt_status put_hex(enc *e, const char *tag, const uint8_t *b, size_t n) {
    char buf[3];
    PDK_TRY(put(e, tag));
    for (size_t i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "%02x", b[i]);
        PDK_TRY(pdk_sink_write(e->out, buf, 2, e->err));
    }
    return put(e, "\"}");
}

static pdckpt_status put_scalar(enc *e, const pdckpt_value *v) {
    char        buf[64];
    bool        b;
    int64_t     i;
    double      f;
    size_t      n;
    const char *s;
    switch (pdckpt_value_kind(v)) {
    case PDCKPT_KIND_NONE: return put(e, "null");
    case PDCKPT_KIND_BOOL: return pdckpt_value_get_bool(v, &b), put(e, b ? "true" : "false");
    case PDCKPT_KIND_INT:
        pdckpt_value_get_int(v, &i);
        snprintf(buf, sizeof buf, "{\"i\":\"%" PRId64 "\"}", i);
        return put(e, buf);
    case PDCKPT_KIND_FLOAT: {
        uint64_t bits;
        pdckpt_value_get_float(v, &f);
        memcpy(&bits, &f, sizeof bits);
        snprintf(buf, sizeof buf, "{\"f\":\"%016" PRIx64 "\"}", bits);
        return put(e, buf);
    }
    case PDCKPT_KIND_STRING:
        s = pdckpt_value_get_string(v, &n);
        if (!pdk_utf8_valid((const uint8_t *)s, n, &(size_t){0})) /* a lone surrogate too */
            return put_hex(e, "{\"x\":\"", (const uint8_t *)s, n);
        return pdk_json_write_string(e->out, s, n, e->err);
    default:
        s = pdckpt_value_get_bytes(v, &n);
        return put_hex(e, "{\"b\":\"", (const uint8_t *)s, n);
    }
}

static pdckpt_status encode(enc *e, const pdckpt_value *v, int depth);

/* Encodes `child` with ".step" appended to the tensor path. */
static pdckpt_status encode_at(enc *e, const pdckpt_value *child, const char *step, size_t step_len,
                               int depth) {
    size_t old = e->path_len, sep = old ? 1 : 0;
    if (old + sep + step_len >= sizeof e->path)
        return pdk_fail(e->err, PDCKPT_ERR_UNSUPPORTED, e->out->name, -1,
                        "expected a tensor path shorter than %zu bytes at '%.64s...'",
                        sizeof e->path, e->path);
    if (sep) e->path[old] = '.';
    memcpy(e->path + old + sep, step, step_len);
    e->path_len = old + sep + step_len;
    e->path[e->path_len] = '\0';
    bool cut = e->cut;
    e->cut = cut || memchr(step, '\0', step_len);
    pdckpt_status st = encode(e, child, depth + 1);
    e->path_len = old;
    e->path[old] = '\0';
    e->cut = cut;
    return st;
}

static pdckpt_status encode_items(enc *e, const pdckpt_value *v, const char *open, int depth) {
    bool dict = pdckpt_value_kind(v) == PDCKPT_KIND_DICT, first = true;
    PDK_TRY(put(e, open));
    for (size_t i = 0, n = pdckpt_value_len(v); i < n; i++) {
        char        idx[24];
        size_t      len = (size_t)snprintf(idx, sizeof idx, "%zu", i);
        const char *step = idx;
        if (dict) {
            const pdckpt_value *k = pdckpt_dict_key_at(v, i);
            const char         *ks = pdckpt_value_get_string(k, &len);
            if (ks && pdckpt_value_kind(k) == PDCKPT_KIND_STRING)
                step = ks;
            else
                len = strlen(idx);
            if (depth == 0 && step == ks && strcmp(ks, PDK_ST_METADATA_KEY) == 0) continue;
        }
        if (!first) PDK_TRY(put(e, ","));
        first = false;
        if (dict) {
            const pdckpt_value *k = pdckpt_dict_key_at(v, i);
            PDK_TRY(put(e, "["));
            PDK_TRY(encode(e, k, depth + 1));
            PDK_TRY(put(e, ","));
        }
        PDK_TRY(encode_at(e, pdckpt_value_at(v, i), step, len, depth));
        if (dict) PDK_TRY(put(e, "]"));
    }
    if (!dict || (!pdckpt_dict_is_ordered(v) && !pdk_dict_is_plain(v))) return put(e, "]}");
    PDK_TRY(put(e, "],\"f\":\""));
    if (pdckpt_dict_is_ordered(v)) PDK_TRY(put(e, "o"));
    if (pdk_dict_is_plain(v)) PDK_TRY(put(e, "p"));
    return put(e, "\"}");
}

static pdckpt_status encode_object(enc *e, const pdckpt_value *v, int depth) {
    char buf[32];
    snprintf(buf, sizeof buf, "{\"o\":{\"k\":%d,\"m\":", (int)pdckpt_object_kind_of(v));
    PDK_TRY(put(e, buf));
    const char *m = pdckpt_object_module(v), *n = pdckpt_object_name(v);
    PDK_TRY(pdk_json_write_string(e->out, m, strlen(m), e->err));
    PDK_TRY(put(e, ",\"n\":"));
    PDK_TRY(pdk_json_write_string(e->out, n, strlen(n), e->err));
    const pdckpt_value      *parts[3] = {pdckpt_object_args(v), pdckpt_object_state(v),
                                         pdckpt_object_items(v)};
    static const char *const tags[3] = {"a", "s", "i"};
    for (int i = 0; i < 3; i++) {
        if (!parts[i]) continue;
        snprintf(buf, sizeof buf, ",\"%s\":", tags[i]);
        PDK_TRY(put(e, buf));
        PDK_TRY(encode_at(e, parts[i], tags[i], 1, depth));
    }
    return put(e, "}}");
}

static pdckpt_status encode_tensor(enc *e, const pdckpt_value *v) {
    pdk_flat_list     *fl = e->flat;
    pdckpt_tensor_view t; /* its name alone */
    pdckpt_tensor_get_memory(v, &t, NULL);
    if (e->cut) /* the path as a C string: up to the NUL ("a.w" of "a" / "w\0x") */
        return pdk_flat_nul_in_name(e->err, e->out->name, "", e->path);
    PDK_TRY(pdk_grow(fl->alloc, (void **)&fl->entries, &fl->cap, fl->len + 1, sizeof *fl->entries,
                     e->err));
    char *copy = pdk_strndup(fl->alloc, e->path, e->path_len);
    if (!copy) return pdk_fail_nomem(e->err, "tensor name");
    fl->entries[fl->len].name = copy;
    fl->entries[fl->len++].tensor = v;
    PDK_TRY(put(e, "{\"t\":"));
    PDK_TRY(pdk_json_write_string(e->out, e->path, e->path_len, e->err));
    if (t.name) {
        PDK_TRY(put(e, ",\"n\":"));
        PDK_TRY(pdk_json_write_string(e->out, t.name, strlen(t.name), e->err));
    }
    if (pdckpt_tensor_is_fortran(v)) PDK_TRY(put(e, ",\"F\":1"));
    return put(e, "}");
}

static pdckpt_status encode_value(enc *e, const pdckpt_value *v, int depth) {
    switch (pdckpt_value_kind(v)) {
    case PDCKPT_KIND_TENSOR: return encode_tensor(e, v);
    case PDCKPT_KIND_LIST: return encode_items(e, v, "{\"l\":[", depth);
    case PDCKPT_KIND_TUPLE: return encode_items(e, v, "{\"u\":[", depth);
    case PDCKPT_KIND_SET: return encode_items(e, v, "{\"s\":[", depth);
    case PDCKPT_KIND_DICT: return encode_items(e, v, "{\"d\":[", depth);
    case PDCKPT_KIND_OBJECT: return encode_object(e, v, depth);
    default: return put_scalar(e, v);
    }
}

/* A numpy scalar is its value wrapped with its dtype: {"N":["float32",NODE]}. */
static pdckpt_status encode(enc *e, const pdckpt_value *v, int depth) {
    if (depth > MAX_DEPTH)
        return pdk_fail(e->err, PDCKPT_ERR_LIMIT, e->out->name, -1,
                        "expected nesting depth <= %d at '%.64s'", MAX_DEPTH, e->path);
    pdckpt_dtype dt;
    if (!pdckpt_value_numpy_scalar(v, &dt)) return encode_value(e, v, depth);
    PDK_TRY(put(e, "{\"N\":[\""));
    PDK_TRY(put(e, pdckpt_dtype_name(dt)));
    PDK_TRY(put(e, "\","));
    PDK_TRY(encode_value(e, v, depth));
    return put(e, "]}");
}

bool pdk_st_tree_needed(const pdckpt_value *root) {
    if (pdckpt_value_kind(root) != PDCKPT_KIND_DICT) return true;
    for (size_t i = 0; i < pdckpt_value_len(root); i++) {
        size_t             kl;
        const char        *k = pdckpt_value_get_string(pdckpt_dict_key_at(root, i), &kl);
        pdckpt_tensor_view t;
        if (!k || pdckpt_value_kind(pdckpt_dict_key_at(root, i)) != PDCKPT_KIND_STRING) return true;
        if (strcmp(k, PDK_ST_METADATA_KEY) == 0) continue;
        if (!pdckpt_tensor_get_memory(pdckpt_value_at(root, i), &t, NULL)) return true;
        if (t.name && strcmp(t.name, k) != 0) return true; /* a Paddle name to keep */
        if (pdckpt_value_numpy_scalar(pdckpt_value_at(root, i), NULL)) return true;
        if (pdckpt_tensor_is_fortran(pdckpt_value_at(root, i))) return true;
    }
    return pdckpt_dict_is_ordered(root) || pdk_dict_is_plain(root);
}

pdckpt_status pdk_st_tree_encode(const pdckpt_value *root, const char *target, pdk_flat_list *flat,
                                 char **json, size_t *json_len, pdckpt_error *err) {
    pdk_sink *mem;
    enc      *e = calloc(1, sizeof *e);
    if (!e) return pdk_fail_nomem(err, "tree metadata");
    memset(flat, 0, sizeof *flat);
    pdckpt_status st = pdk_sink_open_memory(NULL, &mem, err);
    if (st == PDCKPT_OK) {
        mem->name = target;
        *e = (enc){.out = mem, .flat = flat, .err = err};
        st = put(e, "{\"v\":1,\"root\":");
        if (st == PDCKPT_OK) st = encode(e, root, 0);
        if (st == PDCKPT_OK) st = put(e, "}");
        if (st == PDCKPT_OK) st = pdk_flat_check_unique(flat, err);
        void *data = NULL;
        if (st == PDCKPT_OK)
            st = pdk_sink_memory_take(mem, &data, json_len, err);
        else
            pdk_sink_abort(mem);
        *json = data;
    }
    free(e);
    if (st != PDCKPT_OK) pdk_flat_free(flat);
    return st;
}

void pdk_st_tree_json_free(char *json, size_t len) {
    pdk_free(NULL, json, len);
}

/* ---- reading ---- */

typedef struct dec {
    pdk_cursor              cur;
    const pdckpt_value     *tensors; /* the file's entries, name -> tensor */
    bool                   *used;
    const pdckpt_allocator *a;
} dec;

static pdckpt_status decode(dec *d, pdckpt_value **out, int depth);

static pdckpt_status bad(dec *d, const char *what) {
    return pdk_cur_fail(&d->cur, "pdckpt.tree: expected %s", what);
}

static pdckpt_status literal(dec *d, pdckpt_value **out) {
    static const char *const words[3] = {"null", "true", "false"};
    pdk_json_ws(&d->cur);
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if (pdk_cur_left(&d->cur) >= n && memcmp(d->cur.base + d->cur.pos, words[i], n) == 0) {
            d->cur.pos += n;
            *out = i ? pdckpt_value_new_bool(d->a, i == 1) : pdckpt_value_new_none(d->a);
            return *out ? PDCKPT_OK : pdk_fail_nomem(d->cur.err, "tree value");
        }
    }
    return bad(d, "a value");
}

static pdckpt_status string_value(dec *d, pdckpt_value **out) {
    char  *s;
    size_t n;
    PDK_TRY(pdk_json_string(&d->cur, d->a, &s, &n));
    *out = pdckpt_value_new_string(d->a, s, n);
    pdk_free(d->a, s, n + 1);
    return *out ? PDCKPT_OK : pdk_fail_nomem(d->cur.err, "tree value");
}

/* The hex payload of {"b"|"x": "..."} as a new BYTES or STRING value. */
static pdckpt_status hex_value(dec *d, bool text, pdckpt_value **out) {
    char  *s;
    size_t n;
    PDK_TRY(pdk_json_string(&d->cur, d->a, &s, &n));
    pdckpt_status st = PDCKPT_OK;
    uint8_t      *b = pdk_alloc(d->a, n / 2 + 1);
    for (size_t i = 0; b && i + 1 < n + 1 && i < n && st == PDCKPT_OK; i += 2) {
        unsigned v;
        if (i + 1 >= n || sscanf(s + i, "%2x", &v) != 1)
            st = bad(d, "hex digits");
        else
            b[i / 2] = (uint8_t)v;
    }
    if (!b) st = pdk_fail_nomem(d->cur.err, "tree value");
    if (st == PDCKPT_OK) {
        *out = text ? pdckpt_value_new_string(d->a, (const char *)b, n / 2)
                    : pdckpt_value_new_bytes(d->a, b, n / 2);
        if (!*out) st = pdk_fail_nomem(d->cur.err, "tree value");
    }
    pdk_free(d->a, b, n / 2 + 1);
    pdk_free(d->a, s, n + 1);
    return st;
}

static pdckpt_status number_value(dec *d, bool is_float, pdckpt_value **out) {
    char  *s, *end = NULL;
    size_t n;
    PDK_TRY(pdk_json_string(&d->cur, d->a, &s, &n));
    if (is_float) {
        uint64_t bits = strtoull(s, &end, 16);
        double   f;
        memcpy(&f, &bits, sizeof f);
        *out = n == 16 && *end == '\0' ? pdckpt_value_new_float(d->a, f) : NULL;
    } else {
        errno = 0;
        long long v = strtoll(s, &end, 10);
        *out = n && errno == 0 && *end == '\0' ? pdckpt_value_new_int(d->a, v) : NULL;
    }
    pdk_free(d->a, s, n + 1);
    return *out ? PDCKPT_OK : bad(d, is_float ? "16 hex digits" : "an int64");
}

/* The column-major tensor whose C order `c` holds (a transposed tensor Paddle pickled as it is):
 * the C order of the reversed-dims view of `c` read as column-major is that memory. */
static pdckpt_status column_major(dec *d, const pdckpt_value *c, pdckpt_value **out) {
    pdckpt_tensor_view v, cv;
    int64_t            rev[PDCKPT_MAX_DIMS];
    pdckpt_value      *view = NULL;
    pdckpt_tensor_get(c, &v);
    for (int32_t i = 0; i < v.n_dims; i++) rev[i] = v.dims[v.n_dims - 1 - i];
    pdckpt_status st =
        pdckpt_tensor_new_borrowed(d->a, v.dtype, v.n_dims, rev, v.data, &view, d->cur.err);
    if (st == PDCKPT_OK) st = pdckpt_tensor_set_fortran(view, d->cur.err);
    if (st == PDCKPT_OK && !pdckpt_tensor_get(view, &cv))
        st = pdk_fail_nomem(d->cur.err, "column-major tensor");
    if (st == PDCKPT_OK) st = pdckpt_tensor_new(d->a, v.dtype, v.n_dims, v.dims, out, d->cur.err);
    if (st == PDCKPT_OK && v.n_bytes) memcpy(pdckpt_tensor_data_mut(*out), cv.data, v.n_bytes);
    if (st == PDCKPT_OK) st = pdckpt_tensor_set_fortran(*out, d->cur.err);
    if (st == PDCKPT_OK && v.name) st = pdckpt_tensor_set_name(*out, v.name, d->cur.err);
    pdckpt_value_free(view);
    return st;
}

/* The fields after a tensor's key: ,"n":"Paddle name" and ,"F":1 (column-major). */
static pdckpt_status tensor_fields(dec *d, char **name, size_t *nl, bool *fortran) {
    while (pdk_json_accept(&d->cur, ',')) {
        char  *field;
        size_t fl;
        PDK_TRY(pdk_json_string(&d->cur, d->a, &field, &fl));
        bool          is_n = strcmp(field, "n") == 0 && !*name, is_f = strcmp(field, "F") == 0;
        pdckpt_status st = is_n || is_f ? pdk_json_expect(&d->cur, ':', "after a field")
                                        : bad(d, "\"n\" or \"F\"");
        pdk_free(d->a, field, fl + 1);
        uint64_t one = 0;
        if (st == PDCKPT_OK && is_n) st = pdk_json_string(&d->cur, d->a, name, nl);
        if (st == PDCKPT_OK && is_f) st = pdk_json_uint(&d->cur, &one, "1");
        if (st == PDCKPT_OK && is_f && one != 1) st = bad(d, "\"F\":1");
        if (st != PDCKPT_OK) return st;
        *fortran = *fortran || is_f;
    }
    return PDCKPT_OK;
}

static pdckpt_status tensor_ref(dec *d, pdckpt_value **out) {
    char  *key, *name = NULL;
    size_t kl, nl = 0;
    bool   fortran = false;
    PDK_TRY(pdk_json_string(&d->cur, d->a, &key, &kl));
    pdckpt_status st = tensor_fields(d, &name, &nl, &fortran);
    /* hashed: a scan per reference made 50,000 tensors take 20 s (issue 18) */
    size_t              at = st == PDCKPT_OK ? pdk_dict_find(d->tensors, key, kl) : SIZE_MAX;
    const pdckpt_value *t = at != SIZE_MAX ? pdckpt_value_at(d->tensors, at) : NULL;
    if (st == PDCKPT_OK && !t) st = pdk_cur_fail(&d->cur, "pdckpt.tree: no tensor '%s'", key);
    if (st == PDCKPT_OK) {
        pdckpt_value *tv = pdckpt_value_at_mut((pdckpt_value *)d->tensors, at);
        if (fortran && d->used[at]) /* each would be a copy: a file's size, many times over */
            st = pdk_cur_fail(&d->cur, "pdckpt.tree: column-major tensor '%s' named twice", key);
        if (st == PDCKPT_OK && name && !d->used[at])
            st = pdckpt_tensor_set_name(tv, name, d->cur.err);
        d->used[at] = true;
        if (st == PDCKPT_OK && fortran)
            st = column_major(d, tv, out);
        else if (st == PDCKPT_OK)
            *out = pdckpt_value_retain(tv);
    }
    pdk_free(d->a, key, kl + 1);
    if (name) pdk_free(d->a, name, nl + 1);
    return st;
}

/* Dict keys hashed only in part can all share a slot (pdk_core.h, PDK_MAX_WEAK_KEYS): 10,000
 * tuple keys nested 18 deep in a 2 MB header took 42 s to read before this bound. */
static pdckpt_status count_weak_key(dec *d, const pdckpt_value *key, unsigned *n) {
    if (!pdk_key_is_weak(key) || ++*n <= PDK_MAX_WEAK_KEYS) return PDCKPT_OK;
    return pdk_cur_fail_at(&d->cur, d->cur.pos, PDCKPT_ERR_LIMIT,
                           "pdckpt.tree: " PDK_WEAK_KEYS_EXPECTED, PDK_MAX_WEAK_KEYS);
}

static pdckpt_status items(dec *d, pdckpt_kind kind, pdckpt_value **out, int depth) {
    unsigned      n_weak = 0;
    pdckpt_value *c = pdckpt_value_new_container(d->a, kind);
    if (!c) return pdk_fail_nomem(d->cur.err, "tree container");
    pdckpt_status st = pdk_json_expect(&d->cur, '[', "to start items");
    if (st == PDCKPT_OK && !pdk_json_accept(&d->cur, ']')) {
        do {
            pdckpt_value *k = NULL, *v = NULL;
            if (kind == PDCKPT_KIND_DICT) {
                st = pdk_json_expect(&d->cur, '[', "to start a [key, value] pair");
                if (st == PDCKPT_OK) st = decode(d, &k, depth + 1);
                if (st == PDCKPT_OK) st = count_weak_key(d, k, &n_weak);
                if (st == PDCKPT_OK) st = pdk_json_expect(&d->cur, ',', "in a pair");
            }
            if (st == PDCKPT_OK) st = decode(d, &v, depth + 1);
            if (st == PDCKPT_OK && kind == PDCKPT_KIND_DICT) {
                st = pdk_json_expect(&d->cur, ']', "to close a pair");
                if (st == PDCKPT_OK) st = pdckpt_dict_set_value(c, k, v, d->cur.err), k = v = NULL;
            } else if (st == PDCKPT_OK) {
                st = pdckpt_value_append(c, v, d->cur.err), v = NULL;
            }
            pdckpt_value_free(k);
            pdckpt_value_free(v);
        } while (st == PDCKPT_OK && pdk_json_accept(&d->cur, ','));
        if (st == PDCKPT_OK) st = pdk_json_expect(&d->cur, ']', "to close items");
    }
    if (st != PDCKPT_OK) pdckpt_value_free(c), c = NULL;
    *out = c;
    return st;
}

static pdckpt_status object_value(dec *d, pdckpt_value **out, int depth) {
    char         *m = NULL, *n = NULL, *f;
    size_t        ml = 0, nl = 0, fl;
    int64_t       kind = -1;
    pdckpt_value *part[3] = {NULL, NULL, NULL};
    pdckpt_status st = pdk_json_expect(&d->cur, '{', "an object");
    do {
        if (st != PDCKPT_OK || (st = pdk_json_string(&d->cur, d->a, &f, &fl)) != PDCKPT_OK) break;
        st = pdk_json_expect(&d->cur, ':', "after a field");
        const char *tags = "asi", *hit = fl == 1 ? strchr(tags, f[0]) : NULL;
        if (st == PDCKPT_OK && strcmp(f, "k") == 0) {
            uint64_t u = 0;
            st = pdk_json_uint(&d->cur, &u, "an object kind");
            kind = u <= PDCKPT_OBJECT_GLOBAL ? (int64_t)u : -1;
        } else if (st == PDCKPT_OK && strcmp(f, "m") == 0 && !m) {
            st = pdk_json_string(&d->cur, NULL, &m, &ml);
        } else if (st == PDCKPT_OK && strcmp(f, "n") == 0 && !n) {
            st = pdk_json_string(&d->cur, NULL, &n, &nl);
        } else if (st == PDCKPT_OK && hit && *hit && !part[hit - tags]) {
            st = decode(d, &part[hit - tags], depth + 1);
        } else if (st == PDCKPT_OK) {
            st = bad(d, "an object field k, m, n, a, s or i");
        }
        pdk_free(d->a, f, fl + 1);
    } while (st == PDCKPT_OK && pdk_json_accept(&d->cur, ','));
    if (st == PDCKPT_OK) st = pdk_json_expect(&d->cur, '}', "to close an object");
    if (st == PDCKPT_OK && (!m || !n || kind < 0 || kind > PDCKPT_OBJECT_GLOBAL))
        st = bad(d, "an object with kind, module and name");
    *out = NULL;
    if (st == PDCKPT_OK) {
        *out = pdckpt_value_new_object(d->a, (pdckpt_object_kind)kind, m, n, part[0], part[1]);
        part[0] = part[1] = NULL;
        if (!*out) st = pdk_fail_nomem(d->cur.err, "tree object");
        if (st == PDCKPT_OK && part[2]) st = pdckpt_object_set_items(*out, part[2], d->cur.err);
        part[2] = NULL;
    }
    for (int i = 0; i < 3; i++) pdckpt_value_free(part[i]);
    if (m) pdk_free(NULL, m, ml + 1);
    if (n) pdk_free(NULL, n, nl + 1);
    return st;
}

/* The flags after a dict's items: ,"f":"o" (OrderedDict), "p" (plain pickle root), "op". */
static pdckpt_status dict_flags(dec *d, pdckpt_value *dict) {
    char  *f, *v;
    size_t fl, vl;
    if (!pdk_json_accept(&d->cur, ',')) return PDCKPT_OK;
    PDK_TRY(pdk_json_string(&d->cur, d->a, &f, &fl));
    bool          is_f = strcmp(f, "f") == 0;
    pdckpt_status st = is_f ? pdk_json_expect(&d->cur, ':', "after \"f\"") : bad(d, "\"f\"");
    pdk_free(d->a, f, fl + 1);
    if (st != PDCKPT_OK) return st;
    PDK_TRY(pdk_json_string(&d->cur, d->a, &v, &vl));
    bool ok = vl >= 1 && vl <= 2 && strspn(v, "op") == vl && (vl == 1 || strcmp(v, "op") == 0);
    if (ok) pdckpt_dict_set_ordered(dict, strchr(v, 'o') != NULL);
    if (ok) pdk_dict_set_plain(dict, strchr(v, 'p') != NULL);
    pdk_free(d->a, v, vl + 1);
    return ok ? PDCKPT_OK : bad(d, "dict flags \"o\", \"p\" or \"op\"");
}

/* {"N":["dtype",NODE]}: NODE marked as a numpy scalar of that dtype (which must hold it). */
static pdckpt_status numpy_scalar(dec *d, pdckpt_value **out, int depth) {
    char  *name;
    size_t nl;
    PDK_TRY(pdk_json_expect(&d->cur, '[', "to start a numpy scalar"));
    PDK_TRY(pdk_json_string(&d->cur, d->a, &name, &nl));
    pdckpt_dtype  dt = pdckpt_dtype_from_name(name);
    pdckpt_status st = pdk_json_expect(&d->cur, ',', "in a numpy scalar");
    pdk_free(d->a, name, nl + 1);
    if (st == PDCKPT_OK) st = decode(d, out, depth + 1);
    if (st == PDCKPT_OK && !pdckpt_value_set_numpy_scalar(*out, dt))
        st = bad(d, "a numpy scalar whose dtype holds its value");
    if (st == PDCKPT_OK) st = pdk_json_expect(&d->cur, ']', "to close a numpy scalar");
    return st;
}

static pdckpt_status tagged(dec *d, pdckpt_value **out, int depth) {
    char  *tag;
    size_t tl;
    PDK_TRY(pdk_json_string(&d->cur, d->a, &tag, &tl));
    pdckpt_status st = pdk_json_expect(&d->cur, ':', "after a tag");
    char          c = tl == 1 ? tag[0] : '?';
    pdk_free(d->a, tag, tl + 1);
    if (st != PDCKPT_OK) return st;
    switch (c) {
    case 't': st = tensor_ref(d, out); break;
    case 'i': st = number_value(d, false, out); break;
    case 'f': st = number_value(d, true, out); break;
    case 'b': st = hex_value(d, false, out); break;
    case 'x': st = hex_value(d, true, out); break;
    case 'l': st = items(d, PDCKPT_KIND_LIST, out, depth); break;
    case 'u': st = items(d, PDCKPT_KIND_TUPLE, out, depth); break;
    case 's': st = items(d, PDCKPT_KIND_SET, out, depth); break;
    case 'd':
        st = items(d, PDCKPT_KIND_DICT, out, depth);
        if (st == PDCKPT_OK) st = dict_flags(d, *out);
        break;
    case 'o': st = object_value(d, out, depth); break;
    case 'N': st = numpy_scalar(d, out, depth); break;
    default: return bad(d, "a tag t, i, f, b, x, l, u, s, d, o or N");
    }
    if (st == PDCKPT_OK) st = pdk_json_expect(&d->cur, '}', "to close a tagged value");
    if (st != PDCKPT_OK) pdckpt_value_free(*out), *out = NULL;
    return st;
}

static pdckpt_status decode(dec *d, pdckpt_value **out, int depth) {
    *out = NULL;
    if (depth > MAX_DEPTH) return pdk_cur_fail(&d->cur, "pdckpt.tree: nested too deeply");
    pdk_json_ws(&d->cur);
    if (pdk_cur_left(&d->cur) == 0) return bad(d, "a value");
    char c = (char)d->cur.base[d->cur.pos];
    if (c == '"') return string_value(d, out);
    if (c != '{') return literal(d, out);
    d->cur.pos++;
    return tagged(d, out, depth);
}

pdckpt_status pdk_st_tree_decode(const char *json, size_t len, const char *source,
                                 const pdckpt_value *tensors, const pdckpt_allocator *a,
                                 pdckpt_value **out, pdckpt_error *err) {
    size_t n = pdckpt_value_len(tensors);
    dec    d = {.tensors = tensors, .a = a, .used = calloc(n ? n : 1, sizeof(bool))};
    if (!d.used) return pdk_fail_nomem(err, "tree metadata");
    pdk_cur_init(&d.cur, (const uint8_t *)json, len, source, err);
    char         *field = NULL;
    size_t        fl = 0;
    int64_t       version = 0;
    pdckpt_value *v = NULL;
    *out = NULL;
    pdckpt_status st = pdk_json_expect(&d.cur, '{', "pdckpt.tree to start with '{'");
    if (st == PDCKPT_OK) st = pdk_json_string(&d.cur, a, &field, &fl);
    if (st == PDCKPT_OK && strcmp(field, "v") != 0) st = bad(&d, "\"v\" first");
    if (st == PDCKPT_OK) st = pdk_json_expect(&d.cur, ':', "after \"v\"");
    if (st == PDCKPT_OK) st = pdk_json_uint(&d.cur, (uint64_t *)&version, "version");
    if (st == PDCKPT_OK && version != 1)
        st = pdk_fail(err, PDCKPT_ERR_UNSUPPORTED, source, -1,
                      "pdckpt.tree version %lld is newer than this pdckpt (1)", (long long)version);
    if (field) pdk_free(a, field, fl + 1), field = NULL;
    if (st == PDCKPT_OK) st = pdk_json_expect(&d.cur, ',', "after the version");
    if (st == PDCKPT_OK) st = pdk_json_string(&d.cur, a, &field, &fl);
    if (st == PDCKPT_OK && strcmp(field, "root") != 0) st = bad(&d, "\"root\"");
    if (st == PDCKPT_OK) st = pdk_json_expect(&d.cur, ':', "after \"root\"");
    if (st == PDCKPT_OK) st = decode(&d, &v, 0);
    if (st == PDCKPT_OK) st = pdk_json_expect(&d.cur, '}', "to close pdckpt.tree");
    for (size_t i = 0; st == PDCKPT_OK && i < n; i++)
        if (!d.used[i])
            st = pdk_fail(err, PDCKPT_ERR_FORMAT, source, -1,
                          "tensor '%s' is not in the file's pdckpt.tree",
                          pdckpt_value_get_string(pdckpt_dict_key_at(tensors, i), NULL));
    if (field) pdk_free(a, field, fl + 1);
    free(d.used);
    if (st != PDCKPT_OK) return pdckpt_value_free(v), st;
    *out = v;
    return PDCKPT_OK;
}
