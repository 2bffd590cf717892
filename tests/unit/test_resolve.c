/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_resolve.c — pdckpt_resolve, the one answer to "what does this path name" (issue 17 item
 * 2): for every real fixture, every file in it and every prefix its file names imply,
 * pdckpt_detect_format and pdckpt_load_file agree (same format when load succeeds, the same
 * status when it fails); the target and program resolve reports for the Paddle naming cases.
 */
#include "check.h"
#include "test_util.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>

static const char *fixture(const char *rel) {
    return tu_fixture(rel);
}

static int n_checked, n_loaded;

/* detect, resolve and load agree on `path`. */
static void check_agree(const char *path) {
    pdckpt_error    derr = PDCKPT_ERROR_INIT, lerr = PDCKPT_ERROR_INIT, rerr = PDCKPT_ERROR_INIT;
    pdckpt_format   detected = PDCKPT_FORMAT_AUTO, loaded = PDCKPT_FORMAT_AUTO;
    pdckpt_value   *out = NULL;
    pdckpt_resolved r;
    pdckpt_status   ds = pdckpt_detect_format(path, &detected, &derr);
    pdckpt_status   rs = pdckpt_resolve(path, &r, &rerr);
    pdckpt_status   ls = pdckpt_load_file(path, NULL, &out, &loaded, &lerr);
    pdckpt_value_free(out);
    n_checked++;
    CHECK_EQ_INT(ds, rs);
    if (ls == PDCKPT_OK) {
        n_loaded++;
        if (ds != PDCKPT_OK) fprintf(stderr, "  %s: load ok, detect: %s\n", path, derr.message);
        CHECK_EQ_INT(ds, PDCKPT_OK);
        if (detected != loaded)
            fprintf(stderr, "  %s: detect %s, load %s\n", path, pdckpt_format_name(detected),
                    pdckpt_format_name(loaded));
        CHECK_EQ_INT(detected, loaded);
        CHECK_EQ_INT(r.format, loaded);
    } else if (ds == PDCKPT_OK) {
        /* the name resolves but the content fails to load: detect names the format only; the
         * failure is the format's (not a NOT_FOUND that detect would have seen) */
        CHECK(ls != PDCKPT_ERR_NOT_FOUND || strstr(lerr.message, "stat") == NULL);
    } else {
        CHECK_EQ_INT(ds, ls);
    }
}

/* Each file, and each stem before a '.' in a file name (a Paddle prefix such as "dir/model"). */
static void check_entries(const char *dir) {
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char path[8400];
        if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path) continue;
        check_agree(path);
        char *dot = strchr(path + strlen(dir) + 1, '.');
        if (dot) {
            *dot = '\0';
            check_agree(path);
        }
    }
    closedir(d);
}

static void test_every_fixture_agrees(void) {
    DIR *d = opendir(fixture(""));
    CHECK(d != NULL);
    if (!d) return;
    struct dirent *de;
    char           base[4200];
    snprintf(base, sizeof base, "%s", fixture(""));
    while ((de = readdir(d)) != NULL) {
        char path[8400];
        if (snprintf(path, sizeof path, "%s/%s", base, de->d_name) >= (int)sizeof path) continue;
        struct stat st;
        if (de->d_name[0] == '.' || stat(path, &st) != 0) continue;
        check_agree(path);
        if (S_ISDIR(st.st_mode)) check_entries(path);
    }
    closedir(d);
    fprintf(stderr, "  %d paths checked, %d loaded\n", n_checked, n_loaded);
    CHECK(n_checked > 50 && n_loaded > 20);
}

static void test_paddle_names(void) {
    pdckpt_resolved r;
    pdckpt_error    err = PDCKPT_ERROR_INIT;
    char            want[4400];
    /* an inference-model prefix: the parameters file and the program naming it */
    CHECK_OK(pdckpt_resolve(fixture("ppyolo_tiny-pdiparams-paddle2.4.0/model"), &r, &err), &err);
    CHECK_EQ_INT(r.format, PDCKPT_FORMAT_INFERENCE);
    snprintf(want, sizeof want, "%s", fixture("ppyolo_tiny-pdiparams-paddle2.4.0/model.pdiparams"));
    CHECK_STR(r.target, want);
    snprintf(want, sizeof want, "%s", fixture("ppyolo_tiny-pdiparams-paddle2.4.0/model.pdmodel"));
    CHECK_STR(r.program, want);
    /* the lone parameters file: itself, named by the program beside it */
    snprintf(want, sizeof want, "%s", fixture("ppyolo_tiny-pdiparams-paddle2.4.0/model.pdiparams"));
    CHECK_OK(pdckpt_resolve(want, &r, &err), &err);
    CHECK_EQ_INT(r.format, PDCKPT_FORMAT_INFERENCE);
    CHECK_STR(r.target, want);
    CHECK(strstr(r.program, "model.pdmodel") != NULL);
    snprintf(want, sizeof want, "%s.info", r.target);
    CHECK_STR(r.info, want);
    /* a 1.x directory of variable files: the directory, with its __model__ */
    CHECK_OK(pdckpt_resolve(fixture("fit_a_line-sepfiles-2019-05"), &r, &err), &err);
    CHECK_EQ_INT(r.format, PDCKPT_FORMAT_INFERENCE);
    snprintf(want, sizeof want, "%s", fixture("fit_a_line-sepfiles-2019-05"));
    CHECK_STR(r.target, want);
    snprintf(want, sizeof want, "%s", fixture("fit_a_line-sepfiles-2019-05/__model__"));
    CHECK_STR(r.program, want);
    CHECK_STR(r.info, "");
    /* the .info beside a program or its parameters; none beside a 1.x __model__ here */
    char info[PDCKPT_PATH_MAX];
    CHECK(pdckpt_info_path(fixture("ppyolo_tiny-pdiparams-paddle2.4.0/model.pdmodel"), info));
    CHECK(strstr(info, "ppyolo_tiny-pdiparams-paddle2.4.0/model.pdiparams.info") != NULL);
    CHECK(pdckpt_info_path(fixture("ppyolo_tiny-pdiparams-paddle2.4.0/model.pdiparams"), info));
    CHECK(strstr(info, "ppyolo_tiny-pdiparams-paddle2.4.0/model.pdiparams.info") != NULL);
    CHECK(!pdckpt_info_path(fixture("fit_a_line-sepfiles-2019-05/__model__"), info));
    CHECK(strstr(info, "fit_a_line-sepfiles-2019-05/__variables.info__") != NULL);
    /* nothing there: the stat error, naming the path */
    CHECK_STATUS(pdckpt_resolve(fixture("no-such-checkpoint"), &r, &err), PDCKPT_ERR_NOT_FOUND,
                 &err);
    CHECK(strstr(err.source, "no-such-checkpoint") != NULL);
    CHECK_STATUS(pdckpt_resolve(NULL, &r, &err), PDCKPT_ERR_ARGUMENT, &err);
    CHECK_STATUS(pdckpt_resolve("x", NULL, &err), PDCKPT_ERR_ARGUMENT, &err);
}

int main(void) {
    RUN(test_every_fixture_agrees);
    RUN(test_paddle_names);
    return CHECK_SUMMARY();
}
