/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_dist.c — `pdckpt dist ...` in a build with MPI: shard and merge run under mpirun (MPI is
 * initialised only for them), gc needs no MPI.  `pdckpt ls` of a sharded checkpoint lists its
 * pieces (cmd_dist_ls.c).  Exit codes as pdckpt's: 0 ok, 1 bad input, 2 usage error — the same
 * on every rank.
 */
#include "cli_mpi.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_rank = 0, cli_size = 1;

static const cli_command *const dist_commands[] = {&cli_cmd_dist_shard, &cli_cmd_dist_merge,
                                                   &cli_cmd_dist_gc};

static void print_dist_help(FILE *out) {
    fputs("usage: pdckpt dist <command> [options]\n\n"
          "Sharded checkpoints (Paddle's save_state_dict layout), written and read by MPI ranks.\n"
          "\ncommands:\n",
          out);
    for (size_t i = 0; i < sizeof dist_commands / sizeof *dist_commands; i++)
        fprintf(out, "  %-12s %s\n", dist_commands[i]->name + 5, dist_commands[i]->brief);
    fputs("\n'pdckpt dist COMMAND --help' for its options; 'pdckpt ls DIR' lists a sharded "
          "checkpoint.\n",
          out);
}

int cli_mpi_report(const pdckpt_error *err) {
    if (cli_rank == 0) cli_report(err);
    return CLI_BAD_INPUT;
}

int cli_mpi_agree(int rc) {
    int all = rc;
    MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return all;
}

int cli_mpi_take_common(const cli_command *cmd, int code, const char *value,
                        pdckpt_mpi_options *o) {
    if (code == CLI_OPT_MPI_NO_FSYNC) return o->save.durable = false, CLI_OK;
    if (code < CLI_OPT_MPI_ID || code > CLI_OPT_MPI_TIMEOUT) return -1;
    char     *end;
    long long n = 0;
    if (code == CLI_OPT_MPI_TIMEOUT)
        o->timeout_s = strtod(value, &end);
    else
        n = strtoll(value, &end, 10);
    if (code == CLI_OPT_MPI_ID) o->unique_id = n;
    if (code == CLI_OPT_MPI_KEEP) o->keep_last = n >= 1 && n <= INT32_MAX ? (int32_t)n : -1;
    if (*end || end == value || (code == CLI_OPT_MPI_ID && n < 0) ||
        (code == CLI_OPT_MPI_TIMEOUT && o->timeout_s <= 0) ||
        (code == CLI_OPT_MPI_KEEP && o->keep_last < 1))
        return cli_command_error(cmd, "invalid value '%s' for --%s; expected %s", value,
                                 code == CLI_OPT_MPI_ID     ? "id"
                                 : code == CLI_OPT_MPI_KEEP ? "keep"
                                                            : "timeout",
                                 code == CLI_OPT_MPI_TIMEOUT ? "a number of seconds above 0"
                                 : code == CLI_OPT_MPI_ID    ? "an id of 0 or more"
                                                             : "a count of at least 1");
    return CLI_OK;
}

/* Ranks other than 0 stay quiet: usage errors and agreed errors are the same everywhere and
 * rank 0 prints them; a failure only one rank sees is reported by that rank on its stderr. */
static void quiet_other_ranks(void) {
    if (cli_rank == 0) return;
    FILE *null = fopen("/dev/null", "w");
    if (null) {
        fflush(stdout);
        dup2(fileno(null), fileno(stdout));
        fclose(null);
    }
}

static int run_mpi(int (*fn)(int, char **), int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &cli_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &cli_size);
    quiet_other_ranks();
    int rc = cli_mpi_agree(fn(argc - 2, argv + 2));
    MPI_Finalize();
    return rc;
}

/* shard and merge run under mpirun; gc and ls need no MPI. */
static int run_dist(const cli_command *cmd, int argc, char **argv) {
    bool help = false;
    for (int i = 1; i < argc; i++)
        help |= strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0;
    if (help || cmd == &cli_cmd_dist_gc) return cmd->run(argc, argv);
    return run_mpi(cmd->run, argc + 2, argv - 2);
}

int cli_dist_main(int argc, char **argv) {
    if (argc < 3 || strcmp(argv[2], "-h") == 0 || strcmp(argv[2], "--help") == 0) {
        print_dist_help(argc < 3 ? stderr : stdout);
        return argc < 3 ? CLI_USAGE : CLI_OK;
    }
    for (size_t i = 0; i < sizeof dist_commands / sizeof *dist_commands; i++)
        if (strcmp(argv[2], dist_commands[i]->name + 5) == 0)
            return run_dist(dist_commands[i], argc - 2, argv + 2);
    fprintf(stderr, "pdckpt: unknown command 'dist %s'\n\n", cli_safe(argv[2]));
    print_dist_help(stderr);
    return CLI_USAGE;
}

bool cli_ls_is_sharded(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--format", 8) == 0 || strncmp(argv[i], "--names", 7) == 0 ||
            strncmp(argv[i], "--from", 6) == 0)
            return false; /* an explicit format: the ordinary listing */
        if (argv[i][0] != '-' && pdckpt_sharded_is_checkpoint(argv[i])) return true;
    }
    return false;
}
