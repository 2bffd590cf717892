/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_golden.c — every golden corrupt file in tests/golden (written by make_golden.py) loads
 * with exactly the status, offset and message listed in tests/golden/expected.tsv (with `verify`
 * set, as `pdckpt verify`), and the error names the file.  Every load, plain or verifying, holds
 * at most the file's size plus a fixed 128 KiB of memory at its peak (issue 8 item 4).
 */
#include "check.h"
#include "test_util.h"

#include <stdlib.h>
#include <sys/stat.h>

/* Counts what a load allocates: a hostile file must be refused without the loader ever holding
 * more than the file's size plus a small constant (issue 8 item 4). */
typedef struct counting {
    size_t live, peak;
} counting;

static void *count_alloc(void *ctx, size_t size, size_t alignment) {
    counting *c = ctx;
    size_t    align = alignment < sizeof(void *) ? sizeof(void *) : alignment;
    void     *p = aligned_alloc(align, (size + align - 1) / align * align);
    if (p && (c->live += size) > c->peak) c->peak = c->live;
    return p;
}

static void count_free(void *ctx, void *ptr, size_t size) {
    counting *c = ctx;
    if (ptr) c->live -= size;
    free(ptr);
}

static pdckpt_status status_from_name(const char *name) {
    for (int s = 0; s <= PDCKPT_ERR_CORRUPT; s++)
        if (strcmp(pdckpt_status_name((pdckpt_status)s), name) == 0) return (pdckpt_status)s;
    return PDCKPT_OK;
}

/* Splits "a,b,c" in place into `names`; returns the count. */
static size_t split_names(char *list, const char **names, size_t cap) {
    if (strcmp(list, "-") == 0) return 0;
    size_t n = 0;
    for (char *tok = strtok(list, ","); tok && n < cap; tok = strtok(NULL, ",")) names[n++] = tok;
    return n;
}

/* Loads `path` through a counting allocator and checks the bound: peak live bytes at most the
 * file's size plus ALLOC_SLACK (the parsers' fixed-size state: stacks, depth-limited nesting). */
#define ALLOC_SLACK ((size_t)128 << 10)
static pdckpt_status load_bounded(const char *path, pdckpt_load_options *lo, pdckpt_error *err) {
    counting         c = {0, 0};
    pdckpt_allocator a = {count_alloc, count_free, &c};
    lo->allocator = &a;
    pdckpt_value *out = NULL;
    pdckpt_status st = pdckpt_load_file(path, lo, &out, NULL, err);
    pdckpt_value_free(out);
    lo->allocator = NULL;
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && c.live == 0);
    if (c.peak > (size_t)sb.st_size + ALLOC_SLACK) {
        fprintf(stderr, "%s: the load held %zu bytes at its peak; the file has %lld\n", path,
                c.peak, (long long)sb.st_size);
        CHECK(false);
    }
    return st;
}

static void check_row(const char *dir, char *line) {
    char *fields[6];
    int   n = 0;
    for (char *p = line; n < 6; n++) {
        fields[n] = p;
        char *tab = strchr(p, n == 5 ? '\n' : '\t');
        if (!tab) {
            n++;
            break;
        }
        *tab = '\0';
        p = tab + 1;
    }
    if (n < 6) {
        fprintf(stderr, "malformed expected.tsv line\n");
        CHECK(false);
        return;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, fields[0]);
    const char         *names[16];
    char                program[4200];
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.verify = true; /* as `pdckpt verify` (tests/py/test_prefixes_and_golden.py) */
    bool known;
    lo.format = pdckpt_format_from_name(fields[1], &known);
    if (strncmp(fields[2], "program=", 8) == 0) { /* named by a program file beside it */
        snprintf(program, sizeof program, "%s/%s", dir, fields[2] + 8);
        lo.program_path = program;
    } else {
        lo.n_names = split_names(fields[2], names, 16);
        lo.names = lo.n_names ? names : NULL;
    }
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_status st = load_bounded(path, &lo, &err);
    lo.verify = false; /* a plain load makes fewer checks: it may accept, never crash or differ */
    pdckpt_error  plain_err = PDCKPT_ERROR_INIT;
    pdckpt_status plain = load_bounded(path, &lo, &plain_err);
    CHECK(plain == st || (plain == PDCKPT_OK && st == PDCKPT_ERR_FORMAT));
    if (st != status_from_name(fields[3]) || err.offset != atoll(fields[4]) ||
        strcmp(err.message, fields[5]) != 0 || strcmp(err.source, path) != 0) {
        fprintf(stderr, "%s: got %s at %lld: \"%s\" (source %s)\n   expected %s at %s: \"%s\"\n",
                fields[0], pdckpt_status_name(st), (long long)err.offset, err.message, err.source,
                fields[3], fields[4], fields[5]);
        CHECK(false);
    }
}

static void test_golden_files(void) {
    const char *src = getenv("PDCKPT_SOURCE_DIR");
    char        dir[4096], tsv[4200];
    snprintf(dir, sizeof dir, "%s/tests/golden", src ? src : ".");
    snprintf(tsv, sizeof tsv, "%s/expected.tsv", dir);
    FILE *f = fopen(tsv, "r");
    CHECK(f != NULL);
    if (!f) return;
    char line[2048];
    int  rows = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        check_row(dir, line);
        rows++;
    }
    fclose(f);
    CHECK(rows >= 20);
}

int main(void) {
    RUN(test_golden_files);
    return CHECK_SUMMARY();
}
