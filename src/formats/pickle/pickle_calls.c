/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_calls.c — what the pickle reader does instead of calling anything (spec
 * pickle-and-distributed-formats.md §1.3, §1.7, §1.11): GLOBAL / STACK_GLOBAL / INST name a
 * global, which must be on the allowlist (pickle_names.c) or allowed by the caller, else the
 * pickle is refused right there; they become name records.  REDUCE / NEWOBJ / OBJ / INST on a
 * known constructor (bytes via _codecs.encode, tuple, set, numpy scalars and buffers, Paddle's
 * tensor and DenseTensor reducers) are evaluated structurally, other allowed calls become opaque
 * objects that are carried, never run.  BUILD turns numpy's _reconstruct objects into tensors.
 */
#include "pickle_names.h"
#include "pickle_vm.h"

#include <string.h>

/* ---- names ---- */

static pdckpt_status refuse_call(pk_vm *vm, const pdckpt_value *fn, const char *why) {
    return pk_fail(vm, PDCKPT_ERR_UNSUPPORTED, "refusing to call %s.%s: %s",
                   pdckpt_object_module(fn), pdckpt_object_name(fn), why);
}

/* A module or attribute name for a global: non-empty UTF-8 without NUL. */
static pdckpt_status check_name(pk_vm *vm, const char *s, size_t n, const char *what) {
    size_t bad;
    if (n == 0 || memchr(s, '\0', n) || !pdk_utf8_valid((const uint8_t *)s, n, &bad))
        return pk_fail(vm, PDCKPT_ERR_FORMAT,
                       "expected a %s name (non-empty UTF-8 text), found "
                       "%zu unusable bytes",
                       what, n);
    return PDCKPT_OK;
}

/* Judges module.name against the allowlist after CPython's Python 2 renames (which apply below
 * protocol 3, as in Unpickler.find_class); on success the names are the renamed ones. */
static pdckpt_status judge_global(pk_vm *vm, const char **module, const char **name) {
    const char *m = *module, *n = *name;
    if (strchr(n, '.'))
        return pk_fail(vm, PDCKPT_ERR_UNSUPPORTED,
                       "refusing global %s.%s: a dotted name is an attribute path, which pdckpt "
                       "never resolves",
                       m, n);
    if (vm->protocol < 3) pdk_global_compat(module, name, true);
    if (pdk_global_role_of(*module, *name, vm->opts->allowed_globals,
                           vm->opts->n_allowed_globals) != PDK_GLOBAL_REFUSED)
        return PDCKPT_OK;
    bool renamed = *module != m || *name != n;
    return pk_fail(vm, PDCKPT_ERR_UNSUPPORTED,
                   "refusing global %s.%s%s%s%s%s%s: not on pdckpt's allowlist of what Paddle and "
                   "numpy checkpoints name (pdckpt never imports or calls anything from a pickle; "
                   "allowed_globals / --allow-global carry a class you trust as an inert object)",
                   m, n, renamed ? " (" : "", renamed ? *module : "", renamed ? "." : "",
                   renamed ? *name : "", renamed ? ")" : "");
}

static pdckpt_status push_global(pk_vm *vm, const char *m, size_t mn, const char *n, size_t nn) {
    PDK_TRY(check_name(vm, m, mn, "module"));
    PDK_TRY(check_name(vm, n, nn, "global"));
    PDK_TRY(pk_charge(vm, mn + nn + 2));
    char         *module = pdk_strndup(vm->a, m, mn), *name = pdk_strndup(vm->a, n, nn);
    const char   *jm = module, *jn = name;
    pdckpt_value *g = NULL;
    pdckpt_status st = module && name ? judge_global(vm, &jm, &jn) : pk_nomem(vm);
    if (st == PDCKPT_OK) st = pk_make_object(vm, PDCKPT_OBJECT_GLOBAL, jm, jn, NULL, &g);
    pdk_strfree(vm->a, module);
    pdk_strfree(vm->a, name);
    return st == PDCKPT_OK ? pk_push(vm, g) : st;
}

/* GLOBAL / INST: "module\nname\n". */
static pdckpt_status global_lines(pk_vm *vm, const char **m, size_t *mn, const char **n,
                                  size_t *nn) {
    const uint8_t *a, *b;
    PDK_TRY(pk_readline(vm, &a, mn));
    PDK_TRY(pk_readline(vm, &b, nn));
    *m = (const char *)a;
    *n = (const char *)b;
    return PDCKPT_OK;
}

pdckpt_status pk_op_global(pk_vm *vm) {
    const char *m, *n;
    size_t      mn, nn;
    PDK_TRY(global_lines(vm, &m, &mn, &n, &nn));
    return push_global(vm, m, mn, n, nn);
}

pdckpt_status pk_op_stack_global(pk_vm *vm) {
    pdckpt_value *name = NULL, *module = NULL;
    PDK_TRY(pk_pop(vm, &name));
    pdckpt_status st = pk_pop(vm, &module);
    const char   *m = NULL, *n = NULL;
    size_t        mn = 0, nn = 0;
    if (st == PDCKPT_OK && (!pk_text(vm, module, &m, &mn) || !pk_text(vm, name, &n, &nn)))
        st = pk_fail(vm, PDCKPT_ERR_FORMAT,
                     "expected two strings (module, name), found a %s and "
                     "a %s",
                     pdckpt_kind_name(pdckpt_value_kind(module)),
                     pdckpt_kind_name(pdckpt_value_kind(name)));
    if (st == PDCKPT_OK) st = push_global(vm, m, mn, n, nn);
    pdckpt_value_free(name);
    pdckpt_value_free(module);
    return st;
}

/* ---- structural evaluation of known constructors ---- */

#define HIGH_BITS 0x8080808080808080ull

/* Characters of UTF-8 text whose code points are all below 256: one per byte, minus the
 * second bytes of the 2-byte sequences (their leads have the top two bits set).  Exact for valid
 * text; pk_latin1_span rejects anything else. */
static size_t latin1_count(const uint8_t *s, size_t n) {
    size_t i = 0, leads = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        leads += (size_t)__builtin_popcountll(w & (w << 1) & HIGH_BITS);
    }
    for (; i < n; i++) leads += (s[i] & 0xC0) == 0xC0;
    return n - leads;
}

#define LOW_BYTES 0x0101010101010101ull

/* Decodes UTF-8 text that pk_latin1_span has passed whole (ASCII and 0xC2/0xC3 pairs) into its
 * latin-1 bytes, eight text bytes at a time: each continuation becomes the character its lead
 * (the byte before) began, and every byte but a lead is kept, in order. */
static void latin1_decode(const uint8_t *s, size_t n, uint8_t *d) {
    size_t   i = 0, j = 0;
    uint64_t prev = 0; /* the text byte before s[i] */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t lead = w & (w << 1) & HIGH_BITS, cont = w & ~(w << 1) & HIGH_BITS;
        uint64_t before = w << 8 | prev, is_cont = (cont >> 7) * 0xFF;
        uint64_t v = (w & ~is_cont) |
                     ((((before & 0x03 * LOW_BYTES) << 6) | (w & 0x3F * LOW_BYTES)) & is_cont);
        prev = w >> 56;
        if (!lead) {
            memcpy(d + j, &v, 8);
            j += 8;
            continue;
        }
        for (unsigned k = 0; k < 64; k += 8) {
            d[j] = (uint8_t)(v >> k);
            j += !((lead >> (k + 7)) & 1);
        }
    }
#endif
    for (; i < n; i++) {
        unsigned c = s[i];
        d[j] = (uint8_t)(c < 0x80 ? c : (prev & 0x03) << 6 | (c & 0x3F));
        j += c < 0xC0;
        prev = c;
    }
}

/* _codecs.encode(text, 'latin1'): protocol 2's spelling of bytes (array data).  Long results
 * stay in their buffer, which an array built from them takes over without a copy. */
static pdckpt_status latin1_bytes(pk_vm *vm, const char *text, size_t n, pdckpt_value **out) {
    const uint8_t *s = (const uint8_t *)text;
    size_t         out_len = latin1_count(s, n);
    PDK_TRY(pk_charge(vm, out_len + 256));
    pdckpt_buffer *buf = pdk_buffer_new_alloc(vm->a, out_len ? out_len : 1, false);
    if (!buf) return pk_nomem(vm);
    uint8_t      *d = pdk_buffer_data(buf);
    size_t        bad = pk_latin1_span(s, n);
    pdckpt_status st = PDCKPT_OK;
    if (bad == n) latin1_decode(s, n, d);
    if (bad != n)
        st = pk_fail(vm, PDCKPT_ERR_FORMAT,
                     "expected UTF-8 text of characters below U+0100 "
                     "(bytes), found byte 0x%02x at text offset %zu",
                     s[bad], bad);
    else if (out_len < PK_VIEW_MIN)
        st = (*out = pdckpt_value_new_bytes(vm->a, d, out_len)) ? PDCKPT_OK : pk_nomem(vm);
    else /* the value holds the buffer; an array made from it takes the buffer over */
        st = (*out = pdk_value_new_borrowed(vm->a, PDCKPT_KIND_BYTES, d, out_len, buf))
                 ? PDCKPT_OK
                 : pk_nomem(vm);
    pdckpt_buffer_release(buf);
    return st;
}

static bool is_latin1_name(const pdckpt_value *v) {
    return pk_is_string(v, "latin1") || pk_is_string(v, "latin-1");
}

static pdckpt_status codecs_encode(pk_vm *vm, pdckpt_value *args, pdckpt_value **out) {
    const char *s;
    size_t      n;
    if (pdckpt_value_len(args) != 2 || !is_latin1_name(pdckpt_value_at(args, 1)) ||
        !pk_text(vm, pdckpt_value_at(args, 0), &s, &n))
        return PDCKPT_OK; /* another encoding: carried as an object */
    return latin1_bytes(vm, s, n, out);
}

/* bytes() / bytearray() / bytes(b) / bytearray(b) / bytearray(text, 'latin-1'). */
static pdckpt_status make_bytes(pk_vm *vm, pdckpt_value *args, pdckpt_value **out) {
    size_t         n = pdckpt_value_len(args);
    const uint8_t *b = NULL;
    size_t         len;
    if (n == 0) {
        PDK_TRY(pk_charge(vm, 64));
        *out = pdckpt_value_new_bytes(vm->a, "", 0);
        return *out ? PDCKPT_OK : pk_nomem(vm);
    }
    if (n == 1 && pk_bytes(vm, pdckpt_value_at(args, 0), &b, &len))
        return pk_sanitize(vm, pdckpt_value_at_mut(args, 0), out);
    if (n == 2) return codecs_encode(vm, args, out);
    return PDCKPT_OK;
}

/* A container of `kind` holding the items of `src` (a tuple or list); pairs for dicts. */
static pdckpt_status copy_items(pk_vm *vm, pdckpt_kind kind, pdckpt_value *src,
                                pdckpt_value **out) {
    pdckpt_value *c = NULL;
    if (kind != PDCKPT_KIND_TUPLE) PDK_TRY(pk_new_container(vm, kind, &c));
    size_t        base = vm->sp;
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 0; src && i < pdckpt_value_len(src) && st == PDCKPT_OK; i++) {
        pdckpt_value *item = pdckpt_value_at_mut(src, i);
        pdckpt_kind   ik = pdckpt_value_kind(item);
        if (kind != PDCKPT_KIND_DICT) {
            st = pk_push(vm, pdckpt_value_retain(item));
        } else if ((ik == PDCKPT_KIND_LIST || ik == PDCKPT_KIND_TUPLE) &&
                   pdckpt_value_len(item) == 2) {
            st = pk_push(vm, pdckpt_value_retain(pdckpt_value_at_mut(item, 0)));
            if (st == PDCKPT_OK)
                st = pk_push(vm, pdckpt_value_retain(pdckpt_value_at_mut(item, 1)));
        } else {
            st = pk_fail(vm, PDCKPT_ERR_FORMAT, "expected [key, value] pairs, found a %s",
                         pdckpt_kind_name(ik));
        }
    }
    if (st == PDCKPT_OK && kind == PDCKPT_KIND_TUPLE) {
        st = pk_make_tuple(vm, base, &c);
    } else if (st == PDCKPT_OK) {
        st = kind == PDCKPT_KIND_DICT ? pk_set_pairs(vm, c, base) : pk_extend(vm, c, base);
    }
    pk_drop_to(vm, base);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(c);
        return st;
    }
    *out = c;
    return PDCKPT_OK;
}

/* builtins.tuple(((name, ndarray),)): Paddle's reducer for a Tensor.  paddle.load gives back a
 * Tensor named `name`, so the tree holds the tensor carrying that name (the writer turns a named
 * tensor into this same reduce again). */
static pdckpt_status paddle_tuple(pk_vm *vm, pdckpt_value *src, pdckpt_value **out) {
    size_t        n = 0;
    pdckpt_value *t = pdckpt_value_at_mut(src, 1), *s = pdckpt_value_at_mut(src, 0);
    if (pdckpt_value_kind(src) != PDCKPT_KIND_TUPLE || pdckpt_value_len(src) != 2 ||
        pdckpt_value_kind(s) != PDCKPT_KIND_STRING || pdckpt_value_kind(t) != PDCKPT_KIND_TENSOR)
        return copy_items(vm, PDCKPT_KIND_TUPLE, src, out);
    PDK_TRY(pk_own(vm, s)); /* the name is kept as a C string */
    const char *name = pdckpt_value_get_string(s, &n);
    if (memchr(name, '\0', n)) return copy_items(vm, PDCKPT_KIND_TUPLE, src, out);
    return pk_tensor_renamed(vm, t, name, out);
}

/* One argument that is a tuple or list, or none at all. */
static bool iterable_arg(pdckpt_value *args, pdckpt_value **src) {
    *src = NULL;
    if (pdckpt_value_len(args) == 0) return true;
    pdckpt_kind k = pdckpt_value_kind(pdckpt_value_at(args, 0));
    if (pdckpt_value_len(args) != 1 || (k != PDCKPT_KIND_TUPLE && k != PDCKPT_KIND_LIST))
        return false;
    *src = pdckpt_value_at_mut(args, 0);
    return true;
}

static pdckpt_status builtin_call(pk_vm *vm, const pdckpt_value *fn, pdckpt_value *args,
                                  pdckpt_value **out) {
    pdckpt_value *src;
    if (pk_is_builtin(fn, "bytes") || pk_is_builtin(fn, "bytearray"))
        return make_bytes(vm, args, out);
    if (!iterable_arg(args, &src)) return PDCKPT_OK;
    if (pk_is_builtin(fn, "tuple"))
        return src ? paddle_tuple(vm, src, out) : copy_items(vm, PDCKPT_KIND_TUPLE, NULL, out);
    if (pk_is_builtin(fn, "set") || pk_is_builtin(fn, "frozenset"))
        return copy_items(vm, PDCKPT_KIND_SET, src, out);
    if (pk_is_builtin(fn, "list")) return copy_items(vm, PDCKPT_KIND_LIST, src, out);
    if (pk_is_global(fn, "collections", "OrderedDict") &&
        (!src || pdckpt_value_kind(src) == PDCKPT_KIND_LIST)) {
        PDK_TRY(copy_items(vm, PDCKPT_KIND_DICT, src, out));
        pdckpt_dict_set_ordered(*out, true); /* written back as an OrderedDict */
    }
    return PDCKPT_OK;
}

/* eval('data', {'data': ndarray}) / _reconstruct_dense_tensor_data(ndarray): old static
 * DenseTensor objects.  Recognised by shape; nothing is evaluated. */
static bool dense_tensor_form(const pdckpt_value *fn, pdckpt_value *args, pdckpt_value **t) {
    *t = NULL;
    if (pk_is_global(fn, "builtins", "eval") && pdckpt_value_len(args) == 2 &&
        pk_is_string(pdckpt_value_at(args, 0), "data")) {
        const pdckpt_value *env = pdckpt_value_at(args, 1);
        if (pdckpt_value_kind(env) == PDCKPT_KIND_DICT && pdckpt_value_len(env) == 1 &&
            pk_is_string(pdckpt_dict_key_at(env, 0), "data"))
            *t = (pdckpt_value *)pdckpt_value_at(env, 0);
    } else if (pk_is_global(fn, "paddle.framework.io_utils", "_reconstruct_dense_tensor_data") &&
               pdckpt_value_len(args) == 1) {
        *t = pdckpt_value_at_mut(args, 0);
    }
    if (pdckpt_value_kind(*t) != PDCKPT_KIND_TENSOR) *t = NULL;
    return *t != NULL;
}

/* A global from the table with an evaluator: the value, or *out NULL to carry it opaque. */
static pdckpt_status evaluate(pk_vm *vm, const pdckpt_value *fn, pdckpt_value *args,
                              pdckpt_value **out) {
    if (pk_is_global(fn, "_codecs", "encode")) return codecs_encode(vm, args, out);
    if (pk_is_np_scalar(fn)) return pk_np_scalar(vm, args, out);
    if (pk_is_frombuffer(fn)) return pk_frombuffer(vm, args, out);
    return builtin_call(vm, fn, args, out);
}

/* fn(*args) for a global fn (REDUCE, OBJ, INST): a value when recognised, a refusal, or an
 * inert opaque object. */
static pdckpt_status call_global(pk_vm *vm, const pdckpt_value *fn, pdckpt_value *args,
                                 pdckpt_value **out) {
    pdckpt_value *t;
    *out = NULL;
    switch (pk_role_of(vm, fn)) {
    case PDK_GLOBAL_FORM:
        if (!dense_tensor_form(fn, args, &t))
            return refuse_call(vm, fn,
                               "pdckpt accepts it only as Paddle's DenseTensor form "
                               "(the argument 'data' and a dict {'data': array})");
        *out = pdckpt_value_retain(t);
        return PDCKPT_OK;
    case PDK_GLOBAL_CLASS:
        return refuse_call(vm, fn,
                           "pdckpt rebuilds this class only as NEWOBJ + BUILD (calling "
                           "it would run its __init__)");
    case PDK_GLOBAL_CALL: PDK_TRY(evaluate(vm, fn, args, out)); break;
    case PDK_GLOBAL_ALLOWED: break;
    default:
        return refuse_call(vm, fn,
                           "pdckpt accepts it only as an argument of another call (numpy's, a "
                           "defaultdict's factory)");
    }
    if (*out) return PDCKPT_OK;
    return pk_make_object(vm, PDCKPT_OBJECT_REDUCE, pdckpt_object_module(fn),
                          pdckpt_object_name(fn), args, out);
}

/* ---- call opcodes ---- */

static pdckpt_status expect_global(pk_vm *vm, const pdckpt_value *v, const char *what) {
    if (pdckpt_value_kind(v) == PDCKPT_KIND_OBJECT &&
        pdckpt_object_kind_of(v) == PDCKPT_OBJECT_GLOBAL)
        return PDCKPT_OK;
    return pk_fail(vm, PDCKPT_ERR_UNSUPPORTED,
                   "expected a global (module.name) as the %s, found "
                   "a %s",
                   what, pdckpt_kind_name(pdckpt_value_kind(v)));
}

static pdckpt_status expect_tuple(pk_vm *vm, const pdckpt_value *v, const char *what) {
    if (pdckpt_value_kind(v) == PDCKPT_KIND_TUPLE) return PDCKPT_OK;
    return pk_fail(vm, PDCKPT_ERR_FORMAT, "expected a tuple of %s, found a %s", what,
                   pdckpt_kind_name(pdckpt_value_kind(v)));
}

pdckpt_status pk_op_reduce(pk_vm *vm) {
    pdckpt_value *args = NULL, *fn = NULL, *result = NULL;
    PDK_TRY(pk_pop(vm, &args));
    pdckpt_status st = pk_pop(vm, &fn);
    if (st == PDCKPT_OK) st = expect_global(vm, fn, "callable");
    if (st == PDCKPT_OK) st = expect_tuple(vm, args, "arguments");
    if (st == PDCKPT_OK) st = call_global(vm, fn, args, &result);
    pdckpt_value_free(args);
    pdckpt_value_free(fn);
    return st == PDCKPT_OK ? pk_push(vm, result) : st;
}

static pdckpt_status newobj(pk_vm *vm, pdckpt_value *cls, pdckpt_value *args) {
    PDK_TRY(expect_global(vm, cls, "class"));
    PDK_TRY(expect_tuple(vm, args, "arguments"));
    const char     *module = pdckpt_object_module(cls), *name = pdckpt_object_name(cls);
    pdk_global_role role = pk_role_of(vm, cls);
    if (role == PDK_GLOBAL_FORM || role == PDK_GLOBAL_REF)
        return refuse_call(vm, cls, "it is not a class pdckpt rebuilds with NEWOBJ");
    pdckpt_value *obj = NULL;
    PDK_TRY(pk_make_object(vm, PDCKPT_OBJECT_NEWOBJ, module, name, args, &obj));
    return pk_push(vm, obj);
}

static pdckpt_status op_newobj(pk_vm *vm, bool ex) {
    pdckpt_value *kwargs = NULL, *args = NULL, *cls = NULL;
    pdckpt_status st = ex ? pk_pop(vm, &kwargs) : PDCKPT_OK;
    if (st == PDCKPT_OK) st = pk_pop(vm, &args);
    if (st == PDCKPT_OK) st = pk_pop(vm, &cls);
    if (st == PDCKPT_OK && ex &&
        (pdckpt_value_kind(kwargs) != PDCKPT_KIND_DICT || pdckpt_value_len(kwargs) != 0))
        st = pk_fail(vm, PDCKPT_ERR_UNSUPPORTED, "keyword arguments to __new__ are not supported");
    if (st == PDCKPT_OK) st = newobj(vm, cls, args);
    pdckpt_value_free(kwargs);
    pdckpt_value_free(args);
    pdckpt_value_free(cls);
    return st;
}

/* OBJ (MARK cls args...) and INST (module/name lines, MARK args...): class calls. */
pdckpt_status pk_op_obj_inst(pk_vm *vm) {
    const char *m = NULL, *n = NULL;
    size_t      mn = 0, nn = 0, mark, start;
    if (vm->op == PK_OP_INST) PDK_TRY(global_lines(vm, &m, &mn, &n, &nn));
    PDK_TRY(pk_pop_mark(vm, &mark));
    pdckpt_value *cls = NULL, *args = NULL, *result = NULL;
    pdckpt_status st = PDCKPT_OK;
    start = mark;
    if (vm->op == PK_OP_OBJ && start == vm->sp)
        st = pk_fail(vm, PDCKPT_ERR_FORMAT, "expected a class after MARK, found nothing");
    else if (vm->op == PK_OP_OBJ)
        cls = pdckpt_value_retain(vm->stack[start++]);
    else if ((st = push_global(vm, m, mn, n, nn)) == PDCKPT_OK)
        st = pk_pop(vm, &cls);
    if (st == PDCKPT_OK) st = pk_make_tuple(vm, start, &args);
    if (st == PDCKPT_OK) st = expect_global(vm, cls, "class");
    if (st == PDCKPT_OK) st = call_global(vm, cls, args, &result);
    pk_drop_to(vm, mark);
    pdckpt_value_free(cls);
    pdckpt_value_free(args);
    return st == PDCKPT_OK ? pk_push(vm, result) : st;
}

static pdckpt_status build_state(pk_vm *vm, pdckpt_value *obj, pdckpt_value *state) {
    if (pdckpt_object_kind_of(obj) == PDCKPT_OBJECT_GLOBAL)
        return pk_fail(vm, PDCKPT_ERR_UNSUPPORTED,
                       "expected an instance to set state on, found "
                       "the bare global %s.%s",
                       pdckpt_object_module(obj), pdckpt_object_name(obj));
    PDK_TRY(pk_check_mutable(vm, obj, "set state on"));
    if (state == obj)
        return pk_fail(vm, PDCKPT_ERR_UNSUPPORTED,
                       "an object cannot be its own state (pdckpt "
                       "refuses reference cycles)");
    if (pdckpt_object_state(obj))
        return pk_fail(vm, PDCKPT_ERR_UNSUPPORTED, "an object whose state is set twice");
    pdckpt_value *placed = NULL;
    PDK_TRY(pk_adopt(vm, obj, state, &placed));
    return pdckpt_object_set_state(obj, placed, vm->err);
}

/* Consumer mode: the caller's replacement for an instance BUILD completes, or *out NULL. */
static pdckpt_status consume(pk_vm *vm, pdckpt_value *obj, pdckpt_value *state,
                             pdckpt_value **out) {
    *out = NULL;
    if (!vm->consumer || pk_is_reconstruct(obj) ||
        pdckpt_object_kind_of(obj) == PDCKPT_OBJECT_GLOBAL || pdckpt_object_state(obj))
        return PDCKPT_OK; /* build_state judges these */
    PDK_TRY(pk_check_mutable(vm, obj, "set state on"));
    pdckpt_status st = vm->consumer->build(vm->consumer->ctx, obj, state, out, vm->err);
    if (st != PDCKPT_OK) return pk_consumer_failed(vm, st); /* names this BUILD */
    if (*out && (st = pk_charge(vm, 64)) != PDCKPT_OK) {
        pdckpt_value_free(*out);
        *out = NULL;
    }
    return st;
}

pdckpt_status pk_op_build(pk_vm *vm) {
    pdckpt_value *state = NULL, *obj = NULL, *tensor = NULL;
    PDK_TRY(pk_pop(vm, &state));
    pdckpt_status st = pk_peek(vm, 0, &obj);
    if (st == PDCKPT_OK && pdckpt_value_kind(obj) != PDCKPT_KIND_OBJECT)
        st = pk_fail(vm, PDCKPT_ERR_FORMAT, "expected an object to set state on, found a %s",
                     pdckpt_kind_name(pdckpt_value_kind(obj)));
    if (st == PDCKPT_OK && pk_is_reconstruct(obj)) st = pk_check_mutable(vm, obj, "set state on");
    if (st == PDCKPT_OK && pk_is_reconstruct(obj)) st = pk_ndarray_build(vm, obj, state, &tensor);
    if (st == PDCKPT_OK && !tensor) st = consume(vm, obj, state, &tensor);
    if (st == PDCKPT_OK && tensor) {
        pdk_value_note_at(tensor, pdckpt_value_offset(obj)); /* the array's REDUCE */
        st = pk_forward(vm, obj, tensor);
        pdckpt_value_free(vm->stack[vm->sp - 1]);
        vm->stack[vm->sp - 1] = tensor;
    } else if (st == PDCKPT_OK) {
        st = build_state(vm, obj, state);
    }
    pdckpt_value_free(state);
    return st;
}

/* ---- handlers (dispatched by pickle_run.c) ---- */

/* NEWOBJ / NEWOBJ_EX. */
pdckpt_status pk_op_newobj(pk_vm *vm) {
    return op_newobj(vm, vm->op == PK_OP_NEWOBJ_EX);
}
