/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_array.c — the reader's fast path for the opcodes every pickled ndarray after the first
 * is written as (numpy's __reduce__ through CPython's pickler, and pdckpt's writer alike):
 *   GET _reconstruct, GET ndarray, BININT1 0, TUPLE1, GET b'b' (or SHORT_BINBYTES 'b'), TUPLE3,
 *   REDUCE, MARK, BININT1 1, shape, GET dtype, NEWFALSE, bytes, TUPLE, BUILD
 * with memo stores after any of them and FRAMEs between them.  Matched, an array costs one tensor
 * instead of about ten transient values (issue 18: the pickle VM's per-tensor cost).  Anything
 * else -- another opcode or value, a big-endian or Fortran array, a limit -- and the cursor stays
 * at the GET and the ordinary handlers run, so they alone decide every error.  Memo entries for
 * the values skipped hold PK_ELIDED; a later GET of one makes the load start over without the
 * fast path (pickle_read.c), so a pickle can cost at most two runs and never a different result.
 */
#include "pickle_vm.h"

#define PK_MATCH_PUTS 16

/* A memo store seen in the sequence: the value (borrowed), PK_ELIDED, or NULL for the array. */
typedef struct pk_put {
    uint64_t      idx;
    pdckpt_value *v;
} pk_put;

typedef struct pk_match {
    pk_vm         *vm;
    pdk_cursor     cur;        /* a copy without an error sink: vm->cur moves only on success */
    uint64_t       memo_count; /* MEMOIZE's next index as the stores so far would leave it */
    pk_put         puts[PK_MATCH_PUTS];
    size_t         n_puts;
    int32_t        nd;
    int64_t        dims[PDCKPT_MAX_DIMS];
    pk_np_dtype    dt;
    const uint8_t *data;
    uint64_t       data_len;
    size_t         reduce_at; /* the array's REDUCE: where what fails on it later points */
} pk_match;

/* The next opcode, FRAMEs skipped (with pk_op_frame's length check). */
static bool next_op(pk_match *m, uint8_t *op) {
    const uint8_t *b;
    for (;;) {
        if (pdk_cur_u8(&m->cur, op, "opcode") != PDCKPT_OK) return false;
        if (*op != PK_OP_FRAME) return true;
        if (pdk_cur_bytes(&m->cur, 8, &b, "frame") != PDCKPT_OK ||
            pdk_load_u64le(b) > pdk_cur_left(&m->cur))
            return false;
    }
}

static bool expect(pk_match *m, uint8_t want) {
    uint8_t op;
    return next_op(m, &op) && op == want;
}

/* An unsigned little-endian argument of `size` bytes. */
static bool arg_u(pk_match *m, size_t size, uint64_t *out) {
    const uint8_t *b;
    if (pdk_cur_bytes(&m->cur, size, &b, "argument") != PDCKPT_OK) return false;
    *out = 0;
    for (size_t i = 0; i < size; i++) *out |= (uint64_t)b[i] << (8 * i);
    return true;
}

/* Records a store of `v` into an empty memo slot not stored before (else no match). */
static bool record_put(pk_match *m, uint8_t op, pdckpt_value *v) {
    uint64_t idx = m->memo_count;
    if (op != PK_OP_MEMOIZE && !arg_u(m, pk_opcodes[op].size, &idx)) return false;
    if (idx >= m->vm->opts->max_memo || pk_memo_at(m->vm, idx) || m->n_puts == PK_MATCH_PUTS)
        return false;
    for (size_t i = 0; i < m->n_puts; i++)
        if (m->puts[i].idx == idx) return false;
    m->puts[m->n_puts++] = (pk_put){idx, v};
    m->memo_count++;
    return true;
}

/* Memo stores of the value just made (any number, also none). */
static bool stores(pk_match *m, pdckpt_value *v) {
    for (;;) {
        size_t  at = m->cur.pos;
        uint8_t op;
        if (!next_op(m, &op)) return false;
        if (op != PK_OP_BINPUT && op != PK_OP_LONG_BINPUT && op != PK_OP_MEMOIZE) {
            m->cur.pos = at;
            return true;
        }
        if (!record_put(m, op, v)) return false;
    }
}

/* The memo value of a BINGET / LONG_BINGET whose opcode was read already. */
static bool get_arg(pk_match *m, uint8_t op, pdckpt_value **v) {
    uint64_t idx;
    if ((op != PK_OP_BINGET && op != PK_OP_LONG_BINGET) || !arg_u(m, pk_opcodes[op].size, &idx))
        return false;
    *v = pk_memo_at(m->vm, idx);
    return *v && *v != PK_ELIDED;
}

static bool get_value(pk_match *m, pdckpt_value **v) {
    uint8_t op;
    return next_op(m, &op) && get_arg(m, op, v);
}

static bool small_int(pk_match *m, uint8_t want) {
    uint64_t v;
    return expect(m, PK_OP_BININT1) && arg_u(m, 1, &v) && v == want;
}

/* The type code b'b' of _reconstruct's arguments: a GET of it, or the bytes themselves. */
static bool type_code(pk_match *m) {
    uint8_t        op;
    pdckpt_value  *v;
    const uint8_t *b;
    size_t         n;
    if (!next_op(m, &op)) return false;
    if (op == PK_OP_SHORT_BINBYTES)
        return pdk_cur_bytes(&m->cur, 2, &b, "bytes") == PDCKPT_OK && b[0] == 1 && b[1] == 'b' &&
               stores(m, PK_ELIDED);
    return get_arg(m, op, &v) && pk_bytes(m->vm, v, &b, &n) && n == 1 && b[0] == 'b' &&
           stores(m, v);
}

/* A dim: BININT1 / BININT2 / BININT (>= 0). */
static bool dim(pk_match *m, uint8_t op, int64_t *out) {
    uint64_t u;
    if ((op != PK_OP_BININT1 && op != PK_OP_BININT2 && op != PK_OP_BININT) ||
        !arg_u(m, pk_opcodes[op].size, &u))
        return false;
    *out = op == PK_OP_BININT ? (int32_t)(uint32_t)u : (int64_t)u;
    return *out >= 0;
}

/* The shape tuple: EMPTY_TUPLE, dims + TUPLE1..3, or MARK dims TUPLE. */
static bool shape(pk_match *m) {
    uint8_t op;
    if (!next_op(m, &op)) return false;
    if (op == PK_OP_EMPTY_TUPLE) return m->nd = 0, true;
    bool marked = op == PK_OP_MARK;
    if (marked && !next_op(m, &op)) return false;
    for (m->nd = 0; m->nd < PDCKPT_MAX_DIMS && dim(m, op, &m->dims[m->nd]); m->nd++)
        if (!next_op(m, &op)) return false;
    if (marked) return op == PK_OP_TUPLE;
    return m->nd >= 1 && m->nd <= 3 && op == PK_OP_TUPLE1 + m->nd - 1;
}

/* The array bytes: SHORT_BINBYTES / BINBYTES / BINBYTES8. */
static bool data(pk_match *m) {
    uint8_t op;
    if (!next_op(m, &op) ||
        (op != PK_OP_SHORT_BINBYTES && op != PK_OP_BINBYTES && op != PK_OP_BINBYTES8))
        return false;
    return arg_u(m, pk_opcodes[op].size, &m->data_len) &&
           pdk_cur_bytes(&m->cur, m->data_len, &m->data, "array data") == PDCKPT_OK;
}

/* The whole sequence, and an array the ordinary BUILD would make without a copy. */
static bool match(pk_match *m) {
    pdckpt_value *v;
    if (!get_arg(m, m->vm->op, &v) || !pk_is_reconstruct_global(v) ||
        pk_role_of(m->vm, v) != PDK_GLOBAL_CALL || !stores(m, v))
        return false;
    if (!get_value(m, &v) || !pk_is_global(v, "numpy", "ndarray") || !stores(m, v)) return false;
    if (!small_int(m, 0) || !expect(m, PK_OP_TUPLE1) || !stores(m, PK_ELIDED)) return false;
    if (!type_code(m) || !expect(m, PK_OP_TUPLE3) || !stores(m, PK_ELIDED)) return false;
    if (!expect(m, PK_OP_REDUCE)) return false;
    m->reduce_at = m->cur.pos - 1;
    if (!stores(m, NULL) || !expect(m, PK_OP_MARK)) return false;
    if (!small_int(m, 1) || !shape(m) || !stores(m, PK_ELIDED)) return false;
    if (!get_value(m, &v) || !pk_np_dtype_of(v, &m->dt) || m->dt.swap || !stores(m, v))
        return false;
    if (!expect(m, PK_OP_NEWFALSE) || !data(m) || !stores(m, PK_ELIDED)) return false;
    if (!expect(m, PK_OP_TUPLE) || !stores(m, PK_ELIDED) || !expect(m, PK_OP_BUILD)) return false;
    uint64_t     n_el, n_bytes;
    pdckpt_error quiet = PDCKPT_ERROR_INIT;
    return pdk_tensor_sizes(m->dt.dtype, m->nd, m->dims, &n_el, &n_bytes, &quiet) == PDCKPT_OK &&
           n_bytes == m->data_len && n_bytes <= m->vm->opts->max_tensor_bytes &&
           n_bytes <= m->vm->budget;
}

static pdckpt_status commit(pk_match *m) {
    pk_vm        *vm = m->vm;
    pdckpt_value *t = NULL;
    PDK_TRY(pk_charge(vm, 256));
    PDK_TRY(pk_array_view(vm, m->dt, m->nd, m->dims, m->data, &t));
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 0; i < m->n_puts && st == PDCKPT_OK; i++)
        st = pk_memo_set(vm, m->puts[i].idx, m->puts[i].v ? m->puts[i].v : t);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(t);
        return st;
    }
    vm->cur.pos = m->cur.pos;
    pdk_value_note_at(t, (int64_t)m->reduce_at);
    return pk_push(vm, t);
}

pdckpt_status pk_op_get_array(pk_vm *vm) {
    if (vm->shortcut) {
        pk_match m = {.vm = vm, .cur = vm->cur, .memo_count = vm->memo_count};
        m.cur.err = NULL;
        if (match(&m)) return commit(&m);
    }
    return pk_op_memo_get(vm);
}
