/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_dist_ls.c — `pdckpt ls DIR [--json] [--id N]` for a sharded checkpoint: its global
 * tensors (key, dtype, shape, bytes), every stored piece (offset, shape) with the file that
 * holds it, and the data files.  Reads only the metadata (pdckpt_sharded_list: its records, not
 * a tree of Paddle's objects); needs no MPI.  --json prints one
 * object: {"format": "sharded", "id", "newest_complete", "largest_id",
 *          "tensors": [{"key", "dtype", "shape", "nbytes", "pieces": [{"offset", "shape",
 *          ["flattened_range",]
 *          "file"}]}], "files": [{"name", "pieces"}]}
 */
#include "cli_mpi.h"

#include <stdlib.h>
#include <string.h>

enum { OPT_JSON = CLI_OPT_OWN };
static const cli_option dist_ls_options[] = {{"json", no_argument, NULL, OPT_JSON},
                                             {"id", required_argument, NULL, CLI_OPT_MPI_ID},
                                             {0, 0, 0, 0}};

const cli_command cli_cmd_dist_ls = {
    "ls",
    "list a sharded checkpoint",
    "DIR",
    "Lists a sharded checkpoint: its tensors (global shape, dtype), the pieces each data file\n"
    "holds, and the files.  Reads only the metadata; needs no MPI.",
    "  --json                 exactly one JSON object\n"
    "  --id N                 the checkpoint id (default: the newest complete one)\n",
    dist_ls_options,
    false,
    cmd_dist_ls};

typedef struct dist_ls_args {
    pdckpt_mpi_options o;
    bool               json;
} dist_ls_args;

static int dist_ls_option(void *ctx, int code, const char *value) {
    dist_ls_args *a = ctx;
    if (code == OPT_JSON) return a->json = true, CLI_OK;
    return cli_mpi_take_common(&cli_cmd_dist_ls, code, value, &a->o);
}

/* One stored piece (pdckpt_sharded_listing_piece_at), and its place in the metadata. */
typedef struct item {
    pdckpt_sharded_piece_info p;
    size_t                    order;
} item;

/* By key, then in the metadata's order. */
static int cmp_item(const void *a, const void *b) {
    const item *x = a, *y = b;
    int         c = strcmp(x->p.key, y->p.key);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

static size_t read_items(const pdckpt_sharded_listing *l, item *out) {
    size_t n = pdckpt_sharded_listing_n_pieces(l);
    for (size_t i = 0; i < n; i++) {
        pdckpt_sharded_listing_piece_at(l, i, &out[i].p);
        out[i].order = i;
    }
    qsort(out, n, sizeof *out, cmp_item);
    return n;
}

/* [a, b, ...] (NULL: []). */
static void ints(FILE *f, int32_t n, const int64_t *v) {
    fputc('[', f);
    for (int32_t d = 0; v && d < n; d++) fprintf(f, "%s%lld", d ? ", " : "", (long long)v[d]);
    fputc(']', f);
}

static uint64_t nbytes(const pdckpt_sharded_tensor_info *t) {
    uint64_t n = pdckpt_dtype_size(t->dtype);
    for (int32_t d = 0; d < t->n_dims; d++) n *= (uint64_t)t->global_shape[d];
    return n;
}

/* The items of `key` (binary search in the sorted items). */
static void range_of(const item *items, size_t n, const char *key, size_t *from, size_t *to) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(items[mid].p.key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *from = *to = lo;
    while (*to < n && strcmp(items[*to].p.key, key) == 0) (*to)++;
}

static void print_piece(const pdckpt_sharded_piece_info *p, bool json, bool first) {
    if (json)
        printf("%s{\"offset\": ", first ? "" : ", ");
    else
        printf("    at ");
    ints(stdout, p->n_dims, p->global_offset);
    printf(json ? ", \"shape\": " : " shape ");
    ints(stdout, p->n_dims, p->local_shape);
    if (p->flattened) {
        printf(json ? ", \"flattened_range\": " : " flattened run ");
        ints(stdout, 2, (const int64_t[]){p->flat_begin, p->flat_end});
    }
    if (p->has_replica_id && p->replica_id > 0)
        printf(json ? ", \"replica_id\": %lld" : " replica %lld", (long long)p->replica_id);
    if (json) {
        printf(", \"file\": ");
        cli_json_str(stdout, p->file);
        printf("}");
    } else
        printf("  in %s\n", cli_safe(p->file));
}

static void print_tensor(const pdckpt_sharded_tensor_info *t, const item *items, size_t n,
                         bool json, size_t index) {
    size_t from, to;
    range_of(items, n, t->key, &from, &to);
    const char *dt = pdckpt_dtype_name(t->dtype);
    if (json) {
        printf("%s{\"key\": ", index ? ", " : "");
        cli_json_string(stdout, t->key, strlen(t->key));
        printf(", \"dtype\": ");
        cli_json_str(stdout, dt);
        printf(", \"shape\": ");
        ints(stdout, t->n_dims, t->global_shape);
        printf(", \"nbytes\": %llu, \"pieces\": [", (unsigned long long)nbytes(t));
    } else {
        fputs("  ", stdout);
        cli_put_cell(stdout, cli_safe(t->key), 40);
        fputs(" ", stdout);
        cli_put_cell(stdout, cli_safe(dt), 10);
        fputs(" ", stdout);
        ints(stdout, t->n_dims, t->global_shape);
        char size[32];
        printf("  %s, %zu piece%s\n", cli_human_bytes(nbytes(t), size, sizeof size), to - from,
               to - from == 1 ? "" : "s");
    }
    for (size_t i = from; i < to; i++) print_piece(&items[i].p, json, i == from);
    if (json) printf("]}");
}

/* A data file, where items first names it, and how many pieces it holds. */
typedef struct file_count {
    const char *name;
    size_t      first, count;
} file_count;

static int cmp_name_first(const void *a, const void *b) {
    const file_count *x = a, *y = b;
    int               c = strcmp(x->name, y->name);
    return c ? c : (x->first > y->first) - (x->first < y->first);
}

static int cmp_first(const void *a, const void *b) {
    size_t x = ((const file_count *)a)->first, y = ((const file_count *)b)->first;
    return (x > y) - (x < y);
}

/* The distinct files of items in order of first mention, counted by sorting: a scan of the files
 * seen so far per piece made metadata naming 100,000 files take 20 s to list (docs/RELIABILITY.md,
 * "Complexity attacks"). */
static size_t count_files(const item *items, size_t n, file_count *f) {
    for (size_t i = 0; i < n; i++) f[i] = (file_count){items[i].p.file, i, 1};
    qsort(f, n, sizeof *f, cmp_name_first);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k && strcmp(f[k - 1].name, f[i].name) == 0)
            f[k - 1].count++;
        else
            f[k++] = f[i];
    qsort(f, k, sizeof *f, cmp_first);
    return k;
}

static void print_files(const item *items, size_t n, bool json) {
    file_count *f = malloc((n + 1) * sizeof *f);
    size_t      k = f ? count_files(items, n, f) : 0;
    printf(json ? "], \"files\": [" : "  files:\n");
    for (size_t j = 0; j < k; j++) {
        if (json) {
            printf("%s{\"name\": ", j ? ", " : "");
            cli_json_str(stdout, f[j].name);
            printf(", \"pieces\": %zu}", f[j].count);
        } else {
            fputs("    ", stdout);
            cli_put_cell(stdout, cli_safe(f[j].name), 30);
            printf(" %zu piece%s\n", f[j].count, f[j].count == 1 ? "" : "s");
        }
    }
    if (json) printf("]}\n");
    free(f);
}

static int list(const char *dir, const pdckpt_sharded_listing *l, int64_t id, bool json,
                pdckpt_error *err) {
    int64_t newest = -1, largest = -1;
    if (pdckpt_sharded_scan(dir, &newest, &largest, err) != PDCKPT_OK) return cli_report(err);
    item *items = calloc(pdckpt_sharded_listing_n_pieces(l) + 1, sizeof *items);
    if (!items) return CLI_BAD_INPUT;
    size_t n = read_items(l, items), n_tensors = pdckpt_sharded_listing_n_tensors(l);
    if (json)
        printf("{\"format\": \"sharded\", \"id\": %lld, \"newest_complete\": %lld, \"largest_id\": "
               "%lld, \"tensors\": [",
               (long long)id, (long long)newest, (long long)largest);
    else
        printf("%s: sharded checkpoint id %lld (newest complete %lld, largest id seen %lld), "
               "%zu tensors, %zu pieces\n",
               cli_safe(dir), (long long)id, (long long)newest, (long long)largest, n_tensors, n);
    for (size_t k = 0; k < n_tensors; k++) {
        pdckpt_sharded_tensor_info t;
        pdckpt_sharded_listing_tensor_at(l, k, &t);
        print_tensor(&t, items, n, json, k);
    }
    print_files(items, n, json);
    free(items);
    return CLI_OK;
}

int cmd_dist_ls(int argc, char **argv) {
    dist_ls_args       a = {.o = PDCKPT_MPI_OPTIONS_INIT, .json = false};
    const char        *dir = NULL;
    const cli_operands operands = {(const char **const[]){&dir}, 1, 1};
    int rc = cli_parse(&cli_cmd_dist_ls, argc, argv, NULL, dist_ls_option, &a, &operands);
    if (rc == CLI_HELP_SHOWN) return CLI_OK;
    pdckpt_mpi_options      o = a.o;
    bool                    json = a.json;
    pdckpt_sharded_listing *l = NULL;
    pdckpt_error            err = PDCKPT_ERROR_INIT;
    int64_t                 id = -1;
    if (rc == CLI_OK && pdckpt_sharded_list(dir, o.unique_id, 0, &l, &id, &err) != PDCKPT_OK)
        rc = cli_report(&err);
    if (rc == CLI_OK) rc = list(dir, l, id, json, &err);
    pdckpt_sharded_listing_free(l);
    return rc;
}
