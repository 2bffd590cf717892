/*
 * main.c — the pdckpt command: subcommand dispatch and top-level usage.
 * Exit codes: 0 ok, 1 bad input or a difference found, 2 usage error.
 */
#include "cli.h"

#include <string.h>

static const char usage[] =
    "usage: pdckpt <command> [options]\n"
    "\n"
    "commands:\n"
    "  ls PATH [--format F] [--names N] [--json] [--hash]   list tensors and scalars (a program:\n"
    "                                                       its variables)\n"
    "  convert IN OUT [--from F] [--to F] [options]         convert between formats\n"
    "  diff A B [--from F] [--names N]                      compare keys, dtypes, shapes, bytes\n"
    "  verify PATH [--format F] [--names N]                 full structural check\n"
    "  check EXPECTED LOADED [--json]                       will LOADED restore into EXPECTED?\n"
    "  stats PATH [--json] [--check]                        min/max/mean/std, NaN/Inf per tensor\n"
    "  version                                              print the version\n"
    "  dist shard IN DIR --ranks-layout SPEC | dist merge DIR OUT   (under mpirun; runs "
    "pdckpt-mpi)\n"
    "  ls DIR of a sharded checkpoint                       pieces and files (runs pdckpt-mpi)\n"
    "\n"
    "formats: tensor, combined, vars-dir, safetensors, program, pir-json, inference (more as\n"
    "         this build supports them)\n"
    "PATH may be an inference model: a directory (__model__ + files, X.pdmodel + X.pdiparams,\n"
    "X.json + X.pdiparams) or a prefix (dir/model for dir/model.pdmodel + dir/model.pdiparams)\n"
    "--names: the ordered variable names of a combined file, as a,b,c or @file (one per line)\n"
    "--program P: a program (.pdmodel, __model__, PIR .json) names the combined file or directory\n"
    "--out-program P (convert): write OUT as exactly P's persistable variables, checked\n"
    "--allow-global module.name (ls, verify, diff, convert; repeatable): a pickle may name this\n"
    "  class beyond pdckpt's allowlist; it is carried as an inert object (never imported or\n"
    "  called) and convert may write it back.  Allow only classes you trust: paddle.load of the\n"
    "  written file will import and call it\n"
    "--reinterpret FROM=TO: retype every FROM tensor as TO after loading (same element size; for\n"
    "                       files whose bits mean another type, e.g. uint16=bfloat16)\n";

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "dist") == 0 ||
        (strcmp(cmd, "ls") == 0 && cli_ls_wants_mpi(argc - 1, argv + 1)))
        return cli_exec_mpi(argc, argv);
    if (strcmp(cmd, "ls") == 0) return cmd_ls(argc - 1, argv + 1);
    if (strcmp(cmd, "convert") == 0) return cmd_convert(argc - 1, argv + 1);
    if (strcmp(cmd, "diff") == 0) return cmd_diff(argc - 1, argv + 1);
    if (strcmp(cmd, "verify") == 0) return cmd_verify(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0) return cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "stats") == 0) return cmd_stats(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("pdckpt %s\n", pdckpt_version_string());
        return CLI_OK;
    }
    fprintf(stderr, "pdckpt: unknown command '%s'\n\n%s", cmd, usage);
    return CLI_USAGE;
}
