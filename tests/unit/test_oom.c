/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_oom.c — allocation failure on every public entry point that takes an allocator: each
 * operation runs with an allocator that fails its N-th allocation, for N = 1, 2, ... until the
 * operation succeeds.  Every run must fail cleanly with NOMEM (never crash), a failed save must
 * leave no temporary behind, and ASan's leak checker (the sanitizer build runs this too) must
 * find nothing.  Operations with thousands of allocations (the PIR program) test every one of the
 * first 2,000 and then a growing stride, so the test stays in seconds.
 */
#include "check.h"
#include "test_util.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

typedef struct failing {
    long countdown; /* allocations left before the failure; < 0 = never fail */
    long calls;
} failing;

static void *fail_alloc(void *ctx, size_t size, size_t alignment) {
    failing *f = ctx;
    f->calls++;
    if (f->countdown == 0) return NULL;
    if (f->countdown > 0) f->countdown--;
    size_t rounded = (size + alignment - 1) / alignment * alignment;
    return aligned_alloc(alignment < sizeof(void *) ? sizeof(void *) : alignment, rounded);
}

static void fail_free(void *ctx, void *ptr, size_t size) {
    (void)ctx;
    (void)size;
    free(ptr);
}

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        pdckpt_status try_status_ = (expr);                                                        \
        if (try_status_ != PDCKPT_OK) return try_status_;                                          \
    } while (0)

/* Options that allocate through `a`; saves skip the fsyncs: allocation, not the disk, is tested. */
static pdckpt_save_options save_opts(const pdckpt_allocator *a) {
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.allocator = a;
    so.durable = false;
    return so;
}

static pdckpt_load_options load_opts(const pdckpt_allocator *a) {
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.allocator = a;
    return lo;
}

typedef pdckpt_status (*operation)(const pdckpt_allocator *a, void *arg, pdckpt_error *err);

static long total_runs; /* reported at the end: how many failing runs the test made */

/* Runs `op` failing allocation 1, 2, ... until it succeeds; returns how many runs it took. */
static long exhaust(operation op, void *arg) {
    for (long n = 0; n < 1000000; n += n < 2000 ? 1 : 1 + n / 400) {
        failing          f = {n, 0};
        pdckpt_allocator a = {fail_alloc, fail_free, &f};
        pdckpt_error     err = PDCKPT_ERROR_INIT;
        pdckpt_status    st = op(&a, arg, &err);
        total_runs++;
        if (st == PDCKPT_OK) return n + 1;
        if (st != PDCKPT_ERR_NOMEM) {
            char line[1200];
            fprintf(stderr, "allocation %ld failed: expected nomem, got %s: %s\n", n,
                    pdckpt_status_name(st), pdckpt_error_format(&err, line, sizeof line));
            CHECK(false);
            return -1;
        }
    }
    CHECK(false);
    return -1;
}

/* Entries of `dir` named as a save's temporaries (src/io/fs_util.c: ".<base>.pdckpt-tmp-..."). */
static int temporaries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int            n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) n += strstr(de->d_name, ".pdckpt-tmp-") != NULL;
    closedir(d);
    return n;
}

static const char *fixture(const char *rel) {
    return tu_fixture(rel);
}

static pdckpt_value *sample(void) {
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    for (int i = 0; i < 12; i++) { /* > 8 keys: the dict builds its hash index */
        char    name[32];
        int64_t dims[2] = {3, i + 1};
        snprintf(name, sizeof name, "layer_%d.w_0", i);
        pdckpt_dict_set(d, name, tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, dims, (unsigned)i),
                        NULL);
    }
    uint64_t        level[3] = {0, 1, 3};
    const uint64_t *levels[1] = {level};
    uint64_t        lens[1] = {3};
    pdckpt_tensor_set_lod(pdckpt_dict_get_mut(d, "layer_2.w_0"), 1, levels, lens, NULL);
    return d;
}

/* A training state as paddle.save writes it: tensors plus an LR scheduler and other leaves. */
static pdckpt_value *optimizer_state(void) {
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    int64_t       dims[1] = {4};
    pdckpt_dict_set(d, "w_moment1_0", tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 1, dims, 7), NULL);
    pdckpt_dict_set(d, "w_beta1_pow_acc_0", tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 0, dims, 8),
                    NULL);
    pdckpt_value *lr = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(lr, "last_epoch", pdckpt_value_new_int(NULL, 3), NULL);
    pdckpt_dict_set(lr, "last_lr", pdckpt_value_new_float(NULL, 0.001), NULL);
    pdckpt_dict_set(d, "LR_Scheduler", lr, NULL);
    pdckpt_value *list = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST);
    pdckpt_value_append(list, pdckpt_value_new_string(NULL, "adam", 4), NULL);
    pdckpt_value_append(list, pdckpt_value_new_bool(NULL, true), NULL);
    pdckpt_value_append(list, pdckpt_value_new_none(NULL), NULL);
    pdckpt_dict_set(d, "extra", list, NULL);
    return d;
}

typedef struct save_arg {
    const pdckpt_value *root;
    pdckpt_format       format;
    int                 protocol;
    const char         *path; /* NULL: save to memory */
    bool                checksum;
} save_arg;

static pdckpt_status save_op(const pdckpt_allocator *a, void *arg, pdckpt_error *err) {
    save_arg           *s = arg;
    pdckpt_save_options so = save_opts(a);
    so.format = s->format;
    so.protocol = s->protocol ? s->protocol : 4;
    so.checksum = s->checksum;
    if (s->path) return pdckpt_save_file(s->root, s->path, &so, err);
    void         *data = NULL;
    size_t        len = 0;
    pdckpt_status st = pdckpt_save_memory(s->root, &so, &data, &len, err);
    pdckpt_free(a, data, len);
    return st;
}

typedef struct load_arg {
    const void   *data; /* bytes, or NULL to load `path` */
    size_t        len;
    const char   *path;
    pdckpt_format format;
    bool          zero_copy;
    bool          verify_file;
} load_arg;

static pdckpt_status load_op(const pdckpt_allocator *a, void *arg, pdckpt_error *err) {
    load_arg           *l = arg;
    pdckpt_load_options lo = load_opts(a);
    lo.format = l->format;
    lo.zero_copy = l->zero_copy;
    if (l->verify_file) return pdckpt_verify_file(l->path, &lo, NULL, err);
    pdckpt_value *out = NULL;
    pdckpt_status st = l->data ? pdckpt_load_memory(l->data, l->len, &lo, &out, NULL, err)
                               : pdckpt_load_file(l->path, &lo, &out, NULL, err);
    pdckpt_value_free(out);
    return st;
}

/* Saves `s`, then loads it back (copying and zero-copy), failing every allocation of each. */
static void round_trip(save_arg s) {
    CHECK(exhaust(save_op, &s) > 1);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = s.format;
    so.protocol = s.protocol ? s.protocol : 4;
    so.checksum = s.checksum;
    load_arg     l = {NULL, 0, s.path, s.format, false, false};
    void        *data = NULL;
    pdckpt_error err = PDCKPT_ERROR_INIT;
    if (s.path)
        CHECK_OK(pdckpt_save_file(s.root, s.path, &so, &err), &err);
    else
        CHECK_OK(pdckpt_save_memory(s.root, &so, &data, &l.len, &err), &err);
    l.data = data;
    CHECK(exhaust(load_op, &l) > 1);
    l.zero_copy = true;
    CHECK(exhaust(load_op, &l) > 1);
    if (s.path) {
        l.verify_file = true;
        CHECK(exhaust(load_op, &l) > 1);
    }
    pdckpt_free(NULL, data, l.len);
}

static void test_memory_formats(void) {
    pdckpt_value *state = sample();
    pdckpt_value *no_lod = sample();
    pdckpt_tensor_set_lod(pdckpt_dict_get_mut(no_lod, "layer_2.w_0"), 0, NULL, NULL, NULL);
    pdckpt_value *opt = optimizer_state();
    round_trip(
        (save_arg){pdckpt_dict_get(state, "layer_2.w_0"), PDCKPT_FORMAT_TENSOR, 0, NULL, false});
    round_trip((save_arg){state, PDCKPT_FORMAT_COMBINED, 0, NULL, false});
    round_trip((save_arg){no_lod, PDCKPT_FORMAT_SAFETENSORS, 0, NULL, false});
    round_trip((save_arg){opt, PDCKPT_FORMAT_PICKLE, 2, NULL, false});
    round_trip((save_arg){opt, PDCKPT_FORMAT_PICKLE, 4, NULL, false});
    pdckpt_value_free(state);
    pdckpt_value_free(no_lod);
    pdckpt_value_free(opt);
}

static void test_file_formats(void) {
    char         *dir = tu_tempdir();
    pdckpt_value *state = sample();
    pdckpt_value *opt = optimizer_state();
    char          path[4200];
    snprintf(path, sizeof path, "%s/vars", dir);
    round_trip((save_arg){state, PDCKPT_FORMAT_VARS_DIR, 0, path, false});
    snprintf(path, sizeof path, "%s/model.pdiparams", dir);
    round_trip((save_arg){state, PDCKPT_FORMAT_COMBINED, 0, path, true});
    snprintf(path, sizeof path, "%s/model.pdopt", dir);
    round_trip((save_arg){opt, PDCKPT_FORMAT_PICKLE, 2, path, false});
    CHECK_EQ_INT(temporaries(dir), 0); /* no failed save left one behind */
    pdckpt_value_free(state);
    pdckpt_value_free(opt);
    tu_rmtree(dir);
    free(dir);
}

typedef struct program_arg {
    const void           *data;
    size_t                len;
    const pdckpt_program *program;
    const pdckpt_value   *state;
    const char           *dir;
} program_arg;

static pdckpt_status program_op(const pdckpt_allocator *a, void *arg, pdckpt_error *err) {
    program_arg        *p = arg;
    pdckpt_load_options lo = load_opts(a);
    pdckpt_program     *program = NULL;
    pdckpt_status       st = pdckpt_program_load_memory(p->data, p->len, &lo, &program, err);
    pdckpt_program_free(program);
    return st;
}

static void exhaust_program_file(const char *rel) {
    program_arg p = {0};
    void       *data = tu_read_file(fixture(rel), &p.len);
    CHECK(data != NULL);
    p.data = data;
    CHECK(exhaust(program_op, &p) > 1);
    free(data);
}

static pdckpt_status serialize_op(const pdckpt_allocator *a, void *arg, pdckpt_error *err) {
    program_arg        *p = arg;
    pdckpt_save_options so = save_opts(a);
    void               *data = NULL;
    size_t              len = 0;
    pdckpt_status st = pdckpt_serialize_persistables(p->program, p->state, &so, &data, &len, err);
    pdckpt_free(a, data, len);
    return st;
}

static pdckpt_status deserialize_op(const pdckpt_allocator *a, void *arg, pdckpt_error *err) {
    program_arg        *p = arg;
    pdckpt_load_options lo = load_opts(a);
    pdckpt_value       *out = NULL;
    pdckpt_status st = pdckpt_deserialize_persistables(p->program, p->data, p->len, &lo, &out, err);
    pdckpt_value_free(out);
    return st;
}

static pdckpt_status persistables_op(const pdckpt_allocator *a, void *arg, pdckpt_error *err) {
    program_arg        *p = arg;
    pdckpt_save_options so = save_opts(a);
    TRY(pdckpt_save_persistables(p->program, p->state, p->dir, NULL, &so, err));
    TRY(pdckpt_save_persistables(p->program, p->state, p->dir, "__params__", &so, err));
    pdckpt_load_options lo = load_opts(a);
    pdckpt_value       *out = NULL;
    pdckpt_status       st = pdckpt_load_persistables(p->program, p->dir, NULL, &lo, &out, err);
    pdckpt_value_free(out);
    if (st != PDCKPT_OK) return st;
    st = pdckpt_load_persistables(p->program, p->dir, "__params__", &lo, &out, err);
    pdckpt_value_free(out);
    return st;
}

/* The static API on the fit_a_line program (1.x __model__ with two parameters). */
static void test_programs_and_static_api(void) {
    exhaust_program_file("fit_a_line-sepfiles-2019-05/__model__");
    exhaust_program_file("pp-lcnet-x0_25-textline-ori-pir-paddle3/inference.json");
    pdckpt_program *program = NULL;
    pdckpt_error    err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_program_load_file(fixture("fit_a_line-sepfiles-2019-05/__model__"), NULL,
                                      &program, &err),
             &err);
    pdckpt_value *state = NULL;
    CHECK_OK(pdckpt_load_persistables(program, fixture("fit_a_line-sepfiles-2019-05"), NULL, NULL,
                                      &state, &err),
             &err);
    char       *dir = tu_tempdir();
    program_arg p = {NULL, 0, program, state, dir};
    CHECK(exhaust(serialize_op, &p) > 1);
    void *bytes = NULL;
    CHECK_OK(pdckpt_serialize_persistables(program, state, NULL, &bytes, &p.len, &err), &err);
    p.data = bytes;
    CHECK(exhaust(deserialize_op, &p) > 1);
    CHECK(exhaust(persistables_op, &p) > 1);
    CHECK_EQ_INT(temporaries(dir), 0);
    pdckpt_free(NULL, bytes, p.len);
    pdckpt_value_free(state);
    pdckpt_program_free(program);
    tu_rmtree(dir);
    free(dir);
}

typedef struct dygraph_arg {
    const pdckpt_value *params, *opt;
    const char         *prefix;      /* where the files go */
    const char         *program_src; /* static: the program file copied to prefix.pdmodel */
} dygraph_arg;

static pdckpt_status static_op(const pdckpt_allocator *a, void *arg, pdckpt_error *err) {
    dygraph_arg        *d = arg;
    pdckpt_save_options so = save_opts(a);
    pdckpt_value       *ckpt = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(ckpt, "pdparams", pdckpt_value_retain((pdckpt_value *)d->params), NULL);
    pdckpt_status st = pdckpt_static_save(ckpt, d->prefix, &so, err);
    pdckpt_value_free(ckpt);
    TRY(st);
    pdckpt_load_options lo = load_opts(a);
    pdckpt_value       *out = NULL;
    st = pdckpt_static_load(d->prefix, &lo, &out, err);
    pdckpt_value_free(out);
    return st;
}

static pdckpt_status dygraph_op(const pdckpt_allocator *a, void *arg, pdckpt_error *err) {
    dygraph_arg        *d = arg;
    pdckpt_save_options so = save_opts(a);
    TRY(pdckpt_save_dygraph(d->params, d->opt, d->prefix, &so, err));
    pdckpt_load_options lo = load_opts(a);
    pdckpt_value       *params = NULL, *opt = NULL;
    pdckpt_status       st = pdckpt_load_dygraph(d->prefix, &lo, false, &params, &opt, err);
    pdckpt_value_free(params);
    pdckpt_value_free(opt);
    return st;
}

static pdckpt_status dygraph_dir_op(const pdckpt_allocator *a, void *arg, pdckpt_error *err) {
    dygraph_arg        *d = arg;
    pdckpt_save_options so = save_opts(a);
    pdckpt_value       *opts = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(opts, "adam", pdckpt_value_retain((pdckpt_value *)d->opt), NULL);
    pdckpt_status st = pdckpt_dygraph_save_persistables(d->params, d->prefix, opts, &so, err);
    pdckpt_value_free(opts);
    TRY(st);
    pdckpt_load_options lo = load_opts(a);
    pdckpt_value       *params = NULL, *optimizers = NULL;
    st = pdckpt_dygraph_load_persistables(d->prefix, &lo, &params, &optimizers, err);
    pdckpt_value_free(params);
    pdckpt_value_free(optimizers);
    return st;
}

static pdckpt_status params_info_op(const pdckpt_allocator *a, void *arg, pdckpt_error *err) {
    pdckpt_load_options lo = load_opts(a);
    pdckpt_value       *out = NULL;
    pdckpt_status       st = pdckpt_load_params_info(arg, &lo, &out, err);
    pdckpt_value_free(out);
    return st;
}

static pdckpt_status async_op(const pdckpt_allocator *a, void *arg, pdckpt_error *err) {
    dygraph_arg        *d = arg;
    pdckpt_save_options so = save_opts(a);
    so.format = PDCKPT_FORMAT_PICKLE;
    pdckpt_async_saver *saver = NULL;
    TRY(pdckpt_async_saver_new(&so, &saver, err));
    pdckpt_status st = pdckpt_async_save(saver, d->opt, d->prefix, NULL, NULL, err);
    if (st == PDCKPT_OK) st = pdckpt_async_wait(saver, err);
    pdckpt_async_saver_free(saver);
    return st;
}

/* The 1.x dygraph layouts, paddle.static.save/load, .pdiparams.info and the async saver. */
static void test_training_apis(void) {
    char         *dir = tu_tempdir();
    pdckpt_value *params = sample();
    pdckpt_tensor_set_lod(pdckpt_dict_get_mut(params, "layer_2.w_0"), 0, NULL, NULL, NULL);
    pdckpt_value *opt = optimizer_state();
    char          prefix[4200], program[4300];
    dygraph_arg   d = {params, opt, prefix, NULL};
    snprintf(prefix, sizeof prefix, "%s/model", dir);
    CHECK(exhaust(dygraph_op, &d) > 1);
    snprintf(prefix, sizeof prefix, "%s/persistables", dir);
    CHECK(exhaust(dygraph_dir_op, &d) > 1);
    snprintf(prefix, sizeof prefix, "%s/async.pdopt", dir);
    CHECK(exhaust(async_op, &d) > 1);
    /* static: the fit_a_line program beside its parameters, as paddle.static.save leaves them */
    pdckpt_value *state = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_load_file(fixture("fit_a_line-sepfiles-2019-05"), NULL, &state, NULL, &err),
             &err);
    snprintf(prefix, sizeof prefix, "%s/static", dir);
    snprintf(program, sizeof program, "%s.pdmodel", prefix);
    size_t len = 0;
    void  *bytes = tu_read_file(fixture("fit_a_line-sepfiles-2019-05/__model__"), &len);
    CHECK(bytes && tu_write_file(program, bytes, len) == 0);
    free(bytes);
    d.params = state;
    CHECK(exhaust(static_op, &d) > 1);
    CHECK(exhaust(params_info_op,
                  (void *)fixture("ppyolo_tiny-pdiparams-paddle2.4.0/model.pdiparams.info")) > 1);
    CHECK_EQ_INT(temporaries(dir), 0);
    pdckpt_value_free(state);
    pdckpt_value_free(params);
    pdckpt_value_free(opt);
    tu_rmtree(dir);
    free(dir);
}

int main(void) {
    RUN(test_memory_formats);
    RUN(test_file_formats);
    RUN(test_programs_and_static_api);
    RUN(test_training_apis);
    printf("test_oom: %ld runs, each failing one allocation\n", total_runs);
    return CHECK_SUMMARY();
}
