/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_leaves.c — flattens a tree into (key path, leaf) rows for ls and diff.  A key path renders
 * as JSON (["blocks", 0, "weight"]: dict keys as strings, list indexes as integers) and as text
 * (blocks/0/weight).  diff can drop the name table's rows and key tensors by their Paddle names.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

typedef struct text {
    char  *buf;
    size_t len, cap;
} text;

static int text_put(text *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        while (cap < t->len + n + 1) cap *= 2;
        char *grown = realloc(t->buf, cap);
        if (!grown) return -1;
        t->buf = grown;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
    return 0;
}

static pdckpt_status to_text(void *t, const void *bytes, size_t len, pdckpt_error *err) {
    (void)err;
    return text_put(t, bytes, len) ? PDCKPT_ERR_NOMEM : PDCKPT_OK;
}

static int json_key(text *t, const char *s, size_t n) {
    return pdckpt_json_write_string(s, n, 0, to_text, t, NULL) == PDCKPT_OK ? 0 : -1;
}

/* Appends one step to both renderings. */
static int render_step(text *json, text *plain, const pdckpt_path_step *step) {
    char        num[32];
    size_t      n = 0;
    const char *s = step->key ? pdckpt_value_get_string(step->key, &n) : NULL;
    int64_t     iv;
    if (s) {
        if (json_key(json, s, n) || text_put(plain, s, n)) return -1;
        return 0;
    }
    if (step->key && pdckpt_value_get_int(step->key, &iv)) {
        n = (size_t)snprintf(num, sizeof num, "%lld", (long long)iv);
    } else if (step->key) {
        n = (size_t)snprintf(num, sizeof num, "<%s key>",
                             pdckpt_kind_name(pdckpt_value_kind(step->key)));
        return json_key(json, num, n) || text_put(plain, num, n) ? -1 : 0;
    } else {
        n = (size_t)snprintf(num, sizeof num, "%lld", (long long)step->index);
    }
    return text_put(json, num, n) || text_put(plain, num, n) ? -1 : 0;
}

static int visit(void *ctx, const pdckpt_path_step *path, size_t depth, const pdckpt_value *leaf) {
    cli_leaves *out = ctx;
    if (out->len == out->cap) {
        size_t    cap = out->cap ? out->cap * 2 : 64;
        cli_leaf *grown = realloc(out->items, cap * sizeof *grown);
        if (!grown) return 1;
        out->items = grown;
        out->cap = cap;
    }
    text json = {0}, plain = {0};
    int  rc = text_put(&json, "[", 1) || text_put(&plain, "", 0);
    for (size_t i = 0; i < depth && rc == 0; i++) {
        if (i) rc = text_put(&json, ", ", 2) || text_put(&plain, "/", 1);
        if (rc == 0) rc = render_step(&json, &plain, &path[i]);
    }
    if (rc == 0) rc = text_put(&json, "]", 1);
    if (rc) {
        free(json.buf);
        free(plain.buf);
        return 1;
    }
    out->items[out->len].key_json = json.buf;
    out->items[out->len].key_text = plain.buf;
    out->items[out->len].value = leaf;
    out->len++;
    return 0;
}

int cli_collect_leaves(const pdckpt_value *root, cli_leaves *out) {
    memset(out, 0, sizeof *out);
    pdckpt_error err = PDCKPT_ERROR_INIT;
    if (pdckpt_value_walk(root, visit, out, &err) != PDCKPT_OK) return cli_report(&err);
    return CLI_OK;
}

void cli_leaves_free(cli_leaves *leaves) {
    for (size_t i = 0; i < leaves->len; i++) {
        free(leaves->items[i].key_json);
        free(leaves->items[i].key_text);
    }
    free(leaves->items);
    memset(leaves, 0, sizeof *leaves);
}

/* The key path of the name table's rows starts so (the key needs no JSON escape). */
static const char name_table_json[] = "[\"" PDCKPT_NAME_TABLE_KEY "\"";

static bool in_name_table(const cli_leaf *l) {
    size_t n = strlen(name_table_json);
    return strncmp(l->key_json, name_table_json, n) == 0 && l->key_json[n] &&
           strchr("],", l->key_json[n]);
}

bool cli_leaves_has_name_table(const cli_leaves *leaves) {
    for (size_t i = 0; i < leaves->len; i++)
        if (in_name_table(&leaves->items[i])) return true;
    return false;
}

size_t cli_leaves_drop_name_table(cli_leaves *leaves) {
    size_t kept = 0, dropped = 0;
    for (size_t i = 0; i < leaves->len; i++) {
        cli_leaf *l = &leaves->items[i];
        if (in_name_table(l)) {
            free(l->key_json);
            free(l->key_text);
            dropped++;
        } else {
            leaves->items[kept++] = *l;
        }
    }
    leaves->len = kept;
    return dropped;
}

int cli_leaves_key_by_name(cli_leaves *leaves) {
    for (size_t i = 0; i < leaves->len; i++) {
        cli_leaf          *l = &leaves->items[i];
        pdckpt_tensor_view t;
        if (!pdckpt_tensor_get(l->value, &t) || !t.name || !*t.name) continue;
        text json = {0}, plain = {0};
        if (text_put(&json, "[", 1) || json_key(&json, t.name, strlen(t.name)) ||
            text_put(&json, "]", 1) || text_put(&plain, t.name, strlen(t.name))) {
            free(json.buf);
            free(plain.buf);
            return -1;
        }
        free(l->key_json);
        free(l->key_text);
        l->key_json = json.buf;
        l->key_text = plain.buf;
    }
    return 0;
}
