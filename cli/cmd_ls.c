/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_ls.c — `pdckpt ls PATH [--format F] [--names N] [--json] [--hash]`: tensors in file order
 * (key, dtype, shape, bytes, optional SHA-256 of the raw little-endian C-order bytes) and the
 * non-tensor leaves.  --json prints exactly one object:
 *   {"format": ..., "tensors": [{"key", "dtype", "shape", "nbytes"[, "name"][, "sha256"]}],
 *    "scalars": [...]}
 */
#include "cli.h"

#include <string.h>

int cmd_ls(int argc, char **argv);

enum { OPT_JSON = CLI_OPT_OWN, OPT_HASH };
static const cli_option ls_options[] = {
    {"json", no_argument, NULL, OPT_JSON}, {"hash", no_argument, NULL, OPT_HASH}, {0, 0, 0, 0}};

const cli_command cli_cmd_ls = {
    "ls",
    "list the tensors and values of a checkpoint (or a program's variables)",
    "PATH",
    "Lists the tensors (key, dtype, shape, size, Paddle name) and the other values of a\n"
    "checkpoint, or the variables of a program.  PATH may be a file, a directory, an inference\n"
    "model prefix, or - for standard input.",
    "  --json                 exactly one JSON object (sizes in bytes)\n"
    "  --hash                 add the SHA-256 of each tensor's raw little-endian bytes\n",
    ls_options,
    true,
    cmd_ls};

typedef struct ls_opts {
    bool                json;
    bool                hash;
    const pdckpt_value *info; /* .pdiparams.info beside the parameters, or NULL */
} ls_opts;

/* The SHA-256 of the tensor's C-order bytes (the one reader here that needs them in that order:
 * a Fortran-order tensor's C copy is made for it alone). */
static int hash_leaf(const pdckpt_value *tensor, char out[65]) {
    pdckpt_tensor_view c;
    if (!pdckpt_tensor_get(tensor, &c)) {
        fprintf(stderr, "pdckpt: out of memory for a C-order copy to hash\n");
        return CLI_BAD_INPUT;
    }
    if (cli_sha256_hex(c.data, c.n_bytes, out) == 0) return CLI_OK;
    fprintf(stderr, "pdckpt: SHA-256 failed\n");
    return CLI_BAD_INPUT;
}

static int print_json(pdckpt_format format, const cli_leaves *leaves, const ls_opts *o) {
    printf("{\"format\": ");
    cli_json_string(stdout, pdckpt_format_name(format), strlen(pdckpt_format_name(format)));
    printf(", \"tensors\": [");
    size_t   n = 0;
    uint64_t total = 0, done = 0;
    for (size_t i = 0; i < leaves->len; i++) {
        pdckpt_tensor_view v;
        if (pdckpt_tensor_get_memory(leaves->items[i].value, &v, NULL)) total += v.n_bytes;
    }
    for (size_t i = 0; i < leaves->len; i++) {
        pdckpt_tensor_view v;
        if (!pdckpt_tensor_get_memory(leaves->items[i].value, &v, NULL)) continue;
        char shape[PDCKPT_MAX_DIMS * 22 + 4];
        cli_shape_text(&v, shape, sizeof shape);
        printf("%s{\"key\": %s, \"dtype\": \"%s\", \"shape\": %s, \"nbytes\": %llu",
               n++ ? ", " : "", leaves->items[i].key_json, pdckpt_dtype_name(v.dtype), shape,
               (unsigned long long)v.n_bytes);
        if (v.name) {
            printf(", \"name\": ");
            cli_json_string(stdout, v.name, strlen(v.name));
        }
        const char *sn = v.name ? cli_structured_name(o->info, v.name) : NULL;
        if (sn) {
            printf(", \"structured_name\": ");
            cli_json_string(stdout, sn, strlen(sn));
        }
        if (o->hash) {
            char hex[65];
            if (hash_leaf(leaves->items[i].value, hex) != CLI_OK) return CLI_BAD_INPUT;
            printf(", \"sha256\": \"%s\"", hex);
            cli_progress_cb(NULL, done += v.n_bytes, total);
        }
        printf("}");
    }
    printf("], \"scalars\": [");
    n = 0;
    for (size_t i = 0; i < leaves->len; i++) {
        if (pdckpt_value_kind(leaves->items[i].value) == PDCKPT_KIND_TENSOR) continue;
        printf("%s{\"key\": %s, \"value\": ", n++ ? ", " : "", leaves->items[i].key_json);
        cli_json_scalar(stdout, leaves->items[i].value);
        printf("}");
    }
    printf("]}\n");
    return CLI_OK;
}

static void counts(const cli_leaves *leaves, size_t *tensors, uint64_t *bytes, size_t *width,
                   bool *named) {
    *tensors = 0;
    *bytes = 0;
    *width = 3;
    *named = false;
    for (size_t i = 0; i < leaves->len; i++) {
        size_t w = cli_width(leaves->items[i].key_show);
        if (w > *width) *width = w;
        pdckpt_tensor_view v;
        if (!pdckpt_tensor_get_memory(leaves->items[i].value, &v, NULL)) continue;
        (*tensors)++;
        *bytes += v.n_bytes;
        if (v.name && strcmp(v.name, leaves->items[i].key_text) != 0) *named = true;
    }
    if (*width > 60) *width = 60;
}

static int print_table(const char *path, pdckpt_format format, const cli_leaves *leaves,
                       const ls_opts *o) {
    size_t   tensors, width;
    uint64_t bytes;
    bool     named;
    counts(leaves, &tensors, &bytes, &width, &named);
    char size[32];
    printf("%s: %s, %zu tensors, %s, %zu other values\n", cli_safe(path),
           pdckpt_format_name(format), tensors, cli_human_bytes(bytes, size, sizeof size),
           leaves->len - tensors);
    if (tensors) {
        printf("  %-*s  %-13s %-20s %12s%s%s%s\n", (int)width, "KEY", "DTYPE", "SHAPE", "SIZE",
               named ? "  NAME" : "", o->hash ? "  SHA256" : "",
               o->info ? "  STRUCTURED NAME" : "");
    }
    uint64_t done = 0;
    for (size_t i = 0; i < leaves->len; i++) {
        pdckpt_tensor_view v;
        if (!pdckpt_tensor_get_memory(leaves->items[i].value, &v, NULL)) continue;
        char shape[PDCKPT_MAX_DIMS * 22 + 4];
        cli_shape_text(&v, shape, sizeof shape);
        fputs("  ", stdout);
        cli_put_cell(stdout, leaves->items[i].key_show, width);
        printf("  %-13s %-20s %12s", pdckpt_dtype_name(v.dtype), shape,
               cli_human_bytes(v.n_bytes, size, sizeof size));
        if (named) printf("  %s", v.name ? cli_safe(v.name) : "-");
        if (o->hash) {
            char hex[65];
            if (hash_leaf(leaves->items[i].value, hex) != CLI_OK) return CLI_BAD_INPUT;
            printf("  %s", hex);
            cli_progress_cb(NULL, done += v.n_bytes, bytes);
        }
        const char *sn = v.name ? cli_structured_name(o->info, v.name) : NULL;
        if (o->info) printf("  %s", sn ? cli_safe(sn) : "-");
        printf("\n");
    }
    for (size_t i = 0; i < leaves->len; i++) {
        if (pdckpt_value_kind(leaves->items[i].value) == PDCKPT_KIND_TENSOR) continue;
        printf("  %s = ", leaves->items[i].key_show[0] ? leaves->items[i].key_show : "<root>");
        cli_text_scalar(stdout, leaves->items[i].value);
        printf("\n");
    }
    return CLI_OK;
}

static bool is_program_format(pdckpt_format f) {
    return f == PDCKPT_FORMAT_PROGRAM || f == PDCKPT_FORMAT_PIR_JSON;
}

/* A program file gets its own listing (it holds no tensors).  Detection happens in the one load
 * (files are read, not mapped: detecting first would read a large checkpoint twice). */
static int list_tree(const char *path, const cli_load_args *args, ls_opts *o) {
    pdckpt_value *root = NULL;
    pdckpt_format format = PDCKPT_FORMAT_AUTO;
    int           rc = cli_load(path, args, false, &root, &format);
    if (rc == CLI_OK && !args->program && is_program_format(format) && strcmp(path, "-") != 0) {
        pdckpt_value_free(root);
        return cli_ls_program(path, args, o->json);
    }
    cli_leaves leaves = {0};
    if (rc == CLI_OK) rc = cli_collect_leaves(root, &leaves);
    pdckpt_value *info = NULL;
    bool by_info = format == PDCKPT_FORMAT_COMBINED && args->format == PDCKPT_FORMAT_AUTO &&
                   !args->n_names; /* a lone .pdiparams named by its .info */
    if (rc == CLI_OK && (format == PDCKPT_FORMAT_INFERENCE || args->program || by_info))
        o->info = info = cli_params_info_for(path, args);
    if (rc == CLI_OK) {
        cli_progress_begin("hashing");
        rc = o->json ? print_json(format, &leaves, o) : print_table(path, format, &leaves, o);
        cli_progress_end();
    }
    pdckpt_value_free(info);
    cli_leaves_free(&leaves);
    pdckpt_value_free(root);
    return rc;
}

static int ls_option(void *ctx, int code, const char *value) {
    (void)value;
    ls_opts *o = ctx;
    if (code == OPT_JSON) o->json = true;
    if (code == OPT_HASH) o->hash = true;
    return CLI_OK;
}

int cmd_ls(int argc, char **argv) {
    cli_load_args      args = {PDCKPT_FORMAT_AUTO, NULL, 0, NULL};
    ls_opts            o = {false, false, NULL};
    const char        *path = NULL;
    const cli_operands operands = {(const char **const[]){&path}, 1, 1};
    int                rc = cli_parse(&cli_cmd_ls, argc, argv, &args, ls_option, &o, &operands);
    if (rc == CLI_OK)
        rc = !args.program && is_program_format(args.format) ? cli_ls_program(path, &args, o.json)
                                                             : list_tree(path, &args, &o);
    cli_load_args_free(&args);
    return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
}
