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
 * mismatch, a truncated or garbled index, an index of another version, a limit, or an error
 * means "no index": the pickle is parsed as always.  An open reads the index, the pickle's two
 * edges and nothing else, all three asked of the disk at once (one cold round trip); the lazy
 * open checks the entry table there and each entry when it is made, where every tensor's payload
 * must also sit right after a bytes opcode of its length in the pickle (version 3 guarantees it
 * at write time).  Loads that read (not zero_copy) and verify never use it.
 */
#include "pickle_index.h"
#include "pickle_vm.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- writing ---- */

typedef struct ibuf {
    const pdckpt_allocator *a;
    uint8_t                *p;
    size_t                  len, cap;
    bool                    ok;
    const uint8_t          *base; /* the mapped pickle: tensors must point into it */
    size_t                  base_len;
    bool                    fortran; /* holds an IK_TENSOR_F: version 4 */
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

/* A tensor whose data starts at `off` in the pickle, column-major when `fortran`. */
static void put_tensor_at(ibuf *b, const pdckpt_tensor_view *tv, uint64_t off, const char *name,
                          bool fortran) {
    b->fortran |= fortran;
    put_u8(b, fortran ? IK_TENSOR_F : IK_TENSOR);
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
    bool               fortran; /* the memory as it is, and its order */
    pdckpt_tensor_get_memory(v, &tv, &fortran);
    const uint8_t *d = tv.data;
    bool           inside = tv.n_bytes == 0 || (d >= b->base && tv.n_bytes <= b->base_len &&
                                      (size_t)(d - b->base) <= b->base_len - tv.n_bytes);
    if (!inside || tv.n_lod_levels ||
        (tv.n_bytes && !payload_at(b->base, b->base_len, (uint64_t)(d - b->base), tv.n_bytes))) {
        b->ok = false;
        return;
    }
    put_tensor_at(b, &tv, tv.n_bytes ? (uint64_t)(d - b->base) : 0, tv.name, fortran);
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

void pdk_pickle_index_seal(uint8_t *idx, size_t len, const pdk_input *in, const struct stat *st,
                           bool fortran) {
    idx_stamp stamp;
    stamp_of(st, in->data, in->len, &stamp);
    memcpy(idx, fortran ? IDX_MAGIC_F : IDX_MAGIC, 8);
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
    pdk_pickle_index_seal(b->p, b->len, in, st, b->fortran);
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
    ibuf tab = {b->a, NULL, 0, 0, true, NULL, 0, false};
    begin(b);
    uint64_t n = put_root(b, &tab, tree);
    pdckpt_value_free(tree);
    bool ok = finish(b, &tab, n, in, st);
    pdk_free(b->a, tab.p, tab.cap);
    return ok;
}

bool pdk_pickle_index_encode(const pdk_input *in, const struct stat *st, const pdckpt_allocator *a,
                             uint8_t **idx, size_t *len, size_t *cap) {
    ibuf b = {a, NULL, 0, 0, true, in->data, in->len, false};
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
            strlen(key) != len || !pdckpt_tensor_get_memory(pdckpt_value_at(root, i), &tv, NULL) ||
            tv.n_lod_levels || tv.dtype == PDCKPT_DTYPE_FLOAT8_E4M3FN ||
            tv.dtype == PDCKPT_DTYPE_FLOAT8_E5M2 || tv.dtype == PDCKPT_DTYPE_UINT16)
            return false;
    }
    return true;
}

/* The loaded tree of a state dict the writer placed at `offs`: its entries, then the name table
 * {key: name} (a tensor without a name is named by its key, as the writer names it). */
static bool encode_saved(const pdckpt_value *root, const pdk_pickle_offsets *offs,
                         const pdk_input *in, const struct stat *st, ibuf *b) {
    size_t n = pdckpt_value_len(root);
    ibuf   tab = {b->a, NULL, 0, 0, true, NULL, 0, false};
    grow(&tab, 8 * n + 8);
    grow(b, 96 * n + 4096); /* W2's entries take ~60 bytes: one allocation, no copies */
    begin(b);
    put_u8(b, IK_DICT);
    put_var(b, n + 1);
    for (size_t i = 0; i < n && b->ok; i++) {
        const char        *key = pdckpt_value_get_string(pdckpt_dict_key_at(root, i), NULL);
        pdckpt_tensor_view tv;
        bool               fortran;
        pdckpt_tensor_get_memory(pdckpt_value_at(root, i), &tv, &fortran);
        if (!payload_at(in->data, in->len, offs->at[i], tv.n_bytes)) b->ok = false;
        put_u64(&tab, b->len - IDX_HEADER);
        put_string(b, key, strlen(key));
        put_tensor_at(b, &tv, offs->at[i], tv.name ? tv.name : key, fortran);
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
    if (pdckpt_tensor_get_memory(v, &tv, NULL)) c->tensors++, c->bytes += tv.n_bytes;
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

/* Whether `side` is an index an earlier save wrote: a regular file (not followed through a link)
 * that starts with the magic of some version. */
static bool index_of_ours(const char *side) {
    char magic[8];
    return pdk_read_head_nofollow(side, magic, sizeof magic) && !memcmp(magic, IDX_MAGIC_OLD, 6) &&
           magic[6] >= '1' && magic[6] <= '9' && magic[7] == '\n';
}

/* Removes an index an earlier save left beside `path` (only a file that is one), so a save that
 * writes none leaves no stale one behind (stale ones are ignored anyway). */
static void remove_old_index(const char *side) {
    if (index_of_ours(side)) unlink(side);
}

/* The index is written only where nothing is, or over an index of ours: a link, a FIFO or a file
 * someone else put at that name is left alone (the index is optional; a save never replaces what
 * it did not create), and the rename replaces the name, never a link's target. */
static bool side_free_or_ours(const char *side) {
    struct stat st;
    if (lstat(side, &st) != 0) return errno == ENOENT;
    return index_of_ours(side);
}

void pdk_pickle_index_write(const pdckpt_value *root, const char *path,
                            const pdk_pickle_offsets *offs, const pdckpt_allocator *a) {
    char        side[4096];
    struct stat st, again;
    pdk_input   in;
    if (!index_path(path, side, sizeof side)) return;
    bool saved = saved_tree_known(root, offs);
    /* a parse that cannot succeed would map the file and build its split arrays whole: a copy
     * of each (1.1 GiB split by --static-out: 2.2 GiB more at the peak) for no index */
    if ((!saved && (!worth_parsing(root) || (offs && offs->unindexable))) || stat(path, &st) != 0 ||
        pdk_input_open_file(path, true, a, &in, NULL) != PDCKPT_OK) {
        remove_old_index(side);
        return;
    }
    ibuf b = {a, NULL, 0, 0, true, in.data, in.len, false};
    bool ok = in.len == (size_t)st.st_size &&
              (saved ? encode_saved(root, offs, &in, &st, &b) : encode_parsed(&in, &st, &b)) &&
              stat(path, &again) == 0 && same_version(&st, &again);
    pdk_input_close(&in);
    pdk_sink    *sink = NULL;
    pdckpt_error quiet = PDCKPT_ERROR_INIT;
    if (!ok) remove_old_index(side);
    if (ok && side_free_or_ours(side) &&
        pdk_sink_open_sidecar(side, false, a, &sink, &quiet) == PDCKPT_OK) {
        if (pdk_sink_write(sink, b.p, b.len, &quiet) == PDCKPT_OK)
            pdk_sink_commit(sink, &quiet);
        else
            pdk_sink_abort(sink);
    }
    pdk_free(a, b.p, b.cap);
}
