/* SPDX-License-Identifier: Apache-2.0 */
/*
 * program_desc.c — reads a ProgramDesc (`__model__`, `*.pdmodel`; spec binary-and-static-formats.md
 * §6.1-§6.4) with protobuf-c from pdckpt's own schema (paddle_framework.proto).  The bytes are
 * first validated against the generated descriptors (program_check.c) so a bad file gets an exact
 * offset, then unpacked through a counting allocator bounded by max_alloc_bytes (there is no
 * 64 MiB cap as in Paddle's C++ protobuf), then reduced to the program model (pdk_program.h).
 * Fluid 0.11's pickled `__model__` is recognised and refused with a clear message.
 */
#define _GNU_SOURCE /* memmem */
#include "pdk_program.h"

#include "paddle_framework.pb-c.h"

#include <string.h>

typedef Paddle__Framework__Proto__ProgramDesc         ProgramDesc;
typedef Paddle__Framework__Proto__BlockDesc           BlockDesc;
typedef Paddle__Framework__Proto__VarDesc             VarDesc;
typedef Paddle__Framework__Proto__VarType             VarType;
typedef Paddle__Framework__Proto__OpDesc              OpDesc;
typedef Paddle__Framework__Proto__VarType__TensorDesc TensorDesc;

/* ---- Fluid 0.11: a protocol-2 pickle of {program_desc_str, feed_var_names, fetch_var_names} ----
 */

bool pdk_program_is_fluid011_pickle(const pdk_input *in) {
    if (in->len < 2 || in->data[0] != 0x80) return false;
    size_t scan = in->len < 65536 ? in->len : 65536;
    return memmem(in->data, scan, "program_desc_str", 16) != NULL;
}

static pdckpt_status refuse_fluid011(const pdk_input *in, pdckpt_error *err) {
    return pdk_fail(err, PDCKPT_ERR_UNSUPPORTED, in->name, 0,
                    "expected a ProgramDesc protobuf, found Fluid 0.11's pickled __model__ "
                    "({program_desc_str, feed_var_names, fetch_var_names}, with the pre-0.12 "
                    "VarDesc layout); pdckpt reads programs written by Fluid 0.12 and later");
}

/* ---- sniff ---- */

int pdk_program_desc_sniff(const pdk_input *in) {
    /* Fluid 0.11's __model__ is a pickle: detection leaves it to the pickle reader (its contents
     * list), and only an explicit program load refuses it with a message. */
    if (pdk_program_is_fluid011_pickle(in)) return PDK_SNIFF_NO;
    if (in->len < 2 || in->data[0] != 0x0a) return PDK_SNIFF_NO; /* Paddle writes blocks first */
    pdckpt_error scratch = PDCKPT_ERROR_INIT;
    pdk_cursor   cur;
    pdk_cur_init(&cur, in->data, in->len, in->name, &scratch);
    if (pdk_pb_validate(&cur, &paddle__framework__proto__program_desc__descriptor) != PDCKPT_OK)
        return PDK_SNIFF_NO;
    return PDK_SNIFF_CERTAIN;
}

/* ---- protobuf-c allocator: counts every byte against the load's allocation budget ---- */

typedef struct pb_budget {
    const pdckpt_allocator *alloc;
    uint64_t                used;
    uint64_t                limit;
    bool                    over; /* the budget ran out */
    bool                    oom;  /* the allocator itself failed */
} pb_budget;

#define PB_HEADER 16 /* keeps the 16-byte alignment of pdk_alloc */

static void *pb_alloc(void *ctx, size_t size) {
    pb_budget *b = ctx;
    uint64_t   need = (uint64_t)size + PB_HEADER;
    if (need < size || need > b->limit - b->used) {
        b->over = true;
        return NULL;
    }
    uint8_t *p = pdk_alloc(b->alloc, (size_t)need);
    if (!p) {
        b->oom = true;
        return NULL;
    }
    memcpy(p, &size, sizeof size);
    b->used += need;
    return p + PB_HEADER;
}

static void pb_free(void *ctx, void *ptr) {
    if (!ptr) return;
    pb_budget *b = ctx;
    uint8_t   *p = (uint8_t *)ptr - PB_HEADER;
    size_t     size;
    memcpy(&size, p, sizeof size);
    b->used -= (uint64_t)size + PB_HEADER;
    pdk_free(b->alloc, p, size + PB_HEADER);
}

static uint64_t budget_limit(const pdckpt_load_options *opts, size_t len) {
    if (opts->max_alloc_bytes) return opts->max_alloc_bytes;
    return (uint64_t)len * 4 + (UINT64_C(64) << 20);
}

/* ---- ProgramDesc -> program model ---- */

static const TensorDesc *tensor_desc_of(const VarType *t, int32_t *lod_level) {
    *lod_level = 0;
    switch ((int)t->type) {
    case PDK_VT_LOD_TENSOR:
        if (!t->lod_tensor) return NULL;
        *lod_level = t->lod_tensor->has_lod_level ? t->lod_tensor->lod_level : 0;
        return t->lod_tensor->tensor;
    case PDK_VT_SELECTED_ROWS: return t->selected_rows;
    case 13: /* LOD_TENSOR_ARRAY */
        if (!t->tensor_array) return NULL;
        *lod_level = t->tensor_array->has_lod_level ? t->tensor_array->lod_level : 0;
        return t->tensor_array->tensor;
    case 25: return t->string;
    case 26: return t->strings;
    case PDK_VT_VOCAB: return t->vocab;
    case 30: return t->sparse_coo;
    case 31: return t->sparse_csr;
    default: return NULL;
    }
}

static pdckpt_status add_var(pdckpt_program *p, int32_t block, const VarDesc *vd,
                             pdckpt_error *err) {
    int32_t           lod_level;
    const TensorDesc *td = tensor_desc_of(vd->type, &lod_level);
    pdk_prog_var     *v;
    int32_t           n_dims = td && td->n_dims <= INT32_MAX ? (int32_t)td->n_dims : 0;
    PDK_TRY(
        pdk_program_add_var(p, vd->name, strlen(vd->name), n_dims, td ? td->dims : NULL, &v, err));
    v->block = block;
    v->type = (int32_t)vd->type->type;
    v->data_type = td ? (int32_t)td->data_type : -1;
    v->dtype = td ? pdckpt_dtype_from_paddle((int)td->data_type) : PDCKPT_DTYPE_INVALID;
    v->lod_level = lod_level;
    v->persistable = vd->has_persistable && vd->persistable;
    v->is_parameter = vd->has_is_parameter && vd->is_parameter;
    v->stop_gradient = vd->has_stop_gradient && vd->stop_gradient;
    return PDCKPT_OK;
}

/* The first argument of the op's input/output slot `param`, or NULL. */
static const char *slot_arg(Paddle__Framework__Proto__OpDesc__Var **slots, size_t n,
                            const char *param) {
    for (size_t i = 0; i < n; i++)
        if (slots[i]->parameter && strcmp(slots[i]->parameter, param) == 0 &&
            slots[i]->n_arguments > 0)
            return slots[i]->arguments[0];
    return NULL;
}

static int64_t col_attr(const OpDesc *op) {
    for (size_t i = 0; i < op->n_attrs; i++) {
        const Paddle__Framework__Proto__OpDesc__Attr *a = op->attrs[i];
        if (a->name && strcmp(a->name, "col") == 0) return a->has_i ? a->i : a->has_l ? a->l : -1;
    }
    return -1;
}

/* Feed targets are the outputs `Out` of `feed` ops, fetch targets the inputs `X` of `fetch`
 * ops, each at its `col` attribute (spec §6.2). */
static pdckpt_status add_targets(pdckpt_program *p, const BlockDesc *b, pdckpt_error *err) {
    for (size_t i = 0; i < b->n_ops; i++) {
        const OpDesc *op = b->ops[i];
        bool          feed = strcmp(op->type, "feed") == 0, fetch = strcmp(op->type, "fetch") == 0;
        if (!feed && !fetch) continue;
        const char *name = feed ? slot_arg(op->outputs, op->n_outputs, "Out")
                                : slot_arg(op->inputs, op->n_inputs, "X");
        if (name) PDK_TRY(pdk_program_add_target(p, fetch, name, strlen(name), col_attr(op), err));
    }
    return PDCKPT_OK;
}

/* ---- the block structure Paddle's own parser relies on ---- */

/* pdckpt.load hands a program's bytes to Paddle (Program.parse_from_string), whose C++ indexes
 * blocks by these numbers unchecked: a sub_block past the last block crashed the process.  So a
 * program is accepted only with Paddle's invariants: block i has idx i, block 0 no parent and
 * every other an earlier one (no cycles), forward_block_idx -1 or a block, and every BLOCK /
 * BLOCKS attribute a block. */

/* Offset of the i-th `blocks` field (block i) in the ProgramDesc bytes, for the error. */
static int64_t block_offset(const pdk_input *in, size_t i) {
    pdckpt_error ignored = PDCKPT_ERROR_INIT;
    pdk_cursor   cur;
    pdk_cur_init(&cur, in->data, in->len, in->name, &ignored);
    for (size_t seen = 0; pdk_cur_left(&cur);) {
        size_t   at = cur.pos;
        uint32_t field, wire;
        if (pdk_pb_tag(&cur, &field, &wire) != PDCKPT_OK) break;
        if (field == 1 && seen++ == i) return (int64_t)at;
        if (pdk_pb_skip(&cur, wire) != PDCKPT_OK) break;
    }
    return 0;
}

static bool block_ok(int64_t idx, size_t n_blocks) {
    return idx >= 0 && (uint64_t)idx < n_blocks;
}

/* The op's first BLOCK / BLOCKS attribute naming no block, or NULL. */
static const char *bad_block_attr(const OpDesc *op, size_t n_blocks, int64_t *idx) {
    for (size_t a = 0; a < op->n_attrs; a++) {
        const Paddle__Framework__Proto__OpDesc__Attr *at = op->attrs[a];
        const char                                   *name = at->name ? at->name : "(unnamed)";
        if (at->type == PADDLE__FRAMEWORK__PROTO__ATTR_TYPE__BLOCK &&
            !block_ok(*idx = at->has_block_idx ? at->block_idx : 0, n_blocks))
            return name;
        for (size_t k = 0;
             at->type == PADDLE__FRAMEWORK__PROTO__ATTR_TYPE__BLOCKS && k < at->n_blocks_idx; k++)
            if (!block_ok(*idx = at->blocks_idx[k], n_blocks)) return name;
    }
    return NULL;
}

static pdckpt_status bad_block(const pdk_input *in, size_t b, pdckpt_error *err, const char *field,
                               int64_t found, const char *expected) {
    return pdk_fail(err, PDCKPT_ERR_FORMAT, in->name, block_offset(in, b),
                    "block %zu: expected %s %s, found %lld", b, field, expected, (long long)found);
}

static pdckpt_status check_block(const ProgramDesc *pd, size_t b, const pdk_input *in,
                                 pdckpt_error *err) {
    const BlockDesc *block = pd->blocks[b];
    int64_t          parent = block->parent_idx, fwd = block->forward_block_idx, idx = 0;
    if (block->idx != (int64_t)b)
        return bad_block(in, b, err, "idx", block->idx, "equal to its position");
    if (b == 0 && parent != -1) return bad_block(in, b, err, "parent_idx", parent, "-1");
    if (b > 0 && !(parent >= 0 && (uint64_t)parent < b))
        return bad_block(in, b, err, "parent_idx", parent, "to name an earlier block");
    if (block->has_forward_block_idx && fwd != -1 && !block_ok(fwd, pd->n_blocks))
        return bad_block(in, b, err, "forward_block_idx", fwd, "to be -1 or name a block");
    for (size_t i = 0; i < block->n_ops; i++) {
        const char *attr = bad_block_attr(block->ops[i], pd->n_blocks, &idx);
        if (attr)
            return pdk_fail(err, PDCKPT_ERR_FORMAT, in->name, block_offset(in, b),
                            "block %zu, op %zu (%s): expected attribute '%s' to name one of the "
                            "program's %zu blocks, found %lld",
                            b, i, block->ops[i]->type, attr, pd->n_blocks, (long long)idx);
    }
    return PDCKPT_OK;
}

static pdckpt_status convert(const ProgramDesc *pd, pdckpt_program *p, const pdk_input *in,
                             pdckpt_error *err) {
    if (pd->n_blocks == 0)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, in->name, 0,
                        "expected a ProgramDesc with at least one block, found none");
    p->version = pd->version ? (pd->version->has_version ? pd->version->version : 0) : -1;
    p->n_blocks = pd->n_blocks;
    for (size_t b = 0; b < pd->n_blocks; b++) PDK_TRY(check_block(pd, b, in, err));
    for (size_t b = 0; b < pd->n_blocks; b++) {
        const BlockDesc *block = pd->blocks[b];
        p->n_ops += block->n_ops;
        for (size_t i = 0; i < block->n_vars; i++)
            PDK_TRY(add_var(p, block->idx, block->vars[i], err));
        if (b == 0) PDK_TRY(add_targets(p, block, err));
    }
    return pdk_program_finish(p, err);
}

pdckpt_status pdk_program_desc_parse(const pdk_input *in, const pdckpt_load_options *opts,
                                     pdckpt_program **out, pdckpt_error *err) {
    *out = NULL;
    if (pdk_program_is_fluid011_pickle(in)) return refuse_fluid011(in, err);
    pdk_cursor cur;
    pdk_cur_init(&cur, in->data, in->len, in->name, err);
    PDK_TRY(pdk_pb_validate(&cur, &paddle__framework__proto__program_desc__descriptor));
    pb_budget          budget = {opts->allocator, 0, budget_limit(opts, in->len), false, false};
    ProtobufCAllocator pa = {pb_alloc, pb_free, &budget};
    ProgramDesc       *pd = paddle__framework__proto__program_desc__unpack(&pa, in->len, in->data);
    if (!pd && budget.over)
        return pdk_fail(err, PDCKPT_ERR_LIMIT, in->name, -1,
                        "expected the ProgramDesc to unpack within %llu bytes (max_alloc_bytes), "
                        "found it needs more",
                        (unsigned long long)budget.limit);
    if (!pd && budget.oom) return pdk_fail_nomem(err, "ProgramDesc");
    if (!pd)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, in->name, 0,
                        "protobuf-c could not unpack the ProgramDesc that passed validation");
    pdckpt_status st = pdk_program_new(opts->allocator, PDCKPT_FORMAT_PROGRAM, out, err);
    if (st == PDCKPT_OK) st = convert(pd, *out, in, err);
    paddle__framework__proto__program_desc__free_unpacked(pd, &pa);
    if (st != PDCKPT_OK) {
        pdk_program_free(*out);
        *out = NULL;
    }
    return st;
}
