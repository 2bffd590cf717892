/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_index.h — what the writer (pickle_index.c) and the reader (pickle_index_read.c) of the
 * lazy-open index "<file>.pdkidx" share: its version, layout tags and the stamp that binds it to
 * one version of its pickle.  Private to those two files.
 */
#ifndef PDK_PICKLE_INDEX_H
#define PDK_PICKLE_INDEX_H

#include "pickle.h"
#include "pickle_opcodes.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

/* Version 3: every tensor's payload follows its bytes opcode (checked per entry at access).
 * Version 4: version 3 plus IK_TENSOR_F, a column-major tensor; written only by an index that
 * holds one, so a reader that knows version 3 alone (pdckpt before it) still reads every other
 * index and parses the pickle of one with a Fortran-order tensor (its magic is not one it knows),
 * never reading column-major bytes as C order.  Earlier versions are removed by a save like their
 * own and never read (a pickle with one is parsed, as without an index); so are later ones. */
#define IDX_MAGIC     "PDKIDX3\n"
#define IDX_MAGIC_F   "PDKIDX4\n" /* an index holding IK_TENSOR_F */
#define IDX_MAGIC_OLD "PDKIDX"    /* + a version digit and "\n" */
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
    IK_NAMES,    /* a dict root's entry: {key: name} of the tensors of every entry before it (the
                  * name table of Paddle's state-dict path, derived, not stored twice) */
    IK_TENSOR_F, /* (version 4) IK_TENSOR whose payload is column-major (numpy's is_fortran) */
};

/* What binds an index to one version of its pickle. */
typedef struct idx_stamp {
    uint64_t v[7]; /* size, inode, device, mtime ns, ctime ns, head hash, tail hash */
} idx_stamp;

/* The stamp of a pickle whose first and last `edge` bytes are at `head` and `tail`. */
static inline void stamp_edges(const struct stat *st, const uint8_t *head, const uint8_t *tail,
                               size_t edge, idx_stamp *out) {
    out->v[0] = (uint64_t)st->st_size;
    out->v[1] = (uint64_t)st->st_ino;
    out->v[2] = (uint64_t)st->st_dev;
    out->v[3] = (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
    out->v[4] = (uint64_t)st->st_ctim.tv_sec * 1000000000u + (uint64_t)st->st_ctim.tv_nsec;
    out->v[5] = XXH3_64bits(head, edge);
    out->v[6] = XXH3_64bits(tail, edge);
}

static inline void stamp_of(const struct stat *st, const uint8_t *data, size_t len,
                            idx_stamp *out) {
    size_t edge = len < IDX_EDGE ? len : IDX_EDGE;
    stamp_edges(st, data, data + len - edge, edge, out);
}

/* The payload of `n` bytes at `off` in the pickle `d` (`len` bytes) follows the bytes opcode and
 * length the writer puts before it (the writer checks it, so an entry can be checked alone). */
static inline bool payload_at(const uint8_t *d, size_t len, uint64_t off, uint64_t n) {
    if (n == 0) return true;
    if (off > len || n > len - off) return false;
    if (n < 256) return off >= 2 && d[off - 2] == PK_OP_SHORT_BINBYTES && d[off - 1] == n;
    if (n <= UINT32_MAX)
        return off >= 5 && d[off - 5] == PK_OP_BINBYTES && pdk_load_u32le(d + off - 4) == n;
    return off >= 9 && d[off - 9] == PK_OP_BINBYTES8 && pdk_load_u64le(d + off - 8) == n;
}

static inline bool same_version(const struct stat *x, const struct stat *y) {
    return x->st_size == y->st_size && x->st_ino == y->st_ino && x->st_dev == y->st_dev &&
           x->st_mtim.tv_sec == y->st_mtim.tv_sec && x->st_mtim.tv_nsec == y->st_mtim.tv_nsec &&
           x->st_ctim.tv_sec == y->st_ctim.tv_sec && x->st_ctim.tv_nsec == y->st_ctim.tv_nsec;
}

static inline bool index_path(const char *path, char *out, size_t cap) {
    int n = snprintf(out, cap, "%s%s", path, PDK_NAME_INDEX);
    return n > 0 && (size_t)n < cap;
}

#endif /* PDK_PICKLE_INDEX_H */
