/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_dist_flood.c — a gather (pdckpt_mpi_gather, 2 ranks) of dict states whose keys were
 * crafted to collide in the merge plan's table as it was (dist_merge.c: unseeded FNV-1a of the
 * key's level and name, masked): every key shared one cluster, so the plan probed n^2 slots.
 * Now the table hashes with the per-process seeded hash (docs/RELIABILITY.md, "Complexity
 * attacks").  The merge must be right and arrive within a hang guard the old table missed.
 *
 *   test_dist_flood [KEYS]
 */
#include "mpi_test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BITS  20 /* tables up to 2^20 slots: 2 ranks x 60,000 keys need 2^18 */
#define BLOCK 4

static uint64_t fnv(uint64_t h, const void *bytes, size_t len) {
    const uint8_t *p = bytes;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * UINT64_C(0x100000001b3);
    return h;
}

/* Block number i as 4 letters. */
static void block_of(uint32_t i, char *out) {
    for (int j = 0; j < BLOCK; j++, i /= 26) out[j] = (char)('a' + i % 26);
}

/* Two blocks that take low-BITS state `s` to the same low bits: the low bits of FNV-1a depend
 * only on the low bits before, so either can stand in any key from here on. */
static uint64_t find_pair(uint64_t s, uint32_t *seen, char *a, char *b) {
    const uint64_t mask = ((uint64_t)1 << BITS) - 1;
    memset(seen, 0xff, sizeof *seen << BITS);
    for (uint32_t i = 0;; i++) {
        char blk[BLOCK];
        block_of(i, blk);
        uint64_t low = fnv(s, blk, BLOCK) & mask;
        if (seen[low] != UINT32_MAX) {
            block_of(seen[low], a);
            memcpy(b, blk, BLOCK);
            return low;
        }
        seen[low] = i;
    }
}

/* n keys "w." + blocks whose FNV-1a (after the level's 4 zero bytes) share their low BITS. */
static char **colliding_keys(size_t n, int *n_pairs) {
    uint32_t *seen = malloc(sizeof *seen << BITS);
    char(*pairs)[2][BLOCK] = malloc(32 * sizeof *pairs);
    int32_t  level = 0;
    uint64_t s = fnv(fnv(UINT64_C(0xcbf29ce484222325), &level, sizeof level), "w.", 2);
    int      m = 0;
    for (; ((size_t)1 << m) < n; m++) s = find_pair(s, seen, pairs[m][0], pairs[m][1]);
    char **keys = malloc(n * sizeof *keys);
    for (size_t i = 0; i < n; i++) {
        keys[i] = calloc(3 + (size_t)m * BLOCK, 1);
        memcpy(keys[i], "w.", 2);
        for (int j = 0; j < m; j++) memcpy(keys[i] + 2 + j * BLOCK, pairs[j][(i >> j) & 1], BLOCK);
    }
    free(pairs);
    free(seen);
    *n_pairs = m;
    return keys;
}

int main(int argc, char **argv) {
    mt_init(&argc, &argv);
    size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 60000;
    int    m = 0;
    char **keys = colliding_keys(n, &m);
    CHECK(n < 2 || strcmp(keys[0], keys[n - 1]) != 0);
    pdckpt_value *state = mt_dict(); /* both ranks hold every key: rank 1's values win */
    for (size_t i = 0; i < n; i++) mt_set(state, keys[i], pdckpt_value_new_int(NULL, mt_rank));
    pdckpt_mpi_options o = PDCKPT_MPI_OPTIONS_INIT;
    int                target = 0;
    o.gather_to = &target;
    o.n_gather_to = 1;
    pdckpt_value *merged = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    mt_barrier(MPI_COMM_WORLD);
    double t0 = mt_now();
    CHECK_OK(pdckpt_mpi_gather(MPI_COMM_WORLD, state, &o, &merged, &err), &err);
    double took = mt_now() - t0;
    if (mt_rank == 0) {
        printf("gather of %zu colliding keys (%d pairs): %.2f s\n", n, m, took);
        CHECK(took < 30.0); /* a hang guard: the quadratic plan took over a minute at 60,000 */
        CHECK(merged && pdckpt_value_len(merged) == n);
        int64_t v = -1;
        CHECK(merged && pdckpt_value_get_int(pdckpt_dict_get(merged, keys[n - 1]), &v) &&
              v == mt_size - 1);
    }
    pdckpt_value_free(merged);
    pdckpt_value_free(state);
    for (size_t i = 0; i < n; i++) free(keys[i]);
    free(keys);
    return mt_finish();
}
