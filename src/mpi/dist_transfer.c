/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_transfer.c — grouped point-to-point transfers of tensor bytes (issue 6, max_grouped_size).
 * Every rank derives the same schedule from the same item list: per destination, its items'
 * bytes are cut into groups of at most `group_bytes`, and round g moves group g of every
 * destination, so no destination ever has more than one group in flight.  Within a round, all
 * pieces one source sends one destination travel as a single message whose MPI datatype
 * (hindexed over absolute addresses) points straight at the tensors: no packing, no staging copy,
 * bytes go from the sender's tensor memory into the receiver's.
 */
#include "dist_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MESSAGE_CAP (UINT64_C(1) << 30) /* MPI sizes are ints: rounds never exceed 1 GiB */

typedef struct piece {
    uint64_t round;
    int      send; /* 1: this rank sends it, 0: receives it */
    int      peer;
    size_t   item;
    uint64_t off, len;
} piece;

typedef struct cutter {
    uint64_t *round, *used; /* per destination */
    piece    *pieces;
    size_t    len, cap;
} cutter;

static pdckpt_status add_piece(cutter *c, const piece *p, pdckpt_error *err) {
    if (c->len == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        piece *grown = realloc(c->pieces, cap * sizeof *grown);
        if (!grown) return pdk_fail_nomem(err, "transfer schedule");
        c->pieces = grown;
        c->cap = cap;
    }
    c->pieces[c->len++] = *p;
    return PDCKPT_OK;
}

/* Cuts item i into the rounds of its destination; keeps the pieces this rank takes part in. */
static pdckpt_status cut_item(cutter *c, const pdk_xfer_item *it, size_t i, int me, uint64_t cap,
                              pdckpt_error *err) {
    uint64_t *round = &c->round[it->dst], *used = &c->used[it->dst];
    for (uint64_t off = 0; off < it->n_bytes;) {
        uint64_t take = it->n_bytes - off < cap - *used ? it->n_bytes - off : cap - *used;
        if (it->src == me || it->dst == me) {
            piece p = {*round, it->src == me, it->src == me ? it->dst : it->src, i, off, take};
            PDK_TRY(add_piece(c, &p, err));
        }
        off += take;
        *used += take;
        if (*used == cap) {
            (*round)++;
            *used = 0;
        }
    }
    return PDCKPT_OK;
}

static int cmp_piece(const void *a, const void *b) {
    const piece *x = a, *y = b;
    if (x->round != y->round) return x->round < y->round ? -1 : 1;
    if (x->send != y->send) return x->send - y->send;
    if (x->peer != y->peer) return x->peer - y->peer;
    if (x->item != y->item) return x->item < y->item ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

static pdckpt_status schedule(pdk_dist *d, const pdk_xfer_item *items, size_t n, uint64_t cap,
                              cutter *c, uint64_t *rounds, pdckpt_error *err) {
    c->round = calloc((size_t)d->size, sizeof *c->round);
    c->used = calloc((size_t)d->size, sizeof *c->used);
    if (!c->round || !c->used) return pdk_fail_nomem(err, "transfer schedule");
    for (size_t i = 0; i < n; i++) {
        const pdk_xfer_item *it = &items[i];
        if (it->src < 0 || it->src >= d->size || it->dst < 0 || it->dst >= d->size ||
            it->src == it->dst)
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "bad transfer %d -> %d", it->src,
                            it->dst);
        PDK_TRY(cut_item(c, it, i, d->rank, cap, err));
    }
    *rounds = 0;
    for (int r = 0; r < d->size; r++) {
        uint64_t total = c->round[r] + (c->used[r] > 0);
        if (total > *rounds) *rounds = total;
    }
    if (c->len > 1) qsort(c->pieces, c->len, sizeof *c->pieces, cmp_piece);
    return PDCKPT_OK;
}

/* Posts one message for pieces [from, to) (same round, direction and peer). */
static pdckpt_status post(pdk_dist *d, const pdk_xfer_item *items, const piece *p, size_t count,
                          MPI_Request *req, pdckpt_error *err) {
    int          *lens = malloc(count * sizeof *lens);
    MPI_Aint     *addrs = malloc(count * sizeof *addrs);
    pdckpt_status st = lens && addrs ? PDCKPT_OK : pdk_fail_nomem(err, "a transfer datatype");
    for (size_t i = 0; i < count && st == PDCKPT_OK; i++) {
        const pdk_xfer_item *it = &items[p[i].item];
        const uint8_t *base = p[0].send ? (const uint8_t *)it->send : (const uint8_t *)it->recv;
        lens[i] = (int)p[i].len;
        MPI_Get_address(base + p[i].off, &addrs[i]);
    }
    MPI_Datatype type = MPI_DATATYPE_NULL;
    int          rc = MPI_SUCCESS;
    if (st == PDCKPT_OK) rc = MPI_Type_create_hindexed((int)count, lens, addrs, MPI_BYTE, &type);
    if (st == PDCKPT_OK && rc == MPI_SUCCESS) rc = MPI_Type_commit(&type);
    int tag = (int)(p[0].round & 0x3fff);
    if (st == PDCKPT_OK && rc == MPI_SUCCESS)
        rc = p[0].send ? MPI_Isend(MPI_BOTTOM, 1, type, p[0].peer, tag, d->comm, req)
                       : MPI_Irecv(MPI_BOTTOM, 1, type, p[0].peer, tag, d->comm, req);
    if (type != MPI_DATATYPE_NULL) MPI_Type_free(&type); /* freed once the message is done */
    if (st == PDCKPT_OK && rc != MPI_SUCCESS) st = pdk_dist_mpi_fail(err, rc, "posting a transfer");
    free(lens);
    free(addrs);
    return st;
}

/* Runs the round that starts at pieces[*at]; advances *at past it. */
static pdckpt_status run_round(pdk_dist *d, const pdk_xfer_item *items, const piece *pieces,
                               size_t n, size_t *at, MPI_Request *reqs, pdckpt_error *err) {
    size_t        i = *at;
    int           n_reqs = 0;
    pdckpt_status st = PDCKPT_OK;
    while (i < n && pieces[i].round == pieces[*at].round && st == PDCKPT_OK) {
        size_t j = i + 1;
        while (j < n && pieces[j].round == pieces[i].round && pieces[j].send == pieces[i].send &&
               pieces[j].peer == pieces[i].peer)
            j++;
        st = post(d, items, &pieces[i], j - i, &reqs[n_reqs], err);
        if (st == PDCKPT_OK) n_reqs++;
        i = j;
    }
    *at = i;
    char what[96];
    snprintf(what, sizeof what, "transfer round %llu", (unsigned long long)pieces[i - 1].round);
    pdckpt_status waited = pdk_dist_wait_data(d, n_reqs, reqs, what, err);
    return st != PDCKPT_OK ? st : waited;
}

pdckpt_status pdk_dist_transfer(pdk_dist *d, const pdk_xfer_item *items, size_t n,
                                uint64_t group_bytes, uint64_t *rounds, pdckpt_error *err) {
    uint64_t cap = group_bytes < MESSAGE_CAP ? group_bytes : MESSAGE_CAP;
    if (cap == 0) cap = 1;
    cutter        c = {0};
    uint64_t      n_rounds = 0;
    pdckpt_status st = schedule(d, items, n, cap, &c, &n_rounds, err);
    MPI_Request  *reqs = malloc(2 * (size_t)d->size * sizeof *reqs);
    if (st == PDCKPT_OK && !reqs) st = pdk_fail_nomem(err, "transfer requests");
    for (size_t at = 0; at < c.len && st == PDCKPT_OK;)
        st = run_round(d, items, c.pieces, c.len, &at, reqs, err);
    if (rounds) *rounds = n_rounds;
    free(reqs);
    free(c.pieces);
    free(c.round);
    free(c.used);
    return st;
}
