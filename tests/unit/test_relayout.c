/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_relayout.c — issue 18's load path: a file read into memory (one or several threads) with
 * require_aligned hands out tensors that are 64-byte aligned inside that one buffer (moved there,
 * not copied out), with their values intact, for pickles, combined and safetensors files; and
 * pdk_tree_relayout itself: shared ranges move together, zero-size tensors are left alone, and
 * nothing moves when someone else holds the buffer or two ranges overlap partly.  A placed read
 * (pdk_input_open_placed with the pickle placer) puts a pickle's large payloads at aligned places
 * as it reads (the buffer is the file plus FRAME filler), its errors name the file's offsets, and
 * a truncated file is refused cleanly.
 */
#include "check.h"
#include "core/pdk_core.h"
#include "formats/pickle/pickle.h"
#include "test_util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define N_TENSORS 40

/* Tensors of odd lengths under names of odd lengths: their data lands misaligned in a file. */
static pdckpt_value *odd_state(void) {
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    for (int i = 0; i < N_TENSORS; i++) {
        char    name[64];
        int64_t dims[1] = {1 + i * 7};
        snprintf(name, sizeof name, "layer_%02d%.*s.w", i, i % 5, "xxxxx"); /* file order */
        pdckpt_dict_set(d, name, tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 1, dims, (unsigned)i),
                        NULL);
    }
    return d;
}

static bool same_tensor_values(const pdckpt_value *a, const pdckpt_value *b) {
    pdckpt_tensor_view x, y;
    return pdckpt_tensor_get(a, &x) && pdckpt_tensor_get(b, &y) && x.n_bytes == y.n_bytes &&
           memcmp(x.data, y.data, (size_t)x.n_bytes) == 0;
}

/* Every tensor aligned, in one unmapped buffer, equal to the saved one. */
static void check_aligned_load(const pdckpt_value *saved, const char *path, uint32_t threads) {
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.require_aligned = true;
    lo.threads = threads;
    pdckpt_value *got = NULL;
    pdckpt_error  err;
    CHECK_OK(pdckpt_load_file(path, &lo, &got, NULL, &err), &err);
    if (!got) return;
    const pdckpt_buffer *one = NULL;
    size_t               n = 0;
    for (size_t i = 0; i < pdckpt_value_len(got); i++) {
        const pdckpt_value *t = pdckpt_value_at(got, i);
        pdckpt_tensor_view  v;
        if (!pdckpt_tensor_get(t, &v)) continue; /* a pickle's name table */
        n++;
        CHECK(((uintptr_t)v.data & 63) == 0);
        CHECK(v.buffer != NULL && !pdckpt_buffer_is_mapped(v.buffer));
        if (!one) one = v.buffer;
        CHECK(v.buffer == one); /* moved inside the read buffer, not copied out */
        /* a dict by name; a combined file, loaded without names, is a list in file order */
        const char *key = pdckpt_value_get_string(pdckpt_dict_key_at(got, i), NULL);
        CHECK(same_tensor_values(t, key ? pdckpt_dict_get(saved, key) : pdckpt_value_at(saved, i)));
    }
    CHECK_EQ_INT(n, N_TENSORS);
    pdckpt_value_free(got);
}

static void test_loads_are_aligned_in_one_buffer(void) {
    char               *dir = tu_tempdir();
    pdckpt_value       *state = odd_state();
    const char         *names[] = {"m.pdparams", "m.pdiparams", "m.safetensors"};
    const pdckpt_format fmts[] = {PDCKPT_FORMAT_PICKLE, PDCKPT_FORMAT_COMBINED,
                                  PDCKPT_FORMAT_SAFETENSORS};
    for (int f = 0; f < 3; f++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, names[f]);
        pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
        so.format = fmts[f];
        so.durable = false;
        pdckpt_error err;
        CHECK_OK(pdckpt_save_file(state, path, &so, &err), &err);
        check_aligned_load(state, path, 0);
        check_aligned_load(state, path, 1);
        check_aligned_load(state, path, 3);
    }
    pdckpt_value_free(state);
    tu_rmtree(dir);
    free(dir);
}

/* A tree over one buffer: tensors at odd offsets, one range shared by two tensors, an empty one. */
static pdckpt_buffer *odd_buffer(pdckpt_value **root, size_t spacing) {
    pdckpt_buffer *buf = pdk_buffer_new_alloc(NULL, 4096, true);
    uint8_t       *base = pdk_buffer_data(buf);
    for (int i = 0; i < 4096; i++) base[i] = (uint8_t)(i * 13 + 7);
    *root = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST);
    for (int i = 0; i < 5; i++) {
        int64_t        dims[1] = {i == 4 ? 0 : 25};
        const uint8_t *at = base + 3 + (size_t)(i == 3 ? 2 : i) * spacing;
        pdckpt_value  *t = NULL;
        pdckpt_tensor_new_in_buffer(NULL, PDCKPT_DTYPE_FLOAT32, 1, dims, buf, at, &t, NULL);
        pdckpt_value_append(*root, t, NULL);
    }
    return buf; /* the caller's own reference */
}

static void test_relayout_moves_in_place(void) {
    pdckpt_value  *root;
    pdckpt_buffer *buf = odd_buffer(&root, 150);
    uint8_t        want[3][100];
    for (int i = 0; i < 3; i++) {
        pdckpt_tensor_view v;
        pdckpt_tensor_get(pdckpt_value_at(root, (size_t)i), &v);
        memcpy(want[i], v.data, 100);
    }
    CHECK_EQ_INT(pdk_tree_relayout(root, buf, 1), 4); /* three ranges, one of them shared */
    for (int i = 0; i < 4; i++) {
        pdckpt_tensor_view v;
        pdckpt_tensor_get(pdckpt_value_at(root, (size_t)i), &v);
        CHECK(((uintptr_t)v.data & 63) == 0);
        CHECK(v.buffer == buf);
        CHECK(memcmp(v.data, want[i == 3 ? 2 : i], 100) == 0);
    }
    pdckpt_value_free(root);
    pdckpt_buffer_release(buf);
}

/* Pages of a block past the last tensor packed by relayout go back to the kernel (W2: the
 * file's opcodes and names under tensors that keep the buffer); the tensors keep their values. */
static void test_relayout_drops_the_tail(void) {
    size_t         size = PDK_BLOCK_MIN + ((size_t)1 << 20), page = (size_t)sysconf(_SC_PAGESIZE);
    pdckpt_buffer *buf = pdk_buffer_new_alloc(NULL, size, false);
    uint8_t       *base = pdk_buffer_data(buf);
    memset(base, 0x5A, size); /* all resident, as a read leaves it */
    pdckpt_value *root = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST);
    for (int i = 0; i < 64; i++) { /* misaligned, spread over the first 16 MiB */
        int64_t       dims[1] = {256};
        uint8_t      *at = base + 3 + (size_t)i * ((size_t)256 << 10);
        pdckpt_value *t = NULL;
        memset(at, i, 1024);
        pdckpt_tensor_new_in_buffer(NULL, PDCKPT_DTYPE_FLOAT32, 1, dims, buf, at, &t, NULL);
        pdckpt_value_append(root, t, NULL);
    }
    CHECK_EQ_INT(pdk_tree_relayout(root, buf, 1), 64);
    for (int i = 0; i < 64; i++) {
        pdckpt_tensor_view v;
        pdckpt_tensor_get(pdckpt_value_at(root, (size_t)i), &v);
        CHECK((const uint8_t *)v.data == base + (size_t)i * 1024); /* packed at the front */
        CHECK(((const uint8_t *)v.data)[0] == i && ((const uint8_t *)v.data)[1023] == i);
    }
    if (pdk_block_cache_on(size)) { /* (a block: the sanitizer builds use malloc instead) */
        size_t         n = (size - 2 * page) / page;
        unsigned char *in = calloc(n, 1);
        CHECK(mincore(base + 2 * ((size_t)64 << 10), n * page / 2, in) == 0);
        size_t resident = 0;
        for (size_t i = 0; i < n / 2; i++) resident += in[i] & 1;
        CHECK_EQ_INT(resident, 0);
        free(in);
    }
    pdckpt_value_free(root);
    pdckpt_buffer_release(buf);
}

static void test_relayout_refuses_what_it_cannot_prove_safe(void) {
    pdckpt_value  *root;
    pdckpt_buffer *buf = odd_buffer(&root, 150);
    pdckpt_buffer_retain(buf); /* a holder the tree does not know of */
    CHECK_EQ_INT(pdk_tree_relayout(root, buf, 1), 0);
    pdckpt_buffer_release(buf);
    pdckpt_value_free(root);
    pdckpt_buffer_release(buf);

    buf = odd_buffer(&root, 50); /* 100-byte tensors every 50 bytes: partial overlaps */
    pdckpt_tensor_view before;
    pdckpt_tensor_get(pdckpt_value_at(root, 1), &before);
    CHECK_EQ_INT(pdk_tree_relayout(root, buf, 1), 0);
    pdckpt_tensor_view after;
    pdckpt_tensor_get(pdckpt_value_at(root, 1), &after);
    CHECK(before.data == after.data);
    pdckpt_value_free(root);
    pdckpt_buffer_release(buf);
}

/* Large tensors (placed by the read) between small ones (aligned by relayout), odd lengths. */
static pdckpt_value *mixed_state(void) {
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    for (int i = 0; i < 12; i++) {
        char    name[64];
        int64_t dims[1] = {i % 3 ? 5000 + i * 7 : 1 + i};
        snprintf(name, sizeof name, "w%02d%.*s", i, i % 4, "yyyy");
        pdckpt_dict_set(d, name, tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 1, dims, (unsigned)i),
                        NULL);
    }
    return d;
}

/* The placed buffer is the file with filler before each place, and each payload is aligned. */
static void check_placed_input(const char *path, size_t want_places) {
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.require_aligned = true;
    pdk_input    in;
    pdckpt_error err;
    CHECK_OK(pdk_input_open_placed(path, &lo, &pdk_pickle_placer, &in, &err), &err);
    size_t   file_len = 0;
    uint8_t *file = tu_read_file(path, &file_len);
    CHECK_EQ_INT(in.n_places, want_places);
    uint64_t x = 0, shift = 0;
    for (size_t i = 0; i <= in.n_places && file; i++) {
        uint64_t end = i < in.n_places ? in.place_at[i] : file_len;
        CHECK(memcmp(in.data + x + shift, file + x, (size_t)(end - x)) == 0);
        if (i == in.n_places) break;
        CHECK(in.data[in.place_at[i] + shift] == 0x95); /* FRAME */
        shift = in.place_shift[i];
        CHECK(((uintptr_t)(in.data + in.place_at[i] + shift + 5) & 63) == 0); /* BINBYTES, len */
        x = end;
    }
    CHECK_EQ_INT(in.len, file_len + shift);
    free(file);
    pdk_input_close(&in);
}

static void test_placed_reads(void) {
    char         *dir = tu_tempdir();
    char          path[512];
    pdckpt_value *state = mixed_state();
    snprintf(path, sizeof path, "%s/m.pdparams", dir);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.durable = false;
    pdckpt_error err;
    CHECK_OK(pdckpt_save_file(state, path, &so, &err), &err);
    check_placed_input(path, 8);
    for (uint32_t threads = 0; threads < 4; threads += 3) {
        pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
        lo.require_aligned = true;
        lo.threads = threads;
        pdckpt_value *got = NULL;
        CHECK_OK(pdckpt_load_file(path, &lo, &got, NULL, &err), &err);
        for (size_t i = 0; got && i < pdckpt_value_len(state); i++) {
            const pdckpt_value *t =
                pdckpt_dict_get(got, pdckpt_value_get_string(pdckpt_dict_key_at(state, i), NULL));
            pdckpt_tensor_view v;
            CHECK(t && pdckpt_tensor_get(t, &v) && ((uintptr_t)v.data & 63) == 0);
            CHECK(t && same_tensor_values(t, pdckpt_value_at(state, i)));
        }
        pdckpt_value_free(got);
    }
    /* every truncation of the file: a clean error, whatever the scan made of it */
    size_t   len = 0;
    uint8_t *bytes = tu_read_file(path, &len);
    for (size_t cut = 0; bytes && cut < len; cut += cut < 64 ? 1 : 997) {
        CHECK(tu_write_file(path, bytes, cut) == 0);
        pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
        lo.require_aligned = true;
        pdckpt_value *got = NULL;
        CHECK(pdckpt_load_file(path, &lo, &got, NULL, &err) != PDCKPT_OK && !got);
    }
    free(bytes);
    pdckpt_value_free(state);
    tu_rmtree(dir);
    free(dir);
}

/* An error after a placed payload names the offset in the file, not in the buffer. */
static void test_placed_errors_name_file_offsets(void) {
    char    *dir = tu_tempdir();
    char     path[512];
    size_t   n = 20000, len = 2 + 5 + n + 3;
    uint8_t *b = calloc(1, len);
    memcpy(b, "\x80\x04\x42", 3); /* PROTO 4, BINBYTES */
    b[3] = (uint8_t)(n & 0xff), b[4] = (uint8_t)(n >> 8);
    memcpy(b + 7 + n, "00.", 3); /* POP, then a POP of an empty stack */
    snprintf(path, sizeof path, "%s/bad.pdparams", dir);
    CHECK(tu_write_file(path, b, len) == 0);
    check_placed_input(path, 1);
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.require_aligned = true;
    pdckpt_value *got = NULL;
    pdckpt_error  err;
    CHECK(pdckpt_load_file(path, &lo, &got, NULL, &err) == PDCKPT_ERR_FORMAT);
    CHECK_EQ_INT(err.offset, 7 + n + 1);
    free(b);
    tu_rmtree(dir);
    free(dir);
}

int main(void) {
    RUN(test_loads_are_aligned_in_one_buffer);
    RUN(test_relayout_moves_in_place);
    RUN(test_relayout_drops_the_tail);
    RUN(test_relayout_refuses_what_it_cannot_prove_safe);
    RUN(test_placed_reads);
    RUN(test_placed_errors_name_file_offsets);
    return CHECK_SUMMARY();
}
