/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_args.c — one option parser for every subcommand, built on getopt_long so the tool behaves
 * as users of GNU tools expect: `--opt value` and `--opt=value`, options before or after the
 * operands, `--` ends the options, `-` alone is an operand (standard input or output), `-h` and
 * `--help` print the command's help.  The options every reading command takes (--format, --names,
 * --program, --allow-global, --reinterpret) are parsed here once.  Help, the command table's
 * completion scripts and the man page are all made from the same cli_command records.
 */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const struct option load_options[] = {
    {"format", required_argument, NULL, CLI_OPT_FORMAT},
    {"from", required_argument, NULL, CLI_OPT_FORMAT},
    {"names", required_argument, NULL, CLI_OPT_NAMES},
    {"program", required_argument, NULL, CLI_OPT_PROGRAM},
    {"allow-global", required_argument, NULL, CLI_OPT_ALLOW_GLOBAL},
    {"reinterpret", required_argument, NULL, CLI_OPT_REINTERPRET},
    {0, 0, 0, 0},
};

const char cli_load_options_help[] =
    "  --format F, --from F   read as format F instead of detecting it (see 'pdckpt formats')\n"
    "  --names N              a combined file's variable names in order: a,b,c or @FILE\n"
    "  --program P            the program (.pdmodel, __model__, PIR .json) naming the tensors\n"
    "  --allow-global M.N     a pickle may name class M.N beyond the allowlist; it is carried\n"
    "                         inert and convert may write it back (repeatable; trust it first:\n"
    "                         paddle.load of a written file imports and calls it)\n"
    "  --reinterpret FROM=TO  retype every FROM tensor as TO after loading (same element size,\n"
    "                         e.g. uint16=bfloat16 for bits that are bfloat16)\n";

void cli_print_usage(FILE *out, const cli_command *cmd) {
    fprintf(out, "usage: pdckpt %s%s%s [options]\n", cmd->name, cmd->operands[0] ? " " : "",
            cmd->operands);
}

void cli_print_help(FILE *out, const cli_command *cmd) {
    cli_print_usage(out, cmd);
    fprintf(out, "\n%s\n", cmd->summary);
    if (cmd->options_help && cmd->options_help[0])
        fprintf(out, "\noptions:\n%s", cmd->options_help);
    if (cmd->load_options) fprintf(out, "\nreading options:\n%s", cli_load_options_help);
    fputs("  -h, --help             this help\n", out);
}

int cli_command_error(const cli_command *cmd, const char *fmt, ...) {
    char    text[1024], shown[4 * sizeof text];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    /* values quoted from the command line or a file: display-safe, as the library's messages */
    pdckpt_display_text(text, strlen(text), PDCKPT_DISPLAY_KEEP_BACKSLASH, shown, sizeof shown);
    fprintf(stderr, "pdckpt: %s\n", shown);
    if (!cmd) return CLI_USAGE; /* pdckpt-mpi's hand-parsed commands print their own usage */
    cli_print_usage(stderr, cmd);
    fprintf(stderr, "Try 'pdckpt %s --help' for more.\n", cmd->name);
    return CLI_USAGE;
}

/* Every format this build reads (or writes), comma-separated, for help and error messages. */
void cli_format_list(char *buf, size_t cap, bool for_save) {
    size_t used = 0;
    buf[0] = '\0';
    for (int f = 1; f < PDCKPT_FORMAT_COUNT && used < cap; f++) {
        bool ok = for_save ? pdckpt_format_can_save(f) : pdckpt_format_can_load(f);
        if (!ok) continue;
        int n = snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", pdckpt_format_name(f));
        if (n > 0) used += (size_t)n;
    }
}

int cli_format_value(const cli_command *cmd, const char *opt, const char *value, bool for_save,
                     pdckpt_format *out) {
    bool known = false;
    *out = pdckpt_format_from_name(value, &known);
    bool usable = known && (for_save ? pdckpt_format_can_save(*out) : pdckpt_format_can_load(*out));
    if (usable) return CLI_OK;
    char list[512];
    cli_format_list(list, sizeof list, for_save);
    return cli_command_error(cmd, "invalid value '%s' for %s; expected one of: %s", value, opt,
                             list);
}

static int take_load_option(const cli_command *cmd, cli_load_args *load, int code,
                            const char *value) {
    switch (code) {
    case CLI_OPT_FORMAT: return cli_format_value(cmd, "--format", value, false, &load->format);
    case CLI_OPT_NAMES: return cli_add_names(load, value) == 0 ? CLI_OK : CLI_BAD_INPUT;
    case CLI_OPT_PROGRAM: load->program = value; return CLI_OK;
    case CLI_OPT_ALLOW_GLOBAL: return cli_add_allowed(load, value) == 0 ? CLI_OK : CLI_BAD_INPUT;
    default: return cli_add_retype(cmd, load, value);
    }
}

/* The command's own options, then the load options (if it takes them), then --help. */
static size_t build_table(const cli_command *cmd, struct option *table, size_t cap) {
    size_t n = 0;
    for (const struct option *o = cmd->options; o && o->name && n + 1 < cap; o++) table[n++] = *o;
    for (const struct option *o = load_options; cmd->load_options && o->name && n + 1 < cap; o++)
        table[n++] = *o;
    table[n++] = (struct option){"help", no_argument, NULL, 'h'};
    table[n] = (struct option){0, 0, 0, 0};
    return n;
}

/* Places the operands getopt left at argv[optind..] into the caller's slots. */
static int take_operands(const cli_command *cmd, int argc, char **argv,
                         const cli_operands *operands) {
    size_t n = 0;
    for (int i = optind; i < argc; i++, n++) {
        if (n == operands->n) return cli_command_error(cmd, "unexpected argument '%s'", argv[i]);
        *operands->slots[n] = argv[i]; /* n < operands->n, so slots is not NULL */
    }
    if (n < operands->required)
        return cli_command_error(cmd, "%s needs %s", cmd->name, cmd->operands);
    return CLI_OK;
}

/* getopt_long's complaints, in words: a missing value (':'), an unknown long option (optopt 0),
 * a value given to a flag (optopt its code: 'h' or CLI_OPT_*), an unknown short option (optopt the
 * letter).  A long option is a whole argument, argv[optind - 1]; a short one may sit inside one
 * ("-odd.pdparams") that optind has not passed yet, so it is named by its letter. */
static int option_error(const cli_command *cmd, int code, char **argv) {
    const char *arg = argv[optind - 1];
    if (code == ':') return cli_command_error(cmd, "option '%s' needs a value", arg);
    if (optopt == 0) return cli_command_error(cmd, "unknown option '%s'", arg);
    if (optopt == 'h' || optopt >= CLI_OPT_FORMAT)
        return cli_command_error(cmd, "option '%s' takes no value", arg);
    return cli_command_error(cmd, "unknown option '-%c'", optopt);
}

int cli_parse(const cli_command *cmd, int argc, char **argv, cli_load_args *load,
              cli_option_fn on_option, void *ctx, const cli_operands *operands) {
    struct option table[48];
    build_table(cmd, table, sizeof table / sizeof *table);
    optind = 0; /* a full reinitialisation (GNU): each command parses its own argv */
    opterr = 0; /* our messages name the command and its help */
    int rc = CLI_OK, code;
    while (rc == CLI_OK && (code = getopt_long(argc, argv, ":h", table, NULL)) != -1) {
        if (code == 'h') {
            cli_print_help(stdout, cmd);
            return CLI_HELP_SHOWN;
        }
        if (code == ':' || code == '?') return option_error(cmd, code, argv);
        rc = code >= CLI_OPT_FORMAT && code <= CLI_OPT_REINTERPRET && load
                 ? take_load_option(cmd, load, code, optarg)
                 : on_option(ctx, code, optarg); /* only codes from the command's table */
    }
    return rc == CLI_OK ? take_operands(cmd, argc, argv, operands) : rc;
}

const char *cli_human_bytes(uint64_t n, char *buf, size_t cap) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (n < 1024) {
        snprintf(buf, cap, "%llu B", (unsigned long long)n);
        return buf;
    }
    double v = (double)n / 1024;
    int    u = 0;
    while (v >= 1024 && u < 5) v /= 1024, u++;
    snprintf(buf, cap, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}
