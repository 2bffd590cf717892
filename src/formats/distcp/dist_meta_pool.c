/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_meta_pool.c — the shared leaves of a metadata tree built for a caller
 * (pdckpt_sharded_read_metadata): every string (key and file names, dtypes, the dicts' keys),
 * every int, every tuple of ints (offsets, shapes) and None / True / False made once and
 * retained wherever it recurs, as Python's unpickler shares what the pickle's memo shares.  A
 * metadata of a few keys and files repeats the same few hundred leaves millions of times; the
 * tree returned is read-only where shared (pdckpt_value_shared), as any tree with memo
 * references.  One open-addressing table keyed by the leaf's content, grown at half load.
 */
#include "pdk_distcp.h"

#include <stdlib.h>
#include <string.h>

typedef struct slot {
    uint64_t      hash; /* 0: empty */
    pdckpt_value *v;
} slot;

struct pdk_meta_pool {
    slot         *slots;
    size_t        cap, len;
    pdckpt_value *none, *bools[2];
};

pdk_meta_pool *pdk_meta_pool_new(void) {
    pdk_meta_pool *p = calloc(1, sizeof *p);
    if (p && !(p->slots = calloc(p->cap = 1024, sizeof *p->slots))) p = (free(p), NULL);
    return p;
}

void pdk_meta_pool_free(pdk_meta_pool *p) {
    if (!p) return;
    for (size_t i = 0; i < p->cap; i++) pdckpt_value_free(p->slots[i].v);
    pdckpt_value_free(p->none);
    pdckpt_value_free(p->bools[0]);
    pdckpt_value_free(p->bools[1]);
    free(p->slots);
    free(p);
}

/* FNV-1a over `n` bytes, continuing `h`; never 0. */
static uint64_t mix(uint64_t h, const void *data, size_t n) {
    const uint8_t *b = data;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * UINT64_C(1099511628211);
    return h ? h : 1;
}

/* A leaf's content: kind, then a string's bytes or the ints. */
typedef struct leaf {
    pdckpt_kind    kind;
    const char    *s;
    size_t         len; /* a string's bytes, or the ints' count */
    const int64_t *ints;
} leaf;

static uint64_t leaf_hash(const leaf *l) {
    uint64_t h = mix(UINT64_C(14695981039346656037), &l->kind, sizeof l->kind);
    return l->s ? mix(h, l->s, l->len) : mix(h, l->ints, l->len * sizeof *l->ints);
}

static bool leaf_is(const leaf *l, const pdckpt_value *v) {
    if (pdckpt_value_kind(v) != l->kind) return false;
    if (l->s) {
        size_t      n = 0;
        const char *s = pdckpt_value_get_string(v, &n);
        return n == l->len && memcmp(s, l->s, n) == 0;
    }
    if (l->kind == PDCKPT_KIND_INT) {
        int64_t x = 0;
        return pdckpt_value_get_int(v, &x) && x == l->ints[0];
    }
    if (pdckpt_value_len(v) != l->len) return false;
    for (size_t i = 0; i < l->len; i++) {
        int64_t x = 0;
        if (!pdckpt_value_get_int(pdckpt_value_at(v, i), &x) || x != l->ints[i]) return false;
    }
    return true;
}

static bool grow(pdk_meta_pool *p) {
    slot *old = p->slots, *s = calloc(p->cap * 2, sizeof *s);
    if (!s) return false;
    size_t cap = p->cap;
    p->slots = s, p->cap = cap * 2;
    for (size_t i = 0; i < cap; i++) {
        if (!old[i].v) continue;
        size_t at = old[i].hash & (p->cap - 1);
        while (s[at].v) at = (at + 1) & (p->cap - 1);
        s[at] = old[i];
    }
    free(old);
    return true;
}

static pdckpt_value *make(pdk_meta_pool *p, const leaf *l) {
    if (l->s) return pdckpt_value_new_string(NULL, l->s, l->len);
    if (l->kind == PDCKPT_KIND_INT) return pdckpt_value_new_int(NULL, l->ints[0]);
    pdckpt_value *t = pdckpt_value_new_container(NULL, PDCKPT_KIND_TUPLE);
    for (size_t i = 0; t && i < l->len; i++)
        if (pdckpt_value_append(t, pdk_meta_pool_int(p, l->ints[i]), NULL) != PDCKPT_OK)
            t = (pdckpt_value_free(t), NULL);
    return t;
}

/* A new reference to the pool's leaf of that content, NULL when out of memory. */
static pdckpt_value *intern(pdk_meta_pool *p, const leaf *l) {
    if (!p) return NULL;
    uint64_t h = leaf_hash(l);
    size_t   at = h & (p->cap - 1);
    for (; p->slots[at].v; at = (at + 1) & (p->cap - 1))
        if (p->slots[at].hash == h && leaf_is(l, p->slots[at].v))
            return pdckpt_value_retain(p->slots[at].v);
    if (2 * (p->len + 1) > p->cap) {
        if (!grow(p)) return NULL;
        return intern(p, l);
    }
    pdckpt_value *v = make(p, l);
    if (!v) return NULL;
    p->slots[at] = (slot){h, v};
    p->len++;
    return pdckpt_value_retain(v);
}

pdckpt_value *pdk_meta_pool_str(pdk_meta_pool *p, const char *s) {
    leaf l = {PDCKPT_KIND_STRING, s, strlen(s), NULL};
    return intern(p, &l);
}

pdckpt_value *pdk_meta_pool_int(pdk_meta_pool *p, int64_t v) {
    leaf l = {PDCKPT_KIND_INT, NULL, 1, &v};
    return intern(p, &l);
}

pdckpt_value *pdk_meta_pool_ints(pdk_meta_pool *p, int32_t n, const int64_t *v) {
    leaf l = {PDCKPT_KIND_TUPLE, NULL, (size_t)n, v};
    return intern(p, &l);
}

static pdckpt_value *once(pdckpt_value **at, pdckpt_value *made) {
    if (!*at)
        *at = made;
    else
        pdckpt_value_free(made);
    return pdckpt_value_retain(*at);
}

pdckpt_value *pdk_meta_pool_none(pdk_meta_pool *p) {
    return p->none ? pdckpt_value_retain(p->none) : once(&p->none, pdckpt_value_new_none(NULL));
}

pdckpt_value *pdk_meta_pool_bool(pdk_meta_pool *p, bool b) {
    return p->bools[b] ? pdckpt_value_retain(p->bools[b])
                       : once(&p->bools[b], pdckpt_value_new_bool(NULL, b));
}
