/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_meta_read.c — "<id>.metadata" (Paddle's pickled Metadata) straight into the index a load
 * needs, without the value tree (issue 20: the tree held ~30 times the file).  The one pickle
 * reader runs in consumer mode (pdk_pickle_load_consumed): each LocalTensorMetadata and
 * LocalTensorIndex is handed over at its BUILD, parsed into a compact record (dist_meta_build.c's
 * rules) and replaced by a small int the reader made itself (recognised afterwards by identity,
 * never by value: an int in the file is never taken for one); storage_metadata's
 * {LocalTensorIndex: file} pairs become the records' file numbers as SETITEMS makes them, never
 * dict entries; the reader keeps only what the rest of the pickle can still reach.  What is left
 * -- the Metadata object, its dict of keys and their lists of ints -- is read into the index.
 * Everything the decode allocates goes through a counting allocator held to the budget.
 * Paddle 2.6's metadata (no dtypes) is completed from the data files before the index is built.
 * Asked for it, the index's builder also keeps the pieces and entries as the file lists them
 * (pdk_meta_list: `pdckpt ls`, pdckpt_sharded_read_metadata).
 */
#include "../pickle/pickle.h"
#include "pdk_distcp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the budget ---- */

typedef struct counted {
    pdckpt_allocator a;
    uint64_t         live, peak, limit;
    bool             over;
} counted;

/* What an allocation costs in the heap: glibc's chunk, the size plus its 8-byte header rounded
 * to 16, at least 32. */
static uint64_t cost(size_t size) {
    uint64_t chunk = ((uint64_t)size + 8 + 15) & ~(uint64_t)15;
    return chunk < 32 ? 32 : chunk;
}

static void *counted_alloc(void *ctx, size_t size, size_t alignment) {
    counted *c = ctx;
    if (c->live + cost(size) > c->limit) {
        c->over = true;
        return NULL;
    }
    void *p = alignment <= 16 ? malloc(size)
                              : aligned_alloc(alignment, (size + alignment - 1) & ~(alignment - 1));
    if (!p) return NULL;
    c->live += cost(size);
    if (c->live > c->peak) c->peak = c->live;
    return p;
}

static void counted_free(void *ctx, void *ptr, size_t size) {
    counted *c = ctx;
    free(ptr);
    c->live = c->live > cost(size) ? c->live - cost(size) : 0;
}

/* ---- records, as BUILD hands the objects over ---- */

/* Interned text: the distinct file names, the distinct keys of LocalTensorIndex objects. */
typedef struct strtab {
    char    **names;
    uint32_t *slots; /* open addressing: name number + 1 */
    size_t    n, cap;
} strtab;

/* A record as kept (pdk_meta_rec is the parsed form): dims are offset, shape and, for a piece,
 * its global shape, then the flattened run when there is one, then an index's replica_id. */
typedef struct crec {
    const char *key;  /* an index's tensor_key (interned) */
    uint32_t    file; /* an index's file: its name's number + 1 once storage_metadata names it */
    int16_t     n_dims;
    uint8_t     dtype; /* a piece's pdckpt_dtype + 1; 0: none (Paddle 2.6) */
    uint8_t     flags;
    int64_t     dims[];
} crec;
enum {
    CR_INDEX = 1,
    CR_GLOBAL = 2,
    CR_FLAT = 4,
    CR_SHAPE = 8,    /* an index with local_shape */
    CR_REPLICA = 16, /* an index whose replica_id is an int */
    CR_SEEN = 32     /* an index already listed (a pair set twice) */
};

typedef struct reader {
    const char             *source;
    pdckpt_error           *err;
    const pdckpt_allocator *a;     /* the counted allocator */
    pdk_arena               arena; /* records, the ints standing for them, interned text */
    crec                  **recs;
    pdckpt_value          **reps; /* reps[i]: the value standing for recs[i] */
    size_t                  n, cap;
    pdk_meta_rec           *scratch, *out; /* PDK_META_REC_MAX bytes each */
    bool                    v26;           /* a piece without a dtype */
    strtab                  keys, files;
    /* storage_metadata's pairs, taken as SETITEMS makes them */
    const pdckpt_value *storage;
    size_t              n_stored;
    uint32_t           *order; /* the records in the order SETITEMS set them (a pair each) */
    size_t              n_order, order_cap;
    uint64_t            room; /* what the budget leaves the index's flattened boxes */
    pdk_meta_list      *list; /* NULL: not kept */
} reader;

/* An array of `n` items of `size` bytes grown to `cap` (counted). */
static void *regrow(reader *r, void *old, size_t n, size_t old_cap, size_t cap, size_t size) {
    void *p = pdk_alloc(r->a, cap * size);
    if (p && n) memcpy(p, old, n * size);
    if (p) pdk_free(r->a, old, old_cap * size);
    return p;
}

static pdckpt_status grow(reader *r) {
    if (r->n < r->cap) return PDCKPT_OK;
    size_t cap = r->cap ? r->cap * 2 : 1024;
    void  *recs = regrow(r, r->recs, r->n, r->cap, cap, sizeof *r->recs);
    void  *reps = recs ? regrow(r, r->reps, r->n, r->cap, cap, sizeof *r->reps) : NULL;
    if (!reps) { /* recs has the new size */
        if (recs) pdk_free(r->a, recs, cap * sizeof *r->recs), r->recs = NULL;
        return pdk_fail_nomem(r->err, "metadata records");
    }
    r->recs = recs, r->reps = reps, r->cap = cap;
    return PDCKPT_OK;
}

static pdckpt_status grow_tab(reader *r, strtab *t) {
    size_t    cap = t->cap ? t->cap * 2 : 64;
    uint32_t *slots = pdk_calloc(r->a, cap, sizeof *slots);
    char    **names = slots ? regrow(r, t->names, t->n, t->cap / 2, cap / 2, sizeof *names) : NULL;
    if (!names) {
        pdk_free(r->a, slots, cap * sizeof *slots);
        return pdk_fail_nomem(r->err, "metadata names");
    }
    t->names = names;
    for (size_t i = 0; i < t->n; i++) {
        size_t j = (size_t)pdk_table_hash(0, names[i], strlen(names[i])) & (cap - 1);
        while (slots[j]) j = (j + 1) & (cap - 1);
        slots[j] = (uint32_t)i + 1;
    }
    pdk_free(r->a, t->slots, t->cap * sizeof *slots);
    t->slots = slots, t->cap = cap;
    return PDCKPT_OK;
}

/* The number + 1 of text s[0..n) in `t`, added when new. */
static pdckpt_status intern(reader *r, strtab *t, const char *s, size_t n, uint32_t *out) {
    if ((t->n + 1) * 2 > t->cap) PDK_TRY(grow_tab(r, t));
    size_t mask = t->cap - 1, j = (size_t)pdk_table_hash(0, s, n) & mask;
    for (; t->slots[j]; j = (j + 1) & mask) {
        const char *had = t->names[t->slots[j] - 1];
        if (strncmp(had, s, n) == 0 && had[n] == '\0') return *out = t->slots[j], PDCKPT_OK;
    }
    char *copy = pdk_alloc(&r->arena.allocator, n + 1);
    if (!copy) return pdk_fail_nomem(r->err, "metadata names");
    memcpy(copy, s, n);
    copy[n] = '\0';
    t->names[t->n++] = copy;
    *out = t->slots[j] = (uint32_t)t->n;
    return PDCKPT_OK;
}

static void tab_free(reader *r, strtab *t) {
    pdk_free(r->a, t->names, t->cap / 2 * sizeof *t->names);
    pdk_free(r->a, t->slots, t->cap * sizeof *t->slots);
}

/* The parsed scratch record kept compact in the arena, and the int standing for it. */
static pdckpt_status keep(reader *r, pdckpt_value **out) {
    const pdk_meta_rec *m = r->scratch;
    size_t              n = (size_t)m->n_dims, base = (m->is_index ? 2 : 3) * n;
    size_t              dims = base + (m->flat ? 2 : 0) + (m->is_index ? 1 : 0);
    crec               *rec = pdk_alloc(&r->arena.allocator, sizeof *rec + dims * sizeof(int64_t));
    pdckpt_value       *rep = rec ? pdckpt_value_new_int(&r->arena.allocator, (int64_t)r->n) : NULL;
    if (!rep) return pdk_fail_nomem(r->err, "metadata records");
    uint32_t key = 0;
    if (m->is_index) PDK_TRY(intern(r, &r->keys, m->key, strlen(m->key), &key));
    *rec = (crec){key ? r->keys.names[key - 1] : NULL, 0, (int16_t)n,
                  (uint8_t)(m->dtype == PDCKPT_DTYPE_INVALID ? 0 : m->dtype + 1),
                  (uint8_t)((m->is_index ? CR_INDEX : 0) | (m->has_global ? CR_GLOBAL : 0) |
                            (m->flat ? CR_FLAT : 0) | (m->has_shape ? CR_SHAPE : 0) |
                            (m->has_replica ? CR_REPLICA : 0))};
    memcpy(rec->dims, m->dims, base * sizeof(int64_t));
    if (m->flat) rec->dims[base] = m->flat_begin, rec->dims[base + 1] = m->flat_end;
    if (m->is_index) rec->dims[dims - 1] = m->replica;
    PDK_TRY(grow(r));
    r->recs[r->n] = rec;
    r->reps[r->n++] = pdckpt_value_retain(rep);
    *out = rep;
    return PDCKPT_OK;
}

/* A kept record in its parsed form (in r->out). */
static const pdk_meta_rec *expand(reader *r, const crec *c) {
    pdk_meta_rec *m = r->out;
    size_t        n = (size_t)c->n_dims, dims = (c->flags & CR_INDEX ? 2 : 3) * n;
    memset(m, 0, sizeof *m);
    m->key = c->key;
    m->n_dims = c->n_dims;
    m->dtype = c->dtype ? (pdckpt_dtype)(c->dtype - 1) : PDCKPT_DTYPE_INVALID;
    m->is_index = c->flags & CR_INDEX;
    m->has_global = c->flags & CR_GLOBAL;
    m->flat = c->flags & CR_FLAT;
    m->has_shape = c->flags & CR_SHAPE;
    m->has_replica = c->flags & CR_REPLICA;
    m->flat_begin = m->flat ? c->dims[dims] : -1;
    m->flat_end = m->flat ? c->dims[dims + 1] : -1;
    m->replica = m->is_index ? c->dims[dims + (m->flat ? 2 : 0)] : 0;
    memcpy(m->dims, c->dims, dims * sizeof(int64_t));
    return m;
}

static bool meta_class(const pdckpt_value *obj, const char *name) {
    return strcmp(pdckpt_object_name(obj), name) == 0 &&
           (strcmp(pdckpt_object_module(obj), PDK_META_MODULE) == 0 ||
            strcmp(pdckpt_object_module(obj), PDK_META_MODULE_OLD) == 0);
}

static pdckpt_status on_build(void *ctx, const pdckpt_value *obj, const pdckpt_value *state,
                              pdckpt_value **out, pdckpt_error *err) {
    reader *r = ctx;
    bool    index = meta_class(obj, "LocalTensorIndex");
    if (!index && !meta_class(obj, "LocalTensorMetadata")) return PDCKPT_OK;
    if (pdckpt_value_kind(state) != PDCKPT_KIND_DICT)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, r->source, -1,
                        "metadata: expected the fields of %s as a dict", pdckpt_object_name(obj));
    if (index)
        PDK_TRY(pdk_meta_rec_index(state, false, r->source, r->scratch, err));
    else
        PDK_TRY(pdk_meta_rec_piece(state, r->source, r->scratch, err));
    r->v26 |= !index && r->scratch->dtype == PDCKPT_DTYPE_INVALID;
    return keep(r, out);
}

/* The number of the record `v` stands for when it is one of ours of that kind, else -1. */
static int64_t rec_number(const reader *r, const pdckpt_value *v, bool index) {
    int64_t i = -1;
    if (pdckpt_value_kind(v) != PDCKPT_KIND_INT || !pdckpt_value_get_int(v, &i) || i < 0 ||
        (uint64_t)i >= r->n || r->reps[i] != v || !(r->recs[i]->flags & CR_INDEX) != !index)
        return -1;
    return i;
}

/* ---- storage_metadata's pairs, as SETITEMS makes them ---- */

/* Where a pair was set: equal LocalTensorIndex objects are one dict key to Python (the last
 * one's file wins), so the index takes the records' files in the order they were set. */
static pdckpt_status note_pair(reader *r, uint32_t rec) {
    if (r->n_order == r->order_cap) {
        size_t    cap = r->order_cap ? r->order_cap * 2 : 1024;
        uint32_t *grown = regrow(r, r->order, r->n_order, r->order_cap, cap, sizeof *r->order);
        if (!grown) return pdk_fail_nomem(r->err, "metadata records");
        r->order = grown, r->order_cap = cap;
    }
    r->order[r->n_order++] = rec;
    return PDCKPT_OK;
}

/* {LocalTensorIndex: file} pairs are kept as the index's file, never put into the dict. */
static pdckpt_status on_pair(void *ctx, const pdckpt_value *dict, const pdckpt_value *key,
                             const pdckpt_value *value, bool *taken, pdckpt_error *err) {
    reader *r = ctx;
    int64_t i = rec_number(r, key, true);
    if (i < 0) return PDCKPT_OK;
    if (r->storage && r->storage != dict)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, r->source, -1,
                        "metadata: expected LocalTensorIndex keys in storage_metadata only");
    size_t      n = 0;
    const char *s = pdckpt_value_get_string(value, &n);
    if (!s || memchr(s, '\0', n))
        return pdk_fail(err, PDCKPT_ERR_FORMAT, r->source, -1,
                        "metadata: expected storage_metadata items (LocalTensorIndex, file name)");
    if (!r->storage) r->storage = pdckpt_value_retain((pdckpt_value *)dict);
    r->n_stored += r->recs[i]->file == 0; /* a key set again keeps its place, takes the new file */
    *taken = true;
    PDK_TRY(note_pair(r, (uint32_t)i));
    return intern(r, &r->files, s, n, &r->recs[i]->file);
}

/* ---- what is left of the tree, into the index ---- */

static pdckpt_status not_paddle(reader *r, const char *what) {
    return pdk_fail(r->err, PDCKPT_ERR_FORMAT, r->source, -1, "metadata: expected %s", what);
}

typedef struct key_list {
    reader             *r;
    const pdckpt_value *list;
} key_list;

static const pdk_meta_rec *list_piece(void *ctx, size_t i, pdckpt_error *err) {
    key_list *k = ctx;
    int64_t   n = rec_number(k->r, pdckpt_value_at(k->list, i), false);
    if (n < 0)
        pdk_fail(err, PDCKPT_ERR_FORMAT, k->r->source, -1,
                 "metadata: expected LocalTensorMetadata objects");
    return n < 0 ? NULL : expand(k->r, k->r->recs[n]);
}

/* storage_metadata: the pairs taken from it, in the order they were set (a piece two equal
 * LocalTensorIndex objects name reads the file set last, as in Python's dict); nothing else may
 * be left in it. */
static pdckpt_status walk_storage(reader *r, pdk_meta_builder *b, const pdckpt_value *storage) {
    if (pdckpt_value_kind(storage) != PDCKPT_KIND_DICT)
        return not_paddle(r, "storage_metadata as a dict");
    if (pdckpt_value_len(storage) || (r->storage && r->storage != storage))
        return not_paddle(r, "LocalTensorIndex keys in storage_metadata");
    PDK_TRY(pdk_meta_build_storage(b, r->n_stored));
    for (size_t i = 0; i < r->n_order; i++) { /* a pair set again: its first place, last file */
        crec *rec = r->recs[r->order[i]];
        if (rec->flags & CR_SEEN) continue;
        rec->flags |= CR_SEEN;
        PDK_TRY(pdk_meta_build_entry(b, expand(r, rec), r->files.names[rec->file - 1]));
    }
    return PDCKPT_OK;
}

/* ---- Paddle 2.6: dtypes only in the data files ---- */

/* paddle.distributed.checkpoint in Paddle 2.6 recorded per piece only (global_offset,
 * local_shape), and per LocalTensorIndex only (tensor_key, global_offset): a key's dtype is in
 * the data files alone (Paddle 2.6's load_state_dict takes it from the tensor it loads into).
 * Such metadata is completed as Paddle 2.6 would find it: each key's dtype from the data file
 * holding its first piece in storage order (mapped, only its pickle opcodes read), its global
 * shape the extent of its pieces (the index's builder does that for pieces without one).  The
 * files are those the metadata names, inside the checkpoint directory.  Each file is opened at
 * most once, whatever order the metadata lists pieces in: the keys are grouped by file first, so
 * the lookup costs one parse per data file named. */
typedef struct v26_need {
    const char         *key, *file;
    const pdckpt_value *list; /* the key's pieces: ints standing for records */
    size_t              order;
} v26_need;

static int by_key(const void *x, const void *y) {
    const v26_need *a = x, *b = y;
    int             c = strcmp(a->key, b->key);
    return c ? c : (a->order > b->order) - (a->order < b->order);
}

static int by_file(const void *x, const void *y) {
    const v26_need *a = x, *b = y;
    int             c = strcmp(a->file, b->file);
    return c ? c : (a->order > b->order) - (a->order < b->order);
}

/* The keys whose first piece has no dtype, one entry each (its first piece in storage order),
 * grouped by data file. */
static size_t v26_needs(reader *r, const pdckpt_value *sdm, v26_need *need) {
    size_t n = 0, kept = 0;
    for (size_t i = 0; i < r->n_order; i++) {
        const crec         *rec = r->recs[r->order[i]];
        const pdckpt_value *list = pdckpt_dict_get(sdm, rec->key);
        int64_t             first = rec_number(r, pdckpt_value_at(list, 0), false);
        if (pdckpt_value_kind(list) != PDCKPT_KIND_LIST || first < 0 || r->recs[first]->dtype)
            continue; /* done, or not this form: the index's builder reports what is missing */
        need[n++] = (v26_need){rec->key, r->files.names[rec->file - 1], list, i};
    }
    qsort(need, n, sizeof *need, by_key);
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(need[i].key, need[kept - 1].key) != 0) need[kept++] = need[i];
    qsort(need, kept, sizeof *need, by_file);
    return kept;
}

/* The dtypes of the keys need[0..n), whose first piece is in the data file need[0].file. */
static pdckpt_status v26_fill_file(reader *r, const char *dir, const v26_need *need, size_t n) {
    const char *name = need[0].file;
    if (!*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return not_paddle(r, "data file names inside the checkpoint directory");
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT_WITH(true);
    pdckpt_value       *tree = NULL;
    lo.format = PDCKPT_FORMAT_PICKLE;
    PDK_TRY(pdk_load_beneath(dir, name, &lo, &tree, r->err));
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 0; i < n && st == PDCKPT_OK; i++) {
        pdckpt_tensor_view t;
        if (!pdckpt_tensor_get_memory(pdckpt_dict_get(tree, need[i].key), &t, NULL)) {
            st = pdk_fail(r->err, PDCKPT_ERR_FORMAT, r->source, -1,
                          "metadata: '%s' has no dtype and its data file %s holds no "
                          "tensor under that key",
                          need[i].key, name);
            break;
        }
        for (size_t j = 0; j < pdckpt_value_len(need[i].list); j++) {
            int64_t k = rec_number(r, pdckpt_value_at(need[i].list, j), false);
            if (k >= 0 && !r->recs[k]->dtype) r->recs[k]->dtype = (uint8_t)(t.dtype + 1);
        }
    }
    pdckpt_value_free(tree);
    return st;
}

static pdckpt_status v26_fill(reader *r, const pdckpt_value *sdm) {
    size_t n = strlen(r->source), k = strlen(PDK_META_SUFFIX);
    if (n <= k || strcmp(r->source + n - k, PDK_META_SUFFIX) != 0) /* bytes, not a file */
        return not_paddle(r, "dtypes (Paddle 2.6 metadata keeps them in the data files, "
                             "and these bytes are not a metadata file beside them)");
    char        dir[4096];
    const char *slash = strrchr(r->source, '/');
    int         len = !slash ? 1 : slash == r->source ? 1 : (int)(slash - r->source);
    snprintf(dir, sizeof dir, "%.*s", len, slash ? r->source : ".");
    v26_need *need = pdk_alloc(r->a, (r->n_order + 1) * sizeof *need);
    if (!need) return pdk_fail_nomem(r->err, "metadata");
    size_t        kept = v26_needs(r, sdm, need);
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 0, j; i < kept && st == PDCKPT_OK; i = j) {
        for (j = i + 1; j < kept && strcmp(need[j].file, need[i].file) == 0;) j++;
        st = v26_fill_file(r, dir, need + i, j - i);
    }
    pdk_free(r->a, need, (r->n_order + 1) * sizeof *need);
    return st;
}

/* ---- flat_mapping, for the listing: {key: (names, ...)} copied out of the decode ---- */

static pdckpt_value *copy_scalar(const pdckpt_value *v) {
    int64_t     i = 0;
    bool        b = false;
    size_t      n = 0;
    const char *s = pdckpt_value_get_string(v, &n);
    switch (pdckpt_value_kind(v)) {
    case PDCKPT_KIND_STRING: return pdckpt_value_new_string(NULL, s, n);
    case PDCKPT_KIND_INT: return pdckpt_value_get_int(v, &i) ? pdckpt_value_new_int(NULL, i) : NULL;
    case PDCKPT_KIND_BOOL:
        return pdckpt_value_get_bool(v, &b) ? pdckpt_value_new_bool(NULL, b) : NULL;
    case PDCKPT_KIND_NONE: return pdckpt_value_new_none(NULL);
    default: return NULL;
    }
}

/* One value of flat_mapping: a tuple or list of names; its cost taken from r->room. */
static pdckpt_status copy_path(reader *r, const pdckpt_value *v, pdckpt_value **out) {
    pdckpt_kind k = pdckpt_value_kind(v);
    if (k != PDCKPT_KIND_TUPLE && k != PDCKPT_KIND_LIST)
        return not_paddle(r, "flat_mapping as {key: (names, ...)}");
    *out = pdckpt_value_new_container(NULL, k);
    for (size_t i = 0; *out && i < pdckpt_value_len(v); i++) {
        const pdckpt_value *item = pdckpt_value_at(v, i);
        size_t              n = 0;
        pdckpt_value_get_string(item, &n);
        if (r->room < 64 + n)
            return pdk_fail(r->err, PDCKPT_ERR_LIMIT, r->source, -1,
                            "metadata: "
                            "flat_mapping needs more memory than "
                            "max_alloc_bytes leaves");
        r->room -= 64 + n;
        pdckpt_value *copy = copy_scalar(item);
        if (!copy) return not_paddle(r, "flat_mapping as {key: (names, ...)}");
        PDK_TRY(pdckpt_value_append(*out, copy, r->err));
    }
    return *out ? PDCKPT_OK : pdk_fail_nomem(r->err, "metadata");
}

static pdckpt_status copy_mapping(reader *r, const pdckpt_value *fm, pdckpt_value **out) {
    *out = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    if (!*out) return pdk_fail_nomem(r->err, "metadata");
    if (!fm) return PDCKPT_OK; /* older Paddle: none */
    if (pdckpt_value_kind(fm) != PDCKPT_KIND_DICT)
        return not_paddle(r, "flat_mapping as {key: (names, ...)}");
    for (size_t i = 0; i < pdckpt_value_len(fm); i++) {
        pdckpt_value *key = copy_scalar(pdckpt_dict_key_at(fm, i)), *path = NULL;
        if (!key) return not_paddle(r, "flat_mapping as {key: (names, ...)}");
        pdckpt_status st = copy_path(r, pdckpt_value_at(fm, i), &path);
        if (st != PDCKPT_OK) {
            pdckpt_value_free(key), pdckpt_value_free(path);
            return st;
        }
        PDK_TRY(pdckpt_dict_set_value(*out, key, path, r->err));
    }
    return PDCKPT_OK;
}

static pdckpt_status index_from(reader *r, const pdckpt_value *root, pdk_meta_index *ix) {
    const pdckpt_value *state = pdckpt_object_state(root);
    if (pdckpt_value_kind(root) != PDCKPT_KIND_OBJECT || !meta_class(root, "Metadata") ||
        pdckpt_value_kind(state) != PDCKPT_KIND_DICT)
        return not_paddle(r, "a pickled " PDK_META_MODULE ".Metadata");
    const pdckpt_value *sdm = pdckpt_dict_get(state, "state_dict_metadata");
    if (pdckpt_value_kind(sdm) != PDCKPT_KIND_DICT)
        return not_paddle(r, "state_dict_metadata as a dict");
    if (r->v26) PDK_TRY(v26_fill(r, sdm));
    if (r->list && r->list->keep_pieces) /* the tree: flat_mapping as the file has it */
        PDK_TRY(copy_mapping(r, pdckpt_dict_get(state, "flat_mapping"), &r->list->flat_mapping));
    pdk_meta_builder *b = NULL;
    pdckpt_status     st = pdk_meta_build_begin(r->source, pdckpt_value_len(sdm), ix, &b, r->err);
    pdk_meta_build_limit(b, r->room);
    pdk_meta_build_keep(b, r->list);
    for (size_t i = 0; st == PDCKPT_OK && i < pdckpt_value_len(sdm); i++) {
        key_list k = {r, pdckpt_value_at(sdm, i)};
        if (pdckpt_value_kind(k.list) != PDCKPT_KIND_LIST)
            st = not_paddle(r, "a list of LocalTensorMetadata per key");
        else
            st = pdk_meta_build_key(b, pdckpt_dict_key_at(sdm, i), pdckpt_value_len(k.list),
                                    list_piece, &k);
    }
    if (st == PDCKPT_OK) st = walk_storage(r, b, pdckpt_dict_get(state, "storage_metadata"));
    return pdk_meta_build_end(b, st);
}

/* ---- the decode ---- */

static void reader_free(reader *r) {
    for (size_t i = 0; i < r->n; i++) pdckpt_value_free(r->reps[i]);
    pdckpt_value_free((pdckpt_value *)r->storage);
    pdk_free(r->a, r->recs, r->cap * sizeof *r->recs);
    pdk_free(r->a, r->reps, r->cap * sizeof *r->reps);
    pdk_free(r->a, r->order, r->order_cap * sizeof *r->order);
    tab_free(r, &r->keys);
    tab_free(r, &r->files);
    pdk_free(r->a, r->scratch, PDK_META_REC_MAX);
    pdk_free(r->a, r->out, PDK_META_REC_MAX);
    pdk_arena_release(&r->arena);
}

/* The run over the bytes: records, and what is left of the tree in *root. */
static pdckpt_status run(reader *r, const uint8_t *data, size_t len, pdckpt_value **root) {
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.format = PDCKPT_FORMAT_PICKLE;
    lo.zero_copy = false;
    lo.allocator = r->a;
    /* the reader's own tally of everything it allocates over the run, freed or not */
    lo.max_alloc_bytes = (uint64_t)len * PDK_META_ALLOC_FACTOR + PDK_META_ALLOC_BASE;
    pdk_input in;
    pdk_input_from_memory(data, len, false, &in);
    in.name = r->source;
    pdk_pickle_consumer c = {on_build, on_pair, r};
    r->scratch = pdk_alloc(r->a, PDK_META_REC_MAX);
    r->out = pdk_alloc(r->a, PDK_META_REC_MAX);
    if (!r->scratch || !r->out) return pdk_fail_nomem(r->err, "metadata records");
    return pdk_pickle_load_consumed(&in, &lo, &c, root, r->err);
}

/* What the index holds, as the budget counts it. */
static uint64_t index_cost(const pdk_meta_index *ix) {
    uint64_t n = cost(ix->n_keys * sizeof *ix->keys) + cost(ix->n_slots * sizeof *ix->slots);
    for (size_t k = 0; k < ix->n_keys; k++) {
        const pdk_key_meta *km = &ix->keys[k];
        n += cost(strlen(km->key) + 1) + cost(km->n_pieces * sizeof *km->pieces) +
             2 * cost(((size_t)km->n_dims + 1) * sizeof(int64_t)) +
             km->n_pieces * cost(2 * ((size_t)km->n_dims + 1) * sizeof(int64_t));
    }
    for (size_t f = 0; f < ix->n_files; f++) n += cost(strlen(ix->files[f]) + 1);
    return n + cost(ix->n_files * sizeof *ix->files);
}

/* The allocation the budget refused surfaced as "out of memory" where it happened (or as nothing,
 * when the index did not fit): it is the budget's error, at the same offset. */
static pdckpt_status over_budget(const counted *c, const char *source, pdckpt_error *err) {
    int64_t at = err->status != PDCKPT_OK ? err->offset : -1;
    pdk_error_reset(err);
    return pdk_fail(err, PDCKPT_ERR_LIMIT, source, at,
                    "metadata: decoding needs more than %llu bytes of memory (max_alloc_bytes)",
                    (unsigned long long)c->limit);
}

pdckpt_status pdk_meta_decode_index(pdk_blob *bytes, const char *source, uint64_t max_alloc_bytes,
                                    pdk_meta_index *ix, pdk_meta_list *list, uint64_t *peak,
                                    pdckpt_error *err) {
    size_t  len = bytes->len;
    counted c = {{counted_alloc, counted_free, NULL}, cost(len), cost(len), max_alloc_bytes, false};
    c.a.ctx = &c;
    if (!c.limit) c.limit = (uint64_t)len * PDK_META_LIVE_FACTOR + PDK_META_ALLOC_BASE;
    reader r = {.source = source, .err = err, .a = &c.a, .list = list};
    pdk_arena_init_on(&r.arena, &c.a);
    pdckpt_value *root = NULL;
    memset(ix, 0, sizeof *ix);
    if (list) pdk_meta_list_free(list); /* keeps keep_pieces */
    pdckpt_status st = c.live > c.limit ? (c.over = true, PDCKPT_ERR_LIMIT) : PDCKPT_OK;
    if (st == PDCKPT_OK) st = run(&r, bytes->data, len, &root);
    pdk_blob_free(bytes); /* nothing decoded borrows the file */
    c.live -= cost(len);
    r.room = c.limit > c.live ? c.limit - c.live : 0;
    if (st == PDCKPT_OK) st = index_from(&r, root, ix);
    uint64_t held =
        st == PDCKPT_OK ? c.live + index_cost(ix) + (list ? pdk_meta_list_cost(list) : 0) : 0;
    if (held > c.peak) c.peak = held;
    pdckpt_value_free(root);
    reader_free(&r);
    if (held > c.limit) {
        pdk_meta_index_free(ix);
        c.over = true, st = PDCKPT_ERR_LIMIT;
    }
    if (st != PDCKPT_OK && c.over) st = over_budget(&c, source, err);
    if (st != PDCKPT_OK && list) pdk_meta_list_free(list);
    if (peak) *peak = c.peak;
    return st;
}
