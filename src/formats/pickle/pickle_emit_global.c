/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_emit_global.c — save_global: a class or function by name (spec pickle §1.10, §1.11).
 * Protocols 2-3 write GLOBAL "module\nname\n" (memoized once); protocol 4 saves the module and
 * name strings and STACK_GLOBAL.  Below protocol 3 CPython rewrites Python 3 names to Python 2's
 * (_compat_pickle's reverse tables: builtins -> __builtin__, ...); a tree read from a protocol-2
 * file may carry the Python 2 spelling, so names are canonicalised to Python 3 first (the renames
 * live with the allowlist in pickle_names.c).  Only globals on the allowlist, or allowed by the
 * caller, are written: a tree from anywhere cannot make pdckpt write a call it would refuse.
 */
#include "pickle_emit.h"
#include "pickle_names.h"

#include <string.h>

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
    if (!pdk_global_writable(module, name, p->allowed, p->n_allowed))
        return pdk_fail(p->err, PDCKPT_ERR_UNSUPPORTED, p->sink->name, -1,
                        "refusing to write global %s.%s: it is not on pdckpt's allowlist of what "
                        "Paddle and numpy checkpoints name, and paddle.load would import and call "
                        "it (allow a class you trust with allowed_globals / --allow-global)",
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
    if (p->proto < 3) pdk_global_compat(&module, &name, false);
    size_t  lm = strlen(module), ln = strlen(name);
    uint8_t op = 'c', nl = '\n';
    PDK_TRY(pdk_pkl_write(p, &op, 1));
    PDK_TRY(pdk_pkl_write(p, module, lm));
    PDK_TRY(pdk_pkl_write(p, &nl, 1));
    PDK_TRY(pdk_pkl_write(p, name, ln));
    return pdk_pkl_write(p, &nl, 1);
}

/* The same pointers name the same text for the whole save (literals, or strings of the tree
 * being saved), so they name the same memoized global. */
static bool seen_before(const pdk_pkl *p, const char *module, const char *name, uint64_t *index) {
    for (unsigned i = 0; i < p->n_globals_seen; i++)
        if (p->globals_seen[i].module == module && p->globals_seen[i].name == name) {
            *index = p->globals_seen[i].index;
            return true;
        }
    return false;
}

static void note_seen(pdk_pkl *p, const char *module, const char *name, uint64_t index) {
    unsigned n = sizeof p->globals_seen / sizeof p->globals_seen[0];
    unsigned i = p->n_globals_seen < n ? p->n_globals_seen++ : (unsigned)(index % n);
    p->globals_seen[i].module = module;
    p->globals_seen[i].name = name;
    p->globals_seen[i].index = index;
}

pdckpt_status pdk_pkl_save_global(pdk_pkl *p, const char *module, const char *name) {
    uint64_t seen;
    if (seen_before(p, module, name, &seen)) return pdk_pkl_get(p, seen);
    const char *asked_module = module, *asked_name = name;
    PDK_TRY(pdk_pkl_boundary(p));
    pdk_global_compat(&module, &name, true);
    pdk_pkl_key key = {PDK_KEY_GLOBAL, module, strlen(module), name, strlen(name), 0};
    bool        hit;
    PDK_TRY(pdk_pkl_memo_get(p, &key, &hit));
    if (hit) return PDCKPT_OK; /* checked when first written */
    PDK_TRY(check_names(p, module, name));
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
    note_seen(p, asked_module, asked_name, p->memo_next);
    return pdk_pkl_memoize(p, &key);
}
