/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_emit_value.c — save() of any tree value as the Python object it stands for (spec pickle
 * §1.3, §1.7): containers as CPython writes dict/list/tuple/set, opaque objects rebuilt the way
 * they were pickled (GLOBAL, REDUCE or NEWOBJ + items + BUILD), and tensors through Paddle's
 * generic-path reducer: a named tensor (or a (name, tensor-named-name) tuple read back from such a
 * file) becomes tuple((name, ndarray)), an unnamed one a plain ndarray.
 *
 * Identity (what becomes a BINGET): a node saved twice is one object (PTR); strings whose every
 * character is [A-Za-z0-9_] are the interned constants and attribute names Python code uses (STR,
 * shared by text); other strings are computed and therefore fresh objects.
 */
#include "pickle_emit.h"
#include "pickle_names.h"

#include <string.h>

static pdckpt_status save_value_inner(pdk_pkl *p, const pdckpt_value *v, pdk_pkl_mode mode);

typedef struct items_ctx {
    const pdckpt_value *c;
    pdk_pkl_mode        mode;
} items_ctx;

static pdckpt_status save_item(pdk_pkl *p, void *ctx, size_t i) {
    items_ctx *ic = ctx;
    return pdk_pkl_save_value(p, pdckpt_value_at(ic->c, i), ic->mode);
}

static pdckpt_status save_pair(pdk_pkl *p, void *ctx, size_t i) {
    items_ctx *ic = ctx;
    PDK_TRY(pdk_pkl_save_value(p, pdckpt_dict_key_at(ic->c, i), ic->mode));
    return pdk_pkl_save_value(p, pdckpt_value_at(ic->c, i), ic->mode);
}

/* OrderedDict.__reduce__ is (OrderedDict, (), None, None, iter(items)): CPython writes the
 * class, an empty tuple, REDUCE, memoizes the result, then the items as an iterator's batches. */
static pdckpt_status save_ordered_dict(pdk_pkl *p, const pdckpt_value *v, pdk_pkl_mode mode) {
    items_ctx   ic = {v, mode};
    pdk_pkl_key key = pdk_key_ptr(v, 0);
    PDK_TRY(pdk_pkl_save_global(p, "collections", "OrderedDict"));
    PDK_TRY(pdk_pkl_boundary(p)); /* save(()) */
    PDK_TRY(pdk_pkl_op(p, ')'));  /* EMPTY_TUPLE (never memoized) */
    PDK_TRY(pdk_pkl_op(p, 'R'));
    PDK_TRY(pdk_pkl_memoize(p, &key));
    return pdk_pkl_batch(p, PDK_BATCH_DICT_ITER, pdckpt_value_len(v), save_pair, &ic);
}

static pdckpt_status save_container(pdk_pkl *p, const pdckpt_value *v, pdk_pkl_mode mode) {
    items_ctx   ic = {v, mode};
    size_t      n = pdckpt_value_len(v);
    pdk_pkl_key key = pdk_key_ptr(v, 0);
    if (pdckpt_dict_is_ordered(v)) return save_ordered_dict(p, v, mode);
    switch (pdckpt_value_kind(v)) {
    case PDCKPT_KIND_DICT:
        PDK_TRY(pdk_pkl_op(p, '}'));
        PDK_TRY(pdk_pkl_memoize(p, &key));
        return pdk_pkl_batch(p, PDK_BATCH_DICT_EXACT, n, save_pair, &ic);
    case PDCKPT_KIND_LIST:
        PDK_TRY(pdk_pkl_op(p, ']'));
        PDK_TRY(pdk_pkl_memoize(p, &key));
        return pdk_pkl_batch(p, PDK_BATCH_LIST_EXACT, n, save_item, &ic);
    case PDCKPT_KIND_TUPLE:
        PDK_TRY(pdk_pkl_tuple_begin(p, n));
        for (size_t i = 0; i < n; i++) PDK_TRY(save_item(p, &ic, i));
        return pdk_pkl_tuple_end(p, n, key);
    default: break;
    }
    if (p->proto >= 4) {              /* a set */
        PDK_TRY(pdk_pkl_op(p, 0x8f)); /* EMPTY_SET */
        PDK_TRY(pdk_pkl_memoize(p, &key));
        return pdk_pkl_batch(p, PDK_BATCH_SET, n, save_item, &ic);
    }
    /* Below protocol 4: set.__reduce__ = (set, (list(items),)) */
    PDK_TRY(pdk_pkl_save_global(p, "builtins", "set"));
    PDK_TRY(pdk_pkl_boundary(p)); /* save((list,)) */
    PDK_TRY(pdk_pkl_boundary(p)); /* save(list) */
    PDK_TRY(pdk_pkl_op(p, ']'));
    pdk_pkl_key fresh = pdk_key_fresh();
    PDK_TRY(pdk_pkl_memoize(p, &fresh));
    PDK_TRY(pdk_pkl_batch(p, PDK_BATCH_LIST_EXACT, n, save_item, &ic));
    PDK_TRY(pdk_pkl_tuple_end(p, 1, fresh));
    PDK_TRY(pdk_pkl_op(p, 'R'));
    return pdk_pkl_memoize(p, &key);
}

/* Paddle's reduce_varbase: (tuple, ((tensor.name, np.array(tensor)),)), memoized as the tensor. */
static pdckpt_status save_tensor_reduce(pdk_pkl *p, const char *name, pdk_pkl_key name_key,
                                        const pdckpt_value *t, pdk_pkl_key key) {
    PDK_TRY(pdk_pkl_save_global(p, "builtins", "tuple"));
    PDK_TRY(pdk_pkl_boundary(p)); /* save(((name, ndarray),)) */
    PDK_TRY(pdk_pkl_boundary(p)); /* save((name, ndarray)) */
    PDK_TRY(pdk_pkl_save_str(p, name, strlen(name), name_key));
    PDK_TRY(pdk_pkl_save_tensor_array(p, t, pdk_key_fresh()));
    PDK_TRY(pdk_pkl_tuple_end(p, 2, pdk_key_fresh()));
    PDK_TRY(pdk_pkl_tuple_end(p, 1, pdk_key_fresh()));
    PDK_TRY(pdk_pkl_op(p, 'R'));
    return pdk_pkl_memoize(p, &key);
}

/* A (str, tensor) tuple whose tensor carries that str as its name: Paddle's reduced Tensor. */
static bool is_tensor_tuple(const pdckpt_value *v, pdckpt_tensor_view *t) {
    if (pdckpt_value_kind(v) != PDCKPT_KIND_TUPLE || pdckpt_value_len(v) != 2) return false;
    size_t      len;
    const char *s = pdckpt_value_get_string(pdckpt_value_at(v, 0), &len);
    if (!s || pdckpt_value_kind(pdckpt_value_at(v, 0)) != PDCKPT_KIND_STRING) return false;
    if (!pdckpt_tensor_get_memory(pdckpt_value_at(v, 1), t, NULL) || !t->name) return false;
    return strlen(t->name) == len && memcmp(t->name, s, len) == 0;
}

static pdckpt_status save_tensor(pdk_pkl *p, const pdckpt_value *v, pdk_pkl_mode mode) {
    pdckpt_tensor_view t;
    pdckpt_dtype       np;
    if (pdckpt_value_numpy_scalar(v, &np)) return pdk_pkl_save_np_scalar(p, v, np); /* complex */
    pdckpt_tensor_get_memory(v, &t, NULL);
    if (mode == PDK_MODE_GENERIC && t.name)
        return save_tensor_reduce(p, t.name, pdk_key_fresh(), v, pdk_key_ptr(v, 0));
    return pdk_pkl_save_tensor_array(p, v, pdk_key_ptr(v, 0));
}

static pdckpt_status save_object_items(pdk_pkl *p, const pdckpt_value *obj, pdk_pkl_mode mode) {
    const pdckpt_value *items = pdckpt_object_items(obj);
    if (items) {
        items_ctx ic = {items, mode};
        size_t    n = pdckpt_value_len(items);
        if (pdckpt_value_kind(items) == PDCKPT_KIND_DICT)
            PDK_TRY(pdk_pkl_batch(p, PDK_BATCH_DICT_ITER, n, save_pair, &ic));
        else
            PDK_TRY(pdk_pkl_batch(p, PDK_BATCH_LIST_ITER, n, save_item, &ic));
    }
    const pdckpt_value *state = pdckpt_object_state(obj);
    if (!state) return PDCKPT_OK;
    PDK_TRY(pdk_pkl_save_value(p, state, mode));
    return pdk_pkl_op(p, 'b'); /* BUILD */
}

/* The arguments of NEWOBJ are cls.__new__'s tuple, built afresh by save_reduce. */
static pdckpt_status save_args(pdk_pkl *p, const pdckpt_value *obj, pdk_pkl_mode mode, bool fresh) {
    const pdckpt_value *args = pdckpt_object_args(obj);
    if (args && pdckpt_value_kind(args) != PDCKPT_KIND_TUPLE)
        return pdk_fail(p->err, PDCKPT_ERR_ARGUMENT, p->sink->name, -1,
                        "object %s.%s: expected its arguments as a tuple, found a %s",
                        pdckpt_object_module(obj), pdckpt_object_name(obj),
                        pdckpt_kind_name(pdckpt_value_kind(args)));
    if (args && !fresh) return pdk_pkl_save_value(p, args, mode);
    PDK_TRY(pdk_pkl_boundary(p));
    items_ctx ic = {args, mode};
    size_t    n = pdckpt_value_len(args);
    PDK_TRY(pdk_pkl_tuple_begin(p, n));
    for (size_t i = 0; i < n; i++) PDK_TRY(save_item(p, &ic, i));
    return pdk_pkl_tuple_end(p, n, pdk_key_fresh());
}

/* What Python's unpickler does with the call the writer is about to emit: nothing CPython and
 * numpy never write (pickle_names.c's rules), so a converted file cannot make paddle.load exhaust
 * memory or build a dtype numpy does not check. */
static pdckpt_status check_call(pdk_pkl *p, const pdckpt_value *v, const char *module,
                                const char *name) {
    pdckpt_object_kind kind = pdckpt_object_kind_of(v);
    pdk_global_compat(&module, &name, true); /* judged as written (pdk_pkl_save_global) */
    pdk_global_role role = pdk_global_role_of(module, name, p->allowed, p->n_allowed);
    /* a name not writable at all is refused by pdk_pkl_save_global, saying so */
    bool named_ok = pdk_global_writable(module, name, p->allowed, p->n_allowed);
    if (named_ok && !pdk_global_kind_writable(role, kind))
        return pdk_fail(p->err, PDCKPT_ERR_UNSUPPORTED, p->sink->name, -1,
                        "refusing to write %s %s.%s: pdckpt's reader accepts that global only "
                        "%s, and Python's unpickler (paddle.load) would %s",
                        kind == PDCKPT_OBJECT_NEWOBJ ? "NEWOBJ of" : "a call of", module, name,
                        role == PDK_GLOBAL_CLASS ? "as NEWOBJ + BUILD"
                                                 : "as an argument of another call",
                        role == PDK_GLOBAL_CLASS ? "run its __init__"
                                                 : "call it with arguments no checkpoint holds");
    if (!pdk_global_call_bounded(module, name, pdckpt_object_args(v)))
        return pdk_fail(p->err, PDCKPT_ERR_UNSUPPORTED, p->sink->name, -1,
                        "refusing to write the call %s.%s with these arguments: Python's "
                        "unpickler (paddle.load) would build it without bound (an int or a "
                        "computed object where CPython and numpy write text, bytes or values; an "
                        "array shape before its data)",
                        module, name);
    if (!pdk_global_state_safe(module, name, pdckpt_object_state(v)))
        return pdk_fail(p->err, PDCKPT_ERR_UNSUPPORTED, p->sink->name, -1,
                        "refusing to write %s.%s with this state: a structured or subarray "
                        "dtype, whose field offsets numpy's unpickler (paddle.load) would take "
                        "unchecked (pdckpt writes plain dtypes only)",
                        module, name);
    return PDCKPT_OK;
}

static pdckpt_status save_object(pdk_pkl *p, const pdckpt_value *v, pdk_pkl_mode mode) {
    pdckpt_dtype np;
    if (pdckpt_value_numpy_scalar(v, &np)) return pdk_pkl_save_np_scalar(p, v, np); /* uint64 */
    pdckpt_object_kind kind = pdckpt_object_kind_of(v);
    const char        *module = pdckpt_object_module(v), *name = pdckpt_object_name(v);
    size_t             n = 0;
    const void        *big = pdckpt_value_get_bigint(v, &n);
    if (big) return pdk_pkl_save_long_bytes(p, big, n);
    if (kind == PDCKPT_OBJECT_GLOBAL) return pdk_pkl_save_global(p, module, name);
    PDK_TRY(check_call(p, v, module, name));
    PDK_TRY(pdk_pkl_save_global(p, module, name));
    PDK_TRY(save_args(p, v, mode, kind == PDCKPT_OBJECT_NEWOBJ));
    PDK_TRY(pdk_pkl_op(p, kind == PDCKPT_OBJECT_NEWOBJ ? 0x81 : 'R'));
    pdk_pkl_key key = pdk_key_ptr(v, 0);
    PDK_TRY(pdk_pkl_memoize(p, &key));
    return save_object_items(p, v, mode);
}

static pdckpt_status save_scalar(pdk_pkl *p, const pdckpt_value *v) {
    bool         b;
    int64_t      i;
    double       f;
    size_t       len;
    const char  *s;
    pdckpt_dtype np;
    if (pdckpt_value_numpy_scalar(v, &np)) return pdk_pkl_save_np_scalar(p, v, np);
    switch (pdckpt_value_kind(v)) {
    case PDCKPT_KIND_NONE: return pdk_pkl_save_none(p);
    case PDCKPT_KIND_BOOL: return pdckpt_value_get_bool(v, &b), pdk_pkl_save_bool(p, b);
    case PDCKPT_KIND_INT: return pdckpt_value_get_int(v, &i), pdk_pkl_save_int(p, i);
    case PDCKPT_KIND_FLOAT: return pdckpt_value_get_float(v, &f), pdk_pkl_save_float(p, f);
    case PDCKPT_KIND_STRING:
        s = pdckpt_value_get_string(v, &len);
        return pdk_pkl_save_str(p, s, len,
                                pdk_pkl_is_name_like(s, len) ? pdk_key_text(PDK_KEY_STR, s, len)
                                                             : pdk_key_ptr(v, 0));
    default:
        s = pdckpt_value_get_bytes(v, &len);
        return pdk_pkl_save_bytes(p, s, len, pdk_key_ptr(v, 0));
    }
}

pdckpt_status pdk_pkl_save_value(pdk_pkl *p, const pdckpt_value *v, pdk_pkl_mode mode) {
    if (!v) return pdk_fail(p->err, PDCKPT_ERR_ARGUMENT, p->sink->name, -1, "a value is NULL");
    pdckpt_kind kind = pdckpt_value_kind(v);
    if (kind <= PDCKPT_KIND_BYTES) return save_scalar(p, v);
    PDK_TRY(pdk_pkl_boundary(p));
    pdk_pkl_key key = pdk_key_ptr(v, 0);
    bool        hit;
    PDK_TRY(pdk_pkl_memo_get(p, &key, &hit));
    if (hit) return PDCKPT_OK;
    PDK_TRY(pdk_pkl_enter(p));
    pdckpt_status st = save_value_inner(p, v, mode);
    pdk_pkl_leave(p);
    return st;
}

static pdckpt_status save_value_inner(pdk_pkl *p, const pdckpt_value *v, pdk_pkl_mode mode) {
    pdckpt_tensor_view t;
    switch (pdckpt_value_kind(v)) {
    case PDCKPT_KIND_TENSOR: return save_tensor(p, v, mode);
    case PDCKPT_KIND_OBJECT: return save_object(p, v, mode);
    case PDCKPT_KIND_TUPLE:
        if (mode == PDK_MODE_GENERIC && is_tensor_tuple(v, &t))
            return save_tensor_reduce(p, t.name, pdk_key_ptr(pdckpt_value_at(v, 0), 0),
                                      pdckpt_value_at(v, 1), pdk_key_ptr(v, 0));
        return save_container(p, v, mode);
    default: return save_container(p, v, mode);
    }
}
