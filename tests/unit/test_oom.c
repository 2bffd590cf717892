/*
 * test_oom.c — allocation failure on every path: each operation runs with an allocator that fails
 * its N-th allocation, for N = 1, 2, ... until the operation succeeds.  Every run must fail
 * cleanly with NOMEM (never crash), and ASan's leak checker (the sanitizer build runs this too)
 * must find nothing.
 */
#include "check.h"
#include "test_util.h"

#include <stdlib.h>

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

typedef pdckpt_status (*operation)(const pdckpt_allocator *a, void *arg, pdckpt_error *err);

/* Runs `op` failing allocation 1, 2, ... until it succeeds; returns how many runs it took. */
static long exhaust(operation op, void *arg) {
    for (long n = 0; n < 100000; n++) {
        failing          f = {n, 0};
        pdckpt_allocator a = {fail_alloc, fail_free, &f};
        pdckpt_error     err = PDCKPT_ERROR_INIT;
        pdckpt_status    st = op(&a, arg, &err);
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

typedef struct bytes {
    void         *data;
    size_t        len;
    pdckpt_format format;
} bytes;

static pdckpt_status load_op(const pdckpt_allocator *a, void *arg, pdckpt_error *err) {
    bytes              *b = arg;
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.allocator = a;
    lo.format = b->format;
    lo.zero_copy = false; /* copies exercise more allocations */
    pdckpt_value *out = NULL;
    pdckpt_status st = pdckpt_load_memory(b->data, b->len, &lo, &out, NULL, err);
    pdckpt_value_free(out);
    return st;
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

typedef struct save_arg {
    const pdckpt_value *root;
    pdckpt_format       format;
} save_arg;

static pdckpt_status save_op(const pdckpt_allocator *a, void *arg, pdckpt_error *err) {
    save_arg           *s = arg;
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.allocator = a;
    so.format = s->format;
    void         *data = NULL;
    size_t        len = 0;
    pdckpt_status st = pdckpt_save_memory(s->root, &so, &data, &len, err);
    pdckpt_free(a, data, len);
    return st;
}

static void test_every_allocation_failure(void) {
    pdckpt_value *state = sample();
    pdckpt_value *no_lod = sample();
    pdckpt_tensor_set_lod(pdckpt_dict_get_mut(no_lod, "layer_2.w_0"), 0, NULL, NULL, NULL);
    const pdckpt_format formats[] = {PDCKPT_FORMAT_COMBINED, PDCKPT_FORMAT_SAFETENSORS};
    for (int i = 0; i < 2; i++) {
        save_arg s = {formats[i] == PDCKPT_FORMAT_SAFETENSORS ? no_lod : state, formats[i]};
        CHECK(exhaust(save_op, &s) > 1);
        pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
        so.format = formats[i];
        bytes        b = {NULL, 0, formats[i]};
        pdckpt_error err = PDCKPT_ERROR_INIT;
        CHECK_OK(pdckpt_save_memory(s.root, &so, &b.data, &b.len, &err), &err);
        CHECK(exhaust(load_op, &b) > 1);
        pdckpt_free(NULL, b.data, b.len);
    }
    pdckpt_value_free(state);
    pdckpt_value_free(no_lod);
}

int main(void) {
    RUN(test_every_allocation_failure);
    return CHECK_SUMMARY();
}
