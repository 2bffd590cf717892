/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_read.c — the pickle format's load and sniff (spec pickle-and-distributed-formats.md
 * §1.6-1.11): runs the bounded VM (pickle_vm.c) to STOP, turns the result into final values and
 * applies Paddle's load conventions (pickle_paddle.c).  Sniffing walks opcodes without building
 * anything: protocol 2-5 headers with a plausible opcode stream are certain; protocol 0/1 streams
 * only count when they run cleanly to a STOP that ends the input.
 */
#include "pickle_names.h"
#include "pickle_vm.h"

#include <string.h>

#define SNIFF_OPS      256
#define SNIFF_TEXT_MAX ((size_t)64 << 20)

/* ---- sniffing: opcode argument sizes, no values built ---- */

enum { ARG_NONE, ARG_FIXED, ARG_LEN, ARG_LINE, ARG_LINES2, ARG_BAD };

static int arg_kind(uint8_t op, size_t *size) {
    static const char    fixed_ops[] = "JKMGhjqr";
    static const uint8_t fixed_len[] = {4, 1, 2, 8, 1, 4, 1, 4};
    const char          *f = op ? memchr(fixed_ops, op, sizeof fixed_ops - 1) : NULL;
    if (f) return *size = fixed_len[f - fixed_ops], ARG_FIXED;
    switch (op) {
    case 0x80:
    case 0x82: return *size = 1, ARG_FIXED;
    case 0x83: return *size = 2, ARG_FIXED;
    case 0x84: return *size = 4, ARG_FIXED;
    case 0x95: return *size = 8, ARG_FIXED;
    case 'U':
    case 'C':
    case 0x8c:
    case 0x8a: return *size = 1, ARG_LEN;
    case 'T':
    case 'X':
    case 'B':
    case 0x8b: return *size = 4, ARG_LEN;
    case 0x8d:
    case 0x8e:
    case 0x96: return *size = 8, ARG_LEN;
    case 'F':
    case 'I':
    case 'L':
    case 'P':
    case 'S':
    case 'V':
    case 'g':
    case 'p': return ARG_LINE;
    case 'c':
    case 'i': return ARG_LINES2;
    default: return strcmp(pk_op_name(op), "?") == 0 ? ARG_BAD : ARG_NONE;
    }
}

/* Skips one opcode's argument; false when it runs past the end. */
static bool skip_arg(const uint8_t *p, size_t len, size_t *pos, int kind, size_t size) {
    if (kind == ARG_LINE || kind == ARG_LINES2) {
        for (int lines = kind == ARG_LINE ? 1 : 2; lines > 0; lines--) {
            const uint8_t *nl = memchr(p + *pos, '\n', len - *pos);
            if (!nl) return false;
            *pos = (size_t)(nl - p) + 1;
        }
        return true;
    }
    if (size > len - *pos) return false;
    uint64_t n = 0;
    if (kind == ARG_LEN)
        for (size_t i = 0; i < size; i++) n |= (uint64_t)p[*pos + i] << (8 * i);
    *pos += size;
    if (n > len - *pos) return false;
    *pos += (size_t)n;
    return true;
}

/* Walks at most `max_ops` opcodes.  Returns 1 at a STOP, 0 when the input or the op budget ends
 * first (also inside an argument: a truncated pickle is still a pickle, and its load says where it
 * ends), -1 at an unknown opcode. */
static int skim(const uint8_t *p, size_t len, size_t pos, size_t max_ops, size_t *end) {
    for (size_t n = 0; n < max_ops && pos < len; n++) {
        uint8_t op = p[pos++];
        size_t  size = 0;
        int     kind = arg_kind(op, &size);
        if (kind == ARG_BAD) return -1;
        if (!skip_arg(p, len, &pos, kind, size)) return 0;
        if (op == '.') {
            *end = pos;
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
    if (vm->pos != vm->len)
        return pdk_fail(vm->err, PDCKPT_ERR_FORMAT, vm->in->name, (int64_t)vm->pos,
                        "expected the end of the input after STOP, found %zu more bytes",
                        vm->len - vm->pos);
    if (vm->sp || vm->n_marks)
        return pdk_fail(vm->err, PDCKPT_ERR_FORMAT, vm->in->name, (int64_t)vm->op_pos,
                        "STOP: expected an empty stack, found %zu values and %zu marks left",
                        vm->sp, vm->n_marks);
    return PDCKPT_OK;
}

pdckpt_status pdk_pickle_load(const pdk_input *in, const pdckpt_load_options *opts,
                              pdckpt_value **out, pdckpt_error *err) {
    pdckpt_load_options o = *opts;
    if (o.max_memo == 0) o.max_memo = 1u << 24;
    PDK_TRY(pdk_global_check_allowed(o.allowed_globals, o.n_allowed_globals, in->name, err));
    pk_vm vm;
    pk_vm_init(&vm, in, &o, err);
    pdckpt_value *root = NULL;
    pdckpt_status st = pk_vm_run(&vm);
    if (st == PDCKPT_OK && o.verify) st = verify_end(&vm);
    if (st == PDCKPT_OK) st = pk_sanitize(&vm, vm.result, &root);
    if (st == PDCKPT_OK) st = pk_paddle_finish(&vm, &root);
    pk_vm_free(&vm);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(root);
        return st;
    }
    *out = root;
    return PDCKPT_OK;
}
