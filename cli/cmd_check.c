/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_check.c — `pdckpt check EXPECTED LOADED [--from F] [--names N] [--json]`: will LOADED
 * restore into what EXPECTED describes (a model's or optimizer's own freshly saved state)?  Lists
 * missing, unexpected and mismatched (dtype / shape / kind) entries by name -- what Paddle's
 * set_state_dict silently gets wrong -- and pairs names that differ only in their unique_name
 * counters.  Exit 0 when it restores cleanly, 1 otherwise.
 */
#include "cli.h"

#include <string.h>

int cmd_check(int argc, char **argv);

enum { OPT_JSON = CLI_OPT_OWN };
static const cli_option check_options[] = {{"json", no_argument, NULL, OPT_JSON}, {0, 0, 0, 0}};

const cli_command cli_cmd_check = {
    "check",
    "will a checkpoint restore into a model's or optimizer's state?",
    "EXPECTED LOADED",
    "Will LOADED restore into what EXPECTED describes (a model's or optimizer's own freshly\n"
    "saved state)?  Lists missing, unexpected and mismatched (dtype, shape, kind) entries by name\n"
    "-- what Paddle's set_state_dict silently gets wrong.  Exit 0 when it restores cleanly.",
    "  --json                 the report as one JSON object\n",
    check_options,
    true,
    cmd_check};

static int check_option(void *ctx, int code, const char *value) {
    (void)value;
    if (code == OPT_JSON) *(bool *)ctx = true;
    return CLI_OK;
}

static void describe(const pdckpt_value *v, char *buf, size_t cap) {
    pdckpt_tensor_view t;
    if (!pdckpt_tensor_get_memory(v, &t, NULL)) {
        snprintf(buf, cap, "a %s", pdckpt_kind_name(pdckpt_value_kind(v)));
        return;
    }
    char shape[PDCKPT_MAX_DIMS * 22 + 4];
    cli_shape_text(&t, shape, sizeof shape);
    snprintf(buf, cap, "%s %s", pdckpt_dtype_name(t.dtype), shape);
}

static void print_text(const pdckpt_restore_report *r) {
    char a[1500], b[1500];
    for (size_t i = 0; i < r->n_issues; i++) {
        const pdckpt_restore_issue *is = &r->issues[i];
        if (is->expected) describe(is->expected, a, sizeof a);
        if (is->loaded) describe(is->loaded, b, sizeof b);
        if (is->kind == PDCKPT_RESTORE_MISSING)
            printf("missing: %s (%s)", cli_safe(is->name), a);
        else if (is->kind == PDCKPT_RESTORE_UNEXPECTED)
            printf("unexpected: %s (%s)", cli_safe(is->name), b);
        else
            printf("%s mismatch: %s: expected %s, found %s",
                   pdckpt_restore_issue_kind_name(is->kind), cli_safe(is->name), a, b);
        if (is->counterpart)
            printf(" -- in its place %s %s: the names differ only in their numbers "
                   "(unique_name counters, Paddle #32926)",
                   is->kind == PDCKPT_RESTORE_UNEXPECTED ? "the model expects"
                                                         : "the checkpoint has",
                   cli_safe(is->counterpart));
        printf("\n");
    }
    printf("%zu expected, %zu in the checkpoint, %zu match; %zu missing, %zu unexpected, "
           "%zu mismatched\n",
           r->n_expected, r->n_loaded, r->n_matched, r->n_missing, r->n_unexpected,
           r->n_mismatched);
    if (r->n_issues == 0) printf("restores cleanly\n");
}

static void json_side(const char *label, const pdckpt_value *v) {
    char d[1500];
    if (!v) return;
    describe(v, d, sizeof d);
    printf(", \"%s\": ", label);
    cli_json_str(stdout, d);
}

static void print_json(const pdckpt_restore_report *r) {
    printf("{\"expected\": %zu, \"loaded\": %zu, \"matched\": %zu, \"issues\": [", r->n_expected,
           r->n_loaded, r->n_matched);
    for (size_t i = 0; i < r->n_issues; i++) {
        const pdckpt_restore_issue *is = &r->issues[i];
        printf("%s{\"kind\": ", i ? ", " : "");
        cli_json_str(stdout, pdckpt_restore_issue_kind_name(is->kind));
        printf(", \"name\": ");
        cli_json_str(stdout, is->name);
        json_side("expected", is->expected);
        json_side("found", is->loaded);
        if (is->counterpart) {
            printf(", \"counterpart\": ");
            cli_json_str(stdout, is->counterpart);
        }
        printf("}");
    }
    printf("]}\n");
}

int cmd_check(int argc, char **argv) {
    cli_load_args      args = {PDCKPT_FORMAT_AUTO, NULL, 0};
    const char        *paths[2] = {NULL, NULL};
    bool               json = false;
    const cli_operands operands = {(const char **const[]){&paths[0], &paths[1]}, 2, 2};
    int           rc = cli_parse(&cli_cmd_check, argc, argv, &args, check_option, &json, &operands);
    pdckpt_value *want = NULL, *got = NULL;
    if (rc == CLI_OK) rc = cli_load(paths[0], &args, false, &want, NULL);
    if (rc == CLI_OK) rc = cli_load(paths[1], &args, false, &got, NULL);
    if (rc == CLI_OK) {
        pdckpt_restore_report r;
        pdckpt_error          err = PDCKPT_ERROR_INIT;
        if (pdckpt_check_restore(want, got, &r, &err) != PDCKPT_OK)
            rc = cli_report(&err);
        else {
            if (json)
                print_json(&r);
            else
                print_text(&r);
            rc = r.n_issues ? CLI_BAD_INPUT : CLI_OK;
            pdckpt_restore_report_free(&r);
        }
    }
    pdckpt_value_free(want);
    pdckpt_value_free(got);
    cli_load_args_free(&args);
    return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
}
