/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bigint.c — ints beyond 64 bits, the one place that knows their form in a tree: the object
 * builtins.int(b) whose one argument `b` is the int's little-endian two's-complement bytes, as
 * pickle's LONG1 / LONG4 carry them.  The pickle reader makes them, its writer and the CLI read
 * them, all through these calls (include/pdckpt.h, "Big ints").
 */
#include "pdk_core.h"

#include <string.h>

#define BIGINT_DECIMAL_MAX 512 /* bytes: CPython's int(str) limit is 4300 digits */

pdckpt_value *pdckpt_value_new_bigint(const pdckpt_allocator *a, const void *bytes, size_t n) {
    if (!bytes || n == 0) return NULL;
    pdckpt_value *b = pdckpt_value_new_bytes(a, bytes, n);
    pdckpt_value *args = b ? pdckpt_value_new_container(a, PDCKPT_KIND_TUPLE) : NULL;
    if (!args || pdckpt_value_append(args, b, NULL) != PDCKPT_OK) {
        if (!args) pdckpt_value_free(b);
        pdckpt_value_free(args);
        return NULL;
    }
    return pdckpt_value_new_object(a, PDCKPT_OBJECT_REDUCE, "builtins", "int", args, NULL);
}

const void *pdckpt_value_get_bigint(const pdckpt_value *v, size_t *n) {
    const pdckpt_value *args = pdckpt_object_args(v);
    if (pdckpt_value_kind(v) != PDCKPT_KIND_OBJECT ||
        pdckpt_object_kind_of(v) != PDCKPT_OBJECT_REDUCE ||
        strcmp(pdckpt_object_module(v), "builtins") != 0 ||
        strcmp(pdckpt_object_name(v), "int") != 0 || pdckpt_object_state(v) ||
        pdckpt_object_items(v) || pdckpt_value_kind(args) != PDCKPT_KIND_TUPLE ||
        pdckpt_value_len(args) != 1 ||
        pdckpt_value_kind(pdckpt_value_at(args, 0)) != PDCKPT_KIND_BYTES)
        return NULL;
    const void *b = pdckpt_value_get_bytes(pdckpt_value_at(args, 0), n);
    return *n ? b : NULL;
}

bool pdckpt_bigint_decimal(const pdckpt_value *v, char *buf, size_t cap) {
    size_t               n = 0;
    const unsigned char *b = pdckpt_value_get_bigint(v, &n);
    if (!b || n > BIGINT_DECIMAL_MAX || cap < 3 * n + 3) return false;
    unsigned char mag[BIGINT_DECIMAL_MAX];
    bool          neg = b[n - 1] & 0x80;
    unsigned      carry = 1;
    for (size_t i = 0; i < n; i++) { /* magnitude of a two's-complement negative: invert + 1 */
        unsigned x = neg ? (unsigned)(unsigned char)~b[i] + carry : b[i];
        mag[i] = (unsigned char)x;
        carry = neg ? x >> 8 : 0;
    }
    char   digits[3 * BIGINT_DECIMAL_MAX];
    size_t nd = 0;
    for (size_t len = n; len > 0;) { /* repeated division by 10, most significant byte first */
        unsigned rem = 0;
        for (size_t i = len; i-- > 0;) {
            unsigned cur = rem << 8 | mag[i];
            mag[i] = (unsigned char)(cur / 10);
            rem = cur % 10;
        }
        digits[nd++] = (char)('0' + rem);
        while (len > 0 && mag[len - 1] == 0) len--;
    }
    size_t j = 0;
    if (neg) buf[j++] = '-';
    while (nd > 0 && j + 1 < cap) buf[j++] = digits[--nd];
    buf[j] = '\0';
    return true;
}
