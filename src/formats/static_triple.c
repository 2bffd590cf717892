/*
 * static_triple.c — paddle.static.save's checkpoint as one: `X.pdmodel` (or PIR `X.json`) names
 * the variables, `X.pdparams` holds the parameters and `X.pdopt` the optimizer state, each a
 * pickle of {variable name: ndarray} (spec binary-and-static-formats.md §4.3).  Like
 * paddle.static.load, every variable the program selects must be in one of the two files; the
 * result lists them in the program's order, named and checked against their declarations.
 */
#include "pdk_program.h"

#include <string.h>

static pdckpt_status load_pickle(const char *path, const pdckpt_load_options *opts,
                                 pdckpt_value **out, pdckpt_error *err) {
    pdk_input in;
    PDK_TRY(pdk_input_open_file(path, opts->zero_copy, opts->allocator, &in, err));
    pdckpt_status st = pdk_format_get(PDCKPT_FORMAT_PICKLE)->load(&in, opts, out, err);
    pdk_input_close(&in); /* tensors keep their own reference to the mapping */
    if (st == PDCKPT_OK && pdckpt_value_kind(*out) != PDCKPT_KIND_DICT) {
        pdckpt_value_free(*out);
        *out = NULL;
        st = pdk_fail(err, PDCKPT_ERR_FORMAT, path, -1,
                      "expected a pickled dict of variable name -> array (paddle.static.save)");
    }
    return st;
}

/* A new tensor over the same bytes (the pickle's tensors may be memo-shared, so they are not
 * renamed in place). */
static pdckpt_status share_tensor(const pdckpt_value *src, const pdckpt_allocator *a,
                                  pdckpt_value **out, pdckpt_error *err) {
    pdckpt_tensor_view tv;
    pdckpt_tensor_get(src, &tv);
    if (tv.buffer)
        return pdckpt_tensor_new_in_buffer(a, tv.dtype, tv.n_dims, tv.dims, tv.buffer, tv.data, out,
                                           err);
    return pdckpt_tensor_new_borrowed(a, tv.dtype, tv.n_dims, tv.dims, tv.data, out, err);
}

/* Takes variable `v` out of `params` or `opt` (a new reference), checked and named. */
static pdckpt_status take_var(const pdk_prog_var *v, const pdckpt_value *params,
                              const pdckpt_value *opt, const pdckpt_inference_paths *paths,
                              const pdckpt_allocator *a, pdckpt_value *dict, pdckpt_error *err) {
    const pdckpt_value *found = pdckpt_dict_get(params, v->name);
    const char         *source = paths->params;
    if (!found && opt) {
        found = pdckpt_dict_get(opt, v->name);
        source = paths->opt;
    }
    if (!found)
        return pdk_fail(err, PDCKPT_ERR_NOT_FOUND, paths->params, -1,
                        "expected the program's persistable variable '%s' in %s%s%s, found none",
                        v->name, paths->params, paths->opt[0] ? " or " : "", paths->opt);
    if (pdckpt_value_kind(found) != PDCKPT_KIND_TENSOR)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, source, -1,
                        "variable '%s': expected an array, found a %s", v->name,
                        pdckpt_kind_name(pdckpt_value_kind(found)));
    PDK_TRY(pdk_inference_check_kind(v, true, source, err));
    PDK_TRY(pdk_program_check_tensor(v, found, source, -1, err));
    pdckpt_value *t = NULL;
    PDK_TRY(share_tensor(found, a, &t, err));
    pdckpt_status st = pdckpt_tensor_set_name(t, v->name, err);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(t);
        return st;
    }
    return pdckpt_dict_set(dict, v->name, t, err);
}

pdckpt_status pdk_static_triple_load(const pdckpt_inference_paths *paths, const pdckpt_program *p,
                                     const pdckpt_load_options *opts, pdckpt_value **out,
                                     pdckpt_error *err) {
    pdckpt_value *params = NULL, *opt = NULL, *dict = NULL;
    pdckpt_status st = load_pickle(paths->params, opts, &params, err);
    if (st == PDCKPT_OK && paths->opt[0]) st = load_pickle(paths->opt, opts, &opt, err);
    if (st == PDCKPT_OK) {
        dict = pdckpt_value_new_container(opts->allocator, PDCKPT_KIND_DICT);
        if (!dict) st = pdk_fail_nomem(err, "parameters");
    }
    for (size_t i = 0; i < p->n_persistables && st == PDCKPT_OK; i++)
        st = take_var(&p->vars[p->persistable_var[i]], params, opt, paths, opts->allocator, dict,
                      err);
    pdckpt_value_free(params);
    pdckpt_value_free(opt);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(dict);
        return st;
    }
    *out = dict;
    return PDCKPT_OK;
}
