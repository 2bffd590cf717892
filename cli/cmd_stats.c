/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_stats.c — `pdckpt stats PATH [--json] [--check]`: per-tensor min / max / mean / std and
 * zero, NaN and Inf counts, then a summary that names every tensor holding NaN or Inf and says
 * whether it is a weight or optimizer state — what someone debugging a diverged run looks at
 * first.  --check makes NaN/Inf an error (exit 1) for scripts.
 */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int cmd_stats(int argc, char **argv);

enum { OPT_JSON = CLI_OPT_OWN, OPT_CHECK };
static const cli_option stats_options[] = {
    {"json", no_argument, NULL, OPT_JSON}, {"check", no_argument, NULL, OPT_CHECK}, {0, 0, 0, 0}};

const cli_command cli_cmd_stats = {
    "stats",
    "min/max/mean/std and NaN/Inf counts per tensor",
    "PATH",
    "Per-tensor min, max, mean and std (over the finite elements) and zero, NaN and Inf counts,\n"
    "then a summary naming every tensor that holds NaN or Inf, as weights or optimizer state.",
    "  --json                 the numbers as one JSON object (NaN as null)\n"
    "  --check                exit 1 when any tensor holds NaN or Inf\n",
    stats_options,
    true,
    cmd_stats};

typedef struct stats_flags {
    bool json, check;
} stats_flags;

static int stats_option(void *ctx, int code, const char *value) {
    (void)value;
    stats_flags *f = ctx;
    if (code == OPT_JSON) f->json = true;
    if (code == OPT_CHECK) f->check = true;
    return CLI_OK;
}

typedef struct stats_row {
    const cli_leaf     *leaf;
    pdckpt_tensor_view  view;
    pdckpt_tensor_stats s;
    bool                ok; /* false: a dtype without order (complex) */
} stats_row;

/* Optimizer state by Paddle's accumulator names (moment1_0, beta1_pow_acc_0, velocity_0, ...)
 * and the AMP master copies; everything else counts as weights. */
static const char *role_of(const char *key) {
    static const char *const optimizer[] = {"moment",         "_pow_acc", "velocity",
                                            "master_weights", "_acc_",    "LR_Scheduler"};
    for (size_t i = 0; i < sizeof optimizer / sizeof optimizer[0]; i++)
        if (strstr(key, optimizer[i])) return "optimizer state";
    return "weights";
}

static uint64_t nonfinite(const stats_row *r) {
    return r->ok ? r->s.n_nan + r->s.n_pos_inf + r->s.n_neg_inf : 0;
}

static void json_number(double x) {
    if (isnan(x))
        fputs("null", stdout); /* JSON has no NaN: null means "no finite element" */
    else
        printf("%.17g", x);
}

static void print_json_row(const stats_row *r) {
    char shape[256];
    cli_shape_text(&r->view, shape, sizeof shape);
    printf("{\"key\": %s, \"dtype\": \"%s\", \"shape\": %s, \"n_elements\": %llu",
           r->leaf->key_json, pdckpt_dtype_name(r->view.dtype), shape,
           (unsigned long long)r->view.n_elements);
    if (r->ok) {
        const char *names[] = {"min", "max", "mean", "std"};
        double      vals[] = {r->s.min, r->s.max, r->s.mean, r->s.std};
        for (int i = 0; i < 4; i++) printf(", \"%s\": ", names[i]), json_number(vals[i]);
        printf(", \"zeros\": %llu, \"nan\": %llu, \"pos_inf\": %llu, \"neg_inf\": %llu",
               (unsigned long long)r->s.n_zero, (unsigned long long)r->s.n_nan,
               (unsigned long long)r->s.n_pos_inf, (unsigned long long)r->s.n_neg_inf);
    }
    printf(", \"role\": \"%s\"}", role_of(r->leaf->key_text));
}

static void print_json(pdckpt_format format, const stats_row *rows, size_t n) {
    printf("{\"format\": \"%s\", \"tensors\": [", pdckpt_format_name(format));
    for (size_t i = 0; i < n; i++) {
        if (i) fputs(", ", stdout);
        print_json_row(&rows[i]);
    }
    fputs("], \"nonfinite\": [", stdout);
    for (size_t i = 0, first = 1; i < n; i++)
        if (nonfinite(&rows[i]))
            printf("%s%s", first ? "" : ", ", rows[i].leaf->key_json), first = 0;
    fputs("]}\n", stdout);
}

static void print_text_row(const stats_row *r) {
    char shape[256];
    cli_shape_text(&r->view, shape, sizeof shape);
    fputs("  ", stdout);
    cli_put_cell(stdout, r->leaf->key_show, 30);
    printf(" %-9s %-14s", pdckpt_dtype_name(r->view.dtype), shape);
    if (!r->ok) {
        puts("  (no order: complex)");
        return;
    }
    printf(" %11.4g %11.4g %11.4g %11.4g %9llu %6llu %6llu\n", r->s.min, r->s.max, r->s.mean,
           r->s.std, (unsigned long long)r->s.n_zero, (unsigned long long)r->s.n_nan,
           (unsigned long long)(r->s.n_pos_inf + r->s.n_neg_inf));
}

/* The summary line(s): which tensors hold NaN/Inf, grouped by role.  Returns how many do. */
static size_t print_summary(const stats_row *rows, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += nonfinite(&rows[i]) != 0;
    if (!bad) {
        printf("summary: no NaN or Inf in %zu tensors\n", n);
        return 0;
    }
    printf("summary: %zu of %zu tensors hold NaN or Inf\n", bad, n);
    for (size_t i = 0; i < n; i++)
        if (nonfinite(&rows[i]))
            printf("  %s (%s): %llu NaN, %llu +Inf, %llu -Inf of %llu\n", rows[i].leaf->key_show,
                   role_of(rows[i].leaf->key_text), (unsigned long long)rows[i].s.n_nan,
                   (unsigned long long)rows[i].s.n_pos_inf, (unsigned long long)rows[i].s.n_neg_inf,
                   (unsigned long long)rows[i].view.n_elements);
    return bad;
}

/* Computes every tensor leaf's stats into rows (allocated); *n_rows their count. */
static int compute_rows(const cli_leaves *leaves, stats_row **out, size_t *n_rows) {
    stats_row *rows = calloc(leaves->len ? leaves->len : 1, sizeof *rows);
    if (!rows) return fputs("pdckpt: out of memory\n", stderr), CLI_BAD_INPUT;
    uint64_t total = 0, done = 0;
    for (size_t i = 0; i < leaves->len; i++) {
        pdckpt_tensor_view v;
        if (pdckpt_tensor_get_memory(leaves->items[i].value, &v, NULL)) total += v.n_bytes;
    }
    size_t n = 0;
    cli_progress_begin("stats");
    for (size_t i = 0; i < leaves->len; i++) {
        stats_row *r = &rows[n];
        if (!pdckpt_tensor_get_memory(leaves->items[i].value, &r->view, NULL)) continue;
        pdckpt_error err = PDCKPT_ERROR_INIT;
        r->leaf = &leaves->items[i];
        r->ok = pdckpt_tensor_stats_compute(leaves->items[i].value, &r->s, &err) == PDCKPT_OK;
        cli_progress_cb(NULL, done += r->view.n_bytes, total);
        n++;
    }
    cli_progress_end();
    *out = rows;
    *n_rows = n;
    return CLI_OK;
}

int cmd_stats(int argc, char **argv) {
    cli_load_args      args = {PDCKPT_FORMAT_AUTO, NULL, 0, NULL};
    const char        *path = NULL;
    stats_flags        f = {false, false};
    pdckpt_value      *root = NULL;
    pdckpt_format      format = PDCKPT_FORMAT_AUTO;
    const cli_operands operands = {(const char **const[]){&path}, 1, 1};
    int rc = cli_parse(&cli_cmd_stats, argc, argv, &args, stats_option, &f, &operands);
    if (rc == CLI_OK) rc = cli_load(path, &args, false, &root, &format);
    cli_load_args_free(&args);
    if (rc != CLI_OK) return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    bool       json = f.json, check = f.check;
    cli_leaves leaves = {0};
    stats_row *rows = NULL;
    size_t     n = 0, bad = 0;
    if (cli_collect_leaves(root, &leaves) != 0)
        rc = (fputs("pdckpt: out of memory\n", stderr), CLI_BAD_INPUT);
    if (rc == CLI_OK) rc = compute_rows(&leaves, &rows, &n);
    if (rc == CLI_OK && json) {
        print_json(format, rows, n);
        for (size_t i = 0; i < n; i++) bad += nonfinite(&rows[i]) != 0;
    } else if (rc == CLI_OK) {
        printf("%s: %s, %zu tensors\n  %-30s %-9s %-14s %11s %11s %11s %11s %9s %6s %6s\n",
               cli_safe(path), pdckpt_format_name(format), n, "KEY", "DTYPE", "SHAPE", "MIN", "MAX",
               "MEAN", "STD", "ZEROS", "NAN", "INF");
        for (size_t i = 0; i < n; i++) print_text_row(&rows[i]);
        bad = print_summary(rows, n);
    }
    free(rows);
    cli_leaves_free(&leaves);
    pdckpt_value_free(root);
    return rc == CLI_OK && check && bad ? CLI_BAD_INPUT : rc;
}
