/*
 * cmd_verify.c — `pdckpt verify PATH [--format F] [--names N]`: a full structural check (every
 * byte accounted for, every data byte read); prints one summary line or the diagnosis.
 */
#include "cli.h"

#include <string.h>

static const char usage[] = "usage: pdckpt verify PATH [--format F] [--names N] [--program P]\n"
                            "                     [--allow-global module.name]...\n";

int cmd_verify(int argc, char **argv) {
    cli_load_args args = {PDCKPT_FORMAT_AUTO, NULL, 0, NULL};
    const char   *path = NULL;
    int           rc = CLI_OK;
    for (int i = 1; i < argc && rc == CLI_OK; i++) {
        int used = cli_parse_load_option(argc, argv, &i, &args, usage);
        if (used < 0)
            rc = CLI_USAGE;
        else if (used)
            continue;
        else
            rc = cli_positional(argv[i], (const char **const[]){&path}, 1, usage);
    }
    if (rc == CLI_OK && !path) rc = cli_usage_error(usage, "verify needs a PATH");
    if (rc != CLI_OK) {
        cli_load_args_free(&args);
        return rc;
    }
    pdckpt_load_options  opts = cli_load_options(&args);
    pdckpt_error         err = PDCKPT_ERROR_INIT;
    pdckpt_verify_report report;
    cli_progress_begin("verifying");
    pdckpt_status st = pdckpt_verify_file(path, &opts, &report, &err);
    cli_progress_end();
    cli_load_args_free(&args);
    if (st != PDCKPT_OK) return cli_report(&err);
    printf("%s: OK (%s, %llu tensors, %llu data bytes, %llu values%s)\n", path,
           pdckpt_format_name(report.format), (unsigned long long)report.n_tensors,
           (unsigned long long)report.n_data_bytes, (unsigned long long)report.n_leaves,
           report.checksum_checked ? ", xxh3 sidecar matches" : "");
    return CLI_OK;
}
