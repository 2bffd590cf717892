/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_trust_fs.c — issue 16, the filesystem trust boundary (docs/RELIABILITY.md "Filesystem").
 * Loads: names from a program or a directory are resolved beneath the checkpoint (no "..", no
 * absolute name, no symbolic link, also through the openat2 fallback walk); FIFOs never block.
 * Saves: an existing directory that holds anything a save of that kind does not write is left
 * untouched; a symbolic link is kept and its target replaced; modes are kept; FIFOs, sockets and
 * devices are refused and left alone; an empty dict saves without leaving a temporary.  Every
 * test runs under alarm(): a blocking open fails the test instead of hanging it.
 */
#define _GNU_SOURCE
#include "check.h"
#include "formats/pdk_format.h"
#include "io/pdk_io.h"
#include "pb_build.h"
#include "test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SECRET "TOP-SECRET-BYTES-0123456789"

static char *join(const char *a, const char *b) {
    char *out = malloc(strlen(a) + strlen(b) + 2);
    sprintf(out, "%s/%s", a, b);
    return out;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static pdckpt_value *small_state(unsigned seed) {
    pdckpt_value *d = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    int64_t       dims[2] = {4, 3};
    pdckpt_dict_set(d, "w_0", tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, dims, seed), NULL);
    pdckpt_dict_set(d, "b_0", tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 1, dims, seed + 1), NULL);
    return d;
}

static pdckpt_status save_fmt(const pdckpt_value *v, const char *path, pdckpt_format f,
                              pdckpt_error *err) {
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = f;
    so.durable = false;
    return pdckpt_save_file(v, path, &so, err);
}

/* A __model__ whose one persistable variable is `name` (float32 [4, 3]). */
static void write_program(const char *dir, const char *name) {
    tu_buf  block = {0}, prog = {0};
    int64_t dims[2] = {4, 3};
    tu_pb_var(&block, name, 7, 5, 2, dims, 1);
    tu_pb_block(&prog, 0, -1, &block);
    char *model = join(dir, "__model__");
    CHECK(tu_write_file(model, prog.data, prog.len) == 0);
    free(model);
    tu_buf_free(&prog);
}

/* Loads `path`; expects failure whose message names `needle` and holds none of SECRET. */
static void expect_refused(const char *path, const char *needle) {
    pdckpt_value *out = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    double        t0 = now();
    CHECK(pdckpt_load_file(path, NULL, &out, NULL, &err) != PDCKPT_OK);
    CHECK(now() - t0 < 1.0);
    char line[1200];
    pdckpt_error_format(&err, line, sizeof line);
    if (!strstr(line, needle)) fprintf(stderr, "  message without '%s': %s\n", needle, line);
    CHECK(strstr(line, needle) != NULL);
    CHECK(strstr(line, "TOP-SECRET") == NULL);
    pdckpt_value_free(out);
}

/* A tensor file outside the checkpoint that the attacks below try to reach. */
static char *outside_tensor(const char *root) {
    char *outside = join(root, "outside");
    mkdir(outside, 0777);
    char         *w = join(outside, "w_0");
    int64_t       dims[2] = {4, 3};
    pdckpt_value *t = tu_random_tensor(PDCKPT_DTYPE_FLOAT32, 2, dims, 9);
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    CHECK_OK(save_fmt(t, w, PDCKPT_FORMAT_TENSOR, &err), &err);
    pdckpt_value_free(t);
    char *secret = join(outside, "secret");
    CHECK(tu_write_file(secret, SECRET, strlen(SECRET)) == 0);
    free(secret);
    free(w);
    return outside;
}

static void test_program_names_stay_beneath(void) {
    char *root = tu_tempdir(), *outside = outside_tensor(root), *ckpt = join(root, "ckpt");
    mkdir(ckpt, 0777);
    write_program(ckpt, "../outside/w_0"); /* the file exists: it must not be read */
    expect_refused(ckpt, "../outside/w_0");
    char abs[4300];
    snprintf(abs, sizeof abs, "%s/w_0", outside);
    write_program(ckpt, abs);
    expect_refused(ckpt, abs);
    write_program(ckpt, "w_0"); /* a symbolic link to the secret and to the outside tensor */
    char *link = join(ckpt, "w_0");
    char  target[4300];
    snprintf(target, sizeof target, "%s/secret", outside);
    CHECK(symlink(target, link) == 0);
    expect_refused(ckpt, "symbolic link");
    unlink(link);
    char *sub = join(ckpt, "sub");
    CHECK(symlink(outside, sub) == 0); /* a link in a middle component */
    write_program(ckpt, "sub/w_0");
    expect_refused(ckpt, "symbolic link");
    free(sub);
    free(link);
    free(ckpt);
    free(outside);
    tu_rmtree(root);
    free(root);
}

static void test_vars_dir_entries(void) {
    char         *root = tu_tempdir(), *outside = outside_tensor(root), *ckpt = join(root, "ckpt");
    pdckpt_value *s = small_state(1);
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    CHECK_OK(save_fmt(s, ckpt, PDCKPT_FORMAT_VARS_DIR, &err), &err);
    char *link = join(ckpt, "x_0"), target[4300];
    snprintf(target, sizeof target, "%s/w_0", outside);
    CHECK(symlink(target, link) == 0);
    expect_refused(ckpt, "x_0");
    unlink(link);
    CHECK(mkfifo(link, 0600) == 0); /* a FIFO inside: refused at once, never opened blocking */
    expect_refused(ckpt, "FIFO");
    unlink(link);
    CHECK(symlink(outside, link) == 0); /* a link to a directory */
    expect_refused(ckpt, "symbolic link");
    free(link);
    free(ckpt);
    free(outside);
    pdckpt_value_free(s);
    tu_rmtree(root);
    free(root);
}

static void test_fifo_paths(void) {
    char *root = tu_tempdir(), *fifo = join(root, "model.pdparams");
    CHECK(mkfifo(fifo, 0600) == 0);
    expect_refused(fifo, "FIFO");
    pdckpt_value       *out = NULL;
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.format = PDCKPT_FORMAT_PICKLE; /* a named format opens it the same way */
    CHECK(pdckpt_load_file(fifo, &lo, &out, NULL, &err) == PDCKPT_ERR_ARGUMENT);
    pdckpt_verify_report rep;
    CHECK(pdckpt_verify_file(fifo, NULL, &rep, &err) != PDCKPT_OK);
    pdckpt_format f;
    CHECK(pdckpt_detect_format(fifo, &f, &err) != PDCKPT_OK);
    /* a program naming a FIFO variable */
    char *ckpt = join(root, "ckpt"), *var = NULL;
    mkdir(ckpt, 0777);
    write_program(ckpt, "w_0");
    var = join(ckpt, "w_0");
    CHECK(mkfifo(var, 0600) == 0);
    expect_refused(ckpt, "w_0");
    free(var);
    free(ckpt);
    free(fifo);
    tu_rmtree(root);
    free(root);
}

/* The openat2 fallback: a component-by-component walk that never follows a link. */
static void test_beneath_walk(void) {
    char *root = tu_tempdir(), *a = join(root, "a"), *ab = join(a, "b");
    mkdir(a, 0777);
    CHECK(tu_write_file(ab, "x", 1) == 0);
    char *la = join(root, "la"), *lb = join(a, "lb");
    CHECK(symlink("a", la) == 0);
    CHECK(symlink("b", lb) == 0);
    int dfd = open(root, O_RDONLY | O_DIRECTORY);
    int fd = pdk_open_beneath_walk(dfd, "a/b", O_RDONLY);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    CHECK(pdk_open_beneath_walk(dfd, "la/b", O_RDONLY) < 0 && errno == ELOOP);
    CHECK(pdk_open_beneath_walk(dfd, "a/lb", O_RDONLY) < 0 && errno == ELOOP);
    pdckpt_error err = PDCKPT_ERROR_INIT;
    CHECK(pdk_check_inner_name("a/../b", "x", &err) == PDCKPT_ERR_FORMAT);
    CHECK(pdk_check_inner_name("/etc/passwd", "x", &err) == PDCKPT_ERR_FORMAT);
    CHECK(pdk_check_inner_name("a//b", "x", &err) == PDCKPT_ERR_FORMAT);
    CHECK(pdk_check_inner_name("fc_0.w_0", "x", &err) == PDCKPT_OK);
    CHECK(pdk_check_inner_name("a/b.c", "x", &err) == PDCKPT_OK);
    close(dfd);
    free(la);
    free(lb);
    free(ab);
    free(a);
    tu_rmtree(root);
    free(root);
}

/* A save into a directory that is not (only) a checkpoint of its kind changes nothing. */
static void test_save_into_foreign_directory(void) {
    char         *root = tu_tempdir(), *runs = join(root, "exp1");
    pdckpt_value *s = small_state(2);
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    mkdir(runs, 0777);
    char *notes = join(runs, "notes.txt"), *sub = join(runs, "logs");
    CHECK(tu_write_file(notes, "keep me", 7) == 0);
    mkdir(sub, 0777);
    CHECK(save_fmt(s, runs, PDCKPT_FORMAT_VARS_DIR, &err) == PDCKPT_ERR_ARGUMENT);
    CHECK(strstr(err.message, "notes.txt") != NULL && strstr(err.source, "exp1") != NULL);
    CHECK(save_fmt(s, runs, PDCKPT_FORMAT_DYGRAPH_DIR, &err) == PDCKPT_ERR_ARGUMENT);
    size_t len = 0;
    char  *kept = tu_read_file(notes, &len);
    CHECK(kept && len == 7 && memcmp(kept, "keep me", 7) == 0);
    free(kept);
    CHECK(tu_count_entries(runs, "") == 4);  /* ., .., notes.txt, logs */
    CHECK(tu_count_entries(root, ".") == 2); /* no temporaries beside it */
    /* A directory holding only a vars-dir checkpoint (and empty subdirectories) is replaced. */
    unlink(notes);
    CHECK_OK(save_fmt(s, runs, PDCKPT_FORMAT_VARS_DIR, &err), &err);
    pdckpt_value *t = small_state(7);
    CHECK_OK(save_fmt(t, runs, PDCKPT_FORMAT_VARS_DIR, &err), &err);
    /* ... but not one with a program in it (an inference model is not a vars-dir) */
    write_program(runs, "w_0");
    CHECK(save_fmt(s, runs, PDCKPT_FORMAT_VARS_DIR, &err) == PDCKPT_ERR_ARGUMENT);
    CHECK(strstr(err.message, "__model__") != NULL);
    pdckpt_value       *back = NULL;
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.format = PDCKPT_FORMAT_VARS_DIR;
    CHECK_OK(pdckpt_load_file(runs, &lo, &back, NULL, &err), &err);
    CHECK(back && pdckpt_value_equal(pdckpt_dict_get(back, "w_0"), pdckpt_dict_get(t, "w_0")));
    pdckpt_value_free(back);
    pdckpt_value_free(t);
    pdckpt_value_free(s);
    free(notes);
    free(sub);
    free(runs);
    tu_rmtree(root);
    free(root);
}

static void test_save_through_symlink_keeps_link_and_mode(void) {
    char         *root = tu_tempdir(), *real = join(root, "epoch3.pdparams");
    char         *link = join(root, "latest.pdparams");
    pdckpt_value *a = small_state(3), *b = small_state(4);
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    CHECK_OK(save_fmt(a, real, PDCKPT_FORMAT_PICKLE, &err), &err);
    CHECK(chmod(real, 0640) == 0);
    CHECK(symlink("epoch3.pdparams", link) == 0);
    CHECK_OK(save_fmt(b, link, PDCKPT_FORMAT_PICKLE, &err), &err);
    struct stat st;
    CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode)); /* the link is kept */
    CHECK(stat(real, &st) == 0 && (st.st_mode & 07777) == 0640);
    pdckpt_value *back = NULL;
    CHECK_OK(pdckpt_load_file(real, NULL, &back, NULL, &err), &err); /* the target was updated */
    CHECK(back && pdckpt_value_equal(pdckpt_dict_get(back, "w_0"), pdckpt_dict_get(b, "w_0")));
    pdckpt_value_free(back);
    CHECK(chmod(real, 0600) == 0); /* a plain file keeps its mode too */
    CHECK_OK(save_fmt(a, real, PDCKPT_FORMAT_PICKLE, &err), &err);
    CHECK(stat(real, &st) == 0 && (st.st_mode & 07777) == 0600);
    CHECK(tu_count_entries(root, ".") == 2);
    /* a directory save through a link replaces the directory it names */
    char *dir = join(root, "vars"), *dlink = join(root, "vars-latest");
    CHECK_OK(save_fmt(a, dir, PDCKPT_FORMAT_VARS_DIR, &err), &err);
    CHECK(symlink("vars", dlink) == 0);
    CHECK_OK(save_fmt(b, dlink, PDCKPT_FORMAT_VARS_DIR, &err), &err);
    CHECK(lstat(dlink, &st) == 0 && S_ISLNK(st.st_mode));
    CHECK_OK(pdckpt_load_file(dir, NULL, &back, NULL, &err), &err);
    CHECK(back && pdckpt_value_equal(pdckpt_dict_get(back, "w_0"), pdckpt_dict_get(b, "w_0")));
    pdckpt_value_free(back);
    free(dir);
    free(dlink);
    pdckpt_value_free(a);
    pdckpt_value_free(b);
    free(real);
    free(link);
    tu_rmtree(root);
    free(root);
}

/* A sharded save's data files are written with pdk_save_path_inner: a link at the name is
 * refused and its target left alone, whatever checked the name before. */
static void test_inner_save_never_follows_a_link(void) {
    char         *root = tu_tempdir(), *victim = join(root, "victim.bin");
    char         *link = join(root, "0_1.distcp");
    pdckpt_value *a = small_state(3);
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    CHECK(tu_write_file(victim, "keep me", 7) == 0);
    CHECK(symlink("victim.bin", link) == 0);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_PICKLE;
    CHECK(pdk_save_path_inner(a, link, &so, &err) == PDCKPT_ERR_ARGUMENT);
    size_t len = 0;
    char  *kept = tu_read_file(victim, &len);
    CHECK(kept && len == 7 && memcmp(kept, "keep me", 7) == 0);
    free(kept);
    struct stat st;
    CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode));
    CHECK(unlink(link) == 0); /* where nothing is, it writes */
    CHECK_OK(pdk_save_path_inner(a, link, &so, &err), &err);
    CHECK(lstat(link, &st) == 0 && S_ISREG(st.st_mode));
    CHECK_EQ_INT(tu_count_entries(root, "."), 2);
    pdckpt_value_free(a);
    free(victim);
    free(link);
    tu_rmtree(root);
    free(root);
}

static void expect_not_replaced(const char *path, mode_t kind, const char *what) {
    pdckpt_value *s = small_state(5);
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    double        t0 = now();
    CHECK(save_fmt(s, path, PDCKPT_FORMAT_SAFETENSORS, &err) == PDCKPT_ERR_ARGUMENT);
    CHECK(now() - t0 < 1.0);
    CHECK(strstr(err.message, what) != NULL);
    struct stat st;
    CHECK(lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == kind);
    pdckpt_value_free(s);
}

static void test_save_refuses_special_files(void) {
    char *root = tu_tempdir(), *fifo = join(root, "fifo"), *dev = join(root, "null");
    char *sock = join(root, "sock"), *dir = join(root, "d.safetensors");
    CHECK(mkfifo(fifo, 0600) == 0);
    expect_not_replaced(fifo, S_IFIFO, "FIFO");
    /* A character device (a copy of /dev/null's numbers) where the kernel lets us make one. */
    if (mknod(dev, S_IFCHR | 0600, makedev(1, 3)) == 0) expect_not_replaced(dev, S_IFCHR, "device");
    int                s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
    if (strlen(sock) < sizeof sa.sun_path && bind(s, (struct sockaddr *)&sa, sizeof sa) == 0)
        expect_not_replaced(sock, S_IFSOCK, "socket");
    close(s);
    mkdir(dir, 0777); /* a file format never replaces a directory (paddle.save: IsADirectory) */
    expect_not_replaced(dir, S_IFDIR, "directory");
    CHECK(tu_count_entries(root, ".") == 2); /* no temporaries */
    free(fifo);
    free(dev);
    free(sock);
    free(dir);
    tu_rmtree(root);
    free(root);
}

/* Issue 16 item 8: an empty dict saved as safetensors (qsort(NULL, 0) stopped UBSan builds and
 * left the temporary), and a dygraph directory without variables. */
static void test_empty_saves(void) {
    char         *root = tu_tempdir(), *path = join(root, "empty.safetensors");
    pdckpt_value *empty = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT), *back = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    CHECK_OK(save_fmt(empty, path, PDCKPT_FORMAT_SAFETENSORS, &err), &err);
    CHECK_OK(pdckpt_load_file(path, NULL, &back, NULL, &err), &err);
    CHECK(back && pdckpt_value_len(back) == 0);
    pdckpt_value_free(back);
    char *dy = join(root, "dy"), *opt = join(dy, "optimizers");
    mkdir(dy, 0777);
    mkdir(opt, 0777);
    char *pk = join(opt, "lr"); /* pickle.dumps(1.5, 2) */
    CHECK(tu_write_file(pk, "\x80\x02G?\xf8\x00\x00\x00\x00\x00\x00.", 12) == 0);
    CHECK_OK(pdckpt_load_file(dy, NULL, &back, NULL, &err), &err);
    CHECK(back && pdckpt_value_len(back) == 1);
    pdckpt_value_free(back);
    CHECK(tu_count_entries(root, ".") == 2);
    free(pk);
    free(opt);
    free(dy);
    pdckpt_value_free(empty);
    free(path);
    tu_rmtree(root);
    free(root);
}

int main(void) {
    alarm(60); /* an open that blocks fails the test run instead of hanging it */
    RUN(test_program_names_stay_beneath);
    RUN(test_vars_dir_entries);
    RUN(test_fifo_paths);
    RUN(test_beneath_walk);
    RUN(test_save_into_foreign_directory);
    RUN(test_save_through_symlink_keeps_link_and_mode);
    RUN(test_inner_save_never_follows_a_link);
    RUN(test_save_refuses_special_files);
    RUN(test_empty_saves);
    return CHECK_SUMMARY();
}
