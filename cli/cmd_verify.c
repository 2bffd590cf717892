/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_verify.c — `pdckpt verify PATH`: a full structural check (every byte accounted for, every
 * data byte read); prints one summary line or the diagnosis.
 */
#include "cli.h"

#include <string.h>

int cmd_verify(int argc, char **argv);

const cli_command cli_cmd_verify = {
    "verify",
    "check every byte of a checkpoint",
    "PATH",
    "Checks the whole checkpoint: every header, every length, every data byte read (and its\n"
    "xxh3 sidecar when there is one).  Prints one OK line or the first problem, with the\n"
    "file, the byte offset and what was expected.",
    NULL,
    NULL,
    true,
    cmd_verify};

int cmd_verify(int argc, char **argv) {
    cli_load_args      args = {PDCKPT_FORMAT_AUTO, NULL, 0, NULL};
    const char        *path = NULL;
    const cli_operands operands = {(const char **const[]){&path}, 1, 1};
    int                rc = cli_parse(&cli_cmd_verify, argc, argv, &args, NULL, NULL, &operands);
    if (rc != CLI_OK) {
        cli_load_args_free(&args);
        return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    }
    pdckpt_load_options  opts = cli_load_options(&args);
    pdckpt_error         err = PDCKPT_ERROR_INIT;
    pdckpt_verify_report report;
    cli_progress_begin("verifying");
    pdckpt_status st = pdckpt_verify_file(path, &opts, &report, &err);
    cli_progress_end();
    cli_load_args_free(&args);
    if (st != PDCKPT_OK) return cli_report(&err);
    char size[32];
    printf("%s: OK (%s, %llu tensors, %s of tensor data, %llu values%s)\n", cli_safe(path),
           pdckpt_format_name(report.format), (unsigned long long)report.n_tensors,
           cli_human_bytes(report.n_data_bytes, size, sizeof size),
           (unsigned long long)report.n_leaves,
           report.checksum_checked ? ", xxh3 sidecar matches" : "");
    return CLI_OK;
}
