/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_mpi.h — the distributed commands of pdckpt, built when MPI is (PDCKPT_CLI_MPI).  Public
 * headers only.
 */
#ifndef PDCKPT_CLI_MPI_H
#define PDCKPT_CLI_MPI_H

#include <pdckpt_mpi.h>

#include "cli.h"

/* `dist shard IN DIR --ranks-layout SPEC ...` and `dist merge DIR OUT ...`, under mpirun. */
int cmd_dist_shard(int argc, char **argv);
int cmd_dist_merge(int argc, char **argv);
/* `ls DIR [--json] [--id N]` for a sharded checkpoint (no MPI needed). */
int cmd_dist_ls(int argc, char **argv);
/* `dist gc DIR [--keep N]`: leftovers of killed saves, old checkpoints (no MPI needed). */
int cmd_dist_gc(int argc, char **argv);

/* Rank and size of MPI_COMM_WORLD (0 and 1 before MPI_Init). */
extern int cli_rank, cli_size;
/* Prints an error once: on rank 0 when every rank has it, else on each failing rank. */
int cli_mpi_report(const pdckpt_error *err);
/* True when every rank's rc is CLI_OK; otherwise all ranks get the largest rc. */
int cli_mpi_agree(int rc);
/* The options the distributed commands share: their codes, their table entries (to put in a
 * command's own table) and their help lines. */
enum {
    CLI_OPT_MPI_ID = CLI_OPT_OWN + 0x80,
    CLI_OPT_MPI_KEEP,
    CLI_OPT_MPI_TIMEOUT,
    CLI_OPT_MPI_NO_FSYNC,
};
#define CLI_MPI_OPTIONS                                                                            \
    {"id", required_argument, NULL, CLI_OPT_MPI_ID},                                               \
        {"keep", required_argument, NULL, CLI_OPT_MPI_KEEP},                                       \
        {"timeout", required_argument, NULL, CLI_OPT_MPI_TIMEOUT}, {                               \
        "no-fsync", no_argument, NULL, CLI_OPT_MPI_NO_FSYNC                                        \
    }
#define CLI_MPI_OPTIONS_HELP                                                                       \
    "  --id N                 the checkpoint id (save: a new one by default; load: the newest)\n"  \
    "  --keep N               after saving, keep only the newest N complete checkpoints\n"         \
    "  --timeout S            give up waiting for other ranks after S seconds (default 600)\n"     \
    "  --no-fsync             skip the fsyncs (faster; not crash-safe)\n"
/* Takes one of those into `o`: CLI_OK, an exit code after printing why, or -1 when `code` is not
 * one of them. */
int cli_mpi_take_common(const cli_command *cmd, int code, const char *value, pdckpt_mpi_options *o);
/* `pdckpt dist ...` (argv[1] is "dist"). */
int cli_dist_main(int argc, char **argv);
/* Whether `pdckpt ls` names a sharded checkpoint directory (and no explicit format). */
bool cli_ls_is_sharded(int argc, char **argv);
/* The distributed commands. */
extern const cli_command cli_cmd_dist_shard, cli_cmd_dist_merge, cli_cmd_dist_gc, cli_cmd_dist_ls;

#endif /* PDCKPT_CLI_MPI_H */
