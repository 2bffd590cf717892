/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_vm.c — the machine under the pickle reader (spec pickle-and-distributed-formats.md
 * §1.10-1.11): opcode names, the value stack with CPython's mark fence, the memo, the identity map
 * that tracks containers (depth, expanded size, frozen-after-placement), the allocation budget,
 * placement (borrowed strings and bytes become owned only where they land) and the run loop.
 * Nothing read from the input is ever executed.
 */
#include "pickle_vm.h"
#include "pickle_names.h"

#include <stdio.h>
#include <string.h>

#define PK_MAX_DEPTH_CAP 10000u /* deeper trees would overflow recursive walks/frees */

/* ---- errors, budget, argument bytes ---- */

pdckpt_status pk_fail(pk_vm *vm, pdckpt_status status, const char *fmt, ...) {
    char    msg[400]; /* names in it escaped and cut in the middle: its tail stays */
    va_list ap;
    va_start(ap, fmt);
    pdk_format_bounded(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pdk_fail(vm->err, status, vm->in->name, (int64_t)vm->op_pos, "%s: %s",
                    pk_op_name(vm->op), msg);
}

pdckpt_status pk_nomem(pk_vm *vm) {
    pdckpt_status st = pdk_fail_nomem(vm->err, "pickle value");
    pdk_error_set_source(vm->err, vm->in->name);
    return st;
}

pdckpt_status pk_charge(pk_vm *vm, uint64_t bytes) {
    vm->used = bytes > UINT64_MAX - vm->used ? UINT64_MAX : vm->used + bytes;
    if (vm->used <= vm->budget) return PDCKPT_OK;
    return pk_fail(vm, PDCKPT_ERR_LIMIT,
                   "loading needs more than %llu bytes of memory (max_alloc_bytes; the default "
                   "is 4 x the input size + 64 MiB)",
                   (unsigned long long)vm->budget);
}

pdckpt_status pk_short(pk_vm *vm, pdckpt_status status) {
    pdk_error_suffix(vm->err, "%s", PK_TRUNCATED_HINT);
    return status;
}

/* Every input byte is taken through the cursor; the checks come first so the message can name
 * the opcode (the cursor's own message would not). */
pdckpt_status pk_read(pk_vm *vm, uint64_t n, const uint8_t **out, const char *what) {
    size_t left = pdk_cur_left(&vm->cur);
    if (n > left)
        return pk_short(vm, pk_fail(vm, PDCKPT_ERR_FORMAT,
                                    "expected %llu bytes of %s, found %zu before the end",
                                    (unsigned long long)n, what, left));
    return pdk_cur_bytes(&vm->cur, n, out, what);
}

pdckpt_status pk_readline(pk_vm *vm, const uint8_t **out, size_t *len) {
    const uint8_t *nl = memchr(pdk_cur_ptr(&vm->cur), '\n', pdk_cur_left(&vm->cur));
    if (!nl)
        return pk_short(
            vm, pk_fail(vm, PDCKPT_ERR_FORMAT, "expected a line ending in '\\n', found the end"));
    *len = (size_t)(nl - pdk_cur_ptr(&vm->cur));
    PDK_TRY(pdk_cur_bytes(&vm->cur, *len, out, "line"));
    return pdk_cur_skip(&vm->cur, 1, "newline");
}

/* ---- identity map ---- */

static size_t slot_of(const pk_map *m, const pdckpt_value *v) {
    uint64_t h = (uint64_t)(uintptr_t)v * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & (m->cap - 1);
}

pk_info *pk_info_of(pk_vm *vm, const pdckpt_value *v) {
    pk_map *m = &vm->map;
    if (!v || m->cap == 0) return NULL;
    for (size_t i = slot_of(m, v);; i = (i + 1) & (m->cap - 1)) {
        if (m->slots[i].key == v) return &m->slots[i];
        if (!m->slots[i].key) return NULL;
    }
}

static pdckpt_status map_rehash(pk_vm *vm, size_t cap) {
    pk_map *m = &vm->map;
    PDK_TRY(pk_charge(vm, cap > m->cap ? (cap - m->cap) * sizeof(pk_info) : 0));
    pk_info *slots = pdk_calloc(vm->a, cap, sizeof *slots);
    if (!slots) return pk_nomem(vm);
    pk_map bigger = {slots, cap, m->len};
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key) continue;
        size_t j = slot_of(&bigger, m->slots[i].key);
        while (slots[j].key) j = (j + 1) & (cap - 1);
        slots[j] = m->slots[i];
    }
    pdk_free(vm->a, m->slots, m->cap * sizeof *m->slots);
    *m = bigger;
    return PDCKPT_OK;
}

/* Empties slot i of the linear-probing table, moving back the entries after it in its cluster
 * that would no longer be found (no tombstones, no new table). */
static void map_delete(pk_map *m, size_t i) {
    size_t mask = m->cap - 1;
    for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t home = slot_of(m, m->slots[j].key);
        bool   stays = i < j ? home > i && home <= j : home > i || home <= j;
        if (!stays) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i] = (pk_info){0};
    m->len--;
}

/* Consumer mode (pickle_live.c): the entries whose value only the map holds are dead to the run
 * -- no stack slot, kept memo entry or container reaches them -- and go, with what they
 * forward to.  Freeing one may leave its children held by the map alone: a second pass takes
 * most of them, the rest goes at the next sweep. */
static void map_sweep(pk_map *m) {
    for (int pass = 0; pass < 2; pass++) {
        size_t before = m->len;
        for (size_t i = 0; i < m->cap; i++)
            while (m->slots[i].key && pdk_value_refs(m->slots[i].key) == 1) {
                pdckpt_value *key = m->slots[i].key, *fwd = m->slots[i].fwd;
                map_delete(m, i);
                pdckpt_value_free(fwd);
                pdckpt_value_free(key);
            }
        if (m->len == before) break;
    }
}

/* A full map doubles; in consumer mode its dead entries go first, and it grows only when the
 * live ones still fill a quarter of it (so each entry is swept a bounded number of times). */
static pdckpt_status map_grow(pk_vm *vm) {
    pk_map *m = &vm->map;
    if (vm->consumer && m->cap) map_sweep(m);
    if (m->cap && (m->len + 1) * 4 <= m->cap) return PDCKPT_OK;
    return map_rehash(vm, m->cap ? m->cap * 2 : 64);
}

pdckpt_status pk_track(pk_vm *vm, pdckpt_value *v, uint32_t flags, pk_info **out) {
    pk_map *m = &vm->map;
    if ((m->len + 1) * 2 > m->cap) PDK_TRY(map_grow(vm));
    size_t i = slot_of(m, v);
    while (m->slots[i].key && m->slots[i].key != v) i = (i + 1) & (m->cap - 1);
    pk_info *info = &m->slots[i];
    if (!info->key) {
        pdckpt_kind k = pdckpt_value_kind(v);
        bool nests = k == PDCKPT_KIND_LIST || k == PDCKPT_KIND_TUPLE || k == PDCKPT_KIND_DICT ||
                     k == PDCKPT_KIND_SET || k == PDCKPT_KIND_OBJECT;
        info->key = pdckpt_value_retain(v);
        info->depth = nests ? 1 : 0;
        info->nodes = 1;
        m->len++;
    }
    info->flags |= flags;
    if (out) *out = info;
    return PDCKPT_OK;
}

pdckpt_status pk_new_container(pk_vm *vm, pdckpt_kind kind, pdckpt_value **out) {
    PDK_TRY(pk_charge(vm, 64));
    pdckpt_value *v = pdckpt_value_new_container(vm->a, kind);
    if (!v) return pk_nomem(vm);
    pdckpt_status st = pk_track(vm, v, 0, NULL);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(v);
        return st;
    }
    *out = v;
    return PDCKPT_OK;
}

bool pk_is_py2(pk_vm *vm, const pdckpt_value *v) {
    if (!vm->n_py2 || !pdk_value_is_borrowed(v, NULL)) return false;
    pk_info *info = pk_info_of(vm, v);
    return info && (info->flags & PK_PY2);
}

/* ---- stack ---- */

static size_t fence(const pk_vm *vm) {
    return vm->n_marks ? vm->marks[vm->n_marks - 1] : 0;
}

/* Replaces an object that BUILD turned into something else (an ndarray into a tensor). */
static void resolve(pk_vm *vm, pdckpt_value **slot) {
    if (pdckpt_value_kind(*slot) != PDCKPT_KIND_OBJECT) return;
    pk_info *info = pk_info_of(vm, *slot);
    if (!info || !info->fwd) return;
    pdckpt_value_free(*slot);
    *slot = pdckpt_value_retain(info->fwd);
}

pdckpt_status pk_push(pk_vm *vm, pdckpt_value *v) {
    if (!v) return pk_nomem(vm);
    if (vm->sp == vm->stack_cap) {
        size_t         cap = vm->stack_cap ? vm->stack_cap * 2 : 256;
        pdckpt_status  st = pk_charge(vm, (cap - vm->stack_cap) * sizeof *vm->stack);
        pdckpt_value **grown = st == PDCKPT_OK ? pdk_alloc(vm->a, cap * sizeof *grown) : NULL;
        if (!grown) {
            pdckpt_value_free(v);
            return st != PDCKPT_OK ? st : pk_nomem(vm);
        }
        if (vm->sp) memcpy(grown, vm->stack, vm->sp * sizeof *grown);
        pdk_free(vm->a, vm->stack, vm->stack_cap * sizeof *vm->stack);
        vm->stack = grown;
        vm->stack_cap = cap;
    }
    vm->stack[vm->sp++] = v;
    pdk_value_note_at(v, (int64_t)vm->op_pos); /* a tensor's or object's first: what made it */
    return PDCKPT_OK;
}

static pdckpt_status underflow(pk_vm *vm) {
    return pk_fail(vm, PDCKPT_ERR_FORMAT, "expected a value on the stack%s, found none",
                   vm->n_marks ? " above the last MARK" : "");
}

pdckpt_status pk_pop(pk_vm *vm, pdckpt_value **out) {
    if (vm->sp <= fence(vm)) return underflow(vm);
    resolve(vm, &vm->stack[vm->sp - 1]);
    *out = vm->stack[--vm->sp];
    return PDCKPT_OK;
}

pdckpt_status pk_peek(pk_vm *vm, size_t depth, pdckpt_value **out) {
    if (vm->sp < fence(vm) + depth + 1) return underflow(vm);
    resolve(vm, &vm->stack[vm->sp - 1 - depth]);
    *out = vm->stack[vm->sp - 1 - depth];
    return PDCKPT_OK;
}

pdckpt_status pk_pop_mark(pk_vm *vm, size_t *start) {
    if (vm->n_marks == 0)
        return pk_fail(vm, PDCKPT_ERR_FORMAT, "expected a MARK on the stack, found none");
    *start = vm->marks[--vm->n_marks];
    for (size_t i = *start; i < vm->sp; i++) resolve(vm, &vm->stack[i]);
    return PDCKPT_OK;
}

void pk_drop_to(pk_vm *vm, size_t start) {
    while (vm->sp > start) pdckpt_value_free(vm->stack[--vm->sp]);
}

static pdckpt_status push_mark(pk_vm *vm) {
    if (vm->n_marks == vm->marks_cap) {
        size_t cap = vm->marks_cap ? vm->marks_cap * 2 : 64;
        PDK_TRY(pk_charge(vm, (cap - vm->marks_cap) * sizeof *vm->marks));
        size_t *grown = pdk_alloc(vm->a, cap * sizeof *grown);
        if (!grown) return pk_nomem(vm);
        if (vm->n_marks) memcpy(grown, vm->marks, vm->n_marks * sizeof *grown);
        pdk_free(vm->a, vm->marks, vm->marks_cap * sizeof *vm->marks);
        vm->marks = grown;
        vm->marks_cap = cap;
    }
    vm->marks[vm->n_marks++] = vm->sp;
    return PDCKPT_OK;
}

/* ---- placement ---- */

static bool mutable_kind(const pdckpt_value *v) {
    pdckpt_kind k = pdckpt_value_kind(v);
    return k == PDCKPT_KIND_LIST || k == PDCKPT_KIND_DICT || k == PDCKPT_KIND_SET ||
           k == PDCKPT_KIND_OBJECT;
}

pdckpt_status pk_latin1_string(pk_vm *vm, const uint8_t *b, size_t n, pdckpt_value **out) {
    size_t high = 0;
    for (size_t i = 0; i < n; i++) high += b[i] >= 0x80;
    PDK_TRY(pk_charge(vm, 2 * (n + high) + 64));
    char *utf8 = pdk_alloc(vm->a, n + high + 1);
    if (!utf8) return pk_nomem(vm);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (b[i] < 0x80) {
            utf8[j++] = (char)b[i];
        } else {
            utf8[j++] = (char)(0xC0 | (b[i] >> 6));
            utf8[j++] = (char)(0x80 | (b[i] & 0x3F));
        }
    }
    *out = pdckpt_value_new_string(vm->a, utf8, j);
    pdk_free(vm->a, utf8, n + high + 1);
    return *out ? PDCKPT_OK : pk_nomem(vm);
}

pdckpt_status pk_own(pk_vm *vm, pdckpt_value *v) {
    size_t n = 0;
    if (!pdk_value_is_borrowed(v, NULL)) return PDCKPT_OK;
    if (!pdckpt_value_get_bytes(v, &n)) pdckpt_value_get_string(v, &n);
    PDK_TRY(pk_charge(vm, n + 64));
    return pdk_value_own(v) ? PDCKPT_OK : pk_nomem(vm);
}

static pdckpt_status rebuild_tuple(pk_vm *vm, pdckpt_value *t, pdckpt_value **out) {
    pdckpt_value *nt = NULL;
    PDK_TRY(pk_new_container(vm, PDCKPT_KIND_TUPLE, &nt));
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 0; i < pdckpt_value_len(t) && st == PDCKPT_OK; i++) {
        pdckpt_value *clean = NULL, *placed = NULL;
        st = pk_sanitize(vm, pdckpt_value_at_mut(t, i), &clean);
        if (st == PDCKPT_OK) st = pk_adopt(vm, nt, clean, &placed);
        pdckpt_value_free(clean);
        if (st == PDCKPT_OK) st = pdckpt_value_append(nt, placed, vm->err);
    }
    if (st != PDCKPT_OK) {
        pdckpt_value_free(nt);
        return st;
    }
    *out = nt;
    return PDCKPT_OK;
}

pdckpt_status pk_sanitize(pk_vm *vm, pdckpt_value *v, pdckpt_value **out) {
    if (pdk_value_is_borrowed(v, NULL)) {
        if (pk_is_py2(vm, v)) {
            size_t         n = 0;
            const uint8_t *b = pdckpt_value_get_bytes(v, &n);
            return pk_latin1_string(vm, b, n, out);
        }
        PDK_TRY(pk_own(vm, v));
    } else if (pdckpt_value_kind(v) == PDCKPT_KIND_TUPLE) {
        pk_info *info = pk_info_of(vm, v);
        if (info && (info->flags & PK_DIRTY)) return rebuild_tuple(vm, v, out);
    }
    *out = pdckpt_value_retain(v);
    return PDCKPT_OK;
}

/* What a value adds to its parent's expanded size. */
typedef struct pk_growth {
    uint32_t depth;
    uint64_t nodes, data;
} pk_growth;

static uint64_t add_sat(uint64_t a, uint64_t b) {
    return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

/* Bytes of an array, str or bytes leaf. */
static uint64_t leaf_data(const pdckpt_value *v) {
    size_t             n = 0;
    pdckpt_tensor_view tv;
    switch (pdckpt_value_kind(v)) {
    case PDCKPT_KIND_TENSOR: return pdckpt_tensor_get_memory(v, &tv, NULL) ? tv.n_bytes : 0;
    case PDCKPT_KIND_STRING: pdckpt_value_get_string(v, &n); return n;
    case PDCKPT_KIND_BYTES: pdckpt_value_get_bytes(v, &n); return n;
    default: return 0;
    }
}

static pk_growth growth_of(pk_vm *vm, const pdckpt_value *v) {
    pk_info  *i = pk_info_of(vm, v);
    pk_growth g = {i ? i->depth : 0, i ? i->nodes : 1, i && i->depth ? i->data : leaf_data(v)};
    return g;
}

uint64_t pk_data_of(pk_vm *vm, const pdckpt_value *v) {
    pk_info *i = pk_info_of(vm, v);
    return i ? i->data : 0;
}

/* A tracked value's depth and expanded size against max_depth and the budget. */
static pdckpt_status check_limits(pk_vm *vm, const pk_info *pi) {
    if (pi->depth > vm->max_depth)
        return pk_fail(vm, PDCKPT_ERR_LIMIT,
                       "expected nesting of at most %u levels (max_depth), "
                       "found deeper",
                       vm->max_depth);
    if (pi->nodes > vm->max_nodes)
        return pk_fail(vm, PDCKPT_ERR_LIMIT,
                       "expected at most %llu values once shared (memo) references are expanded "
                       "(max_alloc_bytes / 16), found more",
                       (unsigned long long)vm->max_nodes);
    if (pi->data > vm->budget)
        return pk_fail(vm, PDCKPT_ERR_LIMIT,
                       "expected at most %llu bytes of arrays, str and bytes once shared (memo) "
                       "references are expanded (max_alloc_bytes), found more",
                       (unsigned long long)vm->budget);
    return PDCKPT_OK;
}

pdckpt_status pk_track_built(pk_vm *vm, pdckpt_value *v, uint32_t depth, uint64_t nodes,
                             uint64_t data) {
    pk_info *info = NULL;
    PDK_TRY(pk_track(vm, v, 0, &info));
    info->depth = depth;
    info->nodes = nodes;
    info->data = data;
    return check_limits(vm, info);
}

/* Updates the parent's depth and expanded size for a new child.  A value referenced N times
 * (memo) counts N times: that is what every consumer of the tree walks, lists or converts. */
static pdckpt_status grow_parent(pk_vm *vm, pdckpt_value *parent, pk_growth g,
                                 uint32_t child_flags) {
    pk_info *pi = pk_info_of(vm, parent);
    if (!pi) return PDCKPT_OK;
    if (pdckpt_value_kind(parent) == PDCKPT_KIND_TUPLE) pi->flags |= child_flags;
    if (g.depth + 1 > pi->depth) pi->depth = g.depth + 1;
    pi->nodes = add_sat(pi->nodes, g.nodes);
    pi->data = add_sat(pi->data, g.data);
    return check_limits(vm, pi);
}

pdckpt_status pk_adopt(pk_vm *vm, pdckpt_value *parent, pdckpt_value *child, pdckpt_value **out) {
    pdckpt_value *c = NULL;
    PDK_TRY(pk_check_placeable(vm, child));
    if (pdckpt_value_kind(parent) == PDCKPT_KIND_TUPLE)
        c = pdckpt_value_retain(child);
    else
        PDK_TRY(pk_sanitize(vm, child, &c));
    pdckpt_status st = pk_charge(vm, 16);
    pk_info      *ci = pk_info_of(vm, c);
    pdckpt_kind   k = pdckpt_value_kind(c);
    /* What a tuple inherits from its items: borrowed values inside, and unhashable items. */
    uint32_t up =
        (pdk_value_is_borrowed(c, NULL) || (ci && (ci->flags & PK_DIRTY)) ? PK_DIRTY : 0) |
        (k == PDCKPT_KIND_LIST || k == PDCKPT_KIND_DICT || k == PDCKPT_KIND_SET ||
                 k == PDCKPT_KIND_TENSOR || (ci && (ci->flags & PK_UNHASHABLE))
             ? PK_UNHASHABLE
             : 0);
    if (ci && mutable_kind(c)) ci->flags |= PK_PLACED;
    if (st == PDCKPT_OK) st = grow_parent(vm, parent, growth_of(vm, c), up);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(c);
        return st;
    }
    *out = c;
    return PDCKPT_OK;
}

pdckpt_status pk_make_object(pk_vm *vm, pdckpt_object_kind kind, const char *module,
                             const char *name, pdckpt_value *args, pdckpt_value **out) {
    pdckpt_value *a = NULL;
    if (args) PDK_TRY(pk_sanitize(vm, args, &a));
    pk_info  *ai = pk_info_of(vm, a);
    pk_growth g = growth_of(vm, a);
    if (ai && mutable_kind(a)) ai->flags |= PK_PLACED;
    pdckpt_status st = pk_charge(vm, 128 + strlen(module) + strlen(name));
    if (st != PDCKPT_OK) {
        pdckpt_value_free(a);
        return st;
    }
    pdckpt_value *obj = pdckpt_value_new_object(vm->a, kind, module, name, a, NULL);
    if (!obj) return pk_nomem(vm);
    st = pk_track(vm, obj, 0, NULL);
    if (st == PDCKPT_OK && a) st = grow_parent(vm, obj, g, 0);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(obj);
        return st;
    }
    *out = obj;
    return PDCKPT_OK;
}

pdckpt_status pk_object_grew(pk_vm *vm, pdckpt_value *obj, const pdckpt_value *part,
                             uint64_t added_nodes, uint64_t added_data) {
    pk_info  *pi = pk_info_of(vm, part);
    pk_growth g = {pi ? pi->depth : 0, added_nodes, added_data};
    return grow_parent(vm, obj, g, 0);
}

pdckpt_status pk_check_mutable(pk_vm *vm, pdckpt_value *target, const char *what) {
    pk_info *info = pk_info_of(vm, target);
    if (!info || !(info->flags & PK_PLACED)) return PDCKPT_OK;
    pdckpt_kind k = pdckpt_value_kind(target);
    return pk_fail(vm, PDCKPT_ERR_UNSUPPORTED,
                   "cannot %s %s %s that is already inside another value (a self-referencing "
                   "pickle; pdckpt refuses reference cycles)",
                   what, k == PDCKPT_KIND_OBJECT ? "an" : "a", pdckpt_kind_name(k));
}

pdckpt_status pk_forward(pk_vm *vm, pdckpt_value *from, pdckpt_value *to) {
    pk_info *info = NULL;
    PDK_TRY(pk_track(vm, from, 0, &info));
    pdckpt_value_free(info->fwd);
    info->fwd = pdckpt_value_retain(to);
    return PDCKPT_OK;
}

bool pk_text(pk_vm *vm, const pdckpt_value *v, const char **s, size_t *len) {
    (void)vm;
    *s = pdckpt_value_get_string(v, len);
    return *s != NULL;
}

bool pk_bytes(pk_vm *vm, const pdckpt_value *v, const uint8_t **b, size_t *len) {
    (void)vm;
    *b = pdckpt_value_get_bytes(v, len);
    return *b != NULL;
}

bool pk_is_string(const pdckpt_value *v, const char *s) {
    return pdk_value_is_string(v, s, strlen(s));
}

/* ---- names and text ---- */

bool pk_is_global(const pdckpt_value *v, const char *module, const char *name) {
    return pdckpt_value_kind(v) == PDCKPT_KIND_OBJECT &&
           pdckpt_object_kind_of(v) == PDCKPT_OBJECT_GLOBAL &&
           strcmp(pdckpt_object_module(v), module) == 0 && strcmp(pdckpt_object_name(v), name) == 0;
}

bool pk_is_builtin(const pdckpt_value *global, const char *name) {
    return pk_is_global(global, "builtins", name); /* __builtin__ is renamed when read */
}

/* The role the allowlist gives a global object (names are already in Python 3 spelling). */
pdk_global_role pk_role_of(const pk_vm *vm, const pdckpt_value *g) {
    return pdk_global_role_of(pdckpt_object_module(g), pdckpt_object_name(g),
                              vm->opts->allowed_globals, vm->opts->n_allowed_globals);
}

static bool is_global(const pdckpt_value *v) {
    return pdckpt_value_kind(v) == PDCKPT_KIND_OBJECT &&
           pdckpt_object_kind_of(v) == PDCKPT_OBJECT_GLOBAL;
}

pdckpt_status pk_check_placeable(pk_vm *vm, const pdckpt_value *v) {
    if (!is_global(v) || pk_role_of(vm, v) != PDK_GLOBAL_FORM) return PDCKPT_OK;
    return pk_fail(vm, PDCKPT_ERR_UNSUPPORTED,
                   "refusing %s.%s as a value: pdckpt accepts it only as the callable of Paddle's "
                   "DenseTensor form %s('data', {'data': array})",
                   pdckpt_object_module(v), pdckpt_object_name(v), pdckpt_object_name(v));
}

#define PK_HIGH 0x8080808080808080ull
#define PK_LOW7 0x7F7F7F7F7F7F7F7Full

/* The high bit of each byte of `y` that is zero (exact: no false positives). */
static uint64_t zero_bytes(uint64_t y) {
    return ~(((y & PK_LOW7) + PK_LOW7) | y) & PK_HIGH;
}

size_t pk_latin1_span(const uint8_t *s, size_t n) {
    size_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* Eight bytes at a time: every byte ASCII, a lead 0xC2/0xC3, or a continuation 10xxxxxx, each
     * continuation right after a lead and each lead right before one (a lead in a word's last
     * byte is carried into the next word's first). */
    uint64_t carry = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t high = w & PK_HIGH;
        if (!high && !carry) continue;
        uint64_t lead = zero_bytes((w ^ 0xC2C2C2C2C2C2C2C2ull) & 0xFEFEFEFEFEFEFEFEull);
        uint64_t cont = high & ~(w << 1);
        if (cont != ((lead << 8) | carry) || (high & ~(lead | cont))) break;
        carry = (lead >> 56) & 0x80;
    }
    if (carry) i--; /* back to the lead whose continuation was not (yet) seen */
#endif
    while (i < n) {
        if (s[i] < 0x80)
            i++;
        else if ((s[i] & 0xFE) == 0xC2 && i + 1 < n && (s[i + 1] & 0xC0) == 0x80)
            i += 2;
        else
            break;
    }
    return i;
}

/* The length of the valid UTF-8 character at `s` (surrogates pass, as CPython's pickle lets
 * them), or 0. */
static size_t utf8_char(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    size_t  len = c < 0x80             ? 1
                  : (c & 0xE0) == 0xC0 ? 2
                  : (c & 0xF0) == 0xE0 ? 3
                  : (c & 0xF8) == 0xF0 ? 4
                                       : 0;
    if (len == 0 || len > n) return 0;
    uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1Fu : len == 3 ? c & 0x0Fu : c & 0x07u;
    size_t   k = 1;
    for (; k < len && (s[k] & 0xC0) == 0x80; k++) cp = cp << 6 | (s[k] & 0x3Fu);
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    return k < len || cp < min_cp[len] || cp > 0x10FFFF ? 0 : len;
}

bool pk_utf8_valid(const uint8_t *s, size_t n, size_t *bad_at) {
    size_t i = 0;
    while (i < n) {
        i += pk_latin1_span(s + i, n - i); /* names, and protocol 2's bytes as text: fast */
        size_t len = i < n ? utf8_char(s + i, n - i) : 0;
        if (len == 0) break;
        i += len;
    }
    *bad_at = i;
    return i == n;
}

/* ---- memo ---- */

const char pk_elided_marker = 0;

static void memo_release(pdckpt_value *v) {
    if (v != PK_ELIDED) pdckpt_value_free(v);
}

/* Consumer mode: an entry no GET fetches is only counted. */
static pdckpt_status live_set(pk_vm *vm, uint64_t idx, pdckpt_value *v) {
    pdckpt_value **slot = NULL;
    PDK_TRY(pk_live_slot(vm, idx, true, &slot));
    if (!slot) return PDCKPT_OK;
    if (*slot) memo_release(*slot);
    *slot = v == PK_ELIDED ? v : pdckpt_value_retain(v);
    return PDCKPT_OK;
}

pdckpt_status pk_memo_set(pk_vm *vm, uint64_t idx, pdckpt_value *v) {
    if (idx >= vm->opts->max_memo)
        return pk_fail(vm, PDCKPT_ERR_LIMIT,
                       "expected a memo index below %llu (max_memo), found %llu",
                       (unsigned long long)vm->opts->max_memo, (unsigned long long)idx);
    if (vm->live.rank) return live_set(vm, idx, v);
    if (idx >= vm->memo_cap) {
        uint64_t cap = vm->memo_cap ? (uint64_t)vm->memo_cap * 2 : 64;
        if (cap < idx + 1) cap = idx + 1;
        if (cap > vm->opts->max_memo) cap = vm->opts->max_memo;
        PDK_TRY(pk_charge(vm, (cap - vm->memo_cap) * sizeof *vm->memo));
        pdckpt_value **grown = pdk_calloc(vm->a, (size_t)cap, sizeof *grown);
        if (!grown) return pk_nomem(vm);
        if (vm->memo_cap) memcpy(grown, vm->memo, vm->memo_cap * sizeof *grown);
        pdk_free(vm->a, vm->memo, vm->memo_cap * sizeof *vm->memo);
        vm->memo = grown;
        vm->memo_cap = (size_t)cap;
    }
    if (vm->memo[idx])
        memo_release(vm->memo[idx]);
    else
        vm->memo_count++;
    vm->memo[idx] = v == PK_ELIDED ? v : pdckpt_value_retain(v);
    return PDCKPT_OK;
}

pdckpt_value *pk_memo_at(pk_vm *vm, uint64_t idx) {
    if (vm->live.rank) {
        pdckpt_value **slot = NULL;
        pk_live_slot(vm, idx, false, &slot); /* no store: nothing to fail */
        return slot ? *slot : NULL;
    }
    return idx < vm->memo_cap ? vm->memo[idx] : NULL;
}

static pdckpt_status memo_put(pk_vm *vm, uint64_t idx) {
    pdckpt_value *top = NULL; /* the index is judged first, as CPython does */
    if (idx < vm->opts->max_memo) PDK_TRY(pk_peek(vm, 0, &top));
    return pk_memo_set(vm, idx, top);
}

static pdckpt_status memo_get(pk_vm *vm, uint64_t idx) {
    pdckpt_value *v = pk_memo_at(vm, idx);
    if (!v)
        return pk_fail(vm, PDCKPT_ERR_FORMAT,
                       "expected memo entry %llu to have been stored, found none",
                       (unsigned long long)idx);
    if (v == PK_ELIDED) { /* the array shortcut skipped this value: run again */
        vm->rerun = true;
        return pk_fail(vm, PDCKPT_ERR_UNSUPPORTED, "a value the array shortcut did not keep");
    }
    return pk_push(vm, pdckpt_value_retain(v));
}

/* Decimal memo index of the text opcodes GET / PUT. */
static pdckpt_status line_index(pk_vm *vm, uint64_t *out) {
    const uint8_t *s;
    size_t         n;
    PDK_TRY(pk_readline(vm, &s, &n));
    uint64_t v = 0;
    if (n == 0 || n > 18) return pk_fail(vm, PDCKPT_ERR_FORMAT, "expected a decimal memo index");
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return pk_fail(vm, PDCKPT_ERR_FORMAT, "expected a decimal memo index");
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return PDCKPT_OK;
}

/* PUT / BINPUT / LONG_BINPUT / MEMOIZE. */
pdckpt_status pk_op_memo_put(pk_vm *vm) {
    const uint8_t *b = NULL;
    uint64_t       idx = 0;
    switch (vm->op) {
    case PK_OP_BINPUT: PDK_TRY(pk_read(vm, 1, &b, "memo index")); return memo_put(vm, b[0]);
    case PK_OP_LONG_BINPUT:
        PDK_TRY(pk_read(vm, 4, &b, "memo index"));
        return memo_put(vm, pdk_load_u32le(b));
    case PK_OP_MEMOIZE: return memo_put(vm, vm->memo_count);
    default: PDK_TRY(line_index(vm, &idx)); return memo_put(vm, idx);
    }
}

/* GET / BINGET / LONG_BINGET. */
pdckpt_status pk_op_memo_get(pk_vm *vm) {
    const uint8_t *b = NULL;
    uint64_t       idx = 0;
    switch (vm->op) {
    case PK_OP_BINGET: PDK_TRY(pk_read(vm, 1, &b, "memo index")); return memo_get(vm, b[0]);
    case PK_OP_LONG_BINGET:
        PDK_TRY(pk_read(vm, 4, &b, "memo index"));
        return memo_get(vm, pdk_load_u32le(b));
    default: PDK_TRY(line_index(vm, &idx)); return memo_get(vm, idx);
    }
}

/* ---- machine opcodes ---- */

pdckpt_status pk_op_frame(pk_vm *vm) {
    const uint8_t *b = NULL;
    PDK_TRY(pk_read(vm, 8, &b, "frame length"));
    uint64_t n = pdk_load_u64le(b);
    if (n > pdk_cur_left(&vm->cur))
        return pk_short(vm,
                        pk_fail(vm, PDCKPT_ERR_FORMAT,
                                "expected a frame of at most %zu bytes (what is left), found %llu",
                                pdk_cur_left(&vm->cur), (unsigned long long)n));
    return PDCKPT_OK;
}

pdckpt_status pk_op_pop(pk_vm *vm) {
    if (vm->sp > fence(vm)) {
        pdckpt_value_free(vm->stack[--vm->sp]);
        return PDCKPT_OK;
    }
    if (vm->n_marks && vm->marks[vm->n_marks - 1] == vm->sp) {
        vm->n_marks--; /* CPython pops a mark that sits on top of the stack */
        return PDCKPT_OK;
    }
    return underflow(vm);
}

pdckpt_status pk_op_proto(pk_vm *vm) {
    const uint8_t *b = NULL;
    PDK_TRY(pk_read(vm, 1, &b, "protocol"));
    if (b[0] > 5)
        return pk_fail(vm, PDCKPT_ERR_UNSUPPORTED, "expected pickle protocol 0-5, found %u", b[0]);
    vm->protocol = b[0];
    return PDCKPT_OK;
}

pdckpt_status pk_op_stop(pk_vm *vm) {
    PDK_TRY(pk_pop(vm, &vm->result));
    PDK_TRY(pk_check_placeable(vm, vm->result));
    vm->stopped = true;
    return PDCKPT_OK;
}

pdckpt_status pk_op_mark(pk_vm *vm) {
    return push_mark(vm);
}

pdckpt_status pk_op_pop_mark(pk_vm *vm) {
    size_t start;
    PDK_TRY(pk_pop_mark(vm, &start));
    pk_drop_to(vm, start);
    return PDCKPT_OK;
}

pdckpt_status pk_op_dup(pk_vm *vm) {
    pdckpt_value *v;
    PDK_TRY(pk_peek(vm, 0, &v));
    return pk_push(vm, pdckpt_value_retain(v));
}

/* Opcodes that are pickle but that no checkpoint pdckpt reads may use. */
pdckpt_status pk_op_refused(pk_vm *vm) {
    switch (vm->op) {
    case PK_OP_PERSID:
    case PK_OP_BINPERSID:
        return pk_fail(vm, PDCKPT_ERR_UNSUPPORTED,
                       "persistent IDs need the saving program's resolver; not supported");
    case PK_OP_NEXT_BUFFER:
        return pk_fail(vm, PDCKPT_ERR_UNSUPPORTED, "out-of-band buffers are not supported");
    default:
        return pk_fail(vm, PDCKPT_ERR_UNSUPPORTED, "copyreg extension codes are not supported");
    }
}

/* Marks an in-band buffer read-only: pdckpt never writes buffers anyway. */
pdckpt_status pk_op_readonly_buffer(pk_vm *vm) {
    pdckpt_value *v;
    PDK_TRY(pk_peek(vm, 0, &v));
    if (pdckpt_value_kind(v) == PDCKPT_KIND_BYTES) return PDCKPT_OK;
    return pk_fail(vm, PDCKPT_ERR_FORMAT, "expected a buffer on the stack, found a %s",
                   pdckpt_kind_name(pdckpt_value_kind(v)));
}

/* ---- the machine ---- */

void pk_vm_init(pk_vm *vm, const pdk_input *in, const pdckpt_load_options *opts,
                pdckpt_error *err) {
    memset(vm, 0, sizeof *vm);
    vm->in = in;
    vm->opts = opts;
    vm->a = opts->allocator;
    vm->err = err;
    pdk_cur_init(&vm->cur, in->data, in->len, in->name, err);
    uint64_t dflt = (uint64_t)in->len > (UINT64_MAX - (64u << 20)) / 4
                        ? UINT64_MAX
                        : (uint64_t)in->len * 4 + (64u << 20);
    vm->budget = opts->max_alloc_bytes ? opts->max_alloc_bytes : dflt;
    vm->max_nodes = vm->budget / 16 > (1u << 16) ? vm->budget / 16 : (1u << 16);
    vm->max_depth = opts->max_depth ? opts->max_depth : 200;
    if (vm->max_depth > PK_MAX_DEPTH_CAP) vm->max_depth = PK_MAX_DEPTH_CAP;
    /* The values the array fast path skips nest 6 deep at most: below this the ordinary path
     * could fail on max_depth where the fast path would not. */
    vm->shortcut = vm->max_depth >= 16;
}

void pk_vm_drop_values(pk_vm *vm) {
    pk_drop_to(vm, 0);
    pdk_free(vm->a, vm->stack, vm->stack_cap * sizeof *vm->stack);
    pdk_free(vm->a, vm->marks, vm->marks_cap * sizeof *vm->marks);
    for (size_t i = 0; i < vm->memo_cap; i++) memo_release(vm->memo[i]);
    pdk_free(vm->a, vm->memo, vm->memo_cap * sizeof *vm->memo);
    pk_live_free(vm);
    for (size_t i = 0; i < vm->map.cap; i++) {
        pdckpt_value_free(vm->map.slots[i].fwd);
        pdckpt_value_free(vm->map.slots[i].key);
    }
    pdk_free(vm->a, vm->map.slots, vm->map.cap * sizeof *vm->map.slots);
    pdckpt_value_free(vm->result);
    vm->stack = NULL, vm->sp = vm->stack_cap = 0;
    vm->marks = NULL, vm->n_marks = vm->marks_cap = 0;
    vm->memo = NULL, vm->memo_cap = vm->memo_count = 0;
    vm->map = (pk_map){0};
    vm->result = NULL;
}

void pk_vm_free(pk_vm *vm) {
    pk_vm_drop_values(vm);
    pdk_budget_release(vm->copies); /* the tensors hold theirs */
    memset(vm, 0, sizeof *vm);
}
