/* SPDX-License-Identifier: Apache-2.0 */
/*
 * demo.c — what a C user of pdckpt writes: build a small MLP's weights and an Adam optimizer's
 * moments, save them as a combined .pdiparams, a per-variable directory, safetensors and bytes in
 * memory, load every one back and check it is bit-identical.  Then save the MLP and its Adam state
 * the way Paddle does for resuming training: paddle.save's .pdparams + .pdopt (protocol 4) and
 * Paddle 1.8's fluid.save_dygraph pair (protocol 2).  Run by `./run.sh demo`.
 */
#include <math.h>
#include <pdckpt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, const pdckpt_error *err) {
    char line[1200];
    fprintf(stderr, "demo: %s failed: %s\n", what, pdckpt_error_format(err, line, sizeof line));
    return 1;
}

/* Adds name -> float32 tensor of `dims` filled with a deterministic pattern. */
static int add_tensor(pdckpt_value *state, const char *name, int32_t n_dims, const int64_t *dims,
                      float scale, pdckpt_error *err) {
    pdckpt_value *t;
    if (pdckpt_tensor_new(NULL, PDCKPT_DTYPE_FLOAT32, n_dims, dims, &t, err) != PDCKPT_OK) return 1;
    pdckpt_tensor_view v;
    pdckpt_tensor_get(t, &v);
    float *data = pdckpt_tensor_data_mut(t);
    for (uint64_t i = 0; i < v.n_elements; i++) data[i] = scale * sinf((float)i * 0.37f);
    if (pdckpt_tensor_set_name(t, name, err) != PDCKPT_OK) return pdckpt_value_free(t), 1;
    return pdckpt_dict_set(state, name, t, err) != PDCKPT_OK;
}

static int build_state(pdckpt_value *state, pdckpt_error *err) {
    static const char *const layers[] = {"linear_0", "linear_1"};
    static const int64_t     w_dims[2][2] = {{784, 128}, {128, 10}};
    static const char *const moments[] = {"moment1_0", "moment2_0"};
    const int64_t            one[1] = {1};
    char                     name[128];
    for (int l = 0; l < 2; l++) {
        int64_t b_dims[1] = {w_dims[l][1]};
        snprintf(name, sizeof name, "%s.w_0", layers[l]);
        if (add_tensor(state, name, 2, w_dims[l], 0.1f, err)) return 1;
        snprintf(name, sizeof name, "%s.b_0", layers[l]);
        if (add_tensor(state, name, 1, b_dims, 0.01f, err)) return 1;
        for (int m = 0; m < 2; m++) { /* Adam: moments shaped like the parameter */
            snprintf(name, sizeof name, "%s.w_0_%s", layers[l], moments[m]);
            if (add_tensor(state, name, 2, w_dims[l], 0.001f, err)) return 1;
        }
        snprintf(name, sizeof name, "%s.w_0_beta1_pow_acc_0", layers[l]);
        if (add_tensor(state, name, 1, one, 0.9f, err)) return 1;
    }
    return 0;
}

/* Same keys, and every tensor bit-identical (dict order may differ: combined files are sorted). */
static bool same_tensors(const pdckpt_value *a, const pdckpt_value *b) {
    if (pdckpt_value_len(a) != pdckpt_value_len(b)) return false;
    for (size_t i = 0; i < pdckpt_value_len(a); i++) {
        const char *key = pdckpt_value_get_string(pdckpt_dict_key_at(a, i), NULL);
        if (!pdckpt_value_equal(pdckpt_value_at(a, i), pdckpt_dict_get(b, key))) return false;
    }
    return true;
}

static int cmp_str(const void *x, const void *y) {
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static int save_and_reload(const pdckpt_value *state, const char *path, pdckpt_format format) {
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = format;
    if (pdckpt_save_file(state, path, &so, &err) != PDCKPT_OK) return fail("save", &err);
    /* A combined file stores no names: like Paddle, we supply them, sorted byte-wise. */
    const char *names[64];
    size_t      n = pdckpt_value_len(state);
    for (size_t i = 0; i < n && i < 64; i++)
        names[i] = pdckpt_value_get_string(pdckpt_dict_key_at(state, i), NULL);
    qsort(names, n, sizeof *names, cmp_str);
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    if (format == PDCKPT_FORMAT_COMBINED) {
        lo.names = names;
        lo.n_names = n;
    }
    pdckpt_value *back = NULL;
    pdckpt_format found;
    if (pdckpt_load_file(path, &lo, &back, &found, &err) != PDCKPT_OK) return fail("load", &err);
    bool same = same_tensors(state, back);
    printf("saved %-28s as %-11s reloaded as %-11s %zu tensors, %s\n", path,
           pdckpt_format_name(format), pdckpt_format_name(found), pdckpt_value_len(back),
           same ? "identical" : "DIFFERENT");
    pdckpt_value_free(back);
    return same ? 0 : 1;
}

static int memory_round_trip(const pdckpt_value *state) {
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_SAFETENSORS;
    void  *bytes = NULL;
    size_t len = 0;
    if (pdckpt_save_memory(state, &so, &bytes, &len, &err) != PDCKPT_OK)
        return fail("save_memory", &err);
    pdckpt_value *back = NULL;
    pdckpt_status st = pdckpt_load_memory(bytes, len, NULL, &back, NULL, &err);
    bool          same = st == PDCKPT_OK && same_tensors(state, back);
    printf("saved to memory (%zu bytes of safetensors) and reloaded: %s\n", len,
           same ? "identical" : "DIFFERENT");
    pdckpt_value_free(back);
    pdckpt_free(NULL, bytes, len);
    return st != PDCKPT_OK ? fail("load_memory", &err) : !same;
}

/* Splits the flat state into what Paddle keeps apart: the layer's state dict (structured keys,
 * tensors named linear_N.w_0) and the optimizer's (accumulators keyed by their names, then the
 * LR scheduler's state). */
static int split_for_paddle(const pdckpt_value *state, pdckpt_value *params, pdckpt_value *opt,
                            pdckpt_error *err) {
    int layer = 0;
    for (size_t i = 0; i < pdckpt_value_len(state); i++) {
        const char   *name = pdckpt_value_get_string(pdckpt_dict_key_at(state, i), NULL);
        pdckpt_value *t = pdckpt_value_retain((pdckpt_value *)pdckpt_value_at(state, i));
        char          key[64];
        if (strstr(name, "moment") || strstr(name, "pow_acc")) {
            if (pdckpt_dict_set(opt, name, t, err) != PDCKPT_OK) return 1;
            continue;
        }
        bool weight = strstr(name, ".w_0") != NULL;
        snprintf(key, sizeof key, "fc%d.%s", weight ? layer : layer++, weight ? "weight" : "bias");
        if (pdckpt_dict_set(params, key, t, err) != PDCKPT_OK) return 1;
    }
    pdckpt_value *lr = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    if (!lr || pdckpt_dict_set(lr, "last_epoch", pdckpt_value_new_int(NULL, 10), err) ||
        pdckpt_dict_set(lr, "last_lr", pdckpt_value_new_float(NULL, 0.001), err))
        return pdckpt_value_free(lr), 1;
    return pdckpt_dict_set(opt, "LR_Scheduler", lr, err) != PDCKPT_OK;
}

/* Every entry of `want` is in `got` and equal (a loaded pickle also holds Paddle's name table). */
static bool holds(const pdckpt_value *got, const pdckpt_value *want) {
    for (size_t i = 0; i < pdckpt_value_len(want); i++) {
        const char *key = pdckpt_value_get_string(pdckpt_dict_key_at(want, i), NULL);
        if (!pdckpt_value_equal(pdckpt_value_at(want, i), pdckpt_dict_get(got, key))) return false;
    }
    return true;
}

static int reload_pickle(const char *path, const pdckpt_value *want) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *back = NULL;
    if (pdckpt_load_file(path, NULL, &back, NULL, &err) != PDCKPT_OK) return fail("load", &err);
    bool same = holds(back, want);
    printf("saved %-28s as %-11s reloaded, %s\n", path, "pickle", same ? "identical" : "DIFFERENT");
    pdckpt_value_free(back);
    return same ? 0 : 1;
}

/* paddle.save(layer.state_dict()) / paddle.save(opt.state_dict()), and fluid.save_dygraph. */
static int save_for_paddle(const pdckpt_value *state, const char *dir) {
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    pdckpt_value       *params = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_value       *opt = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    int                 rc = !params || !opt || split_for_paddle(state, params, opt, &err);
    char                path[4096];
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT; /* protocol 4, like paddle.save */
    for (int i = 0; i < 2 && !rc; i++) {
        snprintf(path, sizeof path, "%s/mlp.%s", dir, i ? "pdopt" : "pdparams");
        if (pdckpt_save_file(i ? opt : params, path, &so, &err) != PDCKPT_OK)
            rc = fail("save", &err);
        else
            rc = reload_pickle(path, i ? opt : params);
    }
    snprintf(path, sizeof path, "%s/mlp_fluid18", dir);
    if (!rc && pdckpt_save_dygraph(params, opt, path, &so, &err) != PDCKPT_OK)
        rc = fail("save_dygraph", &err);
    if (!rc) printf("saved %s.pdparams + .pdopt as fluid.save_dygraph does (protocol 2)\n", path);
    pdckpt_value_free(params);
    pdckpt_value_free(opt);
    return rc;
}

int main(int argc, char **argv) {
    const char   *dir = argc > 1 ? argv[1] : ".";
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *state = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    if (!state || build_state(state, &err)) return fail("building the state", &err);
    printf("built an MLP (784-128-10) with Adam moments: %zu tensors\n", pdckpt_value_len(state));
    char path[4096];
    int  rc = 0;
    snprintf(path, sizeof path, "%s/mlp.pdiparams", dir);
    rc |= save_and_reload(state, path, PDCKPT_FORMAT_COMBINED);
    snprintf(path, sizeof path, "%s/mlp_vars", dir);
    rc |= save_and_reload(state, path, PDCKPT_FORMAT_VARS_DIR);
    snprintf(path, sizeof path, "%s/mlp.safetensors", dir);
    rc |= save_and_reload(state, path, PDCKPT_FORMAT_SAFETENSORS);
    rc |= memory_round_trip(state);
    rc |= save_for_paddle(state, dir);
    pdckpt_value_free(state);
    return rc;
}
