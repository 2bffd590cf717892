/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_index.c — "<file>.pdkidx", the index pdckpt writes beside a pickle it saved so that a
 * lazy (zero-copy) open builds the tree without reading the pickle's opcodes (issue 18; design in
 * docs/pickles.md, "The lazy-open index").  Paddle never sees it: the pickle stays byte-identical
 * with paddle.save.  The index is the loaded tree itself -- every value, tensors as (dtype, shape,
 * offset of the data in the pickle, name) -- so it holds exactly what parsing gives.
 *
 * It is trusted only for the file version it was written for: the pickle's size, inode, device,
 * mtime and ctime (which no program can set back) and xxh3 hashes of its first and last 64 KiB
 * must all match, and the index's own body hash; every range is checked inside the file.  Any
 * mismatch, a truncated or garbled index, a limit, or an error means "no index": the pickle is
 * parsed as always.  Loads that read (not zero_copy) and verify never use it.
 */
#include "pickle.h"
#include "pickle_vm.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#define IDX_MAGIC     "PDKIDX1\n"
#define IDX_EDGE      ((size_t)64 << 10)
#define IDX_HEADER    PDK_PICKLE_INDEX_HEADER /* magic, stamp, body length and hash */
#define IDX_NONAME    UINT64_MAX
#define IDX_MAX_BYTES ((size_t)64 << 20)

enum {
    IK_NONE,
    IK_FALSE,
    IK_TRUE,
    IK_INT,
    IK_FLOAT,
    IK_STRING,
    IK_BYTES,
    IK_LIST,
    IK_TUPLE,
    IK_SET,
    IK_DICT,
    IK_TENSOR,
};

/* What binds an index to one version of its pickle. */
typedef struct idx_stamp {
    uint64_t v[7]; /* size, inode, device, mtime ns, ctime ns, head hash, tail hash */
} idx_stamp;

static void stamp_of(const struct stat *st, const uint8_t *data, size_t len, idx_stamp *out) {
    size_t edge = len < IDX_EDGE ? len : IDX_EDGE;
    out->v[0] = (uint64_t)st->st_size;
    out->v[1] = (uint64_t)st->st_ino;
    out->v[2] = (uint64_t)st->st_dev;
    out->v[3] = (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
    out->v[4] = (uint64_t)st->st_ctim.tv_sec * 1000000000u + (uint64_t)st->st_ctim.tv_nsec;
    out->v[5] = XXH3_64bits(data, edge);
    out->v[6] = XXH3_64bits(data + len - edge, edge);
}

static bool same_version(const struct stat *x, const struct stat *y) {
    return x->st_size == y->st_size && x->st_ino == y->st_ino && x->st_dev == y->st_dev &&
           x->st_mtim.tv_sec == y->st_mtim.tv_sec && x->st_mtim.tv_nsec == y->st_mtim.tv_nsec &&
           x->st_ctim.tv_sec == y->st_ctim.tv_sec && x->st_ctim.tv_nsec == y->st_ctim.tv_nsec;
}

static bool index_path(const char *path, char *out, size_t cap) {
    int n = snprintf(out, cap, "%s.pdkidx", path);
    return n > 0 && (size_t)n < cap;
}

/* ---- writing ---- */

typedef struct ibuf {
    const pdckpt_allocator *a;
    uint8_t                *p;
    size_t                  len, cap;
    bool                    ok;
    const uint8_t          *base; /* the mapped pickle: tensors must point into it */
    size_t                  base_len;
} ibuf;

static void put(ibuf *b, const void *bytes, size_t n) {
    if (!b->ok) return;
    if (n > b->cap - b->len) {
        size_t   cap = b->cap ? b->cap : 4096;
        uint8_t *grown;
        while (cap - b->len < n) cap *= 2;
        if (!(grown = pdk_alloc(b->a, cap))) {
            b->ok = false;
            return;
        }
        if (b->len) memcpy(grown, b->p, b->len);
        pdk_free(b->a, b->p, b->cap);
        b->p = grown;
        b->cap = cap;
    }
    memcpy(b->p + b->len, bytes, n);
    b->len += n;
}

static void put_u8(ibuf *b, uint8_t v) {
    put(b, &v, 1);
}

static void put_u64(ibuf *b, uint64_t v) {
    uint8_t le[8];
    pdk_store_u64le(le, v);
    put(b, le, 8);
}

static void put_blob(ibuf *b, const void *p, size_t n) {
    put_u64(b, n);
    put(b, p, n);
}

/* A tensor whose data lies in the mapped pickle (anything else cannot be indexed). */
static void put_tensor(ibuf *b, const pdckpt_value *v) {
    pdckpt_tensor_view tv;
    pdckpt_tensor_get(v, &tv);
    const uint8_t *d = tv.data;
    bool           inside = tv.n_bytes == 0 || (d >= b->base && tv.n_bytes <= b->base_len &&
                                      (size_t)(d - b->base) <= b->base_len - tv.n_bytes);
    if (!inside || tv.n_lod_levels) {
        b->ok = false;
        return;
    }
    put_u8(b, IK_TENSOR);
    put_u8(b, (uint8_t)tv.dtype);
    put_u8(b, (uint8_t)tv.n_dims);
    for (int32_t i = 0; i < tv.n_dims; i++) put_u64(b, (uint64_t)tv.dims[i]);
    put_u64(b, tv.n_bytes ? (uint64_t)(d - b->base) : 0);
    if (tv.name)
        put_blob(b, tv.name, strlen(tv.name));
    else
        put_u64(b, IDX_NONAME);
}

static void put_value(ibuf *b, const pdckpt_value *v) {
    pdckpt_kind k = pdckpt_value_kind(v);
    int64_t     i = 0;
    double      f = 0;
    bool        t = false;
    size_t      n = 0;
    const void *s;
    switch (k) {
    case PDCKPT_KIND_NONE: put_u8(b, IK_NONE); return;
    case PDCKPT_KIND_BOOL:
        pdckpt_value_get_bool(v, &t);
        put_u8(b, t ? IK_TRUE : IK_FALSE);
        return;
    case PDCKPT_KIND_INT:
        pdckpt_value_get_int(v, &i);
        put_u8(b, IK_INT);
        put_u64(b, (uint64_t)i);
        return;
    case PDCKPT_KIND_FLOAT:
        pdckpt_value_get_float(v, &f);
        put_u8(b, IK_FLOAT);
        put(b, &f, 8); /* little-endian hosts only, as every format pdckpt writes */
        return;
    case PDCKPT_KIND_STRING:
    case PDCKPT_KIND_BYTES:
        s = k == PDCKPT_KIND_STRING ? (const void *)pdckpt_value_get_string(v, &n)
                                    : pdckpt_value_get_bytes(v, &n);
        put_u8(b, k == PDCKPT_KIND_STRING ? IK_STRING : IK_BYTES);
        put_blob(b, s, n);
        return;
    case PDCKPT_KIND_TENSOR: put_tensor(b, v); return;
    default: break;
    }
    if (k != PDCKPT_KIND_LIST && k != PDCKPT_KIND_TUPLE && k != PDCKPT_KIND_SET &&
        k != PDCKPT_KIND_DICT) {
        b->ok = false; /* objects: the index holds plain trees only */
        return;
    }
    put_u8(b, k == PDCKPT_KIND_LIST    ? IK_LIST
              : k == PDCKPT_KIND_TUPLE ? IK_TUPLE
              : k == PDCKPT_KIND_SET   ? IK_SET
                                       : IK_DICT);
    put_u64(b, pdckpt_value_len(v));
    for (size_t j = 0; j < pdckpt_value_len(v) && b->ok; j++) {
        if (k == PDCKPT_KIND_DICT) put_value(b, pdckpt_dict_key_at(v, j));
        put_value(b, pdckpt_value_at(v, j));
    }
}

void pdk_pickle_index_seal(uint8_t *idx, size_t len, const pdk_input *in, const struct stat *st) {
    idx_stamp stamp;
    stamp_of(st, in->data, in->len, &stamp);
    memcpy(idx, IDX_MAGIC, 8);
    for (int i = 0; i < 7; i++) pdk_store_u64le(idx + 8 + 8 * i, stamp.v[i]);
    pdk_store_u64le(idx + IDX_HEADER - 16, len - IDX_HEADER);
    pdk_store_u64le(idx + IDX_HEADER - 8, XXH3_64bits(idx + IDX_HEADER, len - IDX_HEADER));
}

/* The index bytes for the pickle mapped in `in` (stamped with `st`); false if it cannot be. */
static bool encode(const pdk_input *in, const struct stat *st, const pdckpt_allocator *a, ibuf *b) {
    pdckpt_load_options lo = pdckpt_load_options_default();
    pdckpt_error        quiet = PDCKPT_ERROR_INIT;
    pdckpt_value       *tree = NULL;
    lo.zero_copy = true;
    lo.allocator = a;
    if (pdk_pickle_load(in, &lo, &tree, &quiet) != PDCKPT_OK) return false;
    static const uint8_t header[IDX_HEADER]; /* sealed below */
    put(b, header, sizeof header);
    put_value(b, tree);
    pdckpt_value_free(tree);
    if (!b->ok) return false;
    pdk_pickle_index_seal(b->p, b->len, in, st);
    return true;
}

bool pdk_pickle_index_encode(const pdk_input *in, const struct stat *st, const pdckpt_allocator *a,
                             uint8_t **idx, size_t *len, size_t *cap) {
    ibuf b = {a, NULL, 0, 0, true, in->data, in->len};
    if (!encode(in, st, a, &b)) {
        pdk_free(a, b.p, b.cap);
        return false;
    }
    *idx = b.p, *len = b.len, *cap = b.cap;
    return true;
}

typedef struct idx_count {
    uint64_t tensors, bytes;
} idx_count;

static int count_tensor(void *ctx, const pdckpt_path_step *path, size_t depth,
                        const pdckpt_value *v) {
    (void)path, (void)depth;
    idx_count         *c = ctx;
    pdckpt_tensor_view tv;
    if (pdckpt_tensor_get(v, &tv)) c->tensors++, c->bytes += tv.n_bytes;
    return 0;
}

/* The index costs about one parse at save time and pays back when a parse would touch a page per
 * tensor: written for trees of few large tensors only (PDK_PICKLE_INDEX_MIN_AVG bytes each). */
static bool worth_indexing(const pdckpt_value *root) {
    idx_count    c = {0, 0};
    pdckpt_error quiet = PDCKPT_ERROR_INIT;
    return pdckpt_value_walk(root, count_tensor, &c, &quiet) == PDCKPT_OK && c.tensors &&
           c.bytes / c.tensors >= PDK_PICKLE_INDEX_MIN_AVG;
}

/* Removes an index an earlier save left beside `path` (only a file that is one: its magic), so a
 * save that writes none leaves no stale one behind (stale ones are ignored anyway). */
static void remove_old_index(const char *side) {
    char  magic[8];
    FILE *f = fopen(side, "rb");
    if (!f) return;
    bool ours = fread(magic, 1, sizeof magic, f) == sizeof magic && !memcmp(magic, IDX_MAGIC, 8);
    fclose(f);
    if (ours) unlink(side);
}

void pdk_pickle_index_write(const pdckpt_value *root, const char *path, bool durable,
                            const pdckpt_allocator *a) {
    char        side[4096];
    struct stat st, again;
    pdk_input   in;
    if (!index_path(path, side, sizeof side)) return;
    if (!worth_indexing(root) || stat(path, &st) != 0 ||
        pdk_input_open_file(path, true, a, &in, NULL) != PDCKPT_OK) {
        remove_old_index(side);
        return;
    }
    ibuf b = {a, NULL, 0, 0, true, in.data, in.len};
    bool ok = in.len == (size_t)st.st_size && encode(&in, &st, a, &b) && stat(path, &again) == 0 &&
              same_version(&st, &again);
    pdk_input_close(&in);
    pdk_sink    *sink = NULL;
    pdckpt_error quiet = PDCKPT_ERROR_INIT;
    if (!ok) remove_old_index(side);
    if (ok && pdk_sink_open_atomic_file(side, durable, a, &sink, &quiet) == PDCKPT_OK) {
        if (pdk_sink_write(sink, b.p, b.len, &quiet) == PDCKPT_OK)
            pdk_sink_commit(sink, &quiet);
        else
            pdk_sink_abort(sink);
    }
    pdk_free(a, b.p, b.cap);
}

/* ---- reading ---- */

typedef struct idx_reader {
    pdk_cursor                 cur; /* the index body, without an error sink */
    const pdk_input           *in;  /* the mapped pickle */
    const pdckpt_load_options *opts;
    uint32_t                   max_depth;
    uint64_t                   budget; /* values and bytes the tree may still take */
} idx_reader;

static bool get_u64(idx_reader *r, uint64_t *v) {
    return pdk_cur_u64le(&r->cur, v, "u64") == PDCKPT_OK;
}

static bool charge(idx_reader *r, uint64_t n) {
    if (n > r->budget) return false;
    r->budget -= n;
    return true;
}

static pdckpt_value *get_value(idx_reader *r, uint32_t depth);

static pdckpt_value *get_tensor(idx_reader *r) {
    uint8_t        dt = 0, nd = 0;
    int64_t        dims[PDCKPT_MAX_DIMS];
    uint64_t       off = 0, n_el, n_bytes, name_len = 0;
    size_t         bad;
    const uint8_t *name = NULL;
    pdckpt_error   quiet = PDCKPT_ERROR_INIT;
    if (pdk_cur_u8(&r->cur, &dt, "dtype") || pdk_cur_u8(&r->cur, &nd, "dims") ||
        nd > PDCKPT_MAX_DIMS)
        return NULL;
    for (uint8_t i = 0; i < nd; i++)
        if (!get_u64(r, (uint64_t *)&dims[i]) || dims[i] < 0) return NULL;
    if (!get_u64(r, &off) || !get_u64(r, &name_len) ||
        (name_len != IDX_NONAME && pdk_cur_bytes(&r->cur, name_len, &name, "name")) ||
        (name && (memchr(name, 0, name_len) || !pk_utf8_valid(name, name_len, &bad))) ||
        pdk_tensor_sizes((pdckpt_dtype)dt, nd, dims, &n_el, &n_bytes, &quiet) ||
        n_bytes > r->opts->max_tensor_bytes || off > r->in->len || n_bytes > r->in->len - off ||
        !charge(r, 256 + (name ? name_len : 0)))
        return NULL;
    pdckpt_value *t = NULL;
    if (pdk_tensor_from_input(r->in, r->opts, (pdckpt_dtype)dt, nd, dims, r->in->data + off, &t,
                              &quiet))
        return NULL;
    char *z = name ? pdk_strndup(r->opts->allocator, (const char *)name, name_len) : NULL;
    if (name && (!z || pdckpt_tensor_set_name(t, z, &quiet))) {
        pdckpt_value_free(t);
        t = NULL;
    }
    pdk_strfree(r->opts->allocator, z);
    return t;
}

static pdckpt_value *get_items(idx_reader *r, uint8_t tag, uint32_t depth) {
    uint64_t n = 0;
    if (depth >= r->max_depth || !get_u64(r, &n) || n > pdk_cur_left(&r->cur) || !charge(r, 64))
        return NULL;
    pdckpt_kind   k = tag == IK_LIST    ? PDCKPT_KIND_LIST
                      : tag == IK_TUPLE ? PDCKPT_KIND_TUPLE
                      : tag == IK_SET   ? PDCKPT_KIND_SET
                                        : PDCKPT_KIND_DICT;
    pdckpt_value *c = pdckpt_value_new_container(r->opts->allocator, k);
    pdckpt_error  quiet = PDCKPT_ERROR_INIT;
    for (uint64_t i = 0; c && i < n; i++) {
        pdckpt_value *key = k == PDCKPT_KIND_DICT ? get_value(r, depth + 1) : NULL;
        pdckpt_value *v = k != PDCKPT_KIND_DICT || key ? get_value(r, depth + 1) : NULL;
        pdckpt_status st = PDCKPT_ERR_FORMAT;
        if (v && k == PDCKPT_KIND_DICT)
            st = pdckpt_dict_set_value(c, key, v, &quiet);
        else if (v)
            st = pdckpt_value_append(c, v, &quiet);
        else
            pdckpt_value_free(key);
        if (st != PDCKPT_OK) {
            pdckpt_value_free(c);
            c = NULL;
        }
    }
    return c;
}

static pdckpt_value *get_value(idx_reader *r, uint32_t depth) {
    const pdckpt_allocator *a = r->opts->allocator;
    uint8_t                 tag = 0;
    uint64_t                u = 0;
    const uint8_t          *s = NULL;
    size_t                  bad;
    double                  f;
    if (pdk_cur_u8(&r->cur, &tag, "kind") || !charge(r, 64)) return NULL;
    switch (tag) {
    case IK_NONE: return pdckpt_value_new_none(a);
    case IK_FALSE:
    case IK_TRUE: return pdckpt_value_new_bool(a, tag == IK_TRUE);
    case IK_INT: return get_u64(r, &u) ? pdckpt_value_new_int(a, (int64_t)u) : NULL;
    case IK_FLOAT:
        if (pdk_cur_bytes(&r->cur, 8, &s, "float")) return NULL;
        memcpy(&f, s, 8);
        return pdckpt_value_new_float(a, f);
    case IK_STRING:
    case IK_BYTES:
        if (!get_u64(r, &u) || pdk_cur_bytes(&r->cur, u, &s, "text") || !charge(r, u) ||
            (tag == IK_STRING && !pk_utf8_valid(s, (size_t)u, &bad))) /* as a parse checks */
            return NULL;
        return tag == IK_STRING ? pdckpt_value_new_string(a, (const char *)s, (size_t)u)
                                : pdckpt_value_new_bytes(a, s, (size_t)u);
    case IK_TENSOR: return get_tensor(r);
    case IK_LIST:
    case IK_TUPLE:
    case IK_SET:
    case IK_DICT: return get_items(r, tag, depth);
    default: return NULL;
    }
}

/* The index's header against the pickle as it is now; the body's hash. */
static bool index_valid(const pdk_input *idx, const pdk_input *in, const struct stat *st) {
    idx_stamp now;
    if (idx->len < IDX_HEADER || memcmp(idx->data, IDX_MAGIC, 8) || in->len != (size_t)st->st_size)
        return false;
    stamp_of(st, in->data, in->len, &now);
    for (int i = 0; i < 7; i++)
        if (pdk_load_u64le(idx->data + 8 + 8 * i) != now.v[i]) return false;
    const uint8_t *body = idx->data + IDX_HEADER;
    size_t         n = idx->len - IDX_HEADER;
    return pdk_load_u64le(idx->data + IDX_HEADER - 16) == n &&
           pdk_load_u64le(idx->data + IDX_HEADER - 8) == XXH3_64bits(body, n);
}

bool pdk_pickle_index_decode(const uint8_t *idx, size_t len, const pdk_input *in,
                             const struct stat *st, const pdckpt_load_options *opts,
                             pdckpt_value **out) {
    pdk_input  ix = {.data = idx, .len = len};
    uint64_t   b = opts->max_alloc_bytes ? opts->max_alloc_bytes : in->len * 4 + (64u << 20);
    idx_reader r = {.in = in, .opts = opts, .budget = b};
    r.max_depth = opts->max_depth ? opts->max_depth : 200;
    *out = NULL;
    if (len < IDX_HEADER || len > IDX_MAX_BYTES || !index_valid(&ix, in, st)) return false;
    pdk_cur_init(&r.cur, idx + IDX_HEADER, len - IDX_HEADER, NULL, NULL);
    pdckpt_value *tree = get_value(&r, 0);
    if (tree && pdk_cur_left(&r.cur)) { /* trailing bytes: not what was written */
        pdckpt_value_free(tree);
        tree = NULL;
    }
    *out = tree;
    return tree != NULL;
}

bool pdk_pickle_index_load(const char *path, const struct stat *st, const pdckpt_load_options *opts,
                           pdckpt_value **out) {
    char        side[4096];
    pdk_input   idx, in;
    struct stat sst;
    *out = NULL;
    /* sized before it is opened, and mapped, not read: a planted multi-GiB sidecar costs nothing */
    if (!index_path(path, side, sizeof side) || stat(side, &sst) != 0 ||
        (uint64_t)sst.st_size > IDX_MAX_BYTES ||
        pdk_input_open_file(side, true, opts->allocator, &idx, NULL) != PDCKPT_OK)
        return false;
    if (pdk_input_open_file(path, true, opts->allocator, &in, NULL) == PDCKPT_OK) {
        pdk_pickle_index_decode(idx.data, idx.len, &in, st, opts, out);
        pdk_input_close(&in);
    }
    pdk_input_close(&idx);
    return *out != NULL;
}
