/*
 * main_mpi.c — pdckpt-mpi: the distributed subcommands, linked with MPI (run `dist ...` under
 * mpirun; `ls` of a sharded checkpoint needs no MPI).  pdckpt forwards `pdckpt dist ...` and
 * `pdckpt ls SHARDED_DIR` here, so users normally type pdckpt.
 * Exit codes as pdckpt's: 0 ok, 1 bad input, 2 usage error — the same on every rank.
 */
#include "cli_mpi.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_rank = 0, cli_size = 1;

static const char usage[] =
    "usage: pdckpt-mpi <command> [options]   (pdckpt dist ... runs this)\n"
    "\n"
    "commands (under mpirun):\n"
    "  dist shard IN DIR --ranks-layout SPEC   split a checkpoint into a sharded one, each rank\n"
    "                                          writing its part\n"
    "  dist merge DIR OUT                      a sharded checkpoint as one file (any format)\n"
    "commands (no mpirun needed):\n"
    "  dist gc DIR [--keep N]                  remove leftovers of killed saves, old checkpoints\n"
    "  ls DIR [--json] [--id N]                tensors, pieces and files of a sharded checkpoint\n";

int cli_mpi_report(const pdckpt_error *err) {
    if (cli_rank == 0) cli_report(err);
    return CLI_BAD_INPUT;
}

int cli_mpi_agree(int rc) {
    int all = rc;
    MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return all;
}

int cli_mpi_parse_common(int argc, char **argv, int *i, pdckpt_mpi_options *o, const char *use) {
    const char *opt = argv[*i];
    bool        id = strcmp(opt, "--id") == 0, timeout = strcmp(opt, "--timeout") == 0;
    bool        keep = strcmp(opt, "--keep") == 0;
    if (strcmp(opt, "--no-fsync") == 0) return o->save.durable = false, 1;
    if (!id && !timeout && !keep) return 0;
    if (*i + 1 >= argc) return cli_usage_error(use, "%s needs a value", opt), -1;
    char       *end;
    const char *value = argv[++*i];
    long long   n = 0;
    if (timeout)
        o->timeout_s = strtod(value, &end);
    else
        n = strtoll(value, &end, 10);
    if (id) o->unique_id = n;
    if (keep) o->keep_last = n >= 1 && n <= INT32_MAX ? (int32_t)n : -1;
    if (*end || end == value || (id && n < 0) || (timeout && o->timeout_s <= 0) ||
        (keep && o->keep_last < 1))
        return cli_usage_error(use, "invalid value '%s' for %s", value, opt), -1;
    return 1;
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

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    if (strcmp(argv[1], "ls") == 0) return cmd_dist_ls(argc - 1, argv + 1);
    if (strcmp(argv[1], "dist") == 0 && argc >= 3) {
        if (strcmp(argv[2], "shard") == 0) return run_mpi(cmd_dist_shard, argc, argv);
        if (strcmp(argv[2], "merge") == 0) return run_mpi(cmd_dist_merge, argc, argv);
        if (strcmp(argv[2], "gc") == 0) return cmd_dist_gc(argc - 2, argv + 2);
    }
    fprintf(stderr, "pdckpt: unknown command '%s%s%s'\n\n%s", argv[1], argc >= 3 ? " " : "",
            argc >= 3 ? argv[2] : "", usage);
    return CLI_USAGE;
}
