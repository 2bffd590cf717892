/*
 * cli_common.c — error/usage reporting, the shared --format/--names options and loading.
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_report(const pdckpt_error *err) {
    char line[1200];
    fprintf(stderr, "pdckpt: %s\n", pdckpt_error_format(err, line, sizeof line));
    return CLI_BAD_INPUT;
}

int cli_usage_error(const char *usage, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("pdckpt: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage);
    return CLI_USAGE;
}

int cli_positional(const char *arg, const char **const *slots, size_t n, const char *usage) {
    if (arg[0] == '-' && arg[1]) return cli_usage_error(usage, "unknown option '%s'", arg);
    for (size_t i = 0; i < n; i++)
        if (!*slots[i]) {
            *slots[i] = arg;
            return CLI_OK;
        }
    return cli_usage_error(usage, "unexpected argument '%s'", arg);
}

static int add_name(cli_load_args *args, const char *s, size_t len) {
    char **grown = realloc(args->names, (args->n_names + 1) * sizeof *grown);
    if (!grown) return -1;
    args->names = grown;
    args->names[args->n_names] = strndup(s, len);
    if (!args->names[args->n_names]) return -1;
    args->n_names++;
    return 0;
}

static int names_from_file(cli_load_args *args, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "pdckpt: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char   *line = NULL;
    size_t  cap = 0;
    ssize_t n;
    int     rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        if (n > 0) rc = add_name(args, line, (size_t)n);
    }
    free(line);
    fclose(f);
    return rc;
}

static int parse_names(cli_load_args *args, const char *spec) {
    if (spec[0] == '@') return names_from_file(args, spec + 1);
    for (const char *p = spec;;) {
        const char *comma = strchr(p, ',');
        size_t      len = comma ? (size_t)(comma - p) : strlen(p);
        if (len && add_name(args, p, len) != 0) return -1;
        if (!comma) return 0;
        p = comma + 1;
    }
}

/* --reinterpret FROM=TO: two dtype names of the same element size. */
static int parse_retype(cli_load_args *args, const char *spec, const char *usage) {
    const char *eq = strchr(spec, '=');
    char        from[32];
    if (!eq || (size_t)(eq - spec) >= sizeof from)
        return cli_usage_error(usage, "--reinterpret needs FROM=TO (e.g. uint16=bfloat16)");
    snprintf(from, sizeof from, "%.*s", (int)(eq - spec), spec);
    pdckpt_dtype a = pdckpt_dtype_from_name(from), b = pdckpt_dtype_from_name(eq + 1);
    if (a == PDCKPT_DTYPE_INVALID || b == PDCKPT_DTYPE_INVALID)
        return cli_usage_error(usage, "--reinterpret: unknown dtype in '%s'", spec);
    if (pdckpt_dtype_size(a) != pdckpt_dtype_size(b))
        return cli_usage_error(usage, "--reinterpret: %s and %s differ in element size", from,
                               eq + 1);
    if (args->n_retype == sizeof args->retype_from / sizeof *args->retype_from)
        return cli_usage_error(usage, "--reinterpret: at most 8 pairs");
    args->retype_from[args->n_retype] = a;
    args->retype_to[args->n_retype++] = b;
    return CLI_OK;
}

int cli_parse_load_option(int argc, char **argv, int *i, cli_load_args *args, const char *usage) {
    const char *opt = argv[*i];
    bool        is_format = strcmp(opt, "--format") == 0 || strcmp(opt, "--from") == 0;
    bool        is_names = strcmp(opt, "--names") == 0, is_program = strcmp(opt, "--program") == 0;
    bool        is_retype = strcmp(opt, "--reinterpret") == 0;
    if (!is_format && !is_names && !is_program && !is_retype) return 0;
    if (*i + 1 >= argc) return cli_usage_error(usage, "%s needs a value", opt), -1;
    const char *value = argv[++*i];
    if (is_retype) return parse_retype(args, value, usage) == CLI_OK ? 1 : -1;
    if (is_program) {
        args->program = value;
        return 1;
    }
    if (is_names) {
        if (parse_names(args, value) != 0) return -1;
        return 1;
    }
    bool known;
    args->format = pdckpt_format_from_name(value, &known);
    if (!known) return cli_usage_error(usage, "unknown format '%s'", value), -1;
    return 1;
}

void cli_load_args_free(cli_load_args *args) {
    for (size_t i = 0; i < args->n_names; i++) free(args->names[i]);
    free(args->names);
    args->names = NULL;
    args->n_names = 0;
}

int cli_load(const char *path, const cli_load_args *args, bool for_verify, pdckpt_value **root,
             pdckpt_format *format) {
    pdckpt_load_options opts = PDCKPT_LOAD_OPTIONS_INIT;
    opts.format = args->format;
    opts.names = (const char *const *)args->names;
    opts.n_names = args->n_names;
    opts.program_path = args->program;
    opts.verify = for_verify;
    opts.progress = cli_progress_cb;
    pdckpt_error err = PDCKPT_ERROR_INIT;
    cli_progress_begin("loading");
    pdckpt_status st = pdckpt_load_file(path, &opts, root, format, &err);
    cli_progress_end();
    for (size_t i = 0; st == PDCKPT_OK && i < args->n_retype; i++)
        st = pdckpt_value_reinterpret_all(*root, args->retype_from[i], args->retype_to[i], NULL,
                                          &err);
    if (st != PDCKPT_OK && *root) {
        pdckpt_value_free(*root);
        *root = NULL;
    }
    return st == PDCKPT_OK ? CLI_OK : cli_report(&err);
}
