/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_dist.c — `pdckpt dist shard` and `pdckpt dist merge`, run under mpirun.
 *   shard IN DIR --ranks-layout SPEC: every rank maps IN (so it reads only its own part) and
 *     saves its piece of every tensor into the sharded checkpoint DIR.  SPEC is a comma list of
 *     PATTERN=LAYOUT rules (shell patterns on the flat key; the first match wins; a bare LAYOUT
 *     means *=LAYOUT; keys no rule matches are replicated, i.e. written once):
 *       row    dim 0 cut into one piece per rank      col    the last dim cut
 *       block  dims 0 and 1 cut into a grid (4 ranks: 2x2, 6: 3x2, 3: 3x1)
 *       rep    whole on every rank                    AxBx.. an explicit grid, one factor per dim
 *     Pieces follow Paddle's balanced_split (ceil-sized pieces, the last shorter); 0-d tensors
 *     are always replicated; a grid of P pieces on more ranks gives ranks r and r+P the same one.
 *   merge DIR OUT: the ranks load disjoint runs of keys whole (resharding reads) and write OUT:
 *     a combined file or a .pdparams collectively with MPI-IO, any other format gathered on
 *     rank 0.
 */
#include "cli_mpi.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

/* ---- layouts ---- */

enum { L_ROW, L_COL, L_BLOCK, L_REP, L_GRID };

typedef struct rule {
    char   *pattern;
    int     kind;
    int32_t n_parts;
    int64_t parts[PDCKPT_MAX_DIMS];
} rule;

typedef struct rules {
    rule  *items;
    size_t len;
} rules;

static int parse_kind(const char *s, rule *r) {
    static const char *const names[] = {"row", "col", "block", "rep"};
    for (int k = 0; k < 4; k++)
        if (strcmp(s, names[k]) == 0) return r->kind = k, 0;
    r->kind = L_GRID;
    for (const char *p = s; *p;) {
        char     *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 1 || r->n_parts >= PDCKPT_MAX_DIMS || (*end && *end != 'x')) return -1;
        r->parts[r->n_parts++] = v;
        p = *end ? end + 1 : end;
    }
    return r->n_parts ? 0 : -1;
}

static int parse_rules(const char *spec, rules *out) {
    char *copy = strdup(spec), *save = NULL;
    int   rc = copy ? 0 : -1;
    for (char *tok = copy ? strtok_r(copy, ",", &save) : NULL; tok && rc == 0;
         tok = strtok_r(NULL, ",", &save)) {
        rule *grown = realloc(out->items, (out->len + 1) * sizeof *grown);
        if (!grown) {
            rc = -1;
            break;
        }
        out->items = grown;
        rule *r = &out->items[out->len++];
        memset(r, 0, sizeof *r);
        char *eq = strrchr(tok, '=');
        r->pattern = strdup(eq ? (*eq = '\0', tok) : "*");
        rc = r->pattern ? parse_kind(eq ? eq + 1 : tok, r) : -1;
    }
    free(copy);
    return rc;
}

static void rules_free(rules *rs) {
    for (size_t i = 0; i < rs->len; i++) free(rs->items[i].pattern);
    free(rs->items);
}

/* Pieces per dim of a tensor of `n_dims` under the first matching rule; -1 on a bad grid. */
static int parts_for(const rules *rs, const char *key, int32_t n_dims, int64_t *parts) {
    const rule *r = NULL;
    for (size_t i = 0; i < rs->len && !r; i++)
        if (fnmatch(rs->items[i].pattern, key, 0) == 0) r = &rs->items[i];
    for (int32_t d = 0; d < n_dims; d++) parts[d] = 1;
    if (!r || n_dims == 0 || r->kind == L_REP) return 0;
    if (r->kind == L_GRID) {
        if (r->n_parts != n_dims) return -1;
        memcpy(parts, r->parts, (size_t)n_dims * sizeof *parts);
    } else if (r->kind == L_ROW || n_dims == 1) {
        parts[0] = cli_size;
    } else if (r->kind == L_COL) {
        parts[n_dims - 1] = cli_size;
    } else {
        int c = 1;
        for (int k = 1; k * k <= cli_size; k++)
            if (cli_size % k == 0) c = k;
        parts[0] = cli_size / c;
        parts[1] = c;
    }
    return 0;
}

/* ---- shard ---- */

enum { OPT_RANKS_LAYOUT = CLI_OPT_OWN, OPT_DATA_FORMAT, OPT_SKIP_NON_TENSORS, OPT_TO };
static const cli_option shard_options[] = {
    {"ranks-layout", required_argument, NULL, OPT_RANKS_LAYOUT},
    {"data-format", required_argument, NULL, OPT_DATA_FORMAT},
    {"skip-non-tensors", no_argument, NULL, OPT_SKIP_NON_TENSORS},
    CLI_MPI_OPTIONS,
    {0, 0, 0, 0},
};

const cli_command cli_cmd_dist_shard = {
    "dist shard",
    "split a checkpoint into a sharded one, each rank writing its part",
    "IN DIR --ranks-layout SPEC",
    "Under mpirun: every rank reads IN and saves its piece of every tensor into the sharded\n"
    "checkpoint DIR (Paddle's save_state_dict layout: <rank>_<id>.distcp pickles and the\n"
    "<id>.metadata written last).  --id N saves (again) as id N: the previous checkpoint N stays\n"
    "loadable until the new one is complete.",
    "  --ranks-layout SPEC    comma list of PATTERN=LAYOUT (a bare LAYOUT applies to every key);\n"
    "                         LAYOUT is row, col, block, rep or a grid AxB... (pieces per dim);\n"
    "                         keys no rule matches are replicated\n"
    "  --data-format F        pickle (default, .distcp), safetensors, combined or vars-dir\n"
    "  --skip-non-tensors     drop values a sharded checkpoint cannot hold\n" CLI_MPI_OPTIONS_HELP,
    shard_options,
    true,
    cmd_dist_shard};

typedef struct shard_args {
    const char        *in, *dir, *spec;
    cli_load_args      load;
    pdckpt_mpi_options o;
    bool               skip_non_tensors;
} shard_args;

static int shard_option(void *ctx, int code, const char *value) {
    shard_args *a = ctx;
    int         rc = cli_mpi_take_common(&cli_cmd_dist_shard, code, value, &a->o);
    if (rc != -1) return rc;
    if (code == OPT_SKIP_NON_TENSORS) a->skip_non_tensors = true;
    if (code == OPT_RANKS_LAYOUT) a->spec = value;
    if (code == OPT_DATA_FORMAT)
        return cli_format_value(&cli_cmd_dist_shard, "--data-format", value, true,
                                &a->o.data_format);
    return CLI_OK;
}

static int parse_shard(int argc, char **argv, shard_args *a) {
    const cli_operands operands = {(const char **const[]){&a->in, &a->dir}, 2, 2};
    int rc = cli_parse(&cli_cmd_dist_shard, argc, argv, &a->load, shard_option, a, &operands);
    if (rc == CLI_OK && !a->spec)
        rc = cli_command_error(&cli_cmd_dist_shard, "dist shard needs --ranks-layout SPEC");
    return rc;
}

/* This rank's piece of every tensor (views into the mapped input where the piece is one run). */
static int make_pieces(const pdckpt_flat *f, const rules *rs, pdckpt_mpi_shard *shards,
                       pdckpt_value **values, int64_t **boxes) {
    for (size_t i = 0; i < f->len; i++) {
        pdckpt_tensor_view v;
        pdckpt_tensor_get_memory(f->entries[i].tensor, &v, NULL);
        int64_t parts[PDCKPT_MAX_DIMS];
        if (parts_for(rs, f->entries[i].name, v.n_dims, parts) != 0) {
            fprintf(stderr, "pdckpt: the layout for '%s' does not have one factor per dim (%d)\n",
                    cli_safe(f->entries[i].name), (int)v.n_dims);
            return CLI_USAGE;
        }
        if (!(boxes[i] = malloc(2 * ((size_t)v.n_dims + 1) * sizeof **boxes))) return CLI_BAD_INPUT;
        int64_t *off = boxes[i], *shape = boxes[i] + v.n_dims + 1;
        pdckpt_shard_box(v.n_dims, v.dims, parts, cli_rank, off, shape);
        pdckpt_error err = PDCKPT_ERROR_INIT;
        if (pdckpt_shard_slice(f->entries[i].tensor, off, shape, &values[i], &err) != PDCKPT_OK)
            return cli_report(&err);
        shards[i] = (pdckpt_mpi_shard){f->entries[i].name, values[i], v.dims, off};
    }
    return CLI_OK;
}

static int save_pieces(const shard_args *a, const pdckpt_flat *f, const rules *rs) {
    pdckpt_mpi_shard *shards = calloc(f->len + 1, sizeof *shards);
    pdckpt_value    **values = calloc(f->len + 1, sizeof *values);
    int64_t         **boxes = calloc(f->len + 1, sizeof *boxes);
    int rc = shards && values && boxes ? make_pieces(f, rs, shards, values, boxes) : CLI_BAD_INPUT;
    rc = cli_mpi_agree(rc);
    if (rc == CLI_OK) {
        pdckpt_error err = PDCKPT_ERROR_INIT;
        int64_t      id = -1;
        if (pdckpt_mpi_save_sharded(MPI_COMM_WORLD, shards, f->len, a->dir, &a->o, &id, &err) !=
            PDCKPT_OK)
            rc = cli_mpi_report(&err);
        else if (cli_rank == 0)
            printf("%s -> %s: sharded checkpoint id %lld, %zu tensors over %d ranks\n",
                   cli_safe(a->in), cli_safe(a->dir), (long long)id, f->len, cli_size);
    }
    for (size_t i = 0; i < f->len && values && boxes; i++) {
        pdckpt_value_free(values[i]);
        free(boxes[i]);
    }
    free(shards);
    free(values);
    free(boxes);
    return rc;
}

int cmd_dist_shard(int argc, char **argv) {
    shard_args    a = {.load = {PDCKPT_FORMAT_AUTO, NULL, 0}, .o = PDCKPT_MPI_OPTIONS_INIT};
    rules         rs = {0};
    pdckpt_flat   f = {0};
    pdckpt_value *root = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    int           rc = parse_shard(argc, argv, &a);
    if (rc == CLI_HELP_SHOWN) { /* printed without MPI: nothing to agree on */
        cli_load_args_free(&a.load);
        return CLI_OK;
    }
    if (rc == CLI_OK && parse_rules(a.spec, &rs) != 0)
        rc = cli_command_error(&cli_cmd_dist_shard, "cannot read the layout '%s'", a.spec);
    if (rc == CLI_OK) rc = cli_load(a.in, &a.load, false, &root, NULL); /* read: a private copy */
    if (rc == CLI_OK &&
        pdckpt_value_flatten(root, PDCKPT_FLATTEN_NESTED | PDCKPT_FLATTEN_SKIP_NON_TENSORS, &f,
                             &err) != PDCKPT_OK)
        rc = cli_report(&err);
    if (rc == CLI_OK && f.n_skipped && !a.skip_non_tensors) {
        fprintf(stderr,
                "pdckpt: %s holds %zu non-tensor values; sharded checkpoints store tensors "
                "only (pass --skip-non-tensors to drop them)\n",
                cli_safe(a.in), f.n_skipped);
        rc = CLI_BAD_INPUT;
    }
    rc = cli_mpi_agree(rc);
    if (rc == CLI_OK) rc = save_pieces(&a, &f, &rs);
    pdckpt_flat_free(&f);
    pdckpt_value_free(root);
    rules_free(&rs);
    cli_load_args_free(&a.load);
    return rc;
}

/* ---- merge ---- */

static const cli_option merge_options[] = {
    {"to", required_argument, NULL, OPT_TO}, CLI_MPI_OPTIONS, {0, 0, 0, 0}};

const cli_command cli_cmd_dist_merge = {
    "dist merge",
    "a sharded checkpoint as one file or directory, in any format",
    "DIR OUT",
    "Under mpirun: the ranks read disjoint runs of keys whole (resharding reads) and write OUT:\n"
    "a combined file or a .pdparams collectively with MPI-IO, any other format gathered on\n"
    "rank 0.",
    "  --to F                 the output format (default: from OUT's name)\n" CLI_MPI_OPTIONS_HELP,
    merge_options,
    false,
    cmd_dist_merge};

typedef struct merge_args {
    const char        *dir, *out;
    pdckpt_mpi_options o;
} merge_args;

static int merge_option(void *ctx, int code, const char *value) {
    merge_args *a = ctx;
    int         rc = cli_mpi_take_common(&cli_cmd_dist_merge, code, value, &a->o);
    if (rc != -1) return rc;
    return cli_format_value(&cli_cmd_dist_merge, "--to", value, true, &a->o.save.format);
}

static int parse_merge(int argc, char **argv, merge_args *a) {
    const cli_operands operands = {(const char **const[]){&a->dir, &a->out}, 2, 2};
    int rc = cli_parse(&cli_cmd_dist_merge, argc, argv, NULL, merge_option, a, &operands);
    if (rc == CLI_OK && a->o.save.format == PDCKPT_FORMAT_AUTO &&
        (a->o.save.format = pdckpt_format_from_path(a->out)) == PDCKPT_FORMAT_AUTO)
        rc = cli_command_error(&cli_cmd_dist_merge, "cannot tell the format from '%s'; pass --to",
                               a->out);
    return rc;
}

/* Keys in metadata order ({key: {"dtype", "global_shape"}}, pdckpt_sharded_read_keys), cut into
 * one run per rank of about equal bytes. */
static int my_requests(const pdckpt_value *listed, pdckpt_mpi_request **reqs, size_t *n) {
    size_t    keys = pdckpt_value_len(listed);
    uint64_t *bytes = calloc(keys + 1, sizeof *bytes), total = 0, seen = 0;
    *reqs = calloc(keys + 1, sizeof **reqs);
    if (!bytes || !*reqs) return free(bytes), CLI_BAD_INPUT;
    for (size_t k = 0; k < keys; k++) {
        const pdckpt_value *m = pdckpt_value_at(listed, k);
        const pdckpt_value *g = pdckpt_dict_get(m, "global_shape");
        pdckpt_dtype        dt =
            pdckpt_dtype_from_name(pdckpt_value_get_string(pdckpt_dict_get(m, "dtype"), NULL));
        bytes[k] = pdckpt_dtype_size(dt);
        for (size_t d = 0; d < pdckpt_value_len(g); d++) {
            int64_t dim = 0;
            pdckpt_value_get_int(pdckpt_value_at(g, d), &dim);
            bytes[k] *= (uint64_t)dim;
        }
        total += bytes[k] + 1;
    }
    *n = 0;
    for (size_t k = 0; k < keys; k++) {
        uint64_t mid = seen + (bytes[k] + 1) / 2; /* the rank whose share holds the key's middle */
        seen += bytes[k] + 1;
        if ((int)(mid * (uint64_t)cli_size / (total ? total : 1)) != cli_rank) continue;
        const pdckpt_value *m = pdckpt_value_at(listed, k);
        (*reqs)[(*n)++] = (pdckpt_mpi_request){
            pdckpt_value_get_string(pdckpt_dict_key_at(listed, k), NULL),
            (int32_t)pdckpt_value_len(pdckpt_dict_get(m, "global_shape")), NULL, NULL};
    }
    free(bytes);
    return CLI_OK;
}

static int merge_write(const merge_args *a, const pdckpt_value *mine, pdckpt_error *err) {
    pdckpt_mpi_options o = a->o;
    static const int   root = 0;
    pdckpt_status      st;
    if (o.save.format == PDCKPT_FORMAT_COMBINED || o.save.format == PDCKPT_FORMAT_PICKLE) {
        st = pdckpt_mpi_save_combined(MPI_COMM_WORLD, mine, a->out, &o, err);
    } else {
        o.gather_to = &root;
        o.n_gather_to = 1;
        st = pdckpt_mpi_save(MPI_COMM_WORLD, mine, a->out, &o, err);
    }
    return st == PDCKPT_OK ? CLI_OK : cli_mpi_report(err);
}

int cmd_dist_merge(int argc, char **argv) {
    merge_args          a = {.o = PDCKPT_MPI_OPTIONS_INIT};
    pdckpt_value       *keys = NULL, *mine = NULL;
    pdckpt_mpi_request *reqs = NULL;
    size_t              n = 0;
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    int                 rc = parse_merge(argc, argv, &a);
    if (rc == CLI_HELP_SHOWN) return CLI_OK; /* printed without MPI */
    int64_t id = a.o.unique_id;
    if (rc == CLI_OK && cli_rank == 0 && pdckpt_sharded_read_keys(a.dir, id, &keys, &id, &err))
        rc = cli_report(&err);
    rc = cli_mpi_agree(rc);
    MPI_Bcast(&id, 1, MPI_INT64_T, 0, MPI_COMM_WORLD); /* every rank reads the same checkpoint */
    if (rc == CLI_OK && cli_rank != 0 && pdckpt_sharded_read_keys(a.dir, id, &keys, NULL, &err))
        rc = cli_report(&err);
    if (rc == CLI_OK) rc = my_requests(keys, &reqs, &n);
    rc = cli_mpi_agree(rc);
    a.o.unique_id = id;
    if (rc == CLI_OK && pdckpt_mpi_load_sharded(MPI_COMM_WORLD, a.dir, reqs, n, &a.o, &mine, &err))
        rc = cli_mpi_report(&err);
    if (rc == CLI_OK) rc = merge_write(&a, mine, &err);
    if (rc == CLI_OK && cli_rank == 0)
        printf("%s (sharded, id %lld, %zu tensors) -> %s (%s)\n", cli_safe(a.dir), (long long)id,
               pdckpt_value_len(keys), cli_safe(a.out), pdckpt_format_name(a.o.save.format));
    pdckpt_value_free(mine);
    pdckpt_value_free(keys);
    free(reqs);
    return rc;
}
