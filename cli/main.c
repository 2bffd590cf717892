/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c — the pdckpt command: the command table, dispatch and the top-level help.
 * Exit codes: 0 ok, 1 bad input or a difference found, 2 usage error.
 */
#include "cli.h"

#include <signal.h>
#include <string.h>

#ifdef PDCKPT_CLI_MPI
#include "cli_mpi.h"

int cli_dist_run(int argc, char **argv) {
    return cli_dist_main(argc, argv);
}
#else
int cli_dist_run(int argc, char **argv) {
    (void)argc;
    fprintf(stderr, "pdckpt: '%s' needs pdckpt built with MPI (libopenmpi-dev)\n", argv[1]);
    return CLI_USAGE;
}
#endif

const cli_command *const cli_commands[] = {&cli_cmd_ls,      &cli_cmd_verify, &cli_cmd_convert,
                                           &cli_cmd_diff,    &cli_cmd_check,  &cli_cmd_stats,
                                           &cli_cmd_formats, &cli_cmd_help,   &cli_cmd_completion};
const size_t             cli_n_commands = sizeof cli_commands / sizeof *cli_commands;

void cli_print_top_help(FILE *out) {
    fputs("usage: pdckpt <command> [options]\n"
          "\n"
          "Saves, reads and converts PaddlePaddle checkpoints.\n"
          "\n"
          "commands:\n",
          out);
    for (size_t i = 0; i < cli_n_commands; i++)
        fprintf(out, "  %-11s %s\n", cli_commands[i]->name, cli_commands[i]->brief);
    fputs("  dist        shard / merge / gc of sharded checkpoints, under mpirun\n"
          "  version     print the version\n"
          "\n"
          "'pdckpt help COMMAND' or 'pdckpt COMMAND --help' for its options.\n",
          out);
    char list[512];
    cli_format_list(list, sizeof list, false);
    fprintf(out, "Formats read: %s.\n", list);
    cli_format_list(list, sizeof list, true);
    fprintf(out, "Formats written: %s.\n", list);
}

const cli_command *cli_find_command(const char *name) {
    for (size_t i = 0; i < cli_n_commands; i++)
        if (strcmp(cli_commands[i]->name, name) == 0) return cli_commands[i];
    return NULL;
}

int main(int argc, char **argv) {
    /* A file-size limit (ulimit -f) must fail the write (EFBIG: the save names its file and
     * removes its temporary), not kill the process mid-save as SIGXFSZ's default does.  CPython
     * ignores it too; a C caller of the library decides for its own process. */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        cli_print_top_help(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    const char *name = argv[1];
    if (strcmp(name, "dist") == 0) return cli_dist_run(argc, argv);
#ifdef PDCKPT_CLI_MPI /* the pieces; without MPI the registry's listing, the state merged */
    if (strcmp(name, "ls") == 0 && cli_ls_is_sharded(argc - 1, argv + 1))
        return cmd_dist_ls(argc - 1, argv + 1);
#endif
    if (strcmp(name, "version") == 0 || strcmp(name, "--version") == 0) {
        printf("pdckpt %s\n", pdckpt_version_string());
        return CLI_OK;
    }
    const cli_command *cmd = cli_find_command(name);
    if (cmd) return cmd->run(argc - 1, argv + 1);
    fprintf(stderr, "pdckpt: unknown command '%s'\n\n", cli_safe(name));
    cli_print_top_help(stderr);
    return CLI_USAGE;
}
