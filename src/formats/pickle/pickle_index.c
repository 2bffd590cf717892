/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_index.c — "<file>.pdkidx", the index pdckpt writes beside a pickle it saved so that a
 * lazy (zero-copy) open builds the tree without reading the pickle's opcodes, or (pdckpt_lazy_open)
 * makes the top-level entries one at a time, on access (issue 18; design in docs/pickles.md, "The
 * lazy-open index").  Paddle never sees it: the pickle stays byte-identical with paddle.save.  The
 * index is the loaded tree itself -- every value, tensors as (dtype, shape, offset of the data in
 * the pickle, name) -- followed by the offsets of the top-level entries in it.  It is written
 * from one parse of the saved file (tensors averaging 64 KiB or more: the parse costs less than
 * the data), or, for a state dict of tensors (any size), from the save itself: the writer records
 * where each payload went, and the tree paddle.load's rules give back is the saved one plus the
 * name table (tests compare the two for every dtype and naming).
 *
 * It is trusted only for the file version it was written for: the pickle's size, inode, device,
 * mtime and ctime (which no program can set back) and xxh3 hashes of its first and last 64 KiB
 * must all match, and the index's own body hash; every range is checked inside the file.  Any
 * mismatch, a truncated or garbled index, a limit, or an error means "no index": the pickle is
 * parsed as always.  Loads that read (not zero_copy) and verify never use it.
 */
#include "pickle.h"
#include "pickle_opcodes.h"
#include "pickle_vm.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#define IDX_MAGIC     "PDKIDX2\n"
#define IDX_MAGIC_V1  "PDKIDX1\n" /* removed by a save like its own, never read */
#define IDX_EDGE      ((size_t)64 << 10)
#define IDX_HEADER    PDK_PICKLE_INDEX_HEADER /* magic, stamp, body length and hash */
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
    IK_NAMES, /* a dict root's entry: {key: name} of the tensors of every entry before it (the
               * name table of Paddle's state-dict path, derived, not stored twice) */
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

/* Makes room for `n` more bytes (false: out of memory, the buffer is then marked failed). */
static bool grow(ibuf *b, size_t n) {
    if (!b->ok) return false;
    size_t   cap = b->cap ? b->cap : 4096;
    uint8_t *grown;
    while (cap - b->len < n) cap *= 2;
    if (!(grown = pdk_alloc(b->a, cap))) return b->ok = false;
    if (b->len) memcpy(grown, b->p, b->len);
    pdk_free(b->a, b->p, b->cap);
    b->p = grown;
    b->cap = cap;
    return true;
}

static inline void put(ibuf *b, const void *bytes, size_t n) {
    if (n == 0) return; /* an empty table has no buffer: memcpy's NULL is undefined even for 0 */
    if (n > b->cap - b->len && !grow(b, n)) return;
    if (!b->ok) return;
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

/* Counts, lengths, dims and offsets: LEB128 (the index of 100,000 small tensors is read whole by
 * every open, so its size is its cost). */
static void put_var(ibuf *b, uint64_t v) {
    uint8_t out[10];
    size_t  n = 0;
    do {
        out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    put(b, out, n);
}

static void put_blob(ibuf *b, const void *p, size_t n) {
    put_var(b, n);
    put(b, p, n);
}

static void put_string(ibuf *b, const char *s, size_t n) {
    put_u8(b, IK_STRING);
    put_blob(b, s, n);
}

/* A tensor whose data starts at `off` in the pickle. */
static void put_tensor_at(ibuf *b, const pdckpt_tensor_view *tv, uint64_t off, const char *name) {
    put_u8(b, IK_TENSOR);
    put_u8(b, (uint8_t)tv->dtype);
    put_u8(b, (uint8_t)tv->n_dims);
    for (int32_t i = 0; i < tv->n_dims; i++) put_var(b, (uint64_t)tv->dims[i]);
    put_var(b, tv->n_bytes ? off : 0);
    put_var(b, name ? strlen(name) + 1 : 0); /* 0: no name */
    if (name) put(b, name, strlen(name));
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
    put_tensor_at(b, &tv, tv.n_bytes ? (uint64_t)(d - b->base) : 0, tv.name);
}

static uint8_t container_tag(pdckpt_kind k) {
    return k == PDCKPT_KIND_LIST    ? IK_LIST
           : k == PDCKPT_KIND_TUPLE ? IK_TUPLE
           : k == PDCKPT_KIND_SET   ? IK_SET
           : k == PDCKPT_KIND_DICT  ? IK_DICT
                                    : IK_NONE;
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
    if (container_tag(k) == IK_NONE) {
        b->ok = false; /* objects: the index holds plain trees only */
        return;
    }
    put_u8(b, container_tag(k));
    put_var(b, pdckpt_value_len(v));
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

/* Room for the header, sealed in finish(). */
static void begin(ibuf *b) {
    static const uint8_t header[IDX_HEADER];
    put(b, header, sizeof header);
}

/* The table of top-level entry offsets (`tab`, `n` of them) after the tree; the header stamped
 * for the pickle mapped in `in`, with the body's length and hash. */
static bool finish(ibuf *b, const ibuf *tab, uint64_t n, const pdk_input *in,
                   const struct stat *st) {
    put(b, tab->p, tab->len);
    put_u64(b, n);
    if (!b->ok || !tab->ok) return false;
    pdk_pickle_index_seal(b->p, b->len, in, st);
    return true;
}

/* The tree, noting where each top-level entry starts. */
static uint64_t put_root(ibuf *b, ibuf *tab, const pdckpt_value *root) {
    pdckpt_kind k = pdckpt_value_kind(root);
    if (k != PDCKPT_KIND_DICT && k != PDCKPT_KIND_LIST && k != PDCKPT_KIND_TUPLE) {
        put_value(b, root);
        return 0;
    }
    size_t n = pdckpt_value_len(root);
    put_u8(b, container_tag(k));
    put_var(b, n);
    for (size_t j = 0; j < n && b->ok; j++) {
        put_u64(tab, b->len - IDX_HEADER);
        if (k == PDCKPT_KIND_DICT) put_value(b, pdckpt_dict_key_at(root, j));
        put_value(b, pdckpt_value_at(root, j));
    }
    return n;
}

/* The index of the pickle mapped in `in` (stamped with `st`) from one parse of it. */
static bool encode_parsed(const pdk_input *in, const struct stat *st, ibuf *b) {
    pdckpt_load_options lo = pdckpt_load_options_default();
    pdckpt_error        quiet = PDCKPT_ERROR_INIT;
    pdckpt_value       *tree = NULL;
    lo.zero_copy = true;
    lo.allocator = b->a;
    if (pdk_pickle_load(in, &lo, &tree, &quiet) != PDCKPT_OK) return false;
    ibuf tab = {b->a, NULL, 0, 0, true, NULL, 0};
    begin(b);
    uint64_t n = put_root(b, &tab, tree);
    pdckpt_value_free(tree);
    bool ok = finish(b, &tab, n, in, st);
    pdk_free(b->a, tab.p, tab.cap);
    return ok;
}

bool pdk_pickle_index_encode(const pdk_input *in, const struct stat *st, const pdckpt_allocator *a,
                             uint8_t **idx, size_t *len, size_t *cap) {
    ibuf b = {a, NULL, 0, 0, true, in->data, in->len};
    if (!encode_parsed(in, st, &b)) {
        pdk_free(a, b.p, b.cap);
        return false;
    }
    *idx = b.p, *len = b.len, *cap = b.cap;
    return true;
}

/* ---- the index from the save itself ---- */

/* What the state-dict path wrote for `root` loads back as `root` with the name table appended
 * (pickle_emit_state.c, pickle_paddle.c): when every entry is a tensor under a str key and keeps
 * its dtype through numpy (float8 comes back int8; uint16 is refused there). */
static bool saved_tree_known(const pdckpt_value *root, const pdk_pickle_offsets *offs) {
    if (!offs || !offs->ok || !offs->state_path || pdckpt_value_kind(root) != PDCKPT_KIND_DICT ||
        offs->n != pdckpt_value_len(root) || offs->framed != offs->n)
        return false;
    for (size_t i = 0; i < offs->n; i++) {
        size_t             len;
        const char        *key = pdckpt_value_get_string(pdckpt_dict_key_at(root, i), &len);
        pdckpt_tensor_view tv;
        if (!key || pdckpt_value_kind(pdckpt_dict_key_at(root, i)) != PDCKPT_KIND_STRING ||
            strlen(key) != len || !pdckpt_tensor_get(pdckpt_value_at(root, i), &tv) ||
            tv.n_lod_levels || tv.dtype == PDCKPT_DTYPE_FLOAT8_E4M3FN ||
            tv.dtype == PDCKPT_DTYPE_FLOAT8_E5M2 || tv.dtype == PDCKPT_DTYPE_UINT16)
            return false;
    }
    return true;
}

/* The payload the writer placed at `off` is there: the bytes opcode and length right before it
 * (so a file another writer renamed over `path` since, laid out otherwise, gets no index). */
static bool payload_at(const pdk_input *in, uint64_t off, uint64_t n) {
    const uint8_t *d = in->data;
    if (n == 0) return true;
    if (off > in->len || n > in->len - off) return false;
    if (n < 256) return off >= 2 && d[off - 2] == PK_OP_SHORT_BINBYTES && d[off - 1] == n;
    if (n <= UINT32_MAX)
        return off >= 5 && d[off - 5] == PK_OP_BINBYTES && pdk_load_u32le(d + off - 4) == n;
    return off >= 9 && d[off - 9] == PK_OP_BINBYTES8 && pdk_load_u64le(d + off - 8) == n;
}

/* The loaded tree of a state dict the writer placed at `offs`: its entries, then the name table
 * {key: name} (a tensor without a name is named by its key, as the writer names it). */
static bool encode_saved(const pdckpt_value *root, const pdk_pickle_offsets *offs,
                         const pdk_input *in, const struct stat *st, ibuf *b) {
    size_t n = pdckpt_value_len(root);
    ibuf   tab = {b->a, NULL, 0, 0, true, NULL, 0};
    grow(&tab, 8 * n + 8);
    grow(b, 96 * n + 4096); /* W2's entries take ~60 bytes: one allocation, no copies */
    begin(b);
    put_u8(b, IK_DICT);
    put_var(b, n + 1);
    for (size_t i = 0; i < n && b->ok; i++) {
        const char        *key = pdckpt_value_get_string(pdckpt_dict_key_at(root, i), NULL);
        pdckpt_tensor_view tv;
        pdckpt_tensor_get(pdckpt_value_at(root, i), &tv);
        if (!payload_at(in, offs->at[i], tv.n_bytes)) b->ok = false;
        put_u64(&tab, b->len - IDX_HEADER);
        put_string(b, key, strlen(key));
        put_tensor_at(b, &tv, offs->at[i], tv.name ? tv.name : key);
    }
    put_u64(&tab, b->len - IDX_HEADER);
    put_string(b, PDCKPT_NAME_TABLE_KEY, strlen(PDCKPT_NAME_TABLE_KEY));
    put_u8(b, IK_NAMES);
    bool ok = finish(b, &tab, n + 1, in, st);
    pdk_free(b->a, tab.p, tab.cap);
    return ok;
}

/* ---- writing the sidecar ---- */

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

/* The parsed index costs about one parse at save time and pays back when a parse would touch a
 * page per tensor: written for trees of few large tensors only (PDK_PICKLE_INDEX_MIN_AVG bytes
 * each). */
static bool worth_parsing(const pdckpt_value *root) {
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
    bool ours = fread(magic, 1, sizeof magic, f) == sizeof magic &&
                (!memcmp(magic, IDX_MAGIC, 8) || !memcmp(magic, IDX_MAGIC_V1, 8));
    fclose(f);
    if (ours) unlink(side);
}

void pdk_pickle_index_write(const pdckpt_value *root, const char *path, bool durable,
                            const pdk_pickle_offsets *offs, const pdckpt_allocator *a) {
    char        side[4096];
    struct stat st, again;
    pdk_input   in;
    if (!index_path(path, side, sizeof side)) return;
    bool saved = saved_tree_known(root, offs);
    if ((!saved && !worth_parsing(root)) || stat(path, &st) != 0 ||
        pdk_input_open_file(path, true, a, &in, NULL) != PDCKPT_OK) {
        remove_old_index(side);
        return;
    }
    ibuf b = {a, NULL, 0, 0, true, in.data, in.len};
    bool ok = in.len == (size_t)st.st_size &&
              (saved ? encode_saved(root, offs, &in, &st, &b) : encode_parsed(&in, &st, &b)) &&
              stat(path, &again) == 0 && same_version(&st, &again);
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
    pdk_cursor                 cur; /* the index's tree (only its base, len and pos are used) */
    const pdk_input           *in;  /* the mapped pickle */
    const pdckpt_load_options *opts;
    uint32_t                   max_depth;
    uint64_t                   budget;     /* values and bytes the tree may still take */
    bool                       root_value; /* the value being read is a dict root's entry */
    pdckpt_value              *root;       /* the root dict being made (IK_NAMES), or NULL */
    const pdk_pickle_lazy     *lazy;       /* reading entry `entry` of it (IK_NAMES), or NULL */
    size_t                     entry;
} idx_reader;

/* The cursor steps here are inline: an open checks every byte of a 100,000-tensor index. */
static bool get_u8(idx_reader *r, uint8_t *v) {
    if (r->cur.pos >= r->cur.len) return false;
    *v = r->cur.base[r->cur.pos++];
    return true;
}

static bool get_var(idx_reader *r, uint64_t *v) {
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64 && r->cur.pos < r->cur.len; shift += 7) {
        uint8_t b = r->cur.base[r->cur.pos++];
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

static bool get_bytes(idx_reader *r, uint64_t n, const uint8_t **p) {
    if (n > r->cur.len - r->cur.pos) return false;
    *p = r->cur.base + r->cur.pos;
    r->cur.pos += (size_t)n;
    return true;
}

/* UTF-8 as a parse checks it; ASCII (every name Paddle makes) eight bytes at a time. */
static bool utf8_ok(const uint8_t *s, size_t n) {
    size_t   i = 0, bad;
    uint64_t w;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080u) break;
    }
    while (i < n && s[i] < 0x80) i++;
    return i == n || pk_utf8_valid(s + i, n - i, &bad);
}

static bool charge(idx_reader *r, uint64_t n) {
    if (n > r->budget) return false;
    r->budget -= n;
    return true;
}

/* Each read_* checks one value and, when `out` is not NULL, makes it (NULL: a check only). */
static bool read_value(idx_reader *r, uint32_t depth, pdckpt_value **out);

static bool read_tensor(idx_reader *r, pdckpt_value **out) {
    uint8_t        dt = 0, nd = 0;
    int64_t        dims[PDCKPT_MAX_DIMS];
    uint64_t       off = 0, n_el, n_bytes, name_len = 0;
    const uint8_t *name = NULL;
    pdckpt_error   quiet = PDCKPT_ERROR_INIT;
    if (!get_u8(r, &dt) || !get_u8(r, &nd) || nd > PDCKPT_MAX_DIMS) return false;
    for (uint8_t i = 0; i < nd; i++)
        if (!get_var(r, (uint64_t *)&dims[i]) || dims[i] < 0) return false;
    if (!get_var(r, &off) || !get_var(r, &name_len) ||
        (name_len && (!get_bytes(r, name_len - 1, &name) || memchr(name, 0, name_len - 1) ||
                      !utf8_ok(name, name_len - 1))) ||
        pdk_tensor_sizes((pdckpt_dtype)dt, nd, dims, &n_el, &n_bytes, &quiet) ||
        n_bytes > r->opts->max_tensor_bytes || off > r->in->len || n_bytes > r->in->len - off ||
        !charge(r, 256 + name_len))
        return false;
    if (!out) return true;
    pdckpt_value *t = NULL;
    if (pdk_tensor_from_input(r->in, r->opts, (pdckpt_dtype)dt, nd, dims, r->in->data + off, &t,
                              &quiet))
        return false;
    char *z = name ? pdk_strndup(r->opts->allocator, (const char *)name, name_len - 1) : NULL;
    if (name && (!z || pdckpt_tensor_set_name(t, z, &quiet))) {
        pdckpt_value_free(t);
        t = NULL;
    }
    pdk_strfree(r->opts->allocator, z);
    return (*out = t) != NULL;
}

static bool read_text(idx_reader *r, uint8_t tag, pdckpt_value **out) {
    const pdckpt_allocator *a = r->opts->allocator;
    uint64_t                u = 0;
    const uint8_t          *s = NULL;
    if (!get_var(r, &u) || !get_bytes(r, u, &s) || !charge(r, u) ||
        (tag == IK_STRING && !utf8_ok(s, (size_t)u)))
        return false;
    if (!out) return true;
    *out = tag == IK_STRING ? pdckpt_value_new_string(a, (const char *)s, (size_t)u)
                            : pdckpt_value_new_bytes(a, s, (size_t)u);
    return *out != NULL;
}

/* {key: name} into `d` for one entry (key and value are the caller's; only tensors count). */
static bool add_name(pdckpt_value *d, const pdckpt_value *key, const pdckpt_value *v,
                     const pdckpt_allocator *a) {
    size_t             len;
    const char        *k = pdckpt_value_get_string(key, &len);
    pdckpt_tensor_view tv;
    pdckpt_error       quiet = PDCKPT_ERROR_INIT;
    if (!k || pdckpt_value_kind(key) != PDCKPT_KIND_STRING || !pdckpt_tensor_get(v, &tv) ||
        !tv.name)
        return true;
    pdckpt_value *kc = pdckpt_value_new_string(a, k, len);
    pdckpt_value *name = pdckpt_value_new_string(a, tv.name, strlen(tv.name));
    if (kc && name) return pdckpt_dict_set_value(d, kc, name, &quiet) == PDCKPT_OK;
    pdckpt_value_free(kc);
    pdckpt_value_free(name);
    return false;
}

static bool lazy_is_tensor(const pdk_pickle_lazy *l, size_t i);

/* IK_NAMES: made from the root's entries before it, as far as the root is made, or one by one
 * from the lazily opened index. */
static bool read_names(idx_reader *r, pdckpt_value **out) {
    const pdckpt_allocator *a = r->opts->allocator;
    if (!r->root_value) return false;
    if (!out) return true;
    pdckpt_value *d = pdckpt_value_new_container(a, PDCKPT_KIND_DICT);
    bool          ok = d != NULL;
    size_t        n = r->root ? pdckpt_value_len(r->root) : r->lazy ? r->entry : 0;
    for (size_t j = 0; ok && j < n; j++) {
        if (r->root) {
            ok = add_name(d, pdckpt_dict_key_at(r->root, j), pdckpt_value_at(r->root, j), a);
            continue;
        }
        if (!lazy_is_tensor(r->lazy, j)) continue; /* (so no IK_NAMES is made from another) */
        pdckpt_value *key = pdk_pickle_lazy_key(r->lazy, j), *v = pdk_pickle_lazy_value(r->lazy, j);
        ok = key && v && add_name(d, key, v, a);
        pdckpt_value_free(key);
        pdckpt_value_free(v);
    }
    if (!ok) pdckpt_value_free(d);
    return ok && (*out = d) != NULL;
}

/* One item of container `c` (NULL: a check only): a key and a value for a dict. */
static bool read_item(idx_reader *r, pdckpt_value *c, bool dict, uint32_t depth) {
    pdckpt_value *key = NULL, *v = NULL;
    pdckpt_error  quiet = PDCKPT_ERROR_INIT;
    r->root_value = false;
    if (dict && !read_value(r, depth, c ? &key : NULL)) return false;
    r->root_value = dict && depth == 1;
    bool ok = read_value(r, depth, c ? &v : NULL);
    r->root_value = false;
    if (!ok) {
        pdckpt_value_free(key);
        return false;
    }
    if (!c) return true;
    return (dict ? pdckpt_dict_set_value(c, key, v, &quiet) : pdckpt_value_append(c, v, &quiet)) ==
           PDCKPT_OK;
}

static pdckpt_kind tag_kind(uint8_t tag) {
    return tag == IK_LIST    ? PDCKPT_KIND_LIST
           : tag == IK_TUPLE ? PDCKPT_KIND_TUPLE
           : tag == IK_SET   ? PDCKPT_KIND_SET
                             : PDCKPT_KIND_DICT;
}

static bool read_items(idx_reader *r, uint8_t tag, uint32_t depth, pdckpt_value **out) {
    uint64_t n = 0;
    if (depth >= r->max_depth || !get_var(r, &n) || n > r->cur.len - r->cur.pos || !charge(r, 64))
        return false;
    pdckpt_value *c = NULL;
    if (out && !(c = pdckpt_value_new_container(r->opts->allocator, tag_kind(tag)))) return false;
    if (depth == 0 && tag == IK_DICT) r->root = c;
    bool ok = true;
    for (uint64_t i = 0; ok && i < n; i++) ok = read_item(r, c, tag == IK_DICT, depth + 1);
    if (depth == 0) r->root = NULL;
    if (!out) return ok;
    if (!ok) pdckpt_value_free(c);
    return ok && (*out = c) != NULL;
}

static bool read_value(idx_reader *r, uint32_t depth, pdckpt_value **out) {
    const pdckpt_allocator *a = r->opts->allocator;
    uint8_t                 tag = 0;
    uint64_t                u = 0;
    const uint8_t          *s = NULL;
    double                  f;
    pdckpt_value           *v = NULL;
    if (!get_u8(r, &tag) || !charge(r, 64)) return false;
    switch (tag) {
    case IK_NONE: v = out ? pdckpt_value_new_none(a) : NULL; break;
    case IK_FALSE:
    case IK_TRUE: v = out ? pdckpt_value_new_bool(a, tag == IK_TRUE) : NULL; break;
    case IK_INT:
        if (!get_bytes(r, 8, &s)) return false;
        u = pdk_load_u64le(s);
        v = out ? pdckpt_value_new_int(a, (int64_t)u) : NULL;
        break;
    case IK_FLOAT:
        if (!get_bytes(r, 8, &s)) return false;
        memcpy(&f, s, 8);
        v = out ? pdckpt_value_new_float(a, f) : NULL;
        break;
    case IK_STRING:
    case IK_BYTES: return read_text(r, tag, out);
    case IK_TENSOR: return read_tensor(r, out);
    case IK_NAMES: return read_names(r, out);
    case IK_LIST:
    case IK_TUPLE:
    case IK_SET:
    case IK_DICT: return read_items(r, tag, depth, out);
    default: return false;
    }
    return !out || (*out = v) != NULL;
}

/* The index's header against the pickle as it is now; the body's hash; where the tree ends and
 * the table of top-level entries (n_table offsets, then the count) begins. */
static bool index_valid(const pdk_input *idx, const pdk_input *in, const struct stat *st,
                        size_t *tree_len, uint64_t *n_table) {
    idx_stamp now;
    if (idx->len < IDX_HEADER + 8 || memcmp(idx->data, IDX_MAGIC, 8) ||
        in->len != (size_t)st->st_size)
        return false;
    stamp_of(st, in->data, in->len, &now);
    for (int i = 0; i < 7; i++)
        if (pdk_load_u64le(idx->data + 8 + 8 * i) != now.v[i]) return false;
    const uint8_t *body = idx->data + IDX_HEADER;
    size_t         n = idx->len - IDX_HEADER;
    if (pdk_load_u64le(idx->data + IDX_HEADER - 16) != n ||
        pdk_load_u64le(idx->data + IDX_HEADER - 8) != XXH3_64bits(body, n))
        return false;
    *n_table = pdk_load_u64le(body + n - 8);
    if (*n_table > (n - 8) / 8) return false;
    *tree_len = n - 8 - 8 * (size_t)*n_table;
    return true;
}

/* Maps the index beside `path` and the pickle; true when the index belongs to the pickle. */
static bool open_pair(const char *path, const struct stat *st, const pdckpt_allocator *a,
                      pdk_input *idx, pdk_input *in, size_t *tree_len, uint64_t *n_table) {
    char        side[4096];
    struct stat sst;
    /* sized before it is opened (a planted multi-GiB sidecar is never read), then read in one go:
     * every open walks all of it, and a cold read beats faulting it in page by page */
    if (!index_path(path, side, sizeof side) || stat(side, &sst) != 0 ||
        (uint64_t)sst.st_size > IDX_MAX_BYTES ||
        pdk_input_open_file(side, false, a, idx, NULL) != PDCKPT_OK)
        return false;
    if (idx->len >= IDX_HEADER && idx->len <= IDX_MAX_BYTES &&
        pdk_input_open_file(path, true, a, in, NULL) == PDCKPT_OK) {
        if (index_valid(idx, in, st, tree_len, n_table)) return true;
        pdk_input_close(in);
    }
    pdk_input_close(idx);
    return false;
}

static void reader_init(idx_reader *r, const pdk_input *in, const pdckpt_load_options *opts,
                        const uint8_t *tree, size_t len) {
    memset(r, 0, sizeof *r);
    r->in = in;
    r->opts = opts;
    r->budget = opts->max_alloc_bytes ? opts->max_alloc_bytes : in->len * 4 + (64u << 20);
    r->max_depth = opts->max_depth ? opts->max_depth : 200;
    pdk_cur_init(&r->cur, tree, len, NULL, NULL);
}

/* The whole tree of an index already checked against its pickle; trailing bytes are refused
 * (not what was written). */
static bool read_tree(const uint8_t *tree, size_t tree_len, const pdk_input *in,
                      const pdckpt_load_options *opts, pdckpt_value **out) {
    idx_reader r;
    reader_init(&r, in, opts, tree, tree_len);
    if (read_value(&r, 0, out) && pdk_cur_left(&r.cur)) {
        pdckpt_value_free(*out);
        *out = NULL;
    }
    return *out != NULL;
}

bool pdk_pickle_index_decode(const uint8_t *idx, size_t len, const pdk_input *in,
                             const struct stat *st, const pdckpt_load_options *opts,
                             pdckpt_value **out) {
    pdk_input ix = {.data = idx, .len = len};
    size_t    tree_len = 0;
    uint64_t  n_table = 0;
    *out = NULL;
    return len <= IDX_MAX_BYTES && index_valid(&ix, in, st, &tree_len, &n_table) &&
           read_tree(idx + IDX_HEADER, tree_len, in, opts, out);
}

bool pdk_pickle_index_load(const char *path, const struct stat *st, const pdckpt_load_options *opts,
                           pdckpt_value **out) {
    pdk_input idx, in;
    size_t    tree_len = 0;
    uint64_t  n_table = 0;
    *out = NULL;
    if (!open_pair(path, st, opts->allocator, &idx, &in, &tree_len, &n_table)) return false;
    read_tree(idx.data + IDX_HEADER, tree_len, &in, opts, out);
    pdk_input_close(&in);
    pdk_input_close(&idx);
    return *out != NULL;
}

/* ---- entry by entry (pdckpt_lazy_open) ---- */

struct pdckpt_lazy {
    pdk_input           idx, in;
    pdckpt_load_options opts; /* allocator and limits; no pointers into the caller's */
    const uint8_t      *tree, *table;
    size_t              tree_len;
    uint64_t            n;
    uint8_t             tag; /* the root's */
    char               *path;
};

/* Checks the whole tree once (no value made) and that the table points at each entry. */
static bool lazy_check(pdk_pickle_lazy *l) {
    idx_reader r;
    uint64_t   n = 0;
    reader_init(&r, &l->in, &l->opts, l->tree, l->tree_len);
    if (!get_u8(&r, &l->tag) || (l->tag != IK_DICT && l->tag != IK_LIST && l->tag != IK_TUPLE) ||
        !get_var(&r, &n) || n != l->n)
        return false;
    for (uint64_t i = 0; i < n; i++)
        if (pdk_load_u64le(l->table + 8 * i) != r.cur.pos ||
            !read_item(&r, NULL, l->tag == IK_DICT, 1))
            return false;
    return pdk_cur_left(&r.cur) == 0;
}

pdk_pickle_lazy *pdk_pickle_lazy_open(const char *path, const struct stat *st,
                                      const pdckpt_load_options *opts) {
    const pdckpt_allocator *a = opts->allocator;
    pdk_pickle_lazy        *l = pdk_alloc(a, sizeof *l);
    if (!l) return NULL;
    memset(l, 0, sizeof *l);
    l->opts = *opts;
    l->opts.names = NULL, l->opts.n_names = 0, l->opts.progress = NULL;
    l->opts.allowed_globals = NULL, l->opts.n_allowed_globals = 0, l->opts.program_path = NULL;
    if (!(l->path = pdk_strndup(a, path, strlen(path))) ||
        !open_pair(path, st, a, &l->idx, &l->in, &l->tree_len, &l->n)) {
        pdk_strfree(a, l->path);
        pdk_free(a, l, sizeof *l);
        return NULL;
    }
    l->idx.name = l->in.name = l->path; /* the caller's path may go */
    l->tree = l->idx.data + IDX_HEADER;
    l->table = l->tree + l->tree_len;
    if (!lazy_check(l)) {
        pdk_pickle_lazy_close(l);
        return NULL;
    }
    return l;
}

size_t pdk_pickle_lazy_len(const pdk_pickle_lazy *l) {
    return (size_t)l->n;
}

pdckpt_kind pdk_pickle_lazy_kind(const pdk_pickle_lazy *l) {
    return tag_kind(l->tag);
}

/* A reader at entry i (checked at the open: no budget left to enforce). */
static void lazy_reader(const pdk_pickle_lazy *l, size_t i, idx_reader *r) {
    reader_init(r, &l->in, &l->opts, l->tree, l->tree_len);
    r->budget = UINT64_MAX;
    r->cur.pos = (size_t)pdk_load_u64le(l->table + 8 * i);
    r->lazy = l;
    r->entry = i;
}

static bool lazy_is_tensor(const pdk_pickle_lazy *l, size_t i) {
    idx_reader r;
    uint8_t    tag = 0;
    lazy_reader(l, i, &r);
    return (l->tag != IK_DICT || read_value(&r, 1, NULL)) && get_u8(&r, &tag) && tag == IK_TENSOR;
}

/* Read straight from the checked tree (keys() asks for every key: no reader set up per key). */
const char *pdk_pickle_lazy_key_text(const pdk_pickle_lazy *l, size_t i, size_t *len) {
    if (i >= l->n || l->tag != IK_DICT) return NULL;
    idx_reader     r;
    uint8_t        tag = 0;
    uint64_t       n = 0;
    const uint8_t *s = NULL;
    r.cur.base = l->tree;
    r.cur.len = l->tree_len;
    r.cur.pos = (size_t)pdk_load_u64le(l->table + 8 * i);
    if (!get_u8(&r, &tag) || tag != IK_STRING || !get_var(&r, &n) || !get_bytes(&r, n, &s))
        return NULL;
    *len = (size_t)n;
    return (const char *)s;
}

pdckpt_value *pdk_pickle_lazy_key(const pdk_pickle_lazy *l, size_t i) {
    idx_reader    r;
    pdckpt_value *key = NULL;
    if (i >= l->n) return NULL;
    if (l->tag != IK_DICT) return pdckpt_value_new_int(l->opts.allocator, (int64_t)i);
    lazy_reader(l, i, &r);
    return read_value(&r, 1, &key) ? key : NULL;
}

pdckpt_value *pdk_pickle_lazy_value(const pdk_pickle_lazy *l, size_t i) {
    idx_reader    r;
    pdckpt_value *v = NULL;
    if (i >= l->n) return NULL;
    lazy_reader(l, i, &r);
    if (l->tag == IK_DICT && !read_value(&r, 1, NULL)) return NULL;
    r.root_value = l->tag == IK_DICT;
    return read_value(&r, 1, &v) ? v : NULL;
}

void pdk_pickle_lazy_close(pdk_pickle_lazy *l) {
    if (!l) return;
    const pdckpt_allocator *a = l->opts.allocator;
    pdk_input_close(&l->in);
    pdk_input_close(&l->idx);
    pdk_strfree(a, l->path);
    pdk_free(a, l, sizeof *l);
}
