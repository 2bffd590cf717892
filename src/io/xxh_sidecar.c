/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xxh_sidecar.c — integrity sidecars ("<file>.xxh3"): xxh3-128 of every 4 KiB block of a file,
 * hashed from the bytes as the file sink emits them (one pass, no re-read), and the checker that
 * `pdckpt verify` runs.  The data file stays byte-identical to what Paddle writes.  Text format
 * (docs/RELIABILITY.md "Checksum sidecars"):
 *   pdckpt-xxh3 1\n
 *   size <file bytes> block 4096 file <32 hex: xxh3-128 of the block hashes>\n
 *   <32 hex>\n          one line per block, in file order (canonical big-endian digests)
 */
#include "pdk_io.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack: no allocation */
#include <xxhash.h>

#define BLOCK    4096u
#define HEAD_MAX 160u /* the two header lines are far shorter */

struct pdk_sidecar {
    const pdckpt_allocator *alloc;
    uint8_t                 buf[BLOCK];
    size_t                  fill;
    uint64_t                size;
    XXH128_canonical_t     *blocks;
    size_t                  n_blocks;
    size_t                  cap_blocks;
};

pdckpt_status pdk_sidecar_new(const pdckpt_allocator *a, pdk_sidecar **out, pdckpt_error *err) {
    *out = pdk_calloc(a, 1, sizeof **out);
    if (!*out) return pdk_fail_nomem(err, "checksum state");
    (*out)->alloc = a;
    return PDCKPT_OK;
}

void pdk_sidecar_free(pdk_sidecar *s) {
    if (!s) return;
    pdk_free(s->alloc, s->blocks, s->cap_blocks * sizeof *s->blocks);
    pdk_free(s->alloc, s, sizeof *s);
}

static pdckpt_status push_block(pdk_sidecar *s, const void *bytes, size_t len, pdckpt_error *err) {
    PDK_TRY(pdk_grow(s->alloc, (void **)&s->blocks, &s->cap_blocks, s->n_blocks + 1,
                     sizeof *s->blocks, err));
    XXH128_canonicalFromHash(&s->blocks[s->n_blocks++], XXH3_128bits(bytes, len));
    return PDCKPT_OK;
}

pdckpt_status pdk_sidecar_update(pdk_sidecar *s, const void *bytes, size_t len, pdckpt_error *err) {
    const uint8_t *p = bytes;
    s->size += len;
    while (len > 0) {
        if (s->fill == 0 && len >= BLOCK) { /* whole blocks straight from the caller's bytes */
            PDK_TRY(push_block(s, p, BLOCK, err));
            p += BLOCK;
            len -= BLOCK;
            continue;
        }
        size_t take = BLOCK - s->fill < len ? BLOCK - s->fill : len;
        memcpy(s->buf + s->fill, p, take);
        s->fill += take;
        p += take;
        len -= take;
        if (s->fill == BLOCK) {
            PDK_TRY(push_block(s, s->buf, BLOCK, err));
            s->fill = 0;
        }
    }
    return PDCKPT_OK;
}

static void hex(const XXH128_canonical_t *c, char out[33]) {
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", c->digest[i]);
}

static void whole_digest(const XXH128_canonical_t *blocks, size_t n, char out[33]) {
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits(blocks, n * sizeof *blocks));
    hex(&c, out);
}

void pdk_sidecar_path(const char *data_path, char *out, size_t cap) {
    snprintf(out, cap, "%s%s", data_path, PDCKPT_CHECKSUM_SUFFIX);
}

#define MAGIC "pdckpt-xxh3 "

/* What is at a sidecar's name: nothing (0), a sidecar of ours (1: a regular file starting with
 * our magic, opened without following links), or something else (-1: a link, a FIFO, a user's
 * file), which a save never replaces or deletes. */
static int sidecar_state(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISREG(st.st_mode)) return -1;
    char magic[sizeof MAGIC - 1];
    bool ours = pdk_read_head_nofollow(path, magic, sizeof magic) &&
                memcmp(magic, MAGIC, sizeof magic) == 0;
    return ours ? 1 : -1;
}

pdckpt_status pdk_sidecar_check_free(const char *data_path, pdckpt_error *err) {
    char path[PATH_MAX + 8];
    pdk_sidecar_path(data_path, path, sizeof path);
    if (sidecar_state(path) >= 0) return PDCKPT_OK;
    return pdk_fail(err, PDCKPT_ERR_ARGUMENT, data_path, -1,
                    "not replaced: '%s' is not a pdckpt checksum sidecar (a link, a special file "
                    "or a file without the \"" MAGIC "\" header); move it away or save without "
                    "a checksum",
                    path);
}

/* Writes the sidecar for the bytes seen so far, atomically, beside `data_path`. */
pdckpt_status pdk_sidecar_publish(pdk_sidecar *s, const char *data_path, bool durable,
                                  pdckpt_error *err) {
    if (s->fill) PDK_TRY(push_block(s, s->buf, s->fill, err));
    s->fill = 0;
    char path[PATH_MAX + 8], line[HEAD_MAX], digest[33];
    pdk_sidecar_path(data_path, path, sizeof path);
    pdk_sink *sink;
    PDK_TRY(pdk_sidecar_check_free(data_path, err)); /* whatever else is there stays */
    /* not followed: a link planted at the sidecar's name is refused, never written through */
    PDK_TRY(pdk_sink_open_sidecar(path, durable, s->alloc, &sink, err));
    whole_digest(s->blocks, s->n_blocks, digest);
    int n = snprintf(line, sizeof line, "pdckpt-xxh3 1\nsize %" PRIu64 " block %u file %s\n",
                     s->size, BLOCK, digest);
    pdckpt_status st = pdk_sink_write(sink, line, (size_t)n, err);
    for (size_t i = 0; i < s->n_blocks && st == PDCKPT_OK; i++) {
        hex(&s->blocks[i], digest);
        digest[32] = '\n';
        st = pdk_sink_write(sink, digest, 33, err);
    }
    if (st != PDCKPT_OK) {
        pdk_sink_abort(sink);
        return st;
    }
    return pdk_sink_commit(sink, err);
}

/* Removes a sidecar of ours that would describe the old file once the new one is renamed in;
 * anything else at that name is left alone (a killed writer's sidecar temporaries went with the
 * data file's own, in pdk_remove_stale_temps). */
pdckpt_status pdk_sidecar_remove_stale(const char *data_path, bool durable, pdckpt_error *err) {
    char path[PATH_MAX + 8];
    pdk_sidecar_path(data_path, path, sizeof path);
    if (sidecar_state(path) <= 0) return PDCKPT_OK;
    if (unlink(path) != 0) {
        if (errno == ENOENT) return PDCKPT_OK;
        return pdk_fail_sys(err, errno, path, "remove the old checksum sidecar");
    }
    return durable ? pdk_fsync_dir_of(path, false, err) : PDCKPT_OK;
}

/* "size " and 1-19 digits (sscanf alone takes "-1" and wraps numbers past 2^64). */
static bool size_field_ok(const char *line) {
    size_t digits = strncmp(line, "size ", 5) == 0 ? strspn(line + 5, "0123456789") : 0;
    return digits >= 1 && digits <= 19 && line[5 + digits] == ' ';
}

/* Parses the two header lines; *body is where the block lines start. */
static pdckpt_status parse_head(const pdk_input *side, uint64_t *size, char file_hex[33],
                                size_t *body, pdckpt_error *err) {
    char   head[HEAD_MAX + 1];
    size_t n = side->len < HEAD_MAX ? side->len : HEAD_MAX;
    memcpy(head, side->data, n);
    head[n] = '\0';
    char    *first = memchr(head, '\n', n), *second = first ? strchr(first + 1, '\n') : NULL;
    unsigned block = 0;
    int      used = 0;
    if (!second || strncmp(head, "pdckpt-xxh3 1\n", 14) != 0 || !size_field_ok(first + 1) ||
        sscanf(first + 1, "size %" SCNu64 " block %u file %32[0-9a-f]%n", size, &block, file_hex,
               &used) != 3 ||
        first + 1 + used != second || block != BLOCK)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, side->name, 0,
                        "expected a pdckpt-xxh3 version 1 header with 4096-byte blocks");
    *body = (size_t)(second + 1 - head);
    return PDCKPT_OK;
}

/* Compares every block; the first mismatch goes to *res. */
static pdckpt_status compare_blocks(const pdk_input *data, const pdk_input *side, size_t body,
                                    const char file_hex[33], pdk_sidecar_result *res,
                                    pdckpt_error *err) {
    uint64_t n_blocks = (data->len + BLOCK - 1) / BLOCK;
    if ((side->len - body) / 33 != n_blocks || (side->len - body) % 33 != 0)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, side->name, (int64_t)body,
                        "expected %" PRIu64 " block lines of 33 bytes, found %zu bytes", n_blocks,
                        side->len - body);
    XXH3_state_t whole_state, *whole = &whole_state;
    XXH3_INITSTATE(whole);
    XXH3_128bits_reset(whole);
    for (uint64_t i = 0; i < n_blocks; i++) {
        size_t off = (size_t)i * BLOCK, len = data->len - off < BLOCK ? data->len - off : BLOCK;
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, XXH3_128bits(data->data + off, len));
        char got[33];
        hex(&c, got);
        const char *want = (const char *)side->data + body + i * 33;
        if (!res->bad && (memcmp(got, want, 32) != 0 || want[32] != '\n')) {
            res->bad = true;
            res->offset = off;
            res->len = len;
            res->file_size = data->len;
            memcpy(res->got, got, 33);
            snprintf(res->want, sizeof res->want, "%.32s", want);
        }
        XXH3_128bits_update(whole, &c, sizeof c);
    }
    char               all[33];
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits_digest(whole));
    hex(&c, all);
    if (!res->bad && strcmp(all, file_hex) != 0)
        return pdk_fail(err, PDCKPT_ERR_CORRUPT, side->name, 0,
                        "the sidecar's own digest is %s, its header says %s", all, file_hex);
    return PDCKPT_OK;
}

/* A sidecar pdckpt wrote: a file (not a link) of the checkpoint's owner (or root) that others
 * may write only if they may write the checkpoint (pdk_sidecar_writers_covered; the group bits
 * are not judged: a sidecar keeps the umask's mode when the checkpoint's is tightened, and a
 * group member can only make verify fail, not pass); anything else could have been planted by
 * someone else to fail a good file, and is refused as such, not reported as corruption. */
static pdckpt_status sidecar_trusted(const char *side_path, const char *path, pdckpt_error *err) {
    struct stat side, file;
    if (lstat(side_path, &side) != 0 || stat(path, &file) != 0) return PDCKPT_OK; /* the open */
    if (!S_ISLNK(side.st_mode) &&
        (!S_ISREG(side.st_mode) || pdk_sidecar_writers_covered(&side, &file, false)))
        return PDCKPT_OK; /* (a FIFO or directory: the open refuses it) */
    return pdk_fail(err, PDCKPT_ERR_ARGUMENT, side_path, -1,
                    "not trusted as the checksum sidecar of '%s': %s; pdckpt writes it as a file "
                    "of the checkpoint's owner that no one else may write (remove it, or fix its "
                    "owner and mode)",
                    path,
                    S_ISLNK(side.st_mode) ? "it is a symbolic link"
                    : side.st_uid != file.st_uid && side.st_uid != 0
                        ? "it belongs to another user than the checkpoint"
                        : "others than the checkpoint's writers may write it");
}

/* A sidecar of a `data_len`-byte file holds the header and one 33-byte line per block: one that
 * is larger is refused before it is read (a planted sparse terabyte is never allocated). */
static pdckpt_status sidecar_fits(const char *side_path, size_t data_len, pdckpt_error *err) {
    struct stat st;
    uint64_t    most = HEAD_MAX + 33 * ((uint64_t)data_len / BLOCK + 1);
    if (stat(side_path, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size <= most)
        return PDCKPT_OK; /* the open says what else is wrong */
    return pdk_fail(err, PDCKPT_ERR_FORMAT, side_path, (int64_t)most,
                    "expected a checksum sidecar of at most %" PRIu64
                    " bytes (a header and a line per 4096-byte block of the %zu-byte file), "
                    "found %" PRIu64 " bytes",
                    most, data_len, (uint64_t)st.st_size);
}

pdckpt_status pdk_sidecar_check(const char *path, const pdckpt_allocator *a,
                                pdk_sidecar_result *res, pdckpt_error *err) {
    memset(res, 0, sizeof *res);
    char        side_path[PATH_MAX + 8], target[PATH_MAX];
    struct stat st_target;
    bool        exists = false;
    /* A save through a symbolic link puts the sidecar beside the file the link names. */
    if (pdk_resolve_save_target(path, target, sizeof target, &st_target, &exists, err) !=
        PDCKPT_OK) {
        pdk_error_reset(err);
        snprintf(target, sizeof target, "%s", path);
    }
    pdk_sidecar_path(target, side_path, sizeof side_path);
    if (access(side_path, F_OK) != 0 || pdk_is_directory(path)) return PDCKPT_OK;
    res->checked = true;
    pdk_input data, side;
    PDK_TRY(sidecar_trusted(side_path, path, err));
    PDK_TRY(pdk_input_open_file(path, false, a, &data, err));
    pdckpt_status st = sidecar_fits(side_path, data.len, err);
    if (st == PDCKPT_OK) st = pdk_input_open_file(side_path, false, a, &side, err);
    if (st != PDCKPT_OK) {
        pdk_input_close(&data);
        return st;
    }
    uint64_t size = 0;
    char     file_hex[33];
    size_t   body = 0;
    st = parse_head(&side, &size, file_hex, &body, err);
    if (st == PDCKPT_OK && size != data.len)
        st = pdk_fail(err, PDCKPT_ERR_CORRUPT, path, (int64_t)(size < data.len ? size : data.len),
                      "expected %" PRIu64 " bytes (%s), found %zu", size, side_path, data.len);
    if (st == PDCKPT_OK) st = compare_blocks(&data, &side, body, file_hex, res, err);
    pdk_input_close(&data);
    pdk_input_close(&side);
    return st;
}
