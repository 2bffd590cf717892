/*
 * pickle_emit_global.c — save_global: a class or function by name (spec pickle §1.10, §1.11).
 * Protocols 2-3 write GLOBAL "module\nname\n" (memoized once); protocol 4 saves the module and
 * name strings and STACK_GLOBAL.  Below protocol 3 CPython rewrites Python 3 names to Python 2's
 * (_compat_pickle's reverse tables: builtins -> __builtin__, ...); a tree read from a protocol-2
 * file may carry the Python 2 spelling, so names are canonicalised to Python 3 first.  Only the
 * entries a checkpoint can plausibly hold are listed (not the exception classes).
 */
#include "pickle_emit.h"

#include <string.h>

typedef struct compat_name {
    const char *py3_module, *py3_name; /* py3_name NULL: every name of the module */
    const char *py2_module, *py2_name;
} compat_name;

static const compat_name compat[] = {
    {"builtins", "range", "__builtin__", "xrange"},
    {"builtins", "str", "__builtin__", "unicode"},
    {"builtins", "int", "__builtin__", "long"},
    {"builtins", "chr", "__builtin__", "unichr"},
    {"functools", "reduce", "__builtin__", "reduce"},
    {"builtins", "map", "itertools", "imap"},
    {"builtins", "filter", "itertools", "ifilter"},
    {"builtins", "zip", "itertools", "izip"},
    {"itertools", "filterfalse", "itertools", "ifilterfalse"},
    {"itertools", "zip_longest", "itertools", "izip_longest"},
    {"collections", "UserDict", "UserDict", "IterableUserDict"},
    {"collections", "UserList", "UserList", "UserList"},
    {"collections", "UserString", "UserString", "UserString"},
    {"builtins", NULL, "__builtin__", NULL},
    {"copyreg", NULL, "copy_reg", NULL},
};
#define N_COMPAT (sizeof compat / sizeof compat[0])

/* Rewrites (module, name) from one spelling to the other: to_py2 picks the direction. */
static void translate(const char **module, const char **name, bool to_py2) {
    for (size_t i = 0; i < N_COMPAT; i++) {
        const compat_name *c = &compat[i];
        const char        *from_m = to_py2 ? c->py3_module : c->py2_module;
        const char        *from_n = to_py2 ? c->py3_name : c->py2_name;
        if (strcmp(*module, from_m) != 0 || (from_n && strcmp(*name, from_n) != 0)) continue;
        *module = to_py2 ? c->py2_module : c->py3_module;
        if (from_n) *name = to_py2 ? c->py2_name : c->py3_name;
        return;
    }
}

/* Names of classes and functions implemented in C are fresh str objects (type_name(), method
 * __qualname__); Python-defined classes carry their interned identifier. */
static bool name_is_fresh(const char *module) {
    static const char *const c_modules[] = {"builtins", "_codecs",   "collections",
                                            "copyreg",  "functools", "itertools"};
    if (strcmp(module, "numpy") == 0 || strncmp(module, "numpy.", 6) == 0) return true;
    for (size_t i = 0; i < sizeof c_modules / sizeof c_modules[0]; i++)
        if (strcmp(module, c_modules[i]) == 0) return true;
    return false;
}

static bool is_ascii(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return false;
    return true;
}

static pdckpt_status check_names(pdk_pkl *p, const char *module, const char *name) {
    if (!*module || !*name || strchr(module, '\n') || strchr(name, '\n'))
        return pdk_fail(p->err, PDCKPT_ERR_ARGUMENT, p->sink->name, -1,
                        "global '%s.%s': expected a non-empty module and name without newlines",
                        module, name);
    if (p->proto < 4 && strchr(name, '.'))
        return pdk_fail(p->err, PDCKPT_ERR_UNSUPPORTED, p->sink->name, -1,
                        "global '%s.%s': a nested name needs protocol 4", module, name);
    if (p->proto < 3 && (!is_ascii(module) || !is_ascii(name)))
        return pdk_fail(p->err, PDCKPT_ERR_UNSUPPORTED, p->sink->name, -1,
                        "global '%s.%s': a non-ASCII name needs protocol 3 or 4", module, name);
    return PDCKPT_OK;
}

static pdckpt_status write_text_global(pdk_pkl *p, const char *module, const char *name) {
    if (p->proto < 3) translate(&module, &name, true);
    size_t  lm = strlen(module), ln = strlen(name);
    uint8_t op = 'c', nl = '\n';
    PDK_TRY(pdk_pkl_write(p, &op, 1));
    PDK_TRY(pdk_pkl_write(p, module, lm));
    PDK_TRY(pdk_pkl_write(p, &nl, 1));
    PDK_TRY(pdk_pkl_write(p, name, ln));
    return pdk_pkl_write(p, &nl, 1);
}

pdckpt_status pdk_pkl_save_global(pdk_pkl *p, const char *module, const char *name) {
    PDK_TRY(pdk_pkl_boundary(p));
    translate(&module, &name, false);
    PDK_TRY(check_names(p, module, name));
    pdk_pkl_key key = {PDK_KEY_GLOBAL, module, strlen(module), name, strlen(name), 0};
    bool        hit;
    PDK_TRY(pdk_pkl_memo_get(p, &key, &hit));
    if (hit) return PDCKPT_OK;
    if (p->proto >= 4) {
        PDK_TRY(pdk_pkl_enter(p));
        PDK_TRY(pdk_pkl_save_str(p, module, key.len, pdk_key_text(PDK_KEY_STR, module, key.len)));
        pdk_pkl_key name_key =
            name_is_fresh(module) ? pdk_key_fresh() : pdk_key_text(PDK_KEY_STR, name, key.len2);
        PDK_TRY(pdk_pkl_save_str(p, name, key.len2, name_key));
        pdk_pkl_leave(p);
        PDK_TRY(pdk_pkl_op(p, 0x93)); /* STACK_GLOBAL */
    } else {
        PDK_TRY(write_text_global(p, module, name));
    }
    return pdk_pkl_memoize(p, &key);
}
