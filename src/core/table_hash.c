/* SPDX-License-Identifier: Apache-2.0 */
/*
 * table_hash.c — the hash of every in-memory table keyed by bytes a file chose (dict keys,
 * sharded-metadata keys and pieces, data file names, the pickle writer's memo): XXH3 seeded with
 * one random value per process, so the author of a file cannot pick keys that share a slot and
 * turn a load's linear inserts into a quadratic probe of one cluster (docs/RELIABILITY.md,
 * "Complexity attacks").  XXH3 ends in an avalanche step, so the low bits a table masks depend on
 * every input bit and on the seed.  Nothing hashed here may be written to disk or compared across
 * processes (ranks differ): persisted and shared hashes stay pdk_hash_bytes (FNV-1a, unseeded).
 */
#include "pdk_core.h"

#include <stdatomic.h>
#include <xxhash.h>

static _Atomic uint64_t process_seed;

uint64_t pdk_hash_seed(void) {
    uint64_t seed = atomic_load_explicit(&process_seed, memory_order_relaxed);
    if (seed) return seed;
    uint64_t fresh = pdk_random_u64(); /* never 0 */
    /* two threads racing here both keep the first value stored: one seed per process */
    if (!atomic_compare_exchange_strong(&process_seed, &seed, fresh)) return seed;
    return fresh;
}

uint64_t pdk_table_hash(uint64_t h, const void *bytes, size_t len) {
    return XXH3_64bits_withSeed(bytes, len, h ? h : pdk_hash_seed());
}

uint64_t pdk_hash_bytes(uint64_t h, const void *bytes, size_t len) {
    if (h == 0) h = UINT64_C(0xcbf29ce484222325);
    const uint8_t *p = bytes;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * UINT64_C(0x100000001b3);
    return h;
}
