/* SPDX-License-Identifier: Apache-2.0 */
/*
 * program_pir.c — reads Paddle 3's PIR programs (`model.json`, `inference.json`; spec
 * binary-and-static-formats.md §6.5) with jansson.  What checkpoints need: the parameters (ops
 * "#":"p", name in A[3], dtype and dims from the result type, flags in OA), persistable
 * `pd_op.data` values (Paddle's get_pir_parameters saves those too), feed names (data/feed ops)
 * and fetch names (fetch ops, by `col`).  base_code.magic must be "pir".  jansson's memory is
 * bounded before parsing by counting the JSON values the text can hold.
 */
#include "pdk_program.h"

#include <jansson.h>
#include <limits.h>
#include <string.h>

#define MAX_REGION_DEPTH 64
#define JSON_VALUE_COST  96 /* bytes jansson spends per value, generously */

/* ---- sniff ---- */

static const uint8_t *find(const uint8_t *hay, size_t n, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (hay[i] == (uint8_t)needle[0] && memcmp(hay + i, needle, k) == 0) return hay + i;
    return NULL;
}

int pdk_program_pir_sniff(const pdk_input *in) {
    size_t i = 0;
    while (i < in->len && (in->data[i] == ' ' || in->data[i] == '\n' || in->data[i] == '\r' ||
                           in->data[i] == '\t'))
        i++;
    if (i >= in->len || in->data[i] != '{') return PDK_SNIFF_NO;
    size_t         scan = in->len - i < 4096 ? in->len - i : 4096;
    const uint8_t *base = find(in->data + i, scan, "\"base_code\"");
    if (!base) return PDK_SNIFF_NO;
    size_t         rest = (size_t)(in->data + in->len - base);
    const uint8_t *pir = find(base, rest < 256 ? rest : 256, "\"pir\"");
    return pir ? PDK_SNIFF_CERTAIN : PDK_SNIFF_LIKELY;
}

/* ---- bounding jansson's memory ---- */

/* Upper bound on the values in a JSON text: every value after the first follows a ',', '[' or
 * ':' outside strings. */
static uint64_t count_values(const uint8_t *p, size_t n) {
    uint64_t count = 1;
    bool     in_string = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == ',' || c == '[' || c == ':' || c == '{') {
            count++;
        }
    }
    return count;
}

static pdckpt_status check_budget(const pdk_input *in, const pdckpt_load_options *opts,
                                  pdckpt_error *err) {
    if (in->len > INT_MAX)
        return pdk_fail(err, PDCKPT_ERR_LIMIT, in->name, -1,
                        "expected a PIR JSON program below 2 GiB, found %zu bytes", in->len);
    uint64_t need = count_values(in->data, in->len) * JSON_VALUE_COST + (uint64_t)in->len * 2;
    uint64_t limit = opts->max_alloc_bytes ? opts->max_alloc_bytes
                                           : (uint64_t)in->len * 64 + (UINT64_C(64) << 20);
    if (need > limit)
        return pdk_fail(err, PDCKPT_ERR_LIMIT, in->name, -1,
                        "expected the PIR JSON program to parse within %llu bytes "
                        "(max_alloc_bytes), found it may need %llu",
                        (unsigned long long)limit, (unsigned long long)need);
    return PDCKPT_OK;
}

/* ---- types and attributes ---- */

static int32_t pir_dtype_code(const char *tag) {
    static const struct {
        const char *name;
        int32_t     code;
    } table[] = {{"t_bool", 0}, {"t_i16", 1},   {"t_i32", 2},       {"t_i64", 3},    {"t_f16", 4},
                 {"t_f32", 5},  {"t_f64", 6},   {"t_ui8", 20},      {"t_i8", 21},    {"t_bf16", 22},
                 {"t_c64", 23}, {"t_c128", 24}, {"t_f8e4m3fn", 32}, {"t_f8e5m2", 33}};
    const char *dot = tag ? strchr(tag, '.') : NULL;
    const char *name = dot ? dot + 1 : tag;
    for (size_t i = 0; name && i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].name, name) == 0) return table[i].code;
    return -1;
}

static int32_t pir_kind_code(const char *tag) {
    const char *dot = tag ? strchr(tag, '.') : NULL;
    const char *name = dot ? dot + 1 : tag;
    if (!name) return -1;
    if (strcmp(name, "t_dtensor") == 0) return PDK_VT_LOD_TENSOR;
    if (strcmp(name, "t_selected_rows") == 0) return PDK_VT_SELECTED_ROWS;
    if (strstr(name, "tensor_array")) return 13;
    return -1;
}

typedef struct pir_ctx {
    pdckpt_program *prog;
    const char     *source;
    size_t          op_index;
    pdckpt_error   *err;
} pir_ctx;

static pdckpt_status bad(pir_ctx *cx, const char *what, const char *op) {
    return pdk_fail(cx->err, PDCKPT_ERR_FORMAT, cx->source, -1, "PIR op %zu ('%s'): expected %s",
                    cx->op_index, op, what);
}

/* Fills dtype/dims of `v` from a result type {"#": "0.t_dtensor", "D": [dtype, dims, ...]}. */
static pdckpt_status read_type(pir_ctx *cx, const json_t *tt, const char *op, int32_t *kind,
                               int32_t *code, json_t **dims) {
    const char *tag = json_string_value(json_object_get(tt, "#"));
    if (!tag) return bad(cx, "a result type object with a \"#\" tag", op);
    *kind = pir_kind_code(tag);
    json_t *d = json_object_get(tt, "D");
    *code = json_is_array(d)
                ? pir_dtype_code(json_string_value(json_object_get(json_array_get(d, 0), "#")))
                : -1;
    *dims = json_is_array(d) ? json_array_get(d, 1) : NULL;
    if (*dims && !json_is_array(*dims)) return bad(cx, "the type's dims as an array", op);
    return PDCKPT_OK;
}

static pdckpt_status add_typed_var(pir_ctx *cx, const char *name, const json_t *tt, const char *op,
                                   pdk_prog_var **out) {
    int32_t kind = -1, code = -1;
    json_t *dims = NULL;
    PDK_TRY(read_type(cx, tt, op, &kind, &code, &dims));
    size_t n = dims ? json_array_size(dims) : 0;
    if (n > PDCKPT_MAX_DIMS) return bad(cx, "at most 64 dims", op);
    int64_t buf[PDCKPT_MAX_DIMS];
    for (size_t i = 0; i < n; i++) {
        json_t *dim = json_array_get(dims, i);
        if (!json_is_integer(dim)) return bad(cx, "integer dims", op);
        buf[i] = (int64_t)json_integer_value(dim);
    }
    PDK_TRY(pdk_program_add_var(cx->prog, name, strlen(name), (int32_t)n, buf, out, cx->err));
    (*out)->type = kind;
    (*out)->data_type = code;
    (*out)->dtype = code >= 0 ? pdckpt_dtype_from_paddle(code) : PDCKPT_DTYPE_INVALID;
    return PDCKPT_OK;
}

/* A 0/1 flag at index i of a compressed attribute array, or `dflt` when absent. */
static bool flag_at(const json_t *arr, size_t i, bool dflt) {
    const json_t *v = json_is_array(arr) ? json_array_get(arr, i) : NULL;
    if (json_is_integer(v)) return json_integer_value(v) != 0;
    if (json_is_boolean(v)) return json_is_true(v);
    return dflt;
}

/* The value "D" of the named attribute {"N": name, "AT": {"#": kind, "D": value}} in a list. */
static const json_t *named_attr(const json_t *list, const char *name) {
    for (size_t i = 0; json_is_array(list) && i < json_array_size(list); i++) {
        const json_t *a = json_array_get(list, i);
        const char   *n = json_string_value(json_object_get(a, "N"));
        if (n && strcmp(n, name) == 0) return json_object_get(json_object_get(a, "AT"), "D");
    }
    return NULL;
}

/* A result attribute such as persistable: an a_array of a_bool (first element). */
static bool result_flag(const json_t *oa, const char *name, bool dflt) {
    const json_t *d = named_attr(oa, name);
    const json_t *first = json_is_array(d) ? json_object_get(json_array_get(d, 0), "D") : NULL;
    return json_is_boolean(first) ? json_is_true(first) : dflt;
}

/* ---- ops ---- */

/* {"#":"p", "A":[is_distributed, is_parameter, need_clip, name], "O":{"%":id, "TT":type},
 *  "OA":[persistable, stop_gradient, trainable]} — the flags default to 0,1,0 and 1,1,1. */
static pdckpt_status parameter_op(pir_ctx *cx, const json_t *op) {
    const json_t *a = json_object_get(op, "A");
    const char   *name = json_string_value(json_array_get(a, 3));
    if (!json_is_array(a) || !name)
        return bad(cx, "A = [is_distributed, is_parameter, need_clip, \"name\"]", "p");
    const json_t *tt = json_object_get(json_object_get(op, "O"), "TT");
    if (!tt) return bad(cx, "O = {\"%\": id, \"TT\": type}", "p");
    pdk_prog_var *v;
    PDK_TRY(add_typed_var(cx, name, tt, "p", &v));
    const json_t *oa = json_object_get(op, "OA");
    v->is_parameter = flag_at(a, 1, true);
    v->persistable = flag_at(oa, 0, true);
    v->stop_gradient = flag_at(oa, 1, true);
    v->trainable = flag_at(oa, 2, true);
    return PDCKPT_OK;
}

/* pd_op.data / pd_op.feed: a feed target; persistable data values are saved too. */
static pdckpt_status data_op(pir_ctx *cx, const json_t *op, const char *tag) {
    const char   *name = json_string_value(named_attr(json_object_get(op, "A"), "name"));
    const json_t *tt = json_object_get(json_array_get(json_object_get(op, "O"), 0), "TT");
    if (!name || !tt) return bad(cx, "a \"name\" attribute and one typed result", tag);
    pdk_prog_var *v;
    PDK_TRY(add_typed_var(cx, name, tt, tag, &v));
    const json_t *oa = json_object_get(op, "OA");
    v->persistable = result_flag(oa, "persistable", false);
    v->stop_gradient = result_flag(oa, "stop_gradient", true);
    return pdk_program_add_target(cx->prog, false, name, strlen(name), -1, cx->err);
}

static pdckpt_status fetch_op(pir_ctx *cx, const json_t *op) {
    const json_t *a = json_object_get(op, "A");
    const char   *name = json_string_value(named_attr(a, "name"));
    if (!name) return bad(cx, "a \"name\" attribute", "1.fetch");
    const json_t *col = named_attr(a, "col");
    int64_t       c = json_is_integer(col) ? (int64_t)json_integer_value(col) : -1;
    return pdk_program_add_target(cx->prog, true, name, strlen(name), c, cx->err);
}

static pdckpt_status walk_regions(pir_ctx *cx, const json_t *regions, int depth);

static pdckpt_status walk_op(pir_ctx *cx, const json_t *op, int depth) {
    cx->prog->n_ops++;
    cx->op_index++;
    const char *tag = json_string_value(json_object_get(op, "#"));
    if (!tag) return bad(cx, "an object with a \"#\" name", "?");
    if (strcmp(tag, "p") == 0)
        PDK_TRY(parameter_op(cx, op));
    else if (strcmp(tag, "1.data") == 0 || strcmp(tag, "1.feed") == 0)
        PDK_TRY(data_op(cx, op, tag));
    else if (strcmp(tag, "1.fetch") == 0)
        PDK_TRY(fetch_op(cx, op));
    const json_t *regions = json_object_get(op, "regions");
    return regions ? walk_regions(cx, regions, depth + 1) : PDCKPT_OK;
}

static pdckpt_status walk_block(pir_ctx *cx, const json_t *block, int depth) {
    const json_t *ops = json_object_get(block, "ops");
    if (!json_is_array(ops))
        return pdk_fail(cx->err, PDCKPT_ERR_FORMAT, cx->source, -1,
                        "PIR block: expected an \"ops\" array");
    cx->prog->n_blocks++;
    for (size_t i = 0; i < json_array_size(ops); i++)
        PDK_TRY(walk_op(cx, json_array_get(ops, i), depth));
    return PDCKPT_OK;
}

static pdckpt_status walk_regions(pir_ctx *cx, const json_t *regions, int depth) {
    if (depth > MAX_REGION_DEPTH)
        return pdk_fail(cx->err, PDCKPT_ERR_LIMIT, cx->source, -1,
                        "expected PIR regions nested at most %d deep", MAX_REGION_DEPTH);
    if (!json_is_array(regions))
        return pdk_fail(cx->err, PDCKPT_ERR_FORMAT, cx->source, -1,
                        "PIR program: expected \"regions\" to be an array");
    for (size_t r = 0; r < json_array_size(regions); r++) {
        const json_t *blocks = json_object_get(json_array_get(regions, r), "blocks");
        if (!json_is_array(blocks))
            return pdk_fail(cx->err, PDCKPT_ERR_FORMAT, cx->source, -1,
                            "PIR region %zu: expected a \"blocks\" array", r);
        for (size_t b = 0; b < json_array_size(blocks); b++)
            PDK_TRY(walk_block(cx, json_array_get(blocks, b), depth));
    }
    return PDCKPT_OK;
}

/* base_code {"magic": "pir", "version": N, "trainable": bool} (spec §6.5). */
static pdckpt_status read_base_code(const json_t *root, pdckpt_program *p, const char *source,
                                    pdckpt_error *err) {
    const json_t *base = json_object_get(root, "base_code");
    const char   *magic = json_string_value(json_object_get(base, "magic"));
    if (!magic || strcmp(magic, "pir") != 0)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, source, -1,
                        "expected base_code.magic \"pir\" (a Paddle 3 PIR program), found %s%s%s",
                        magic ? "\"" : "", magic ? magic : "none", magic ? "\"" : "");
    const json_t *version = json_object_get(base, "version");
    p->version = json_is_integer(version) ? (int64_t)json_integer_value(version) : -1;
    return PDCKPT_OK;
}

static pdckpt_status read_root(const json_t *root, pdckpt_program *p, const char *source,
                               pdckpt_error *err) {
    PDK_TRY(read_base_code(root, p, source, err));
    const json_t *regions = json_object_get(json_object_get(root, "program"), "regions");
    pir_ctx       cx = {p, source, 0, err};
    PDK_TRY(walk_regions(&cx, regions, 0));
    return pdk_program_finish(p, err);
}

pdckpt_status pdk_program_pir_parse(const pdk_input *in, const pdckpt_load_options *opts,
                                    pdckpt_program **out, pdckpt_error *err) {
    *out = NULL;
    PDK_TRY(check_budget(in, opts, err));
    json_error_t je;
    json_t      *root = json_loadb((const char *)in->data, in->len, 0, &je);
    if (!root)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, in->name, je.position >= 0 ? je.position : -1,
                        "expected a JSON PIR program: %s", je.text);
    pdckpt_status st = json_is_object(root)
                           ? pdk_program_new(opts->allocator, PDCKPT_FORMAT_PIR_JSON, out, err)
                           : pdk_fail(err, PDCKPT_ERR_FORMAT, in->name, 0,
                                      "expected a JSON object at the top of a PIR program");
    if (st == PDCKPT_OK) st = read_root(root, *out, in->name, err);
    json_decref(root);
    if (st != PDCKPT_OK) {
        pdk_program_free(*out);
        *out = NULL;
    }
    return st;
}
