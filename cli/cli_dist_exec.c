/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_dist_exec.c — pdckpt never links MPI; `pdckpt dist ...` and `pdckpt ls` of a sharded
 * checkpoint run pdckpt-mpi (built beside pdckpt when MPI is available) with the same arguments.
 * A sharded checkpoint is recognised by its metadata file name, Paddle's "<id>.metadata".
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool metadata_name(const char *name) {
    size_t digits = strspn(name, "0123456789");
    return digits > 0 && strcmp(name + digits, ".metadata") == 0;
}

bool cli_is_sharded_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d) return false;
    bool           found = false;
    struct dirent *de;
    while (!found && (de = readdir(d)) != NULL) found = metadata_name(de->d_name);
    closedir(d);
    return found;
}

bool cli_ls_wants_mpi(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--format", 8) == 0 || strncmp(argv[i], "--names", 7) == 0 ||
            strncmp(argv[i], "--from", 6) == 0)
            return false; /* an explicit format: the ordinary listing */
        if (argv[i][0] != '-' && cli_is_sharded_dir(argv[i])) return true;
    }
    return false;
}

int cli_exec_mpi(int argc, char **argv) {
    (void)argc;
    char    self[PATH_MAX], path[PATH_MAX + 16];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        snprintf(path, sizeof path, "%s/pdckpt-mpi", dirname(self));
        if (access(path, X_OK) == 0) {
            argv[0] = path;
            execv(path, argv);
        }
    }
    argv[0] = (char *)"pdckpt-mpi";
    execvp("pdckpt-mpi", argv);
    fprintf(stderr, "pdckpt: '%s' needs pdckpt-mpi, which is built when MPI is available: %s\n",
            argv[1], strerror(errno));
    return CLI_USAGE;
}
