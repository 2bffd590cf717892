/*
 * params_info.c — a dedicated decoder for `.pdiparams.info` / `__variables.info__` (spec
 * binary-and-static-formats.md §3.5): jit.save pickles (protocol 2) a plain dict
 * {variable name: {"structured_name": str, "stop_gradient": bool, "trainable": bool}}.  Only the
 * opcodes such a pickle of dicts, strings, bools and small ints uses are accepted (PROTO, FRAME,
 * EMPTY_DICT, MARK, the string opcodes, NEWTRUE/NEWFALSE/NONE, BININT*, SETITEM(S), memo
 * PUT/GET, STOP); anything else is refused with its offset.  Every length is checked against the
 * bytes left.  Kept separate on purpose: once the general pickle reader (issue 3) is on this
 * branch, the lead can switch pdk_params_info_parse to it.
 */
#include "pdk_program.h"

#include <string.h>

typedef struct info_vm {
    pdk_cursor              cur;
    const pdckpt_allocator *a;
    pdckpt_value          **stack;
    size_t                  sp, cap;
    size_t                 *marks;
    size_t                  n_marks, cap_marks;
    pdckpt_value          **memo;
    size_t                  n_memo, cap_memo;
} info_vm;

static pdckpt_status push(info_vm *vm, pdckpt_value *v) {
    if (!v) return pdk_fail_nomem(vm->cur.err, "info value");
    pdckpt_status st = pdk_grow(vm->a, (void **)&vm->stack, &vm->cap, vm->sp + 1,
                                sizeof *vm->stack, vm->cur.err);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(v);
        return st;
    }
    vm->stack[vm->sp++] = v;
    return PDCKPT_OK;
}

static pdckpt_status pop(info_vm *vm, size_t at, pdckpt_value **out) {
    size_t floor = vm->n_marks ? vm->marks[vm->n_marks - 1] : 0;
    if (vm->sp <= floor)
        return pdk_cur_fail_at(&vm->cur, at, PDCKPT_ERR_FORMAT,
                               "pickle opcode needs a value on the stack, found none");
    *out = vm->stack[--vm->sp];
    return PDCKPT_OK;
}

static pdckpt_status push_string(info_vm *vm, uint64_t len, const char *what) {
    const uint8_t *s;
    PDK_TRY(pdk_cur_bytes(&vm->cur, len, &s, what));
    return push(vm, pdckpt_value_new_string(vm->a, (const char *)s, (size_t)len));
}

static pdckpt_status read_len(info_vm *vm, int width, uint64_t *len) {
    uint8_t b;
    uint32_t u;
    switch (width) {
    case 1: PDK_TRY(pdk_cur_u8(&vm->cur, &b, "pickle length")); *len = b; return PDCKPT_OK;
    case 4: PDK_TRY(pdk_cur_u32le(&vm->cur, &u, "pickle length")); *len = u; return PDCKPT_OK;
    default: return pdk_cur_u64le(&vm->cur, len, "pickle length");
    }
}

static pdckpt_status memo_put(info_vm *vm, uint64_t idx, size_t at) {
    if (vm->sp == 0 || idx > vm->cur.pos) /* a memo can hold at most one entry per input byte */
        return pdk_cur_fail_at(&vm->cur, at, PDCKPT_ERR_FORMAT,
                               "expected a value to memoize at index <= %zu, found index %llu%s",
                               vm->cur.pos, (unsigned long long)idx, vm->sp ? "" : " with none");
    if (idx >= vm->n_memo) {
        size_t old = vm->cap_memo;
        PDK_TRY(pdk_grow(vm->a, (void **)&vm->memo, &vm->cap_memo, (size_t)idx + 1,
                         sizeof *vm->memo, vm->cur.err));
        memset(vm->memo + old, 0, (vm->cap_memo - old) * sizeof *vm->memo);
        vm->n_memo = (size_t)idx + 1;
    }
    pdckpt_value_free(vm->memo[idx]);
    vm->memo[idx] = pdckpt_value_retain(vm->stack[vm->sp - 1]);
    return PDCKPT_OK;
}

static pdckpt_status memo_get(info_vm *vm, uint64_t idx, size_t at) {
    if (idx >= vm->n_memo || !vm->memo[idx])
        return pdk_cur_fail_at(&vm->cur, at, PDCKPT_ERR_FORMAT,
                               "expected a memoized value at index %llu, found none",
                               (unsigned long long)idx);
    return push(vm, pdckpt_value_retain(vm->memo[idx]));
}

/* A dict may only receive a dict that holds no dicts (and is not itself): the .info shape is two
 * levels deep, and the rule makes reference cycles (leaks) impossible. */
static bool nests_too_deep(const pdckpt_value *dict, const pdckpt_value *value) {
    if (pdckpt_value_kind(value) != PDCKPT_KIND_DICT) return false;
    if (value == dict) return true;
    for (size_t i = 0; i < pdckpt_value_len(value); i++)
        if (pdckpt_value_kind(pdckpt_value_at(value, i)) == PDCKPT_KIND_DICT) return true;
    return false;
}

static pdckpt_status set_item(info_vm *vm, pdckpt_value *dict, pdckpt_value *key,
                              pdckpt_value *value, size_t at) {
    if (pdckpt_value_kind(dict) != PDCKPT_KIND_DICT || pdckpt_value_kind(key) != PDCKPT_KIND_STRING ||
        nests_too_deep(dict, value)) {
        pdckpt_status st = pdk_cur_fail_at(
            &vm->cur, at, PDCKPT_ERR_FORMAT,
            "expected a dict of dicts with string keys, found a %s key and a %s value into a %s",
            pdckpt_kind_name(pdckpt_value_kind(key)), pdckpt_kind_name(pdckpt_value_kind(value)),
            pdckpt_kind_name(pdckpt_value_kind(dict)));
        pdckpt_value_free(key);
        pdckpt_value_free(value);
        return st;
    }
    return pdckpt_dict_set_value(dict, key, value, vm->cur.err);
}

static pdckpt_status setitem(info_vm *vm, size_t at) {
    pdckpt_value *key = NULL, *value = NULL;
    PDK_TRY(pop(vm, at, &value));
    pdckpt_status st = pop(vm, at, &key);
    if (st != PDCKPT_OK || vm->sp == 0) {
        pdckpt_value_free(value);
        if (st == PDCKPT_OK) pdckpt_value_free(key);
        return st != PDCKPT_OK ? st : pdk_cur_fail_at(&vm->cur, at, PDCKPT_ERR_FORMAT,
                                                      "SETITEM expects a dict below, found none");
    }
    return set_item(vm, vm->stack[vm->sp - 1], key, value, at);
}

static pdckpt_status setitems(info_vm *vm, size_t at) {
    if (vm->n_marks == 0)
        return pdk_cur_fail_at(&vm->cur, at, PDCKPT_ERR_FORMAT, "SETITEMS without a MARK");
    size_t mark = vm->marks[--vm->n_marks];
    if (mark == 0 || (vm->sp - mark) % 2)
        return pdk_cur_fail_at(&vm->cur, at, PDCKPT_ERR_FORMAT,
                               "SETITEMS expects a dict and key/value pairs, found %zu values",
                               vm->sp - mark);
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = mark; i < vm->sp; i += 2) {
        if (st == PDCKPT_OK) st = set_item(vm, vm->stack[mark - 1], vm->stack[i], vm->stack[i + 1], at);
        else {
            pdckpt_value_free(vm->stack[i]);
            pdckpt_value_free(vm->stack[i + 1]);
        }
    }
    vm->sp = mark;
    return st;
}

static pdckpt_status mark(info_vm *vm) {
    PDK_TRY(pdk_grow(vm->a, (void **)&vm->marks, &vm->cap_marks, vm->n_marks + 1,
                     sizeof *vm->marks, vm->cur.err));
    vm->marks[vm->n_marks++] = vm->sp;
    return PDCKPT_OK;
}

static pdckpt_status small_int(info_vm *vm, int width) {
    uint8_t b[4] = {0};
    const uint8_t *p;
    PDK_TRY(pdk_cur_bytes(&vm->cur, (uint64_t)width, &p, "pickle int"));
    memcpy(b, p, (size_t)width);
    int64_t v = width == 4 ? (int64_t)(int32_t)pdk_load_u32le(b) : (int64_t)pdk_load_u32le(b);
    return push(vm, pdckpt_value_new_int(vm->a, v));
}

/* One opcode; *stop is set at STOP. */
static pdckpt_status step(info_vm *vm, bool *stop) {
    size_t at = vm->cur.pos;
    uint8_t op;
    uint64_t n;
    PDK_TRY(pdk_cur_u8(&vm->cur, &op, "pickle opcode"));
    switch (op) {
    case 0x80: return pdk_cur_skip(&vm->cur, 1, "protocol number");
    case 0x95: return pdk_cur_skip(&vm->cur, 8, "frame length");
    case '}': return push(vm, pdckpt_value_new_container(vm->a, PDCKPT_KIND_DICT));
    case '(': return mark(vm);
    case 'X': PDK_TRY(read_len(vm, 4, &n)); return push_string(vm, n, "string");
    case 0x8c: case 'U': PDK_TRY(read_len(vm, 1, &n)); return push_string(vm, n, "string");
    case 0x8d: PDK_TRY(read_len(vm, 8, &n)); return push_string(vm, n, "string");
    case 'T': PDK_TRY(read_len(vm, 4, &n)); return push_string(vm, n, "string");
    case 0x88: return push(vm, pdckpt_value_new_bool(vm->a, true));
    case 0x89: return push(vm, pdckpt_value_new_bool(vm->a, false));
    case 'N': return push(vm, pdckpt_value_new_none(vm->a));
    case 'K': return small_int(vm, 1);
    case 'M': return small_int(vm, 2);
    case 'J': return small_int(vm, 4);
    case 's': return setitem(vm, at);
    case 'u': return setitems(vm, at);
    case 'q': PDK_TRY(read_len(vm, 1, &n)); return memo_put(vm, n, at);
    case 'r': PDK_TRY(read_len(vm, 4, &n)); return memo_put(vm, n, at);
    case 0x94: return memo_put(vm, vm->n_memo, at);
    case 'h': PDK_TRY(read_len(vm, 1, &n)); return memo_get(vm, n, at);
    case 'j': PDK_TRY(read_len(vm, 4, &n)); return memo_get(vm, n, at);
    case '.': *stop = true; return PDCKPT_OK;
    default:
        return pdk_cur_fail_at(&vm->cur, at, PDCKPT_ERR_UNSUPPORTED,
                               "expected a .pdiparams.info pickle (plain dicts of strings and "
                               "booleans), found pickle opcode 0x%02x",
                               op);
    }
}

static void vm_free(info_vm *vm) {
    for (size_t i = 0; i < vm->sp; i++) pdckpt_value_free(vm->stack[i]);
    for (size_t i = 0; i < vm->n_memo; i++) pdckpt_value_free(vm->memo[i]);
    pdk_free(vm->a, vm->stack, vm->cap * sizeof *vm->stack);
    pdk_free(vm->a, vm->marks, vm->cap_marks * sizeof *vm->marks);
    pdk_free(vm->a, vm->memo, vm->cap_memo * sizeof *vm->memo);
}

static pdckpt_status finish(info_vm *vm, pdckpt_value **out) {
    if (vm->sp != 1 || pdckpt_value_kind(vm->stack[0]) != PDCKPT_KIND_DICT)
        return pdk_cur_fail(&vm->cur, "expected STOP with one dict on the stack, found %zu values",
                            vm->sp);
    if (pdk_cur_left(&vm->cur) > 0)
        return pdk_cur_fail(&vm->cur, "expected end of file after STOP, found %zu more bytes",
                            pdk_cur_left(&vm->cur));
    *out = vm->stack[--vm->sp];
    return PDCKPT_OK;
}

pdckpt_status pdk_params_info_parse(const pdk_input *in, const pdckpt_load_options *opts,
                                    pdckpt_value **out, pdckpt_error *err) {
    info_vm vm;
    memset(&vm, 0, sizeof vm);
    vm.a = opts->allocator;
    pdk_cur_init(&vm.cur, in->data, in->len, in->name, err);
    if (in->len < 2 || in->data[0] != 0x80)
        return pdk_cur_fail(&vm.cur, "expected a pickle (0x80 PROTO), found %s",
                            in->len ? "other bytes" : "an empty file");
    bool stop = false;
    pdckpt_status st = PDCKPT_OK;
    while (st == PDCKPT_OK && !stop) st = step(&vm, &stop);
    if (st == PDCKPT_OK) st = finish(&vm, out);
    vm_free(&vm);
    return st;
}
