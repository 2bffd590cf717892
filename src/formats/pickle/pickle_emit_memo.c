/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_emit_memo.c — the writer's memo: identity key -> memo index (spec pickle §1.10,
 * "Memo keys are identities").  Open addressing with linear probing, kept at most half full.
 * Keys hold pointers into the tree being saved (or static text), which outlives the save, so
 * nothing is copied.  A small direct-mapped cache in front answers the keys every tensor asks
 * for again (numpy's globals, its dtypes, b'b', literal strs) by pointer identity, which implies
 * the table's text equality: a W2 save asks four such keys per tensor, and each XXH3 hash and
 * probe of the table cost more than the rest of the lookup.
 */
#include "pickle_emit.h"

#include <string.h>
#include <xxhash.h>

typedef struct memo_entry {
    pdk_pkl_key key;
    uint64_t    hash;
    uint64_t    index;
    bool        used;
} memo_entry;

#define HOT_SLOTS 16

struct pdk_memo {
    const pdckpt_allocator *alloc;
    memo_entry             *slots;
    size_t                  n_slots; /* power of two */
    size_t                  n_used;
    memo_entry              hot[HOT_SLOTS]; /* the cache: key and index as in the table */
};

pdk_memo *pdk_memo_new(const pdckpt_allocator *a) {
    pdk_memo *m = pdk_calloc(a, 1, sizeof *m);
    if (!m) return NULL;
    m->alloc = a;
    m->n_slots = 256;
    m->slots = pdk_calloc(a, m->n_slots, sizeof *m->slots);
    if (!m->slots) {
        pdk_free(a, m, sizeof *m);
        return NULL;
    }
    return m;
}

void pdk_memo_free(pdk_memo *m) {
    if (!m) return;
    pdk_free(m->alloc, m->slots, m->n_slots * sizeof *m->slots);
    pdk_free(m->alloc, m, sizeof *m);
}

/* Seeded per process (table_hash.c): a converted file's names are memo keys, and XXH3's default
 * seed is public, so names crafted to collide could otherwise make a save quadratic. */
static uint64_t key_hash(const pdk_pkl_key *k) {
    uint64_t h = XXH3_64bits_withSeed(&k->aux, sizeof k->aux, pdk_hash_seed() + (uint64_t)k->kind);
    switch (k->kind) {
    case PDK_KEY_PTR: return XXH3_64bits_withSeed(&k->ptr, sizeof k->ptr, h);
    case PDK_KEY_STR:
    case PDK_KEY_ROOTKEY: return XXH3_64bits_withSeed(k->ptr, k->len, h);
    case PDK_KEY_GLOBAL:
        h = XXH3_64bits_withSeed(k->ptr, k->len, h);
        return XXH3_64bits_withSeed(k->ptr2, k->len2, h + 1);
    default: return h;
    }
}

static bool key_equal(const pdk_pkl_key *a, const pdk_pkl_key *b) {
    if (a->kind != b->kind || a->aux != b->aux) return false;
    switch (a->kind) {
    case PDK_KEY_PTR: return a->ptr == b->ptr;
    case PDK_KEY_STR:
    case PDK_KEY_ROOTKEY: return a->len == b->len && memcmp(a->ptr, b->ptr, a->len) == 0;
    case PDK_KEY_GLOBAL:
        return a->len == b->len && a->len2 == b->len2 && memcmp(a->ptr, b->ptr, a->len) == 0 &&
               memcmp(a->ptr2, b->ptr2, a->len2) == 0;
    default: return true;
    }
}

static memo_entry *probe(memo_entry *slots, size_t n_slots, const pdk_pkl_key *key, uint64_t hash) {
    size_t mask = n_slots - 1;
    for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
        memo_entry *e = &slots[i];
        if (!e->used || (e->hash == hash && key_equal(&e->key, key))) return e;
    }
}

/* Only keys that come back again and again are cached (not tree nodes nor state-dict keys). */
static memo_entry *hot_slot(const pdk_memo *m, const pdk_pkl_key *k) {
    switch (k->kind) {
    case PDK_KEY_STR:
    case PDK_KEY_CHAR:
    case PDK_KEY_ICHAR:
    case PDK_KEY_BYTE:
    case PDK_KEY_GLOBAL:
    case PDK_KEY_DTYPE: break;
    default: return NULL;
    }
    uint64_t h = ((uint64_t)(uintptr_t)k->ptr >> 3) ^ ((uint64_t)(uintptr_t)k->ptr2 >> 5) ^
                 (k->aux * 0x9E3779B97F4A7C15ull) ^ (uint64_t)k->kind;
    h ^= h >> 29;
    return (memo_entry *)&m->hot[h % HOT_SLOTS];
}

static bool same_key(const pdk_pkl_key *a, const pdk_pkl_key *b) {
    return a->kind == b->kind && a->ptr == b->ptr && a->len == b->len && a->ptr2 == b->ptr2 &&
           a->len2 == b->len2 && a->aux == b->aux;
}

bool pdk_memo_find(const pdk_memo *m, const pdk_pkl_key *key, uint64_t *index) {
    if (key->kind == PDK_KEY_FRESH) return false;
    memo_entry *hot = hot_slot(m, key);
    if (hot && hot->used && same_key(&hot->key, key)) {
        *index = hot->index;
        return true;
    }
    uint64_t          hash = key_hash(key);
    const memo_entry *e = probe(m->slots, m->n_slots, key, hash);
    if (!e->used) return false;
    if (hot) *hot = (memo_entry){*key, hash, e->index, true};
    *index = e->index;
    return true;
}

static pdckpt_status grow(pdk_memo *m, pdckpt_error *err) {
    if (m->n_slots > SIZE_MAX / 2 / sizeof(memo_entry)) return pdk_fail_nomem(err, "pickle memo");
    size_t      n = m->n_slots * 2;
    memo_entry *slots = pdk_calloc(m->alloc, n, sizeof *slots);
    if (!slots) return pdk_fail_nomem(err, "pickle memo");
    for (size_t i = 0; i < m->n_slots; i++)
        if (m->slots[i].used) *probe(slots, n, &m->slots[i].key, m->slots[i].hash) = m->slots[i];
    pdk_free(m->alloc, m->slots, m->n_slots * sizeof *m->slots);
    m->slots = slots;
    m->n_slots = n;
    return PDCKPT_OK;
}

pdckpt_status pdk_memo_put(pdk_memo *m, const pdk_pkl_key *key, uint64_t index, pdckpt_error *err) {
    if (key->kind == PDK_KEY_FRESH) return PDCKPT_OK;
    if ((m->n_used + 1) * 2 > m->n_slots) PDK_TRY(grow(m, err));
    uint64_t    hash = key_hash(key);
    memo_entry *e = probe(m->slots, m->n_slots, key, hash);
    if (e->used) /* a key given a new index: no cached copy may keep the old one */
        memset(m->hot, 0, sizeof m->hot);
    else
        m->n_used++;
    e->key = *key;
    e->hash = hash;
    e->index = index;
    e->used = true;
    memo_entry *hot = hot_slot(m, key);
    if (hot) *hot = *e;
    return PDCKPT_OK;
}
