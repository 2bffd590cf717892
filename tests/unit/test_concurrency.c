/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_concurrency.c — issue 8 item 6.  A reader that holds a mapped checkpoint keeps reading the
 * old bytes while new saves replace it; two processes saving to one path at the same time leave
 * one complete checkpoint and no temporaries, and a third process loading that path meanwhile
 * only ever sees a complete checkpoint, one or the other.  Issue 16 item 6: a default load (read,
 * not mapped) keeps its bytes when another program truncates and rewrites the file in place, as
 * paddle.save does, and loads racing such a rewrite never crash and never return a mix; a mapped
 * load (zero_copy) is the documented hazard: the truncation raises SIGBUS in its reader.
 */
#include "check.h"
#include "test_util.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SAVES_PER_WRITER 40

/* Two checkpoints that differ in tensor count, shapes and bytes. */
static pdckpt_value *checkpoint(char which) {
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    int           n = which == 'A' ? 6 : 9;
    for (int i = 0; i < n; i++) {
        char    name[32];
        int64_t dims[2] = {64, which == 'A' ? 48 : 80};
        snprintf(name, sizeof name, "layer_%d.w_0", i);
        pdckpt_dict_set(
            d, name, tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, dims, (unsigned)(i + which)), NULL);
    }
    return d;
}

/* What a load of `root` saved as `fmt` gives (combined files come back as a list). */
static pdckpt_value *reloaded(const pdckpt_value *root, pdckpt_format fmt) {
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = fmt == PDCKPT_FORMAT_VARS_DIR ? PDCKPT_FORMAT_SAFETENSORS : fmt;
    void         *data = NULL;
    size_t        len = 0;
    pdckpt_value *out = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_save_memory(root, &so, &data, &len, &err), &err);
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.zero_copy = false;
    CHECK_OK(pdckpt_load_memory(data, len, &lo, &out, NULL, &err), &err);
    pdckpt_free(NULL, data, len);
    return out;
}

static pdckpt_status save_as(const pdckpt_value *root, const char *path, pdckpt_format fmt,
                             pdckpt_error *err) {
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = fmt;
    so.durable = false; /* the guarantees tested here are about the rename, not the disk */
    return pdckpt_save_file(root, path, &so, err);
}

/* Same tensors, whatever the container: combined loads list them in name order. */
static bool same_tensors(const pdckpt_value *a, const pdckpt_value *b) {
    if (pdckpt_value_len(a) != pdckpt_value_len(b)) return false;
    for (size_t i = 0; i < pdckpt_value_len(a); i++)
        if (!pdckpt_value_equal(pdckpt_value_at(a, i), pdckpt_value_at(b, i))) return false;
    return true;
}

static const pdckpt_format formats[] = {PDCKPT_FORMAT_COMBINED, PDCKPT_FORMAT_SAFETENSORS,
                                        PDCKPT_FORMAT_PICKLE, PDCKPT_FORMAT_VARS_DIR};

static void test_mapping_survives_replacement(void) {
    pdckpt_value *a = checkpoint('A'), *b = checkpoint('B');
    for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++) {
        char        *dir = tu_tempdir();
        char         path[4200];
        pdckpt_error err = PDCKPT_ERROR_INIT;
        snprintf(path, sizeof path, "%s/ckpt", dir);
        CHECK_OK(save_as(a, path, formats[f], &err), &err);
        pdckpt_value       *mapped = NULL, *want = reloaded(a, formats[f]);
        pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
        lo.zero_copy = true;
        CHECK_OK(pdckpt_load_file(path, &lo, &mapped, NULL, &err), &err);
        for (int i = 0; i < 3; i++) /* B, A, B: the old file's name is reused in between */
            CHECK_OK(save_as(i % 2 ? a : b, path, formats[f], &err), &err);
        CHECK(mapped && same_tensors(mapped, want));
        pdckpt_value_free(mapped);
        pdckpt_value_free(want);
        tu_rmtree(dir);
        free(dir);
    }
    pdckpt_value_free(a);
    pdckpt_value_free(b);
}

static void writer(const pdckpt_value *root, const char *path, pdckpt_format fmt) {
    for (int i = 0; i < SAVES_PER_WRITER; i++) {
        pdckpt_error err = PDCKPT_ERROR_INIT;
        if (save_as(root, path, fmt, &err) != PDCKPT_OK) {
            char line[1200];
            fprintf(stderr, "writer: %s\n", pdckpt_error_format(&err, line, sizeof line));
            _exit(1);
        }
    }
    _exit(0);
}

/* Loads `path` until both writers are done; every load is one complete checkpoint. */
static int read_while_writing(const char *path, const pdckpt_value *want_a,
                              const pdckpt_value *want_b, pid_t *pids) {
    int loads = 0, running = 2, bad = 0;
    while (running > 0) {
        pdckpt_value *got = NULL;
        pdckpt_error  err = PDCKPT_ERROR_INIT;
        if (pdckpt_load_file(path, NULL, &got, NULL, &err) == PDCKPT_OK) {
            loads++;
            if (!same_tensors(got, want_a) && !same_tensors(got, want_b)) bad++;
        } else {
            char line[1200];
            fprintf(stderr, "reader: %s\n", pdckpt_error_format(&err, line, sizeof line));
            bad++;
        }
        pdckpt_value_free(got);
        for (int w = 0; w < 2; w++) {
            int status;
            if (pids[w] > 0 && waitpid(pids[w], &status, WNOHANG) == pids[w]) {
                CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
                pids[w] = -1;
                running--;
            }
        }
    }
    CHECK(bad == 0);
    return loads;
}

static void test_two_writers_and_a_reader(void) {
    pdckpt_value *a = checkpoint('A'), *b = checkpoint('B');
    for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++) {
        char        *dir = tu_tempdir();
        char         path[4200];
        pdckpt_error err = PDCKPT_ERROR_INIT;
        snprintf(path, sizeof path, "%s/ckpt", dir);
        CHECK_OK(save_as(a, path, formats[f], &err), &err); /* readers start from a checkpoint */
        pdckpt_value *want_a = reloaded(a, formats[f]), *want_b = reloaded(b, formats[f]);
        fflush(NULL);
        pid_t pids[2];
        for (int w = 0; w < 2; w++)
            if ((pids[w] = fork()) == 0) writer(w ? b : a, path, formats[f]);
        int           loads = read_while_writing(path, want_a, want_b, pids);
        pdckpt_value *last = NULL;
        CHECK_OK(pdckpt_load_file(path, NULL, &last, NULL, &err), &err);
        CHECK(last && (same_tensors(last, want_a) || same_tensors(last, want_b)));
        /* ".", ".." and the checkpoint: no temporaries */
        CHECK(tu_count_entries(dir, "") == 3 && tu_count_entries(dir, ".") == 2);
        fprintf(stderr, "  %s: 2 x %d saves, %d concurrent loads, all complete\n",
                pdckpt_format_name(formats[f]), SAVES_PER_WRITER, loads);
        pdckpt_value_free(last);
        pdckpt_value_free(want_a);
        pdckpt_value_free(want_b);
        tu_rmtree(dir);
        free(dir);
    }
    pdckpt_value_free(a);
    pdckpt_value_free(b);
}

/* What paddle.save does to an existing file: open(O_TRUNC) and write in pieces, in place. */
static void rewrite_in_place(const char *path, const void *bytes, size_t len) {
    int fd = open(path, O_WRONLY | O_TRUNC);
    CHECK(fd >= 0);
    for (size_t done = 0; fd >= 0 && done < len;) {
        size_t  piece = len - done < 4096 ? len - done : 4096;
        ssize_t n = write(fd, (const char *)bytes + done, piece);
        if (n <= 0) break;
        done += (size_t)n;
    }
    if (fd >= 0) close(fd);
}

static void *saved_bytes(const pdckpt_value *root, size_t *len) {
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_SAFETENSORS;
    void        *data = NULL;
    pdckpt_error err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_save_memory(root, &so, &data, len, &err), &err);
    return data;
}

static void test_read_survives_truncating_rewrite(void) {
    pdckpt_value *a = checkpoint('A'), *b = checkpoint('B');
    size_t        len_a, len_b;
    void         *bytes_a = saved_bytes(a, &len_a), *bytes_b = saved_bytes(b, &len_b);
    char         *dir = tu_tempdir(), path[4200];
    snprintf(path, sizeof path, "%s/latest.safetensors", dir);
    CHECK(tu_write_file(path, bytes_a, len_a) == 0);
    pdckpt_value *loaded = NULL, *want = reloaded(a, PDCKPT_FORMAT_SAFETENSORS);
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_load_file(path, NULL, &loaded, NULL, &err), &err); /* the default: read */
    rewrite_in_place(path, "", 0);                                     /* truncated to 0 */
    CHECK(loaded && same_tensors(loaded, want)); /* no SIGBUS, the old bytes */
    rewrite_in_place(path, bytes_b, len_b);      /* another checkpoint in place */
    CHECK(loaded && same_tensors(loaded, want)); /* no silent change */
    pdckpt_value_free(loaded);

    /* The hazard zero_copy documents: a child maps A, the file is truncated, the child touches
     * its tensors and dies of SIGBUS. */
    rewrite_in_place(path, bytes_a, len_a);
    fflush(NULL);
    pid_t child = fork();
    if (child == 0) {
        signal(SIGBUS, SIG_DFL); /* die of it, even under a sanitizer's handler */
        pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
        lo.zero_copy = true;
        pdckpt_value *m = NULL;
        if (pdckpt_load_file(path, &lo, &m, NULL, NULL) != PDCKPT_OK) _exit(3);
        rewrite_in_place(path, "", 0);
        _exit(same_tensors(m, want) ? 0 : 4);
    }
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS);
    pdckpt_value_free(want);
    pdckpt_free(NULL, bytes_a, len_a);
    pdckpt_free(NULL, bytes_b, len_b);
    pdckpt_value_free(a);
    pdckpt_value_free(b);
    tu_rmtree(dir);
    free(dir);
}

/* A writer rewrites the file in place (truncate, then write in pieces) over and over while this
 * process loads it: every load is a complete A or B, or a clean error; none crashes. */
static void test_loads_racing_in_place_rewrites(void) {
    pdckpt_value *a = checkpoint('A'), *b = checkpoint('B');
    size_t        len_a, len_b;
    void         *bytes_a = saved_bytes(a, &len_a), *bytes_b = saved_bytes(b, &len_b);
    char         *dir = tu_tempdir(), path[4200];
    snprintf(path, sizeof path, "%s/latest.safetensors", dir);
    CHECK(tu_write_file(path, bytes_a, len_a) == 0);
    pdckpt_value *want_a = reloaded(a, PDCKPT_FORMAT_SAFETENSORS);
    pdckpt_value *want_b = reloaded(b, PDCKPT_FORMAT_SAFETENSORS);
    fflush(NULL);
    pid_t child = fork();
    if (child == 0) {
        for (int i = 0; i < 400; i++)
            rewrite_in_place(path, i % 2 ? bytes_a : bytes_b, i % 2 ? len_a : len_b);
        _exit(0);
    }
    int loads = 0, complete = 0, refused = 0, mixed = 0, status = 0;
    while (waitpid(child, &status, WNOHANG) == 0) {
        pdckpt_value *got = NULL;
        pdckpt_error  err = PDCKPT_ERROR_INIT;
        loads++;
        if (pdckpt_load_file(path, NULL, &got, NULL, &err) != PDCKPT_OK)
            refused++; /* a half-written file: FORMAT, or IO "changed while it was being read" */
        else if (same_tensors(got, want_a) || same_tensors(got, want_b))
            complete++;
        else
            mixed++;
        pdckpt_value_free(got);
    }
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(mixed == 0 && loads == complete + refused);
    fprintf(stderr, "  %d loads racing 400 in-place rewrites: %d complete, %d refused, 0 mixed\n",
            loads, complete, refused);
    pdckpt_value_free(want_a);
    pdckpt_value_free(want_b);
    pdckpt_free(NULL, bytes_a, len_a);
    pdckpt_free(NULL, bytes_b, len_b);
    pdckpt_value_free(a);
    pdckpt_value_free(b);
    tu_rmtree(dir);
    free(dir);
}

int main(void) {
    RUN(test_mapping_survives_replacement);
    RUN(test_two_writers_and_a_reader);
    RUN(test_read_survives_truncating_rewrite);
    RUN(test_loads_racing_in_place_rewrites);
    return CHECK_SUMMARY();
}
