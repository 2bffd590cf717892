/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_dist_ls.c — `pdckpt ls DIR [--json] [--id N]` for a sharded checkpoint: its global
 * tensors (key, dtype, shape, bytes), every stored piece (offset, shape) with the file that
 * holds it, and the data files.  Reads only the metadata; needs no MPI.  --json prints one
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

/* One storage item: (key, offset tuple, is_flattened, flattened_range, replica_id, local_shape
 * tuple) -> file.  A flattened piece stores the run [start, end) of its box's flattening. */
typedef struct item {
    const char         *key;
    const pdckpt_value *offset, *shape, *run;
    const char         *file;
    int64_t             replica; /* > 0: an extra copy (save_replicas=True) that loads skip */
} item;

static int cmp_item(const void *a, const void *b) {
    return strcmp(((const item *)a)->key, ((const item *)b)->key);
}

static size_t read_items(const pdckpt_value *storage, item *out) {
    size_t n = 0;
    for (size_t i = 0; i < pdckpt_value_len(storage); i++) {
        const pdckpt_value *it = pdckpt_value_at(storage, i), *index = pdckpt_value_at(it, 0);
        const char         *key = pdckpt_value_get_string(pdckpt_value_at(index, 0), NULL);
        const char         *file = pdckpt_value_get_string(pdckpt_value_at(it, 1), NULL);
        if (!key || !file || pdckpt_value_len(index) < 6) continue;
        bool    flat = false;
        int64_t replica = 0; /* None: the only copy */
        pdckpt_value_get_bool(pdckpt_value_at(index, 2), &flat);
        pdckpt_value_get_int(pdckpt_value_at(index, 4), &replica);
        out[n++] = (item){key,
                          pdckpt_value_at(index, 1),
                          pdckpt_value_at(index, 5),
                          flat ? pdckpt_value_at(index, 3) : NULL,
                          file,
                          replica};
    }
    qsort(out, n, sizeof *out, cmp_item);
    return n;
}

static void ints(FILE *f, const pdckpt_value *t, bool json) {
    fputc('[', f);
    for (size_t d = 0; d < pdckpt_value_len(t); d++) {
        int64_t v = 0;
        pdckpt_value_get_int(pdckpt_value_at(t, d), &v);
        fprintf(f, "%s%lld", d ? ", " : "", (long long)v);
    }
    fputc(']', f);
    (void)json;
}

static uint64_t nbytes(const pdckpt_value *m) {
    const char         *dt = pdckpt_value_get_string(pdckpt_dict_get(m, "dtype"), NULL);
    uint64_t            n = dt ? pdckpt_dtype_size(pdckpt_dtype_from_name(dt)) : 0;
    const pdckpt_value *g = pdckpt_dict_get(m, "global_shape");
    for (size_t d = 0; d < pdckpt_value_len(g); d++) {
        int64_t v = 0;
        pdckpt_value_get_int(pdckpt_value_at(g, d), &v);
        n *= (uint64_t)v;
    }
    return n;
}

/* The items of `key` (binary search in the sorted items). */
static void range_of(const item *items, size_t n, const char *key, size_t *from, size_t *to) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(items[mid].key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *from = *to = lo;
    while (*to < n && strcmp(items[*to].key, key) == 0) (*to)++;
}

static void print_tensor(const char *key, const pdckpt_value *m, const item *items, size_t n,
                         bool json, size_t index) {
    size_t from, to;
    range_of(items, n, key, &from, &to);
    const char *dt = pdckpt_value_get_string(pdckpt_dict_get(m, "dtype"), NULL);
    if (json) {
        printf("%s{\"key\": ", index ? ", " : "");
        cli_json_string(stdout, key, strlen(key));
        printf(", \"dtype\": ");
        cli_json_str(stdout, dt ? dt : ""); /* from the metadata file: quoted like any name */
        printf(", \"shape\": ");
        ints(stdout, pdckpt_dict_get(m, "global_shape"), true);
        printf(", \"nbytes\": %llu, \"pieces\": [", (unsigned long long)nbytes(m));
    } else {
        fputs("  ", stdout);
        cli_put_cell(stdout, cli_safe(key), 40);
        fputs(" ", stdout);
        cli_put_cell(stdout, dt ? cli_safe(dt) : "?", 10);
        fputs(" ", stdout);
        ints(stdout, pdckpt_dict_get(m, "global_shape"), false);
        char size[32];
        printf("  %s, %zu piece%s\n", cli_human_bytes(nbytes(m), size, sizeof size), to - from,
               to - from == 1 ? "" : "s");
    }
    for (size_t i = from; i < to; i++) {
        if (json)
            printf("%s{\"offset\": ", i > from ? ", " : "");
        else
            printf("    at ");
        ints(stdout, items[i].offset, json);
        printf(json ? ", \"shape\": " : " shape ");
        ints(stdout, items[i].shape, json);
        if (items[i].run) {
            printf(json ? ", \"flattened_range\": " : " flattened run ");
            ints(stdout, items[i].run, json);
        }
        if (items[i].replica > 0)
            printf(json ? ", \"replica_id\": %lld" : " replica %lld", (long long)items[i].replica);
        if (json) {
            printf(", \"file\": ");
            cli_json_str(stdout, items[i].file);
            printf("}");
        } else
            printf("  in %s\n", cli_safe(items[i].file));
    }
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
    for (size_t i = 0; i < n; i++) f[i] = (file_count){items[i].file, i, 1};
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

static int list(const char *dir, const pdckpt_value *meta, int64_t id, bool json,
                pdckpt_error *err) {
    int64_t newest = -1, largest = -1;
    if (pdckpt_sharded_scan(dir, &newest, &largest, err) != PDCKPT_OK) return cli_report(err);
    const pdckpt_value *sdm = pdckpt_dict_get(meta, "state_dict_metadata");
    const pdckpt_value *storage = pdckpt_dict_get(meta, "storage_metadata");
    item               *items = calloc(pdckpt_value_len(storage) + 1, sizeof *items);
    if (!items) return CLI_BAD_INPUT;
    size_t n = read_items(storage, items);
    if (json)
        printf("{\"format\": \"sharded\", \"id\": %lld, \"newest_complete\": %lld, \"largest_id\": "
               "%lld, \"tensors\": [",
               (long long)id, (long long)newest, (long long)largest);
    else
        printf("%s: sharded checkpoint id %lld (newest complete %lld, largest id seen %lld), "
               "%zu tensors, %zu pieces\n",
               cli_safe(dir), (long long)id, (long long)newest, (long long)largest,
               pdckpt_value_len(sdm), n);
    for (size_t k = 0; k < pdckpt_value_len(sdm); k++)
        print_tensor(pdckpt_value_get_string(pdckpt_dict_key_at(sdm, k), NULL),
                     pdckpt_value_at(pdckpt_value_at(sdm, k), 0), items, n, json, k);
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
    pdckpt_mpi_options o = a.o;
    bool               json = a.json;
    pdckpt_value      *meta = NULL;
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    int64_t            id = -1;
    if (rc == CLI_OK &&
        pdckpt_sharded_read_metadata(dir, o.unique_id, &meta, &id, &err) != PDCKPT_OK)
        rc = cli_report(&err);
    if (rc == CLI_OK) rc = list(dir, meta, id, json, &err);
    pdckpt_value_free(meta);
    return rc;
}
