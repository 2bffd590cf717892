/*
 * test_golden.c — every golden corrupt file in tests/golden (written by make_golden.py) loads
 * with exactly the status, offset and message listed in tests/golden/expected.tsv, and the error
 * names the file.
 */
#include "check.h"
#include "test_util.h"

#include <stdlib.h>

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
    bool                known;
    lo.format = pdckpt_format_from_name(fields[1], &known);
    if (strncmp(fields[2], "program=", 8) == 0) { /* named by a program file beside it */
        snprintf(program, sizeof program, "%s/%s", dir, fields[2] + 8);
        lo.program_path = program;
    } else {
        lo.n_names = split_names(fields[2], names, 16);
        lo.names = lo.n_names ? names : NULL;
    }
    pdckpt_value *out = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_status st = pdckpt_load_file(path, &lo, &out, NULL, &err);
    pdckpt_value_free(out);
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
