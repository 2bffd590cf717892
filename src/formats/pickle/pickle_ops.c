/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_ops.c — the pickle reader's data opcodes (spec pickle-and-distributed-formats.md §1.7,
 * §1.10): ints (BININT*, LONG1/LONG4, text INT/LONG), floats, text (BINUNICODE*, UNICODE), Python 2
 * strings (SHORT_BINSTRING/BINSTRING/STRING, latin-1 as paddle.load decodes them), bytes
 * (SHORT_BINBYTES/BINBYTES/BINBYTES8/BYTEARRAY8, kept as views into the input so array data stays
 * zero-copy), and the container opcodes.  Every declared length is checked against the bytes
 * left before anything is allocated.
 */
#include "pickle_vm.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PK_MAX_DECIMAL_DIGITS 4300 /* CPython's int(str) limit */

/* Pushes a value made by the caller (NULL = out of memory), freeing it when over budget. */
static pdckpt_status push_new(pk_vm *vm, pdckpt_value *v) {
    pdckpt_status st = pk_charge(vm, 64);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(v);
        return st;
    }
    return pk_push(vm, v);
}

/* ---- ints ---- */

pdckpt_status pk_make_long(pk_vm *vm, const uint8_t *b, size_t n, pdckpt_value **out) {
    /* Trim to CPython's minimal two's-complement encoding. */
    while (n > 1 &&
           ((b[n - 1] == 0x00 && !(b[n - 2] & 0x80)) || (b[n - 1] == 0xFF && (b[n - 2] & 0x80))))
        n--;
    if (n == 1 && b[0] == 0) n = 0;
    PDK_TRY(pk_charge(vm, 64 + n));
    if (n <= 8) {
        uint64_t u = n && (b[n - 1] & 0x80) ? UINT64_MAX : 0;
        for (size_t i = 0; i < n; i++)
            u = (u & ~((uint64_t)0xFF << (8 * i))) | (uint64_t)b[i] << (8 * i);
        *out = pdckpt_value_new_int(vm->a, (int64_t)u);
        return *out ? PDCKPT_OK : pk_nomem(vm);
    }
    /* Beyond int64: the tree's big int (pdckpt_value_new_bigint), accounted as what it is: an
     * object over a tuple over the bytes (depth 2, three values, n bytes). */
    PDK_TRY(pk_charge(vm, 64 + 16 + 128 + 11));
    pdckpt_value *v = pdckpt_value_new_bigint(vm->a, b, n);
    if (!v) return pk_nomem(vm);
    pdckpt_status st = pk_track_built(vm, v, 2, 3, n);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(v);
        return st;
    }
    *out = v;
    return PDCKPT_OK;
}

static pdckpt_status op_long_bin(pk_vm *vm, size_t len_size) {
    const uint8_t *b = NULL;
    PDK_TRY(pk_read(vm, len_size, &b, "byte count"));
    int64_t n = len_size == 1 ? b[0] : (int32_t)pdk_load_u32le(b);
    if (n < 0)
        return pk_fail(vm, PDCKPT_ERR_FORMAT, "expected a byte count >= 0, found %lld",
                       (long long)n);
    PDK_TRY(pk_read(vm, (uint64_t)n, &b, "integer"));
    pdckpt_value *v = NULL;
    PDK_TRY(pk_make_long(vm, b, (size_t)n, &v));
    return pk_push(vm, v);
}

/* Decimal text (optional sign) as an int: INT, or builtins.int beyond 64 bits. */
static pdckpt_status decimal_int(pk_vm *vm, const uint8_t *s, size_t n, pdckpt_value **out) {
    bool   neg = n && s[0] == '-';
    size_t i = n && (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (i == n || n - i > PK_MAX_DECIMAL_DIGITS)
        return pk_fail(vm, PDCKPT_ERR_FORMAT, "expected a decimal integer of 1-%d digits",
                       PK_MAX_DECIMAL_DIGITS);
    size_t cap = (n - i) / 2 + 2; /* bytes: log256(10^d) < d/2 + 1, plus a sign byte */
    PDK_TRY(pk_charge(vm, cap));
    uint8_t *mag = pdk_calloc(vm->a, cap, 1);
    if (!mag) return pk_nomem(vm);
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            pdk_free(vm->a, mag, cap);
            return pk_fail(vm, PDCKPT_ERR_FORMAT, "expected a decimal digit, found 0x%02x", s[i]);
        }
        unsigned carry = (unsigned)(s[i] - '0');
        for (size_t k = 0; k < cap; k++) {
            unsigned x = mag[k] * 10u + carry;
            mag[k] = (uint8_t)x;
            carry = x >> 8;
        }
    }
    if (neg) { /* two's complement: invert and add one */
        unsigned carry = 1;
        for (size_t k = 0; k < cap; k++) {
            unsigned x = (uint8_t)~mag[k] + carry;
            mag[k] = (uint8_t)x;
            carry = x >> 8;
        }
    }
    pdckpt_status st = pk_make_long(vm, mag, cap, out);
    pdk_free(vm->a, mag, cap);
    return st;
}

/* INT's text as CPython's load_int reads it: strtol(text, base 0), and a bool when the text is two
 * characters whose value is 0 or 1 (Python 2's I00/I01, also "+1", "-0").  Base 0 reads a leading
 * zero as octal ("010" is 8): refused rather than read as another number than paddle.load's. */
static pdckpt_status int_text_bool(pk_vm *vm, const uint8_t *s, size_t n, bool *is_bool) {
    size_t i = n && (s[0] == '-' || s[0] == '+') ? 1 : 0;
    *is_bool = n == 2 && (s[1] == '0' || s[1] == '1') &&
               (s[0] == '0' || s[0] == '+' || (s[0] == '-' && s[1] == '0'));
    if (!*is_bool && n - i > 1 && s[i] == '0')
        return pk_fail(vm, PDCKPT_ERR_FORMAT,
                       "expected a decimal integer without a leading zero (CPython's unpickler "
                       "reads INT '0...' in another base), found '%.*s'",
                       (int)(n < 40 ? n : 40), (const char *)s);
    return PDCKPT_OK;
}

static pdckpt_status op_int_text(pk_vm *vm, bool is_long) {
    const uint8_t *s;
    size_t         n;
    bool           is_bool = false;
    PDK_TRY(pk_readline(vm, &s, &n));
    if (!is_long) PDK_TRY(int_text_bool(vm, s, n, &is_bool));
    if (is_bool) return push_new(vm, pdckpt_value_new_bool(vm->a, s[1] == '1'));
    if (is_long && n && s[n - 1] == 'L') n--;
    pdckpt_value *v = NULL;
    PDK_TRY(decimal_int(vm, s, n, &v));
    return pk_push(vm, v);
}

static pdckpt_status op_binint(pk_vm *vm, size_t size) {
    const uint8_t *b = NULL;
    PDK_TRY(pk_read(vm, size, &b, "integer"));
    int64_t v = size == 1 ? b[0] : size == 2 ? (b[0] | b[1] << 8) : (int32_t)pdk_load_u32le(b);
    return push_new(vm, pdckpt_value_new_int(vm->a, v));
}

/* ---- floats ---- */

pdckpt_status pk_op_binfloat(pk_vm *vm) {
    const uint8_t *b = NULL;
    PDK_TRY(pk_read(vm, 8, &b, "big-endian double"));
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u = u << 8 | b[i];
    double d;
    memcpy(&d, &u, sizeof d);
    return push_new(vm, pdckpt_value_new_float(vm->a, d));
}

pdckpt_status pk_op_float_text(pk_vm *vm) {
    const uint8_t *s;
    size_t         n;
    PDK_TRY(pk_readline(vm, &s, &n));
    char buf[64];
    if (n == 0 || n >= sizeof buf)
        return pk_fail(vm, PDCKPT_ERR_FORMAT, "expected a float of 1-63 characters");
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end = NULL;
    errno = 0;
    double d = strtod(buf, &end);
    /* CPython's load_float (PyOS_string_to_double) reads no hex float, no "nan(...)" and raises
     * on overflow ("1e999"): text it refuses is not read as a number here either */
    bool cpython_refuses = strpbrk(buf, "xX(") || (errno == ERANGE && isinf(d));
    if (end != buf + n || cpython_refuses) {
        char   shown[4 * sizeof buf + 1]; /* the text as printable ASCII: messages are UTF-8 */
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            uint8_t c = (uint8_t)buf[i];
            if (c >= 0x20 && c < 0x7f) {
                shown[k++] = (char)c;
                continue;
            }
            shown[k++] = '\\';
            shown[k++] = 'x';
            shown[k++] = "0123456789abcdef"[c >> 4];
            shown[k++] = "0123456789abcdef"[c & 15];
        }
        shown[k] = '\0';
        return pk_fail(vm, PDCKPT_ERR_FORMAT, "expected a float, found '%s'", shown);
    }
    return push_new(vm, pdckpt_value_new_float(vm->a, d));
}

/* ---- text, Python 2 strings, bytes ---- */

/* A STRING/BYTES value over `n` input bytes, no copy (pickle_vm.h: owned once placed). */
static pdckpt_status push_borrowed(pk_vm *vm, pdckpt_kind kind, const uint8_t *s, uint64_t n,
                                   bool py2) {
    PDK_TRY(pk_charge(vm, 64));
    pdckpt_value *v = pdk_value_new_borrowed(vm->a, kind, s, (size_t)n, vm->in->owner);
    if (!v) return pk_nomem(vm);
    if (py2) {
        pdckpt_status st = pk_track(vm, v, PK_PY2, NULL);
        if (st != PDCKPT_OK) {
            pdckpt_value_free(v);
            return st;
        }
        vm->n_py2++;
    }
    return pk_push(vm, v);
}

static pdckpt_status push_text(pk_vm *vm, const uint8_t *s, uint64_t n) {
    size_t bad;
    if (!pk_utf8_valid(s, (size_t)n, &bad))
        return pk_fail(vm, PDCKPT_ERR_FORMAT,
                       "expected UTF-8 text, found byte 0x%02x at text "
                       "offset %zu",
                       s[bad], bad);
    return push_borrowed(vm, PDCKPT_KIND_STRING, s, n, false);
}

/* A Python 2 str is text or bytes depending on where it goes: short ones are decoded as
 * paddle.load decodes them, long ones (array data) wait until they are used. */
static pdckpt_status push_py2(pk_vm *vm, const uint8_t *s, uint64_t n) {
    if (n >= PK_VIEW_MIN) return push_borrowed(vm, PDCKPT_KIND_BYTES, s, n, true);
    pdckpt_value *v = NULL;
    PDK_TRY(pk_latin1_string(vm, s, (size_t)n, &v));
    return pk_push(vm, v);
}

/* Opcodes with a length prefix of `len_size` bytes, then the payload. */
static pdckpt_status op_counted(pk_vm *vm, size_t len_size, int what) {
    const uint8_t *b = NULL;
    PDK_TRY(pk_read(vm, len_size, &b, "length"));
    uint64_t n = len_size == 1 ? b[0] : len_size == 4 ? pdk_load_u32le(b) : pdk_load_u64le(b);
    if (vm->op == PK_OP_BINSTRING && (int32_t)n < 0)
        return pk_fail(vm, PDCKPT_ERR_FORMAT, "expected a length >= 0, found %d", (int32_t)n);
    PDK_TRY(pk_read(vm, n, &b, what == 'u' ? "text" : what == '2' ? "string" : "bytes"));
    if (what == 'u') return push_text(vm, b, n);
    if (what == '2') return push_py2(vm, b, n);
    return push_borrowed(vm, PDCKPT_KIND_BYTES, b, n, false);
}

static int hexval(uint8_t c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Python's escape_decode of a protocol-0 STRING body into `out` (at most n bytes). */
static bool escape_decode(const uint8_t *s, size_t n, uint8_t *out, size_t *out_len) {
    static const char from[] = "\\'\"abfnrtv", to[] = "\\'\"\a\b\f\n\r\t\v";
    size_t            j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') {
            out[j++] = s[i];
            continue;
        }
        if (++i == n) return false; /* a trailing backslash */
        const char *hit = memchr(from, s[i], sizeof from - 1);
        if (hit) {
            out[j++] = (uint8_t)to[hit - from];
        } else if (s[i] == 'x') {
            if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) return false;
            out[j++] = (uint8_t)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
            i += 2;
        } else if (s[i] >= '0' && s[i] <= '7') {
            unsigned v = 0;
            for (int k = 0; k < 3 && i < n && s[i] >= '0' && s[i] <= '7'; k++, i++)
                v = v * 8 + (unsigned)(s[i] - '0');
            i--;
            out[j++] = (uint8_t)v;
        } else {
            out[j++] = '\\'; /* unknown escapes stay as they are */
            out[j++] = s[i];
        }
    }
    *out_len = j;
    return true;
}

pdckpt_status pk_op_string_text(pk_vm *vm) {
    const uint8_t *s;
    size_t         n;
    PDK_TRY(pk_readline(vm, &s, &n));
    if (n < 2 || (s[0] != '\'' && s[0] != '"') || s[n - 1] != s[0])
        return pk_fail(vm, PDCKPT_ERR_FORMAT, "expected a quoted string");
    PDK_TRY(pk_charge(vm, n));
    uint8_t *buf = pdk_alloc(vm->a, n);
    if (!buf) return pk_nomem(vm);
    size_t        len = 0;
    pdckpt_value *v = NULL;
    pdckpt_status st = escape_decode(s + 1, n - 2, buf, &len)
                           ? pk_latin1_string(vm, buf, len, &v)
                           : pk_fail(vm, PDCKPT_ERR_FORMAT, "expected valid backslash escapes");
    pdk_free(vm->a, buf, n);
    return st == PDCKPT_OK ? pk_push(vm, v) : st;
}

static size_t put_utf8(uint8_t *out, uint32_t cp) {
    if (cp < 0x80) return out[0] = (uint8_t)cp, 1;
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Python's raw-unicode-escape: latin-1 characters, plus \uXXXX / \UXXXXXXXX after an odd run of
 * backslashes.  `out` holds 2 * n bytes.  Returns false on a malformed escape. */
static bool raw_unicode_decode(const uint8_t *s, size_t n, uint8_t *out, size_t *out_len) {
    size_t j = 0, i = 0;
    while (i < n) {
        if (s[i] != '\\') {
            j += put_utf8(out + j, s[i++]);
            continue;
        }
        size_t run = 0;
        while (i < n && s[i] == '\\') out[j++] = s[i++], run++;
        if (!(run & 1) || i == n || (s[i] != 'u' && s[i] != 'U')) continue;
        size_t digits = s[i] == 'u' ? 4 : 8;
        if (n - i - 1 < digits) return false;
        uint32_t cp = 0;
        for (size_t k = 1; k <= digits; k++) {
            int h = hexval(s[i + k]);
            if (h < 0) return false;
            cp = cp << 4 | (uint32_t)h;
        }
        if (cp > 0x10FFFF) return false;
        j--; /* the backslash that started the escape */
        j += put_utf8(out + j, cp);
        i += digits + 1;
    }
    *out_len = j;
    return true;
}

pdckpt_status pk_op_unicode_text(pk_vm *vm) {
    const uint8_t *s;
    size_t         n;
    PDK_TRY(pk_readline(vm, &s, &n));
    PDK_TRY(pk_charge(vm, 2 * n + 1));
    uint8_t *buf = pdk_alloc(vm->a, 2 * n + 1);
    if (!buf) return pk_nomem(vm);
    size_t        len = 0;
    pdckpt_status st = raw_unicode_decode(s, n, buf, &len)
                           ? PDCKPT_OK
                           : pk_fail(vm, PDCKPT_ERR_FORMAT, "expected valid \\u / \\U escapes");
    pdckpt_value *v = NULL;
    if (st == PDCKPT_OK && !(v = pdckpt_value_new_string(vm->a, (const char *)buf, len)))
        st = pk_nomem(vm);
    pdk_free(vm->a, buf, 2 * n + 1);
    return st == PDCKPT_OK ? pk_push(vm, v) : st;
}

/* ---- containers ---- */

pdckpt_status pk_make_tuple(pk_vm *vm, size_t start, pdckpt_value **out) {
    pdckpt_value *t = NULL;
    PDK_TRY(pk_new_container(vm, PDCKPT_KIND_TUPLE, &t));
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = start; i < vm->sp && st == PDCKPT_OK; i++) {
        pdckpt_value *placed = NULL;
        st = pk_adopt(vm, t, vm->stack[i], &placed);
        if (st == PDCKPT_OK) st = pdckpt_value_append(t, placed, vm->err);
    }
    pk_drop_to(vm, start);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(t);
        return st;
    }
    *out = t;
    return PDCKPT_OK;
}

static pdckpt_status op_tuple_n(pk_vm *vm, size_t n) {
    size_t fence = vm->n_marks ? vm->marks[vm->n_marks - 1] : 0;
    if (vm->sp - fence < n)
        return pk_fail(vm, PDCKPT_ERR_FORMAT, "expected %zu items on the stack%s, found %zu", n,
                       vm->n_marks ? " above the last MARK" : "", vm->sp - fence);
    pdckpt_value *dummy;
    for (size_t d = 0; d < n; d++) PDK_TRY(pk_peek(vm, d, &dummy)); /* resolves BUILD results */
    pdckpt_value *t = NULL;
    PDK_TRY(pk_make_tuple(vm, vm->sp - n, &t));
    return pk_push(vm, t);
}

static bool hashable(pk_vm *vm, const pdckpt_value *v) {
    pk_info *info;
    switch (pdckpt_value_kind(v)) {
    case PDCKPT_KIND_LIST:
    case PDCKPT_KIND_DICT:
    case PDCKPT_KIND_SET: return false;
    case PDCKPT_KIND_TENSOR: return false;
    case PDCKPT_KIND_TUPLE: /* known since it was built (tuples never change) */
        info = pk_info_of(vm, v);
        return !info || !(info->flags & PK_UNHASHABLE);
    default: return true;
    }
}

static pdckpt_status check_key(pk_vm *vm, const pdckpt_value *key, const char *what) {
    if (hashable(vm, key)) return PDCKPT_OK;
    return pk_fail(vm, PDCKPT_ERR_FORMAT, "expected a hashable %s, found a %s", what,
                   pdckpt_kind_name(pdckpt_value_kind(key)));
}

static pdckpt_status cycle(pk_vm *vm, const pdckpt_value *target) {
    pdckpt_kind k = pdckpt_value_kind(target);
    return pk_fail(vm, PDCKPT_ERR_UNSUPPORTED,
                   "%s %s cannot contain itself (pdckpt refuses "
                   "reference cycles)",
                   k == PDCKPT_KIND_OBJECT ? "an" : "a", pdckpt_kind_name(k));
}

/* The container an object's APPENDS / SETITEMS go to, created on first use. */
static pdckpt_status object_items(pk_vm *vm, pdckpt_value *obj, pdckpt_kind kind,
                                  pdckpt_value **out) {
    if (pdckpt_object_kind_of(obj) == PDCKPT_OBJECT_GLOBAL)
        return pk_fail(vm, PDCKPT_ERR_UNSUPPORTED,
                       "expected an instance to add items to, found the "
                       "bare global %s.%s",
                       pdckpt_object_module(obj), pdckpt_object_name(obj));
    const pdckpt_value *items = pdckpt_object_items(obj);
    if (items && pdckpt_value_kind(items) != kind)
        return pk_fail(vm, PDCKPT_ERR_UNSUPPORTED, "an object with both list and dict items");
    if (!items) {
        pdckpt_value *fresh = NULL;
        PDK_TRY(pk_new_container(vm, kind, &fresh));
        PDK_TRY(pdckpt_object_set_items(obj, fresh, vm->err));
        items = fresh;
    }
    *out = (pdckpt_value *)items;
    return PDCKPT_OK;
}

/* `owner` is the container itself, or the object whose items container `dst` is. */
static pdckpt_status extend_into(pk_vm *vm, pdckpt_value *owner, pdckpt_value *dst, size_t start,
                                 uint64_t *nodes) {
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = start; i < vm->sp && st == PDCKPT_OK; i++) {
        pdckpt_value *placed = NULL;
        if (vm->stack[i] == owner) return cycle(vm, owner);
        if (pdckpt_value_kind(dst) == PDCKPT_KIND_SET) st = check_key(vm, vm->stack[i], "set item");
        if (st == PDCKPT_OK) st = pk_adopt(vm, dst, vm->stack[i], &placed);
        pk_info *pi = st == PDCKPT_OK ? pk_info_of(vm, placed) : NULL;
        *nodes += pi ? pi->nodes : 1;
        if (st == PDCKPT_OK) st = pdckpt_value_append(dst, placed, vm->err);
    }
    return st;
}

typedef pdckpt_status (*fill_fn)(pk_vm *vm, pdckpt_value *owner, pdckpt_value *dst, size_t start,
                                 uint64_t *nodes);

/* Moves the stack's values from `start` into `target` (an object: into its items, a container
 * of `items_kind`, keeping the object's size accounting) unless `st` already failed; the stack
 * drops to `start` either way. */
static pdckpt_status fill_target(pk_vm *vm, pdckpt_value *target, size_t start, pdckpt_status st,
                                 pdckpt_kind items_kind, const char *verb, fill_fn fill) {
    if (st == PDCKPT_OK) st = pk_check_mutable(vm, target, verb);
    pdckpt_value *dst = target;
    if (st == PDCKPT_OK && pdckpt_value_kind(target) == PDCKPT_KIND_OBJECT)
        st = object_items(vm, target, items_kind, &dst);
    uint64_t nodes = 0, data = pk_data_of(vm, dst);
    if (st == PDCKPT_OK) st = fill(vm, target, dst, start, &nodes);
    if (st == PDCKPT_OK && dst != target)
        st = pk_object_grew(vm, target, dst, nodes, pk_data_of(vm, dst) - data);
    pk_drop_to(vm, start);
    return st;
}

pdckpt_status pk_extend(pk_vm *vm, pdckpt_value *target, size_t start) {
    pdckpt_kind   k = pdckpt_value_kind(target);
    pdckpt_status st = PDCKPT_OK;
    if (k != PDCKPT_KIND_LIST && k != PDCKPT_KIND_SET && k != PDCKPT_KIND_OBJECT)
        st = pk_fail(vm, PDCKPT_ERR_FORMAT,
                     "expected a list, set or object to add items to, "
                     "found a %s",
                     pdckpt_kind_name(k));
    return fill_target(vm, target, start, st, PDCKPT_KIND_LIST, "add items to", extend_into);
}

/* Tuple and object keys the dict index hashes only in part (nested deeper than 16, or an
 * object's state wider than 16 items) can be made to collide, so a dict may hold a bounded number
 * of them; strings, numbers, big ints, small tuples and small dataclass-like objects (Paddle's
 * LocalTensorIndex) hash fully. */
static pdckpt_status count_other_key(pk_vm *vm, pdckpt_value *dict, const pdckpt_value *key) {
    pk_info *info = pdk_key_is_weak(key) ? pk_info_of(vm, dict) : NULL;
    if (!info || ++info->other_keys <= PDK_MAX_WEAK_KEYS) return PDCKPT_OK;
    return pk_fail(vm, PDCKPT_ERR_LIMIT, PDK_WEAK_KEYS_EXPECTED, PDK_MAX_WEAK_KEYS);
}

#define PK_PREFETCH_PAIRS 8

static pdckpt_status set_pairs_into(pk_vm *vm, pdckpt_value *owner, pdckpt_value *dst, size_t start,
                                    uint64_t *nodes) {
    for (size_t i = start; i + 1 < vm->sp; i += 2) {
        if (i + PK_PREFETCH_PAIRS * 2 < vm->sp) /* a state dict's index is larger than caches */
            pdk_dict_prefetch(dst, vm->stack[i + PK_PREFETCH_PAIRS * 2]);
        if (vm->stack[i] == owner || vm->stack[i + 1] == owner) return cycle(vm, owner);
        bool taken = false; /* consumer mode: a pair the caller keeps in its own form */
        PDK_TRY(pk_offer_pair(vm, dst, vm->stack[i], vm->stack[i + 1], &taken));
        if (taken) continue;
        PDK_TRY(check_key(vm, vm->stack[i], "dict key"));
        PDK_TRY(count_other_key(vm, dst, vm->stack[i]));
        pdckpt_value *key = NULL, *value = NULL;
        PDK_TRY(pk_adopt(vm, dst, vm->stack[i], &key));
        pdckpt_status st = pk_adopt(vm, dst, vm->stack[i + 1], &value);
        if (st != PDCKPT_OK) {
            pdckpt_value_free(key);
            return st;
        }
        pk_info *ki = pk_info_of(vm, key), *vi = pk_info_of(vm, value);
        *nodes += (ki ? ki->nodes : 1) + (vi ? vi->nodes : 1);
        PDK_TRY(pdckpt_dict_set_value(dst, key, value, vm->err));
    }
    return PDCKPT_OK;
}

pdckpt_status pk_set_pairs(pk_vm *vm, pdckpt_value *target, size_t start) {
    pdckpt_kind   k = pdckpt_value_kind(target);
    pdckpt_status st = PDCKPT_OK;
    if ((vm->sp - start) % 2)
        st = pk_fail(vm, PDCKPT_ERR_FORMAT,
                     "expected key/value pairs, found an odd number (%zu) "
                     "of values",
                     vm->sp - start);
    else if (k != PDCKPT_KIND_DICT && k != PDCKPT_KIND_OBJECT)
        st = pk_fail(vm, PDCKPT_ERR_FORMAT, "expected a dict or object to set items on, found a %s",
                     pdckpt_kind_name(k));
    return fill_target(vm, target, start, st, PDCKPT_KIND_DICT, "set items on", set_pairs_into);
}

/* Python's unpickler extends a list by APPEND(S) and a set by ADDITEMS, and calls append /
 * extend / add on anything else: a list has no add, a set no append (AttributeError), so such a
 * pickle is refused rather than read as one paddle.load cannot read. */
static pdckpt_status check_adder(pk_vm *vm, const pdckpt_value *target) {
    pdckpt_kind k = pdckpt_value_kind(target);
    bool        add = vm->op == PK_OP_ADDITEMS;
    if ((add && k == PDCKPT_KIND_LIST) || (!add && k == PDCKPT_KIND_SET))
        return pk_fail(vm, PDCKPT_ERR_FORMAT,
                       "expected a %s to add items to (Python's unpickler calls %s, which a %s "
                       "has not), found a %s",
                       add ? "set" : "list", add ? "add" : "append", pdckpt_kind_name(k),
                       pdckpt_kind_name(k));
    return PDCKPT_OK;
}

/* APPENDS / SETITEMS / ADDITEMS: MARK items; the target sits right below the mark. */
static pdckpt_status op_mark_into(pk_vm *vm, bool pairs) {
    size_t start;
    PDK_TRY(pk_pop_mark(vm, &start));
    pdckpt_value *target;
    size_t        top = vm->sp;
    vm->sp = start; /* peek below the items */
    pdckpt_status st = pk_peek(vm, 0, &target);
    vm->sp = top;
    if (st == PDCKPT_OK && !pairs) st = check_adder(vm, target);
    if (st != PDCKPT_OK) {
        pk_drop_to(vm, start);
        return st;
    }
    return pairs ? pk_set_pairs(vm, target, start) : pk_extend(vm, target, start);
}

/* APPEND / SETITEM: the last one or two values go into the value below them. */
static pdckpt_status op_single_into(pk_vm *vm, size_t n) {
    pdckpt_value *target;
    PDK_TRY(pk_peek(vm, n, &target));
    for (size_t d = 0; d < n; d++) PDK_TRY(pk_peek(vm, d, &(pdckpt_value *){NULL}));
    if (n == 1) PDK_TRY(check_adder(vm, target));
    return n == 2 ? pk_set_pairs(vm, target, vm->sp - 2) : pk_extend(vm, target, vm->sp - 1);
}

/* LIST / DICT / FROZENSET / TUPLE (protocol 0/1 and 4): MARK items -> a new container. */
static pdckpt_status op_mark_build(pk_vm *vm, pdckpt_kind kind) {
    size_t start;
    PDK_TRY(pk_pop_mark(vm, &start));
    pdckpt_value *c = NULL;
    if (kind == PDCKPT_KIND_TUPLE) {
        PDK_TRY(pk_make_tuple(vm, start, &c));
        return pk_push(vm, c);
    }
    pdckpt_status st = pk_new_container(vm, kind, &c);
    if (st == PDCKPT_OK)
        st = kind == PDCKPT_KIND_DICT ? pk_set_pairs(vm, c, start) : pk_extend(vm, c, start);
    else
        pk_drop_to(vm, start);
    if (st != PDCKPT_OK) {
        pdckpt_value_free(c);
        return st;
    }
    return pk_push(vm, c);
}

static pdckpt_status op_empty(pk_vm *vm, pdckpt_kind kind) {
    pdckpt_value *c = NULL;
    PDK_TRY(pk_new_container(vm, kind, &c));
    return pk_push(vm, c);
}

/* ---- handlers (the dispatch table is pickle_run.c's; sizes come from the opcode table) ---- */

pdckpt_status pk_op_none(pk_vm *vm) {
    return push_new(vm, pdckpt_value_new_none(vm->a));
}

pdckpt_status pk_op_bool(pk_vm *vm) {
    return push_new(vm, pdckpt_value_new_bool(vm->a, vm->op == PK_OP_NEWTRUE));
}

pdckpt_status pk_op_binint(pk_vm *vm) {
    return op_binint(vm, pk_opcodes[vm->op].size);
}

pdckpt_status pk_op_long_bin(pk_vm *vm) {
    return op_long_bin(vm, pk_opcodes[vm->op].size);
}

pdckpt_status pk_op_int_text(pk_vm *vm) {
    return op_int_text(vm, vm->op == PK_OP_LONG);
}

/* BINUNICODE / SHORT_BINUNICODE / BINUNICODE8. */
pdckpt_status pk_op_text(pk_vm *vm) {
    return op_counted(vm, pk_opcodes[vm->op].size, 'u');
}

/* SHORT_BINSTRING / BINSTRING: Python 2 str. */
pdckpt_status pk_op_py2_string(pk_vm *vm) {
    return op_counted(vm, pk_opcodes[vm->op].size, '2');
}

/* SHORT_BINBYTES / BINBYTES / BINBYTES8 / BYTEARRAY8. */
pdckpt_status pk_op_bytes(pk_vm *vm) {
    return op_counted(vm, pk_opcodes[vm->op].size, 'b');
}

static pdckpt_kind kind_built_by(uint8_t op) {
    switch (op) {
    case PK_OP_EMPTY_TUPLE:
    case PK_OP_TUPLE: return PDCKPT_KIND_TUPLE;
    case PK_OP_EMPTY_LIST:
    case PK_OP_LIST: return PDCKPT_KIND_LIST;
    case PK_OP_EMPTY_DICT:
    case PK_OP_DICT: return PDCKPT_KIND_DICT;
    default: return PDCKPT_KIND_SET; /* EMPTY_SET, FROZENSET */
    }
}

/* EMPTY_TUPLE / EMPTY_LIST / EMPTY_DICT / EMPTY_SET. */
pdckpt_status pk_op_empty(pk_vm *vm) {
    return op_empty(vm, kind_built_by(vm->op));
}

/* TUPLE / LIST / DICT / FROZENSET. */
pdckpt_status pk_op_mark_build(pk_vm *vm) {
    return op_mark_build(vm, kind_built_by(vm->op));
}

/* TUPLE1 / TUPLE2 / TUPLE3. */
pdckpt_status pk_op_tuple_n(pk_vm *vm) {
    return op_tuple_n(vm, (size_t)(vm->op - PK_OP_TUPLE1) + 1);
}

/* APPEND / SETITEM. */
pdckpt_status pk_op_single_into(pk_vm *vm) {
    return op_single_into(vm, vm->op == PK_OP_SETITEM ? 2 : 1);
}

/* APPENDS / ADDITEMS / SETITEMS. */
pdckpt_status pk_op_mark_into(pk_vm *vm) {
    return op_mark_into(vm, vm->op == PK_OP_SETITEMS);
}
