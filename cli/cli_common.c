/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_common.c — error reporting, the values of the shared reading options (names, allowed
 * globals, reinterpretations) and loading, from a path or from standard input.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cli_report(const pdckpt_error *err) {
    char line[1200];
    fprintf(stderr, "pdckpt: %s\n", pdckpt_error_format(err, line, sizeof line));
    return CLI_BAD_INPUT;
}

static int add_name(cli_load_args *args, const char *s, size_t len) {
    char **grown = realloc(args->names, (args->n_names + 1) * sizeof *grown);
    if (!grown) return -1;
    args->names = grown;
    args->names[args->n_names] = strndup(s, len);
    if (!args->names[args->n_names]) return -1;
    args->n_names++;
    return 0;
}

/* Opens a names file without blocking (a FIFO is refused, not waited on). */
static FILE *open_names(const char *path) {
    int         fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        fprintf(stderr, "pdckpt: %s: expected a regular file of names\n", cli_safe(path));
        return NULL;
    }
    FILE *f = fd >= 0 && fcntl(fd, F_SETFL, 0) == 0 ? fdopen(fd, "r") : NULL;
    if (!f) {
        fprintf(stderr, "pdckpt: %s: %s\n", cli_safe(path), strerror(errno));
        if (fd >= 0) close(fd);
    }
    return f;
}

static int names_from_file(cli_load_args *args, const char *path) {
    FILE *f = open_names(path);
    if (!f) return -1;
    char   *line = NULL;
    size_t  cap = 0;
    ssize_t n;
    int     rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        if (n > 0) rc = add_name(args, line, (size_t)n);
    }
    free(line);
    fclose(f);
    return rc;
}

int cli_add_names(cli_load_args *args, const char *spec) {
    if (spec[0] == '@') return names_from_file(args, spec + 1);
    for (const char *p = spec;;) {
        const char *comma = strchr(p, ',');
        size_t      len = comma ? (size_t)(comma - p) : strlen(p);
        if (len && add_name(args, p, len) != 0) return -1;
        if (!comma) return 0;
        p = comma + 1;
    }
}

int cli_add_allowed(cli_load_args *args, const char *name) {
    const char **grown = realloc(args->allowed, (args->n_allowed + 1) * sizeof *grown);
    if (!grown) return fputs("pdckpt: out of memory\n", stderr), -1;
    args->allowed = grown;
    args->allowed[args->n_allowed++] = name; /* an argv string: lives as long as the command */
    return 0;
}

/* --reinterpret FROM=TO: two dtype names of the same element size. */
int cli_add_retype(const cli_command *cmd, cli_load_args *args, const char *spec) {
    const char *eq = strchr(spec, '=');
    char        from[32];
    if (!eq || (size_t)(eq - spec) >= sizeof from)
        return cli_command_error(cmd, "--reinterpret needs FROM=TO (e.g. uint16=bfloat16)");
    snprintf(from, sizeof from, "%.*s", (int)(eq - spec), spec);
    pdckpt_dtype a = pdckpt_dtype_from_name(from), b = pdckpt_dtype_from_name(eq + 1);
    if (a == PDCKPT_DTYPE_INVALID || b == PDCKPT_DTYPE_INVALID)
        return cli_command_error(cmd, "--reinterpret: unknown dtype in '%s'", spec);
    if (pdckpt_dtype_size(a) != pdckpt_dtype_size(b))
        return cli_command_error(cmd, "--reinterpret: %s and %s differ in element size", from,
                                 eq + 1);
    if (args->n_retype == sizeof args->retype_from / sizeof *args->retype_from)
        return cli_command_error(cmd, "--reinterpret: at most 8 pairs");
    args->retype_from[args->n_retype] = a;
    args->retype_to[args->n_retype++] = b;
    return CLI_OK;
}

void cli_load_args_free(cli_load_args *args) {
    for (size_t i = 0; i < args->n_names; i++) free(args->names[i]);
    free(args->names);
    args->names = NULL;
    args->n_names = 0;
    free(args->allowed);
    args->allowed = NULL;
    args->n_allowed = 0;
}

/* `-` as an input: all of standard input, read into memory up to a bound (a checkpoint arriving
 * through a pipe cannot be mapped or re-read, nor its size known before it ends): the machine's
 * physical memory or 64 GiB, the less, so an endless producer is stopped. */
static size_t stdin_max(void) {
    long   pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    size_t cap = (size_t)64 << 30;
    if (pages > 0 && page > 0 && (uint64_t)pages * (uint64_t)page < cap)
        cap = (size_t)pages * (size_t)page;
    return cap;
}

static pdckpt_status stdin_error(pdckpt_error *err, pdckpt_status status, int e, const char *msg) {
    err->status = status;
    err->sys_errno = e;
    err->offset = -1;
    snprintf(err->source, sizeof err->source, "<stdin>");
    snprintf(err->message, sizeof err->message, "%s%s%s", msg, e ? ": " : "", e ? strerror(e) : "");
    return status;
}

static pdckpt_status stdin_too_long(pdckpt_error *err, size_t read, size_t max, bool no_memory) {
    char msg[200];
    if (no_memory)
        snprintf(msg, sizeof msg, "memory ran out after %zu bytes of standard input: not loaded",
                 read);
    else
        snprintf(msg, sizeof msg,
                 "expected at most %zu bytes on standard input (physical memory or 64 GiB), "
                 "read %zu before its end: not loaded",
                 max, read);
    return stdin_error(err, no_memory ? PDCKPT_ERR_NOMEM : PDCKPT_ERR_LIMIT, 0, msg);
}

static pdckpt_status read_stdin(void **data, size_t *len, pdckpt_error *err) {
    struct stat st; /* a device is refused unread, as a path to one is (/dev/zero never ends) */
    if (fstat(0, &st) == 0 && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
        return stdin_error(err, PDCKPT_ERR_ARGUMENT, 0,
                           "expected a regular file, a pipe or a socket on standard input, found "
                           "a device: not read");
    size_t   cap = 1 << 20, n = 0, max = stdin_max();
    uint8_t *buf = malloc(cap);
    while (buf && n <= max) {
        if (n == cap) {
            uint8_t *grown = realloc(buf, cap * 2);
            if (!grown) break;
            buf = grown;
            cap *= 2;
        }
        ssize_t got = read(0, buf + n, cap - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            int e = errno;
            free(buf);
            return stdin_error(err, PDCKPT_ERR_IO, e, "read");
        }
        if (got == 0) {
            *data = buf;
            *len = n;
            return PDCKPT_OK;
        }
        n += (size_t)got;
    }
    free(buf);
    return stdin_too_long(err, n, max, n <= max);
}

static pdckpt_status load_stdin(const pdckpt_load_options *opts, pdckpt_value **root,
                                pdckpt_format *format, pdckpt_error *err) {
    void  *data = NULL;
    size_t len = 0;
    if (read_stdin(&data, &len, err) != PDCKPT_OK) return err->status;
    pdckpt_load_options o = *opts;
    o.zero_copy = false; /* the tree owns copies; the stdin buffer goes now */
    pdckpt_status st = pdckpt_load_memory(data, len, &o, root, format, err);
    free(data);
    if (st != PDCKPT_OK && strcmp(err->source, "<memory>") == 0) /* the bytes were "-" */
        snprintf(err->source, sizeof err->source, "<stdin>");
    return st;
}

pdckpt_load_options cli_load_options(const cli_load_args *args) {
    pdckpt_load_options opts = PDCKPT_LOAD_OPTIONS_INIT;
    opts.format = args->format;
    opts.names = (const char *const *)args->names;
    opts.n_names = args->n_names;
    opts.program_path = args->program;
    opts.allowed_globals = args->allowed;
    opts.n_allowed_globals = args->n_allowed;
    opts.progress = cli_progress_cb;
    return opts;
}

int cli_load(const char *path, const cli_load_args *args, bool for_verify, pdckpt_value **root,
             pdckpt_format *format) {
    pdckpt_load_options opts = cli_load_options(args);
    opts.verify = for_verify;
    pdckpt_error err = PDCKPT_ERROR_INIT;
    cli_progress_begin("loading");
    pdckpt_status st = strcmp(path, "-") == 0 ? load_stdin(&opts, root, format, &err)
                                              : pdckpt_load_file(path, &opts, root, format, &err);
    cli_progress_end();
    for (size_t i = 0; st == PDCKPT_OK && i < args->n_retype; i++)
        st = pdckpt_value_reinterpret_all(*root, args->retype_from[i], args->retype_to[i], NULL,
                                          &err);
    if (st != PDCKPT_OK && *root) {
        pdckpt_value_free(*root);
        *root = NULL;
    }
    return st == PDCKPT_OK ? CLI_OK : cli_report(&err);
}
