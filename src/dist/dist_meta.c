/*
 * dist_meta.c — the sharded checkpoint's metadata (spec §5.1-5.2): built as a value tree with the
 * fields of Paddle's Metadata dataclass (state_dict_metadata, storage_metadata, flat_mapping),
 * read back into an index of every key's pieces and the file holding each, and stored on disk.
 *
 * PROVISIONAL (phase 1): the file is "<id>.metadata.pdkv", the tree in this library's codec with
 * a magic, a version and a checksum.  Phase 2 stores the same tree as Paddle's pickled
 * dataclasses in "<id>.metadata" (LocalTensorMetadata = the dicts below as __dict__,
 * LocalTensorIndex = the tuples below as fields in declaration order); only pdk_meta_encode,
 * pdk_meta_decode, pdk_meta_path and the scan change.
 */
#include "dist_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define META_MAGIC   UINT32_C(0x4d4b4450) /* "PDKM" */
#define META_VERSION 1u
#define META_LIMIT   ((size_t)1 << 31)

/* ---- the file (PROVISIONAL) ---- */

pdckpt_status pdk_meta_path(const char *dir, int64_t id, char *out, size_t cap, pdckpt_error *err) {
    char name[64];
    snprintf(name, sizeof name, "%lld" PDK_META_SUFFIX, (long long)id);
    return pdk_path_join(dir, name, out, cap, err);
}

pdckpt_status pdk_meta_encode(const pdckpt_value *meta, pdk_blob *out, pdckpt_error *err) {
    pdk_blob      body = {0};
    pdckpt_status st = pdk_codec_encode(meta, &body, NULL, err);
    pdk_blob_u32(out, META_MAGIC);
    pdk_blob_u32(out, META_VERSION);
    pdk_blob_u64(out, body.len);
    pdk_blob_put(out, body.data, body.len);
    pdk_blob_u64(out, pdk_hash_bytes(0, body.data, body.len));
    pdk_blob_free(&body);
    return st != PDCKPT_OK ? st : pdk_blob_check(out, err, "metadata");
}

pdckpt_status pdk_meta_decode(const uint8_t *data, size_t len, const char *source,
                              pdckpt_value **meta, pdckpt_error *err) {
    pdk_rd   r = {data, len, 0, source, err};
    uint32_t magic, version;
    uint64_t body_len, sum;
    PDK_DTRY(pdk_rd_u32(&r, &magic, "magic"));
    if (magic != META_MAGIC) return pdk_rd_fail(&r, "expected the PDKM metadata magic");
    PDK_DTRY(pdk_rd_u32(&r, &version, "version"));
    if (version != META_VERSION)
        return pdk_dist_fail(err, PDCKPT_ERR_UNSUPPORTED, source,
                             "expected metadata version %u, found %u", META_VERSION, version);
    PDK_DTRY(pdk_rd_count(&r, &body_len, 1, "metadata body"));
    if (r.len - r.pos - body_len != 8)
        return pdk_rd_fail(&r, "expected the body then an 8-byte checksum to end the file");
    pdk_rd body = {data + r.pos, (size_t)body_len, 0, source, err};
    r.pos += (size_t)body_len;
    PDK_DTRY(pdk_rd_u64(&r, &sum, "checksum"));
    if (sum != pdk_hash_bytes(0, body.p, body.len))
        return pdk_dist_fail(err, PDCKPT_ERR_CORRUPT, source, "metadata checksum does not match");
    PDK_DTRY(pdk_codec_decode(&body, NULL, NULL, NULL, meta));
    if (body.pos == body.len) return PDCKPT_OK;
    pdckpt_value_free(*meta);
    *meta = NULL;
    return pdk_rd_fail(&body, "unexpected bytes after the metadata tree");
}

static bool parse_uint(const char *s, size_t len, int64_t *out) {
    if (len == 0 || len > 18) return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static const struct {
    const char   *ext;
    pdckpt_format format;
} data_exts[] = {{".safetensors", PDCKPT_FORMAT_SAFETENSORS},
                 {".distcp", PDCKPT_FORMAT_AUTO},
                 {".pdiparams", PDCKPT_FORMAT_COMBINED},
                 {".vars", PDCKPT_FORMAT_VARS_DIR}};

const char *pdk_data_file_ext(pdckpt_format format) {
    for (size_t i = 0; i < sizeof data_exts / sizeof data_exts[0]; i++)
        if (data_exts[i].format == format) return data_exts[i].ext;
    return format == PDCKPT_FORMAT_PICKLE ? ".distcp" : NULL;
}

pdckpt_format pdk_data_file_format(const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof data_exts / sizeof data_exts[0]; i++) {
        size_t k = strlen(data_exts[i].ext);
        if (n > k && strcmp(name + n - k, data_exts[i].ext) == 0) return data_exts[i].format;
    }
    return PDCKPT_FORMAT_AUTO;
}

/* The id in "<rank>_<id><data ext>", "<id>.metadata.pdkv" or Paddle's "<id>.metadata". */
static void scan_name(const char *name, int64_t *newest, int64_t *largest) {
    size_t      n = strlen(name);
    const char *dot = strchr(name, '.');
    const char *us = strchr(name, '_');
    int64_t     id, rank;
    if (!dot) return;
    if (strcmp(dot, PDK_META_SUFFIX) == 0 || strcmp(dot, ".metadata") == 0) {
        if (!parse_uint(name, (size_t)(dot - name), &id)) return;
        if (strcmp(dot, PDK_META_SUFFIX) == 0 && id > *newest) *newest = id;
    } else if (us && us < dot && parse_uint(name, (size_t)(us - name), &rank) &&
               parse_uint(us + 1, (size_t)(dot - us - 1), &id)) {
        bool data = false;
        for (size_t i = 0; i < sizeof data_exts / sizeof data_exts[0]; i++)
            data |= strcmp(dot, data_exts[i].ext) == 0;
        if (!data) return;
    } else {
        return;
    }
    (void)n;
    if (id > *largest) *largest = id;
}

pdckpt_status pdk_meta_scan(const char *dir, int64_t *newest_complete, int64_t *largest_seen,
                            pdckpt_error *err) {
    *newest_complete = *largest_seen = -1;
    DIR *d = opendir(dir);
    if (!d) return pdk_dist_fail_sys(err, errno, dir, "open directory");
    struct dirent *de;
    while ((de = readdir(d)) != NULL) scan_name(de->d_name, newest_complete, largest_seen);
    closedir(d);
    return PDCKPT_OK;
}
