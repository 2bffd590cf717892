/* SPDX-License-Identifier: Apache-2.0 */
/*
 * restore_check.c — pdckpt_check_restore: what Paddle's set_state_dict would silently get
 * wrong (spec pickle §2.1: accumulators are "<param.name>_<kind>_<n>" with unique_name counters,
 * Paddle issue #32926).  Both trees are flattened to named entries, matched by name, and compared
 * by dtype and shape; a missing entry and an unexpected one whose names differ only in their
 * digits are paired as each other's likely counterpart.
 */
#include "pdk_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    char               *name;
    char               *norm; /* the name with each run of digits replaced by one '#' */
    const pdckpt_value *value;
    size_t              partner; /* same position among the other side's equal-norm names */
    bool                matched;
} entry;

typedef struct entry_list {
    entry *items;
    size_t len, cap;
} entry_list;

static void entries_free(entry_list *l) {
    for (size_t i = 0; i < l->len; i++) {
        free(l->items[i].name);
        free(l->items[i].norm);
    }
    free(l->items);
}

static char *digits_to_hash(const char *s) {
    size_t n = strlen(s), o = 0;
    char  *out = malloc(n + 1);
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) {
        bool digit = s[i] >= '0' && s[i] <= '9';
        bool after_digit = i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9';
        if (!digit)
            out[o++] = s[i];
        else if (!after_digit)
            out[o++] = '#'; /* one '#' per run of digits */
    }
    out[o] = '\0';
    return out;
}

static pdckpt_status add(entry_list *l, const char *name, const pdckpt_value *v,
                         pdckpt_error *err) {
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        entry *grown = realloc(l->items, cap * sizeof *grown);
        if (!grown) return pdk_fail_nomem(err, "restore check");
        l->items = grown;
        l->cap = cap;
    }
    entry *e = &l->items[l->len];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    e->norm = digits_to_hash(name);
    e->value = v;
    e->partner = SIZE_MAX;
    if (!e->name || !e->norm) {
        free(e->name);
        free(e->norm);
        return pdk_fail_nomem(err, "restore check");
    }
    l->len++;
    return PDCKPT_OK;
}

/* Every leaf of `root` named by its keys joined with '/' (the one flattener: Paddle's (name,
 * tensor) tuples stand for their tensor, the name table is skipped). */
static pdckpt_status entries_of(const pdckpt_value *root, entry_list *out, pdckpt_error *err) {
    pdckpt_flat   flat;
    pdckpt_status st =
        pdckpt_value_flatten(root, PDCKPT_FLATTEN_ALL_LEAVES | PDCKPT_FLATTEN_SLASH, &flat, err);
    for (size_t i = 0; st == PDCKPT_OK && i < flat.len; i++)
        st = add(out, flat.entries[i].name, flat.entries[i].tensor, err);
    pdckpt_flat_free(&flat);
    return st;
}

/* Index arrays sorted (stably) by name or by norm: a merge sort, so the comparison context
 * needs no global (qsort has no context argument). */
static bool before(const entry *items, bool by_norm, size_t x, size_t y) {
    return strcmp(by_norm ? items[x].norm : items[x].name,
                  by_norm ? items[y].norm : items[y].name) <= 0;
}

static void merge_sort(const entry *items, bool by_norm, size_t *idx, size_t *tmp, size_t n) {
    if (n < 2) return;
    size_t h = n / 2;
    merge_sort(items, by_norm, idx, tmp, h);
    merge_sort(items, by_norm, idx + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = before(items, by_norm, idx[i], idx[j]) ? idx[i++] : idx[j++];
    while (i < h) tmp[k++] = idx[i++];
    while (j < n) tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
}

static size_t *sorted_index(const entry_list *l, bool by_norm, pdckpt_error *err) {
    size_t *idx = malloc((l->len + 1) * sizeof *idx), *tmp = malloc((l->len + 1) * sizeof *tmp);
    if (!idx || !tmp) {
        free(idx);
        free(tmp);
        pdk_fail_nomem(err, "restore check");
        return NULL;
    }
    for (size_t i = 0; i < l->len; i++) idx[i] = i;
    merge_sort(l->items, by_norm, idx, tmp, l->len);
    free(tmp);
    return idx;
}

/* Pairs the k-th expected entry with the k-th loaded one among names equal but for their digits:
 * the same model built twice lists its state in the same order, whatever the counters say. */
static pdckpt_status pair_by_position(entry_list *want, entry_list *got, pdckpt_error *err) {
    size_t *a = sorted_index(want, true, err), *b = a ? sorted_index(got, true, err) : NULL;
    if (!b) return free(a), PDCKPT_ERR_NOMEM;
    for (size_t i = 0, j = 0; i < want->len && j < got->len;) {
        int c = strcmp(want->items[a[i]].norm, got->items[b[j]].norm);
        if (c == 0) {
            want->items[a[i]].partner = b[j];
            got->items[b[j]].partner = a[i];
            i++, j++;
        } else if (c < 0)
            i++;
        else
            j++;
    }
    free(a);
    free(b);
    return PDCKPT_OK;
}

/* The first unmatched entry of got named `name`, or SIZE_MAX.  Only this hands out matches, in
 * by_name order, so the matched ones of a name are the first taken[run start] of its run: a scan
 * past them made a 3 KB pickle whose 65,536 nested keys all join to one name take 15 s to check
 * against itself (docs/RELIABILITY.md, "Complexity attacks"). */
static size_t find(const entry_list *got, const size_t *by_name, size_t *taken, const char *name) {
    size_t lo = 0, hi = got->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(got->items[by_name[mid]].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t at = lo + taken[lo];
    if (at >= got->len || strcmp(got->items[by_name[at]].name, name) != 0) return SIZE_MAX;
    taken[lo]++;
    return by_name[at]; /* repeated names in order */
}

/* Paddle pickles bfloat16 as uint16 and float8 as int8: those pairs are the same tensor. */
static pdckpt_dtype pickled_dtype(pdckpt_dtype d) {
    if (d == PDCKPT_DTYPE_BFLOAT16) return PDCKPT_DTYPE_UINT16;
    if (d == PDCKPT_DTYPE_FLOAT8_E4M3FN || d == PDCKPT_DTYPE_FLOAT8_E5M2) return PDCKPT_DTYPE_INT8;
    return d;
}

static pdckpt_restore_issue_kind compare(const pdckpt_value *want, const pdckpt_value *got) {
    pdckpt_tensor_view a, b;
    bool               ta = pdckpt_tensor_get_memory(want, &a, NULL),
         tb = pdckpt_tensor_get_memory(got, &b, NULL);
    if (ta != tb) return PDCKPT_RESTORE_KIND;
    if (!ta) return 0;
    if (a.dtype != b.dtype && pickled_dtype(a.dtype) != pickled_dtype(b.dtype))
        return PDCKPT_RESTORE_DTYPE;
    if (a.n_dims != b.n_dims ||
        (a.n_dims && memcmp(a.dims, b.dims, (size_t)a.n_dims * sizeof *a.dims) != 0))
        return PDCKPT_RESTORE_SHAPE;
    return 0;
}

static pdckpt_status add_issue(pdckpt_restore_report *r, pdckpt_restore_issue_kind kind,
                               const entry *e, const entry_list *other, const pdckpt_value *want,
                               const pdckpt_value *got, pdckpt_error *err) {
    pdckpt_restore_issue *grown = realloc(r->issues, (r->n_issues + 1) * sizeof *grown);
    if (!grown) return pdk_fail_nomem(err, "restore report");
    r->issues = grown;
    pdckpt_restore_issue *is = &r->issues[r->n_issues];
    *is = (pdckpt_restore_issue){kind, strdup(e->name), want, got, NULL};
    const char *partner = e->partner != SIZE_MAX ? other->items[e->partner].name : NULL;
    if (partner && strcmp(partner, e->name) != 0) is->counterpart = strdup(partner);
    r->n_issues++;
    if (!is->name || (partner && strcmp(partner, e->name) != 0 && !is->counterpart))
        return pdk_fail_nomem(err, "restore report");
    if (kind == PDCKPT_RESTORE_MISSING)
        r->n_missing++;
    else if (kind == PDCKPT_RESTORE_UNEXPECTED)
        r->n_unexpected++;
    else
        r->n_mismatched++;
    return PDCKPT_OK;
}

static pdckpt_status match(entry_list *want, entry_list *got, pdckpt_restore_report *r,
                           pdckpt_error *err) {
    PDK_TRY(pair_by_position(want, got, err));
    size_t *by_name = sorted_index(got, false, err);
    size_t *taken = by_name ? calloc(got->len + 1, sizeof *taken) : NULL;
    if (!taken) {
        free(by_name);
        return pdk_fail_nomem(err, "restore check");
    }
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 0; i < want->len && st == PDCKPT_OK; i++) {
        entry *e = &want->items[i];
        size_t g = find(got, by_name, taken, e->name);
        if (g == SIZE_MAX) {
            st = add_issue(r, PDCKPT_RESTORE_MISSING, e, got, e->value, NULL, err);
            continue;
        }
        got->items[g].matched = true;
        pdckpt_restore_issue_kind kind = compare(e->value, got->items[g].value);
        if (kind)
            st = add_issue(r, kind, e, got, e->value, got->items[g].value, err);
        else
            r->n_matched++;
    }
    free(by_name);
    free(taken);
    for (size_t i = 0; i < got->len && st == PDCKPT_OK; i++)
        if (!got->items[i].matched)
            st = add_issue(r, PDCKPT_RESTORE_UNEXPECTED, &got->items[i], want, NULL,
                           got->items[i].value, err);
    return st;
}

pdckpt_status pdckpt_check_restore(const pdckpt_value *expected, const pdckpt_value *loaded,
                                   pdckpt_restore_report *report, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!report) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "report is NULL");
    memset(report, 0, sizeof *report);
    if (!expected || !loaded)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "expected and loaded must not be NULL");
    entry_list    want = {0}, got = {0};
    pdckpt_status st = entries_of(expected, &want, err);
    if (st == PDCKPT_OK) st = entries_of(loaded, &got, err);
    report->n_expected = want.len;
    report->n_loaded = got.len;
    if (st == PDCKPT_OK) st = match(&want, &got, report, err);
    entries_free(&want);
    entries_free(&got);
    if (st != PDCKPT_OK) pdckpt_restore_report_free(report);
    return st;
}

void pdckpt_restore_report_free(pdckpt_restore_report *report) {
    if (!report) return;
    for (size_t i = 0; i < report->n_issues; i++) {
        free(report->issues[i].name);
        free(report->issues[i].counterpart);
    }
    free(report->issues);
    memset(report, 0, sizeof *report);
}

const char *pdckpt_restore_issue_kind_name(pdckpt_restore_issue_kind kind) {
    switch (kind) {
    case PDCKPT_RESTORE_MISSING: return "missing";
    case PDCKPT_RESTORE_UNEXPECTED: return "unexpected";
    case PDCKPT_RESTORE_DTYPE: return "dtype";
    case PDCKPT_RESTORE_SHAPE: return "shape";
    case PDCKPT_RESTORE_KIND: return "kind";
    }
    return "unknown";
}
