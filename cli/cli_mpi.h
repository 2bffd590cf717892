/*
 * cli_mpi.h — the subcommands of pdckpt-mpi, the MPI-linked companion of the pdckpt command
 * (pdckpt itself never links MPI; it runs pdckpt-mpi for `dist ...` and for `ls` of a sharded
 * checkpoint).  Public headers only.
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
/* Parses --id N, --keep N, --timeout S and --no-fsync into `o`; 1 consumed, 0 not ours, -1 usage
 * error. */
int cli_mpi_parse_common(int argc, char **argv, int *i, pdckpt_mpi_options *o, const char *usage);

#endif /* PDCKPT_CLI_MPI_H */
