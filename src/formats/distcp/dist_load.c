/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_load.c — loading a sharded checkpoint with resharding (spec §5.4): a job of any size reads
 * a checkpoint saved by any number of ranks.  For every box a rank asks for, the stored pieces
 * that overlap it on every dimension are found in the metadata; each overlap is copied straight
 * from the piece's data file into the box (pdk_box_copy: one memcpy per contiguous run).  Data
 * files are opened only when a piece in them is needed and, with zero_copy, mapped: only the
 * pages holding needed bytes are ever read (strided copies ask the kernel not to read around).
 * Without zero_copy nothing is mapped: a pickle data file is skimmed (its opcodes without its
 * large payloads) and each overlap's bytes are read with pread (dist_read.c).
 * Unlike Paddle, which loads whole files and broadcasts slices, each rank reads what it needs
 * itself; the directory must be visible to every rank (a shared filesystem).
 */
#include "../pickle/pickle_skim.h"
#include "pdk_distcp.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the metadata file ---- */

pdckpt_status pdk_distcp_read_meta_bytes(const char *dir, int64_t wanted, int64_t *id,
                                         pdk_blob *out, struct stat *st, pdckpt_error *err) {
    int64_t newest, largest;
    char    path[4200];
    if (wanted < 0) {
        PDK_TRY(pdk_meta_scan(dir, &newest, &largest, err));
        if (newest < 0)
            return pdk_fail(err, PDCKPT_ERR_NOT_FOUND, dir, -1,
                            "no complete sharded checkpoint (no *" PDK_META_SUFFIX " file)");
        wanted = newest;
    }
    *id = wanted;
    PDK_TRY(pdk_meta_path(dir, wanted, path, sizeof path, err));
    pdk_blob_free(out);
    return pdk_read_small_file(path, PDK_META_MAX_BYTES, &out->data, &out->len, st, err);
}

/* {"dtype": name, "global_shape": (..)} of one key of the index. */
static pdckpt_value *key_entry(const pdk_key_meta *km) {
    pdckpt_value *entry = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_value *shape = pdckpt_value_new_container(NULL, PDCKPT_KIND_TUPLE);
    bool          ok = entry && shape;
    for (int32_t d = 0; ok && d < km->n_dims; d++)
        ok = pdckpt_value_append(shape, pdckpt_value_new_int(NULL, km->global_shape[d]), NULL) ==
             PDCKPT_OK;
    ok =
        ok && pdckpt_dict_set(entry, "dtype",
                              pdckpt_value_new_string(NULL, pdckpt_dtype_name(km->dtype), SIZE_MAX),
                              NULL) == PDCKPT_OK;
    if (ok) ok = pdckpt_dict_set(entry, "global_shape", shape, NULL) == PDCKPT_OK, shape = NULL;
    pdckpt_value_free(shape);
    if (!ok) pdckpt_value_free(entry);
    return ok ? entry : NULL;
}

pdckpt_status pdckpt_sharded_read_keys(const char *dir, int64_t id, pdckpt_value **keys,
                                       int64_t *out_id, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!dir || !keys) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "dir or keys is NULL");
    pdk_meta_index ix = {0};
    pdk_blob       compact = {0};
    int64_t        got = -1;
    char           path[4200] = "";
    pdckpt_status  st =
        pdk_distcp_read_index(dir, id, 0, &got, &ix, &compact, path, sizeof path, err);
    pdk_blob_free(&compact);
    *keys = st == PDCKPT_OK ? pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT) : NULL;
    if (st == PDCKPT_OK && !*keys) st = pdk_fail_nomem(err, "keys");
    for (size_t k = 0; st == PDCKPT_OK && k < ix.n_keys; k++) {
        pdckpt_value *entry = key_entry(&ix.keys[k]);
        st = entry ? pdckpt_dict_set(*keys, ix.keys[k].key, entry, err)
                   : pdk_fail_nomem(err, "keys");
    }
    pdk_meta_index_free(&ix);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(*keys);
        *keys = NULL;
    } else if (out_id) {
        *out_id = got;
    }
    return st;
}

bool pdckpt_sharded_is_checkpoint(const char *dir) {
    int64_t      newest = -1, largest = -1;
    pdckpt_error err = PDCKPT_ERROR_INIT;
    return dir && pdk_meta_scan(dir, &newest, &largest, &err) == PDCKPT_OK && newest >= 0;
}

/* ---- data files, opened on first need ---- */

typedef struct loader {
    const pdk_meta_index      *ix;
    const char                *dir;
    const pdckpt_load_options *lo;
    pdckpt_value             **trees; /* one per ix->files entry, NULL until opened */
    const char              ***names; /* combined files: the keys each holds, sorted */
    size_t                    *n_names;
    pdckpt_error              *err;
    pdk_skim                  *skims;   /* per file: its skim when the copy path skimmed it */
    char                     **paths;   /* per file: its path, named by its skim's errors */
    bool                      *whole;   /* per file: read whole (a skim could not place it) */
    uint8_t                   *scratch; /* PDK_DIST_READ_CHUNK bytes, on first need */
} loader;

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A combined file stores no names: they are the file's keys in byte order (Paddle's sorted()).
 * One pass over every piece lists them for all files at once. */
static pdckpt_status list_names(loader *L) {
    const pdk_meta_index *ix = L->ix;
    size_t               *last = malloc((ix->n_files + 1) * sizeof *last), total = 0;
    L->names = calloc(ix->n_files + 1, sizeof *L->names);
    L->n_names = calloc(ix->n_files + 1, sizeof *L->n_names);
    if (!last || !L->names || !L->n_names) return free(last), pdk_fail_nomem(L->err, "names");
    for (size_t k = 0; k < ix->n_keys; k++) total += ix->keys[k].n_pieces;
    for (size_t f = 0; f < ix->n_files; f++) last[f] = SIZE_MAX;
    for (size_t k = 0; k < ix->n_keys; k++) /* counts, each key once per file */
        for (size_t i = 0; i < ix->keys[k].n_pieces; i++) {
            size_t f = ix->keys[k].pieces[i].file_ix;
            if (last[f] != k) last[f] = k, L->n_names[f]++;
        }
    for (size_t f = 0; f < ix->n_files; f++) {
        if (!(L->names[f] = malloc((L->n_names[f] + 1) * sizeof **L->names)))
            return free(last), pdk_fail_nomem(L->err, "names");
        L->n_names[f] = 0, last[f] = SIZE_MAX;
    }
    for (size_t k = 0; k < ix->n_keys; k++)
        for (size_t i = 0; i < ix->keys[k].n_pieces; i++) {
            size_t f = ix->keys[k].pieces[i].file_ix;
            if (last[f] != k) last[f] = k, L->names[f][L->n_names[f]++] = ix->keys[k].key;
        }
    for (size_t f = 0; f < ix->n_files; f++)
        qsort(L->names[f], L->n_names[f], sizeof **L->names, cmp_str);
    free(last);
    (void)total;
    return PDCKPT_OK;
}

/* A data file of many small pieces unpickles, like the metadata, to many times its size: the
 * loader's default budget (4x + 64 MiB) refuses one rank's 64,000 tiny pieces.  Unless the caller
 * set one, the budget scales with the file as the metadata's does. */
static uint64_t data_budget(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0 || sb.st_size <= 0) return 0;
    return (uint64_t)sb.st_size * PDK_META_ALLOC_FACTOR + PDK_META_ALLOC_BASE;
}

/* Pickles smaller than this are read whole: a skim would save nothing. */
#define SKIM_MIN_PAYLOAD ((uint64_t)64 << 10)

typedef enum { SKIM_NONE, SKIM_PICKLE, SKIM_HEADER, SKIM_STREAMS } skim_kind;

/* How a data file of format `format` open at fd is skimmed (SKIM_NONE: read whole): a pickle
 * (a .distcp is sniffed: one that is not a pickle of protocol 2+ is read whole) by its opcodes,
 * a combined file by its tensor streams' headers, a safetensors file by its header (*prefix:
 * its u64 length and the JSON).  A safetensors file with too little data past its header to
 * save a read, or whose header length cannot be right, is read whole, where its reader names
 * what is wrong. */
static skim_kind skim_kind_of(int fd, const struct stat *sb, pdckpt_format format,
                              uint64_t *prefix) {
    uint8_t b[8] = {0};
    if (format == PDCKPT_FORMAT_COMBINED) return SKIM_STREAMS;
    if (format == PDCKPT_FORMAT_PICKLE) return SKIM_PICKLE;
    if (format == PDCKPT_FORMAT_AUTO)
        return pread(fd, b, 1, 0) == 1 && b[0] == 0x80 ? SKIM_PICKLE : SKIM_NONE;
    if (format != PDCKPT_FORMAT_SAFETENSORS || pread(fd, b, 8, 0) != 8) return SKIM_NONE;
    uint64_t n = pdk_load_u64le(b), size = (uint64_t)sb->st_size;
    if (n > size - 8) return SKIM_NONE;
    *prefix = 8 + n;
    return size - *prefix >= SKIM_MIN_PAYLOAD ? SKIM_HEADER : SKIM_NONE;
}

/* The skim of the data file open at fd; *whole when it is to be read whole instead. */
static pdckpt_status skim_file(loader *L, size_t f, int fd, const struct stat *sb,
                               pdckpt_format format, bool *whole) {
    uint64_t  prefix = 0;
    skim_kind k = sb->st_size < 8 ? SKIM_NONE : skim_kind_of(fd, sb, format, &prefix);
    pdk_skim *s = &L->skims[f];
    *whole = k == SKIM_NONE;
    if (*whole) return close(fd), PDCKPT_OK;
    if (k == SKIM_PICKLE) return pdk_skim_open(fd, sb, L->paths[f], SKIM_MIN_PAYLOAD, s, L->err);
    if (k == SKIM_HEADER) return pdk_skim_open_prefix(fd, sb, L->paths[f], prefix, s, L->err);
    bool followed;
    PDK_TRY(pdk_skim_init(fd, sb, L->paths[f], s, L->err));
    PDK_TRY(pdk_skim_streams(s, SKIM_MIN_PAYLOAD, &followed, L->err));
    if (!followed) pdk_skim_free(s); /* closes fd */
    *whole = !followed;
    return PDCKPT_OK;
}

/* The copy path's open of a pickle, combined or safetensors data file: its skeleton only
 * (pickle_skim.c), parsed by the format's reader as always; the tensors point into the
 * skeleton's image, where their payloads are unread zero pages, and each overlap is later read
 * from the file (dist_read.c). */
static pdckpt_status open_skimmed(loader *L, size_t f, const char *path, pdckpt_load_options lo) {
    int dfd = open(L->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd = -1;
    if (dfd < 0) return pdk_fail_sys(L->err, errno, L->dir, "open");
    struct stat   sb;
    pdckpt_status st =
        pdk_open_read(dfd, L->ix->files[f], PDK_OPEN_BENEATH, path, &fd, &sb, L->err);
    close(dfd);
    if (st != PDCKPT_OK) return st;
    if (!(L->paths[f] = strdup(path))) return close(fd), pdk_fail_nomem(L->err, "a path");
    PDK_TRY(skim_file(L, f, fd, &sb, lo.format, &L->whole[f]));
    if (L->whole[f]) return PDCKPT_OK;
    if (lo.format == PDCKPT_FORMAT_AUTO) lo.format = PDCKPT_FORMAT_PICKLE;
    pdk_skim *s = &L->skims[f];
    lo.zero_copy = true; /* views into the image: no payload is copied (or touched) */
    lo.require_aligned = false;
    if (!lo.max_alloc_bytes)
        lo.max_alloc_bytes = (uint64_t)sb.st_size * PDK_META_ALLOC_FACTOR + PDK_META_ALLOC_BASE;
    st = pdk_load_bytes(s->image, s->len, &lo, &L->trees[f], NULL, L->err);
    if (st != PDCKPT_OK) pdk_error_replace_source(L->err, path);
    return st;
}

/* A skimmed file whose tensor is not a view of the file's bytes (converted while parsed: a
 * big-endian or Fortran-order array) is read whole instead. */
static void unskim(loader *L, size_t f) {
    pdckpt_value_free(L->trees[f]);
    L->trees[f] = NULL;
    pdk_skim_free(&L->skims[f]);
    L->whole[f] = true;
}

static pdckpt_status open_data(loader *L, size_t f, const pdckpt_value **tree) {
    if (L->trees[f]) {
        *tree = L->trees[f];
        return PDCKPT_OK;
    }
    const char *file = L->ix->files[f];
    char        path[4200];
    PDK_TRY(pdk_dist_data_path(L->dir, file, path, sizeof path, L->err));
    pdckpt_load_options lo = *L->lo;
    lo.format = pdk_data_file_format(file);
    /* Mapped only when the caller accepts the hazard (zero_copy, the default here): mapped, only
     * the overlaps' pages are read; read, a file another program truncates or rewrites in place
     * meanwhile cannot kill the load (docs/RELIABILITY.md): a data file's skeleton is skimmed
     * (a vars directory's files are read whole) and only the overlaps' bytes are read. */
    if (lo.format == PDCKPT_FORMAT_COMBINED) {
        if (!L->names) PDK_TRY(list_names(L));
        lo.names = L->names[f];
        lo.n_names = L->n_names[f];
    }
    if (!lo.zero_copy && !lo.verify && lo.format != PDCKPT_FORMAT_VARS_DIR && !L->whole[f]) {
        PDK_TRY(open_skimmed(L, f, path, lo));
        if ((*tree = L->trees[f])) return PDCKPT_OK;
    }
    if (!lo.max_alloc_bytes) lo.max_alloc_bytes = data_budget(path);
    pdckpt_status st = pdk_load_beneath(L->dir, file, &lo, &L->trees[f], L->err);
    *tree = L->trees[f];
    return st;
}

/* A flattened piece (dist_unflatten.c): the stored 1-D run, seen as the dense box `p` that
 * starts at its element flat_at. */
static pdckpt_status flat_view(loader *L, const pdk_key_meta *km, const pdk_piece *p,
                               pdckpt_tensor_view *v) {
    size_t  elem = pdckpt_dtype_size(km->dtype);
    int64_t run = p->flat_end - p->flat_begin, volume = pdk_box_volume(km->n_dims, p->shape);
    if (v->n_dims != 1 || v->dims[0] != run || pdckpt_dtype_size(v->dtype) != elem)
        return pdk_fail(L->err, PDCKPT_ERR_MISMATCH, p->file, -1,
                        "tensor '%s': expected a flattened run of %lld %s elements, found "
                        "%d dims",
                        km->key, (long long)run, pdckpt_dtype_name(km->dtype), (int)v->n_dims);
    v->data = (const uint8_t *)v->data + (size_t)p->flat_at * elem;
    v->n_dims = km->n_dims;
    v->dims = p->shape; /* the index outlives the view */
    v->n_elements = (uint64_t)volume;
    v->n_bytes = (uint64_t)volume * elem;
    return PDCKPT_OK;
}

/* "[a, b, c]" into buf (cut short, still terminated, when it does not fit). */
static const char *fmt_dims(char *buf, size_t cap, int32_t n, const int64_t *dims) {
    size_t at = (size_t)snprintf(buf, cap, "[");
    for (int32_t d = 0; d < n && at < cap; d++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%lld", d ? ", " : "", (long long)dims[d]);
    if (at < cap) snprintf(buf + at, cap - at, "]");
    return buf;
}

/* The data file's dtype is the metadata's; bfloat16 and the float8s may also come as their
 * uint16 / uint8 bits (numpy has none of them: a pickle without Paddle's hint holds the bits),
 * the float8s also as int8 (Paddle 3.3's save_state_dict pickles them so, as paddle.save does).
 * Other same-sized dtypes are other values (Paddle 3.3 re-saving an id with another dtype keeps
 * the old metadata: docs/distributed.md). */
static bool same_dtype(pdckpt_dtype meta, pdckpt_dtype file) {
    if (meta == file) return true;
    if (meta == PDCKPT_DTYPE_BFLOAT16) return file == PDCKPT_DTYPE_UINT16;
    bool fp8 = meta == PDCKPT_DTYPE_FLOAT8_E4M3FN || meta == PDCKPT_DTYPE_FLOAT8_E5M2;
    return fp8 && (file == PDCKPT_DTYPE_UINT8 || file == PDCKPT_DTYPE_INT8);
}

/* The piece in the data file is not what the metadata says (a wrong dtype or shape). */
static pdckpt_status piece_mismatch(loader *L, const pdk_key_meta *km, const pdk_piece *p,
                                    const pdckpt_tensor_view *v) {
    char want[160], got[160], at[160];
    return pdk_fail(L->err, PDCKPT_ERR_MISMATCH, p->file, -1,
                    "tensor '%s': the metadata says the piece at %s is %s %s, this data file "
                    "holds %s %s",
                    km->key, fmt_dims(at, sizeof at, km->n_dims, p->offset),
                    pdckpt_dtype_name(km->dtype), fmt_dims(want, sizeof want, km->n_dims, p->shape),
                    pdckpt_dtype_name(v->dtype), fmt_dims(got, sizeof got, v->n_dims, v->dims));
}

/* The stored piece `p` of `km`, checked against what the metadata says it is. */
static pdckpt_status stored_piece(loader *L, const pdk_key_meta *km, const pdk_piece *p,
                                  const pdckpt_value **value, pdckpt_tensor_view *v) {
    const pdckpt_value *tree;
    PDK_TRY(open_data(L, p->file_ix, &tree));
    *value = pdckpt_dict_get(tree, km->key);
    if (!*value || !pdckpt_tensor_get(*value, v))
        return pdk_fail(L->err, PDCKPT_ERR_FORMAT, p->file, -1,
                        "expected tensor '%s' in this data file (the metadata says so)", km->key);
    if (p->flat) PDK_TRY(flat_view(L, km, p, v));
    uint64_t at;
    if (L->skims[p->file_ix].image && v->n_bytes &&
        !pdk_skim_offset(&L->skims[p->file_ix], v->data, v->n_bytes, &at)) {
        unskim(L, p->file_ix);
        return stored_piece(L, km, p, value, v);
    }
    if (p->flat) return PDCKPT_OK;
    bool same = v->n_dims == km->n_dims && same_dtype(km->dtype, v->dtype) &&
                memcmp(v->dims, p->shape, (size_t)v->n_dims * sizeof *v->dims) == 0;
    return same ? PDCKPT_OK : piece_mismatch(L, km, p, v);
}

/* A strided overlap whose runs lie at most this far apart on average is read as the whole
 * range that covers it: one sequential pass (the kernel's large reads) costs less than a fault
 * and a small read per run.  Sparser ones are read run by run. */
#define COVER_STRIDE (UINT64_C(128) << 10)
/* Smaller ranges are not worth a system call (64,000 tiny pieces made 64,000 of them). */
#define ADVISE_MIN (UINT64_C(256) << 10)

/* Reads from a mapping of the overlap (src_off, shape) of a piece: a contiguous run or a dense
 * stride (a column band: every row's range read once, then scattered in memory by the copy) is
 * read ahead in one pass, only the range it spans; a sparse stride (a narrow column of wide
 * rows) tells the kernel not to read around each run. */
static void advise(const pdckpt_tensor_view *v, int32_t n_dims, const int64_t *src_off,
                   const int64_t *shape, size_t elem) {
    if (!v->buffer || !pdckpt_buffer_is_mapped(v->buffer) || v->n_bytes == 0 || n_dims == 0) return;
    uint64_t first = 0, last = 0, stride = elem, runs = 1; /* byte offsets of first and last */
    for (int32_t d = n_dims - 1; d >= 0; d--) {
        first += (uint64_t)src_off[d] * stride;
        last += (uint64_t)(src_off[d] + (shape[d] ? shape[d] - 1 : 0)) * stride;
        stride *= (uint64_t)v->dims[d];
    }
    int32_t inner = n_dims - 1;
    while (inner > 0 && shape[inner] == v->dims[inner]) inner--;
    for (int32_t d = 0; d < inner; d++) runs *= (uint64_t)shape[d];
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    bool      cover = last + elem - first <= runs * COVER_STRIDE;
    if (cover && last + elem - first < ADVISE_MIN) return; /* fault-around reads it anyway */
    uintptr_t from = (uintptr_t)v->data + (cover ? first : 0);
    uintptr_t to = (uintptr_t)v->data + (cover ? last + elem : v->n_bytes);
    uintptr_t begin = from & ~(page - 1), end = (to + page - 1) & ~(page - 1);
    madvise((void *)begin, end - begin, cover ? MADV_WILLNEED : MADV_RANDOM);
}

typedef struct box {
    int32_t n_dims;
    int64_t off[PDCKPT_MAX_DIMS], shape[PDCKPT_MAX_DIMS];
} box;

static pdckpt_status request_box(loader *L, const pdckpt_shard_request *q, const pdk_key_meta **km,
                                 box *b) {
    if (!q->key) return pdk_fail(L->err, PDCKPT_ERR_ARGUMENT, NULL, -1, "a request has no key");
    if (!(*km = pdk_meta_find(L->ix, q->key)))
        return pdk_fail(L->err, PDCKPT_ERR_NOT_FOUND, L->dir, -1, "the checkpoint has no key '%s'",
                        q->key);
    if (q->n_dims != (*km)->n_dims)
        return pdk_fail(L->err, PDCKPT_ERR_MISMATCH, L->dir, -1,
                        "key '%s': expected a %d-dim request, found %d dims", q->key,
                        (int)(*km)->n_dims, (int)q->n_dims);
    b->n_dims = q->n_dims;
    for (int32_t d = 0; d < q->n_dims; d++) {
        int64_t g = (*km)->global_shape[d];
        b->off[d] = q->global_offset ? q->global_offset[d] : 0;
        b->shape[d] = q->local_shape ? q->local_shape[d] : g;
        if (b->off[d] < 0 || b->shape[d] < 0 || b->off[d] > g || b->shape[d] > g - b->off[d])
            return pdk_fail(L->err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                            "key '%s': dim %d: a box of %lld at %lld does not fit the global "
                            "size %lld",
                            q->key, (int)d, (long long)b->shape[d], (long long)b->off[d],
                            (long long)g);
    }
    return PDCKPT_OK;
}

/* The pieces that may overlap box b: from a binary search on the sorted dim-0 offsets until one
 * starts past the box. */
static size_t first_piece(const pdk_key_meta *km, const box *b) {
    return b->n_dims > 0 ? pdk_meta_first_piece(km, b->off[0]) : 0;
}

static bool past_box(const pdk_key_meta *km, const box *b, const pdk_piece *p) {
    return km->reach && p->offset[0] >= b->off[0] + b->shape[0];
}

/* With zero_copy, a box that is exactly one stored piece is returned in place. */
static pdckpt_status exact_piece(loader *L, const pdk_key_meta *km, const box *b,
                                 pdckpt_value **out) {
    *out = NULL;
    for (size_t i = first_piece(km, b); L->lo->zero_copy && i < km->n_pieces; i++) {
        const pdk_piece *p = &km->pieces[i];
        if (past_box(km, b, p)) break;
        if (p->flat || memcmp(p->offset, b->off, (size_t)b->n_dims * sizeof *b->off) != 0 ||
            memcmp(p->shape, b->shape, (size_t)b->n_dims * sizeof *b->shape) != 0)
            continue;
        const pdckpt_value *value;
        pdckpt_tensor_view  v;
        PDK_TRY(stored_piece(L, km, p, &value, &v));
        if (v.dtype != km->dtype) return PDCKPT_OK; /* needs a reinterpretation: copy instead */
        *out = pdckpt_value_retain((pdckpt_value *)value); /* shared, read-only */
        return PDCKPT_OK;
    }
    return PDCKPT_OK;
}

/* Calls `visit` for every stored piece overlapping `b` with the overlap (global `off`, `shape`)
 * and the piece's stored data: in index order from the overlap numbered `from`, then those
 * before it. */
typedef pdckpt_status (*overlap_fn)(void *ctx, const pdk_piece *p, const int64_t *off,
                                    const int64_t *shape, const pdckpt_tensor_view *v);
static pdckpt_status each_overlap(loader *L, const pdk_key_meta *km, const box *b, size_t from,
                                  overlap_fn visit, void *ctx) {
    int64_t off[PDCKPT_MAX_DIMS], shape[PDCKPT_MAX_DIMS];
    for (int pass = 0; pass < (from ? 2 : 1); pass++) {
        size_t k = 0; /* the overlap's number */
        for (size_t i = first_piece(km, b); i < km->n_pieces; i++) {
            const pdk_piece *p = &km->pieces[i];
            if (past_box(km, b, p) || (pass == 1 && k == from)) break;
            if (!pdk_box_overlap(b->n_dims, b->off, b->shape, p->offset, p->shape, off, shape) ||
                (pass == 0 && k++ < from))
                continue;
            k += pass;
            const pdckpt_value *value;
            pdckpt_tensor_view  v;
            PDK_TRY(stored_piece(L, km, p, &value, &v));
            PDK_TRY(visit(ctx, p, off, shape, &v));
        }
    }
    return PDCKPT_OK;
}

typedef struct cover_ctx {
    int32_t n_dims;
    int64_t covered;
    size_t  n; /* overlaps */
} cover_ctx;

static pdckpt_status count_cover(void *ctx, const pdk_piece *p, const int64_t *off,
                                 const int64_t *shape, const pdckpt_tensor_view *v) {
    (void)p, (void)off, (void)v;
    cover_ctx *c = ctx;
    c->covered += pdk_box_volume(c->n_dims, shape);
    c->n++;
    return PDCKPT_OK;
}

/* Before the box's tensor is allocated: the pieces that overlap it are in their data files with
 * the shapes the metadata gives, and cover it whole (they do not overlap: pdk_meta_index_sort).
 * A metadata file of a few bytes that declares a huge global shape thus costs no allocation
 * beyond the data that is really there. */
static pdckpt_status check_pieces(loader *L, const pdk_key_meta *km, const box *b,
                                  size_t *n_overlaps) {
    cover_ctx c = {b->n_dims, 0, 0};
    PDK_TRY(each_overlap(L, km, b, 0, count_cover, &c));
    *n_overlaps = c.n;
    if (c.covered != pdk_box_volume(b->n_dims, b->shape))
        return pdk_fail(L->err, PDCKPT_ERR_FORMAT, L->dir, -1,
                        "key '%s': the stored pieces cover %lld of the %lld elements asked for",
                        km->key, (long long)c.covered,
                        (long long)pdk_box_volume(b->n_dims, b->shape));
    return PDCKPT_OK;
}

typedef struct copy_ctx {
    loader    *L;
    const box *b;
    size_t     elem;
    void      *dst;
} copy_ctx;

/* A skimmed piece whose payload was left unread: the overlap's bytes are read from the file. */
static pdckpt_status read_overlap(const copy_ctx *c, const pdk_piece *p, uint64_t at,
                                  const int64_t *src_off, const int64_t *dst_off,
                                  const int64_t *shape) {
    loader *L = c->L;
    if (!L->scratch && !(L->scratch = malloc(PDK_DIST_READ_CHUNK)))
        return pdk_fail_nomem(L->err, "the read window");
    pdk_overlap_read o = {c->b->n_dims, c->elem, at,    p->shape, src_off,
                          c->b->shape,  dst_off, shape, c->dst};
    return pdk_dist_read_overlap(&L->skims[p->file_ix], &o, L->scratch, L->err);
}

static pdckpt_status copy_overlap(void *ctx, const pdk_piece *p, const int64_t *off,
                                  const int64_t *shape, const pdckpt_tensor_view *v) {
    const copy_ctx *c = ctx;
    const box      *b = c->b;
    int64_t         src_off[PDCKPT_MAX_DIMS], dst_off[PDCKPT_MAX_DIMS];
    for (int32_t d = 0; d < b->n_dims; d++) {
        src_off[d] = off[d] - p->offset[d];
        dst_off[d] = off[d] - b->off[d];
    }
    const pdk_skim *s = &c->L->skims[p->file_ix];
    uint64_t        at;
    if (s->image && pdk_skim_offset(s, v->data, v->n_bytes, &at) &&
        pdk_skim_holed(s, at, v->n_bytes))
        return read_overlap(c, p, at, src_off, dst_off, shape);
    advise(v, b->n_dims, src_off, shape, c->elem);
    pdk_box_copy(b->n_dims, c->elem, v->data, p->shape, src_off, c->dst, b->shape, dst_off, shape);
    return PDCKPT_OK;
}

/* The overlap a box's copy starts from.  Ranks that load the boxes of one layout at once would
 * otherwise all read the same piece first, then the next: in a column split every rank reads
 * every file, and concurrent reads of the same page-cache pages make the cores fight over them.
 * Starting from the box's own position in its grid (its offset over its shape, summed over the
 * dims) puts neighbouring boxes on different pieces. */
static size_t first_overlap(const box *b, size_t n_overlaps) {
    uint64_t at = 0;
    for (int32_t d = 0; d < b->n_dims; d++)
        if (b->shape[d] > 0) at += (uint64_t)(b->off[d] / b->shape[d]);
    return n_overlaps > 1 ? (size_t)(at % n_overlaps) : 0;
}

static pdckpt_status copy_pieces(loader *L, const pdk_key_meta *km, const box *b, void *dst,
                                 size_t n_overlaps) {
    copy_ctx c = {L, b, pdckpt_dtype_size(km->dtype), dst};
    return each_overlap(L, km, b, first_overlap(b, n_overlaps), copy_overlap, &c);
}

static pdckpt_status load_request(loader *L, const pdckpt_shard_request *q, pdckpt_value *out) {
    const pdk_key_meta *km = NULL;
    box                 b;
    PDK_TRY(request_box(L, q, &km, &b));
    if (pdckpt_dict_get(out, q->key))
        return pdk_fail(L->err, PDCKPT_ERR_ARGUMENT, NULL, -1, "key '%s' is requested twice",
                        q->key);
    pdckpt_value *t = NULL;
    PDK_TRY(exact_piece(L, km, &b, &t));
    if (!t) {
        /* the pieces cover the box exactly (check_pieces), so each byte is written once and
         * zeroing the box first would be a wasted pass over it; a failed copy frees the box */
        size_t n_overlaps;
        PDK_TRY(check_pieces(L, km, &b, &n_overlaps));
        PDK_TRY(
            pdk_tensor_new_unzeroed(L->lo->allocator, km->dtype, b.n_dims, b.shape, &t, L->err));
        pdckpt_status st = copy_pieces(L, km, &b, pdckpt_tensor_data_mut(t), n_overlaps);
        if (st == PDCKPT_OK) st = pdckpt_tensor_set_name(t, q->key, L->err);
        if (st != PDCKPT_OK) {
            pdckpt_value_free(t);
            return st;
        }
    }
    return pdckpt_dict_set(out, q->key, t, L->err);
}

static pdckpt_status load_all(loader *L, const pdckpt_shard_request *reqs, size_t n,
                              pdckpt_value **out) {
    *out = pdckpt_value_new_container(L->lo->allocator, PDCKPT_KIND_DICT);
    size_t nf = L->ix->n_files + 1;
    L->trees = calloc(nf, sizeof *L->trees);
    L->skims = calloc(nf, sizeof *L->skims);
    L->paths = calloc(nf, sizeof *L->paths);
    L->whole = calloc(nf, sizeof *L->whole);
    for (size_t f = 0; L->skims && f < nf; f++) L->skims[f].fd = -1; /* none open */
    if (!*out || !L->trees || !L->skims || !L->paths || !L->whole)
        return pdk_fail_nomem(L->err, "the loaded state");
    for (size_t i = 0; i < n; i++) PDK_TRY(load_request(L, &reqs[i], *out));
    return PDCKPT_OK;
}

/* The bytes read after a skim are the version skimmed: a file rewritten in place meanwhile (same
 * size, new bytes) fails the load rather than mix two versions. */
static pdckpt_status check_skimmed(loader *L) {
    for (size_t f = 0; L->skims && f < L->ix->n_files; f++)
        if (L->skims[f].image) PDK_TRY(pdk_skim_check(&L->skims[f], L->err));
    return PDCKPT_OK;
}

static void loader_free(loader *L) {
    for (size_t f = 0; L->trees && f < L->ix->n_files; f++) pdckpt_value_free(L->trees[f]);
    for (size_t f = 0; L->names && f < L->ix->n_files; f++) free(L->names[f]);
    for (size_t f = 0; L->skims && f < L->ix->n_files; f++) pdk_skim_free(&L->skims[f]);
    for (size_t f = 0; L->paths && f < L->ix->n_files; f++) free(L->paths[f]);
    free(L->skims);
    free(L->paths);
    free(L->whole);
    free(L->scratch);
    free(L->trees);
    free(L->names);
    free(L->n_names);
    L->trees = NULL;
    L->names = NULL;
    L->n_names = NULL;
}

/* The metadata is read once and unpickled unless a matching sidecar index is there; under MPI the
 * other ranks get the index in its compact form (dist_meta_index.c), never the pickle. */
pdckpt_status pdk_distcp_read_index(const char *dir, int64_t wanted, uint64_t max_alloc_bytes,
                                    int64_t *id, pdk_meta_index *ix, pdk_blob *compact, char *path,
                                    size_t cap, pdckpt_error *err) {
    pdk_blob      bytes = {0};
    struct stat   mst;
    pdckpt_status st = pdk_distcp_read_meta_bytes(dir, wanted, id, &bytes, &mst, err);
    if (st == PDCKPT_OK) st = pdk_meta_path(dir, *id, path, cap, err);
    if (st == PDCKPT_OK && pdk_meta_sidecar_read(dir, *id, bytes.data, bytes.len, &mst, compact)) {
        pdckpt_error scratch = PDCKPT_ERROR_INIT; /* a broken sidecar: unpickle instead */
        if (pdk_meta_index_decode(compact->data, compact->len, path, ix, &scratch) == PDCKPT_OK)
            return pdk_blob_free(&bytes), PDCKPT_OK;
        pdk_blob_free(compact);
    }
    if (st == PDCKPT_OK)
        st = pdk_meta_decode_index(&bytes, path, max_alloc_bytes, ix, NULL, NULL, err);
    pdk_blob_free(&bytes);
    if (st == PDCKPT_OK) st = pdk_meta_index_encode(ix, compact, err);
    return st;
}

/* Whether a skimmed file is no longer the version skimmed (a failed load is then tried again). */
static bool skimmed_changed(loader *L) {
    pdckpt_error scratch = PDCKPT_ERROR_INIT;
    for (size_t f = 0; L->skims && f < L->ix->n_files; f++)
        if (L->skims[f].image && pdk_skim_check(&L->skims[f], &scratch) != PDCKPT_OK) return true;
    return false;
}

static pdckpt_status load_once(loader *L, const pdckpt_shard_request *reqs, size_t n, bool all_keys,
                               pdckpt_value **out, bool *again) {
    pdckpt_value *result = NULL;
    pdckpt_status st = load_all(L, reqs, n, &result);
    for (size_t k = 0; st == PDCKPT_OK && all_keys && k < L->ix->n_keys; k++) {
        const pdk_key_meta        *km = &L->ix->keys[k];
        const pdckpt_shard_request whole = {km->key, km->n_dims, NULL, NULL};
        st = load_request(L, &whole, result);
    }
    if (st == PDCKPT_OK) st = check_skimmed(L);
    *again = st != PDCKPT_OK && skimmed_changed(L);
    loader_free(L);
    if (st == PDCKPT_OK)
        *out = result;
    else
        pdckpt_value_free(result);
    return st;
}

/* As a whole-file read does (docs/RELIABILITY.md): a load that failed because a data file changed
 * after its skim (truncated, rewritten in place) starts over, a few times. */
#define LOAD_ATTEMPTS 4

pdckpt_status pdk_distcp_load(const pdk_meta_index *ix, const char *dir,
                              const pdckpt_load_options *lo, const pdckpt_shard_request *reqs,
                              size_t n, bool all_keys, pdckpt_value **out, pdckpt_error *err) {
    for (int attempt = 1;; attempt++) {
        loader        L = {ix, dir, lo, NULL, NULL, NULL, err, NULL, NULL, NULL, NULL};
        bool          again = false;
        pdckpt_status st = load_once(&L, reqs, n, all_keys, out, &again);
        if (!again || attempt == LOAD_ATTEMPTS) return st;
        pdk_error_reset(err);
    }
}

pdckpt_status pdckpt_sharded_load(const char *dir, int64_t id, const pdckpt_shard_request *requests,
                                  size_t n_requests, const pdckpt_load_options *opts,
                                  pdckpt_value **out, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (out) *out = NULL;
    if (!dir || !out || (n_requests && !requests))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "dir, requests or out is NULL");
    pdckpt_load_options lo;
    PDK_TRY(pdk_load_options_take(opts, &lo, err));
    pdk_meta_index ix = {0};
    pdk_blob       compact = {0};
    int64_t        got = -1;
    char           path[4200] = "";
    pdckpt_status st = pdk_distcp_read_index(dir, id, lo.max_alloc_bytes, &got, &ix, &compact, path,
                                             sizeof path, err);
    pdk_blob_free(&compact);
    if (st == PDCKPT_OK)
        st = pdk_distcp_load(&ix, dir, &lo, requests, n_requests, n_requests == 0, out, err);
    pdk_meta_index_free(&ix);
    return st;
}

pdckpt_status pdckpt_sharded_scan(const char *dir, int64_t *newest_complete, int64_t *largest_seen,
                                  pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    int64_t a, b;
    if (!dir) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "dir is NULL");
    PDK_TRY(pdk_meta_scan(dir, &a, &b, err));
    if (newest_complete) *newest_complete = a;
    if (largest_seen) *largest_seen = b;
    return PDCKPT_OK;
}
