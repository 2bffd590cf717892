/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_merge.c — the gather behind paddle.distributed.save's gather_to (spec §4), done so that
 * only the data that ends up in a written file moves, and only to the ranks that write it.
 * Every rank describes its state as a skeleton (the tree with tensors as references, plus each
 * tensor's dtype/shape/name/LoD: small metadata that every rank gathers); from the same
 * skeletons every rank computes the same merge — for each top-level key the highest rank that
 * has it wins (Python dict.update over ranks in order), "master_weights" merged key by key and
 * "LR_Scheduler" taken from the writing rank — and so the same transfer list.  Writing ranks
 * decode the winning subtrees into the merged tree, allocating only the tensors they receive;
 * their own tensors are borrowed, not copied.  pdk_merge_finish then gives the tree the shape
 * Paddle's _gather_state_dict gives it (spec §4).
 */
#include "pdk_distcp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SK_MAGIC       UINT32_C(0x4b534450) /* "PDSK" */
#define MASTER_WEIGHTS "master_weights"
#define LR_SCHEDULER   "LR_Scheduler"

/* ---- this rank's skeleton ---- */

static pdckpt_status put_subtree(const pdckpt_value *v, pdk_blob *body, pdk_tensor_list *tl,
                                 pdckpt_error *err) {
    pdk_blob      sub = {0};
    size_t        before = tl->len;
    pdckpt_status st = pdk_codec_encode(v, &sub, tl, err);
    if (st == PDCKPT_OK) {
        pdk_blob_u64(body, sub.len);
        pdk_blob_put(body, sub.data, sub.len);
        pdk_blob_u64(body, tl->len - before);
    }
    pdk_blob_free(&sub);
    return st;
}

static pdckpt_status put_key(const pdckpt_value *key, pdk_blob *body, const char **k, size_t *len,
                             pdckpt_error *err) {
    *k = pdckpt_value_get_string(key, len);
    if (!*k || pdckpt_value_kind(key) != PDCKPT_KIND_STRING || memchr(*k, '\0', *len))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "gathered states need string keys (without NUL) at the top level "
                        "and in master_weights");
    pdk_blob_str(body, *k, *len);
    return PDCKPT_OK;
}

static pdckpt_status put_entry(const pdckpt_value *key, const pdckpt_value *val, bool opt,
                               pdk_blob *body, pdk_tensor_list *tl, pdckpt_error *err) {
    const char *k;
    size_t      len;
    PDK_TRY(put_key(key, body, &k, &len, err));
    bool merged = opt && len == strlen(MASTER_WEIGHTS) && memcmp(k, MASTER_WEIGHTS, len) == 0 &&
                  pdckpt_value_kind(val) == PDCKPT_KIND_DICT;
    pdk_blob_u8(body, merged);
    if (!merged) return put_subtree(val, body, tl, err);
    pdk_blob_u64(body, pdckpt_value_len(val));
    for (size_t i = 0; i < pdckpt_value_len(val); i++) {
        PDK_TRY(put_key(pdckpt_dict_key_at(val, i), body, &k, &len, err));
        PDK_TRY(put_subtree(pdckpt_value_at(val, i), body, tl, err));
    }
    return PDCKPT_OK;
}

pdckpt_status pdk_skel_encode(const pdckpt_value *state, bool opt, pdk_blob *out,
                              pdk_tensor_list *tl, pdckpt_error *err) {
    pdk_blob body = {0};
    bool     dict = pdckpt_value_kind(state) == PDCKPT_KIND_DICT;
    pdk_blob_u8(&body, dict);
    pdckpt_status st = PDCKPT_OK;
    if (!dict) {
        st = put_subtree(state, &body, tl, err);
    } else {
        pdk_blob_u64(&body, pdckpt_value_len(state));
        for (size_t i = 0; i < pdckpt_value_len(state) && st == PDCKPT_OK; i++)
            st = put_entry(pdckpt_dict_key_at(state, i), pdckpt_value_at(state, i), opt, &body, tl,
                           err);
    }
    pdk_blob_u32(out, SK_MAGIC);
    pdk_blob_u64(out, tl->len);
    for (size_t i = 0; i < tl->len && st == PDCKPT_OK; i++) {
        pdckpt_tensor_view v;
        pdckpt_tensor_get(tl->items[i], &v);
        pdk_codec_put_desc(out, &v);
    }
    pdk_blob_put(out, body.data, body.len);
    pdk_blob_free(&body);
    if (st == PDCKPT_OK) st = pdk_blob_check(out, err, "the state description");
    return st;
}

/* ---- reading skeletons (every rank reads every rank's) ---- */

static pdckpt_status get_subtree(pdk_rd *r, pdk_skel_entry *e, uint64_t *next) {
    uint64_t len;
    PDK_TRY(pdk_rd_count(r, &len, 1, "a subtree"));
    e->tree = r->p + r->pos;
    e->tree_len = (size_t)len;
    r->pos += (size_t)len;
    PDK_TRY(pdk_rd_u64(r, &e->count, "a tensor count"));
    e->first = *next;
    if (e->count > UINT64_MAX - *next) return pdk_rd_fail(r, "tensor count overflows");
    *next += e->count;
    return PDCKPT_OK;
}

static pdckpt_status new_entry(pdk_skel *sk, int32_t parent, pdk_skel_entry **out,
                               pdckpt_error *err) {
    if (sk->n_entries == sk->cap_entries) {
        size_t          cap = sk->cap_entries ? sk->cap_entries * 2 : 16;
        pdk_skel_entry *grown = realloc(sk->entries, cap * sizeof *grown);
        if (!grown) return pdk_fail_nomem(err, "state description");
        sk->entries = grown;
        sk->cap_entries = cap;
    }
    *out = &sk->entries[sk->n_entries++];
    memset(*out, 0, sizeof **out);
    (*out)->parent = parent;
    return PDCKPT_OK;
}

static pdckpt_status add_entry(pdk_skel *sk, pdk_rd *r, int32_t parent, pdk_skel_entry **out) {
    PDK_TRY(new_entry(sk, parent, out, r->err));
    PDK_TRY(pdk_rd_str(r, &(*out)->key, &(*out)->key_len, "a key"));
    if (memchr((*out)->key, '\0', (*out)->key_len))
        return pdk_rd_fail(r, "expected a key without NUL");
    return PDCKPT_OK;
}

static pdckpt_status get_entry(pdk_skel *sk, pdk_rd *r, uint64_t *next) {
    pdk_skel_entry *e;
    PDK_TRY(add_entry(sk, r, -1, &e));
    uint8_t merged;
    PDK_TRY(pdk_rd_u8(r, &merged, "a merge flag"));
    if (!merged) return get_subtree(r, e, next);
    size_t index = sk->n_entries - 1;
    sk->entries[index].merged = true;
    uint64_t n;
    PDK_TRY(pdk_rd_count(r, &n, 17, "master_weights entries"));
    for (uint64_t i = 0; i < n; i++) {
        PDK_TRY(add_entry(sk, r, (int32_t)index, &e));
        PDK_TRY(get_subtree(r, e, next));
    }
    return PDCKPT_OK;
}

static pdckpt_status get_body(pdk_skel *sk, pdk_rd *r) {
    uint8_t  dict;
    uint64_t next = 0;
    PDK_TRY(pdk_rd_u8(r, &dict, "the root kind"));
    sk->is_dict = dict != 0;
    if (!sk->is_dict) {
        pdk_skel_entry *e;
        PDK_TRY(new_entry(sk, -1, &e, r->err));
        PDK_TRY(get_subtree(r, e, &next));
    } else {
        uint64_t n;
        PDK_TRY(pdk_rd_count(r, &n, 10, "top-level entries"));
        for (uint64_t i = 0; i < n; i++) PDK_TRY(get_entry(sk, r, &next));
    }
    if (next != sk->n_tensors)
        return pdk_rd_fail(r, "expected %llu tensor references, found %llu",
                           (unsigned long long)sk->n_tensors, (unsigned long long)next);
    if (r->pos != r->len) return pdk_rd_fail(r, "unexpected bytes after the state description");
    return PDCKPT_OK;
}

pdckpt_status pdk_skel_parse(const uint8_t *data, size_t len, int rank, pdk_skel *sk,
                             pdckpt_error *err) {
    memset(sk, 0, sizeof *sk);
    snprintf(sk->source, sizeof sk->source, "rank %d's state description", rank);
    pdk_rd   r = {data, len, 0, sk->source, err};
    uint32_t magic;
    PDK_TRY(pdk_rd_u32(&r, &magic, "magic"));
    if (magic != SK_MAGIC) return pdk_rd_fail(&r, "expected the PDSK magic");
    PDK_TRY(pdk_rd_count(&r, &sk->n_tensors, 11, "tensor descriptions"));
    sk->descs = calloc(sk->n_tensors ? (size_t)sk->n_tensors : 1, sizeof *sk->descs);
    if (!sk->descs) return pdk_fail_nomem(err, "tensor descriptions");
    for (uint64_t i = 0; i < sk->n_tensors; i++) PDK_TRY(pdk_codec_get_desc(&r, &sk->descs[i]));
    return get_body(sk, &r);
}

void pdk_skel_free(pdk_skel *sk) {
    for (uint64_t i = 0; sk->descs && i < sk->n_tensors; i++) pdk_tensor_desc_free(&sk->descs[i]);
    free(sk->descs);
    free(sk->entries);
    memset(sk, 0, sizeof *sk);
}

/* ---- the merge plan: which rank's value wins each key ---- */

typedef struct kslot {
    const char *key;
    size_t      len;
    int32_t     level;
    int         max_rank;
} kslot;

static uint64_t key_hash(int32_t level, const char *key, size_t len) {
    return pdk_table_hash(pdk_table_hash(0, &level, sizeof level), key, len);
}

static kslot *slot_of(pdk_merge_plan *p, int32_t level, const char *key, size_t len) {
    size_t mask = p->n_slots - 1;
    for (size_t i = (size_t)key_hash(level, key, len) & mask;; i = (i + 1) & mask) {
        kslot *s = &p->slots[i];
        if (!s->key || (s->level == level && s->len == len && memcmp(s->key, key, len) == 0))
            return s;
    }
}

static pdckpt_status check_entry(pdk_merge_plan *p, int rank, const pdk_skel_entry *e) {
    kslot *s = slot_of(p, e->parent < 0 ? 0 : 1, e->key, e->key_len);
    bool   mw = e->parent < 0 && e->key_len == strlen(MASTER_WEIGHTS) &&
              memcmp(e->key, MASTER_WEIGHTS, e->key_len) == 0;
    if (mw && p->opt && s->key && p->mw_merged != e->merged)
        return pdk_fail(p->err, PDCKPT_ERR_MISMATCH, NULL, -1,
                        "master_weights is a dict on some ranks and not on rank %d", rank);
    if (mw) p->mw_merged = e->merged;
    s->key = e->key;
    s->len = e->key_len;
    s->level = e->parent < 0 ? 0 : 1;
    s->max_rank = rank; /* ranks are visited in order: the last one is the highest */
    return PDCKPT_OK;
}

/* Paddle's _same_keys: list(state_dict.keys()) equal on every rank (top level, in order). */
static bool same_top_keys(const pdk_skel *a, const pdk_skel *b) {
    size_t i = 0, j = 0;
    for (;; i++, j++) {
        while (i < a->n_entries && a->entries[i].parent >= 0) i++;
        while (j < b->n_entries && b->entries[j].parent >= 0) j++;
        if (i == a->n_entries || j == b->n_entries) return i == a->n_entries && j == b->n_entries;
        if (a->entries[i].key_len != b->entries[j].key_len ||
            memcmp(a->entries[i].key, b->entries[j].key, a->entries[i].key_len) != 0)
            return false;
    }
}

pdckpt_status pdk_merge_plan_build(pdk_merge_plan *p, pdckpt_error *err) {
    size_t total = 0;
    p->err = err;
    for (int r = 0; r < p->n_ranks; r++) {
        if (!p->skels[r].is_dict)
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                            "gather_to merges dict states, but rank %d's state is not a dict", r);
        total += p->skels[r].n_entries;
    }
    p->n_slots = 16;
    while (p->n_slots < total * 2) p->n_slots *= 2;
    p->slots = calloc(p->n_slots, sizeof *p->slots);
    if (!p->slots) return pdk_fail_nomem(err, "the merge plan");
    for (int r = 0; r < p->n_ranks; r++)
        for (size_t i = 0; i < p->skels[r].n_entries; i++)
            PDK_TRY(check_entry(p, r, &p->skels[r].entries[i]));
    p->same_keys = p->opt;
    for (int r = 1; r < p->n_ranks && p->same_keys; r++)
        p->same_keys = same_top_keys(&p->skels[0], &p->skels[r]);
    return PDCKPT_OK;
}

void pdk_merge_plan_free(pdk_merge_plan *p) {
    free(p->slots);
    p->slots = NULL;
}

static bool has_top_key(const pdk_skel *sk, const char *key) {
    for (size_t i = 0; i < sk->n_entries; i++)
        if (sk->entries[i].parent < 0 && sk->entries[i].key_len == strlen(key) &&
            memcmp(sk->entries[i].key, key, sk->entries[i].key_len) == 0)
            return true;
    return false;
}

int pdk_merge_winner(const pdk_merge_plan *p, int target, const pdk_skel_entry *e) {
    if (p->same_keys) return target; /* paddle.distributed.save writes the local state */
    int32_t level = e->parent < 0 ? 0 : 1;
    if (p->opt && level == 0 && e->key_len == strlen(LR_SCHEDULER) &&
        memcmp(e->key, LR_SCHEDULER, e->key_len) == 0 &&
        has_top_key(&p->skels[target], LR_SCHEDULER))
        return target;
    return slot_of((pdk_merge_plan *)p, level, e->key, e->key_len)->max_rank;
}

/* ---- the merged tree as Paddle's _gather_state_dict leaves it ---- */

/* Moves dict[key] to the end (Python: d[key] = d.pop(key)). */
static pdckpt_status move_last(pdckpt_value *dict, const char *key, pdckpt_error *err) {
    pdckpt_value *v = pdckpt_dict_get_mut(dict, key);
    if (!v) return PDCKPT_OK;
    pdckpt_value_retain(v);
    pdckpt_dict_remove(dict, key);
    return pdckpt_dict_set(dict, key, v, err);
}

/* The gather hands tensors back as paddle.to_tensor(array) with .name = key. */
static pdckpt_status name_by_key(pdckpt_value *dict, pdckpt_error *err) {
    for (size_t i = 0; dict && i < pdckpt_value_len(dict); i++) {
        const char   *key = pdckpt_value_get_string(pdckpt_dict_key_at(dict, i), NULL);
        pdckpt_value *v = pdckpt_value_at_mut(dict, i);
        if (key && pdckpt_value_kind(v) == PDCKPT_KIND_TENSOR)
            PDK_TRY(pdckpt_tensor_set_name(v, key, err));
    }
    return PDCKPT_OK;
}

/* The name table of the merged state lists every merged top-level tensor -- the union of the
 * ranks' tables, not the last rank's -- as paddle.save would build it from the gathered dict. */
static pdckpt_status rebuild_name_table(pdckpt_value *merged, const pdckpt_allocator *alloc,
                                        pdckpt_error *err) {
    if (!pdckpt_dict_get(merged, PDCKPT_NAME_TABLE_KEY)) return PDCKPT_OK;
    pdckpt_value *table = pdckpt_value_new_container(alloc, PDCKPT_KIND_DICT);
    if (!table) return pdk_fail_nomem(err, "the name table");
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 0; i < pdckpt_value_len(merged) && st == PDCKPT_OK; i++) {
        const char        *key = pdckpt_value_get_string(pdckpt_dict_key_at(merged, i), NULL);
        pdckpt_tensor_view t;
        if (!key || !pdckpt_tensor_get(pdckpt_value_at(merged, i), &t)) continue;
        pdckpt_value *name = pdckpt_value_new_string(alloc, t.name ? t.name : key, SIZE_MAX);
        st = name ? pdckpt_dict_set(table, key, name, err) : pdk_fail_nomem(err, "a name");
    }
    if (st == PDCKPT_OK) return pdckpt_dict_set(merged, PDCKPT_NAME_TABLE_KEY, table, err);
    pdckpt_value_free(table);
    return st;
}

/* The writer's own master_weights, in its order: the others' keys were only placeholders. */
static pdckpt_status own_master_weights(const pdckpt_value *local, pdckpt_value *merged,
                                        const pdckpt_allocator *alloc, pdckpt_error *err) {
    const pdckpt_value *own = pdckpt_dict_get(local, MASTER_WEIGHTS);
    pdckpt_value       *mw = pdckpt_dict_get_mut(merged, MASTER_WEIGHTS);
    if (pdckpt_value_kind(own) != PDCKPT_KIND_DICT || pdckpt_value_kind(mw) != PDCKPT_KIND_DICT)
        return PDCKPT_OK;
    pdckpt_value *kept = pdckpt_value_new_container(alloc, PDCKPT_KIND_DICT);
    if (!kept) return pdk_fail_nomem(err, "master_weights");
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 0; i < pdckpt_value_len(own) && st == PDCKPT_OK; i++) {
        const char   *key = pdckpt_value_get_string(pdckpt_dict_key_at(own, i), NULL);
        pdckpt_value *v = key ? pdckpt_dict_get_mut(mw, key) : NULL;
        if (v) st = pdckpt_dict_set(kept, key, pdckpt_value_retain(v), err);
    }
    if (st == PDCKPT_OK) return pdckpt_dict_set(merged, MASTER_WEIGHTS, kept, err);
    pdckpt_value_free(kept);
    return st;
}

pdckpt_status pdk_merge_finish(const pdk_merge_plan *p, const pdckpt_value *local,
                               pdckpt_value *merged, const pdckpt_allocator *alloc,
                               pdckpt_error *err) {
    if (p->same_keys) {
        PDK_TRY(own_master_weights(local, merged, alloc, err));
    } else if (p->opt) { /* master_weights and LR_Scheduler are popped, then put back last */
        PDK_TRY(name_by_key(merged, err));
        PDK_TRY(name_by_key(pdckpt_dict_get_mut(merged, MASTER_WEIGHTS), err));
        PDK_TRY(move_last(merged, MASTER_WEIGHTS, err));
        if (pdckpt_dict_get(local, LR_SCHEDULER)) /* the writer's own, or none at all */
            PDK_TRY(move_last(merged, LR_SCHEDULER, err));
        else
            pdckpt_dict_remove(merged, LR_SCHEDULER);
    }
    return rebuild_name_table(merged, alloc, err);
}
