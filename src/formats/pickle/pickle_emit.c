/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_emit.c — CPython's pickler in C (spec pickle-and-distributed-formats.md §1.7, §1.10):
 * PROTO, protocol-4 framing (commit at the start of a save once the frame holds 64 KiB; str and
 * bytes payloads of 64 KiB or more bypass frames), memo opcodes, and the save_* family for atoms,
 * str, bytes (protocol 2's _codecs.encode of latin-1 text, UTF-8-encoded in bounded chunks),
 * globals (with Python 2 spellings below protocol 3), tuples and 1000-item batches.  Payloads are
 * written from the caller's memory straight into the sink.
 */
#include "pickle_emit.h"
#include "pickle.h"
#include "pickle_names.h"
#include "pickle_opcodes.h"

#include <string.h>

#define FRAME_SIZE_TARGET (64u * 1024)
#define FRAME_SIZE_MIN    4
#define SCRATCH_SIZE      (128u * 1024) /* UTF-8 output of a 64 KiB latin-1 chunk */

static void put_le(uint8_t *out, uint64_t v, int n) {
    for (int i = 0; i < n; i++) out[i] = (uint8_t)(v >> (8 * i));
}

static pdckpt_status fail(pdk_pkl *p, pdckpt_status st, const char *what) {
    return pdk_fail(p->err, st, p->sink->name, -1, "%s", what);
}

pdckpt_status pdk_pkl_begin(pdk_pkl *p, pdk_sink *sink, const pdckpt_save_options *opts,
                            pdckpt_error *err) {
    memset(p, 0, sizeof *p);
    p->sink = sink;
    p->alloc = opts->allocator;
    p->proto = opts->protocol;
    p->numpy_module = opts->numpy_module;
    p->allowed = opts->allowed_globals;
    p->n_allowed = opts->n_allowed_globals;
    p->err = err;
    if (p->proto < 2 || p->proto > 4)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, sink->name, -1,
                        "expected pickle protocol 2, 3 or 4, found %d", p->proto);
    PDK_TRY(pdk_global_check_allowed(p->allowed, p->n_allowed, sink->name, err));
    p->memo = pdk_memo_new(p->alloc);
    if (!p->memo) return pdk_fail_nomem(err, "pickle memo");
    if (p->proto == 2 && !(p->scratch = pdk_alloc(p->alloc, SCRATCH_SIZE)))
        return pdk_fail_nomem(err, "pickle encode buffer");
    uint8_t header[2] = {PK_OP_PROTO, (uint8_t)p->proto};
    PDK_TRY(pdk_sink_write(sink, header, 2, err)); /* outside any frame, as CPython writes it */
    p->framing = p->proto >= 4;
    return PDCKPT_OK;
}

/* ---- tensor payload offsets (the lazy-open index) ---- */

static void offsets_add(pdk_pickle_offsets *o, uint64_t at, bool framed) {
    if (!o->ok) return;
    if (o->n == o->cap) {
        size_t    cap = o->cap ? 2 * o->cap : 1024;
        uint64_t *grown = pdk_alloc(o->alloc, cap * sizeof *grown);
        if (!grown) {
            o->ok = false;
            return;
        }
        if (o->n) memcpy(grown, o->at, o->n * sizeof *grown);
        pdk_free(o->alloc, o->at, o->cap * sizeof *o->at);
        o->at = grown;
        o->cap = cap;
    }
    o->at[o->n++] = at;
    if (!framed) o->framed = o->n;
}

/* Offsets recorded inside the frame about to be written at `base` become file offsets. */
static void offsets_place(pdk_pickle_offsets *o, uint64_t base) {
    if (!o) return;
    for (size_t i = o->framed; i < o->n; i++) o->at[i] += base;
    o->framed = o->n;
}

/* Notes a payload of `len` bytes just written (`hit`: shared through the memo, not written; an
 * empty one points nowhere, so any offset does). */
static void note_payload(pdk_pkl *p, uint64_t len, bool hit) {
    if (!p->offsets) return;
    if (len && (hit || p->proto < 3)) {
        p->offsets->ok = false;
        p->offsets->unindexable |= p->proto < 3;
        return;
    }
    bool framed = p->framing && len < FRAME_SIZE_TARGET;
    offsets_add(p->offsets, framed ? p->frame_len - len : p->sink->written - len, framed);
}

static pdckpt_status commit_frame(pdk_pkl *p) {
    if (!p->framing || !p->in_frame) return PDCKPT_OK;
    p->in_frame = false;
    size_t n = p->frame_len;
    p->frame_len = 0;
    offsets_place(p->offsets, p->sink->written + (n >= FRAME_SIZE_MIN ? 9 : 0));
    if (n >= FRAME_SIZE_MIN) {
        uint8_t header[9] = {PK_OP_FRAME};
        put_le(header + 1, n, 8);
        PDK_TRY(pdk_sink_write(p->sink, header, sizeof header, p->err));
    }
    return pdk_sink_write(p->sink, p->frame, n, p->err);
}

pdckpt_status pdk_pkl_end(pdk_pkl *p, bool ok) {
    pdckpt_status st = PDCKPT_OK;
    if (ok) st = pdk_pkl_op(p, PK_OP_STOP);
    if (ok && st == PDCKPT_OK) st = commit_frame(p);
    pdk_memo_free(p->memo);
    pdk_free(p->alloc, p->frame, p->frame_cap);
    pdk_free(p->alloc, p->scratch, SCRATCH_SIZE);
    p->memo = NULL;
    p->frame = p->scratch = NULL;
    return st;
}

pdckpt_status pdk_pkl_boundary(pdk_pkl *p) {
    if (p->framing && p->in_frame && p->frame_len >= FRAME_SIZE_TARGET) return commit_frame(p);
    return PDCKPT_OK;
}

static pdckpt_status frame_reserve(pdk_pkl *p, size_t need) {
    if (need <= p->frame_cap) return PDCKPT_OK;
    size_t cap = p->frame_cap ? p->frame_cap : 2 * FRAME_SIZE_TARGET;
    while (cap < need) cap *= 2;
    uint8_t *grown = pdk_alloc(p->alloc, cap);
    if (!grown) return pdk_fail_nomem(p->err, "pickle frame");
    if (p->frame_len) memcpy(grown, p->frame, p->frame_len);
    pdk_free(p->alloc, p->frame, p->frame_cap);
    p->frame = grown;
    p->frame_cap = cap;
    return PDCKPT_OK;
}

pdckpt_status pdk_pkl_write(pdk_pkl *p, const void *bytes, size_t len) {
    if (!p->framing) return pdk_sink_write(p->sink, bytes, len, p->err);
    p->in_frame = true; /* the first write after a commit opens the next frame */
    if (len == 0) return PDCKPT_OK;
    if (len > SIZE_MAX - p->frame_len) return pdk_fail_nomem(p->err, "pickle frame");
    PDK_TRY(frame_reserve(p, p->frame_len + len));
    memcpy(p->frame + p->frame_len, bytes, len);
    p->frame_len += len;
    return PDCKPT_OK;
}

pdckpt_status pdk_pkl_op(pdk_pkl *p, uint8_t opcode) {
    return pdk_pkl_write(p, &opcode, 1);
}

/* An opcode header plus a payload: payloads of 64 KiB or more go outside frames (the open frame
 * is committed first), straight from the caller's memory. */
static pdckpt_status write_payload(pdk_pkl *p, const uint8_t *header, size_t hlen, const void *data,
                                   uint64_t len) {
    if (len < FRAME_SIZE_TARGET || !p->framing) {
        PDK_TRY(pdk_pkl_write(p, header, hlen));
        return pdk_pkl_write(p, data, (size_t)len);
    }
    PDK_TRY(commit_frame(p));
    PDK_TRY(pdk_sink_write(p->sink, header, hlen, p->err));
    return pdk_sink_write(p->sink, data, (size_t)len, p->err);
}

static pdckpt_status write_get(pdk_pkl *p, uint64_t index) {
    uint8_t op[5];
    if (index < 256) {
        op[0] = PK_OP_BINGET;
        op[1] = (uint8_t)index;
        return pdk_pkl_write(p, op, 2);
    }
    op[0] = PK_OP_LONG_BINGET;
    put_le(op + 1, index, 4);
    return pdk_pkl_write(p, op, 5);
}

pdckpt_status pdk_pkl_memo_get(pdk_pkl *p, const pdk_pkl_key *key, bool *hit) {
    uint64_t index;
    *hit = pdk_memo_find(p->memo, key, &index);
    return *hit ? write_get(p, index) : PDCKPT_OK;
}

pdckpt_status pdk_pkl_get(pdk_pkl *p, uint64_t index) {
    PDK_TRY(pdk_pkl_boundary(p));
    return write_get(p, index);
}

pdckpt_status pdk_pkl_memoize(pdk_pkl *p, const pdk_pkl_key *key) {
    uint64_t index = p->memo_next;
    if (p->proto < 4 && index > UINT32_MAX)
        return fail(p, PDCKPT_ERR_LIMIT, "more than 2^32 memoized objects need protocol 4");
    PDK_TRY(pdk_memo_put(p->memo, key, index, p->err));
    p->memo_next++;
    if (p->proto >= 4) return pdk_pkl_op(p, PK_OP_MEMOIZE);
    uint8_t op[5] = {PK_OP_BINPUT, (uint8_t)index};
    if (index < 256) return pdk_pkl_write(p, op, 2);
    op[0] = PK_OP_LONG_BINPUT;
    put_le(op + 1, index, 4);
    return pdk_pkl_write(p, op, 5);
}

pdckpt_status pdk_pkl_enter(pdk_pkl *p) {
    if (p->depth >= PDK_PKL_MAX_DEPTH)
        return pdk_fail(p->err, PDCKPT_ERR_LIMIT, p->sink->name, -1,
                        "expected at most %d levels of nesting, found more", PDK_PKL_MAX_DEPTH);
    p->depth++;
    return PDCKPT_OK;
}

void pdk_pkl_leave(pdk_pkl *p) {
    p->depth--;
}

pdckpt_status pdk_pkl_save_none(pdk_pkl *p) {
    PDK_TRY(pdk_pkl_boundary(p));
    return pdk_pkl_op(p, PK_OP_NONE);
}

pdckpt_status pdk_pkl_save_bool(pdk_pkl *p, bool v) {
    PDK_TRY(pdk_pkl_boundary(p));
    return pdk_pkl_op(p, v ? PK_OP_NEWTRUE : PK_OP_NEWFALSE);
}

/* pickle's encode_long: two's complement, little-endian, as few bytes as keep the sign. */
static size_t encode_long(int64_t v, uint8_t out[8]) {
    size_t n = 8;
    put_le(out, (uint64_t)v, 8);
    while (n > 1) {
        uint8_t top = out[n - 1], next = out[n - 2];
        if ((top == 0x00 && !(next & 0x80)) || (top == 0xff && (next & 0x80)))
            n--;
        else
            break;
    }
    return n;
}

pdckpt_status pdk_pkl_save_int(pdk_pkl *p, int64_t v) {
    PDK_TRY(pdk_pkl_boundary(p));
    uint8_t op[10];
    if (v >= 0 && v <= 0xff) {
        op[0] = PK_OP_BININT1;
        op[1] = (uint8_t)v;
        return pdk_pkl_write(p, op, 2);
    }
    if (v >= 0 && v <= 0xffff) {
        op[0] = PK_OP_BININT2;
        put_le(op + 1, (uint64_t)v, 2);
        return pdk_pkl_write(p, op, 3);
    }
    if (v >= INT32_MIN && v <= INT32_MAX) {
        op[0] = PK_OP_BININT;
        put_le(op + 1, (uint64_t)v, 4);
        return pdk_pkl_write(p, op, 5);
    }
    op[0] = PK_OP_LONG1;
    size_t n = encode_long(v, op + 2);
    op[1] = (uint8_t)n;
    return pdk_pkl_write(p, op, 2 + n);
}

/* An int beyond 64 bits as the reader carries it (builtins.int with pickle's own minimal
 * two's-complement bytes): LONG1, or LONG4 past 255 bytes, as CPython writes it. */
pdckpt_status pdk_pkl_save_long_bytes(pdk_pkl *p, const uint8_t *bytes, size_t n) {
    if (n > UINT32_MAX)
        return pdk_fail(p->err, PDCKPT_ERR_ARGUMENT, p->sink->name, -1,
                        "expected an int of at most 2^32 bytes, found %zu", n);
    PDK_TRY(pdk_pkl_boundary(p));
    uint8_t op[5] = {n < 256 ? PK_OP_LONG1 : PK_OP_LONG4};
    put_le(op + 1, n, n < 256 ? 1 : 4);
    PDK_TRY(pdk_pkl_write(p, op, n < 256 ? 2 : 5));
    return pdk_pkl_write(p, bytes, n);
}

pdckpt_status pdk_pkl_save_float(pdk_pkl *p, double v) {
    PDK_TRY(pdk_pkl_boundary(p));
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    uint8_t op[9] = {PK_OP_BINFLOAT};
    for (int i = 0; i < 8; i++) op[1 + i] = (uint8_t)(bits >> (56 - 8 * i)); /* big-endian */
    return pdk_pkl_write(p, op, 9);
}

/* CPython caches every 0- and 1-character latin-1 str: such strings are one object per text. */
static bool single_char(const char *s, size_t len, uint64_t *cp) {
    const uint8_t *u = (const uint8_t *)s;
    if (len == 0) return *cp = 256, true;
    if (len == 1 && u[0] < 0x80) return *cp = u[0], true;
    if (len == 2 && (u[0] == 0xc2 || u[0] == 0xc3) && (u[1] & 0xc0) == 0x80)
        return *cp = (uint64_t)((u[0] & 0x1f) << 6 | (u[1] & 0x3f)), true;
    return false;
}

/* In CPython 3.11 the deep-frozen startup modules intern their own 1-character constants, so for
 * these characters a literal or attribute name ('b' in d['b']) is a different object from the
 * cached str that decoding, chr() or slicing return (a tensor name, protocol 2's latin-1 text).
 * Measured on 3.11: [c for c in range(256) if sys.intern(chr(c)) is not chr(c)]. */
static bool interned_apart(uint64_t cp) {
    static const char apart[] = "BCLST_abcdefhijklmnopqrstvwxy";
    return cp > 0 && cp < 128 && strchr(apart, (int)cp) != NULL;
}

/* The header of a sized payload (str or bytes): the 1-byte-length opcode where `short_ok` and
 * it fits, the 8-byte form past 4 GiB (the caller checked the protocol), else the 4-byte form.
 * Returns the header's length. */
static size_t sized_header(uint8_t h[9], size_t len, bool short_ok, uint8_t op1, uint8_t op4,
                           uint8_t op8) {
    if (short_ok && len <= 0xff) {
        h[0] = op1;
        h[1] = (uint8_t)len;
        return 2;
    }
    bool wide = len > UINT32_MAX;
    h[0] = wide ? op8 : op4;
    put_le(h + 1, len, wide ? 8 : 4);
    return wide ? 9 : 5;
}

static pdk_pkl_key char_key(const pdk_pkl_key *origin, uint64_t cp) {
    bool             literal = origin->kind == PDK_KEY_STR || origin->kind == PDK_KEY_ROOTKEY;
    pdk_pkl_key_kind kind = literal && interned_apart(cp) ? PDK_KEY_ICHAR : PDK_KEY_CHAR;
    return (pdk_pkl_key){kind, NULL, 0, NULL, 0, cp};
}

/* A str's opcode, length and UTF-8 bytes (the memo is the caller's). */
static pdckpt_status write_str(pdk_pkl *p, const char *s, size_t len) {
    if (len > UINT32_MAX && p->proto < 4)
        return fail(p, PDCKPT_ERR_LIMIT, "a str of 4 GiB or more needs protocol 4");
    uint8_t h[9];
    size_t  hlen = sized_header(h, len, p->proto >= 4, PK_OP_SHORT_BINUNICODE, PK_OP_BINUNICODE,
                                PK_OP_BINUNICODE8);
    return write_payload(p, h, hlen, s, len);
}

pdckpt_status pdk_pkl_save_str(pdk_pkl *p, const char *s, size_t len, pdk_pkl_key key) {
    PDK_TRY(pdk_pkl_boundary(p));
    uint64_t cp;
    if (single_char(s, len, &cp)) key = char_key(&key, cp);
    bool hit;
    PDK_TRY(pdk_pkl_memo_get(p, &key, &hit));
    if (hit) return PDCKPT_OK;
    PDK_TRY(write_str(p, s, len));
    return pdk_pkl_memoize(p, &key);
}

pdckpt_status pdk_pkl_save_new_str(pdk_pkl *p, const char *s, size_t len, uint64_t *index) {
    PDK_TRY(pdk_pkl_boundary(p));
    uint64_t cp;
    if (single_char(s, len, &cp))
        return fail(p, PDCKPT_ERR_ARGUMENT, "a 0/1-character str is never new to the memo");
    PDK_TRY(write_str(p, s, len));
    *index = p->memo_next;
    pdk_pkl_key fresh = pdk_key_fresh();
    return pdk_pkl_memoize(p, &fresh);
}

static uint64_t count_high_bytes(const uint8_t *d, uint64_t n) {
    uint64_t count = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, d + i, 8);
        count += (uint64_t)__builtin_popcountll(w & 0x8080808080808080ull);
    }
    for (; i < n; i++) count += d[i] >> 7;
    return count;
}

/* Protocol 2's bytes text: str(data, 'latin1') pickled as UTF-8, encoded chunk by chunk. */
static pdckpt_status save_latin1_text(pdk_pkl *p, const uint8_t *d, uint64_t n) {
    PDK_TRY(pdk_pkl_boundary(p));
    pdk_pkl_key key = pdk_key_fresh();
    if (n == 1) key = (pdk_pkl_key){PDK_KEY_CHAR, NULL, 0, NULL, 0, d[0]};
    bool hit;
    PDK_TRY(pdk_pkl_memo_get(p, &key, &hit));
    if (hit) return PDCKPT_OK;
    uint64_t utf8_len = n + count_high_bytes(d, n);
    if (utf8_len > UINT32_MAX)
        return fail(p, PDCKPT_ERR_LIMIT,
                    "bytes whose latin-1 text is 4 GiB or more need protocol 3 or 4");
    uint8_t h[5] = {PK_OP_BINUNICODE};
    put_le(h + 1, utf8_len, 4);
    PDK_TRY(pdk_pkl_write(p, h, 5));
    for (uint64_t off = 0; off < n;) {
        uint64_t chunk = n - off < SCRATCH_SIZE / 2 ? n - off : SCRATCH_SIZE / 2;
        size_t   o = 0;
        for (uint64_t i = 0; i < chunk; i++) { /* branch-free: write two bytes, keep 1 or 2 */
            uint8_t b = d[off + i], high = b >> 7;
            p->scratch[o] = high ? (uint8_t)(0xc0 | (b >> 6)) : b;
            p->scratch[o + 1] = (uint8_t)(0x80 | (b & 0x3f));
            o += 1u + high;
        }
        PDK_TRY(pdk_pkl_write(p, p->scratch, o));
        off += chunk;
    }
    return pdk_pkl_memoize(p, &key);
}

/* Protocol 2: bytes are rebuilt by _codecs.encode(text, 'latin1') (or bytes() when empty). */
static pdckpt_status save_bytes_proto2(pdk_pkl *p, const uint8_t *d, uint64_t n,
                                       const pdk_pkl_key *key) {
    if (n == 0) {
        PDK_TRY(pdk_pkl_save_global(p, "builtins", "bytes"));
        PDK_TRY(pdk_pkl_boundary(p)); /* save(()) */
        PDK_TRY(pdk_pkl_op(p, PK_OP_EMPTY_TUPLE));
    } else {
        PDK_TRY(pdk_pkl_save_global(p, "_codecs", "encode"));
        PDK_TRY(pdk_pkl_boundary(p)); /* save((text, 'latin1')) */
        PDK_TRY(save_latin1_text(p, d, n));
        PDK_TRY(pdk_pkl_save_str(p, "latin1", 6, pdk_key_text(PDK_KEY_STR, "latin1", 6)));
        PDK_TRY(pdk_pkl_tuple_end(p, 2, pdk_key_fresh()));
    }
    PDK_TRY(pdk_pkl_op(p, PK_OP_REDUCE));
    return pdk_pkl_memoize(p, key);
}

pdckpt_status pdk_pkl_save_bytes(pdk_pkl *p, const void *data, uint64_t len, pdk_pkl_key key) {
    PDK_TRY(pdk_pkl_boundary(p));
    const uint8_t *d = data;
    bool           payload = p->want_offset;
    p->want_offset = false;
    if (len <= 1) key = (pdk_pkl_key){PDK_KEY_BYTE, NULL, 0, NULL, 0, len ? d[0] : 256};
    bool hit;
    PDK_TRY(pdk_pkl_memo_get(p, &key, &hit));
    if (payload && (hit || p->proto < 3)) note_payload(p, len, true);
    if (hit) return PDCKPT_OK;
    if (p->proto < 3) return save_bytes_proto2(p, d, len, &key);
    if (len > UINT32_MAX && p->proto < 4)
        return fail(p, PDCKPT_ERR_LIMIT, "bytes of 4 GiB or more need protocol 4");
    uint8_t h[9];
    size_t hlen = sized_header(h, len, true, PK_OP_SHORT_BINBYTES, PK_OP_BINBYTES, PK_OP_BINBYTES8);
    PDK_TRY(write_payload(p, h, hlen, d, len));
    if (payload) note_payload(p, len, false);
    return pdk_pkl_memoize(p, &key);
}

pdckpt_status pdk_pkl_tuple_begin(pdk_pkl *p, size_t n) {
    return n > 3 ? pdk_pkl_op(p, PK_OP_MARK) : PDCKPT_OK;
}

pdckpt_status pdk_pkl_tuple_end(pdk_pkl *p, size_t n, pdk_pkl_key key) {
    if (n == 0) return pdk_pkl_op(p, PK_OP_EMPTY_TUPLE); /* the () singleton is never memoized */
    PDK_TRY(pdk_pkl_op(p, n <= 3 ? (uint8_t)(PK_OP_TUPLE1 + n - 1) : (uint8_t)PK_OP_TUPLE));
    return pdk_pkl_memoize(p, &key);
}

pdckpt_status pdk_pkl_save_int_tuple(pdk_pkl *p, const int64_t *v, size_t n) {
    PDK_TRY(pdk_pkl_boundary(p));
    PDK_TRY(pdk_pkl_tuple_begin(p, n));
    for (size_t i = 0; i < n; i++) PDK_TRY(pdk_pkl_save_int(p, v[i]));
    return pdk_pkl_tuple_end(p, n, pdk_key_fresh());
}

/* batch_dict_exact / batch_set: MARK ... SETITEMS|ADDITEMS per 1000, looping while the last batch
 * was full, so a count that is a multiple of 1000 ends with an empty batch. */
static pdckpt_status batch_exact_dict_set(pdk_pkl *p, uint8_t close, size_t n, pdk_pkl_item_fn fn,
                                          void *ctx) {
    size_t i = 0, k;
    do {
        PDK_TRY(pdk_pkl_op(p, PK_OP_MARK));
        for (k = 0; i < n && k < PDK_PKL_BATCH; k++, i++) PDK_TRY(fn(p, ctx, i));
        PDK_TRY(pdk_pkl_op(p, close));
    } while (k == PDK_PKL_BATCH);
    return PDCKPT_OK;
}

/* batch_list_exact: MARK ... APPENDS per 1000 (a lone trailing item too), no empty batch. */
static pdckpt_status batch_exact_list(pdk_pkl *p, size_t n, pdk_pkl_item_fn fn, void *ctx) {
    size_t i = 0;
    do {
        PDK_TRY(pdk_pkl_op(p, PK_OP_MARK));
        for (size_t k = 0; i < n && k < PDK_PKL_BATCH; k++, i++) PDK_TRY(fn(p, ctx, i));
        PDK_TRY(pdk_pkl_op(p, PK_OP_APPENDS));
    } while (i < n);
    return PDCKPT_OK;
}

/* The iterator versions save_reduce uses for listitems/dictitems: full batches of 1000, and a
 * single remaining item as APPEND/SETITEM; no empty batch. */
static pdckpt_status batch_plain(pdk_pkl *p, uint8_t one, uint8_t many, size_t n,
                                 pdk_pkl_item_fn fn, void *ctx) {
    for (size_t i = 0; i < n;) {
        if (n - i == 1) {
            PDK_TRY(fn(p, ctx, i));
            return pdk_pkl_op(p, one);
        }
        PDK_TRY(pdk_pkl_op(p, PK_OP_MARK));
        for (size_t k = 0; i < n && k < PDK_PKL_BATCH; k++, i++) PDK_TRY(fn(p, ctx, i));
        PDK_TRY(pdk_pkl_op(p, many));
    }
    return PDCKPT_OK;
}

pdckpt_status pdk_pkl_batch(pdk_pkl *p, pdk_pkl_batch_mode mode, size_t n, pdk_pkl_item_fn fn,
                            void *ctx) {
    if (n == 0) return PDCKPT_OK;
    switch (mode) {
    case PDK_BATCH_DICT_EXACT:
        if (n == 1) {
            PDK_TRY(fn(p, ctx, 0));
            return pdk_pkl_op(p, PK_OP_SETITEM);
        }
        return batch_exact_dict_set(p, PK_OP_SETITEMS, n, fn, ctx);
    case PDK_BATCH_SET: return batch_exact_dict_set(p, PK_OP_ADDITEMS, n, fn, ctx);
    case PDK_BATCH_DICT_ITER: return batch_plain(p, PK_OP_SETITEM, PK_OP_SETITEMS, n, fn, ctx);
    case PDK_BATCH_LIST_EXACT:
        if (n == 1) {
            PDK_TRY(fn(p, ctx, 0));
            return pdk_pkl_op(p, PK_OP_APPEND);
        }
        return batch_exact_list(p, n, fn, ctx);
    case PDK_BATCH_LIST_ITER: return batch_plain(p, PK_OP_APPEND, PK_OP_APPENDS, n, fn, ctx);
    }
    return PDCKPT_OK;
}

bool pdk_pkl_is_name_like(const char *s, size_t len) {
    if (len == 0) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}
