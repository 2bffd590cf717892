/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_io.c — atomic saves: a failed save leaves the old file intact and no temp behind; a reader
 * holding the old mapping keeps reading the old bytes after a replace; caller sinks see commit or
 * abort; progress callbacks can cancel; a virtio balloon that reports free pages is recognised
 * (large reads then use 4 KiB pages); a large cold file is read with O_DIRECT only when that pays
 * (size, alignment, no placed filler, mostly uncached) and its bytes come back exact, tail and all.
 */
#define _GNU_SOURCE /* O_DIRECT */
#include "check.h"
#include "io/pdk_io.h"
#include "test_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static pdckpt_value *one_tensor_dict(unsigned seed, int64_t n) {
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    int64_t       dims[1] = {n};
    pdckpt_dict_set(d, "w", tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 1, dims, seed), NULL);
    return d;
}

static void test_failed_save_keeps_old_file(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    char        *dir = tu_tempdir();
    char         path[4200];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    pdckpt_value *good = one_tensor_dict(1, 100);
    CHECK_OK(pdckpt_save_file(good, path, NULL, &err), &err);
    size_t        len_before;
    void         *before = tu_read_file(path, &len_before);
    pdckpt_value *bad = one_tensor_dict(2, 100);
    int64_t       dims[1] = {3}; /* safetensors has no complex128 */
    pdckpt_dict_set(bad, "z", tu_random_tensor(PDCKPT_DTYPE_COMPLEX128, 1, dims, 3), NULL);
    CHECK_STATUS(pdckpt_save_file(bad, path, NULL, &err), PDCKPT_ERR_UNSUPPORTED, &err);
    CHECK_STR(err.source, path);
    size_t len_after;
    void  *after = tu_read_file(path, &len_after);
    CHECK(len_after == len_before && memcmp(before, after, len_before) == 0);
    CHECK_EQ_INT(tu_count_entries(dir, ".m.safetensors.pdckpt-tmp"), 0);
    free(before);
    free(after);
    pdckpt_value_free(good);
    pdckpt_value_free(bad);
    tu_rmtree(dir);
    free(dir);
}

static void test_mapped_reader_survives_replace(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    char        *dir = tu_tempdir();
    char         path[4200];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    pdckpt_value *old_state = one_tensor_dict(1, 1 << 16), *new_state = one_tensor_dict(2, 1 << 16);
    CHECK_OK(pdckpt_save_file(old_state, path, NULL, &err), &err);
    pdckpt_value *mapped = NULL;
    CHECK_OK(pdckpt_load_file(path, NULL, &mapped, NULL, &err), &err);
    CHECK_OK(pdckpt_save_file(new_state, path, NULL, &err), &err);
    CHECK(pdckpt_value_equal(mapped, old_state)); /* the old inode is still mapped, intact */
    pdckpt_value *fresh = NULL;
    CHECK_OK(pdckpt_load_file(path, NULL, &fresh, NULL, &err), &err);
    CHECK(pdckpt_value_equal(fresh, new_state));
    pdckpt_value_free(mapped);
    pdckpt_value_free(fresh);
    pdckpt_value_free(old_state);
    pdckpt_value_free(new_state);
    tu_rmtree(dir);
    free(dir);
}

typedef struct recording_sink {
    size_t bytes;
    int    commits, aborts;
    size_t fail_after; /* fail the write that would pass this many bytes */
} recording_sink;

static pdckpt_status rec_write(void *self, const void *bytes, size_t len, pdckpt_error *err) {
    (void)bytes;
    recording_sink *s = self;
    if (s->bytes + len > s->fail_after) {
        err->status = PDCKPT_ERR_IO;
        snprintf(err->message, sizeof err->message, "disk full (simulated)");
        return PDCKPT_ERR_IO;
    }
    s->bytes += len;
    return PDCKPT_OK;
}
static pdckpt_status rec_commit(void *self, pdckpt_error *err) {
    (void)err;
    ((recording_sink *)self)->commits++;
    return PDCKPT_OK;
}
static void rec_abort(void *self) {
    ((recording_sink *)self)->aborts++;
}

static void test_caller_sink(void) {
    pdckpt_error          err = PDCKPT_ERROR_INIT;
    const pdckpt_sink_ops ops = {PDCKPT_SINK_OPS_VERSION, rec_write, rec_commit, rec_abort};
    pdckpt_value         *state = one_tensor_dict(3, 1 << 20);
    pdckpt_save_options   so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_COMBINED;
    recording_sink ok = {0, 0, 0, SIZE_MAX};
    CHECK_OK(pdckpt_save_sink(state, &ops, &ok, &so, &err), &err);
    CHECK(ok.commits == 1 && ok.aborts == 0 && ok.bytes == 26 + (4u << 20));
    recording_sink failing = {0, 0, 0, 1000};
    CHECK_STATUS(pdckpt_save_sink(state, &ops, &failing, &so, &err), PDCKPT_ERR_IO, &err);
    CHECK(strstr(err.message, "disk full (simulated)") != NULL);
    CHECK(failing.commits == 0 && failing.aborts == 1);
    pdckpt_value_free(state);
}

static int cancel_at_once(void *ctx, uint64_t done, uint64_t total) {
    (void)ctx;
    (void)done;
    (void)total;
    return 1;
}

static void test_cancel(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    char        *dir = tu_tempdir();
    char         path[4200];
    snprintf(path, sizeof path, "%s/big.pdiparams", dir);
    pdckpt_value       *state = one_tensor_dict(4, 8 << 20); /* 32 MiB: past the progress step */
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.progress = cancel_at_once;
    CHECK_STATUS(pdckpt_save_file(state, path, &so, &err), PDCKPT_ERR_ARGUMENT, &err);
    CHECK(strstr(err.message, "cancelled") != NULL);
    CHECK(!tu_file_exists(path));
    CHECK_EQ_INT(tu_count_entries(dir, ".big"), 0);
    pdckpt_value_free(state);
    tu_rmtree(dir);
    free(dir);
}

/* A fake sysfs virtio directory: a network device, and a balloon with the given features. */
static char *fake_virtio(const char *balloon_features) {
    char *dir = tu_tempdir(), path[600];
    snprintf(path, sizeof path, "%s/virtio0", dir);
    CHECK(mkdir(path, 0755) == 0);
    snprintf(path, sizeof path, "%s/virtio0/device", dir);
    CHECK(tu_write_file(path, "0x0001\n", 7) == 0);
    snprintf(path, sizeof path, "%s/virtio0/features", dir);
    CHECK(tu_write_file(path, "0000011111\n", 11) == 0); /* bit 5 set, but not a balloon */
    if (!balloon_features) return dir;
    snprintf(path, sizeof path, "%s/virtio1", dir);
    CHECK(mkdir(path, 0755) == 0);
    snprintf(path, sizeof path, "%s/virtio1/device", dir);
    CHECK(tu_write_file(path, "0x0005\n", 7) == 0);
    snprintf(path, sizeof path, "%s/virtio1/features", dir);
    CHECK(tu_write_file(path, balloon_features, strlen(balloon_features)) == 0);
    return dir;
}

static void test_free_page_reporting(void) {
    /* bits 1, 2 (stats, deflate on OOM) and 5 (free page reporting), as this VM's balloon */
    const char *cases[][2] = {
        {"0110010100000000\n", "1"}, {"0110000100000000\n", "0"}, {"0110\n", "0"}, {NULL, "0"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *dir = fake_virtio(cases[i][0]);
        CHECK_EQ_INT(pdk_free_pages_reported(dir), cases[i][1][0] == '1');
        tu_rmtree(dir);
        free(dir);
    }
    CHECK(!pdk_free_pages_reported("/nonexistent/virtio/devices"));
}

static void test_direct_decision(void) {
    const size_t big = PDK_DIRECT_MIN_BYTES, page = PDK_DIRECT_ALIGN;
    CHECK(pdk_direct_pays(big, page * 16, 0, true, 0));
    CHECK(pdk_direct_pays(big, page * 16, 0, true, big / 8)); /* a few pages cached: still cold */
    CHECK(!pdk_direct_pays(big, page * 16, 0, true, big / 8 + page)); /* warm: copy from memory */
    CHECK(!pdk_direct_pays(big - 1, page * 16, 0, true, 0));          /* small: one buffered read */
    CHECK(!pdk_direct_pays(big, page * 16 + 64, 0, true, 0));         /* buffer off the blocks */
    CHECK(!pdk_direct_pays(big, page * 16, 3, true, 0));  /* placed read: filler shifts the bytes */
    CHECK(!pdk_direct_pays(big, page * 16, 0, false, 0)); /* cache state unknown: buffered */
    CHECK_EQ_INT(pdk_direct_readers(0), PDK_DIRECT_READERS);
    CHECK_EQ_INT(pdk_direct_readers(1), 1);
    CHECK_EQ_INT(pdk_direct_readers(1000), 64);
    CHECK(unsetenv("PDCKPT_DIRECT_READ") == 0 && !pdk_direct_enabled()); /* opt-in */
    CHECK(setenv("PDCKPT_DIRECT_READ", "0", 1) == 0 && !pdk_direct_enabled());
    CHECK(setenv("PDCKPT_DIRECT_READ", "1", 1) == 0 && pdk_direct_enabled());
    CHECK(unsetenv("PDCKPT_DIRECT_READ") == 0);
}

/* A file of `len` pseudo-random bytes, synced and dropped from the page cache. */
static uint8_t *cold_file(const char *path, size_t len) {
    uint8_t *data = malloc(len);
    CHECK(data != NULL);
    uint32_t x = 12345;
    for (size_t i = 0; i < len; i++) data[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 24);
    CHECK(tu_write_file(path, data, len) == 0);
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0 && fsync(fd) == 0);
    CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0);
    close(fd);
    return data;
}

static void test_cold_read(void) {
    char        *dir = tu_disk_tempdir(), path[512];
    const size_t len = PDK_DIRECT_MIN_BYTES + 5 * 4096 + 123; /* a tail past the last block */
    snprintf(path, sizeof path, "%s/cold.bin", dir);
    uint8_t     *want = cold_file(path, len);
    pdk_input    in;
    pdckpt_error err;
    memset(&err, 0, sizeof err);
    CHECK(setenv("PDCKPT_DIRECT_READ", "1", 1) == 0);                      /* opt-in */
    CHECK(pdk_input_open_file(path, false, NULL, &in, &err) == PDCKPT_OK); /* the load's read */
    CHECK(unsetenv("PDCKPT_DIRECT_READ") == 0);
    CHECK(in.len == len && memcmp(in.data, want, len) == 0);
    pdk_input_close(&in);
    free(cold_file(path, len));
    int    fd = open(path, O_RDONLY);
    size_t cached = len;
    if (pdk_cached_bytes(fd, len, &cached)) CHECK(cached <= len / 8); /* the eviction took */
    size_t   cap = len + 2 * PDK_DIRECT_ALIGN;
    uint8_t *buf = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(buf != MAP_FAILED);
    bool ended = true;
    int  e = pdk_read_direct(fd, buf, len, 3, &ended);
    CHECK(e == 0 || e == -1); /* -1: this file system takes no O_DIRECT (the load reads buffered) */
    if (e == 0) CHECK(!ended && memcmp(buf, want, len) == 0);
    CHECK(!(fcntl(fd, F_GETFL) & O_DIRECT)); /* left as it came: a retry may read buffered */
    if (e == 0) CHECK(pdk_read_direct(fd, buf, len + 8192, 2, &ended) == 0 && ended); /* short */
    munmap(buf, cap);
    close(fd);
    tu_rmtree(dir);
    free(dir);
    free(want);
}

int main(void) {
    RUN(test_failed_save_keeps_old_file);
    RUN(test_mapped_reader_survives_replace);
    RUN(test_caller_sink);
    RUN(test_cancel);
    RUN(test_free_page_reporting);
    RUN(test_direct_decision);
    RUN(test_cold_read);
    return CHECK_SUMMARY();
}
