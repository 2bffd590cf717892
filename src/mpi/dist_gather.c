/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_gather.c — runs the gather planned in dist_merge.c: gathers every rank's skeleton, builds
 * the merged tree on the writing ranks (their own tensors borrowed, received tensors allocated
 * once, exactly where the data will land), lists the transfers identically on every rank and
 * moves the bytes with dist_transfer.c.  Phases are separated by error agreement, so a failure
 * anywhere (a bad state, an allocation) stops every rank before any data moves.
 */
#include "dist_gather.h"

#include <stdlib.h>
#include <string.h>

#define MASTER_WEIGHTS "master_weights"

typedef struct gather_ctx {
    pdk_dist               *d;
    pdk_skel               *skels;
    pdk_merge_plan          plan;
    pdk_tensor_list         mine;
    void                 ***recv; /* recv[src][ordinal]: where a received tensor's bytes go */
    const pdckpt_allocator *alloc;
    pdk_stream             *stream; /* NULL: every received tensor is allocated */
} gather_ctx;

static uint8_t empty_marker;  /* recv entry of a received tensor with no bytes */
static uint8_t stream_marker; /* recv entry of a streamed tensor (a placeholder) */

static bool streamed(const gather_ctx *g, uint64_t n_bytes) {
    return g->stream && pdk_stream_takes(g->stream, n_bytes);
}

typedef struct ref_ctx {
    gather_ctx           *g;
    int                   src;
    const pdk_skel_entry *e;
} ref_ctx;

static pdckpt_value *make_ref(void *ctx, uint64_t o, pdckpt_error *err) {
    ref_ctx      *c = ctx;
    gather_ctx   *g = c->g;
    const char   *source = g->skels[c->src].source;
    pdckpt_value *t = NULL;
    if (o < c->e->first || o - c->e->first >= c->e->count) {
        pdk_fail(err, PDCKPT_ERR_FORMAT, source, -1, "tensor reference %llu outside its entry",
                 (unsigned long long)o);
        return NULL;
    }
    if (c->src == g->d->rank) {
        pdckpt_tensor_view v;
        pdckpt_tensor_get(g->mine.items[o], &v);
        return pdk_tensor_borrow(&v, g->alloc, &t, err) == PDCKPT_OK ? t : NULL;
    }
    if (g->recv[c->src][o]) {
        pdk_fail(err, PDCKPT_ERR_FORMAT, source, -1, "tensor %llu referenced twice",
                 (unsigned long long)o);
        return NULL;
    }
    const pdk_tensor_desc *desc = &g->skels[c->src].descs[o];
    if (streamed(g, desc->n_bytes)) {
        if (pdk_stream_placeholder(g->stream, c->src, o, desc, g->alloc, &t, err) != PDCKPT_OK)
            return NULL;
        g->recv[c->src][o] = &stream_marker;
        return t;
    }
    if (pdk_tensor_from_desc(desc, g->alloc, &t, err) != PDCKPT_OK) return NULL;
    g->recv[c->src][o] = desc->n_bytes ? pdckpt_tensor_data_mut(t) : &empty_marker;
    return t;
}

static pdckpt_status decode_entry(gather_ctx *g, int src, const pdk_skel_entry *e,
                                  pdckpt_value **out, pdckpt_error *err) {
    ref_ctx c = {g, src, e};
    pdk_rd  r = {e->tree, e->tree_len, 0, g->skels[src].source, err};
    PDK_TRY(pdk_codec_decode(&r, g->alloc, make_ref, &c, out));
    if (r.pos == r.len) return PDCKPT_OK;
    pdckpt_value_free(*out);
    *out = NULL;
    return pdk_rd_fail(&r, "unexpected bytes after a value");
}

/* dict[key] = the winner's value, or a placeholder holding the key's first position. */
static pdckpt_status place(gather_ctx *g, pdckpt_value *dict, int src, const pdk_skel_entry *e,
                           pdckpt_error *err) {
    char *key = malloc(e->key_len + 1);
    if (!key) return pdk_fail_nomem(err, "a key");
    memcpy(key, e->key, e->key_len);
    key[e->key_len] = '\0';
    pdckpt_status st = PDCKPT_OK;
    pdckpt_value *val = NULL;
    if (pdk_merge_winner(&g->plan, g->d->rank, e) == src) {
        st = decode_entry(g, src, e, &val, err);
        if (st == PDCKPT_OK) st = pdckpt_dict_set(dict, key, val, err);
    } else if (!pdckpt_dict_get(dict, key)) {
        val = pdckpt_value_new_none(g->alloc);
        st = val ? pdckpt_dict_set(dict, key, val, err) : pdk_fail_nomem(err, "a placeholder");
    }
    free(key);
    return st;
}

static pdckpt_status place_merged(gather_ctx *g, pdckpt_value *merged, int src, size_t i,
                                  pdckpt_error *err) {
    pdckpt_value *mw = pdckpt_dict_get_mut(merged, MASTER_WEIGHTS);
    if (!mw) {
        mw = pdckpt_value_new_container(g->alloc, PDCKPT_KIND_DICT);
        if (!mw) return pdk_fail_nomem(err, "master_weights");
        PDK_TRY(pdckpt_dict_set(merged, MASTER_WEIGHTS, mw, err));
    }
    const pdk_skel *sk = &g->skels[src];
    for (size_t j = i + 1; j < sk->n_entries && sk->entries[j].parent == (int32_t)i; j++)
        PDK_TRY(place(g, mw, src, &sk->entries[j], err));
    return PDCKPT_OK;
}

/* The placeholders' address range: every large tensor another rank holds (an upper bound). */
static pdckpt_status reserve_stream(gather_ctx *g, pdckpt_error *err) {
    uint64_t total = 0;
    for (int s = 0; s < g->d->size; s++)
        for (uint64_t o = 0; s != g->d->rank && o < g->skels[s].n_tensors; o++)
            if (streamed(g, g->skels[s].descs[o].n_bytes)) total += g->skels[s].descs[o].n_bytes;
    return pdk_stream_reserve(g->stream, total, err);
}

/* A sender serves the writer's pulls from its own tensors, by ordinal. */
static pdckpt_status keep_sends(gather_ctx *g, pdckpt_error *err) {
    pdk_stream *s = g->stream;
    size_t      n = g->mine.len;
    s->send_data = calloc(n ? n : 1, sizeof *s->send_data);
    s->send_bytes = calloc(n ? n : 1, sizeof *s->send_bytes);
    if (!s->send_data || !s->send_bytes) return pdk_fail_nomem(err, "the stream's tensors");
    for (size_t o = 0; o < n; o++) {
        pdckpt_tensor_view v;
        pdckpt_tensor_get(g->mine.items[o], &v);
        s->send_data[o] = v.data;
        s->send_bytes[o] = v.n_bytes;
    }
    s->n_send = n;
    return PDCKPT_OK;
}

static pdckpt_status build_merged(gather_ctx *g, pdckpt_value **out, pdckpt_error *err) {
    if (g->stream) PDK_TRY(reserve_stream(g, err));
    g->recv = calloc((size_t)g->d->size, sizeof *g->recv);
    *out = pdckpt_value_new_container(g->alloc, PDCKPT_KIND_DICT);
    if (!g->recv || !*out) return pdk_fail_nomem(err, "the merged state");
    for (int s = 0; s < g->d->size; s++) {
        size_t n = g->skels[s].n_tensors;
        if (s != g->d->rank && !(g->recv[s] = calloc(n ? n : 1, sizeof **g->recv)))
            return pdk_fail_nomem(err, "the receive table");
    }
    for (int s = 0; s < g->d->size; s++) {
        const pdk_skel *sk = &g->skels[s];
        for (size_t i = 0; i < sk->n_entries; i++) {
            const pdk_skel_entry *e = &sk->entries[i];
            if (e->parent >= 0) continue;
            PDK_TRY(e->merged ? place_merged(g, *out, s, i, err) : place(g, *out, s, e, err));
        }
    }
    return PDCKPT_OK;
}

typedef struct item_list {
    pdk_xfer_item *items;
    size_t         len, cap;
} item_list;

static pdckpt_status add_item(item_list *l, const pdk_xfer_item *it, pdckpt_error *err) {
    if (l->len == l->cap) {
        size_t         cap = l->cap ? l->cap * 2 : 64;
        pdk_xfer_item *grown = realloc(l->items, cap * sizeof *grown);
        if (!grown) return pdk_fail_nomem(err, "the transfer list");
        l->items = grown;
        l->cap = cap;
    }
    l->items[l->len++] = *it;
    return PDCKPT_OK;
}

/* The tensors of entry `e` of rank `src` that target `t` receives, in ordinal order. */
static pdckpt_status add_entry_items(gather_ctx *g, item_list *l, int src, int t,
                                     const pdk_skel_entry *e, pdckpt_error *err) {
    int me = g->d->rank;
    for (uint64_t o = e->first; o < e->first + e->count; o++) {
        uint64_t n_bytes = g->skels[src].descs[o].n_bytes;
        if (n_bytes == 0 || streamed(g, n_bytes)) continue; /* pulled while writing */
        pdk_xfer_item it = {src, t, n_bytes, NULL, NULL};
        if (src == me) {
            pdckpt_tensor_view v;
            pdckpt_tensor_get(g->mine.items[o], &v);
            it.send = v.data;
        }
        if (t == me && !(it.recv = g->recv[src][o]))
            return pdk_fail(err, PDCKPT_ERR_FORMAT, g->skels[src].source, -1,
                            "tensor %llu is counted but never referenced", (unsigned long long)o);
        PDK_TRY(add_item(l, &it, err));
    }
    return PDCKPT_OK;
}

static pdckpt_status build_items(gather_ctx *g, const int *targets, size_t n_targets, item_list *l,
                                 pdckpt_error *err) {
    for (size_t k = 0; k < n_targets; k++) {
        int t = targets[k];
        for (int s = 0; s < g->d->size; s++) {
            if (s == t) continue;
            const pdk_skel *sk = &g->skels[s];
            for (size_t i = 0; i < sk->n_entries; i++) {
                const pdk_skel_entry *e = &sk->entries[i];
                if (e->merged || pdk_merge_winner(&g->plan, t, e) != s) continue;
                PDK_TRY(add_entry_items(g, l, s, t, e, err));
            }
        }
    }
    return PDCKPT_OK;
}

static pdckpt_status plan_all(gather_ctx *g, const pdk_blob *all, const size_t *offs, bool opt,
                              pdckpt_error *err) {
    g->skels = calloc((size_t)g->d->size, sizeof *g->skels);
    if (!g->skels) return pdk_fail_nomem(err, "state descriptions");
    for (int r = 0; r < g->d->size; r++)
        PDK_TRY(pdk_skel_parse(all->data + offs[r], offs[r + 1] - offs[r], r, &g->skels[r], err));
    g->plan = (pdk_merge_plan){.skels = g->skels, .n_ranks = g->d->size, .opt = opt};
    return pdk_merge_plan_build(&g->plan, err);
}

static bool is_target(int rank, const int *targets, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (targets[i] == rank) return true;
    return false;
}

static void gather_free(gather_ctx *g) {
    for (int s = 0; g->recv && s < g->d->size; s++) free(g->recv[s]);
    free(g->recv);
    for (int s = 0; g->skels && s < g->d->size; s++) pdk_skel_free(&g->skels[s]);
    free(g->skels);
    pdk_merge_plan_free(&g->plan);
    pdk_tensor_list_free(&g->mine);
}

/* pdckpt:long-function — the phases in order, each ending in an agreement, read best as one. */
pdckpt_status pdk_gather_run(pdk_dist *d, const pdckpt_value *state, bool opt, const int *targets,
                             size_t n_targets, uint64_t group_bytes, const pdckpt_allocator *alloc,
                             pdk_stream *stream, pdckpt_value **merged, uint64_t *rounds,
                             pdckpt_error *err) {
    bool       streaming = stream && stream->min_bytes > 0 && n_targets == 1;
    gather_ctx g = {.d = d, .alloc = alloc, .stream = streaming ? stream : NULL};
    pdk_blob   mine = {0}, all = {0};
    size_t    *offs = NULL;
    item_list  items = {0};
    *merged = NULL;
    pdckpt_status st = state ? pdk_skel_encode(state, opt, &mine, &g.mine, err)
                             : pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "state is NULL");
    st = pdk_dist_agree(d, st, err);
    if (st == PDCKPT_OK) st = pdk_dist_allgather(d, &mine, &all, &offs, err);
    if (st == PDCKPT_OK) st = plan_all(&g, &all, offs, opt, err);
    if (st == PDCKPT_OK && is_target(d->rank, targets, n_targets))
        st = build_merged(&g, merged, err);
    else if (st == PDCKPT_OK && g.stream)
        st = keep_sends(&g, err);
    if (st == PDCKPT_OK) st = build_items(&g, targets, n_targets, &items, err);
    st = pdk_dist_agree(d, st, err);
    if (st == PDCKPT_OK)
        st = pdk_dist_transfer(d, items.items, items.len, group_bytes, rounds, err);
    if (st == PDCKPT_OK && *merged) st = pdk_merge_finish(&g.plan, state, *merged, alloc, err);
    st = pdk_dist_agree(d, st, err);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(*merged);
        *merged = NULL;
    }
    free(items.items);
    free(offs);
    pdk_blob_free(&mine);
    pdk_blob_free(&all);
    gather_free(&g);
    return st;
}
