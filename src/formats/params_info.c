/* SPDX-License-Identifier: Apache-2.0 */
/*
 * params_info.c — `.pdiparams.info` / `__variables.info__` (spec binary-and-static-formats.md
 * §3.5): jit.save pickles (protocol 2) a plain dict {variable name: {"structured_name": str,
 * "stop_gradient": bool, "trainable": bool}}.  The general pickle reader (pickle_read.c, which
 * executes nothing and enforces the load options' limits) decodes it; this module only checks
 * the result has that shape, so that `ls` can rely on it, and says where it does not.
 */
#include "pdk_program.h"
#include "pickle/pickle.h"

#include <string.h>

static const char *kind_name(pdckpt_kind k) {
    static const char *const names[] = {"None",   "a bool",   "an int",    "a float",
                                        "a str",  "bytes",    "a list",    "a tuple",
                                        "a dict", "a tensor", "an object", "a set"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "value";
}

static bool plain_leaf(const pdckpt_value *v) {
    pdckpt_kind k = pdckpt_value_kind(v);
    return k == PDCKPT_KIND_STRING || k == PDCKPT_KIND_BOOL || k == PDCKPT_KIND_INT ||
           k == PDCKPT_KIND_NONE;
}

/* One entry: a variable name mapped to a dict of plain attributes. */
static pdckpt_status check_entry(const pdk_input *in, size_t i, const pdckpt_value *key,
                                 const pdckpt_value *attrs, pdckpt_error *err) {
    if (pdckpt_value_kind(key) != PDCKPT_KIND_STRING)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, in->name, -1,
                        "expected a .pdiparams.info dict of dicts keyed by variable names, found "
                        "%s key at entry %zu",
                        kind_name(pdckpt_value_kind(key)), i);
    const char *name = pdckpt_value_get_string(key, NULL);
    if (pdckpt_value_kind(attrs) != PDCKPT_KIND_DICT)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, in->name, -1,
                        "expected a .pdiparams.info dict of dicts, found %s for '%s'",
                        kind_name(pdckpt_value_kind(attrs)), name);
    for (size_t j = 0; j < pdckpt_value_len(attrs); j++) {
        const pdckpt_value *k = pdckpt_dict_key_at(attrs, j), *v = pdckpt_value_at(attrs, j);
        if (pdckpt_value_kind(k) != PDCKPT_KIND_STRING || !plain_leaf(v))
            return pdk_fail(err, PDCKPT_ERR_FORMAT, in->name, -1,
                            "expected '%s' to map attribute names to strings and booleans, found "
                            "%s -> %s entry",
                            name, kind_name(pdckpt_value_kind(k)), kind_name(pdckpt_value_kind(v)));
    }
    return PDCKPT_OK;
}

pdckpt_status pdk_params_info_parse(const pdk_input *in, const pdckpt_load_options *opts,
                                    pdckpt_value **out, pdckpt_error *err) {
    if (in->len < 2 || in->data[0] != 0x80)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, in->name, 0,
                        "expected a pickle (0x80 PROTO), found %s",
                        in->len ? "other bytes" : "an empty file");
    pdckpt_load_options o = *opts;
    o.verify = true; /* the file must end right after STOP */
    pdckpt_value *root = NULL;
    PDK_TRY(pdk_pickle_load(in, &o, &root, err));
    pdckpt_status st = PDCKPT_OK;
    if (pdckpt_value_kind(root) != PDCKPT_KIND_DICT)
        st = pdk_fail(err, PDCKPT_ERR_FORMAT, in->name, -1,
                      "expected a .pdiparams.info pickle (a dict of dicts), found %s",
                      kind_name(pdckpt_value_kind(root)));
    for (size_t i = 0; st == PDCKPT_OK && i < pdckpt_value_len(root); i++)
        st = check_entry(in, i, pdckpt_dict_key_at(root, i), pdckpt_value_at(root, i), err);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(root);
        return st;
    }
    *out = root;
    return PDCKPT_OK;
}
