/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_index_read.c — reading the lazy-open index "<file>.pdkidx" that pickle_index.c writes
 * (format and trust rules there and in docs/pickles.md): one round of reads (the index and the
 * pickle's two edges, asked of the disk together), the stamp and body hash checked, then the
 * whole tree decoded (a zero-copy load) or the entries made one at a time on access
 * (pdckpt_lazy_open), each checked as it is made.
 */
#include "pickle_index.h"
#include "pickle_vm.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct idx_reader {
    pdk_cursor                 cur; /* the index's tree (only its base, len and pos are used) */
    const pdk_input           *in;  /* the mapped pickle */
    const pdckpt_load_options *opts;
    uint32_t                   max_depth;
    uint64_t                   budget;     /* values and bytes the tree may still take */
    uint64_t                   limit;      /* what it started with */
    pdk_budget                *copies;     /* the column-major tensors' C copies are charged to */
    bool                       root_value; /* the value being read is a dict root's entry */
    bool                       root_last;  /* ... and its last one (where IK_NAMES must be) */
    pdckpt_value              *root;       /* the root dict being made (IK_NAMES), or NULL */
    const pdk_pickle_lazy     *lazy;       /* reading entry `entry` of it (IK_NAMES), or NULL */
    size_t                     entry;
    bool                       fortran_ok; /* version 4: IK_TENSOR_F may occur */
    bool     check_payload; /* a lazy entry handed out: each payload follows its bytes opcode */
    uint64_t bad_payload;   /* where one did not (+1), or 0 */
} idx_reader;

/* The cursor steps here are inline: a whole-tree load checks every byte of a 100,000-tensor
 * index. */
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

static bool read_tensor(idx_reader *r, bool fortran, pdckpt_value **out) {
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
    if (r->check_payload && !payload_at(r->in->data, r->in->len, off, n_bytes)) {
        r->bad_payload = off + 1; /* the pickle changed since its index was written */
        return false;
    }
    if (fortran && (!r->fortran_ok || !pdk_orders_differ(nd, dims))) return false; /* not written */
    if (!out) return true;
    pdckpt_value *t = NULL;
    if (pdk_tensor_from_input(r->in, r->opts, (pdckpt_dtype)dt, nd, dims, r->in->data + off, &t,
                              &quiet))
        return false;
    if (fortran && !r->copies) r->copies = pdk_budget_new(r->opts->allocator, r->limit);
    if (fortran) pdk_tensor_attach_budget(t, r->copies); /* its C copy: charged when made */
    if (fortran && (!r->copies || pdckpt_tensor_set_fortran(t, &quiet) != PDCKPT_OK)) {
        pdckpt_value_free(t);
        return false;
    }
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
    if (!k || pdckpt_value_kind(key) != PDCKPT_KIND_STRING ||
        !pdckpt_tensor_get_memory(v, &tv, NULL) || !tv.name)
        return true;
    pdckpt_value *kc = pdckpt_value_new_string(a, k, len);
    pdckpt_value *name = pdckpt_value_new_string(a, tv.name, strlen(tv.name));
    if (kc && name) return pdckpt_dict_set_value(d, kc, name, &quiet) == PDCKPT_OK;
    pdckpt_value_free(kc);
    pdckpt_value_free(name);
    return false;
}

static bool lazy_is_tensor(const pdk_pickle_lazy *l, size_t i);
static bool lazy_is_last(const pdk_pickle_lazy *l, size_t i);
static bool lazy_read(const pdk_pickle_lazy *l, size_t i, bool key, bool check_payload,
                      pdckpt_value **out, idx_reader *r);

/* The entries before `entry` that a name table is made from check (names only). */
static bool lazy_names_ok(const pdk_pickle_lazy *l, size_t entry) {
    idx_reader sub;
    for (size_t j = 0; j < entry; j++)
        if (lazy_is_tensor(l, j) && (!lazy_read(l, j, true, false, NULL, &sub) ||
                                     !lazy_read(l, j, false, false, NULL, &sub)))
            return false;
    return true;
}

/* IK_NAMES: made from the root's entries before it, as far as the root is made, or one by one
 * from the lazily opened index. */
static bool read_names(idx_reader *r, pdckpt_value **out) {
    const pdckpt_allocator *a = r->opts->allocator;
    /* the writer puts it last, once: elsewhere each would cost a pass over the entries before it
     * (a forged index of 20,000 of them took 9 s to load) */
    if (!r->root_value || !(r->lazy ? lazy_is_last(r->lazy, r->entry) : r->root_last)) return false;
    if (!out) return !r->lazy || lazy_names_ok(r->lazy, r->entry);
    pdckpt_value *d = pdckpt_value_new_container(a, PDCKPT_KIND_DICT);
    bool          ok = d != NULL;
    size_t        n = r->root ? pdckpt_value_len(r->root) : r->lazy ? r->entry : 0;
    for (size_t j = 0; ok && j < n; j++) {
        if (r->root) {
            ok = add_name(d, pdckpt_dict_key_at(r->root, j), pdckpt_value_at(r->root, j), a);
            continue;
        }
        if (!lazy_is_tensor(r->lazy, j)) continue; /* (so no IK_NAMES is made from another) */
        pdckpt_value *key = NULL, *v = NULL;
        idx_reader    sub; /* names only: the payloads are not handed out, so not touched */
        ok = lazy_read(r->lazy, j, true, false, &key, &sub) &&
             lazy_read(r->lazy, j, false, false, &v, &sub) && add_name(d, key, v, a);
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
    for (uint64_t i = 0; ok && i < n; i++) {
        if (depth == 0) r->root_last = i + 1 == n;
        ok = read_item(r, c, tag == IK_DICT, depth + 1);
    }
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
    case IK_TENSOR:
    case IK_TENSOR_F: return read_tensor(r, tag == IK_TENSOR_F, out);
    case IK_NAMES: return read_names(r, out);
    case IK_LIST:
    case IK_TUPLE:
    case IK_SET:
    case IK_DICT: return read_items(r, tag, depth, out);
    default: return false;
    }
    return !out || (*out = v) != NULL;
}

/* The index's header against the stamp of the pickle as it is now; the body's hash; where the
 * tree ends and the table of top-level entries (n_table offsets, then the count) begins. */
static bool index_valid(const pdk_input *idx, const idx_stamp *now, size_t *tree_len,
                        uint64_t *n_table) {
    if (idx->len < IDX_HEADER + 8 ||
        (memcmp(idx->data, IDX_MAGIC, 8) && memcmp(idx->data, IDX_MAGIC_F, 8)))
        return false; /* a version this reader does not know (or none): parsed instead */
    for (int i = 0; i < 7; i++)
        if (pdk_load_u64le(idx->data + 8 + 8 * i) != now->v[i]) return false;
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

/* ---- opening: the index, the pickle's edges, and nothing else ---- */

/* `n` bytes at `off` of `fd` (false: an error, or the file ended). */
static bool read_at(int fd, uint8_t *dst, size_t n, uint64_t off) {
    while (n) {
        ssize_t got = pread(fd, dst, n, (off_t)off);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return false;
        dst += got, n -= (size_t)got, off += (uint64_t)got;
    }
    return true;
}

/* Everything the open will read, asked of the disk together (WILLNEED starts the reads and
 * returns): cold, the reads below then wait for one round trip, not three.  Exactly these
 * ranges: a fault on the mapping would read the device's whole readahead window (8 MiB here)
 * around each edge.  The pickle's small edges first, so they do not queue behind a large index. */
static void prefetch(int sfd, const struct stat *sst, int fd, const struct stat *st) {
    off_t size = st->st_size, edge = (off_t)IDX_EDGE;
    if (size <= 2 * edge) {
        posix_fadvise(fd, 0, size, POSIX_FADV_WILLNEED);
    } else {
        posix_fadvise(fd, 0, edge, POSIX_FADV_WILLNEED);
        posix_fadvise(fd, size - edge, edge, POSIX_FADV_WILLNEED);
    }
    posix_fadvise(sfd, 0, sst->st_size, POSIX_FADV_WILLNEED);
}

static void unmap_pickle(void *ctx, void *data, size_t size) {
    (void)ctx;
    if (data && size) munmap(data, size);
}

/* The pickle behind `fd` as the input tensors point into: mapped, nothing read (a small one,
 * or one that cannot be mapped, is read: its edges are all of it). */
static bool pickle_input(int fd, const struct stat *st, const char *path, const pdckpt_allocator *a,
                         pdk_input *in) {
    size_t size = (size_t)st->st_size;
    void  *map = size > 2 * IDX_EDGE ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    memset(in, 0, sizeof *in);
    in->name = path;
    if (map != MAP_FAILED) {
        in->owner = pdk_buffer_new_custom(a, map, size, true, unmap_pickle, NULL);
        if (!in->owner) munmap(map, size);
    } else if ((in->owner = pdk_buffer_new_alloc(a, size, false)) != NULL &&
               !read_at(fd, pdk_buffer_data(in->owner), size, 0)) {
        pdckpt_buffer_release(in->owner);
        in->owner = NULL;
    }
    if (!in->owner) return false;
    in->data = pdk_buffer_data(in->owner);
    in->len = size;
    return true;
}

/* The stamp of the pickle behind `fd`: its edges read into a scratch buffer when it is mapped
 * (the mapping is not touched), or hashed where it was read. */
static bool stamp_now(int fd, const struct stat *st, const pdk_input *in, const pdckpt_allocator *a,
                      idx_stamp *now) {
    if (in->len <= 2 * IDX_EDGE) {
        stamp_of(st, in->data, in->len, now);
        return true;
    }
    uint8_t *edges = pdk_alloc(a, 2 * IDX_EDGE);
    bool     ok = edges && read_at(fd, edges, IDX_EDGE, 0) &&
              read_at(fd, edges + IDX_EDGE, IDX_EDGE, in->len - IDX_EDGE);
    if (ok) stamp_edges(st, edges, edges + IDX_EDGE, IDX_EDGE, now);
    pdk_free(a, edges, 2 * IDX_EDGE);
    return ok;
}

/* The index file behind `sfd` read whole into `idx` (sized before: a planted multi-GiB one is
 * never read). */
static bool index_input(int sfd, const struct stat *sst, const char *side,
                        const pdckpt_allocator *a, pdk_input *idx) {
    size_t size = (size_t)sst->st_size;
    memset(idx, 0, sizeof *idx);
    idx->name = side;
    if (!(idx->owner = pdk_buffer_new_alloc(a, size, false))) return false;
    idx->data = pdk_buffer_data(idx->owner);
    idx->len = size;
    if (read_at(sfd, pdk_buffer_data(idx->owner), size, 0)) return true;
    pdk_input_close(idx);
    return false;
}

/* Opens the index `side` (a link there is not followed: pdckpt writes a file) and the pickle
 * `path` (files only: a FIFO planted there is refused, not waited on); true when the index belongs
 * to the pickle as it is now and is no one else's (pdk_sidecar_writers_covered). */
static bool open_pair(const char *path, const char *side, const pdckpt_allocator *a, pdk_input *idx,
                      pdk_input *in, size_t *tree_len, uint64_t *n_table) {
    int          fd = -1, sfd = -1;
    struct stat  st, sst;
    pdckpt_error quiet = PDCKPT_ERROR_INIT;
    idx_stamp    now;
    bool         ok =
        pdk_open_read(AT_FDCWD, side, PDK_OPEN_NOFOLLOW, side, &sfd, &sst, &quiet) == PDCKPT_OK &&
        (uint64_t)sst.st_size >= IDX_HEADER + 8 && (uint64_t)sst.st_size <= IDX_MAX_BYTES &&
        pdk_open_read(AT_FDCWD, path, 0, path, &fd, &st, &quiet) == PDCKPT_OK && st.st_size > 0 &&
        (uint64_t)st.st_size <= SIZE_MAX && pdk_sidecar_writers_covered(&sst, &st, true);
    bool got_idx = false, got_in = false;
    if (ok) prefetch(sfd, &sst, fd, &st);
    ok = ok && (got_idx = index_input(sfd, &sst, side, a, idx)) &&
         (got_in = pickle_input(fd, &st, path, a, in)) && stamp_now(fd, &st, in, a, &now) &&
         index_valid(idx, &now, tree_len, n_table);
    if (!ok && got_in) pdk_input_close(in);
    if (!ok && got_idx) pdk_input_close(idx);
    if (fd >= 0) close(fd);
    if (sfd >= 0) close(sfd);
    return ok;
}

static void reader_init(idx_reader *r, const pdk_input *in, const pdckpt_load_options *opts,
                        const uint8_t *tree, size_t len) {
    memset(r, 0, sizeof *r);
    r->in = in;
    r->opts = opts;
    r->budget = opts->max_alloc_bytes ? opts->max_alloc_bytes : in->len * 4 + (64u << 20);
    r->limit = r->budget;
    r->max_depth = opts->max_depth ? opts->max_depth : 200;
    r->fortran_ok = !memcmp(tree - IDX_HEADER, IDX_MAGIC_F, 8); /* the header precedes the tree */
    pdk_cur_init(&r->cur, tree, len, NULL, NULL);
}

/* The reader is done: the C copies its tensors make later get what its tree left. */
static void reader_done(idx_reader *r) {
    if (!r->copies) return;
    pdk_budget_spent(r->copies, r->limit - r->budget);
    pdk_budget_release(r->copies); /* the tensors hold theirs */
    r->copies = NULL;
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
    reader_done(&r);
    return *out != NULL;
}

bool pdk_pickle_index_decode(const uint8_t *idx, size_t len, const pdk_input *in,
                             const struct stat *st, const pdckpt_load_options *opts,
                             pdckpt_value **out) {
    pdk_input ix = {.data = idx, .len = len};
    size_t    tree_len = 0;
    uint64_t  n_table = 0;
    idx_stamp now;
    *out = NULL;
    if (len > IDX_MAX_BYTES || in->len != (size_t)st->st_size) return false;
    stamp_of(st, in->data, in->len, &now);
    return index_valid(&ix, &now, &tree_len, &n_table) &&
           read_tree(idx + IDX_HEADER, tree_len, in, opts, out);
}

bool pdk_pickle_index_load(const char *path, const struct stat *st, const pdckpt_load_options *opts,
                           pdckpt_value **out) {
    pdk_input idx, in;
    size_t    tree_len = 0;
    uint64_t  n_table = 0;
    char      side[4096];
    (void)st; /* the file opened is the file checked: its own fstat */
    *out = NULL;
    if (!index_path(path, side, sizeof side) ||
        !open_pair(path, side, opts->allocator, &idx, &in, &tree_len, &n_table))
        return false;
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
    char               *path, *side;
};

/* The root's header and the entry table: entry i spans [table[i], table[i + 1]) of the tree
 * (the last one to its end), each non-empty and in order.  The entries themselves are checked
 * when they are made (an open of 100,000 entries reads only their offsets). */
static bool lazy_table_ok(pdk_pickle_lazy *l) {
    idx_reader r;
    uint64_t   n = 0, prev = 0;
    reader_init(&r, &l->in, &l->opts, l->tree, l->tree_len);
    if (!get_u8(&r, &l->tag) || (l->tag != IK_DICT && l->tag != IK_LIST && l->tag != IK_TUPLE) ||
        !get_var(&r, &n) || n != l->n)
        return false;
    if (n == 0) return r.cur.pos == l->tree_len;
    if (pdk_load_u64le(l->table) != r.cur.pos) return false;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t at = pdk_load_u64le(l->table + 8 * i);
        if ((i && at <= prev) || at >= l->tree_len) return false;
        prev = at;
    }
    return true;
}

static void lazy_free(pdk_pickle_lazy *l) {
    const pdckpt_allocator *a = l->opts.allocator;
    pdk_strfree(a, l->path);
    pdk_strfree(a, l->side);
    pdk_free(a, l, sizeof *l);
}

/* A lazy reader with `opts` (no pointers into the caller's kept) for `path`, not yet opened. */
static pdk_pickle_lazy *lazy_new(const char *path, const pdckpt_load_options *opts) {
    const pdckpt_allocator *a = opts->allocator;
    pdk_pickle_lazy        *l = pdk_alloc(a, sizeof *l);
    char                    side[4096];
    if (!l) return NULL;
    memset(l, 0, sizeof *l);
    l->opts = *opts;
    l->opts.names = NULL, l->opts.n_names = 0, l->opts.progress = NULL;
    l->opts.allowed_globals = NULL, l->opts.n_allowed_globals = 0, l->opts.program_path = NULL;
    if (!index_path(path, side, sizeof side) || !(l->path = pdk_strndup(a, path, strlen(path))) ||
        !(l->side = pdk_strndup(a, side, strlen(side)))) {
        lazy_free(l);
        return NULL;
    }
    return l;
}

/* The reader of an index found valid: its tree and entry table located and the table checked. */
static pdk_pickle_lazy *lazy_ready(pdk_pickle_lazy *l) {
    l->in.name = l->path; /* the caller's path may go */
    l->idx.name = l->side;
    l->tree = l->idx.data + IDX_HEADER;
    l->table = l->tree + l->tree_len;
    if (lazy_table_ok(l)) return l;
    pdk_pickle_lazy_close(l);
    return NULL;
}

pdk_pickle_lazy *pdk_pickle_lazy_open(const char *path, const struct stat *st,
                                      const pdckpt_load_options *opts) {
    pdk_pickle_lazy *l = lazy_new(path, opts);
    (void)st; /* the file opened is the file checked: its own fstat */
    if (l && !open_pair(path, l->side, opts->allocator, &l->idx, &l->in, &l->tree_len, &l->n)) {
        lazy_free(l);
        return NULL;
    }
    return l ? lazy_ready(l) : NULL;
}

pdk_pickle_lazy *pdk_pickle_lazy_decode(const uint8_t *idx, size_t len, const pdk_input *in,
                                        const struct stat *st, const pdckpt_load_options *opts) {
    pdk_input ix = {.data = idx, .len = len};
    idx_stamp now;
    if (len > IDX_MAX_BYTES || in->len != (size_t)st->st_size) return NULL;
    stamp_of(st, in->data, in->len, &now);
    pdk_pickle_lazy *l = lazy_new("<memory>", opts);
    if (l && !index_valid(&ix, &now, &l->tree_len, &l->n)) {
        lazy_free(l);
        return NULL;
    }
    if (!l) return NULL;
    l->idx = ix; /* borrowed, as `in`: no owners to release */
    l->in = *in;
    l->in.owner = NULL;
    return lazy_ready(l);
}

size_t pdk_pickle_lazy_len(const pdk_pickle_lazy *l) {
    return (size_t)l->n;
}

pdckpt_kind pdk_pickle_lazy_kind(const pdk_pickle_lazy *l) {
    return tag_kind(l->tag);
}

/* A reader of entry i alone: its cursor ends where the entry does. */
static void lazy_reader(const pdk_pickle_lazy *l, size_t i, idx_reader *r) {
    size_t end = i + 1 < l->n ? (size_t)pdk_load_u64le(l->table + 8 * (i + 1)) : l->tree_len;
    reader_init(r, &l->in, &l->opts, l->tree, end);
    r->cur.pos = (size_t)pdk_load_u64le(l->table + 8 * i);
    r->lazy = l;
    r->entry = i;
}

/* Entry i's key (`key`) or value, checked (NULL `out`) or made; a value must take all of the
 * entry, as written. */
static bool lazy_read_entry(const pdk_pickle_lazy *l, size_t i, bool key, bool check_payload,
                            pdckpt_value **out, idx_reader *r) {
    bool dict = l->tag == IK_DICT;
    lazy_reader(l, i, r);
    r->check_payload = check_payload;
    if (key && !dict) return !out || (*out = pdckpt_value_new_int(l->opts.allocator, (int64_t)i));
    if (key) return read_value(r, 1, out);
    if (dict && !read_value(r, 1, NULL)) return false;
    r->root_value = dict;
    if (!read_value(r, 1, out)) return false;
    if (!pdk_cur_left(&r->cur)) return true;
    if (out) pdckpt_value_free(*out), *out = NULL;
    return false;
}

static bool lazy_read(const pdk_pickle_lazy *l, size_t i, bool key, bool check_payload,
                      pdckpt_value **out, idx_reader *r) {
    bool ok = lazy_read_entry(l, i, key, check_payload, out, r);
    reader_done(r);
    return ok;
}

static bool lazy_is_last(const pdk_pickle_lazy *l, size_t i) {
    return i + 1 == l->n;
}

static bool lazy_is_tensor(const pdk_pickle_lazy *l, size_t i) {
    idx_reader r;
    uint8_t    tag = 0;
    lazy_reader(l, i, &r);
    return (l->tag != IK_DICT || read_value(&r, 1, NULL)) && get_u8(&r, &tag) &&
           (tag == IK_TENSOR || tag == IK_TENSOR_F);
}

/* Read straight from the tree (keys() asks for every key: no reader set up per key). */
const char *pdk_pickle_lazy_key_text(const pdk_pickle_lazy *l, size_t i, size_t *len) {
    if (i >= l->n || l->tag != IK_DICT) return NULL;
    idx_reader     r;
    uint8_t        tag = 0;
    uint64_t       n = 0;
    const uint8_t *s = NULL;
    r.cur.base = l->tree;
    r.cur.len = i + 1 < l->n ? (size_t)pdk_load_u64le(l->table + 8 * (i + 1)) : l->tree_len;
    r.cur.pos = (size_t)pdk_load_u64le(l->table + 8 * i);
    if (!get_u8(&r, &tag) || tag != IK_STRING || !get_var(&r, &n) || !get_bytes(&r, n, &s) ||
        !utf8_ok(s, (size_t)n))
        return NULL; /* pdk_pickle_lazy_get says why */
    *len = (size_t)n;
    return (const char *)s;
}

/* Entry i's key or value, or why not: out of memory, an entry that is not what pdckpt writes
 * (found by checking it again without making anything), or a payload the pickle no longer has
 * where the index says. */
pdckpt_status pdk_pickle_lazy_get(const pdk_pickle_lazy *l, size_t i, bool key, pdckpt_value **out,
                                  pdckpt_error *err) {
    idx_reader r;
    *out = NULL;
    if (i >= l->n)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "no entry %zu (%zu entries)", i,
                        (size_t)l->n);
    if (lazy_read(l, i, key, !key, out, &r)) return PDCKPT_OK;
    if (lazy_read(l, i, key, !key, NULL, &r)) return pdk_fail_nomem(err, "lazy entry");
    if (r.bad_payload)
        return pdk_fail(err, PDCKPT_ERR_CORRUPT, l->path, (int64_t)(r.bad_payload - 1),
                        "expected the data of entry %zu right after a bytes opcode of its "
                        "length: the pickle changed since its index %s was written (open it "
                        "again: a stale index is not used)",
                        i, l->side);
    return pdk_fail(err, PDCKPT_ERR_CORRUPT, l->side, (int64_t)(IDX_HEADER + r.cur.pos),
                    "entry %zu of the lazy-open index is not what pdckpt writes (damaged or "
                    "forged; deleting the index makes opens parse %s)",
                    i, l->path);
}

void pdk_pickle_lazy_close(pdk_pickle_lazy *l) {
    if (!l) return;
    pdk_input_close(&l->in);
    pdk_input_close(&l->idx);
    lazy_free(l);
}
