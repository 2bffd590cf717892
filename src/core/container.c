/* SPDX-License-Identifier: Apache-2.0 */
/*
 * container.c — lists, tuples, sets and ordered dicts: append, index, Python-style dict set
 * (replace in place), removal, and a hash index over every key (strings, numbers, tuples, objects
 * such as big ints: pickled dicts keyed by ids are common) built once a dict has DICT_INDEX_MIN
 * entries.  The hash is seeded per dict, from the process's secret seed (table_hash.c), so
 * crafted keys cannot force collisions.
 */
#include "pdk_value.h"

#include <string.h>
#include <xxhash.h>

#define DICT_INDEX_MIN 8
/* Tuples and objects deeper than this hash by kind alone: equality still decides, and a
 * caller-built key nested a million deep cannot exhaust the stack. */
#define KEY_HASH_DEPTH 16
/* Lists, sets and dicts (inside object keys) hash at most this many leading items, and no key
 * hashes more than KEY_HASH_NODES nested values: a key's hash costs a bounded amount of work. */
#define KEY_HASH_WIDTH 16
#define KEY_HASH_NODES 256

/* A slot holds the item index + 1 in its low SLOT_ITEM_BITS and the top bits of the key's hash
 * above them (0 = empty): a probe rejects other keys by that tag without following the key
 * pointer into the heap, which is most of a lookup's cost in a dict of 100,000 names. */
#define SLOT_ITEM_BITS 40
#define SLOT_ITEM_MASK (((uint64_t)1 << SLOT_ITEM_BITS) - 1)

struct pdk_dict_index {
    uint64_t *slots;
    size_t    n_slots;
    uint64_t  seed;
};

static bool slot_tag_is(uint64_t slot, uint64_t hash) {
    return ((slot ^ hash) >> SLOT_ITEM_BITS) == 0;
}

static size_t slot_item(uint64_t slot) {
    return (size_t)(slot & SLOT_ITEM_MASK) - 1;
}

static bool is_container(const pdckpt_value *v) {
    return v && (v->kind == PDCKPT_KIND_LIST || v->kind == PDCKPT_KIND_TUPLE ||
                 v->kind == PDCKPT_KIND_SET || v->kind == PDCKPT_KIND_DICT);
}

size_t pdckpt_value_len(const pdckpt_value *value) {
    return is_container(value) ? value->u.c.len : 0;
}

const pdckpt_value *pdckpt_value_at(const pdckpt_value *value, size_t i) {
    return is_container(value) && i < value->u.c.len ? value->u.c.items[i] : NULL;
}

pdckpt_value *pdckpt_value_at_mut(pdckpt_value *value, size_t i) {
    return is_container(value) && i < value->u.c.len ? value->u.c.items[i] : NULL;
}

const pdckpt_value *pdckpt_dict_key_at(const pdckpt_value *dict, size_t i) {
    if (!dict || dict->kind != PDCKPT_KIND_DICT || i >= dict->u.c.len) return NULL;
    return dict->u.c.keys[i];
}

/* Grows items (and keys, for dicts) together so both arrays always share one capacity. */
static pdckpt_status reserve(pdckpt_value *v, size_t need, pdckpt_error *err) {
    pdk_container *c = &v->u.c;
    if (need <= c->cap) return PDCKPT_OK;
    size_t new_cap = c->cap ? c->cap : 4;
    while (new_cap < need) {
        if (new_cap > SIZE_MAX / (2 * sizeof(void *))) return pdk_fail_nomem(err, "container");
        new_cap *= 2;
    }
    bool           dict = v->kind == PDCKPT_KIND_DICT;
    pdckpt_value **items = pdk_alloc(v->alloc, new_cap * sizeof *items);
    pdckpt_value **keys = dict ? pdk_alloc(v->alloc, new_cap * sizeof *keys) : NULL;
    if (!items || (dict && !keys)) {
        pdk_free(v->alloc, items, new_cap * sizeof *items);
        pdk_free(v->alloc, keys, new_cap * sizeof *keys);
        return pdk_fail_nomem(err, "container");
    }
    if (c->len) {
        memcpy(items, c->items, c->len * sizeof *items);
        if (dict) memcpy(keys, c->keys, c->len * sizeof *keys);
    }
    pdk_free(v->alloc, c->items, c->cap * sizeof *c->items);
    pdk_free(v->alloc, c->keys, c->cap * sizeof *c->keys);
    c->items = items;
    c->keys = keys;
    c->cap = new_cap;
    return PDCKPT_OK;
}

pdckpt_status pdckpt_value_append(pdckpt_value *container, pdckpt_value *item, pdckpt_error *err) {
    pdckpt_status st = PDCKPT_OK;
    if (!item || !container || container->kind == PDCKPT_KIND_DICT || !is_container(container))
        st = pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                      "append expects a list, tuple or set and a value");
    else if (container == item)
        st = pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "a container cannot contain itself");
    else
        st = reserve(container, container->u.c.len + 1, err);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(item);
        return st;
    }
    container->u.c.items[container->u.c.len++] = item;
    return PDCKPT_OK;
}

/* One None for every slot pdckpt_value_release_at empties: its own reference is never given
 * back, so it is never freed, and emptying a slot allocates nothing (the point is to free). */
static pdckpt_value released_slot = {.refs = 1, .kind = PDCKPT_KIND_NONE};

bool pdckpt_value_release_at(pdckpt_value *container, size_t i) {
    if (!is_container(container) || i >= container->u.c.len) return false;
    pdk_container *c = &container->u.c;
    pdckpt_value_free(c->items[i]);
    c->items[i] = pdckpt_value_retain(&released_slot);
    if (c->keys) {
        pdckpt_value_free(c->keys[i]);
        c->keys[i] = pdckpt_value_retain(&released_slot);
    }
    return true;
}

/* ---- string-key hash index ---- */

static uint64_t mix(uint64_t h, uint64_t word) {
    return XXH3_64bits_withSeed(&word, sizeof word, h);
}

/* Consistent with pdckpt_value_equal (kinds compared strictly): equal values hash equally.  A
 * string hashes as its bytes alone, so find_string_key can hash a C string without a value. */
typedef struct hash_budget {
    unsigned left; /* nested values still hashed */
    bool     cut;  /* some part of the key was not hashed */
} hash_budget;

static uint64_t hash_rec(const pdckpt_value *v, uint64_t seed, int depth, hash_budget *left) {
    uint64_t h = mix(seed, (uint64_t)v->kind);
    switch (v->kind) {
    case PDCKPT_KIND_STRING: return XXH3_64bits_withSeed(v->u.s.data, v->u.s.len, seed);
    case PDCKPT_KIND_BYTES: return XXH3_64bits_withSeed(v->u.s.data, v->u.s.len, h);
    case PDCKPT_KIND_INT: return mix(h, (uint64_t)v->u.i);
    case PDCKPT_KIND_BOOL: return mix(h, v->u.b);
    case PDCKPT_KIND_FLOAT: {
        uint64_t bits;
        memcpy(&bits, &v->u.f, sizeof bits);
        return mix(h, bits);
    }
    default: break;
    }
    if (depth >= KEY_HASH_DEPTH || left->left == 0) {
        left->cut = true;
        return h;
    }
    left->left--;
    if (v->kind == PDCKPT_KIND_TUPLE)
        for (size_t i = 0; i < v->u.c.len; i++)
            h = mix(h, hash_rec(v->u.c.items[i], seed, depth + 1, left));
    else if (v->kind == PDCKPT_KIND_OBJECT) {
        h = XXH3_64bits_withSeed(v->u.o->module, strlen(v->u.o->module), h);
        h = XXH3_64bits_withSeed(v->u.o->name, strlen(v->u.o->name), h);
        if (v->u.o->args) h = mix(h, hash_rec(v->u.o->args, seed, depth + 1, left));
        /* The state too: pickled dataclasses (Paddle's LocalTensorIndex keys of a sharded
         * checkpoint's metadata) differ only there, and would otherwise all collide. */
        if (v->u.o->state) h = mix(h, hash_rec(v->u.o->state, seed, depth + 1, left));
    } else if (is_container(v)) {
        h = mix(h, v->u.c.len);
        left->cut |= v->u.c.len > KEY_HASH_WIDTH;
        /* The first items in order (equality is ordered): enough to tell field dicts apart. */
        for (size_t i = 0; i < v->u.c.len && i < KEY_HASH_WIDTH; i++) {
            if (v->kind == PDCKPT_KIND_DICT)
                h = mix(h, hash_rec(v->u.c.keys[i], seed, depth + 1, left));
            h = mix(h, hash_rec(v->u.c.items[i], seed, depth + 1, left));
        }
    }
    return h;
}

static uint64_t value_hash(const pdckpt_value *v, uint64_t seed) {
    hash_budget left = {KEY_HASH_NODES, false};
    return hash_rec(v, seed, 0, &left);
}

bool pdk_key_hash_complete(const pdckpt_value *key) {
    hash_budget left = {KEY_HASH_NODES, false};
    hash_rec(key, 0, 0, &left);
    return !left.cut;
}

bool pdk_key_is_weak(const pdckpt_value *key) {
    pdckpt_kind k = pdckpt_value_kind(key);
    return (k == PDCKPT_KIND_TUPLE || k == PDCKPT_KIND_OBJECT) && !pdk_key_hash_complete(key);
}

void pdk_dict_index_free(const pdckpt_allocator *a, pdk_container *c) {
    if (!c->index) return;
    pdk_free(a, c->index->slots, c->index->n_slots * sizeof *c->index->slots);
    pdk_free(a, c->index, sizeof *c->index);
    c->index = NULL;
}

static void index_put(pdk_dict_index *ix, uint64_t h, size_t item) {
    size_t mask = ix->n_slots - 1;
    size_t slot = (size_t)h & mask;
    while (ix->slots[slot]) slot = (slot + 1) & mask;
    ix->slots[slot] = (h & ~SLOT_ITEM_MASK) | (uint64_t)(item + 1);
}

static void index_insert(pdk_dict_index *ix, const pdckpt_value *key, size_t item) {
    index_put(ix, value_hash(key, ix->seed), item);
}

/* (Re)builds the index with room for twice the current length; on NOMEM the dict simply stays
 * unindexed (lookups fall back to a scan), so this never fails the caller. */
static void index_build(pdckpt_value *dict) {
    pdk_container *c = &dict->u.c;
    pdk_dict_index_free(dict->alloc, c);
    size_t n_slots = 16;
    while (n_slots < c->len * 2 + 2) n_slots *= 2;
    pdk_dict_index *ix = pdk_alloc(dict->alloc, sizeof *ix);
    uint64_t       *slots = pdk_calloc(dict->alloc, n_slots, sizeof *slots);
    if (!ix || !slots) {
        pdk_free(dict->alloc, ix, sizeof *ix);
        pdk_free(dict->alloc, slots, n_slots * sizeof *slots);
        return;
    }
    ix->slots = slots;
    ix->n_slots = n_slots;
    ix->seed = pdk_hash_seed() ^ (uint64_t)(uintptr_t)dict * 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < c->len; i++) index_insert(ix, c->keys[i], i);
    c->index = ix;
}

static bool index_usable(pdckpt_value *dict) {
    pdk_container *c = &dict->u.c;
    if (c->len < DICT_INDEX_MIN || c->len >= SLOT_ITEM_MASK) return false;
    if (!c->index || c->index->n_slots < c->len * 2 + 2) index_build(dict);
    return c->index != NULL;
}

/* The key's hash under the dict's index, kept by a lookup for the insertion after it. */
typedef struct key_hash {
    uint64_t h;
    bool     known;
} key_hash;

/* Position of string key s[0..len) in the dict, or SIZE_MAX. */
static size_t find_string_key_h(const pdckpt_value *dict_const, const char *s, size_t len,
                                key_hash *kh) {
    pdckpt_value  *dict = (pdckpt_value *)dict_const; /* the index is a cache, not content */
    pdk_container *c = &dict->u.c;
    if (index_usable(dict)) {
        pdk_dict_index *ix = c->index;
        size_t          mask = ix->n_slots - 1;
        uint64_t        h = XXH3_64bits_withSeed(s, len, ix->seed);
        *kh = (key_hash){h, true};
        for (size_t slot = (size_t)h & mask; ix->slots[slot]; slot = (slot + 1) & mask) {
            if (!slot_tag_is(ix->slots[slot], h)) continue;
            size_t i = slot_item(ix->slots[slot]);
            if (pdk_value_is_string(c->keys[i], s, len)) return i;
        }
        return SIZE_MAX;
    }
    for (size_t i = 0; i < c->len; i++)
        if (pdk_value_is_string(c->keys[i], s, len)) return i;
    return SIZE_MAX;
}

static size_t find_string_key(const pdckpt_value *dict, const char *s, size_t len) {
    key_hash kh;
    return find_string_key_h(dict, s, len, &kh);
}

static size_t find_key(const pdckpt_value *dict_const, const pdckpt_value *key, key_hash *kh) {
    if (key->kind == PDCKPT_KIND_STRING)
        return find_string_key_h(dict_const, key->u.s.data, key->u.s.len, kh);
    pdckpt_value  *dict = (pdckpt_value *)dict_const; /* the index is a cache, not content */
    pdk_container *c = &dict->u.c;
    if (index_usable(dict)) {
        pdk_dict_index *ix = c->index;
        size_t          mask = ix->n_slots - 1;
        uint64_t        h = value_hash(key, ix->seed);
        *kh = (key_hash){h, true};
        for (size_t slot = (size_t)h & mask; ix->slots[slot]; slot = (slot + 1) & mask)
            if (slot_tag_is(ix->slots[slot], h) &&
                pdckpt_value_equal(c->keys[slot_item(ix->slots[slot])], key))
                return slot_item(ix->slots[slot]);
        return SIZE_MAX;
    }
    for (size_t i = 0; i < c->len; i++)
        if (pdckpt_value_equal(c->keys[i], key)) return i;
    return SIZE_MAX;
}

void pdk_dict_prefetch(const pdckpt_value *dict, const pdckpt_value *key) {
    if (!dict || dict->kind != PDCKPT_KIND_DICT || !dict->u.c.index || !key ||
        key->kind != PDCKPT_KIND_STRING)
        return;
    const pdk_dict_index *ix = dict->u.c.index;
    uint64_t              h = XXH3_64bits_withSeed(key->u.s.data, key->u.s.len, ix->seed);
    __builtin_prefetch(&ix->slots[(size_t)h & (ix->n_slots - 1)]);
}

size_t pdk_dict_find(const pdckpt_value *dict, const char *key, size_t len) {
    if (!dict || dict->kind != PDCKPT_KIND_DICT || !key) return SIZE_MAX;
    return find_string_key(dict, key, len);
}

const pdckpt_value *pdckpt_dict_get(const pdckpt_value *dict, const char *key) {
    if (!dict || dict->kind != PDCKPT_KIND_DICT || !key) return NULL;
    size_t i = find_string_key(dict, key, strlen(key));
    return i == SIZE_MAX ? NULL : dict->u.c.items[i];
}

pdckpt_value *pdckpt_dict_get_mut(pdckpt_value *dict, const char *key) {
    return (pdckpt_value *)pdckpt_dict_get(dict, key);
}

pdckpt_status pdckpt_dict_set_value(pdckpt_value *dict, pdckpt_value *key, pdckpt_value *value,
                                    pdckpt_error *err) {
    pdckpt_status st = PDCKPT_OK;
    if (!dict || dict->kind != PDCKPT_KIND_DICT || !key || !value)
        st = pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "dict set expects a dict, key and value");
    else if (dict == value || dict == key)
        st = pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "a dict cannot contain itself");
    if (st != PDCKPT_OK) goto fail;
    pdk_container *c = &dict->u.c;
    key_hash       kh = {0, false};
    size_t         at = find_key(dict, key, &kh);
    if (at != SIZE_MAX) { /* Python keeps the first key object and position */
        pdckpt_value_free(c->items[at]);
        c->items[at] = value;
        pdckpt_value_free(key);
        return PDCKPT_OK;
    }
    st = reserve(dict, c->len + 1, err);
    if (st != PDCKPT_OK) goto fail;
    c->keys[c->len] = key;
    c->items[c->len] = value;
    c->len++;
    if (c->index && c->index->n_slots < c->len * 2 + 2)
        pdk_dict_index_free(dict->alloc, c); /* rebuilt larger on the next lookup */
    else if (c->index && kh.known)
        index_put(c->index, kh.h, c->len - 1); /* the lookup's hash: the key is hashed once */
    else if (c->index)
        index_insert(c->index, key, c->len - 1);
    return PDCKPT_OK;
fail:
    pdckpt_value_free(key);
    pdckpt_value_free(value);
    return st;
}

pdckpt_status pdckpt_dict_set(pdckpt_value *dict, const char *key, pdckpt_value *value,
                              pdckpt_error *err) {
    if (!key) {
        pdckpt_value_free(value);
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "dict key is NULL");
    }
    pdckpt_value *k = pdckpt_value_new_string(dict ? dict->alloc : NULL, key, SIZE_MAX);
    if (!k) {
        pdckpt_value_free(value);
        return pdk_fail_nomem(err, "dict key");
    }
    return pdckpt_dict_set_value(dict, k, value, err);
}

bool pdckpt_dict_remove(pdckpt_value *dict, const char *key) {
    if (!dict || dict->kind != PDCKPT_KIND_DICT || !key) return false;
    pdk_container *c = &dict->u.c;
    size_t         at = find_string_key(dict, key, strlen(key));
    if (at == SIZE_MAX) return false;
    pdckpt_value_free(c->keys[at]);
    pdckpt_value_free(c->items[at]);
    memmove(c->keys + at, c->keys + at + 1, (c->len - at - 1) * sizeof *c->keys);
    memmove(c->items + at, c->items + at + 1, (c->len - at - 1) * sizeof *c->items);
    c->len--;
    pdk_dict_index_free(dict->alloc, c); /* positions moved; rebuilt on the next lookup */
    return true;
}

bool pdckpt_dict_is_ordered(const pdckpt_value *dict) {
    return dict && dict->kind == PDCKPT_KIND_DICT && dict->ordered;
}

bool pdckpt_dict_set_ordered(pdckpt_value *dict, bool ordered) {
    if (!dict || dict->kind != PDCKPT_KIND_DICT) return false;
    dict->ordered = ordered;
    return true;
}

bool pdk_dict_is_plain(const pdckpt_value *dict) {
    return dict && dict->kind == PDCKPT_KIND_DICT && dict->plain;
}

void pdk_dict_set_plain(pdckpt_value *dict, bool plain) {
    if (dict && dict->kind == PDCKPT_KIND_DICT) dict->plain = plain;
}
