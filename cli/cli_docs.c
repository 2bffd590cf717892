/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_docs.c — what the tool says about itself, all made from the command table: `pdckpt help
 * [COMMAND]`, `pdckpt help --man` (the pdckpt(1) page the build installs), `pdckpt formats`, and
 * `pdckpt completion bash|zsh` (zsh runs the bash function through bashcompinit).
 */
#include "cli.h"

#include <string.h>

int cmd_help(int argc, char **argv);
int cmd_formats(int argc, char **argv);
int cmd_completion(int argc, char **argv);

enum { OPT_MAN = CLI_OPT_OWN };
static const cli_option help_options[] = {{"man", no_argument, NULL, OPT_MAN}, {0, 0, 0, 0}};

const cli_command cli_cmd_help = {
    "help",
    "the help of a command, or the man page",
    "[COMMAND]",
    "Shows the help of a command (or of pdckpt itself).",
    "  --man                  the whole manual as a man page (roff), for pdckpt(1)\n",
    help_options,
    false,
    cmd_help};
const cli_command cli_cmd_formats = {"formats", "the formats this build reads and writes",
                                     "",        "Lists the formats this build reads and writes.",
                                     NULL,      NULL,
                                     false,     cmd_formats};
const cli_command cli_cmd_completion = {
    "completion",
    "a bash or zsh completion script",
    "bash|zsh",
    "Prints a shell completion script: eval \"$(pdckpt completion bash)\" in ~/.bashrc, or\n"
    "eval \"$(pdckpt completion zsh)\" in ~/.zshrc.",
    NULL,
    NULL,
    false,
    cmd_completion};

/* Writes s with roff's special characters escaped (backslash; a leading '.' or '\''). */
static void roff_text(FILE *out, const char *s) {
    for (bool line_start = true; *s; s++) {
        if (line_start && (*s == '.' || *s == '\'')) fputs("\\&", out);
        if (*s == '\\')
            fputs("\\e", out);
        else if (*s == '-')
            fputs("\\-", out);
        else
            fputc(*s, out);
        line_start = *s == '\n';
    }
}

static void print_man(FILE *out) {
    fprintf(out,
            ".TH PDCKPT 1 \"\" \"pdckpt %s\" \"User Commands\"\n.SH NAME\n"
            "pdckpt \\- save, read and convert PaddlePaddle checkpoints\n"
            ".SH SYNOPSIS\n.B pdckpt\n\\fICOMMAND\\fR [\\fIoptions\\fR]\n.SH COMMANDS\n",
            pdckpt_version_string());
    for (size_t i = 0; i < cli_n_commands; i++) {
        const cli_command *c = cli_commands[i];
        fprintf(out, ".SS \"pdckpt %s ", c->name);
        roff_text(out, c->operands);
        fputs(" [options]\"\n", out);
        roff_text(out, c->summary);
        fputs("\n", out);
        if (c->options_help) fputs(".PP\n.nf\n", out), roff_text(out, c->options_help);
        if (c->options_help) fputs(".fi\n", out);
    }
    fputs(".SH READING OPTIONS\nThe commands that read a checkpoint also take:\n.PP\n.nf\n", out);
    roff_text(out, cli_load_options_help);
    fputs(".fi\n.SH EXIT STATUS\n0 success, 1 bad input (or a difference found), 2 usage error.\n",
          out);
}

static int help_option(void *ctx, int code, const char *value) {
    (void)value;
    if (code == OPT_MAN) *(bool *)ctx = true;
    return CLI_OK;
}

int cmd_help(int argc, char **argv) {
    const char        *name = NULL;
    bool               man = false;
    const cli_operands operands = {(const char **const[]){&name}, 1, 0};
    int rc = cli_parse(&cli_cmd_help, argc, argv, NULL, help_option, &man, &operands);
    if (rc != CLI_OK) return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    if (man) {
        print_man(stdout);
        return CLI_OK;
    }
    if (name && strcmp(name, "dist") == 0) { /* the distributed commands' own help */
        char *forward[] = {argv[0], "dist", "--help", NULL};
        return cli_dist_run(3, forward);
    }
    const cli_command *cmd = name ? cli_find_command(name) : NULL;
    if (name && !cmd) return cli_command_error(&cli_cmd_help, "unknown command '%s'", name);
    if (!cmd) {
        cli_print_top_help(stdout);
        return CLI_OK;
    }
    cli_print_help(stdout, cmd);
    return CLI_OK;
}

int cmd_formats(int argc, char **argv) {
    const cli_operands operands = {NULL, 0, 0};
    int                rc = cli_parse(&cli_cmd_formats, argc, argv, NULL, NULL, NULL, &operands);
    if (rc != CLI_OK) return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    printf("%-20s %-5s %s\n", "FORMAT", "READ", "WRITE");
    for (int f = 1; f < PDCKPT_FORMAT_COUNT; f++)
        printf("%-20s %-5s %s\n", pdckpt_format_name(f), pdckpt_format_can_load(f) ? "yes" : "-",
               pdckpt_format_can_save(f) ? "yes" : "-");
    return CLI_OK;
}

/* Each command's long options, space-separated, as the completion script offers them. */
static void option_words(FILE *out, const cli_command *c) {
    for (const cli_option *o = c->options; o && o->name; o++) fprintf(out, " --%s", o->name);
    if (c->load_options)
        fputs(" --format --from --names --program --allow-global --reinterpret", out);
    fputs(" --help", out);
}

static void print_bash(FILE *out) {
    char formats[512];
    cli_format_list(formats, sizeof formats, false);
    for (char *p = formats; (p = strchr(p, ',')); p++) *p = ' ';
    fputs("_pdckpt() {\n  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}"
          " opts\n  if [[ $COMP_CWORD -eq 1 ]]; then\n    COMPREPLY=($(compgen -W \"",
          out);
    for (size_t i = 0; i < cli_n_commands; i++) fprintf(out, "%s ", cli_commands[i]->name);
    fputs("dist version\" -- \"$cur\")); return\n  fi\n  case \"$prev\" in\n"
          "    --format|--from|--to) COMPREPLY=($(compgen -W \"",
          out);
    fprintf(out, "%s\" -- \"$cur\")); return ;;\n  esac\n  case \"${COMP_WORDS[1]}\" in\n",
            formats);
    for (size_t i = 0; i < cli_n_commands; i++) {
        fprintf(out, "    %s) opts=\"", cli_commands[i]->name);
        option_words(out, cli_commands[i]);
        fputs("\" ;;\n", out);
    }
    fputs("    *) opts=\"--help\" ;;\n  esac\n  if [[ $cur == -* ]]; then\n"
          "    COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n  else\n"
          "    COMPREPLY=($(compgen -f -- \"$cur\"))\n  fi\n}\n"
          "complete -o filenames -F _pdckpt pdckpt\n",
          out);
}

int cmd_completion(int argc, char **argv) {
    const char        *shell = NULL;
    const cli_operands operands = {(const char **const[]){&shell}, 1, 1};
    int                rc = cli_parse(&cli_cmd_completion, argc, argv, NULL, NULL, NULL, &operands);
    if (rc != CLI_OK) return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
    if (strcmp(shell, "zsh") == 0)
        fputs("autoload -U +X compinit && compinit\nautoload -U +X bashcompinit && bashcompinit\n",
              stdout);
    else if (strcmp(shell, "bash") != 0)
        return cli_command_error(&cli_cmd_completion,
                                 "invalid shell '%s'; expected one of: bash, zsh", shell);
    print_bash(stdout);
    return CLI_OK;
}
