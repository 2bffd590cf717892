/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_leaves.c — flattens a tree into (key path, leaf) rows for ls and diff.  A key path renders
 * as JSON (["blocks", 0, "weight"]: dict keys as strings, list indexes as integers), as text
 * (blocks/0/weight: the key's bytes, for matching) and as that text display-safe (for printing:
 * each key escaped on its own, so a NUL inside a key shows too).  diff can drop the name table's
 * rows and key tensors by their Paddle names.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

typedef struct text {
    char  *buf;
    size_t len, cap;
} text;

/* Room for n more bytes and the NUL. */
static int text_reserve(text *t, size_t n) {
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        while (cap < t->len + n + 1) cap *= 2;
        char *grown = realloc(t->buf, cap);
        if (!grown) return -1;
        t->buf = grown;
        t->cap = cap;
    }
    return 0;
}

static int text_put(text *t, const char *s, size_t n) {
    if (text_reserve(t, n)) return -1;
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
    return pdckpt_json_write_string(s, n, PDCKPT_JSON_DISPLAY, to_text, t, NULL) == PDCKPT_OK ? 0
                                                                                              : -1;
}

/* Appends the display-safe rendering of s[0..n). */
static int show_put(text *t, const char *s, size_t n) {
    size_t need = pdckpt_display_text(s, n, 0, NULL, 0);
    if (text_reserve(t, need)) return -1;
    pdckpt_display_text(s, n, 0, t->buf + t->len, need + 1);
    t->len += need;
    return 0;
}

/* The three renderings of a key path being built: JSON, bytes, display-safe. */
typedef struct key_texts {
    text json, plain, show;
} key_texts;

static int put_all(key_texts *k, const char *s, size_t n) {
    return text_put(&k->json, s, n) || text_put(&k->plain, s, n) || text_put(&k->show, s, n) ? -1
                                                                                             : 0;
}

static void key_texts_free(key_texts *k) {
    free(k->json.buf);
    free(k->plain.buf);
    free(k->show.buf);
}

static void leaf_keys_free(cli_leaf *l) {
    free(l->key_json);
    free(l->key_text);
    free(l->key_show);
}

static void leaf_keys_set(cli_leaf *l, key_texts *k) {
    l->key_json = k->json.buf;
    l->key_text = k->plain.buf;
    l->key_show = k->show.buf;
}

/* Appends one step to the three renderings. */
static int render_step(key_texts *k, const pdckpt_path_step *step) {
    char        num[32];
    size_t      n = 0;
    const char *s = step->key ? pdckpt_value_get_string(step->key, &n) : NULL;
    int64_t     iv;
    if (s) return json_key(&k->json, s, n) || text_put(&k->plain, s, n) || show_put(&k->show, s, n);
    if (step->key && pdckpt_value_get_int(step->key, &iv)) {
        n = (size_t)snprintf(num, sizeof num, "%lld", (long long)iv);
    } else if (step->key) {
        n = (size_t)snprintf(num, sizeof num, "<%s key>",
                             pdckpt_kind_name(pdckpt_value_kind(step->key)));
        return json_key(&k->json, num, n) || text_put(&k->plain, num, n) ||
                       text_put(&k->show, num, n)
                   ? -1
                   : 0;
    } else {
        n = (size_t)snprintf(num, sizeof num, "%lld", (long long)step->index);
    }
    return put_all(k, num, n);
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
    key_texts k = {{0}, {0}, {0}};
    int rc = text_put(&k.json, "[", 1) || text_put(&k.plain, "", 0) || text_put(&k.show, "", 0);
    for (size_t i = 0; i < depth && rc == 0; i++) {
        if (i)
            rc = text_put(&k.json, ", ", 2) || text_put(&k.plain, "/", 1) ||
                 text_put(&k.show, "/", 1);
        if (rc == 0) rc = render_step(&k, &path[i]);
    }
    if (rc == 0) rc = text_put(&k.json, "]", 1);
    if (rc) {
        key_texts_free(&k);
        return 1;
    }
    leaf_keys_set(&out->items[out->len], &k);
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
    for (size_t i = 0; i < leaves->len; i++) leaf_keys_free(&leaves->items[i]);
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
            leaf_keys_free(l);
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
        if (!pdckpt_tensor_get_memory(l->value, &t, NULL) || !t.name || !*t.name) continue;
        key_texts k = {{0}, {0}, {0}};
        size_t    n = strlen(t.name);
        if (text_put(&k.json, "[", 1) || json_key(&k.json, t.name, n) ||
            text_put(&k.json, "]", 1) || text_put(&k.plain, t.name, n) ||
            show_put(&k.show, t.name, n)) {
            key_texts_free(&k);
            return -1;
        }
        leaf_keys_free(l);
        leaf_keys_set(l, &k);
    }
    return 0;
}
