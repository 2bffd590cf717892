/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_read.c — the pickle format's load and sniff (spec pickle-and-distributed-formats.md
 * §1.6-1.11): runs the bounded VM (pickle_vm.c) to STOP, turns the result into final values and
 * applies Paddle's load conventions (pickle_paddle.c).  Sniffing walks opcodes without building
 * anything: protocol 2-5 headers with a plausible opcode stream are certain; protocol 0/1 streams
 * only count when they run cleanly to a STOP that ends the input.
 */
#include "pickle_vm.h"

#include <string.h>

#define SNIFF_OPS      256
#define SNIFF_TEXT_MAX ((size_t)64 << 20)

/* ---- sniffing: opcode arguments skipped by the opcode table, no values built ---- */

/* Skips one opcode's argument (pk_opcodes says how it is laid out); false when it runs past the
 * end.  The cursor carries no error: a sniff only answers yes or no. */
static bool skip_arg(pdk_cursor *cur, const pk_opinfo *info) {
    const uint8_t *b = NULL, *nl;
    switch (info->arg) {
    case PK_ARG_LINES2:
    case PK_ARG_LINE:
        for (int lines = info->arg == PK_ARG_LINE ? 1 : 2; lines > 0; lines--) {
            if (!(nl = memchr(pdk_cur_ptr(cur), '\n', pdk_cur_left(cur)))) return false;
            pdk_cur_skip(cur, (size_t)(nl - pdk_cur_ptr(cur)) + 1, "line");
        }
        return true;
    case PK_ARG_FIXED: return pdk_cur_skip(cur, info->size, "argument") == PDCKPT_OK;
    case PK_ARG_COUNTED: {
        if (pdk_cur_bytes(cur, info->size, &b, "length") != PDCKPT_OK) return false;
        uint64_t n = 0;
        for (size_t i = 0; i < info->size; i++) n |= (uint64_t)b[i] << (8 * i);
        return pdk_cur_skip(cur, n, "argument") == PDCKPT_OK;
    }
    default: return true;
    }
}

/* Walks at most `max_ops` opcodes.  Returns 1 at a STOP, 0 when the input or the op budget ends
 * first (also inside an argument: a truncated pickle is still a pickle, and its load says where it
 * ends), -1 at an unknown opcode. */
static int skim(const uint8_t *p, size_t len, size_t pos, size_t max_ops, size_t *end) {
    pdk_cursor cur;
    pdk_cur_init(&cur, p, len, NULL, NULL);
    cur.pos = pos;
    uint8_t op = 0;
    for (size_t n = 0; n < max_ops && pdk_cur_u8(&cur, &op, "opcode") == PDCKPT_OK; n++) {
        const pk_opinfo *info = &pk_opcodes[op];
        if (!info->name) return -1;
        if (!skip_arg(&cur, info)) return 0;
        if (op == PK_OP_STOP) {
            *end = cur.pos;
            return 1;
        }
    }
    return 0;
}

int pdk_pickle_sniff(const pdk_input *in) {
    const uint8_t *p = in->data;
    size_t         end = 0;
    if (in->len >= 2 && p[0] == 0x80)
        return p[1] >= 2 && p[1] <= 5 && skim(p, in->len, 2, SNIFF_OPS, &end) >= 0
                   ? PDK_SNIFF_CERTAIN
                   : PDK_SNIFF_NO;
    /* Protocol 0/1 has no header: only a stream that parses to a final STOP counts. */
    if (in->len < 2 || in->len > SNIFF_TEXT_MAX || !memchr("(}])cdlN", p[0], 8))
        return PDK_SNIFF_NO;
    return skim(p, in->len, 0, SIZE_MAX, &end) == 1 && end == in->len ? PDK_SNIFF_LIKELY
                                                                      : PDK_SNIFF_NO;
}

bool pdk_pickle_length(const pdk_input *in, size_t *end) {
    const uint8_t *p = in->data;
    return in->len >= 2 && p[0] == 0x80 && p[1] >= 2 && p[1] <= 5 &&
           skim(p, in->len, 2, SIZE_MAX, end) == 1;
}

/* ---- loading ---- */

/* With opts->verify: nothing may follow STOP and nothing may be left on the stack. */
static pdckpt_status verify_end(pk_vm *vm) {
    if (pdk_cur_left(&vm->cur))
        return pdk_fail(vm->err, PDCKPT_ERR_FORMAT, vm->in->name, (int64_t)vm->cur.pos,
                        "expected the end of the input after STOP, found %zu more bytes",
                        pdk_cur_left(&vm->cur));
    if (vm->sp || vm->n_marks)
        return pdk_fail(vm->err, PDCKPT_ERR_FORMAT, vm->in->name, (int64_t)vm->op_pos,
                        "STOP: expected an empty stack, found %zu values and %zu marks left",
                        vm->sp, vm->n_marks);
    return PDCKPT_OK;
}

/* One run of the VM; *rerun when the array fast path skipped a value a GET asked for. */
static pdckpt_status load_once(const pdk_input *in, const pdckpt_load_options *o, bool shortcut,
                               const pdk_pickle_consumer *consumer, pdckpt_value **out, bool *rerun,
                               pdckpt_error *err) {
    pk_vm vm;
    pk_vm_init(&vm, in, o, err);
    vm.shortcut = vm.shortcut && shortcut && !consumer;
    vm.consumer = consumer;
    pdckpt_value *root = NULL;
    pdckpt_status st = consumer ? pk_live_walk(&vm, skip_arg) : PDCKPT_OK;
    if (st == PDCKPT_OK) st = pk_vm_run(&vm);
    if (st == PDCKPT_OK && o->verify) st = verify_end(&vm);
    if (st == PDCKPT_OK) st = pk_sanitize(&vm, vm.result, &root);
    pk_vm_drop_values(&vm); /* the finish may then rename tensors the tree alone holds in place */
    if (st == PDCKPT_OK) st = pk_paddle_finish(&vm, &root);
    if (st == PDCKPT_OK && vm.copies) pdk_budget_spent(vm.copies, vm.used); /* what is left */
    *rerun = st != PDCKPT_OK && vm.rerun;
    pk_vm_free(&vm);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(root);
        return st;
    }
    *out = root;
    return PDCKPT_OK;
}

static pdckpt_status load(const pdk_input *in, const pdckpt_load_options *opts,
                          const pdk_pickle_consumer *consumer, pdckpt_value **out,
                          pdckpt_error *err) {
    pdckpt_load_options o = *opts;
    if (o.max_memo == 0) o.max_memo = 1u << 24;
    PDK_TRY(pdk_global_check_allowed(o.allowed_globals, o.n_allowed_globals, in->name, err));
    bool          rerun = false;
    pdckpt_status st = load_once(in, &o, true, consumer, out, &rerun, err);
    if (!rerun) return st;
    if (err) pdk_error_reset(err);
    return load_once(in, &o, false, consumer, out, &rerun, err);
}

pdckpt_status pdk_pickle_load(const pdk_input *in, const pdckpt_load_options *opts,
                              pdckpt_value **out, pdckpt_error *err) {
    return load(in, opts, NULL, out, err);
}

pdckpt_status pdk_pickle_load_consumed(const pdk_input *in, const pdckpt_load_options *opts,
                                       const pdk_pickle_consumer *consumer, pdckpt_value **out,
                                       pdckpt_error *err) {
    return load(in, opts, consumer, out, err);
}
