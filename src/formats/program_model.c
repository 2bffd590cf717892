/* SPDX-License-Identifier: Apache-2.0 */
/*
 * program_model.c — the program model both program readers fill (pdk_program.h), and Paddle's
 * persistable selection rule (spec binary-and-static-formats.md §3.2, §4.1): every block's
 * variables that are persistable and not FEED_MINIBATCH / FETCH_LIST / READER / RAW, de-duplicated
 * by name (the last declaration wins, as in Paddle's name-keyed dict), sorted byte-wise like
 * Python's sorted() on str.  That list names a combined file's tensors and chooses what a static
 * save writes.  Also the declaration check (dtype, dims, -1 = any) and the program's value tree.
 */
#include "pdk_program.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

pdckpt_status pdk_program_new(const pdckpt_allocator *a, pdckpt_format format, pdckpt_program **out,
                              pdckpt_error *err) {
    pdckpt_program *p = pdk_calloc(a, 1, sizeof *p);
    if (!p) return pdk_fail_nomem(err, "program");
    p->alloc = a;
    p->format = format;
    p->version = -1;
    *out = p;
    return PDCKPT_OK;
}

static void targets_free(const pdckpt_allocator *a, pdk_target_list *t) {
    for (size_t i = 0; i < t->len; i++) pdk_strfree(a, t->items[i].name);
    pdk_free(a, t->items, t->cap * sizeof *t->items);
    pdk_free(a, t->names, t->len * sizeof *t->names);
}

void pdk_program_free(pdckpt_program *p) {
    if (!p) return;
    const pdckpt_allocator *a = p->alloc;
    for (size_t i = 0; i < p->n_vars; i++) {
        pdk_strfree(a, p->vars[i].name);
        pdk_free(a, p->vars[i].dims, (size_t)p->vars[i].n_dims * sizeof(int64_t));
    }
    pdk_free(a, p->vars, p->cap_vars * sizeof *p->vars);
    targets_free(a, &p->feeds);
    targets_free(a, &p->fetches);
    pdk_free(a, p->persistables, p->cap_persistables * sizeof *p->persistables);
    pdk_free(a, p->persistable_var, p->cap_persistables * sizeof *p->persistable_var);
    pdk_free(a, p, sizeof *p);
}

pdckpt_status pdk_program_add_var(pdckpt_program *p, const char *name, size_t name_len,
                                  int32_t n_dims, const int64_t *dims, pdk_prog_var **out,
                                  pdckpt_error *err) {
    PDK_TRY(
        pdk_grow(p->alloc, (void **)&p->vars, &p->cap_vars, p->n_vars + 1, sizeof *p->vars, err));
    pdk_prog_var *v = &p->vars[p->n_vars];
    memset(v, 0, sizeof *v);
    v->data_type = -1;
    v->name = pdk_strndup(p->alloc, name, name_len);
    if (!v->name) return pdk_fail_nomem(err, "variable name");
    if (n_dims > 0) {
        v->dims = pdk_alloc(p->alloc, (size_t)n_dims * sizeof *v->dims);
        if (!v->dims) {
            pdk_strfree(p->alloc, v->name);
            return pdk_fail_nomem(err, "variable dims");
        }
        memcpy(v->dims, dims, (size_t)n_dims * sizeof *v->dims);
        v->n_dims = n_dims;
    }
    p->n_vars++;
    if (out) *out = v;
    return PDCKPT_OK;
}

pdckpt_status pdk_program_add_target(pdckpt_program *p, bool fetch, const char *name,
                                     size_t name_len, int64_t col, pdckpt_error *err) {
    pdk_target_list *t = fetch ? &p->fetches : &p->feeds;
    PDK_TRY(pdk_grow(p->alloc, (void **)&t->items, &t->cap, t->len + 1, sizeof *t->items, err));
    t->items[t->len].name = pdk_strndup(p->alloc, name, name_len);
    if (!t->items[t->len].name) return pdk_fail_nomem(err, "target name");
    t->items[t->len].col = col;
    t->len++;
    return PDCKPT_OK;
}

/* ---- finishing: target order and the persistable rule ---- */

static bool is_selected(const pdk_prog_var *v) {
    return v->persistable && v->type != PDK_VT_FEED_MINIBATCH && v->type != PDK_VT_FETCH_LIST &&
           v->type != PDK_VT_READER && v->type != PDK_VT_RAW;
}

static int cmp_target(const void *a, const void *b) {
    const pdk_prog_target *x = a, *y = b;
    /* Targets without a column keep program order after the numbered ones. */
    int64_t cx = x->col < 0 ? INT64_MAX : x->col, cy = y->col < 0 ? INT64_MAX : y->col;
    if (cx != cy) return cx < cy ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static pdckpt_status finish_targets(const pdckpt_allocator *a, pdk_target_list *t,
                                    pdckpt_error *err) {
    if (t->len == 0) return PDCKPT_OK;
    for (size_t i = 0; i < t->len; i++) t->items[i].order = i;
    qsort(t->items, t->len, sizeof *t->items, cmp_target);
    t->names = pdk_alloc(a, t->len * sizeof *t->names);
    if (!t->names) return pdk_fail_nomem(err, "target names");
    for (size_t i = 0; i < t->len; i++) t->names[i] = t->items[i].name;
    return PDCKPT_OK;
}

typedef struct named_index {
    const char *name;
    size_t      index;
} named_index;

static int cmp_named_index(const void *a, const void *b) {
    const named_index *x = a, *y = b;
    int c = strcmp(x->name, y->name); /* byte-wise: Python's sorted() order for UTF-8 names */
    return c ? c : (x->index < y->index ? -1 : x->index > y->index);
}

/* Fills persistables/persistable_var from `sorted` (n entries, equal names adjacent in
 * declaration order): one entry per name, pointing at its last declaration. */
static pdckpt_status keep_unique(pdckpt_program *p, const named_index *sorted, size_t n,
                                 pdckpt_error *err) {
    p->persistables = pdk_alloc(p->alloc, n * sizeof *p->persistables);
    p->persistable_var = pdk_alloc(p->alloc, n * sizeof *p->persistable_var);
    p->cap_persistables = n;
    if (!p->persistables || !p->persistable_var) return pdk_fail_nomem(err, "persistable list");
    size_t kept = 0;
    for (size_t k = 0; k < n; k++) {
        bool same = kept && strcmp(p->persistables[kept - 1], sorted[k].name) == 0;
        if (!same) kept++;
        p->persistables[kept - 1] = sorted[k].name;
        p->persistable_var[kept - 1] = sorted[k].index;
        p->vars[sorted[k].index].saved = true;
    }
    p->n_persistables = kept;
    return PDCKPT_OK;
}

static pdckpt_status select_persistables(pdckpt_program *p, pdckpt_error *err) {
    size_t n = 0;
    for (size_t i = 0; i < p->n_vars; i++) n += is_selected(&p->vars[i]);
    if (n == 0) return PDCKPT_OK;
    named_index *sorted = pdk_alloc(p->alloc, n * sizeof *sorted);
    if (!sorted) return pdk_fail_nomem(err, "persistable list");
    for (size_t i = 0, k = 0; i < p->n_vars; i++)
        if (is_selected(&p->vars[i])) sorted[k++] = (named_index){p->vars[i].name, i};
    qsort(sorted, n, sizeof *sorted, cmp_named_index);
    pdckpt_status st = keep_unique(p, sorted, n, err);
    pdk_free(p->alloc, sorted, n * sizeof *sorted);
    return st;
}

pdckpt_status pdk_program_finish(pdckpt_program *p, pdckpt_error *err) {
    PDK_TRY(finish_targets(p->alloc, &p->feeds, err));
    PDK_TRY(finish_targets(p->alloc, &p->fetches, err));
    return select_persistables(p, err);
}

/* ---- lookups and checks ---- */

const pdk_prog_var *pdk_program_find(const pdckpt_program *p, const char *name) {
    size_t lo = 0, hi = p->n_persistables;
    while (lo < hi) { /* the sorted persistable list first: what loads and saves look up */
        size_t mid = lo + (hi - lo) / 2;
        int    c = strcmp(p->persistables[mid], name);
        if (c == 0) return &p->vars[p->persistable_var[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = p->n_vars; i-- > 0;)
        if (strcmp(p->vars[i].name, name) == 0) return &p->vars[i];
    return NULL;
}

const char *pdk_var_type_name(int32_t code) {
    static const char *const names[] = {"bool",           "int16",
                                        "int32",          "int64",
                                        "fp16",           "fp32",
                                        "fp64",           "lod_tensor",
                                        "selected_rows",  "feed_minibatch",
                                        "fetch_list",     "step_scopes",
                                        "lod_rank_table", "lod_tensor_array",
                                        "place_list",     "reader",
                                        "fetch_var_list", "raw",
                                        "tuple",          "size_t",
                                        "uint8",          "int8",
                                        "bf16",           "complex64",
                                        "complex128",     "string",
                                        "strings",        "vocab",
                                        "feed_list",      "pstring",
                                        "sparse_coo",     "sparse_csr",
                                        "fp8_e4m3fn",     "fp8_e5m2"};
    if (code >= 0 && (size_t)code < sizeof names / sizeof names[0]) return names[code];
    return "unknown";
}

static void dims_text(const int64_t *dims, int32_t n, char *buf, size_t cap) {
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int32_t i = 0; i < n && used < cap; i++)
        used +=
            (size_t)snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
}

static const char *dtype_text(pdckpt_dtype dtype, int32_t code, char *buf, size_t cap) {
    if (dtype != PDCKPT_DTYPE_INVALID) return pdckpt_dtype_name(dtype);
    if (code < 0) return "no dtype";
    snprintf(buf, cap, "VarType %d", (int)code);
    return buf;
}

void pdk_program_decl_text(const pdk_prog_var *var, char *buf, size_t cap) {
    char dt[32], dims[256];
    dims_text(var->dims, var->n_dims, dims, sizeof dims);
    snprintf(buf, cap, "%s %s", dtype_text(var->dtype, var->data_type, dt, sizeof dt), dims);
}

/* A SelectedRows declaration gives the logical shape [height, ...]; its value tensor holds only
 * the stored rows, so the first dim is not compared. */
static bool dims_match(const pdk_prog_var *var, const pdckpt_tensor_view *v) {
    if (var->data_type < 0) return true; /* the kind declares no tensor */
    if (var->n_dims != v->n_dims) return false;
    for (int32_t i = var->type == PDK_VT_SELECTED_ROWS ? 1 : 0; i < v->n_dims; i++)
        if (var->dims[i] >= 0 && var->dims[i] != v->dims[i]) return false;
    return true;
}

pdckpt_status pdk_program_check_tensor(const pdk_prog_var *var, const pdckpt_value *tensor,
                                       const char *source, int64_t offset, pdckpt_error *err) {
    pdckpt_tensor_view v; /* dtype and shape only */
    if (!pdckpt_tensor_get_memory(tensor, &v, NULL))
        return pdk_fail(err, PDCKPT_ERR_MISMATCH, source, offset,
                        "variable '%s': the program declares a tensor, found a %s", var->name,
                        pdckpt_kind_name(pdckpt_value_kind(tensor)));
    bool dtype_ok = var->data_type < 0 || var->dtype == v.dtype;
    if (dtype_ok && dims_match(var, &v)) return PDCKPT_OK;
    char want[300], dims[256];
    pdk_program_decl_text(var, want, sizeof want);
    dims_text(v.dims, v.n_dims, dims, sizeof dims);
    return pdk_fail(err, PDCKPT_ERR_MISMATCH, source, offset,
                    "variable '%s': the program declares %s, the file holds %s %s", var->name, want,
                    pdckpt_dtype_name(v.dtype), dims);
}

/* ---- the value tree of a program file ---- */

static pdckpt_status put(pdckpt_value *dict, const char *key, pdckpt_value *v, pdckpt_error *err) {
    if (!v) return pdk_fail_nomem(err, "program value");
    return pdckpt_dict_set(dict, key, v, err);
}

static pdckpt_status var_value(const pdk_prog_var *v, const pdckpt_allocator *a, pdckpt_value **out,
                               pdckpt_error *err) {
    pdckpt_value *d = pdckpt_value_new_container(a, PDCKPT_KIND_DICT);
    pdckpt_value *shape = pdckpt_value_new_container(a, PDCKPT_KIND_LIST);
    pdckpt_status st = d && shape ? PDCKPT_OK : pdk_fail_nomem(err, "program value");
    for (int32_t i = 0; i < v->n_dims && st == PDCKPT_OK; i++) {
        pdckpt_value *dim = pdckpt_value_new_int(a, v->dims[i]);
        st = dim ? pdckpt_value_append(shape, dim, err) : pdk_fail_nomem(err, "dim");
    }
    if (st == PDCKPT_OK) st = put(d, "block", pdckpt_value_new_int(a, v->block), err);
    if (st == PDCKPT_OK)
        st = put(d, "type", pdckpt_value_new_string(a, pdk_var_type_name(v->type), SIZE_MAX), err);
    if (st == PDCKPT_OK)
        st = put(d, "dtype",
                 v->dtype == PDCKPT_DTYPE_INVALID
                     ? pdckpt_value_new_none(a)
                     : pdckpt_value_new_string(a, pdckpt_dtype_name(v->dtype), SIZE_MAX),
                 err);
    if (st == PDCKPT_OK)
        st = put(d, "shape", shape, err);
    else
        pdckpt_value_free(shape);
    if (st == PDCKPT_OK) st = put(d, "lod_level", pdckpt_value_new_int(a, v->lod_level), err);
    if (st == PDCKPT_OK) st = put(d, "persistable", pdckpt_value_new_bool(a, v->persistable), err);
    if (st == PDCKPT_OK) st = put(d, "saved", pdckpt_value_new_bool(a, v->saved), err);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(d);
        return st;
    }
    *out = d;
    return PDCKPT_OK;
}

pdckpt_status pdk_program_to_value(const pdckpt_program *p, pdckpt_value **out, pdckpt_error *err) {
    pdckpt_value *root = pdckpt_value_new_container(p->alloc, PDCKPT_KIND_DICT);
    if (!root) return pdk_fail_nomem(err, "program root");
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 0; i < p->n_vars && st == PDCKPT_OK; i++) {
        pdckpt_value *v = NULL;
        st = var_value(&p->vars[i], p->alloc, &v, err);
        if (st == PDCKPT_OK) st = pdckpt_dict_set(root, p->vars[i].name, v, err);
    }
    if (st != PDCKPT_OK) {
        pdckpt_value_free(root);
        return st;
    }
    *out = root;
    return PDCKPT_OK;
}
