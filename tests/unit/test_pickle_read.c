/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_pickle_read.c — the pickle reader on hand-built byte strings: every opcode Paddle-era
 * files use (protocols 0-5, Python 2 strings), numpy arrays in every layout, Paddle's tuple /
 * DenseTensor / big-array / name-table conventions, hostile globals, reference cycles, the
 * depth / memo / allocation limits (exact statuses, offsets and messages), sniffing, and the
 * zero-copy guarantee for protocol 3/4 array data.
 */
#include "byte_buf.h"
#include "check.h"
#include "test_util.h"

#include "core/pdk_core.h"
#include "formats/pickle/pickle_vm.h"

#include <stdlib.h>

/* ---- a tiny pickle builder ---- */

static tu_buf *pb_new(int protocol) {
    tu_buf *p = calloc(1, sizeof *p);
    if (protocol >= 2) {
        tu_buf_u8(p, 0x80);
        tu_buf_u8(p, (uint8_t)protocol);
    }
    return p;
}
static void pb_free(tu_buf *p) {
    tu_buf_free(p);
    free(p);
}
/* A string literal's bytes (without the terminating NUL). */
#define RAWS(p, lit) tu_buf_put((p), (lit), sizeof(lit) - 1)
#define PKL(lit)     (lit), sizeof(lit) - 1
static void text(tu_buf *p, const char *s) { /* BINUNICODE */
    tu_buf_u8(p, 'X');
    tu_buf_u32le(p, (uint32_t)strlen(s));
    tu_buf_put(p, s, strlen(s));
}
static void stext(tu_buf *p, const char *s) { /* SHORT_BINUNICODE */
    tu_buf_u8(p, 0x8c);
    tu_buf_u8(p, (uint8_t)strlen(s));
    tu_buf_put(p, s, strlen(s));
}
static void sbytes(tu_buf *p, const void *d, size_t n) { /* SHORT_BINBYTES / BINBYTES */
    if (n < 256) {
        tu_buf_u8(p, 'C');
        tu_buf_u8(p, (uint8_t)n);
    } else {
        tu_buf_u8(p, 'B');
        tu_buf_u32le(p, (uint32_t)n);
    }
    tu_buf_put(p, d, n);
}
static void global(tu_buf *p, const char *m, const char *n) {
    tu_buf_u8(p, 'c');
    tu_buf_put(p, m, strlen(m));
    tu_buf_u8(p, '\n');
    tu_buf_put(p, n, strlen(n));
    tu_buf_u8(p, '\n');
}
static void sglobal(tu_buf *p, const char *m, const char *n) {
    stext(p, m);
    stext(p, n);
    tu_buf_u8(p, 0x93);
}
static void int1(tu_buf *p, uint8_t v) {
    tu_buf_u8(p, 'K');
    tu_buf_u8(p, v);
}

/* numpy.dtype(code, False, True) + BUILD (3, order, None, None, None, -1, -1, 0). */
static void np_dtype(tu_buf *p, const char *code, const char *order) {
    global(p, "numpy", "dtype");
    text(p, code);
    tu_buf_u8(p, 0x89);
    tu_buf_u8(p, 0x88);
    tu_buf_u8(p, 0x87);
    tu_buf_u8(p, 'R');
    tu_buf_u8(p, '(');
    int1(p, 3);
    text(p, order);
    static const char tail[] = "NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t";
    tu_buf_put(p, tail, sizeof tail - 1);
    tu_buf_u8(p, 'b');
}

/* An ndarray the way numpy pickles it; `data` goes in as `data_op` ('C' bytes, 'U' Python 2
 * str, 'e' protocol-2 _codecs.encode text). */
static void np_array(tu_buf *p, const char *module, const char *code, const char *order, int nd,
                     const int64_t *dims, bool fortran, const void *data, size_t len,
                     char data_op) {
    global(p, module, "_reconstruct");
    global(p, "numpy", "ndarray");
    int1(p, 0);
    tu_buf_u8(p, 0x85);
    sbytes(p, "b", 1);
    tu_buf_u8(p, 0x87);
    tu_buf_u8(p, 'R');
    tu_buf_u8(p, '(');
    int1(p, 1);
    tu_buf_u8(p, '(');
    for (int i = 0; i < nd; i++) {
        tu_buf_u8(p, 'J');
        tu_buf_u32le(p, (uint32_t)dims[i]);
    }
    tu_buf_u8(p, 't');
    np_dtype(p, code, order);
    tu_buf_u8(p, fortran ? 0x88 : 0x89);
    if (data_op == 'U') {
        tu_buf_u8(p, 'U');
        tu_buf_u8(p, (uint8_t)len);
        tu_buf_put(p, data, len);
    } else if (data_op == 'e') {
        global(p, "_codecs", "encode");
        tu_buf_u8(p, 'X');
        size_t at = p->len;
        tu_buf_u32le(p, 0);
        size_t start = p->len;
        for (size_t i = 0; i < len; i++) {
            uint8_t c = ((const uint8_t *)data)[i];
            if (c < 0x80)
                tu_buf_u8(p, c);
            else {
                tu_buf_u8(p, (uint8_t)(0xC0 | c >> 6));
                tu_buf_u8(p, (uint8_t)(0x80 | (c & 0x3F)));
            }
        }
        uint32_t tl = (uint32_t)(p->len - start);
        memcpy(p->data + at, &tl, 4);
        text(p, "latin1");
        tu_buf_u8(p, 0x86);
        tu_buf_u8(p, 'R');
    } else {
        sbytes(p, data, len);
    }
    tu_buf_u8(p, 't');
    tu_buf_u8(p, 'b');
}

static pdckpt_value *load_opts(tu_buf *p, pdckpt_load_options *lo, pdckpt_status want,
                               pdckpt_error *err) {
    pdckpt_value *out = NULL;
    lo->format = PDCKPT_FORMAT_PICKLE;
    CHECK_STATUS(pdckpt_load_memory(p->data, p->len, lo, &out, NULL, err), want, err);
    return out;
}

/* The tests' stand-in classes, allowed so that the structures around them can be tested (the
 * allowlist itself is tested with load_opts and no allowance). */
static const char *const test_classes[] = {"mylib.Point", "mylib.Node", "mylib.Obj"};

static pdckpt_value *load(tu_buf *p, pdckpt_status want, pdckpt_error *err) {
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.allowed_globals = test_classes;
    lo.n_allowed_globals = sizeof test_classes / sizeof *test_classes;
    return load_opts(p, &lo, want, err);
}

/* Loads and expects the exact error. */
static void expect_error(tu_buf *p, pdckpt_status st, int64_t offset, const char *message) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    pdckpt_value_free(load(p, st, &err));
    CHECK_EQ_INT(err.offset, offset);
    CHECK_STR(err.message, message);
    CHECK_STR(err.source, "<memory>");
    pb_free(p);
}

static int64_t int_at(const pdckpt_value *v, size_t i) {
    int64_t x = -999;
    CHECK(pdckpt_value_get_int(pdckpt_value_at(v, i), &x));
    return x;
}

static const char *str_of(const pdckpt_value *v) {
    return pdckpt_value_get_string(v, NULL);
}

/* ---- scalars, ints, floats ---- */

static void test_scalars(void) {
    pdckpt_error      err = PDCKPT_ERROR_INIT;
    tu_buf           *p = pb_new(2);
    static const char body[] = "]q\x00(K\x01M\x00\x01J\xff\xff\xff\xff\x8a\x01\xff\x8a\x00"
                               "G?\xf8\x00\x00\x00\x00\x00\x00N\x88\x89\x8b\x02\x00\x00\x00"
                               "\x00\x80"
                               "e.";
    tu_buf_put(p, body, sizeof body - 1);
    pdckpt_value *v = load(p, PDCKPT_OK, &err);
    CHECK_EQ_INT(pdckpt_value_kind(v), PDCKPT_KIND_LIST);
    CHECK_EQ_INT(pdckpt_value_len(v), 10);
    CHECK_EQ_INT(int_at(v, 0), 1);
    CHECK_EQ_INT(int_at(v, 1), 256);
    CHECK_EQ_INT(int_at(v, 2), -1);
    CHECK_EQ_INT(int_at(v, 3), -1);
    CHECK_EQ_INT(int_at(v, 4), 0);
    double d = 0;
    CHECK(pdckpt_value_get_float(pdckpt_value_at(v, 5), &d) && d == 1.5);
    CHECK_EQ_INT(pdckpt_value_kind(pdckpt_value_at(v, 6)), PDCKPT_KIND_NONE);
    bool b = false;
    CHECK(pdckpt_value_get_bool(pdckpt_value_at(v, 7), &b) && b);
    CHECK(pdckpt_value_get_bool(pdckpt_value_at(v, 8), &b) && !b);
    CHECK_EQ_INT(int_at(v, 9), -32768); /* LONG4 00 80 */
    pdckpt_value_free(v);
    pb_free(p);
}

/* Ints beyond 64 bits: builtins.int carrying CPython's minimal little-endian two's complement. */
static void check_bigint(const pdckpt_value *v, const uint8_t *want, size_t n) {
    CHECK_EQ_INT(pdckpt_value_kind(v), PDCKPT_KIND_OBJECT);
    CHECK_STR(pdckpt_object_module(v), "builtins");
    CHECK_STR(pdckpt_object_name(v), "int");
    CHECK_EQ_INT(pdckpt_object_kind_of(v), PDCKPT_OBJECT_REDUCE);
    const pdckpt_value *args = pdckpt_object_args(v);
    CHECK_EQ_INT(pdckpt_value_kind(args), PDCKPT_KIND_TUPLE);
    size_t      len = 0;
    const void *bytes = pdckpt_value_get_bytes(pdckpt_value_at(args, 0), &len);
    CHECK(bytes && len == n && memcmp(bytes, want, n) == 0);
}

static void test_big_ints(void) {
    pdckpt_error         err = PDCKPT_ERROR_INIT;
    static const uint8_t two64[] = {0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const uint8_t minus_two64[] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff};
    tu_buf              *p = pb_new(2);
    static const char    body[] =
        "(\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01"    /* 2**64 */
        "\x8a\x0a\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff" /* -2**64, padded */
        "\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\xff"     /* -2**63 */
        "L18446744073709551616L\nL-18446744073709551616\n"
        "I123\nI01\nI-5\nl.";
    tu_buf_put(p, body, sizeof body - 1);
    pdckpt_value *v = load(p, PDCKPT_OK, &err);
    CHECK_EQ_INT(pdckpt_value_len(v), 8);
    check_bigint(pdckpt_value_at(v, 0), two64, 9);
    check_bigint(pdckpt_value_at(v, 1), minus_two64, 9);
    CHECK_EQ_INT(int_at(v, 2), INT64_MIN);
    check_bigint(pdckpt_value_at(v, 3), two64, 9);
    check_bigint(pdckpt_value_at(v, 4), minus_two64, 9);
    CHECK_EQ_INT(int_at(v, 5), 123);
    bool b = false;
    CHECK(pdckpt_value_get_bool(pdckpt_value_at(v, 6), &b) && b); /* Python 2's I01 */
    CHECK_EQ_INT(int_at(v, 7), -5);
    pdckpt_value_free(v);
    pb_free(p);
}

/* ---- text, Python 2 strings, bytes ---- */

static void test_strings(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    tu_buf      *p = pb_new(4);
    tu_buf_u8(p, '(');
    text(p, "caf\xc3\xa9");
    stext(p, "short");
    tu_buf_u8(p, 0x8d);
    tu_buf_u64le(p, 3);
    RAWS(p, "abc");
    static const char body[] = "U\x03\xe9t\xe9T\x02\x00\x00\x00ok"
                               "Vsnow \\u2603 \\U0001F600 back\\\\slash \\\\u0041\n"
                               "S'a\\x41\\n\\'q\\101'\nX\x03\x00\x00\x00\xed\xa0\x80l.";
    tu_buf_put(p, body, sizeof body - 1);
    pdckpt_value *v = load(p, PDCKPT_OK, &err);
    CHECK_EQ_INT(pdckpt_value_len(v), 8);
    CHECK_STR(str_of(pdckpt_value_at(v, 0)), "caf\xc3\xa9");
    CHECK_STR(str_of(pdckpt_value_at(v, 1)), "short");
    CHECK_STR(str_of(pdckpt_value_at(v, 2)), "abc");
    CHECK_STR(str_of(pdckpt_value_at(v, 3)), "\xc3\xa9t\xc3\xa9"); /* Python 2 str as latin-1 */
    CHECK_STR(str_of(pdckpt_value_at(v, 4)), "ok");
    CHECK_STR(str_of(pdckpt_value_at(v, 5)),
              "snow \xe2\x98\x83 \xf0\x9f\x98\x80 back\\\\slash \\\\u0041");
    CHECK_STR(str_of(pdckpt_value_at(v, 6)), "aA\n'qA");
    CHECK_STR(str_of(pdckpt_value_at(v, 7)), "\xed\xa0\x80"); /* a lone surrogate passes */
    pdckpt_value_free(v);
    pb_free(p);
}

static void test_bytes(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    tu_buf      *p = pb_new(5);
    tu_buf_u8(p, '(');
    sbytes(p, "\x00\xff", 2);
    tu_buf_u8(p, 0x8e);
    tu_buf_u64le(p, 1);
    tu_buf_u8(p, 'z');
    tu_buf_u8(p, 0x96);
    tu_buf_u64le(p, 2);
    RAWS(p, "ba");
    tu_buf_u8(p, 0x98); /* READONLY_BUFFER */
    global(p, "_codecs", "encode");
    text(p, "\xc3\xa9\x01");
    text(p, "latin1");
    tu_buf_u8(p, 0x86);
    tu_buf_u8(p, 'R');
    global(p, "builtins", "bytes");
    tu_buf_u8(p, ')');
    tu_buf_u8(p, 'R');
    global(p, "builtins", "bytearray");
    sbytes(p, "xy", 2);
    tu_buf_u8(p, 0x85);
    tu_buf_u8(p, 'R');
    tu_buf_u8(p, 'l');
    tu_buf_u8(p, '.');
    pdckpt_value *v = load(p, PDCKPT_OK, &err);
    CHECK_EQ_INT(pdckpt_value_len(v), 6);
    static const char *const want[] = {"\x00\xff", "z", "ba", "\xe9\x01", "", "xy"};
    static const size_t      lens[] = {2, 1, 2, 2, 0, 2};
    for (size_t i = 0; i < 6; i++) {
        size_t      len = 99;
        const void *b = pdckpt_value_get_bytes(pdckpt_value_at(v, i), &len);
        CHECK(b && len == lens[i] && memcmp(b, want[i], len) == 0);
    }
    pdckpt_value_free(v);
    pb_free(p);
}

/* ---- containers and the memo ---- */

static void test_containers(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    tu_buf      *p = pb_new(4);
    tu_buf_u8(p, 0x95); /* FRAME */
    tu_buf_u64le(p, 0);
    static const char body[] =
        "}\x94" /* dict, memo 0 */
        "\x8c\x01"
        "a]\x94(K\x01K\x02"
        "es" /* a: [1, 2] (memo 1), SETITEM */
        "(\x8c\x01"
        "b\x8c\x01"
        "x\x94\x8c\x01"
        "c)u" /* SETITEMS b: 'x' (memo 2), c: () */
        "\x8c\x01"
        "d\x8f\x94(K\x07K\x08\x90s" /* d: {7, 8} */
        "\x8c\x01"
        "e(K\x01K\x02\x91s" /* e: frozenset({1, 2}) */
        "\x8c\x01"
        "fK\x01K\x02K\x03\x87s" /* f: (1, 2, 3) */
        "\x8c\x01"
        "gh\x02s" /* g: memo 2, the same 'x' */
        "\x8c\x01"
        "h(K\x09K\x0a"
        "1K\x0b\x85s" /* POP_MARK: h: (11,) */
        "\x8c\x01"
        "iK\x05"
        "2\x86s" /* DUP: i: (5, 5) */
        "\x8c\x01"
        "jK\x06"
        "0K\x0c\x85s" /* POP: j: (12,) */
        "\x8c\x01"
        "kK\x03r\x00\x01\x00\x00j\x00\x01\x00\x00\x86s" /* LONG_BINPUT/GET: (3, 3) */
        ".";
    tu_buf_put(p, body, sizeof body - 1);
    pdckpt_value *v = load(p, PDCKPT_OK, &err);
    CHECK_EQ_INT(pdckpt_value_len(v), 11);
    const pdckpt_value *a = pdckpt_dict_get(v, "a");
    CHECK(pdckpt_value_kind(a) == PDCKPT_KIND_LIST && pdckpt_value_len(a) == 2 &&
          int_at(a, 1) == 2);
    CHECK_STR(str_of(pdckpt_dict_get(v, "b")), "x");
    CHECK(pdckpt_value_kind(pdckpt_dict_get(v, "c")) == PDCKPT_KIND_TUPLE);
    const pdckpt_value *d = pdckpt_dict_get(v, "d"), *e = pdckpt_dict_get(v, "e");
    CHECK(pdckpt_value_kind(d) == PDCKPT_KIND_SET && int_at(d, 0) == 7 && int_at(d, 1) == 8);
    CHECK(pdckpt_value_kind(e) == PDCKPT_KIND_SET && pdckpt_value_len(e) == 2);
    CHECK_EQ_INT(int_at(pdckpt_dict_get(v, "f"), 2), 3);
    CHECK(pdckpt_dict_get(v, "g") == pdckpt_dict_get(v, "b")); /* shared through the memo */
    CHECK_EQ_INT(int_at(pdckpt_dict_get(v, "h"), 0), 11);
    const pdckpt_value *i = pdckpt_dict_get(v, "i");
    CHECK(pdckpt_value_len(i) == 2 && int_at(i, 0) == 5 && int_at(i, 1) == 5);
    CHECK_EQ_INT(int_at(pdckpt_dict_get(v, "j"), 0), 12);
    CHECK_EQ_INT(pdckpt_value_len(pdckpt_dict_get(v, "k")), 2);
    pdckpt_value_free(v);
    pb_free(p);
}

/* Protocol 0: text opcodes, PUT/GET, DICT/LIST/TUPLE from marks, SETITEM/APPEND. */
static void test_protocol0(void) {
    pdckpt_error      err = PDCKPT_ERROR_INIT;
    tu_buf           *p = pb_new(0);
    static const char body[] = "(dp0\nVkey\np1\n(lp2\nF1.25\naI7\naL-3L\nasS'k2'\np3\n"
                               "(I1\nI2\ntp4\nsS'k3'\ng2\ns.";
    tu_buf_put(p, body, sizeof body - 1);
    pdckpt_value *v = load(p, PDCKPT_OK, &err);
    CHECK_EQ_INT(pdckpt_value_kind(v), PDCKPT_KIND_DICT);
    const pdckpt_value *l = pdckpt_dict_get(v, "key");
    double              d = 0;
    CHECK(pdckpt_value_get_float(pdckpt_value_at(l, 0), &d) && d == 1.25);
    CHECK(int_at(l, 1) == 7 && int_at(l, 2) == -3);
    CHECK_EQ_INT(int_at(pdckpt_dict_get(v, "k2"), 1), 2);
    CHECK_EQ_INT(pdckpt_value_len(v), 3);
    CHECK(pdckpt_dict_get(v, "k3") == l); /* GET 2: the same list */
    pdckpt_value_free(v);
    pb_free(p);
}

/* ---- opaque objects ---- */

static void test_objects(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    tu_buf      *p = pb_new(2);
    tu_buf_u8(p, '(');
    /* 1.5-style LR decay object: NEWOBJ + BUILD with its __dict__ */
    global(p, "paddle.fluid.dygraph.learning_rate_scheduler", "NaturalExpDecay");
    tu_buf_u8(p, ')');
    tu_buf_u8(p, 0x81);
    tu_buf_u8(p, '}');
    text(p, "step_num");
    int1(p, 3);
    tu_buf_u8(p, 's');
    tu_buf_u8(p, 'b');
    /* an unknown REDUCE, with items appended (a list subclass) */
    global(p, "mylib", "Bag");
    int1(p, 1);
    tu_buf_u8(p, 0x85);
    tu_buf_u8(p, 'R');
    tu_buf_u8(p, '(');
    int1(p, 4);
    int1(p, 5);
    tu_buf_u8(p, 'e');
    global(p, "collections", "OrderedDict"); /* -> a plain dict */
    tu_buf_u8(p, ')');
    tu_buf_u8(p, 'R');
    text(p, "k");
    int1(p, 9);
    tu_buf_u8(p, 's');
    global(p, "mylib", "func"); /* a bare global */
    tu_buf_u8(p, '(');
    global(p, "mylib", "Cls");
    int1(p, 2);
    tu_buf_u8(p, 'o'); /* OBJ */
    tu_buf_u8(p, '(');
    int1(p, 6);
    tu_buf_u8(p, 'i'); /* INST */
    RAWS(p, "mylib\nOld\n");
    tu_buf_u8(p, 'l');
    tu_buf_u8(p, '.');
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    load_opts(p, &lo, PDCKPT_ERR_UNSUPPORTED, &err); /* mylib is not on the allowlist */
    CHECK(strstr(err.message, "refusing global mylib.Bag: not on pdckpt's allowlist") != NULL);
    static const char *const allow[] = {"mylib.Bag", "mylib.func", "mylib.Cls", "mylib.Old"};
    lo.allowed_globals = allow;
    lo.n_allowed_globals = 4;
    pdckpt_value *v = load_opts(p, &lo, PDCKPT_OK, &err);
    CHECK_EQ_INT(pdckpt_value_len(v), 6);
    const pdckpt_value *lr = pdckpt_value_at(v, 0);
    CHECK_EQ_INT(pdckpt_object_kind_of(lr), PDCKPT_OBJECT_NEWOBJ);
    CHECK_STR(pdckpt_object_name(lr), "NaturalExpDecay");
    CHECK_EQ_INT(int_at(pdckpt_object_state(lr), 0), 3);
    CHECK_EQ_INT(pdckpt_value_len(pdckpt_object_args(lr)), 0);
    const pdckpt_value *bag = pdckpt_value_at(v, 1);
    CHECK(pdckpt_object_kind_of(bag) == PDCKPT_OBJECT_REDUCE &&
          int_at(pdckpt_object_args(bag), 0) == 1);
    CHECK(pdckpt_value_len(pdckpt_object_items(bag)) == 2 &&
          int_at(pdckpt_object_items(bag), 1) == 5);
    CHECK_EQ_INT(int_at(pdckpt_value_at(v, 2), 0), 9);
    CHECK_EQ_INT(pdckpt_value_kind(pdckpt_value_at(v, 2)), PDCKPT_KIND_DICT);
    CHECK_EQ_INT(pdckpt_object_kind_of(pdckpt_value_at(v, 3)), PDCKPT_OBJECT_GLOBAL);
    CHECK_STR(pdckpt_object_name(pdckpt_value_at(v, 4)), "Cls");
    CHECK_EQ_INT(int_at(pdckpt_object_args(pdckpt_value_at(v, 4)), 0), 2);
    CHECK_STR(pdckpt_object_module(pdckpt_value_at(v, 5)), "mylib");
    CHECK_EQ_INT(int_at(pdckpt_object_args(pdckpt_value_at(v, 5)), 0), 6);
    pdckpt_value_free(v);
    pb_free(p);
    /* NEWOBJ_EX: empty kwargs are fine, keyword arguments are not carried */
    p = pb_new(4);
    sglobal(p, "mylib", "Point");
    tu_buf_u8(p, ')');
    tu_buf_u8(p, '}');
    tu_buf_u8(p, 0x92);
    tu_buf_u8(p, '.');
    v = load(p, PDCKPT_OK, &err);
    CHECK_EQ_INT(pdckpt_object_kind_of(v), PDCKPT_OBJECT_NEWOBJ);
    pdckpt_value_free(v);
    pb_free(p);
    p = pb_new(4);
    sglobal(p, "mylib", "Point");
    tu_buf_u8(p, ')');
    tu_buf_u8(p, '}');
    stext(p, "x");
    int1(p, 1);
    tu_buf_u8(p, 's');
    tu_buf_u8(p, 0x92);
    tu_buf_u8(p, '.');
    expect_error(p, PDCKPT_ERR_UNSUPPORTED, 25, /* 2 + 7 + 7 + STACK_GLOBAL ) } 'x' K1 s */
                 "NEWOBJ_EX: keyword arguments to __new__ are not supported");
}

/* ---- numpy ---- */

static void check_tensor(const pdckpt_value *t, pdckpt_dtype dtype, int nd, const int64_t *dims,
                         const void *data, size_t len, const char *name) {
    pdckpt_tensor_view tv;
    CHECK(pdckpt_tensor_get(t, &tv));
    if (!pdckpt_tensor_get(t, &tv)) return;
    CHECK_STR(pdckpt_dtype_name(tv.dtype), pdckpt_dtype_name(dtype));
    CHECK_EQ_INT(tv.n_dims, nd);
    for (int i = 0; i < nd && i < tv.n_dims; i++) CHECK_EQ_INT(tv.dims[i], dims[i]);
    CHECK_EQ_INT(tv.n_bytes, len);
    CHECK(len == 0 || (tv.data && memcmp(tv.data, data, len) == 0));
    if (name)
        CHECK_STR(tv.name, name);
    else
        CHECK(tv.name == NULL);
}

static void test_numpy_layouts(void) {
    pdckpt_error         err = PDCKPT_ERROR_INIT;
    static const int32_t c_order[6] = {0, 1, 2, 3, 4, 5};
    static const int32_t f_order[6] = {0, 3, 1, 4, 2, 5}; /* [[0,1,2],[3,4,5]] column-major */
    static const uint8_t be[8] = {0x3f, 0xf8, 0, 0, 0, 0, 0, 0}; /* 1.5 big-endian */
    static const double  one_half = 1.5;
    static const float   f4[2] = {1.0f, -2.0f};
    int64_t              d23[2] = {2, 3}, d1[1] = {1}, d0x4[2] = {0, 4}, d2[1] = {2};
    tu_buf              *p = pb_new(2);
    tu_buf_u8(p, '(');
    np_array(p, "numpy.core.multiarray", "i4", "<", 2, d23, false, c_order, 24, 'C');
    np_array(p, "numpy._core.multiarray", "i4", "<", 2, d23, true, f_order, 24, 'C');
    np_array(p, "numpy.core.multiarray", "f8", ">", 1, d1, false, be, 8, 'C');
    np_array(p, "numpy.core.multiarray", "f8", "<", 0, NULL, false, &one_half, 8, 'C');
    np_array(p, "numpy.core.multiarray", "f2", "<", 2, d0x4, false, "", 0, 'C');
    np_array(p, "numpy.core.multiarray", "f4", "<", 1, d2, false, f4, 8, 'U'); /* Python 2 str */
    np_array(p, "numpy.core.multiarray", "f4", "<", 1, d2, false, f4, 8, 'e'); /* protocol 2 */
    np_array(p, "numpy.core.multiarray", "u2", "<", 1, d2, false, "\x80\x3f\x00\x40", 4, 'C');
    tu_buf_u8(p, 'l');
    tu_buf_u8(p, '.');
    pdckpt_value *v = load(p, PDCKPT_OK, &err);
    CHECK_EQ_INT(pdckpt_value_len(v), 8);
    check_tensor(pdckpt_value_at(v, 0), PDCKPT_DTYPE_INT32, 2, d23, c_order, 24, NULL);
    check_tensor(pdckpt_value_at(v, 1), PDCKPT_DTYPE_INT32, 2, d23, c_order, 24, NULL);
    check_tensor(pdckpt_value_at(v, 2), PDCKPT_DTYPE_FLOAT64, 1, d1, &one_half, 8, NULL);
    check_tensor(pdckpt_value_at(v, 3), PDCKPT_DTYPE_FLOAT64, 0, NULL, &one_half, 8, NULL);
    check_tensor(pdckpt_value_at(v, 4), PDCKPT_DTYPE_FLOAT16, 2, d0x4, "", 0, NULL);
    check_tensor(pdckpt_value_at(v, 5), PDCKPT_DTYPE_FLOAT32, 1, d2, f4, 8, NULL);
    check_tensor(pdckpt_value_at(v, 6), PDCKPT_DTYPE_FLOAT32, 1, d2, f4, 8, NULL);
    /* paddle.load makes every array of a file without (name, ndarray) tuples a tensor, and a
     * uint16 one a bfloat16 tensor: the tree carries that dtype */
    check_tensor(pdckpt_value_at(v, 7), PDCKPT_DTYPE_BFLOAT16, 1, d2, "\x80\x3f\x00\x40", 4, NULL);
    pdckpt_value_free(v);
    pb_free(p);
}

/* Arrays pdckpt cannot hold (object dtype, subclasses) stay opaque objects with their state. */
static void test_numpy_unsupported_is_opaque(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    int64_t      d2[1] = {2};
    tu_buf      *p = pb_new(2);
    np_array(p, "numpy.core.multiarray", "O8", "|", 1, d2, false, "", 0, 'C');
    tu_buf_u8(p, '.');
    /* an object array pickles a list as its data; rewrite the empty bytes as an empty list */
    p->data[p->len - 5] = ']';
    memmove(p->data + p->len - 4, p->data + p->len - 3, 3);
    p->len--;
    pdckpt_value *v = load(p, PDCKPT_OK, &err);
    CHECK_EQ_INT(pdckpt_value_kind(v), PDCKPT_KIND_OBJECT);
    CHECK_STR(pdckpt_object_name(v), "_reconstruct");
    CHECK_EQ_INT(pdckpt_value_len(pdckpt_object_state(v)), 5);
    pdckpt_value_free(v);
    pb_free(p);
    /* data that does not fit the shape is an error, as in numpy */
    p = pb_new(2);
    np_array(p, "numpy.core.multiarray", "f4", "<", 1, d2, false, "abc", 3, 'C');
    size_t build_at = p->len - 1; /* the array's own BUILD */
    tu_buf_u8(p, '.');
    expect_error(p, PDCKPT_ERR_FORMAT, (int64_t)build_at,
                 "BUILD: expected 8 bytes of float32 array data, found 3");
}

static void test_numpy_frombuffer_and_scalars(void) {
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    static const float f4[4] = {1, 2, 3, 4};
    static const float f4_t[4] = {1, 3, 2, 4};
    int64_t            d22[2] = {2, 2};
    tu_buf            *p = pb_new(5);
    tu_buf_u8(p, '(');
    for (int order = 0; order < 2; order++) {
        sglobal(p, "numpy._core.numeric", "_frombuffer");
        tu_buf_u8(p, '(');
        tu_buf_u8(p, 0x96);
        tu_buf_u64le(p, 16);
        tu_buf_put(p, f4, 16);
        np_dtype(p, "f4", "<");
        int1(p, 2);
        int1(p, 2);
        tu_buf_u8(p, 0x86);
        stext(p, order ? "F" : "C");
        tu_buf_u8(p, 't');
        tu_buf_u8(p, 'R');
    }
    static const struct {
        const char *code, *order;
        const char *data;
        size_t      len;
    } sc[] = {{"f4", "<", "\x00\x00\xc0\x3f", 4},
              {"i8", "<", "\xfd\xff\xff\xff\xff\xff\xff\xff", 8},
              {"b1", "|", "\x01", 1},
              {"u8", "<", "\xff\xff\xff\xff\xff\xff\xff\xff", 8},
              {"f2", "<", "\x00\x3e", 2},
              {"c8", "<", "\x00\x00\x80\x3f\x00\x00\x00\x40", 8}};
    for (size_t i = 0; i < 6; i++) {
        global(p, "numpy.core.multiarray", "scalar");
        np_dtype(p, sc[i].code, sc[i].order);
        sbytes(p, sc[i].data, sc[i].len);
        tu_buf_u8(p, 0x86);
        tu_buf_u8(p, 'R');
    }
    tu_buf_u8(p, 'l');
    tu_buf_u8(p, '.');
    pdckpt_value *v = load(p, PDCKPT_OK, &err);
    CHECK_EQ_INT(pdckpt_value_len(v), 8);
    check_tensor(pdckpt_value_at(v, 0), PDCKPT_DTYPE_FLOAT32, 2, d22, f4, 16, NULL);
    check_tensor(pdckpt_value_at(v, 1), PDCKPT_DTYPE_FLOAT32, 2, d22, f4_t, 16, NULL);
    double d = 0;
    CHECK(pdckpt_value_get_float(pdckpt_value_at(v, 2), &d) && d == 1.5);
    CHECK_EQ_INT(int_at(v, 3), -3);
    bool b = false;
    CHECK(pdckpt_value_get_bool(pdckpt_value_at(v, 4), &b) && b);
    static const uint8_t u64max[9] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0};
    check_bigint(pdckpt_value_at(v, 5), u64max, 9);
    CHECK(pdckpt_value_get_float(pdckpt_value_at(v, 6), &d) && d == 1.5);
    check_tensor(pdckpt_value_at(v, 7), PDCKPT_DTYPE_COMPLEX64, 0, NULL, sc[5].data, 8, NULL);
    pdckpt_value_free(v);
    pb_free(p);
}

/* ---- Paddle's conventions ---- */

/* Paddle's generic-path Tensor: tuple(((name, ndarray),)) -> the tensor named name, as paddle.load
 * gives it; a user's own tuple (name, ndarray) stays a tuple.  Only tensors paddle.load makes get
 * Paddle's dtype: there a uint16 array is bfloat16, a plain array beside them keeps uint16. */
static void test_paddle_tensor_tuples(void) {
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    static const float f4[2] = {1, 2};
    int64_t            d2[1] = {2};
    tu_buf            *p = pb_new(4);
    tu_buf_u8(p, '(');
    sglobal(p, "builtins", "tuple");
    stext(p, "linear_0.w_0");
    np_array(p, "numpy.core.multiarray", "f4", "<", 1, d2, false, f4, 8, 'C');
    tu_buf_u8(p, 0x86);
    tu_buf_u8(p, 0x85);
    tu_buf_u8(p, 'R');
    stext(p, "mine");
    np_array(p, "numpy.core.multiarray", "f4", "<", 1, d2, false, f4, 8, 'C');
    tu_buf_u8(p, 0x86);
    sglobal(p, "builtins", "tuple");
    stext(p, "bf");
    np_array(p, "numpy.core.multiarray", "u2", "<", 1, d2, false, "\x80\x3f\x00\x40", 4, 'C');
    tu_buf_u8(p, 0x86);
    tu_buf_u8(p, 0x85);
    tu_buf_u8(p, 'R');
    np_array(p, "numpy.core.multiarray", "u2", "<", 1, d2, false, "\x80\x3f\x00\x40", 4, 'C');
    tu_buf_u8(p, 'l');
    tu_buf_u8(p, '.');
    pdckpt_value       *v = load(p, PDCKPT_OK, &err);
    const pdckpt_value *plain = pdckpt_value_at(v, 1);
    check_tensor(pdckpt_value_at(v, 0), PDCKPT_DTYPE_FLOAT32, 1, d2, f4, 8, "linear_0.w_0");
    CHECK(pdckpt_value_kind(plain) == PDCKPT_KIND_TUPLE && pdckpt_value_len(plain) == 2);
    check_tensor(pdckpt_value_at(plain, 1), PDCKPT_DTYPE_FLOAT32, 1, d2, f4, 8, NULL);
    check_tensor(pdckpt_value_at(v, 2), PDCKPT_DTYPE_BFLOAT16, 1, d2, "\x80\x3f\x00\x40", 4, "bf");
    check_tensor(pdckpt_value_at(v, 3), PDCKPT_DTYPE_UINT16, 1, d2, "\x80\x3f\x00\x40", 4, NULL);
    pdckpt_value_free(v);
    pb_free(p);
}

static void test_dense_tensor_forms(void) {
    pdckpt_error         err = PDCKPT_ERROR_INIT;
    static const int64_t i8[1] = {42};
    int64_t              d1[1] = {1};
    tu_buf              *p = pb_new(2);
    tu_buf_u8(p, '(');
    global(p, "__builtin__", "eval");
    text(p, "data");
    tu_buf_u8(p, '}');
    text(p, "data");
    np_array(p, "numpy.core.multiarray", "i8", "<", 1, d1, false, i8, 8, 'e');
    tu_buf_u8(p, 's');
    tu_buf_u8(p, 0x86);
    tu_buf_u8(p, 'R');
    global(p, "paddle.framework.io_utils", "_reconstruct_dense_tensor_data");
    np_array(p, "numpy.core.multiarray", "i8", "<", 1, d1, false, i8, 8, 'C');
    tu_buf_u8(p, 0x85);
    tu_buf_u8(p, 'R');
    tu_buf_u8(p, 'l');
    tu_buf_u8(p, '.');
    pdckpt_value *v = load(p, PDCKPT_OK, &err);
    check_tensor(pdckpt_value_at(v, 0), PDCKPT_DTYPE_INT64, 1, d1, i8, 8, NULL);
    check_tensor(pdckpt_value_at(v, 1), PDCKPT_DTYPE_INT64, 1, d1, i8, 8, NULL);
    pdckpt_value_free(v);
    pb_free(p);
    /* any other use of eval is refused */
    p = pb_new(2);
    global(p, "__builtin__", "eval");
    text(p, "__import__('os').system('true')");
    tu_buf_u8(p, 0x85);
    size_t at = p->len; /* 2 + GLOBAL (18) + BINUNICODE (36) + TUPLE1 = 57 */
    tu_buf_u8(p, 'R');
    tu_buf_u8(p, '.');
    CHECK_EQ_INT(at, 57);
    expect_error(p, PDCKPT_ERR_UNSUPPORTED, (int64_t)at,
                 "REDUCE: refusing to call builtins.eval: pdckpt accepts it only as Paddle's "
                 "DenseTensor form (the argument 'data' and a dict {'data': array})");
}

/* A protocol-2 state dict with a split big array: w@@.0 + w@@.1 + UnpackBigParamInfor@@. */
static void test_big_array_rejoined(void) {
    pdckpt_error         err = PDCKPT_ERROR_INIT;
    static const int32_t part0[4] = {1, 2, 3, 4}, part1[2] = {5, 6}, whole[6] = {1, 2, 3, 4, 5, 6};
    int64_t              d4[1] = {4}, d2[1] = {2}, d23[2] = {2, 3};
    tu_buf              *p = pb_new(2);
    tu_buf_u8(p, '}');
    tu_buf_u8(p, '(');
    text(p, "b");
    int1(p, 1);
    text(p, "StructuredToParameterName@@");
    tu_buf_u8(p, '}');
    tu_buf_u8(p, '(');
    text(p, "w");
    text(p, "linear_9.w_0");
    text(p, "b");
    text(p, "not_a_tensor");
    tu_buf_u8(p, 'u');
    text(p, "w@@.0");
    np_array(p, "numpy.core.multiarray", "i4", "<", 1, d4, false, part0, 16, 'e');
    text(p, "w@@.1");
    np_array(p, "numpy.core.multiarray", "i4", "<", 1, d2, false, part1, 8, 'e');
    text(p, "UnpackBigParamInfor@@");
    tu_buf_u8(p, '}');
    text(p, "w");
    tu_buf_u8(p, '}');
    tu_buf_u8(p, '(');
    text(p, "OriginShape");
    int1(p, 2);
    int1(p, 3);
    tu_buf_u8(p, 0x86);
    text(p, "slices");
    tu_buf_u8(p, ']');
    tu_buf_u8(p, '(');
    text(p, "w@@.0");
    text(p, "w@@.1");
    tu_buf_u8(p, 'e');
    tu_buf_u8(p, 'u');
    tu_buf_u8(p, 's');
    tu_buf_u8(p, 'u');
    tu_buf_u8(p, '.');
    pdckpt_value *v = load(p, PDCKPT_OK, &err);
    CHECK_EQ_INT(pdckpt_value_len(v), 3);
    CHECK_STR(str_of(pdckpt_dict_key_at(v, 0)), "b");
    CHECK_STR(str_of(pdckpt_dict_key_at(v, 1)), "StructuredToParameterName@@");
    CHECK_STR(str_of(pdckpt_dict_key_at(v, 2)), "w"); /* re-joined keys go to the end */
    check_tensor(pdckpt_dict_get(v, "w"), PDCKPT_DTYPE_INT32, 2, d23, whole, 24, "linear_9.w_0");
    CHECK_EQ_INT(pdckpt_value_len(pdckpt_dict_get(v, "StructuredToParameterName@@")), 2);
    pdckpt_value_free(v);
    pb_free(p);
}

/* The spec's worked example (§7, Case A, protocol 4), byte for byte. */
static void test_spec_worked_example(void) {
    static const char hex[] =
        "800495d4000000000000007d94288c0177948c156e756d70792e636f72652e6d756c74696172726179948c0c"
        "5f7265636f6e7374727563749493948c056e756d7079948c076e6461727261799493944b0085944301629487"
        "945294284b014b024b02869468058c0564747970659493948c02663494898887945294284b038c013c944e4e"
        "4e4affffffff4affffffff4b007494628943100000803f000000400000404000008040947494628c1b537472"
        "75637475726564546f506172616d657465724e616d654040947d9468018c0c6c696e6561725f302e775f3094"
        "73752e";
    tu_buf *p = pb_new(0);
    for (size_t i = 0; i + 1 < sizeof hex; i += 2) {
        unsigned byte;
        sscanf(hex + i, "%2x", &byte);
        tu_buf_u8(p, (uint8_t)byte);
    }
    CHECK_EQ_INT(p->len, 223);
    pdckpt_error       err = PDCKPT_ERROR_INIT;
    pdckpt_value      *v = load(p, PDCKPT_OK, &err);
    static const float w[4] = {1, 2, 3, 4};
    int64_t            d22[2] = {2, 2};
    check_tensor(pdckpt_dict_get(v, "w"), PDCKPT_DTYPE_FLOAT32, 2, d22, w, 16, "linear_0.w_0");
    CHECK_STR(str_of(pdckpt_dict_get(pdckpt_dict_get(v, "StructuredToParameterName@@"), "w")),
              "linear_0.w_0");
    pdckpt_value_free(v);
    pb_free(p);
}

/* ---- hostile input ---- */

#define NOT_ALLOWED                                                                                \
    ": not on pdckpt's allowlist of what Paddle and numpy checkpoints name (pdckpt never imports " \
    "or calls anything from a pickle; allowed_globals / --allow-global carry a class you trust "   \
    "as "                                                                                          \
    "an inert object)"

/* Globals off the allowlist are refused at the GLOBAL / STACK_GLOBAL / INST naming them, whatever
 * would have called them; Python 2 names are judged after CPython's renaming. */
static void test_hostile_globals(void) {
    tu_buf *p = pb_new(2);
    text(p, "x");
    size_t at = p->len;
    global(p, "posix", "system");
    text(p, "touch /tmp/pdckpt-pwned");
    tu_buf_u8(p, 0x85);
    tu_buf_u8(p, 'R');
    tu_buf_u8(p, '.');
    expect_error(p, PDCKPT_ERR_UNSUPPORTED, (int64_t)at,
                 "GLOBAL: refusing global posix.system" NOT_ALLOWED);
    static const char *const bad[][2] = {
        {"os", "system"},       {"nt", "system"},        {"subprocess", "Popen"},
        {"builtins", "exec"},   {"builtins", "getattr"}, {"_operator", "attrgetter"},
        {"pydoc", "pipepager"}, {"os.path", "join"},     {"builtins", "__import__"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        p = pb_new(4);
        stext(p, bad[i][0]);
        stext(p, bad[i][1]);
        at = p->len;
        tu_buf_u8(p, 0x93);
        tu_buf_u8(p, '.');
        char want[400];
        snprintf(want, sizeof want, "STACK_GLOBAL: refusing global %s.%s" NOT_ALLOWED, bad[i][0],
                 bad[i][1]);
        expect_error(p, PDCKPT_ERR_UNSUPPORTED, (int64_t)at, want);
    }
    /* a dotted name resolves attributes of attributes under protocol 4: never */
    p = pb_new(4);
    stext(p, "codecs");
    stext(p, "builtins.exec");
    at = p->len;
    tu_buf_u8(p, 0x93);
    tu_buf_u8(p, '.');
    expect_error(p, PDCKPT_ERR_UNSUPPORTED, (int64_t)at,
                 "STACK_GLOBAL: refusing global codecs.builtins.exec: a dotted name is an "
                 "attribute path, which pdckpt never resolves");
    /* Python 2 names: __builtin__ is builtins below protocol 3 (and nothing above) */
    p = pb_new(2);
    global(p, "__builtin__", "__import__");
    tu_buf_u8(p, '.');
    expect_error(
        p, PDCKPT_ERR_UNSUPPORTED, 2,
        "GLOBAL: refusing global __builtin__.__import__ (builtins.__import__)" NOT_ALLOWED);
    p = pb_new(3);
    global(p, "__builtin__", "set");
    tu_buf_u8(p, '.');
    expect_error(p, PDCKPT_ERR_UNSUPPORTED, 2,
                 "GLOBAL: refusing global __builtin__.set" NOT_ALLOWED);
    /* copyreg._reconstructor(subprocess.Popen, ...): the class is refused where it is named */
    p = pb_new(2);
    global(p, "copy_reg", "_reconstructor");
    at = p->len;
    global(p, "subprocess", "Popen");
    tu_buf_u8(p, '.');
    expect_error(p, PDCKPT_ERR_UNSUPPORTED, (int64_t)at,
                 "GLOBAL: refusing global subprocess.Popen" NOT_ALLOWED);
    /* INST names its class inline */
    p = pb_new(0);
    tu_buf_u8(p, '(');
    text(p, "ls");
    tu_buf_u8(p, 'i');
    RAWS(p, "subprocess\ncall\n");
    tu_buf_u8(p, '.');
    expect_error(p, PDCKPT_ERR_UNSUPPORTED, 8, /* MARK, BINUNICODE 'ls' (7 bytes), INST */
                 "INST: refusing global subprocess.call" NOT_ALLOWED);
}

/* Globals on the table are accepted only in the structures they have in real files. */
static void test_allowlist_roles(void) {
    tu_buf *p = pb_new(2); /* eval outside Paddle's DenseTensor form */
    global(p, "builtins", "eval");
    text(p, "1+1");
    tu_buf_u8(p, 0x85);
    tu_buf_u8(p, 'R');
    tu_buf_u8(p, '.');
    expect_error(p, PDCKPT_ERR_UNSUPPORTED, 26,
                 "REDUCE: refusing to call builtins.eval: pdckpt accepts it only as Paddle's "
                 "DenseTensor form (the argument 'data' and a dict {'data': array})");
    p = pb_new(2); /* eval as a value */
    tu_buf_u8(p, ']');
    global(p, "builtins", "eval");
    tu_buf_u8(p, 'a');
    tu_buf_u8(p, '.');
    expect_error(p, PDCKPT_ERR_UNSUPPORTED, 18,
                 "APPEND: refusing builtins.eval as a value: pdckpt accepts it only as the "
                 "callable of Paddle's DenseTensor form eval('data', {'data': array})");
    p = pb_new(2); /* a plain class called: its __init__ would run */
    global(p, "paddle.base.libpaddle", "GeneratorState");
    tu_buf_u8(p, ')');
    tu_buf_u8(p, 'R');
    tu_buf_u8(p, '.');
    expect_error(p, PDCKPT_ERR_UNSUPPORTED, 41,
                 "REDUCE: refusing to call paddle.base.libpaddle.GeneratorState: pdckpt rebuilds "
                 "this class only as NEWOBJ + BUILD (calling it would run its __init__)");
    p = pb_new(2); /* numpy.ndarray is only an argument of _reconstruct */
    global(p, "numpy", "ndarray");
    tu_buf_u8(p, ')');
    tu_buf_u8(p, 0x81);
    tu_buf_u8(p, '.');
    expect_error(p, PDCKPT_ERR_UNSUPPORTED, 18,
                 "NEWOBJ: refusing to call numpy.ndarray: it is not a class pdckpt rebuilds with "
                 "NEWOBJ");
    pdckpt_error err = PDCKPT_ERROR_INIT;
    p = pb_new(2); /* builtins cannot be allowed */
    tu_buf_u8(p, 'N');
    tu_buf_u8(p, '.');
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    const char *const   allow[] = {"builtins.exec"};
    lo.allowed_globals = allow;
    lo.n_allowed_globals = 1;
    load_opts(p, &lo, PDCKPT_ERR_ARGUMENT, &err);
    CHECK_STR(err.message, "allowed global 'builtins.exec': expected module.name (a class you "
                           "trust, not a name from builtins)");
    pb_free(p);
}

/* A value may not be changed once it is inside another: reference cycles cannot form. */
static void test_cycles_refused(void) {
    tu_buf *p = pb_new(2);
    RAWS(p, "]q\x00h\x00"
            "a."); /* l = []; l.append(l) */
    expect_error(p, PDCKPT_ERR_UNSUPPORTED, 7,
                 "APPEND: a list cannot contain itself (pdckpt refuses reference cycles)");
    p = pb_new(2);
    RAWS(p, "]q\x00]q\x01h\x00"
            "aa."); /* a = []; b = [a]; a.append(b) */
    expect_error(p, PDCKPT_ERR_UNSUPPORTED, 11,
                 "APPEND: cannot add items to a list that is already inside another value (a "
                 "self-referencing pickle; pdckpt refuses reference cycles)");
    p = pb_new(2);
    RAWS(p, "}q\x00X\x01\x00\x00\x00kh\x00s."); /* d = {}; d['k'] = d */
    expect_error(p, PDCKPT_ERR_UNSUPPORTED, 13,
                 "SETITEM: a dict cannot contain itself (pdckpt refuses reference cycles)");
    p = pb_new(2);
    global(p, "mylib", "Node");
    tu_buf_u8(p, ')');
    tu_buf_u8(p, 0x81);
    RAWS(p, "q\x00}X\x04\x00\x00\x00selfh\x00s");
    size_t at = p->len;
    tu_buf_u8(p, 'b');
    tu_buf_u8(p, '.');
    expect_error(p, PDCKPT_ERR_UNSUPPORTED, (int64_t)at,
                 "BUILD: cannot set state on an object that is already inside another value (a "
                 "self-referencing pickle; pdckpt refuses reference cycles)");
}

/* Objects: items and state may not be the object itself; a bare global takes no items. */
static void test_object_cycles_refused(void) {
    for (int form = 0; form < 2; form++) {
        tu_buf *p = pb_new(4);
        sglobal(p, "mylib", "Node");
        tu_buf_u8(p, ')');
        tu_buf_u8(p, 0x81);
        size_t at = p->len + 1;
        RAWS(p, "2");
        tu_buf_u8(p, form == 0 ? 'a' : 'b');
        tu_buf_u8(p, '.');
        expect_error(p, PDCKPT_ERR_UNSUPPORTED, (int64_t)at,
                     form == 0
                         ? "APPEND: an object cannot contain itself (pdckpt refuses reference "
                           "cycles)"
                         : "BUILD: an object cannot be its own state (pdckpt refuses "
                           "reference cycles)");
    }
    tu_buf *p = pb_new(4);
    sglobal(p, "mylib", "Node");
    int1(p, 1);
    size_t at = p->len;
    tu_buf_u8(p, 'a');
    tu_buf_u8(p, '.');
    expect_error(p, PDCKPT_ERR_UNSUPPORTED, (int64_t)at,
                 "APPEND: expected an instance to add items to, found the bare global mylib.Node");
}

static void test_limits(void) {
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    /* max_depth: [[[[]]]] is 4 levels */
    tu_buf *p = pb_new(2);
    RAWS(p, "]]]]aaa.");
    lo.max_depth = 3;
    pdckpt_value_free(load_opts(p, &lo, PDCKPT_ERR_LIMIT, &err));
    CHECK_EQ_INT(err.offset, 8);
    CHECK_STR(err.message,
              "APPEND: expected nesting of at most 3 levels (max_depth), found deeper");
    lo.max_depth = 4;
    pdckpt_value_free(load_opts(p, &lo, PDCKPT_OK, &err));
    pb_free(p);
    /* max_memo */
    p = pb_new(2);
    RAWS(p, "Nq\x0a.");
    lo = (pdckpt_load_options)PDCKPT_LOAD_OPTIONS_INIT;
    lo.max_memo = 10;
    pdckpt_value_free(load_opts(p, &lo, PDCKPT_ERR_LIMIT, &err));
    CHECK_EQ_INT(err.offset, 3);
    CHECK_STR(err.message, "BINPUT: expected a memo index below 10 (max_memo), found 10");
    pb_free(p);
    /* the default memo limit and a memo index that would allocate far more than the file */
    p = pb_new(2);
    RAWS(p, "Nr\xff\xff\xff\x7f.");
    expect_error(p, PDCKPT_ERR_LIMIT, 3,
                 "LONG_BINPUT: expected a memo index below 16777216 (max_memo), found 2147483647");
    p = pb_new(2);
    RAWS(p, "Nr\x00\x00\xff\x00.");
    expect_error(p, PDCKPT_ERR_LIMIT, 3,
                 "LONG_BINPUT: loading needs more than 67108900 bytes of memory (max_alloc_bytes; "
                 "the default is 4 x the input size + 64 MiB)");
    /* max_alloc_bytes */
    p = pb_new(2);
    char long_text[2000];
    memset(long_text, 'a', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    text(p, long_text);
    tu_buf_u8(p, '.');
    lo = (pdckpt_load_options)PDCKPT_LOAD_OPTIONS_INIT;
    lo.max_alloc_bytes = 1000;
    pdckpt_value_free(load_opts(p, &lo, PDCKPT_ERR_LIMIT, &err));
    CHECK_EQ_INT(err.offset, 2);
    CHECK_STR(err.message, "BINUNICODE: loading needs more than 1000 bytes of memory "
                           "(max_alloc_bytes; the default is 4 x the input size + 64 MiB)");
    pb_free(p);
    /* max_tensor_bytes */
    static const float f4[2] = {1, 2};
    int64_t            d2[1] = {2};
    p = pb_new(2);
    np_array(p, "numpy.core.multiarray", "f4", "<", 1, d2, false, f4, 8, 'C');
    size_t at = p->len - 1;
    tu_buf_u8(p, '.');
    lo = (pdckpt_load_options)PDCKPT_LOAD_OPTIONS_INIT;
    lo.max_tensor_bytes = 7;
    pdckpt_value_free(load_opts(p, &lo, PDCKPT_ERR_LIMIT, &err));
    CHECK_EQ_INT(err.offset, (int64_t)at);
    CHECK_STR(err.message, "BUILD: expected arrays of at most 7 bytes (max_tensor_bytes), found 8");
    pb_free(p);
}

/* A "billion laughs": level L is a list of two references to level L-1, so it expands to
 * 2^(L+1) - 1 values.  The default limit (max_alloc_bytes / 16, with max_alloc_bytes = 4 x the
 * input + 64 MiB) is a little over 2^22: level 22 is the first one beyond it. */
static void test_memo_bomb(void) {
    tu_buf *p = pb_new(2);
    RAWS(p, "K\x01q\x00");
    size_t at = 0;
    for (int level = 1; level <= 40; level++) {
        tu_buf_u8(p, ']');
        tu_buf_u8(p, '(');
        for (int k = 0; k < 2; k++) {
            tu_buf_u8(p, 'h');
            tu_buf_u8(p, (uint8_t)(level - 1));
        }
        if (level == 22) at = p->len;
        tu_buf_u8(p, 'e');
        tu_buf_u8(p, 'q');
        tu_buf_u8(p, (uint8_t)level);
    }
    tu_buf_u8(p, '.');
    unsigned long long limit = (4ull * p->len + (64ull << 20)) / 16;
    CHECK(limit > (1ull << 22) - 1 && limit < (1ull << 23) - 1);
    char want[300];
    snprintf(want, sizeof want,
             "APPENDS: expected at most %llu values once shared (memo) "
             "references are expanded (max_alloc_bytes / 16), found more",
             limit);
    expect_error(p, PDCKPT_ERR_LIMIT, (int64_t)at, want);
}

/* Declared sizes beyond the file, truncation, and malformed streams. */
static void test_malformed(void) {
    struct {
        const char   *bytes;
        size_t        len;
        pdckpt_status st;
        int64_t       off;
        const char   *msg;
    } c[] = {
        {PKL("\x80\x04X\xff\xff\xff\xff"
             "abc."),
         PDCKPT_ERR_FORMAT, 2,
         "BINUNICODE: expected 4294967295 bytes of text, found 4 before the end" PK_TRUNCATED_HINT},
        {PKL("\x80\x04\x8e\x00\x00\x00\x00\x00\x00\x00\x40."), PDCKPT_ERR_FORMAT, 2,
         "BINBYTES8: expected 4611686018427387904 bytes of bytes, found 1 before the "
         "end" PK_TRUNCATED_HINT},
        {PKL("\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7f."), PDCKPT_ERR_FORMAT, 2,
         "FRAME: expected a frame of at most 1 bytes (what is left), found "
         "9223372036854775807" PK_TRUNCATED_HINT},
        {PKL("\x80\x02\x8b\xff\xff\xff\x7f."), PDCKPT_ERR_FORMAT, 2,
         "LONG4: expected 2147483647 bytes of integer, found 1 before the end" PK_TRUNCATED_HINT},
        {PKL("\x80\x02\x8b\xff\xff\xff\xff."), PDCKPT_ERR_FORMAT, 2,
         "LONG4: expected a byte count >= 0, found -1"},
        {PKL("\x80\x02T\xfe\xff\xff\xff."), PDCKPT_ERR_FORMAT, 2,
         "BINSTRING: expected a length >= 0, found -2"},
        {PKL("\x80\x02h\x05."), PDCKPT_ERR_FORMAT, 2,
         "BINGET: expected memo entry 5 to have been stored, found none"},
        {PKL("\x80\x02R."), PDCKPT_ERR_FORMAT, 2,
         "REDUCE: expected a value on the stack, found none"},
        {PKL("\x80\x02(Na."), PDCKPT_ERR_FORMAT, 4,
         "APPEND: expected a value on the stack above the last MARK, found none"},
        {PKL("\x80\x02N"), PDCKPT_ERR_FORMAT, 3,
         "expected an opcode (the pickle ends with STOP), found the end of the "
         "input" PK_TRUNCATED_HINT},
        {PKL("\x80\x02\xff."), PDCKPT_ERR_FORMAT, 2, "expected a pickle opcode, found byte 0xff"},
        {PKL("\x80\x06N."), PDCKPT_ERR_UNSUPPORTED, 0,
         "PROTO: expected pickle protocol 0-5, found 6"},
        {PKL("\x80\x02X\x02\x00\x00\x00\xc3(."), PDCKPT_ERR_FORMAT, 2,
         "BINUNICODE: expected UTF-8 text, found byte 0xc3 at text offset 0"},
        {PKL("\x80\x02]K\x01K\x02s."), PDCKPT_ERR_FORMAT, 7,
         "SETITEM: expected a dict or object to set items on, found a list"},
        {PKL("\x80\x02}]N\x86K\x01s."), PDCKPT_ERR_FORMAT, 8,
         "SETITEM: expected a hashable dict key, found a tuple"},
        {PKL("\x80\x02K\x01)R."), PDCKPT_ERR_UNSUPPORTED, 5,
         "REDUCE: expected a global (module.name) as the callable, found a int"},
        {PKL("\x80\x02Q."), PDCKPT_ERR_UNSUPPORTED, 2,
         "BINPERSID: persistent IDs need the saving program's resolver; not supported"},
        {PKL("\x80\x02\x82\x01."), PDCKPT_ERR_UNSUPPORTED, 2,
         "EXT1: copyreg extension codes are not supported"},
        {PKL("\x80\x05\x97."), PDCKPT_ERR_UNSUPPORTED, 2,
         "NEXT_BUFFER: out-of-band buffers are not supported"},
        {PKL("\x80\x04\x8c\x01"
             "a\x8c\x00\x93."),
         PDCKPT_ERR_FORMAT, 7,
         "STACK_GLOBAL: expected a global name (non-empty UTF-8 text), found 0 unusable bytes"},
        {PKL("(S'abc\n."), PDCKPT_ERR_FORMAT, 1, "STRING: expected a quoted string"},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        tu_buf *p = pb_new(0);
        tu_buf_put(p, c[i].bytes, c[i].len);
        expect_error(p, c[i].st, c[i].off, c[i].msg);
    }
}

/* ---- zero copy ---- */

static const void *tensor_data(const pdckpt_value *root, pdckpt_buffer **buffer) {
    pdckpt_tensor_view tv;
    if (!pdckpt_tensor_get(pdckpt_dict_get(root, "w"), &tv)) return NULL;
    *buffer = tv.buffer;
    return tv.data;
}

/* Protocol 3/4 array bytes are returned in place: inside the file's mapping (or its private
 * read), or inside caller memory. */
static void test_zero_copy(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    enum { N = 25000 };
    float *w = malloc(N * sizeof *w);
    for (int i = 0; i < N; i++) w[i] = (float)i * 0.5f;
    int64_t dims[1] = {N};
    tu_buf *p = pb_new(4);
    tu_buf_u8(p, '}');
    stext(p, "w");
    np_array(p, "numpy.core.multiarray", "f4", "<", 1, dims, false, w, sizeof(float) * N, 'C');
    size_t data_off = p->len - 2 - sizeof(float) * N;
    tu_buf_u8(p, 's');
    tu_buf_u8(p, '.');
    char *dir = tu_tempdir(), path[4200];
    snprintf(path, sizeof path, "%s/z.pdparams", dir);
    CHECK(tu_write_file(path, p->data, p->len) == 0);
    for (int mapped = 1; mapped >= 0; mapped--) {
        pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
        lo.zero_copy = mapped;
        pdckpt_value *v = NULL;
        pdckpt_format fmt = PDCKPT_FORMAT_AUTO;
        CHECK_OK(pdckpt_load_file(path, &lo, &v, &fmt, &err), &err);
        CHECK_EQ_INT(fmt, PDCKPT_FORMAT_PICKLE);
        pdckpt_buffer *buf = NULL;
        const uint8_t *data = tensor_data(v, &buf);
        CHECK(buf && pdckpt_buffer_is_mapped(buf) == (mapped == 1));
        CHECK(buf && data == (const uint8_t *)pdk_buffer_data(buf) + data_off);
        CHECK(data && memcmp(data, w, sizeof(float) * N) == 0);
        pdckpt_value_free(v);
    }
    for (int zc = 1; zc >= 0; zc--) {
        pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
        lo.zero_copy = zc;
        pdckpt_value  *v = load_opts(p, &lo, PDCKPT_OK, &err);
        pdckpt_buffer *buf = NULL;
        const uint8_t *data = tensor_data(v, &buf);
        CHECK(zc ? data == p->data + data_off
                 : (data && (data < p->data || data >= p->data + p->len)));
        CHECK(data && memcmp(data, w, sizeof(float) * N) == 0);
        pdckpt_value_free(v);
    }
    tu_rmtree(dir);
    free(dir);
    pb_free(p);
    free(w);
}

/* Protocol 2 array bytes are decoded once, into the buffer the tensor keeps. */
static void test_protocol2_decoded_once(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    enum { N = 40000 };
    uint8_t *w = malloc(N);
    for (int i = 0; i < N; i++) w[i] = (uint8_t)(i * 7);
    int64_t dims[1] = {N};
    tu_buf *p = pb_new(2);
    tu_buf_u8(p, '}');
    text(p, "w");
    np_array(p, "numpy.core.multiarray", "u1", "|", 1, dims, false, w, N, 'e');
    tu_buf_u8(p, 's');
    tu_buf_u8(p, '.');
    pdckpt_value  *v = load(p, PDCKPT_OK, &err);
    pdckpt_buffer *buf = NULL;
    const uint8_t *data = tensor_data(v, &buf);
    CHECK(buf && !pdckpt_buffer_is_mapped(buf) && data == pdk_buffer_data(buf));
    CHECK(buf && pdk_buffer_size(buf) == N);
    CHECK(data && memcmp(data, w, N) == 0);
    pdckpt_value_free(v);
    pb_free(p);
    free(w);
}

/* ---- borrowed strings (issue 17): long str, bytes and Python 2 str in the result ---- */

enum { LONG_N = 70000 }; /* above PK_VIEW_MIN: a Python 2 str stays bytes until placed */

/* {"a": array, "t": long text, "b": long bytes, "p": long py2 str, "u": (long bytes, 1),
 *  "m": the long bytes again (memo)}: everything the VM borrowed, placed into the result. */
static tu_buf *long_strings_pickle(const uint8_t *w) {
    tu_buf *p = pb_new(4);
    tu_buf_u8(p, '}');
    tu_buf_u8(p, '(');
    stext(p, "a");
    int64_t dims[1] = {5};
    np_array(p, "numpy.core.multiarray", "u1", "|", 1, dims, false, "abcde", 5, 'C');
    stext(p, "t");
    tu_buf_u8(p, 'X');
    tu_buf_u32le(p, LONG_N);
    for (int i = 0; i < LONG_N; i++) tu_buf_u8(p, (uint8_t)('a' + i % 26));
    stext(p, "b");
    sbytes(p, w, LONG_N);
    tu_buf_u8(p, 0x94); /* MEMOIZE */
    stext(p, "p");
    tu_buf_u8(p, 'T'); /* BINSTRING: a Python 2 str, latin-1 */
    tu_buf_u32le(p, LONG_N);
    tu_buf_put(p, w, LONG_N);
    stext(p, "u");
    tu_buf_u8(p, 'h');
    tu_buf_u8(p, 0); /* the long bytes (the one MEMOIZE) */
    int1(p, 1);
    tu_buf_u8(p, 0x86);
    stext(p, "m");
    tu_buf_u8(p, 'h');
    tu_buf_u8(p, 0);
    tu_buf_u8(p, 'u');
    tu_buf_u8(p, '.');
    return p;
}

static void check_long_strings(const pdckpt_value *v, const uint8_t *w) {
    size_t      n = 0;
    const char *t = pdckpt_value_get_string(pdckpt_dict_get(v, "t"), &n);
    CHECK(t && n == LONG_N && t[n] == '\0' && t[0] == 'a' &&
          t[LONG_N - 1] == 'a' + (LONG_N - 1) % 26);
    const char *b = pdckpt_value_get_bytes(pdckpt_dict_get(v, "b"), &n);
    CHECK(b && n == LONG_N && memcmp(b, w, LONG_N) == 0 && b[n] == '\0');
    CHECK(pdckpt_dict_get(v, "m") == pdckpt_dict_get(v, "b")); /* shared, owned once */
    const pdckpt_value *u = pdckpt_dict_get(v, "u");
    b = pdckpt_value_get_bytes(pdckpt_value_at(u, 0), &n);
    CHECK(b && n == LONG_N && memcmp(b, w, LONG_N) == 0 && b[n] == '\0');
    const char *s = pdckpt_value_get_string(pdckpt_dict_get(v, "p"), &n); /* latin-1 -> UTF-8 */
    CHECK(s && n == LONG_N + LONG_N / 2 && s[n] == '\0');
    CHECK(s && (uint8_t)s[0] == 0xC2 && (uint8_t)s[1] == 0x80 && s[2] == 0x01);
}

static void test_long_strings_owned_in_result(void) {
    pdckpt_error err = PDCKPT_ERROR_INIT;
    uint8_t     *w = malloc(LONG_N);
    for (int i = 0; i < LONG_N; i++) w[i] = (uint8_t)(i % 2 ? i % 128 : 0x80 + i % 128);
    tu_buf       *p = long_strings_pickle(w);
    pdckpt_value *v = load(p, PDCKPT_OK, &err);
    check_long_strings(v, w);
    pdckpt_value_free(v);
    /* Read from a file and aligned by moving the tensor inside the read buffer: the strings,
     * copied where they were placed, neither stop the move nor are overwritten by it. */
    char *dir = tu_tempdir(), path[4096];
    snprintf(path, sizeof path, "%s/long.pkl", dir);
    CHECK(tu_write_file(path, p->data, p->len) == 0);
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.require_aligned = true;
    v = NULL;
    CHECK_OK(pdckpt_load_file(path, &lo, &v, NULL, &err), &err);
    pdckpt_tensor_view tv;
    CHECK(pdckpt_tensor_get(pdckpt_dict_get(v, "a"), &tv) && ((uintptr_t)tv.data & 63) == 0);
    CHECK(tv.buffer && !pdckpt_buffer_is_mapped(tv.buffer) && memcmp(tv.data, "abcde", 5) == 0);
    check_long_strings(v, w);
    pdckpt_value_free(v);
    tu_rmtree(dir);
    free(dir);
    pb_free(p);
    free(w);
}

/* ---- detection and verification ---- */

static pdckpt_status detect(const void *bytes, size_t len, pdckpt_format *fmt, pdckpt_error *err) {
    pdckpt_value *v = NULL;
    *fmt = PDCKPT_FORMAT_AUTO;
    pdckpt_status st = pdckpt_load_memory(bytes, len, NULL, &v, fmt, err);
    pdckpt_value_free(v);
    return st;
}

static void test_sniff(void) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_format fmt;
#define LIT(s)                                                                                     \
    { s, sizeof(s) - 1 }
    static const struct {
        const char *b;
        size_t      n;
    } pickles[] = {LIT("\x80\x02}q\x00."), LIT("\x80\x04\x95\x01\x00\x00\x00\x00\x00\x00\x00N."),
                   LIT("(dp0\nS'a'\np1\nI1\ns."), LIT("}q\x00.")};
    for (size_t i = 0; i < sizeof pickles / sizeof *pickles; i++) {
        CHECK_OK(detect(pickles[i].b, pickles[i].n, &fmt, &err), &err);
        CHECK_EQ_INT(fmt, PDCKPT_FORMAT_PICKLE);
    }
    /* a truncated protocol-4 pickle is still recognised, and diagnosed as a pickle */
    CHECK_STATUS(detect("\x80\x04}\x94(", 5, &fmt, &err), PDCKPT_ERR_FORMAT, &err);
    CHECK_STR(err.message, "expected an opcode (the pickle ends with STOP), found the end of the "
                           "input" PK_TRUNCATED_HINT);
    /* text that merely starts like protocol 0, and 0x80 with a bad protocol, are not pickles */
    static const char *const not_pickles[] = {"(hello world", "\x80\x09}.", "\x80\x02\xff\xff"};
    for (size_t i = 0; i < 3; i++) {
        CHECK_STATUS(detect(not_pickles[i], strlen(not_pickles[i]), &fmt, &err), PDCKPT_ERR_FORMAT,
                     &err);
        CHECK_STR(err.message,
                  "expected a Paddle checkpoint file, found none that pdckpt recognises");
    }
}

static void test_verify_is_strict_about_the_end(void) {
    pdckpt_error        err = PDCKPT_ERROR_INIT;
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    tu_buf             *p = pb_new(2);
    RAWS(p, "N.xyz"); /* pickle.load stops at STOP, as paddle.load does */
    pdckpt_value_free(load_opts(p, &lo, PDCKPT_OK, &err));
    lo.verify = true;
    pdckpt_value_free(load_opts(p, &lo, PDCKPT_ERR_FORMAT, &err));
    CHECK_EQ_INT(err.offset, 4);
    CHECK_STR(err.message, "expected the end of the input after STOP, found 3 more bytes");
    pb_free(p);
    p = pb_new(2);
    RAWS(p, "NN.");
    pdckpt_value_free(load_opts(p, &lo, PDCKPT_ERR_FORMAT, &err));
    CHECK_EQ_INT(err.offset, 4);
    CHECK_STR(err.message, "STOP: expected an empty stack, found 1 values and 0 marks left");
    pb_free(p);
}

/* ---- allocation failure ---- */

typedef struct failing {
    long countdown; /* allocations left before one fails; < 0 = never */
} failing;

static void *fail_alloc(void *ctx, size_t size, size_t alignment) {
    failing *f = ctx;
    if (f->countdown == 0) return NULL;
    if (f->countdown > 0) f->countdown--;
    size_t align = alignment < sizeof(void *) ? sizeof(void *) : alignment;
    return aligned_alloc(align, (size + align - 1) / align * align);
}

static void fail_free(void *ctx, void *ptr, size_t size) {
    (void)ctx;
    (void)size;
    free(ptr);
}

/* Every allocation of a load that touches most of the reader fails in turn: each run must end in
 * a clean NOMEM (the sanitizer build checks for leaks). */
static void test_allocation_failures(void) {
    static const float   f4[2] = {1, 2};
    static const int32_t part[2] = {7, 8};
    int64_t              d2[1] = {2}, d4[1] = {4};
    tu_buf              *p = pb_new(2);
    tu_buf_u8(p, '}');
    tu_buf_u8(p, '(');
    text(p, "w");
    np_array(p, "numpy.core.multiarray", "f4", "<", 1, d2, false, f4, 8, 'e');
    text(p, "t");
    global(p, "__builtin__", "tuple");
    text(p, "n");
    np_array(p, "numpy.core.multiarray", "f4", ">", 1, d2, true, f4, 8, 'U');
    tu_buf_u8(p, 0x86);
    tu_buf_u8(p, 0x85);
    tu_buf_u8(p, 'R');
    text(p, "o");
    global(p, "mylib", "Obj");
    tu_buf_u8(p, ')');
    tu_buf_u8(p, 0x81);
    tu_buf_u8(p, '}');
    text(p, "big");
    RAWS(p, "\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01");
    tu_buf_u8(p, 's');
    tu_buf_u8(p, 'b');
    text(p, "StructuredToParameterName@@");
    tu_buf_u8(p, '}');
    text(p, "w");
    text(p, "linear_0.w_0");
    tu_buf_u8(p, 's');
    for (int i = 0; i < 2; i++) {
        text(p, i ? "x@@.1" : "x@@.0");
        np_array(p, "numpy.core.multiarray", "i4", "<", 1, d2, false, part, 8, 'C');
    }
    text(p, "UnpackBigParamInfor@@");
    tu_buf_u8(p, '}');
    text(p, "x");
    tu_buf_u8(p, '}');
    text(p, "OriginShape");
    tu_buf_u8(p, 'J');
    tu_buf_u32le(p, (uint32_t)d4[0]);
    tu_buf_u8(p, 0x85);
    tu_buf_u8(p, 's');
    text(p, "slices");
    tu_buf_u8(p, ']');
    tu_buf_u8(p, '(');
    text(p, "x@@.0");
    text(p, "x@@.1");
    tu_buf_u8(p, 'e');
    tu_buf_u8(p, 's');
    tu_buf_u8(p, 's');
    tu_buf_u8(p, 'u');
    tu_buf_u8(p, '.');
    long          runs = 0;
    pdckpt_status st = PDCKPT_ERR_NOMEM;
    for (long n = 0; n < 100000 && st != PDCKPT_OK; n++, runs++) {
        failing             f = {n};
        pdckpt_allocator    a = {fail_alloc, fail_free, &f};
        pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
        lo.allocator = &a;
        lo.zero_copy = false; /* copies exercise more allocations */
        lo.format = PDCKPT_FORMAT_PICKLE;
        lo.allowed_globals = test_classes;
        lo.n_allowed_globals = sizeof test_classes / sizeof *test_classes;
        pdckpt_error  err = PDCKPT_ERROR_INIT;
        pdckpt_value *v = NULL;
        st = pdckpt_load_memory(p->data, p->len, &lo, &v, NULL, &err);
        if (st == PDCKPT_OK) {
            static const int32_t whole[4] = {7, 8, 7, 8};
            check_tensor(pdckpt_dict_get(v, "w"), PDCKPT_DTYPE_FLOAT32, 1, d2, f4, 8,
                         "linear_0.w_0");
            check_tensor(pdckpt_dict_get(v, "x"), PDCKPT_DTYPE_INT32, 1, d4, whole, 16, NULL);
            check_tensor(pdckpt_dict_get(v, "t"), PDCKPT_DTYPE_FLOAT32, 1, d2,
                         "\x3f\x80\x00\x00\x40\x00\x00\x00", 8, "n"); /* each element swapped */
        } else if (st != PDCKPT_ERR_NOMEM) {
            char line[1200];
            fprintf(stderr, "allocation %ld: expected nomem, got %s\n", n,
                    pdckpt_error_format(&err, line, sizeof line));
            CHECK(false);
            break;
        }
        pdckpt_value_free(v);
    }
    CHECK(st == PDCKPT_OK && runs > 50);
    pb_free(p);
}

int main(void) {
    RUN(test_scalars);
    RUN(test_big_ints);
    RUN(test_strings);
    RUN(test_bytes);
    RUN(test_containers);
    RUN(test_protocol0);
    RUN(test_objects);
    RUN(test_numpy_layouts);
    RUN(test_numpy_unsupported_is_opaque);
    RUN(test_numpy_frombuffer_and_scalars);
    RUN(test_paddle_tensor_tuples);
    RUN(test_dense_tensor_forms);
    RUN(test_big_array_rejoined);
    RUN(test_spec_worked_example);
    RUN(test_hostile_globals);
    RUN(test_allowlist_roles);
    RUN(test_cycles_refused);
    RUN(test_object_cycles_refused);
    RUN(test_limits);
    RUN(test_memo_bomb);
    RUN(test_malformed);
    RUN(test_zero_copy);
    RUN(test_protocol2_decoded_once);
    RUN(test_long_strings_owned_in_result);
    RUN(test_sniff);
    RUN(test_verify_is_strict_about_the_end);
    RUN(test_allocation_failures);
    return CHECK_SUMMARY();
}
