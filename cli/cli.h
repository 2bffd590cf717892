/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli.h — what the pdckpt subcommands share: error and usage reporting (exit 1 for bad input or a
 * difference, 2 for usage), loading with the common options, leaf listing, key-path rendering,
 * hashing, JSON text output and the progress bar.  Uses only the public API.
 */
#ifndef PDCKPT_CLI_H
#define PDCKPT_CLI_H

#include <getopt.h>
#include <pdckpt.h>
#include <stdio.h>

enum { CLI_OK = 0, CLI_BAD_INPUT = 1, CLI_USAGE = 2 };
/* cli_parse printed the command's help: the command returns CLI_OK at once. */
enum { CLI_HELP_SHOWN = -1 };

/* One subcommand: what its help, the top-level help, the completion scripts and the man page
 * say of it, its own long options (codes CLI_OPT_OWN and up, or a short letter), and its entry. */
typedef struct option cli_option; /* <getopt.h>'s struct option */
typedef struct cli_command {
    const char       *name;         /* "ls" */
    const char       *brief;        /* a few words for the command list */
    const char       *operands;     /* "PATH" (usage lines add "[options]") */
    const char       *summary;      /* one sentence */
    const char       *options_help; /* "  --json   ...\n" lines, or NULL */
    const cli_option *options;      /* {0}-terminated, or NULL */
    bool              load_options; /* takes --format/--names/--program/--allow-global/... */
    int (*run)(int argc, char **argv);
} cli_command;

/* Codes of the shared reading options; a command's own long options use CLI_OPT_OWN + n. */
enum {
    CLI_OPT_FORMAT = 0x100,
    CLI_OPT_NAMES,
    CLI_OPT_PROGRAM,
    CLI_OPT_ALLOW_GLOBAL,
    CLI_OPT_REINTERPRET,
    CLI_OPT_OWN = 0x200,
};

/* Options every loading subcommand understands. */
typedef struct cli_load_args {
    pdckpt_format format; /* --format/--from, AUTO by default */
    char        **names;  /* --names a,b,c or --names @file */
    size_t        n_names;
    const char   *program; /* --program P: the program naming a combined file or directory */
    const char  **allowed; /* --allow-global module.name (repeatable): carried inert, and convert
                              may write them back */
    size_t n_allowed;
    /* --reinterpret FROM=TO (repeatable): retype every FROM tensor after loading */
    pdckpt_dtype retype_from[8], retype_to[8];
    size_t       n_retype;
} cli_load_args;

/* Prints "pdckpt: <source>: offset N: <message>" and returns CLI_BAD_INPUT. */
int cli_report(const pdckpt_error *err);

/* ---- the option parser (cli_args.c) ---- */

/* Where the operands go: slots[0..n), of which the first `required` must be given. */
typedef struct cli_operands {
    const char **const *slots;
    size_t              n, required;
} cli_operands;
/* A command's own option: `code` from its table, `value` for options that take one.  Returns
 * CLI_OK or an exit code (after printing why). */
typedef int (*cli_option_fn)(void *ctx, int code, const char *value);
/* Parses argv (argv[0] is the command name) with getopt_long: the command's options through
 * on_option, the reading options into `load` (when the command takes them), the operands into
 * their slots.  Returns CLI_OK, CLI_HELP_SHOWN, or an exit code after printing the problem. */
int cli_parse(const cli_command *cmd, int argc, char **argv, cli_load_args *load,
              cli_option_fn on_option, void *ctx, const cli_operands *operands);
/* "pdckpt: <message>", the command's usage line and where its help is; returns CLI_USAGE. */
int cli_command_error(const cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cli_print_usage(FILE *out, const cli_command *cmd);
void cli_print_help(FILE *out, const cli_command *cmd);
/* The help text of the reading options, shared by every command that takes them. */
extern const char cli_load_options_help[];
/* The formats this build reads (or writes), "a, b, c". */
void cli_format_list(char *buf, size_t cap, bool for_save);
/* A format option's value, or a usage error listing the valid ones. */
int cli_format_value(const cli_command *cmd, const char *opt, const char *value, bool for_save,
                     pdckpt_format *out);
/* Values of the reading options: 0 or -1 after printing why (retype: CLI_OK or CLI_USAGE). */
int cli_add_names(cli_load_args *args, const char *spec);
int cli_add_allowed(cli_load_args *args, const char *name);
int cli_add_retype(const cli_command *cmd, cli_load_args *args, const char *spec);
/* "1.5 GiB" (binary units; raw bytes below 1 KiB). */
const char *cli_human_bytes(uint64_t n, char *buf, size_t cap);

/* The commands (one cmd_*.c each) and the table main.c dispatches, helps and completes from. */
extern const cli_command cli_cmd_ls, cli_cmd_convert, cli_cmd_diff, cli_cmd_verify, cli_cmd_check,
    cli_cmd_stats, cli_cmd_formats, cli_cmd_help, cli_cmd_completion;
extern const cli_command *const cli_commands[];
extern const size_t             cli_n_commands;
const cli_command              *cli_find_command(const char *name); /* NULL when unknown */
void                            cli_print_top_help(FILE *out);
void                            cli_load_args_free(cli_load_args *args);
/* The load options for `args` (format, names, program, allowed globals). */
pdckpt_load_options cli_load_options(const cli_load_args *args);
/* Loads `path` with the args; on failure prints the error. */
int cli_load(const char *path, const cli_load_args *args, bool for_verify, pdckpt_value **root,
             pdckpt_format *format);

/* Every leaf of a tree, in order, with its rendered key path. */
typedef struct cli_leaf {
    char               *key_json; /* ["a", 0, "b"] */
    char               *key_text; /* a/0/b, the key's bytes (for matching) */
    char               *key_show; /* the same, display-safe (for printing) */
    const pdckpt_value *value;
} cli_leaf;
typedef struct cli_leaves {
    cli_leaf *items;
    size_t    len, cap;
} cli_leaves;
int  cli_collect_leaves(const pdckpt_value *root, cli_leaves *out);
void cli_leaves_free(cli_leaves *leaves);
/* Removes the leaves of Paddle's name table (top-level PDCKPT_NAME_TABLE_KEY); returns
 * how many there were. */
size_t cli_leaves_drop_name_table(cli_leaves *leaves);
bool   cli_leaves_has_name_table(const cli_leaves *leaves);
/* Keys every tensor that carries a Paddle name by that name alone (["embedding_0.w_0"]), so that
 * a state dict keyed "emb.weight" lines up with a program-named file; -1 when out of memory. */
int cli_leaves_key_by_name(cli_leaves *leaves);

/* ---- names from files (pdckpt.h, "Display-safe text") ----
 * Every string that comes from a file (keys, variable and file names, metadata) is printed for a
 * person through these, never raw.  cli_safe returns its display-safe rendering (escapes such as
 * \x1b, \n, \u202e; a backslash as \\), valid until CLI_SAFE_SLOTS more calls, so that one printf
 * can take several. */
enum { CLI_SAFE_SLOTS = 8 };
const char *cli_safe(const char *s);
const char *cli_safe_n(const char *s, size_t len);
/* Terminal columns of display-safe text (East Asian wide characters count two). */
size_t cli_width(const char *text);
/* Prints display-safe `text` left-justified in `width` columns (a table's %-*s). */
void cli_put_cell(FILE *out, const char *text, size_t width);

/* Writes s as a JSON string literal (through pdckpt_json_write_string, the one JSON string
 * writer, in its display mode: controls, bidi controls and bytes that are not UTF-8 escaped). */
void cli_json_string(FILE *out, const char *s, size_t len);
/* The same for a NUL-terminated string. */
void cli_json_str(FILE *out, const char *s);
/* Writes a scalar leaf as JSON (int, float, string, bool, null; others as descriptive strings). */
void cli_json_scalar(FILE *out, const pdckpt_value *leaf);
/* Human text for a scalar leaf. */
void cli_text_scalar(FILE *out, const pdckpt_value *leaf);
/* A one-line Python-like rendering (objects: module.name(args) state=...), cut to `cap`. */
void cli_repr(const pdckpt_value *v, char *buf, size_t cap);
/* "[2, 3]" (also a program variable's dims, -1 where unknown) */
void cli_dims_text(int32_t n_dims, const int64_t *dims, char *buf, size_t cap);
void cli_shape_text(const pdckpt_tensor_view *v, char *buf, size_t cap);

/* SHA-256 of the tensor's raw little-endian C-order bytes, as 64 hex chars + NUL. */
int cli_sha256_hex(const void *data, uint64_t len, char out[65]);

/* Progress bar on stderr: drawn only when stderr is a terminal and the work has taken > 1 s. */
void cli_progress_begin(const char *label);
int  cli_progress_cb(void *ctx, uint64_t done, uint64_t total);
void cli_progress_end(void);

/* The .pdiparams.info beside what `path` (+ --program) loads, as a DICT name -> {structured_name,
 * ...}; NULL when there is none (or it cannot be read: the listing then shows no names). */
pdckpt_value *cli_params_info_for(const char *path, const cli_load_args *args);
/* The .pdiparams.info jit.save wrote beside `program` (X.pdmodel -> X.pdiparams.info), or NULL. */
pdckpt_value *cli_info_beside_program(const char *program);
/* The structured name the info gives variable `name`, or NULL. */
const char *cli_structured_name(const pdckpt_value *info, const char *name);
/* `pdckpt ls` of a program file (cmd_ls_program.c). */
int cli_ls_program(const char *path, const cli_load_args *args, bool json);
/* `pdckpt dist ...`: cli_dist.c in a build with MPI, else a message saying it needs one. */
int cli_dist_run(int argc, char **argv);

#endif /* PDCKPT_CLI_H */
