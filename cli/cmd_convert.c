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

static const char usage[] =
    "usage: pdckpt convert IN OUT [--from F] [--to F] [--names N] [--program P]\n"
    "                      [--out-program P] [--protocol 2|3|4]\n"
    "                      [--numpy-module numpy.core|numpy._core] [--skip-non-tensors]\n"
    "                      [--no-fsync] [--static-out] [--checksum] [--reinterpret FROM=TO]\n"
    "                      [--allow-global module.name]...\n"
    "  --reinterpret FROM=TO: retype every FROM tensor (e.g. uint16=bfloat16) before writing\n"
    "  --checksum: also write OUT.xxh3 (xxh3-128 per 4 KiB block; `pdckpt verify` checks it)\n"
    "  --static-out: OUT is a paddle.static.save prefix; IN's \"pdparams\" and \"pdopt\" dicts\n"
    "                (as `pdckpt ls X` shows a static save) go to OUT.pdparams and OUT.pdopt\n"
    "  IN `-`: read standard input; OUT `-`: write to standard output (needs --to: pickle,\n"
    "          combined, tensor, safetensors or tnum)\n";

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
        return cli_usage_error(usage, "OUT '-' streams one file: no --out-program, --static-out "
                                      "or --checksum");
    if (so->format == PDCKPT_FORMAT_VARS_DIR || so->format == PDCKPT_FORMAT_DYGRAPH_DIR ||
        so->format == PDCKPT_FORMAT_INFERENCE || so->format == PDCKPT_FORMAT_DISTCP)
        return cli_usage_error(usage, "OUT '-' cannot stream a directory format (%s)",
                               pdckpt_format_name(so->format));
    if (isatty(1))
        return cli_usage_error(usage, "OUT '-' would write binary to a terminal; redirect it");
    return CLI_OK;
}

static int parse_save_option(int argc, char **argv, int *i, pdckpt_save_options *so,
                             const char **out_program) {
    const char *opt = argv[*i];
    if (strcmp(opt, "--out-program") == 0) {
        if (*i + 1 >= argc) return cli_usage_error(usage, "%s needs a value", opt), -1;
        *out_program = argv[++*i];
        return 1;
    }
    if (strcmp(opt, "--skip-non-tensors") == 0) return so->skip_non_tensors = true, 1;
    if (strcmp(opt, "--no-fsync") == 0) return so->durable = false, 1;
    if (strcmp(opt, "--checksum") == 0) return so->checksum = true, 1;
    bool to = strcmp(opt, "--to") == 0, proto = strcmp(opt, "--protocol") == 0,
         npmod = strcmp(opt, "--numpy-module") == 0;
    if (!to && !proto && !npmod) return 0;
    if (*i + 1 >= argc) return cli_usage_error(usage, "%s needs a value", opt), -1;
    const char *value = argv[++*i];
    bool        known = true;
    if (to)
        so->format = pdckpt_format_from_name(value, &known);
    else if (proto) {
        so->protocol = atoi(value);
        known = so->protocol >= 2 && so->protocol <= 4;
    } else if (strcmp(value, "numpy.core") == 0)
        so->numpy_module = PDCKPT_NUMPY_CORE;
    else if (strcmp(value, "numpy._core") == 0)
        so->numpy_module = PDCKPT_NUMPY__CORE;
    else
        known = false;
    if (!known) return cli_usage_error(usage, "invalid value '%s' for %s", value, opt), -1;
    return 1;
}

static void report_drop(void *ctx, const char *path, pdckpt_kind kind) {
    ++*(size_t *)ctx;
    fprintf(stderr, "pdckpt: dropped %s '%s' (--skip-non-tensors)\n", pdckpt_kind_name(kind), path);
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

/* The output format: --to, else OUT's name; --out-program writes only the program's formats. */
static int output_format(const char *out, const char *out_program, pdckpt_save_options *so) {
    if (so->format == PDCKPT_FORMAT_AUTO) {
        so->format = pdckpt_format_from_path(out);
        if (so->format == PDCKPT_FORMAT_AUTO)
            return cli_usage_error(usage, "cannot tell the output format from '%s'; pass --to",
                                   out);
    }
    if (out_program && so->format != PDCKPT_FORMAT_COMBINED && so->format != PDCKPT_FORMAT_VARS_DIR)
        return cli_usage_error(usage, "--out-program writes a combined file or a vars-dir, not %s",
                               pdckpt_format_name(so->format));
    return CLI_OK;
}

int cmd_convert(int argc, char **argv) {
    cli_load_args       args = {PDCKPT_FORMAT_AUTO, NULL, 0, NULL};
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    const char         *in = NULL, *out = NULL, *out_program = NULL;
    int                 rc = CLI_OK;
    bool                static_out = false;
    for (int i = 1; i < argc && rc == CLI_OK; i++) {
        if (strcmp(argv[i], "--static-out") == 0) {
            static_out = true;
            so.format = PDCKPT_FORMAT_PICKLE;
            continue;
        }
        int used = cli_parse_load_option(argc, argv, &i, &args, usage);
        if (used == 0) used = parse_save_option(argc, argv, &i, &so, &out_program);
        if (used < 0)
            rc = CLI_USAGE;
        else if (used)
            continue;
        else
            rc = cli_positional(argv[i], (const char **const[]){&in, &out}, 2, usage);
    }
    if (rc == CLI_OK && (!in || !out)) rc = cli_usage_error(usage, "convert needs IN and OUT");
    bool to_stdout = rc == CLI_OK && strcmp(out, "-") == 0;
    if (to_stdout && so.format == PDCKPT_FORMAT_AUTO)
        rc = cli_usage_error(usage, "OUT '-' needs --to FORMAT");
    if (to_stdout && rc == CLI_OK) rc = check_stdout_use(&so, out_program || static_out);
    if (rc == CLI_OK) rc = output_format(out, out_program, &so);
    pdckpt_value *root = NULL;
    pdckpt_format from = PDCKPT_FORMAT_AUTO;
    if (rc == CLI_OK) rc = cli_load(in, &args, false, &root, &from);
    if (rc == CLI_OK) {
        pdckpt_error err = PDCKPT_ERROR_INIT;
        size_t       dropped = 0;
        so.progress = cli_progress_cb;
        so.allowed_globals = args.allowed; /* what was carried may be written back, nothing else */
        so.n_allowed_globals = args.n_allowed;
        so.on_drop = report_drop;
        so.on_drop_ctx = &dropped;
        cli_progress_begin("writing");
        pdckpt_status st = to_stdout     ? pdckpt_save_sink(root, &stdout_ops, NULL, &so, &err)
                           : out_program ? save_for_program(root, out, out_program, &so, &err)
                           : static_out  ? pdckpt_static_save(root, out, &so, &err)
                                         : pdckpt_save_file(root, out, &so, &err);
        cli_progress_end();
        size_t tensors = 0;
        if (st == PDCKPT_OK) st = pdckpt_value_walk(root, count_tensors, &tensors, &err);
        if (st != PDCKPT_OK)
            rc = cli_report(&err);
        else
            fprintf(to_stdout ? stderr : stdout, "%s (%s) -> %s (%s): %zu tensors%s\n", in,
                    pdckpt_format_name(from), out, pdckpt_format_name(so.format), tensors,
                    dropped ? " (non-tensor values dropped: see above)" : "");
    }
    pdckpt_value_free(root);
    cli_load_args_free(&args);
    return rc;
}
