/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_live.c — the reader's consumer mode (pickle.h, pdk_pickle_load_consumed): a load whose
 * caller takes chosen objects as they are built keeps only what the rest of the run can still
 * reach.  CPython's pickler memoizes every object it writes, so the memo alone would keep every
 * value of the file alive; one walk of the opcodes first (pk_live_walk, no values built) finds
 * the memo entries some GET fetches, and only those are kept.  (The identity map's entries whose
 * value nothing but the map holds any more are swept when the map would grow: pickle_vm.c.)
 */
#include "pickle_vm.h"

#include <string.h>

static bool bit(const uint64_t *bits, size_t words, uint64_t i) {
    return i / 64 < words && (bits[i / 64] >> (i % 64) & 1);
}

/* Room for memo index `i` in both bitmaps. */
static pdckpt_status reserve(pk_vm *vm, uint64_t i) {
    pk_live *l = &vm->live;
    if (i / 64 < l->words) return PDCKPT_OK;
    size_t words = l->words ? l->words * 2 : 64;
    while (words <= i / 64) words *= 2;
    PDK_TRY(pk_charge(vm, 2 * (words - l->words) * sizeof(uint64_t)));
    uint64_t *got = pdk_calloc(vm->a, words, sizeof *got);
    uint64_t *set = pdk_calloc(vm->a, words, sizeof *set);
    if (!got || !set) {
        pdk_free(vm->a, got, words * sizeof *got);
        pdk_free(vm->a, set, words * sizeof *set);
        return pk_nomem(vm);
    }
    if (l->words) {
        memcpy(got, l->got, l->words * sizeof *got);
        memcpy(set, l->set, l->words * sizeof *set);
    }
    pdk_free(vm->a, l->got, l->words * sizeof *got);
    pdk_free(vm->a, l->set, l->words * sizeof *set);
    l->got = got, l->set = set, l->words = words;
    return PDCKPT_OK;
}

/* The memo index of a PUT / GET family opcode whose argument is at `arg` (text: `len` bytes
 * before the newline); false when it has none the VM would accept. */
static bool index_of(uint8_t op, const uint8_t *arg, size_t len, uint64_t *idx) {
    switch (op) {
    case PK_OP_BINPUT:
    case PK_OP_BINGET: *idx = arg[0]; return true;
    case PK_OP_LONG_BINPUT:
    case PK_OP_LONG_BINGET: *idx = pdk_load_u32le(arg); return true;
    default: break;
    }
    if (len == 0 || len > 18) return false;
    *idx = 0;
    for (size_t i = 0; i < len; i++) {
        if (arg[i] < '0' || arg[i] > '9') return false;
        *idx = *idx * 10 + (uint64_t)(arg[i] - '0');
    }
    return true;
}

/* One opcode of the walk: stores (as the VM numbers them) and fetches. */
static pdckpt_status note(pk_vm *vm, uint8_t op, const uint8_t *arg, size_t len, uint64_t *count) {
    uint64_t idx = *count;
    bool     get = op == PK_OP_GET || op == PK_OP_BINGET || op == PK_OP_LONG_BINGET;
    bool     put = op == PK_OP_PUT || op == PK_OP_BINPUT || op == PK_OP_LONG_BINPUT;
    if (!get && !put && op != PK_OP_MEMOIZE) return PDCKPT_OK;
    if (op != PK_OP_MEMOIZE && !index_of(op, arg, len, &idx)) return PDCKPT_OK;
    if (idx >= vm->opts->max_memo) return PDCKPT_OK; /* the run fails there */
    PDK_TRY(reserve(vm, idx));
    uint64_t *bits = get ? vm->live.got : vm->live.set, mask = (uint64_t)1 << (idx % 64);
    if (!get && !(bits[idx / 64] & mask)) ++*count;
    bits[idx / 64] |= mask;
    return PDCKPT_OK;
}

pdckpt_status pk_live_walk(pk_vm *vm, bool (*skip)(pdk_cursor *, const pk_opinfo *)) {
    pdk_cursor cur;
    pdk_cur_init(&cur, vm->in->data, vm->in->len, NULL, NULL);
    uint64_t count = 0;
    uint8_t  op = 0;
    while (op != PK_OP_STOP && pdk_cur_u8(&cur, &op, "opcode") == PDCKPT_OK) {
        const pk_opinfo *info = &pk_opcodes[op];
        const uint8_t   *arg = pdk_cur_ptr(&cur);
        size_t           at = cur.pos;
        if (!info->name || !skip(&cur, info)) break; /* the run reports it */
        PDK_TRY(note(vm, op, arg, cur.pos > at ? cur.pos - at - 1 : 0, &count));
    }
    pk_live *l = &vm->live;
    size_t   kept = 0;
    PDK_TRY(reserve(vm, 0));
    PDK_TRY(pk_charge(vm, l->words * sizeof *l->rank));
    if (!(l->rank = pdk_alloc(vm->a, l->words * sizeof *l->rank))) return pk_nomem(vm);
    for (size_t w = 0; w < l->words; w++) {
        l->rank[w] = (uint32_t)kept;
        kept += (size_t)__builtin_popcountll(l->got[w]);
        l->set[w] = 0; /* the run numbers its stores again */
    }
    PDK_TRY(pk_charge(vm, kept * sizeof *l->kept));
    if (!(l->kept = pdk_calloc(vm->a, kept ? kept : 1, sizeof *l->kept))) return pk_nomem(vm);
    l->n_kept = kept;
    return PDCKPT_OK;
}

pdckpt_status pk_live_slot(pk_vm *vm, uint64_t idx, bool store, pdckpt_value ***slot) {
    pk_live *l = &vm->live;
    *slot = NULL;
    if (store) PDK_TRY(reserve(vm, idx));
    if (store && !bit(l->set, l->words, idx)) {
        l->set[idx / 64] |= (uint64_t)1 << (idx % 64);
        vm->memo_count++;
    }
    if (!bit(l->got, l->words, idx)) return PDCKPT_OK;
    uint64_t below = l->got[idx / 64] & (((uint64_t)1 << (idx % 64)) - 1);
    *slot = &l->kept[l->rank[idx / 64] + (size_t)__builtin_popcountll(below)];
    return PDCKPT_OK;
}

void pk_live_free(pk_vm *vm) {
    pk_live *l = &vm->live;
    for (size_t i = 0; i < l->n_kept; i++)
        if (l->kept[i] != PK_ELIDED) pdckpt_value_free(l->kept[i]);
    pdk_free(vm->a, l->kept, (l->n_kept ? l->n_kept : 1) * sizeof *l->kept);
    pdk_free(vm->a, l->got, l->words * sizeof *l->got);
    pdk_free(vm->a, l->set, l->words * sizeof *l->set);
    pdk_free(vm->a, l->rank, l->words * sizeof *l->rank);
    memset(l, 0, sizeof *l);
}

/* ---- the consumer's calls ---- */

pdckpt_status pk_consumer_failed(pk_vm *vm, pdckpt_status st) {
    pdk_error_set_source(vm->err, vm->in->name);
    if (vm->err->offset < 0) vm->err->offset = (int64_t)vm->op_pos;
    return st;
}

pdckpt_status pk_offer_pair(pk_vm *vm, const pdckpt_value *dict, const pdckpt_value *key,
                            const pdckpt_value *value, bool *taken) {
    *taken = false;
    if (!vm->consumer || !vm->consumer->pair) return PDCKPT_OK;
    pdckpt_status st = vm->consumer->pair(vm->consumer->ctx, dict, key, value, taken, vm->err);
    return st == PDCKPT_OK ? st : pk_consumer_failed(vm, st);
}
