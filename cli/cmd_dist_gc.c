/*
 * cmd_dist_gc.c — `pdckpt dist gc DIR [--keep N]`: garbage collection of a sharded checkpoint
 * directory without saving (pdckpt_sharded_gc): temporaries and data files no committed metadata
 * names (killed or failed saves, generations a re-save of an id replaced) go; with --keep N only
 * the newest N complete checkpoints stay.  Needs no MPI; must not run while a job saves there.
 */
#include "cli_mpi.h"

#include <stdlib.h>
#include <string.h>

static const char gc_usage[] = "usage: pdckpt dist gc DIR [--keep N]\n"
                               "  removes leftovers of killed saves; --keep N: only the newest N\n"
                               "  complete checkpoints stay (default: all)\n";

int cmd_dist_gc(int argc, char **argv) {
    const char *dir = NULL;
    long        keep = 0;
    int         rc = CLI_OK;
    for (int i = 1; i < argc && rc == CLI_OK; i++) {
        if (strcmp(argv[i], "--keep") == 0) {
            char *end = NULL;
            keep = i + 1 < argc ? strtol(argv[++i], &end, 10) : -1;
            if (!end || *end || keep < 1 || keep > INT32_MAX)
                rc = cli_usage_error(gc_usage, "--keep needs a count of at least 1");
        } else {
            rc = cli_positional(argv[i], (const char **const[]){&dir}, 1, gc_usage);
        }
    }
    if (rc == CLI_OK && !dir) rc = cli_usage_error(gc_usage, "dist gc needs DIR");
    if (rc != CLI_OK) return rc;
    size_t       checkpoints = 0, files = 0;
    pdckpt_error err = PDCKPT_ERROR_INIT;
    if (pdckpt_sharded_gc(dir, (int32_t)keep, &checkpoints, &files, &err) != PDCKPT_OK)
        return cli_report(&err);
    printf("%s: removed %zu old checkpoints, %zu files\n", dir, checkpoints, files);
    return CLI_OK;
}
