/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_ls_program.c — `pdckpt ls` of a program file (`__model__`, `*.pdmodel`, PIR `*.json`): the
 * program has no tensor data, so it gets its own listing: every declared variable with block,
 * kind, dtype, dims (-1 = unknown), persistable, and whether checkpoints store it (the selection
 * rule), plus feeds, fetches and the structured names of a `.pdiparams.info` beside it.
 * --json prints one object:
 *   {"format", "version", "blocks", "ops", "variables": [{"name", "block", "type", "dtype",
 *    "shape", "lod_level", "persistable", "saved", "is_parameter"[, "structured_name"]}],
 *    "persistables": [...], "feeds": [...], "fetches": [...], "tensors": [], "scalars": []}
 * Also the .info lookup `ls` uses to show structured names beside tensor names.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static pdckpt_value *load_info(const char *path) {
    pdckpt_value *info = NULL;
    if (!exists(path) || pdckpt_load_params_info(path, NULL, &info, NULL) != PDCKPT_OK) return NULL;
    return info;
}

/* The .info beside a program (pdckpt_info_path knows Paddle's names). */
pdckpt_value *cli_info_beside_program(const char *program) {
    char path[PDCKPT_PATH_MAX];
    return pdckpt_info_path(program, path) ? load_info(path) : NULL;
}

/* The .info naming the tensors at `path`: beside the parameters file, else beside the program
 * named with --program; without one, what pdckpt_resolve found (as pdckpt_load_file does). */
pdckpt_value *cli_params_info_for(const char *path, const cli_load_args *args) {
    char beside[PDCKPT_PATH_MAX];
    if (args->program) {
        pdckpt_value *info = pdckpt_info_path(path, beside) ? load_info(beside) : NULL;
        return info ? info : cli_info_beside_program(args->program);
    }
    pdckpt_resolved *r = malloc(sizeof *r);
    pdckpt_value    *info = NULL;
    if (r && pdckpt_resolve(path, r, NULL) == PDCKPT_OK && r->info[0]) info = load_info(r->info);
    free(r);
    return info;
}

const char *cli_structured_name(const pdckpt_value *info, const char *name) {
    const pdckpt_value *entry = info ? pdckpt_dict_get(info, name) : NULL;
    return entry ? pdckpt_value_get_string(pdckpt_dict_get(entry, "structured_name"), NULL) : NULL;
}

static void print_shape(const pdckpt_program_var *v, char *buf, size_t cap) {
    cli_dims_text(v->n_dims, v->dims, buf, cap);
}

static void json_names(const char *key, const char *const *names, size_t n) {
    printf(", \"%s\": [", key);
    for (size_t i = 0; i < n; i++) {
        if (i) printf(", ");
        cli_json_str(stdout, names[i]);
    }
    printf("]");
}

static void json_var(const pdckpt_program_var *v, const pdckpt_value *info) {
    char shape[PDCKPT_MAX_DIMS * 22 + 4];
    print_shape(v, shape, sizeof shape);
    printf("{\"name\": ");
    cli_json_str(stdout, v->name);
    printf(", \"block\": %d, \"type\": ", (int)v->block);
    cli_json_str(stdout, v->var_type_name);
    printf(", \"dtype\": ");
    if (v->dtype == PDCKPT_DTYPE_INVALID)
        printf("null");
    else
        cli_json_str(stdout, pdckpt_dtype_name(v->dtype));
    printf(", \"shape\": %s, \"lod_level\": %d, \"persistable\": %s, \"saved\": %s, "
           "\"is_parameter\": %s",
           v->data_type < 0 ? "null" : shape, (int)v->lod_level, v->persistable ? "true" : "false",
           v->saved ? "true" : "false", v->is_parameter ? "true" : "false");
    const char *sn = cli_structured_name(info, v->name);
    if (sn) {
        printf(", \"structured_name\": ");
        cli_json_str(stdout, sn);
    }
    printf("}");
}

static void print_json(const pdckpt_program *p, const pdckpt_value *info) {
    printf("{\"format\": ");
    cli_json_str(stdout, pdckpt_format_name(pdckpt_program_format(p)));
    printf(", \"version\": ");
    if (pdckpt_program_version(p) < 0)
        printf("null");
    else
        printf("%lld", (long long)pdckpt_program_version(p));
    printf(", \"blocks\": %zu, \"ops\": %zu, \"variables\": [", pdckpt_program_n_blocks(p),
           pdckpt_program_n_ops(p));
    for (size_t i = 0; i < pdckpt_program_n_vars(p); i++) {
        pdckpt_program_var v;
        pdckpt_program_var_at(p, i, &v);
        if (i) printf(", ");
        json_var(&v, info);
    }
    printf("]");
    size_t             n;
    const char *const *names = pdckpt_program_persistables(p, &n);
    json_names("persistables", names, n);
    names = pdckpt_program_feeds(p, &n);
    json_names("feeds", names, n);
    names = pdckpt_program_fetches(p, &n);
    json_names("fetches", names, n);
    printf(", \"tensors\": [], \"scalars\": []}\n");
}

static void text_names(const char *label, const char *const *names, size_t n) {
    printf("  %s:", label);
    for (size_t i = 0; i < n; i++) printf("%s %s", i ? "," : "", cli_safe(names[i]));
    printf("%s\n", n ? "" : " (none)");
}

static size_t name_width(const pdckpt_program *p) {
    size_t w = 4;
    for (size_t i = 0; i < pdckpt_program_n_vars(p); i++) {
        pdckpt_program_var v;
        pdckpt_program_var_at(p, i, &v);
        size_t vw = cli_width(cli_safe(v.name));
        if (vw > w) w = vw;
    }
    return w > 60 ? 60 : w;
}

static void print_text(const char *path, const pdckpt_program *p, const pdckpt_value *info) {
    size_t n_saved;
    pdckpt_program_persistables(p, &n_saved);
    printf("%s: %s", cli_safe(path), pdckpt_format_name(pdckpt_program_format(p)));
    if (pdckpt_program_version(p) >= 0)
        printf(" (version %lld)", (long long)pdckpt_program_version(p));
    size_t blocks = pdckpt_program_n_blocks(p);
    printf(", %zu block%s, %zu ops, %zu variables, %zu saved in checkpoints\n", blocks,
           blocks == 1 ? "" : "s", pdckpt_program_n_ops(p), pdckpt_program_n_vars(p), n_saved);
    size_t             n;
    const char *const *names = pdckpt_program_feeds(p, &n);
    text_names("feeds", names, n);
    names = pdckpt_program_fetches(p, &n);
    text_names("fetches", names, n);
    int w = (int)name_width(p);
    printf("  %-*s  %5s  %-16s %-9s %-20s %-11s %s%s\n", w, "NAME", "BLOCK", "TYPE", "DTYPE",
           "SHAPE", "PERSISTABLE", "SAVED", info ? "  STRUCTURED NAME" : "");
    for (size_t i = 0; i < pdckpt_program_n_vars(p); i++) {
        pdckpt_program_var v;
        pdckpt_program_var_at(p, i, &v);
        char shape[PDCKPT_MAX_DIMS * 22 + 4];
        print_shape(&v, shape, sizeof shape);
        const char *sn = cli_structured_name(info, v.name);
        fputs("  ", stdout);
        cli_put_cell(stdout, cli_safe(v.name), (size_t)w);
        printf("  %5d  %-16s %-9s %-20s %-11s %-*s%s%s\n", (int)v.block, cli_safe(v.var_type_name),
               v.dtype == PDCKPT_DTYPE_INVALID ? "-" : pdckpt_dtype_name(v.dtype),
               v.data_type < 0 ? "-" : shape, v.persistable ? "yes" : "no", info ? 5 : 0,
               v.saved ? "yes" : "-", sn ? "  " : "", sn ? cli_safe(sn) : "");
    }
}

int cli_ls_program(const char *path, const cli_load_args *args, bool json) {
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.format = args->format;
    pdckpt_program *p = NULL;
    pdckpt_error    err = PDCKPT_ERROR_INIT;
    if (pdckpt_program_load_file(path, &lo, &p, &err) != PDCKPT_OK) return cli_report(&err);
    pdckpt_value *info = cli_info_beside_program(path);
    if (json)
        print_json(p, info);
    else
        print_text(path, p, info);
    pdckpt_value_free(info);
    pdckpt_program_free(p);
    return CLI_OK;
}
