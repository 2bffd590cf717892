/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tensor_stream.c — Paddle's binary tensor stream (LoDTensor / DenseTensor), spec
 * binary-and-static-formats.md §1: u32 version 0, u64 LoD level count, per level u64 byte size +
 * u64 offsets, then the inner stream: u32 version 0, i32 TensorDesc size, TensorDesc protobuf,
 * raw little-endian C-order data.  Also the `tensor` format module (one stream per file).
 */
#include "pdk_format.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* ---- TensorDesc ---- */

static pdckpt_status desc_dim(pdk_cursor *cur, pdk_pb_tensor_desc *d, uint64_t raw, size_t at) {
    if (d->n_dims >= PDCKPT_MAX_DIMS)
        return pdk_cur_fail_at(cur, at, PDCKPT_ERR_UNSUPPORTED,
                               "expected at most %d dims, found more", PDCKPT_MAX_DIMS);
    int64_t dim = (int64_t)raw;
    if (dim < 0)
        return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT, "expected dim %d >= 0, found %lld",
                               (int)d->n_dims, (long long)dim);
    d->dims[d->n_dims++] = dim;
    return PDCKPT_OK;
}

static pdckpt_status desc_packed_dims(pdk_cursor *cur, pdk_pb_tensor_desc *d) {
    uint64_t len;
    PDK_TRY(pdk_pb_varint(cur, &len, "packed dims length"));
    PDK_TRY(pdk_cur_need(cur, len, "packed dims"));
    pdk_cursor packed;
    pdk_cur_sub(&packed, cur, (size_t)len);
    while (pdk_cur_left(&packed) > 0) {
        size_t   at = packed.pos;
        uint64_t raw;
        PDK_TRY(pdk_pb_varint(&packed, &raw, "dim"));
        PDK_TRY(desc_dim(&packed, d, raw, at));
    }
    cur->pos += (size_t)len;
    return PDCKPT_OK;
}

pdckpt_status pdk_pb_tensor_desc_parse(pdk_cursor *cur, pdk_pb_tensor_desc *out) {
    memset(out, 0, sizeof *out);
    out->data_type = -1;
    for (;;) {
        size_t   at = cur->pos;
        uint32_t field, wire;
        PDK_TRY(pdk_pb_tag(cur, &field, &wire));
        if (field == 0) break;
        uint64_t raw;
        if (field == 1 && wire == PDK_PB_VARINT) {
            PDK_TRY(pdk_pb_varint(cur, &raw, "data_type"));
            out->data_type = raw > 0x7fffffff ? 0x7fffffff : (int)raw;
        } else if (field == 2 && wire == PDK_PB_VARINT) {
            at = cur->pos;
            PDK_TRY(pdk_pb_varint(cur, &raw, "dim"));
            PDK_TRY(desc_dim(cur, out, raw, at));
        } else if (field == 2 && wire == PDK_PB_LEN) {
            PDK_TRY(desc_packed_dims(cur, out));
        } else {
            (void)at;
            PDK_TRY(pdk_pb_skip(cur, wire));
        }
    }
    if (out->data_type < 0)
        return pdk_cur_fail_at(cur, 0, PDCKPT_ERR_FORMAT,
                               "expected TensorDesc.data_type (field 1), found none");
    out->dtype = pdckpt_dtype_from_paddle(out->data_type);
    return PDCKPT_OK;
}

size_t pdk_pb_tensor_desc_encode(int data_type, int32_t n_dims, const int64_t *dims, uint8_t *buf,
                                 size_t cap) {
    if (cap < 12 + (size_t)n_dims * 11) return 0;
    size_t n = 0;
    buf[n++] = 0x08;
    n += pdk_pb_put_varint(buf + n, (uint64_t)data_type);
    for (int32_t i = 0; i < n_dims; i++) {
        buf[n++] = 0x10;
        n += pdk_pb_put_varint(buf + n, (uint64_t)dims[i]);
    }
    return n;
}

/* ---- the header walk: the stream's layout, known here only ---- */

/* Brings the next `n` bytes (or the fewer left) into the cursor's memory for a walker that
 * holds only part of the stream. */
static pdckpt_status walk_fetch(pdk_stream_walk *w, uint64_t n) {
    size_t left = pdk_cur_left(w->cur);
    if (!w->fetch || left == 0) return PDCKPT_OK;
    return w->fetch(w, w->cur->pos, n < left ? (size_t)n : left);
}

static pdckpt_status walk_desc(pdk_stream_walk *w) {
    pdk_cursor *cur = w->cur;
    size_t      at = cur->pos;
    int32_t     desc_size;
    PDK_TRY(pdk_cur_i32le(cur, &desc_size, "TensorDesc size"));
    if (desc_size < 0)
        return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT,
                               "expected TensorDesc size >= 0, found %d", (int)desc_size);
    if ((uint64_t)desc_size > pdk_cur_left(cur))
        return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT,
                               "expected TensorDesc size <= %zu (bytes left), found %d",
                               pdk_cur_left(cur), (int)desc_size);
    PDK_TRY(walk_fetch(w, (uint64_t)desc_size));
    pdk_cursor sub;
    pdk_cur_sub(&sub, cur, (size_t)desc_size);
    PDK_TRY(pdk_pb_tensor_desc_parse(&sub, &w->desc));
    if (w->desc.dtype == PDCKPT_DTYPE_INVALID)
        return pdk_cur_fail_at(cur, cur->pos, PDCKPT_ERR_UNSUPPORTED,
                               "expected a tensor element type code, found %d", w->desc.data_type);
    cur->pos += (size_t)desc_size;
    return PDCKPT_OK;
}

pdckpt_status pdk_stream_walk_inner(pdk_stream_walk *w) {
    pdk_cursor *cur = w->cur;
    size_t      at = cur->pos;
    uint32_t    version;
    PDK_TRY(walk_fetch(w, 8)); /* the version and the TensorDesc size */
    PDK_TRY(pdk_cur_u32le(cur, &version, "tensor version"));
    if (version != 0)
        return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT, "expected tensor version 0, found %u",
                               version);
    PDK_TRY(walk_desc(w));
    at = cur->pos;
    pdckpt_status st = pdk_tensor_sizes(w->desc.dtype, w->desc.n_dims, w->desc.dims, &w->n_elements,
                                        &w->n_bytes, cur->err);
    if (st != PDCKPT_OK) { /* re-report at the data offset, as a format error */
        char why[sizeof cur->err->message];
        memcpy(why, cur->err->message, sizeof why);
        pdk_error_reset(cur->err);
        return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT, "%s", why);
    }
    return PDCKPT_OK;
}

static pdckpt_status walk_level(pdk_stream_walk *w, uint64_t i) {
    pdk_cursor *cur = w->cur;
    size_t      at = cur->pos;
    uint64_t    nbytes;
    PDK_TRY(walk_fetch(w, 8));
    PDK_TRY(pdk_cur_u64le(cur, &nbytes, "LoD level size"));
    if (nbytes % 8)
        return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT,
                               "expected LoD level size to be a multiple of 8, found %llu",
                               (unsigned long long)nbytes);
    if (nbytes <= pdk_cur_left(cur)) PDK_TRY(walk_fetch(w, nbytes));
    const uint8_t *raw;
    PDK_TRY(pdk_cur_bytes(cur, nbytes, &raw, "LoD offsets"));
    return w->level ? w->level(w, i, at, raw, nbytes) : PDCKPT_OK;
}

pdckpt_status pdk_stream_walk_outer(pdk_stream_walk *w) {
    pdk_cursor *cur = w->cur;
    size_t      at = cur->pos;
    uint32_t    version;
    w->n_lod = 0;
    PDK_TRY(walk_fetch(w, 12)); /* the version and the LoD level count */
    PDK_TRY(pdk_cur_u32le(cur, &version, "tensor stream version"));
    if (version != 0)
        return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT,
                               "expected tensor stream version 0, found %u", version);
    at = cur->pos;
    uint64_t n;
    PDK_TRY(pdk_cur_u64le(cur, &n, "LoD level count"));
    /* Each level needs at least its 8-byte size: a count beyond that is corrupt, and checking it
     * first bounds what a level callback allocates by the stream's size. */
    if (n > pdk_cur_left(cur) / 8 || n > 0x7fffffff)
        return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT,
                               "expected LoD level count <= %zu (bytes left / 8), found %llu",
                               pdk_cur_left(cur) / 8, (unsigned long long)n);
    w->n_lod = n;
    for (uint64_t i = 0; i < n; i++) PDK_TRY(walk_level(w, i));
    return pdk_stream_walk_inner(w);
}

/* ---- reading ---- */

pdckpt_status pdk_tensor_from_input(const pdk_input *in, const pdckpt_load_options *opts,
                                    pdckpt_dtype dtype, int32_t n_dims, const int64_t *dims,
                                    const uint8_t *data, pdckpt_value **out, pdckpt_error *err) {
    const pdckpt_allocator *a = opts->allocator;
    bool                    misaligned = ((uintptr_t)data & (PDK_DATA_ALIGN - 1)) != 0;
    bool copy = in->copy_tensors || (opts->require_aligned && misaligned && !in->relayout);
    if (!copy) {
        pdckpt_status st =
            pdckpt_tensor_new_in_buffer(a, dtype, n_dims, dims, in->owner, data, out, err);
        if (st != PDCKPT_OK) pdk_error_set_source(err, in->name);
        return st;
    }
    pdckpt_status st = pdckpt_tensor_new(a, dtype, n_dims, dims, out, err);
    if (st != PDCKPT_OK) {
        pdk_error_set_source(err, in->name);
        return st;
    }
    pdckpt_tensor_view view;
    pdckpt_tensor_get(*out, &view);
    if (view.n_bytes) memcpy(pdckpt_tensor_data_mut(*out), data, (size_t)view.n_bytes);
    return PDCKPT_OK;
}

/* The data that follows the headers `w` walked, as a tensor value. */
static pdckpt_status read_data(const pdk_stream_walk *w, const pdk_input *in,
                               const pdckpt_load_options *opts, pdckpt_value **out) {
    pdk_cursor *cur = w->cur;
    if (w->n_bytes > opts->max_tensor_bytes)
        return pdk_cur_fail_at(cur, cur->pos, PDCKPT_ERR_LIMIT,
                               "expected tensor size <= %llu bytes (max_tensor_bytes), found %llu",
                               (unsigned long long)opts->max_tensor_bytes,
                               (unsigned long long)w->n_bytes);
    const uint8_t *data;
    PDK_TRY(pdk_cur_bytes(cur, w->n_bytes, &data, "tensor data"));
    return pdk_tensor_from_input(in, opts, w->desc.dtype, w->desc.n_dims, w->desc.dims, data, out,
                                 cur->err);
}

pdckpt_status pdk_tensor_inner_read(pdk_cursor *cur, const pdk_input *in,
                                    const pdckpt_load_options *opts, pdckpt_value **out) {
    pdk_stream_walk w = {.cur = cur};
    PDK_TRY(pdk_stream_walk_inner(&w));
    return read_data(&w, in, opts, out);
}

/* Validates LoD semantics (only with opts->verify): offsets start at 0 and never decrease. */
static pdckpt_status check_lod_level(pdk_cursor *cur, size_t at, const uint64_t *offs, uint64_t n,
                                     uint64_t level) {
    for (uint64_t i = 0; i < n; i++)
        if ((i == 0 && offs[0] != 0) || (i > 0 && offs[i] < offs[i - 1]))
            return pdk_cur_fail_at(cur, at + 8 * (size_t)i, PDCKPT_ERR_FORMAT,
                                   "LoD level %llu: expected offsets starting at 0 and "
                                   "non-decreasing, found %llu at index %llu",
                                   (unsigned long long)level, (unsigned long long)offs[i],
                                   (unsigned long long)i);
    return PDCKPT_OK;
}

/* The LoD levels a read collects as the walk meets them, with where each lies (for errors). */
typedef struct lod_levels {
    const pdckpt_load_options *opts;
    uint64_t                   n;
    uint64_t                  *lens;
    uint64_t                 **levels;
    size_t                    *size_at; /* where each level's byte size is stored */
    size_t                    *offs_at; /* where its offsets start */
} lod_levels;

static void lod_free(lod_levels *lod) {
    const pdckpt_allocator *a = lod->opts->allocator;
    for (uint64_t i = 0; i < lod->n && lod->levels && lod->lens; i++)
        pdk_free(a, lod->levels[i], lod->lens[i] * sizeof(uint64_t));
    pdk_free(a, lod->levels, lod->n * sizeof *lod->levels);
    pdk_free(a, lod->lens, lod->n * sizeof *lod->lens);
    pdk_free(a, lod->size_at, lod->n * sizeof *lod->size_at);
    pdk_free(a, lod->offs_at, lod->n * sizeof *lod->offs_at);
}

/* The walk's level callback: copies level i's offsets (checked with opts->verify). */
static pdckpt_status lod_level(pdk_stream_walk *w, uint64_t i, size_t at, const uint8_t *raw,
                               uint64_t nbytes) {
    lod_levels             *lod = w->ctx;
    const pdckpt_allocator *a = lod->opts->allocator;
    pdk_cursor             *cur = w->cur;
    if (i == 0) { /* w->n_lod is bounded by the stream's size (pdk_stream_walk_outer) */
        lod->n = w->n_lod;
        lod->lens = pdk_calloc(a, lod->n, sizeof *lod->lens);
        lod->levels = pdk_calloc(a, lod->n, sizeof *lod->levels);
        lod->size_at = pdk_calloc(a, lod->n, sizeof *lod->size_at);
        lod->offs_at = pdk_calloc(a, lod->n, sizeof *lod->offs_at);
        if (!lod->lens || !lod->levels || !lod->size_at || !lod->offs_at)
            return pdk_fail_nomem(cur->err, "LoD");
    }
    lod->levels[i] = pdk_alloc(a, (size_t)nbytes ? (size_t)nbytes : 1);
    if (!lod->levels[i]) return pdk_fail_nomem(cur->err, "LoD level");
    lod->lens[i] = nbytes / 8;
    lod->size_at[i] = at;
    lod->offs_at[i] = (size_t)(raw - cur->base);
    for (uint64_t j = 0; j < lod->lens[i]; j++) lod->levels[i][j] = pdk_load_u64le(raw + 8 * j);
    if (!lod->opts->verify) return PDCKPT_OK;
    return check_lod_level(cur, lod->offs_at[i], lod->levels[i], lod->lens[i], i);
}

/* Validates how LoD levels fit together (only with opts->verify), as Paddle's CheckLoD: each
 * level's last offset is the next level's offset count - 1, and the last level ends at the
 * tensor's first dimension. */
static pdckpt_status check_lod_chain(pdk_cursor *cur, const lod_levels *lod,
                                     const pdckpt_value *tensor) {
    pdckpt_tensor_view v;
    pdckpt_tensor_get(tensor, &v);
    for (uint64_t i = 0; i < lod->n; i++) {
        bool     last = i + 1 == lod->n;
        uint64_t n = lod->lens[i];
        if (n == 0)
            return pdk_cur_fail_at(cur, lod->size_at[i], PDCKPT_ERR_FORMAT,
                                   "LoD level %llu: expected at least one offset, found none",
                                   (unsigned long long)i);
        if (last ? v.n_dims == 0 || v.dims[0] == 0 : lod->lens[i + 1] == 0) continue;
        uint64_t want = last ? (uint64_t)v.dims[0] : lod->lens[i + 1] - 1;
        if (lod->levels[i][n - 1] != want)
            return pdk_cur_fail_at(cur, lod->offs_at[i] + 8 * (size_t)(n - 1), PDCKPT_ERR_FORMAT,
                                   "LoD level %llu: expected the last offset to be %llu (%s), "
                                   "found %llu",
                                   (unsigned long long)i, (unsigned long long)want,
                                   last ? "the tensor's first dimension"
                                        : "the next level's offset count - 1",
                                   (unsigned long long)lod->levels[i][n - 1]);
    }
    return PDCKPT_OK;
}

pdckpt_status pdk_tensor_stream_read(pdk_cursor *cur, const pdk_input *in,
                                     const pdckpt_load_options *opts, pdckpt_value **out) {
    lod_levels      lod = {.opts = opts};
    pdk_stream_walk w = {.cur = cur, .level = lod_level, .ctx = &lod};
    *out = NULL;
    pdckpt_status st = pdk_stream_walk_outer(&w);
    if (st == PDCKPT_OK) st = read_data(&w, in, opts, out);
    if (st == PDCKPT_OK && lod.n && opts->verify) st = check_lod_chain(cur, &lod, *out);
    if (st == PDCKPT_OK && lod.n)
        st = pdckpt_tensor_set_lod(*out, (int32_t)lod.n, (const uint64_t *const *)lod.levels,
                                   lod.lens, cur->err);
    if (st != PDCKPT_OK && *out) {
        pdckpt_value_free(*out);
        *out = NULL;
    }
    lod_free(&lod);
    return st;
}

/* ---- writing ---- */

pdckpt_status pdk_tensor_inner_write(pdk_sink *sink, const pdckpt_value *tensor,
                                     pdckpt_error *err) {
    pdckpt_tensor_view v;
    if (!pdckpt_tensor_get_memory(tensor, &v, NULL))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "expected a tensor value");
    int code = pdckpt_dtype_to_paddle(v.dtype);
    if (code < 0)
        return pdk_fail(err, PDCKPT_ERR_UNSUPPORTED, sink->name, -1,
                        "dtype %s has no Paddle VarType code; if its bits are another type, "
                        "reinterpret them (e.g. uint16=bfloat16), or save to safetensors",
                        pdckpt_dtype_name(v.dtype));
    uint8_t header[8 + 12 + PDCKPT_MAX_DIMS * 11];
    size_t  desc_len =
        pdk_pb_tensor_desc_encode(code, v.n_dims, v.dims, header + 8, sizeof header - 8);
    pdk_store_u32le(header, 0);
    pdk_store_u32le(header + 4, (uint32_t)desc_len);
    PDK_TRY(pdk_sink_write(sink, header, 8 + desc_len, err));
    return pdk_tensor_c_chunks(tensor, pdk_sink_write_chunk, sink, sink->name, err); /* C order */
}

pdckpt_status pdk_tensor_stream_write(pdk_sink *sink, const pdckpt_value *tensor,
                                      pdckpt_error *err) {
    pdckpt_tensor_view v; /* the LoD: no copy of the data */
    if (!pdckpt_tensor_get_memory(tensor, &v, NULL))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "expected a tensor value");
    uint8_t word[8];
    pdk_store_u32le(word, 0);
    PDK_TRY(pdk_sink_write(sink, word, 4, err));
    pdk_store_u64le(word, (uint64_t)v.n_lod_levels);
    PDK_TRY(pdk_sink_write(sink, word, 8, err));
    for (int32_t i = 0; i < v.n_lod_levels; i++) {
        pdk_store_u64le(word, v.lod_lens[i] * 8);
        PDK_TRY(pdk_sink_write(sink, word, 8, err));
        for (uint64_t j = 0; j < v.lod_lens[i]; j++) {
            pdk_store_u64le(word, v.lod[i][j]);
            PDK_TRY(pdk_sink_write(sink, word, 8, err));
        }
    }
    return pdk_tensor_inner_write(sink, tensor, err);
}

/* ---- the `tensor` format: exactly one stream per file ---- */

void pdk_stream_probe_init(pdk_stream_probe *p, const pdk_input *in) {
    p->scratch = (pdckpt_error)PDCKPT_ERROR_INIT;
    p->opts = (pdckpt_load_options)PDCKPT_LOAD_OPTIONS_INIT;
    p->in = *in;
    p->in.copy_tensors = false;
    p->in.owner = NULL; /* the probe's tensors must not retain the mapping */
    pdk_cur_init(&p->cur, in->data, in->len, in->name, &p->scratch);
}

bool pdk_stream_probe_next(pdk_stream_probe *p, pdk_stream_read_fn read) {
    pdckpt_value *v = NULL;
    if (read(&p->cur, &p->in, &p->opts, &v) != PDCKPT_OK) return false;
    pdckpt_value_free(v);
    return true;
}

bool pdk_stream_length(const pdk_input *in, pdk_stream_read_fn read, size_t *end) {
    pdk_stream_probe p;
    pdk_stream_probe_init(&p, in);
    if (!pdk_stream_probe_next(&p, read)) return false;
    *end = p.cur.pos;
    return true;
}

int pdk_stream_sniff_one(const pdk_input *in, pdk_stream_read_fn read) {
    size_t end = 0;
    return pdk_stream_length(in, read, &end) && end == in->len ? PDK_SNIFF_CERTAIN - 1
                                                               : PDK_SNIFF_NO;
}

bool pdk_tensor_stream_length(const pdk_input *in, size_t *end) {
    return pdk_stream_length(in, pdk_tensor_stream_read, end);
}

static int tensor_sniff(const pdk_input *in) {
    /* A whole-file single stream is certain; more bytes after it point at `combined`. */
    return pdk_stream_sniff_one(in, pdk_tensor_stream_read);
}

/* The directory check's own bound on the LoD level count (any level callback sees the count). */
static pdckpt_status few_levels(pdk_stream_walk *w, uint64_t i, size_t at, const uint8_t *raw,
                                uint64_t nbytes) {
    (void)i, (void)raw, (void)nbytes;
    if (w->n_lod <= 64) return PDCKPT_OK;
    return pdk_cur_fail_at(w->cur, at, PDCKPT_ERR_FORMAT, "expected at most 64 LoD levels");
}

int pdk_tensor_stream_file_ok(int fd, uint64_t size) {
    uint8_t head[64 << 10];
    size_t  want = size < sizeof head ? (size_t)size : sizeof head, got = 0;
    while (got < want) {
        ssize_t n = pread(fd, head + got, want - got, (off_t)got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        if (n == 0) return 0; /* shorter than its size said: not one of ours */
        got += (size_t)n;
    }
    pdckpt_error    scratch = PDCKPT_ERROR_INIT;
    pdk_cursor      cur;
    pdk_stream_walk w = {.cur = &cur, .level = few_levels};
    pdk_cur_init(&cur, head, got, "", &scratch);
    if (pdk_stream_walk_outer(&w) != PDCKPT_OK) return 0; /* LoD offsets must lie in the head */
    return cur.pos + w.n_bytes == size; /* exactly one stream: the data ends the file */
}

pdckpt_status pdk_stream_load_one(const pdk_input *in, const pdckpt_load_options *opts,
                                  pdk_stream_read_fn read, const char *what, pdckpt_value **out,
                                  pdckpt_error *err) {
    pdk_cursor cur;
    pdk_cur_init(&cur, in->data, in->len, in->name, err);
    PDK_TRY(read(&cur, in, opts, out));
    if (cur.pos != cur.len) {
        pdckpt_value_free(*out);
        *out = NULL;
        return pdk_cur_fail(&cur, "expected end of file after the %s, found %zu more bytes", what,
                            pdk_cur_left(&cur));
    }
    return PDCKPT_OK;
}

static pdckpt_status tensor_load(const pdk_input *in, const pdckpt_load_options *opts,
                                 pdckpt_value **out, pdckpt_error *err) {
    return pdk_stream_load_one(in, opts, pdk_tensor_stream_read, "tensor", out, err);
}

static pdckpt_status tensor_save(const pdckpt_value *root, pdk_sink *sink,
                                 const pdckpt_save_options *opts, pdckpt_error *err) {
    (void)opts;
    if (pdckpt_value_kind(root) == PDCKPT_KIND_TENSOR)
        return pdk_tensor_stream_write(sink, root, err);
    /* A dict or list holding exactly one tensor is accepted too (what `ls` shows for it). */
    pdk_flat_list flat;
    PDK_TRY(pdk_flat_collect(root, opts, NULL, &flat, err));
    pdckpt_status st =
        flat.len == 1 ? pdk_tensor_stream_write(sink, flat.entries[0].tensor, err)
                      : pdk_fail(err, PDCKPT_ERR_ARGUMENT, sink->name, -1,
                                 "the tensor format holds exactly one tensor, found %zu", flat.len);
    pdk_flat_free(&flat);
    return st;
}

const pdk_format pdk_format_tensor = {
    .id = PDCKPT_FORMAT_TENSOR,
    .name = "tensor",
    .sniff = tensor_sniff,
    .load = tensor_load,
    .save = tensor_save,
};
