/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_convert.c — `pdckpt convert IN OUT [--from F] [--to F] [options]`: load in one format,
 * save atomically in another.  The output format comes from --to or OUT's name.  IN `-` reads
 * standard input; OUT `-` streams a single-file format (--to required) to standard output.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cmd_convert(int argc, char **argv);

enum {
    OPT_TO = CLI_OPT_OWN,
    OPT_OUT_PROGRAM,
    OPT_PROTOCOL,
    OPT_NUMPY_MODULE,
    OPT_SKIP_NON_TENSORS,
    OPT_NO_FSYNC,
    OPT_STATIC_OUT,
    OPT_CHECKSUM,
    OPT_MAX_SHARD_SIZE,
};
static const cli_option convert_options[] = {
    {"to", required_argument, NULL, OPT_TO},
    {"out-program", required_argument, NULL, OPT_OUT_PROGRAM},
    {"protocol", required_argument, NULL, OPT_PROTOCOL},
    {"numpy-module", required_argument, NULL, OPT_NUMPY_MODULE},
    {"skip-non-tensors", no_argument, NULL, OPT_SKIP_NON_TENSORS},
    {"no-fsync", no_argument, NULL, OPT_NO_FSYNC},
    {"static-out", no_argument, NULL, OPT_STATIC_OUT},
    {"checksum", no_argument, NULL, OPT_CHECKSUM},
    {"max-shard-size", required_argument, NULL, OPT_MAX_SHARD_SIZE},
    {0, 0, 0, 0},
};

const cli_command cli_cmd_convert = {
    "convert",
    "convert between formats, atomically",
    "IN OUT",
    "Loads IN in one format and saves it atomically as OUT in another (from --to or OUT's\n"
    "name).  IN - reads standard input; OUT - streams a single-file format to standard output.\n"
    "Anything the target format cannot hold is refused by name unless --skip-non-tensors.",
    "  --to F                 the output format (default: from OUT's name)\n"
    "  --out-program P        write OUT as exactly P's persistable variables, checked\n"
    "  --protocol 2|3|4       pickle protocol (default 4, as paddle.save)\n"
    "  --numpy-module M       numpy.core (default: numpy 1.x and 2.x read it) or numpy._core\n"
    "  --skip-non-tensors     drop values the output format cannot hold, listing each\n"
    "  --no-fsync             skip the fsyncs (faster; not crash-safe)\n"
    "  --static-out           OUT is a paddle.static.save prefix: IN's \"pdparams\" and\n"
    "                         \"pdopt\" dicts go to OUT.pdparams and OUT.pdopt\n"
    "  --checksum             also write OUT.xxh3 (xxh3-128 per 4 KiB; verify checks it)\n"
    "  --max-shard-size SIZE  Hugging Face shards of at most SIZE tensor bytes (5GB = 5*10^9,\n"
    "                         2GiB, or bytes) plus the index; OUT is a directory or\n"
    "                         NAME.safetensors / NAME.pdparams\n",
    convert_options,
    true,
    cmd_convert};

typedef struct convert_args {
    pdckpt_save_options so;
    const char         *out_program;
    bool                static_out;
} convert_args;

/* OUT `-`: the bytes go to standard output as they are produced. */
static pdckpt_status stdout_write(void *self, const void *bytes, size_t len, pdckpt_error *err) {
    (void)self;
    for (const char *p = bytes; len > 0;) {
        ssize_t n = write(1, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            err->status = PDCKPT_ERR_IO;
            err->sys_errno = n < 0 ? errno : EIO;
            snprintf(err->source, sizeof err->source, "<stdout>");
            snprintf(err->message, sizeof err->message, "write: %s", strerror(err->sys_errno));
            return PDCKPT_ERR_IO;
        }
        p += n;
        len -= (size_t)n;
    }
    return PDCKPT_OK;
}

static pdckpt_status stdout_commit(void *self, pdckpt_error *err) {
    (void)self;
    (void)err;
    return PDCKPT_OK;
}

static const pdckpt_sink_ops stdout_ops = {PDCKPT_SINK_OPS_VERSION, stdout_write, stdout_commit,
                                           NULL};

static int check_stdout_use(const pdckpt_save_options *so, bool special) {
    if (special || so->checksum)
        return cli_command_error(&cli_cmd_convert,
                                 "OUT '-' streams one file: no --out-program, --static-out "
                                 "or --checksum");
    if (so->format == PDCKPT_FORMAT_VARS_DIR || so->format == PDCKPT_FORMAT_DYGRAPH_DIR ||
        so->format == PDCKPT_FORMAT_INFERENCE || so->format == PDCKPT_FORMAT_DISTCP ||
        so->format == PDCKPT_FORMAT_SAFETENSORS_SHARDED ||
        so->format == PDCKPT_FORMAT_PICKLE_SHARDED || so->max_shard_size)
        return cli_command_error(&cli_cmd_convert, "OUT '-' cannot stream a directory format (%s)",
                                 pdckpt_format_name(so->format));
    if (isatty(1))
        return cli_command_error(&cli_cmd_convert,
                                 "OUT '-' would write binary to a terminal; redirect it");
    return CLI_OK;
}

static int convert_option(void *ctx, int code, const char *value) {
    convert_args *a = ctx;
    switch (code) {
    case OPT_TO: return cli_format_value(&cli_cmd_convert, "--to", value, true, &a->so.format);
    case OPT_OUT_PROGRAM: a->out_program = value; return CLI_OK;
    case OPT_SKIP_NON_TENSORS: a->so.skip_non_tensors = true; return CLI_OK;
    case OPT_NO_FSYNC: a->so.durable = false; return CLI_OK;
    case OPT_CHECKSUM: a->so.checksum = true; return CLI_OK;
    case OPT_MAX_SHARD_SIZE:
        if (pdckpt_parse_size(value, &a->so.max_shard_size, NULL) == PDCKPT_OK &&
            a->so.max_shard_size)
            return CLI_OK;
        return cli_command_error(&cli_cmd_convert,
                                 "invalid value '%s' for --max-shard-size; expected a size "
                                 "such as 5GB, 500MB, 2GiB or a number of bytes",
                                 value);
    case OPT_STATIC_OUT:
        a->static_out = true;
        a->so.format = PDCKPT_FORMAT_PICKLE;
        return CLI_OK;
    case OPT_PROTOCOL:
        a->so.protocol = value[0] >= '2' && value[0] <= '4' && !value[1] ? value[0] - '0' : 0;
        return a->so.protocol ? CLI_OK
                              : cli_command_error(&cli_cmd_convert,
                                                  "invalid value '%s' for --protocol; expected "
                                                  "one of: 2, 3, 4",
                                                  value);
    default:
        if (strcmp(value, "numpy.core") == 0 || strcmp(value, "numpy._core") == 0) {
            a->so.numpy_module = value[6] == '_' ? PDCKPT_NUMPY__CORE : PDCKPT_NUMPY_CORE;
            return CLI_OK;
        }
        return cli_command_error(&cli_cmd_convert,
                                 "invalid value '%s' for --numpy-module; expected one of: "
                                 "numpy.core, numpy._core",
                                 value);
    }
}

static void report_drop(void *ctx, const char *path, pdckpt_kind kind) {
    ++*(size_t *)ctx;
    fprintf(stderr, "pdckpt: dropped %s '%s' (--skip-non-tensors)\n", pdckpt_kind_name(kind),
            cli_safe(path));
}

static int count_tensors(void *ctx, const pdckpt_path_step *p, size_t d, const pdckpt_value *leaf) {
    (void)p;
    (void)d;
    if (pdckpt_value_kind(leaf) == PDCKPT_KIND_TENSOR) ++*(size_t *)ctx;
    return 0;
}

/* --out-program P: OUT holds exactly P's persistable variables, checked against P and in P's
 * order (a combined file such as a .pdiparams, or a directory of variable files). */
static pdckpt_status save_for_program(const pdckpt_value *root, const char *out,
                                      const char *program_path, const pdckpt_save_options *so,
                                      pdckpt_error *err) {
    pdckpt_program *program = NULL;
    pdckpt_status   st = pdckpt_program_load_file(program_path, NULL, &program, err);
    if (st != PDCKPT_OK) return st;
    if (so->format == PDCKPT_FORMAT_VARS_DIR) {
        st = pdckpt_save_persistables(program, root, out, NULL, so, err);
    } else { /* dirname + filename, so that a missing directory is created as Paddle does */
        char        dir[4096];
        const char *slash = strrchr(out, '/');
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - out) : 0, out);
        st = pdckpt_save_persistables(program, root, slash && slash != out ? dir : NULL,
                                      slash && slash != out ? slash + 1 : out, so, err);
    }
    pdckpt_program_free(program);
    return st;
}

/* A dygraph-dir names each variable file by the tensor's Paddle name, as Paddle 1.5's
 * save_persistables did (its load_dygraph gives those names back): a state dict's structured
 * keys do not survive, which is said, not done silently. */
/* The key of entry i of a state dict when it holds a tensor whose Paddle name is another
 * (NULL otherwise); `t` receives the tensor. */
static const char *renamed_key(const pdckpt_value *root, size_t i, pdckpt_tensor_view *t) {
    const char *key = pdckpt_value_get_string(pdckpt_dict_key_at(root, i), NULL);
    if (!key || !pdckpt_tensor_get_memory(pdckpt_value_at(root, i), t, NULL) || !t->name ||
        strcmp(key, t->name) == 0)
        return NULL;
    return key;
}

static size_t dict_len(const pdckpt_value *v) {
    return pdckpt_value_kind(v) == PDCKPT_KIND_DICT ? pdckpt_value_len(v) : 0;
}

/* A name Paddle made up for a tensor nobody named (paddle.to_tensor, an op's output): losing it
 * loses nothing. */
static bool auto_name(const char *name) {
    static const char *const prefixes[] = {"eager_tmp_", "generated_tensor_"};
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(name, prefixes[i], n) == 0 && name[n] &&
            strspn(name + n, "0123456789") == strlen(name + n))
            return true;
    }
    return false;
}

/* A dygraph-dir stores each tensor under its Paddle name; a vars-dir or TNUM file under its key,
 * with no room for a Paddle name: either way what does not survive is said. */
static void note_renamed_keys(const pdckpt_value *root, pdckpt_format to) {
    size_t n = 0;
    bool   by_name = to == PDCKPT_FORMAT_DYGRAPH_DIR;
    if (!by_name && to != PDCKPT_FORMAT_VARS_DIR && to != PDCKPT_FORMAT_TNUM) return;
    for (size_t i = 0; i < dict_len(root); i++) {
        pdckpt_tensor_view t;
        const char        *key = renamed_key(root, i, &t);
        if (!key || (!by_name && auto_name(t.name))) continue;
        if (n++ < 8)
            fprintf(stderr, "pdckpt: note: '%s' %s '%s'\n", cli_safe(key),
                    by_name ? "is stored as" : "keeps its key; not kept: its Paddle name",
                    cli_safe(t.name));
    }
    if (n && by_name)
        fprintf(stderr,
                "pdckpt: note: a dygraph-dir keeps Paddle names, not keys: %zu key%s became the "
                "tensor's Paddle name%s\n",
                n, n == 1 ? "" : "s", n > 8 ? " (the first 8 listed)" : "");
    else if (n)
        fprintf(stderr,
                "pdckpt: note: a %s keeps keys, not Paddle names: %zu tensor%s lost %s Paddle "
                "name%s%s\n",
                pdckpt_format_name(to), n, n == 1 ? "" : "s", n == 1 ? "its" : "their",
                n > 8 ? " (the first 8 listed)" : "",
                to == PDCKPT_FORMAT_VARS_DIR
                    ? " (--out-program writes a program's variables by name)"
                    : "");
}

/* ---- the .pdiparams.info beside a combined file ---- */

/* The info with each variable's structured_name from the tree: a state dict names variable n
 * (its tensor's Paddle name) by key k. */
static pdckpt_status rename_structured(pdckpt_value *info, const pdckpt_value *root,
                                       pdckpt_error *err) {
    for (size_t i = 0; i < dict_len(root); i++) {
        pdckpt_tensor_view t;
        const char        *key = renamed_key(root, i, &t);
        if (!key) continue;
        pdckpt_value *entry = pdckpt_dict_get_mut(info, t.name);
        if (pdckpt_value_kind(entry) != PDCKPT_KIND_DICT) continue;
        pdckpt_value *name = pdckpt_value_new_string(NULL, key, SIZE_MAX);
        pdckpt_status st =
            name ? pdckpt_dict_set(entry, "structured_name", name, err) : PDCKPT_ERR_NOMEM;
        if (st != PDCKPT_OK) return st;
    }
    return PDCKPT_OK;
}

/* Paddle 2.x's jit.save writes X.pdiparams.info beside X.pdiparams: {variable: {structured_name,
 * stop_gradient, trainable}} (Paddle 3's PIR jit.save writes none).  stop_gradient and trainable
 * come from the live layer, so pdckpt writes the file only from one Paddle wrote: the info beside
 * --out-program's program, or the one IN was named by, with the structured names of IN's keys.
 * An existing OUT.info is never replaced. */
static int write_params_info(const pdckpt_value *root, const char *in, const cli_load_args *args,
                             const char *out, const char *out_program) {
    char path[PDCKPT_PATH_MAX], own[PDCKPT_PATH_MAX + 8];
    pdckpt_info_path(out, path); /* OUT.info only when OUT is a parameters file (X.pdiparams) */
    snprintf(own, sizeof own, "%s.info", out); /* pdckpt:names-ok: is it OUT's own .info? */
    if (strcmp(path, own) != 0 || access(path, F_OK) == 0) return CLI_OK;
    pdckpt_value *info =
        out_program ? cli_info_beside_program(out_program) : cli_params_info_for(in, args);
    if (!info) return CLI_OK;
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.format = PDCKPT_FORMAT_PICKLE;
    so.protocol = 2; /* as jit.save's pickle.dump */
    pdckpt_status st = rename_structured(info, root, &err);
    if (st == PDCKPT_OK) st = pdckpt_save_file(info, path, &so, &err);
    pdckpt_value_free(info);
    return st == PDCKPT_OK ? CLI_OK : cli_report(&err);
}

/* A combined file or a tensor stream stores no names: a dict's keys go without a word unless
 * told (a program, --out-program, names them again). */
static void note_names_dropped(const pdckpt_value *root, pdckpt_format to, size_t tensors) {
    if ((to != PDCKPT_FORMAT_COMBINED && to != PDCKPT_FORMAT_TENSOR) ||
        pdckpt_value_kind(root) != PDCKPT_KIND_DICT || tensors == 0)
        return;
    if (to == PDCKPT_FORMAT_TENSOR)
        fprintf(stderr, "pdckpt: note: a tensor stream stores no name: the key is not kept\n");
    else
        fprintf(stderr,
                "pdckpt: note: a combined file stores no names: its %zu tensors are in "
                "byte-wise name order; read it back with --names (that order) or its "
                "program\n",
                tensors);
}

/* Writes the loaded tree to OUT (a file, a directory, stdout, or per --out-program /
 * --static-out) and prints the one-line summary. */
static int write_output(const pdckpt_value *root, const char *in, pdckpt_format from,
                        const char *out, const char *out_program, bool static_out,
                        pdckpt_save_options *so) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    size_t       dropped = 0, tensors = 0;
    bool         to_stdout = strcmp(out, "-") == 0;
    so->progress = cli_progress_cb;
    so->on_drop = report_drop;
    so->on_drop_ctx = &dropped;
    cli_progress_begin("writing");
    pdckpt_status st = to_stdout     ? pdckpt_save_sink(root, &stdout_ops, NULL, so, &err)
                       : out_program ? save_for_program(root, out, out_program, so, &err)
                       : static_out  ? pdckpt_static_save(root, out, so, &err)
                                     : pdckpt_save_file(root, out, so, &err);
    cli_progress_end();
    if (st == PDCKPT_OK) st = pdckpt_value_walk(root, count_tensors, &tensors, &err);
    if (st != PDCKPT_OK) return cli_report(&err);
    if (!out_program) note_names_dropped(root, so->format, tensors);
    fprintf(to_stdout ? stderr : stdout, "%s (%s) -> %s (%s): %zu tensors%s\n", cli_safe(in),
            pdckpt_format_name(from), cli_safe(out), pdckpt_format_name(so->format), tensors,
            dropped ? " (non-tensor values dropped: see above)" : "");
    return CLI_OK;
}

/* The output format and what it may be asked for, checked before anything is read. */
static int check_output(convert_args *a, const char *out) {
    bool to_stdout = strcmp(out, "-") == 0;
    if (to_stdout && a->so.format == PDCKPT_FORMAT_AUTO)
        return cli_command_error(&cli_cmd_convert, "OUT '-' needs --to FORMAT");
    if (to_stdout) return check_stdout_use(&a->so, a->out_program || a->static_out);
    if (a->so.format == PDCKPT_FORMAT_AUTO) {
        a->so.format = pdckpt_format_from_path(out);
        if (a->so.max_shard_size &&
            (a->so.format == PDCKPT_FORMAT_VARS_DIR || a->so.format == PDCKPT_FORMAT_AUTO))
            a->so.format = PDCKPT_FORMAT_SAFETENSORS_SHARDED; /* a directory of HF shards */
        if (a->so.format == PDCKPT_FORMAT_AUTO)
            return cli_command_error(&cli_cmd_convert,
                                     "cannot tell the output format from '%s'; pass --to", out);
    }
    if (a->out_program && a->so.format != PDCKPT_FORMAT_COMBINED &&
        a->so.format != PDCKPT_FORMAT_VARS_DIR)
        return cli_command_error(&cli_cmd_convert,
                                 "--out-program writes a combined file or a vars-dir, not %s",
                                 pdckpt_format_name(a->so.format));
    return CLI_OK;
}

int cmd_convert(int argc, char **argv) {
    cli_load_args      args = {PDCKPT_FORMAT_AUTO, NULL, 0, NULL};
    convert_args       a = {.so = PDCKPT_SAVE_OPTIONS_INIT};
    const char        *in = NULL, *out = NULL;
    const cli_operands operands = {(const char **const[]){&in, &out}, 2, 2};
    int rc = cli_parse(&cli_cmd_convert, argc, argv, &args, convert_option, &a, &operands);
    if (rc == CLI_OK) rc = check_output(&a, out);
    pdckpt_value *root = NULL;
    pdckpt_format from = PDCKPT_FORMAT_AUTO;
    if (rc == CLI_OK) rc = cli_load(in, &args, false, &root, &from);
    if (rc == CLI_OK) {
        a.so.allowed_globals = args.allowed; /* what was carried may be written back, only */
        a.so.n_allowed_globals = args.n_allowed;
        rc = write_output(root, in, from, out, a.out_program, a.static_out, &a.so);
    }
    if (rc == CLI_OK && !a.out_program) note_renamed_keys(root, a.so.format);
    if (rc == CLI_OK && a.so.format == PDCKPT_FORMAT_COMBINED && strcmp(in, "-") != 0)
        rc = write_params_info(root, in, &args, out, a.out_program);
    pdckpt_value_free(root);
    cli_load_args_free(&args);
    return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
}
