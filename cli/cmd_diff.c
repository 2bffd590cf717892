/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd_diff.c — `pdckpt diff A B [--from F] [--names N] [--by-name]`: the two checkpoints must
 * hold the same key paths with the same dtypes, shapes and bytes (tensors) or equal values
 * (everything else), across formats.  Paddle's name table is metadata: when only one side has
 * one (a .pdparams against a plain safetensors file) it is noted, not counted.  --by-name keys
 * tensors by their Paddle names (a state dict against a program-named .pdiparams).  Prints each
 * difference; exit 0 when identical, 1 otherwise.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

int cmd_diff(int argc, char **argv);

enum { OPT_BY_NAME = CLI_OPT_OWN };
static const cli_option diff_options[] = {{"by-name", no_argument, NULL, OPT_BY_NAME},
                                          {0, 0, 0, 0}};

const cli_command cli_cmd_diff = {
    "diff",
    "compare two checkpoints across formats",
    "A B",
    "Compares two checkpoints, in any formats: the same key paths, dtypes, shapes and bytes\n"
    "(tensors) or equal values (everything else).  Prints each difference; exit 1 if any.",
    "  --by-name              compare tensors by Paddle name (the name table's, or the\n"
    "                         program's), not by key\n",
    diff_options,
    true,
    cmd_diff};

static int diff_option(void *ctx, int code, const char *value) {
    (void)value;
    if (code == OPT_BY_NAME) *(bool *)ctx = true;
    return CLI_OK;
}

static int cmp_key(const void *a, const void *b) {
    return strcmp((*(cli_leaf *const *)a)->key_json, (*(cli_leaf *const *)b)->key_json);
}

static const cli_leaf *find(cli_leaf **sorted, size_t n, const char *key) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int    c = strcmp(sorted[mid]->key_json, key);
        if (c == 0) return sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Prints the difference between two leaves at `key`; returns 1 if they differ.  Tensors compare
 * as values: two in the same memory order by their memory as it is (no copy); otherwise, or to
 * say where they differ, by their C-order bytes (a Fortran-order tensor's copy, made for a tensor
 * compared only). */
static int compare(const char *key, const pdckpt_value *a, const pdckpt_value *b) {
    pdckpt_tensor_view va, vb;
    bool               fa = false, fb = false;
    bool ta = pdckpt_tensor_get_memory(a, &va, &fa), tb = pdckpt_tensor_get_memory(b, &vb, &fb);
    if (!ta || !tb) {
        if (pdckpt_value_equal(a, b)) return 0;
        printf("value differs at %s: ", key);
        cli_text_scalar(stdout, a);
        printf(" vs ");
        cli_text_scalar(stdout, b);
        printf("\n");
        return 1;
    }
    if (va.dtype != vb.dtype) {
        printf("dtype differs at %s: %s vs %s\n", key, pdckpt_dtype_name(va.dtype),
               pdckpt_dtype_name(vb.dtype));
        return 1;
    }
    char sa[PDCKPT_MAX_DIMS * 22 + 4], sb[sizeof sa];
    cli_shape_text(&va, sa, sizeof sa);
    cli_shape_text(&vb, sb, sizeof sb);
    if (strcmp(sa, sb) != 0) {
        printf("shape differs at %s: %s vs %s\n", key, sa, sb);
        return 1;
    }
    if (va.n_bytes == 0 || (fa == fb && memcmp(va.data, vb.data, (size_t)va.n_bytes) == 0))
        return 0;
    if ((fa || fb) && (!pdckpt_tensor_get(a, &va) || !pdckpt_tensor_get(b, &vb))) {
        printf("cannot compare %s: no memory for a C-order copy\n", key);
        return 1;
    }
    if (memcmp(va.data, vb.data, (size_t)va.n_bytes) == 0) return 0;
    size_t               esize = pdckpt_dtype_size(va.dtype), first = SIZE_MAX, count = 0;
    const unsigned char *pa = va.data, *pb = vb.data;
    for (size_t e = 0; e < va.n_elements; e++)
        if (memcmp(pa + e * esize, pb + e * esize, esize) != 0) {
            if (first == SIZE_MAX) first = e;
            count++;
        }
    printf("data differs at %s: %zu of %llu elements (first at flat index %zu)\n", key, count,
           (unsigned long long)va.n_elements, first);
    return 1;
}

static int diff_leaves(const cli_leaves *a, const cli_leaves *b) {
    cli_leaf **sa = malloc((a->len + 1) * sizeof *sa), **sb = malloc((b->len + 1) * sizeof *sb);
    if (!sa || !sb) {
        free(sa);
        free(sb);
        fprintf(stderr, "pdckpt: out of memory\n");
        return CLI_BAD_INPUT;
    }
    for (size_t i = 0; i < a->len; i++) sa[i] = &a->items[i];
    for (size_t i = 0; i < b->len; i++) sb[i] = &b->items[i];
    qsort(sa, a->len, sizeof *sa, cmp_key);
    qsort(sb, b->len, sizeof *sb, cmp_key);
    int differences = 0;
    for (size_t i = 0; i < a->len; i++) {
        const cli_leaf *other = find(sb, b->len, a->items[i].key_json);
        if (!other)
            printf("only in A: %s\n", a->items[i].key_json), differences++;
        else
            differences += compare(a->items[i].key_json, a->items[i].value, other->value);
    }
    for (size_t i = 0; i < b->len; i++)
        if (!find(sa, a->len, b->items[i].key_json))
            printf("only in B: %s\n", b->items[i].key_json), differences++;
    free(sa);
    free(sb);
    if (differences) printf("%d difference%s\n", differences, differences == 1 ? "" : "s");
    return differences ? CLI_BAD_INPUT : CLI_OK;
}

static bool any_named(const cli_leaves *l) {
    pdckpt_tensor_view t;
    for (size_t i = 0; i < l->len; i++)
        if (pdckpt_tensor_get_memory(l->items[i].value, &t, NULL) && t.name && *t.name) return true;
    return false;
}

/* The name table on one side only is not a difference in the tensors (noted on stderr); with
 * --by-name the names are what keys the tensors (when both sides carry names; a side without
 * any, such as a plain safetensors file, is compared by key), and the tables are not compared. */
static int align(cli_leaves *la, cli_leaves *lb, bool by_name) {
    if (by_name) {
        cli_leaves_drop_name_table(la);
        cli_leaves_drop_name_table(lb);
        if (!any_named(la) || !any_named(lb)) return CLI_OK; /* no names on one side: by key */
        if (cli_leaves_key_by_name(la) || cli_leaves_key_by_name(lb)) {
            fprintf(stderr, "pdckpt: out of memory\n");
            return CLI_BAD_INPUT;
        }
        return CLI_OK;
    }
    bool has_a = cli_leaves_has_name_table(la), has_b = cli_leaves_has_name_table(lb);
    if (has_a == has_b) return CLI_OK;
    size_t n = cli_leaves_drop_name_table(has_a ? la : lb);
    fprintf(stderr,
            "pdckpt: note: only %s has a name table (" PDCKPT_NAME_TABLE_KEY ", %zu entries); "
            "not compared (--by-name compares tensors by those names)\n",
            has_a ? "A" : "B", n);
    return CLI_OK;
}

int cmd_diff(int argc, char **argv) {
    cli_load_args      args = {PDCKPT_FORMAT_AUTO, NULL, 0, NULL};
    const char        *path_a = NULL, *path_b = NULL;
    bool               by_name = false;
    const cli_operands operands = {(const char **const[]){&path_a, &path_b}, 2, 2};
    int rc = cli_parse(&cli_cmd_diff, argc, argv, &args, diff_option, &by_name, &operands);
    pdckpt_value *a = NULL, *b = NULL;
    cli_leaves    la = {0}, lb = {0};
    if (rc == CLI_OK) rc = cli_load(path_a, &args, false, &a, NULL);
    if (rc == CLI_OK) rc = cli_load(path_b, &args, false, &b, NULL);
    if (rc == CLI_OK) rc = cli_collect_leaves(a, &la);
    if (rc == CLI_OK) rc = cli_collect_leaves(b, &lb);
    if (rc == CLI_OK) rc = align(&la, &lb, by_name);
    if (rc == CLI_OK) {
        rc = diff_leaves(&la, &lb);
        if (rc == CLI_OK) printf("identical\n");
    }
    cli_leaves_free(&la);
    cli_leaves_free(&lb);
    pdckpt_value_free(a);
    pdckpt_value_free(b);
    cli_load_args_free(&args);
    return rc == CLI_HELP_SHOWN ? CLI_OK : rc;
}
