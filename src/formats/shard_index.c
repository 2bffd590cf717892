/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shard_index.c — reads and writes the index of a Hugging Face sharded checkpoint.  Reading is
 * strict where safety needs it (shard names that could leave the directory or name another kind
 * of file, duplicate tensor names) and lenient elsewhere: unknown keys and "metadata" are skipped,
 * as huggingface_hub and transformers skip them.  Writing reproduces huggingface_hub's
 * json.dump(index, f, indent=2) exactly (ASCII only, \uXXXX escapes, no final newline).
 */
#include "pdk_sharded.h"

#include "json_lite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pdk_index_free(pdk_index *index) {
    for (size_t i = 0; i < index->len; i++) {
        pdk_free(NULL, index->entries[i].name, index->entries[i].name_len + 1);
        pdk_free(NULL, index->entries[i].file, index->entries[i].file_len + 1);
    }
    free(index->entries);
    free(index->by_name);
    free(index->shards);
    memset(index, 0, sizeof *index);
}

/* A shard name may not leave the directory (absolute, "..", Windows separators and drives are
 * all refused, as huggingface_hub refuses them) and must end with the kind's extension, so a
 * safetensors index can never make pdckpt open a pickle. */
static const char *bad_shard_name(const char *file, size_t len, const char *ext) {
    size_t ext_len = strlen(ext);
    if (len == 0) return "an empty file name";
    if (memchr(file, '\0', len)) return "a NUL byte";
    if (file[0] == '/') return "an absolute path";
    if (memchr(file, '\\', len)) return "a backslash";
    if (len >= 2 && file[1] == ':') return "a drive letter";
    for (size_t i = 0; i < len;) {
        size_t n = strcspn(file + i, "/");
        if (n == 0 || (n == 1 && file[i] == '.') ||
            (n == 2 && file[i] == '.' && file[i + 1] == '.'))
            return "an empty, '.' or '..' path component";
        i += n + 1;
    }
    if (len <= ext_len || memcmp(file + len - ext_len, ext, ext_len) != 0)
        return "a name that does not end with the index's shard extension";
    return NULL;
}

static pdckpt_status parse_weight(pdk_cursor *cur, pdk_index *ix, const char *ext) {
    pdk_json_ws(cur);
    size_t at = cur->pos;
    PDK_TRY(pdk_grow(NULL, (void **)&ix->entries, &ix->cap, ix->len + 1, sizeof *ix->entries,
                     cur->err));
    pdk_index_entry *e = &ix->entries[ix->len];
    memset(e, 0, sizeof *e);
    e->pos = at;
    PDK_TRY(pdk_json_string(cur, NULL, &e->name, &e->name_len));
    pdckpt_status st = pdk_json_expect(cur, ':', "after a tensor name in weight_map");
    size_t        file_at = (pdk_json_ws(cur), cur->pos);
    if (st == PDCKPT_OK) st = pdk_json_string(cur, NULL, &e->file, &e->file_len);
    ix->len++; /* owned from here on, freed with the index */
    if (st != PDCKPT_OK) return st;
    const char *why = bad_shard_name(e->file, e->file_len, ext);
    if (why)
        return pdk_cur_fail_at(cur, file_at, PDCKPT_ERR_FORMAT,
                               "tensor '%s': expected a shard file inside the index's directory "
                               "ending with '%s', found \"%s\" (%s)",
                               e->name, ext, e->file, why);
    return PDCKPT_OK;
}

static pdckpt_status parse_weight_map(pdk_cursor *cur, pdk_index *ix, const char *ext) {
    PDK_TRY(pdk_json_expect(cur, '{', "to start weight_map"));
    if (pdk_json_accept(cur, '}')) return PDCKPT_OK;
    do PDK_TRY(parse_weight(cur, ix, ext));
    while (pdk_json_accept(cur, ','));
    return pdk_json_expect(cur, '}', "to close weight_map");
}

static pdckpt_status parse_top(pdk_cursor *cur, pdk_index *ix, const char *ext) {
    bool seen_map = false;
    PDK_TRY(pdk_json_expect(cur, '{', "to start the index"));
    if (!pdk_json_accept(cur, '}')) {
        do {
            char  *key;
            size_t key_len, at = (pdk_json_ws(cur), cur->pos);
            PDK_TRY(pdk_json_string(cur, NULL, &key, &key_len));
            bool          is_map = strcmp(key, "weight_map") == 0;
            pdckpt_status st = pdk_json_expect(cur, ':', "after a key of the index");
            pdk_free(NULL, key, key_len + 1);
            PDK_TRY(st);
            if (is_map && seen_map)
                return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT, "duplicate \"weight_map\"");
            if (is_map) seen_map = true;
            PDK_TRY(is_map ? parse_weight_map(cur, ix, ext) : pdk_json_skip(cur, 32));
        } while (pdk_json_accept(cur, ','));
        PDK_TRY(pdk_json_expect(cur, '}', "to close the index"));
    }
    pdk_json_ws(cur);
    if (pdk_cur_left(cur)) return pdk_cur_fail(cur, "unexpected bytes after the index object");
    if (!seen_map)
        return pdk_cur_fail_at(cur, 0, PDCKPT_ERR_FORMAT,
                               "expected a \"weight_map\" object (tensor name -> shard file)");
    return PDCKPT_OK;
}

static int cmp_name(const void *a, const void *b) {
    const pdk_index_entry *x = *(pdk_index_entry *const *)a, *y = *(pdk_index_entry *const *)b;
    size_t                 n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int                    c = memcmp(x->name, y->name, n);
    if (c) return c;
    if (x->name_len != y->name_len) return x->name_len < y->name_len ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int cmp_file(const void *a, const void *b) {
    const pdk_index_entry *x = *(pdk_index_entry *const *)a, *y = *(pdk_index_entry *const *)b;
    int                    c = strcmp(x->file, y->file);
    return c ? c : (x->pos < y->pos ? -1 : x->pos > y->pos);
}

static int cmp_first_use(const void *a, const void *b) {
    const pdk_index_entry *x = *(pdk_index_entry *const *)a, *y = *(pdk_index_entry *const *)b;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Shards are numbered in order of first appearance; equal names share one number. */
static pdckpt_status number_shards(pdk_index *ix, pdckpt_error *err) {
    pdk_index_entry **by_file = malloc((ix->len ? ix->len : 1) * sizeof *by_file);
    pdk_index_entry **firsts = malloc((ix->len ? ix->len : 1) * sizeof *firsts);
    ix->shards = malloc((ix->len ? ix->len : 1) * sizeof *ix->shards);
    if (!by_file || !firsts || !ix->shards) {
        free(by_file);
        free(firsts);
        return pdk_fail_nomem(err, "index shards");
    }
    for (size_t i = 0; i < ix->len; i++) by_file[i] = &ix->entries[i];
    qsort(by_file, ix->len, sizeof *by_file, cmp_file);
    size_t n = 0;
    for (size_t i = 0; i < ix->len; i++)
        if (i == 0 || strcmp(by_file[i]->file, by_file[i - 1]->file) != 0) firsts[n++] = by_file[i];
    qsort(firsts, n, sizeof *firsts, cmp_first_use);
    for (size_t s = 0; s < n; s++) {
        ix->shards[s] = firsts[s]->file;
        firsts[s]->shard = (uint32_t)s;
    }
    ix->n_shards = n;
    for (size_t i = 1; i < ix->len; i++) /* the rest of each group takes its first's number */
        if (strcmp(by_file[i]->file, by_file[i - 1]->file) == 0)
            by_file[i]->shard = by_file[i - 1]->shard;
    free(by_file);
    free(firsts);
    return PDCKPT_OK;
}

static pdckpt_status index_by_name(pdk_cursor *cur, pdk_index *ix) {
    ix->by_name = malloc((ix->len ? ix->len : 1) * sizeof *ix->by_name);
    if (!ix->by_name) return pdk_fail_nomem(cur->err, "index names");
    for (size_t i = 0; i < ix->len; i++) ix->by_name[i] = &ix->entries[i];
    qsort(ix->by_name, ix->len, sizeof *ix->by_name, cmp_name);
    for (size_t i = 1; i < ix->len; i++) {
        const pdk_index_entry *a = ix->by_name[i - 1], *b = ix->by_name[i];
        if (a->name_len == b->name_len && memcmp(a->name, b->name, a->name_len) == 0)
            return pdk_cur_fail_at(cur, b->pos, PDCKPT_ERR_FORMAT,
                                   "duplicate tensor name '%s' in weight_map (first at offset %zu)",
                                   b->name, a->pos);
    }
    return PDCKPT_OK;
}

pdckpt_status pdk_index_parse(const pdk_input *in, const char *ext, pdk_index *out,
                              pdckpt_error *err) {
    memset(out, 0, sizeof *out);
    if (in->len > PDK_INDEX_MAX_BYTES)
        return pdk_fail(err, PDCKPT_ERR_LIMIT, in->name, 0,
                        "expected an index of at most %u bytes, found %zu", PDK_INDEX_MAX_BYTES,
                        in->len);
    pdk_cursor cur;
    pdk_cur_init(&cur, in->data, in->len, in->name, err);
    pdckpt_status st = parse_top(&cur, out, ext);
    if (st == PDCKPT_OK) st = index_by_name(&cur, out);
    if (st == PDCKPT_OK) st = number_shards(out, err);
    if (st != PDCKPT_OK) pdk_index_free(out);
    return st;
}

const pdk_index_entry *pdk_index_find(const pdk_index *index, const char *name, size_t len) {
    size_t lo = 0, hi = index->len;
    while (lo < hi) {
        size_t                 mid = lo + (hi - lo) / 2;
        const pdk_index_entry *e = index->by_name[mid];
        size_t                 n = e->name_len < len ? e->name_len : len;
        int                    c = memcmp(e->name, name, n);
        if (c == 0) c = e->name_len < len ? -1 : e->name_len > len;
        if (c == 0) return e;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---- writing ---- */

pdckpt_status pdk_index_write(pdk_sink *sink, uint64_t total_size, const char *const *names,
                              const char *const *files, size_t n, pdckpt_error *err) {
    char head[128];
    int  len = snprintf(head, sizeof head,
                        "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n  \"weight_map\": %s",
                        (unsigned long long)total_size, n ? "{" : "{}");
    PDK_TRY(pdk_sink_write(sink, head, (size_t)len, err));
    for (size_t i = 0; i < n; i++) {
        PDK_TRY(pdk_sink_write(sink, i ? ",\n    " : "\n    ", i ? 6 : 5, err));
        PDK_TRY(pdk_json_write_ascii(sink, names[i], strlen(names[i]), err));
        PDK_TRY(pdk_sink_write(sink, ": ", 2, err));
        PDK_TRY(pdk_json_write_ascii(sink, files[i], strlen(files[i]), err));
    }
    return pdk_sink_write(sink, n ? "\n  }\n}" : "\n}", n ? 6 : 2, err);
}
