/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_dist_gc.c — `pdckpt dist gc DIR [--keep N]`: garbage collection of a sharded checkpoint
 * directory without saving (pdckpt_sharded_gc): temporaries and data files no committed metadata
 * names (killed or failed saves, generations a re-save of an id replaced) go; with --keep N only
 * the newest N complete checkpoints stay.  Needs no MPI; must not run while a job saves there.
 */
#include "cli_mpi.h"

#include <stdlib.h>
#include <string.h>

static const cli_option gc_options[] = {{"keep", required_argument, NULL, CLI_OPT_MPI_KEEP},
                                        {0, 0, 0, 0}};

const cli_command cli_cmd_dist_gc = {
    "dist gc",
    "remove leftovers of killed saves and old checkpoints",
    "DIR",
    "Removes temporaries and data files no committed metadata names (killed or failed saves,\n"
    "generations a re-save of an id replaced).  Needs no MPI; must not run while a job saves\n"
    "into DIR.",
    "  --keep N               keep only the newest N complete checkpoints (default: all)\n",
    gc_options,
    false,
    cmd_dist_gc};

static int gc_option(void *ctx, int code, const char *value) {
    return cli_mpi_take_common(&cli_cmd_dist_gc, code, value, ctx);
}

int cmd_dist_gc(int argc, char **argv) {
    const char        *dir = NULL;
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    const cli_operands operands = {(const char **const[]){&dir}, 1, 1};
    int                rc = cli_parse(&cli_cmd_dist_gc, argc, argv, NULL, gc_option, &o, &operands);
    if (rc != CLI_OK) return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    int32_t      keep = o.keep_last > 0 ? o.keep_last : 0;
    size_t       checkpoints = 0, files = 0;
    pdckpt_error err = PDCKPT_ERROR_INIT;
    if (pdckpt_sharded_gc(dir, keep, &checkpoints, &files, &err) != PDCKPT_OK)
        return cli_report(&err);
    printf("%s: removed %zu old checkpoints, %zu files\n", cli_safe(dir), checkpoints, files);
    return CLI_OK;
}
