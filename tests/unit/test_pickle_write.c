/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_pickle_write.c — the pickle writer against facts measured from CPython 3.11's C pickler
 * and numpy (spec pickle-and-distributed-formats.md §1.7-1.10, §7): the worked example byte for
 * byte, protocol-4 frame boundaries around 64 KiB, memo numbering (BINPUT / LONG_BINPUT / BINGET /
 * MEMOIZE), protocol 2's latin-1 text for every byte value, path selection, the big-array split,
 * the 1.x dygraph writers and the restore check.  tests/py/test_pickle_write.py compares whole
 * files with real paddle.save output.
 */
#include "check.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ---- helpers ---- */

static pdckpt_value *named_tensor(pdckpt_dtype dtype, int32_t n_dims, const int64_t *dims,
                                  const void *data, const char *name) {
    pdckpt_value *t = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_tensor_new(NULL, dtype, n_dims, dims, &t, &err), &err);
    pdckpt_tensor_view v;
    pdckpt_tensor_get(t, &v);
    if (data && v.n_bytes) memcpy(pdckpt_tensor_data_mut(t), data, (size_t)v.n_bytes);
    if (name) CHECK_OK(pdckpt_tensor_set_name(t, name, &err), &err);
    return t;
}

/* The tests' stand-in classes, allowed so that the writer's object paths can be tested; the
 * allowlist itself is tested in test_globals_allowlist. */
static const char *const test_classes[] = {"lrs.NaturalExpDecay", "m.f", "m\xc3\xa9.f", "m.C"};
#define ALLOW_TEST_CLASSES(so)                                                                     \
    ((so).allowed_globals = test_classes,                                                          \
     (so).n_allowed_globals = sizeof test_classes / sizeof *test_classes)

static uint8_t *save_bytes(const pdckpt_value *root, int proto, pdckpt_numpy_module np,
                           size_t *len) {
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    ALLOW_TEST_CLASSES(so);
    so.format = PDCKPT_FORMAT_PICKLE;
    so.protocol = proto;
    so.numpy_module = np;
    void        *data = NULL;
    pdckpt_error err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_save_memory(root, &so, &data, len, &err), &err);
    return data;
}

static bool equals_hex(const uint8_t *got, size_t len, const char *hex) {
    size_t n = strlen(hex) / 2;
    if (len != n) {
        fprintf(stderr, "length %zu, expected %zu\n", len, n);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned b;
        sscanf(hex + 2 * i, "%2x", &b);
        if (got[i] != b) {
            fprintf(stderr, "byte %zu is %02x, expected %02x\n", i, got[i], b);
            return false;
        }
    }
    return true;
}

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* A pickle disassembler for the opcodes the writer emits.  Checks the memo numbering as it goes
 * (BINPUT must give the next index, BINGET an existing one) and records the frame layout. */
typedef struct ops {
    size_t   n_memo, n_get, n_long_put, n_long_get;
    uint64_t frames[16]; /* FRAME lengths; raw (unframed) runs as 1<<62 | length */
    int      n_frames;
    bool     ok;
    bool     elided; /* big payloads were left out of the buffer */
} ops;

static size_t arg_len(const uint8_t *b, size_t i, size_t len, uint8_t op, bool elided) {
    size_t n = 0;
    switch (op) {
    case 0x80:
    case 'K':
    case 'q':
    case 'h': return 1;
    case 'M': return 2;
    case 'J':
    case 'r':
    case 'j': return 4;
    case 'G':
    case 0x95: return 8;
    case 0x8a:
    case 0x8c:
    case 'C': n = (size_t)le(b + i, 1) + 1; break;
    case 'X':
    case 'B': n = (size_t)le(b + i, 4) + 4; break;
    case 0x8d:
    case 0x8e: n = (size_t)le(b + i, 8) + 8; break;
    case 'c': {
        const uint8_t *nl = memchr(b + i, '\n', len - i);
        nl = nl ? memchr(nl + 1, '\n', len - (size_t)(nl + 1 - b)) : NULL;
        return nl ? (size_t)(nl - (b + i)) + 1 : len;
    }
    default: return 0;
    }
    if (elided && n > (1u << 20)) n = (op == 0x8d || op == 0x8e) ? 8 : 4;
    return n;
}

static void note_memo(ops *o, const uint8_t *b, size_t i, uint8_t op) {
    if (op == 0x94) o->n_memo++;
    if (op == 'q' || op == 'r') {
        uint64_t idx = op == 'q' ? b[i] : le(b + i, 4);
        if (idx != o->n_memo) o->ok = false;
        o->n_memo++;
        o->n_long_put += op == 'r';
    }
    if (op == 'h' || op == 'j') {
        uint64_t idx = op == 'h' ? b[i] : le(b + i, 4);
        if (idx >= o->n_memo) o->ok = false;
        o->n_get++;
        o->n_long_get += op == 'j';
    }
}

/* Walks the whole stream; frames must cover whole opcodes exactly. */
static ops disassemble(const uint8_t *b, size_t len, bool elided) {
    ops o = {0};
    o.ok = true;
    o.elided = elided;
    size_t i = 0, frame_end = 0, raw_start = SIZE_MAX;
    while (i < len && o.ok) {
        uint8_t op = b[i];
        if (op == 0x95 && i >= frame_end) {
            if (raw_start != SIZE_MAX && i > 2 && o.n_frames < 16)
                o.frames[o.n_frames++] = 1ull << 62 | (i - raw_start);
            raw_start = SIZE_MAX;
            frame_end = i + 9 + (size_t)le(b + i + 1, 8);
            if (o.n_frames < 16) o.frames[o.n_frames++] = le(b + i + 1, 8);
            i += 9;
            continue;
        }
        if (i >= frame_end && raw_start == SIZE_MAX) raw_start = i;
        size_t n = arg_len(b, i + 1, len, op, elided);
        note_memo(&o, b, i + 1, op);
        i += 1 + n;
        if (i > frame_end && frame_end && i - 1 - n < frame_end) o.ok = false; /* straddles */
    }
    if (raw_start != SIZE_MAX && raw_start > 2 && o.n_frames < 16)
        o.frames[o.n_frames++] = 1ull << 62 | (len - raw_start);
    if (i != len) o.ok = false;
    return o;
}

static bool contains(const uint8_t *b, size_t len, const void *s, size_t n) {
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(b + i, s, n) == 0) return true;
    return false;
}

static const uint8_t *find(const uint8_t *b, size_t len, const void *s, size_t n) {
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(b + i, s, n) == 0) return b + i;
    return NULL;
}

static size_t count_of(const uint8_t *b, size_t len, const void *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i + n <= len; i++) c += memcmp(b + i, s, n) == 0;
    return c;
}

/* ---- §7: the worked example ---- */

static pdckpt_value *worked_example(void) {
    const float   w[4] = {1, 2, 3, 4};
    const int64_t dims[2] = {2, 2};
    pdckpt_value *root = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(root, "w", named_tensor(PDCKPT_DTYPE_FLOAT32, 2, dims, w, "linear_0.w_0"),
                    NULL);
    return root;
}

static void test_worked_example_protocol4(void) {
    static const char hex[] =
        "800495d4000000000000007d94288c0177948c156e756d70792e636f72652e6d756c74696172726179948c0c"
        "5f7265636f6e7374727563749493948c056e756d7079948c076e6461727261799493944b0085944301629487"
        "945294284b014b024b02869468058c0564747970659493948c02663494898887945294284b038c013c944e4e"
        "4e4affffffff4affffffff4b00749462894310000080"
        "3f000000400000404000008040947494628c1b5374"
        "7275637475726564546f506172616d657465724e616d654040947d9468018c0c6c696e6561725f302e775f30"
        "9473752e";
    pdckpt_value *root = worked_example();
    size_t        len;
    uint8_t      *b = save_bytes(root, 4, PDCKPT_NUMPY_CORE, &len);
    CHECK(equals_hex(b, len, hex));
    pdckpt_free(NULL, b, len);
    /* numpy >= 2's spelling is one byte longer: FRAME 213 (spec §7). */
    b = save_bytes(root, 4, PDCKPT_NUMPY__CORE, &len);
    CHECK_EQ_INT(len, 224);
    CHECK_EQ_INT(le(b + 3, 8), 213);
    CHECK(contains(b, len, "\x8c\x16numpy._core.multiarray", 24));
    pdckpt_free(NULL, b, len);
    pdckpt_value_free(root);
}

static void test_worked_example_protocol2(void) {
    static const char hex[] =
        "80027d7100285801000000777101636e756d70792e636f72652e6d756c746961727261790a5f7265636f6e73"
        "7472756374"
        "0a7102636e756d70790a6e6461727261790a71034b00857104635f636f646563730a656e63"
        "6f64650a7105580100000062710658060000006c6174696e31710786710852710987710a52710b284b014b02"
        "4b0286710c636e756d70790a64747970650a710d58020000006634710e898887710f527110284b0358010000"
        "003c71114e4e4e4affffffff4affffffff4b0074711262896805581200000000"
        "00c2803f000000400000"
        "40400000c280407113680786711452711574711662581b00000053747275637475726564546f506172616d65"
        "7465724e616d65404071177d71186801580c0000006c696e6561725f302e775f30711973752e";
    pdckpt_value *root = worked_example();
    size_t        len;
    uint8_t      *b = save_bytes(root, 2, PDCKPT_NUMPY_CORE, &len);
    CHECK(equals_hex(b, len, hex));
    pdckpt_free(NULL, b, len);
    pdckpt_value_free(root);
}

/* An empty dict is a state dict: only the (empty) name table.  Bytes from CPython 3.11:
 * pickle.dumps({'StructuredToParameterName@@': {}}, p). */
static void test_empty_state_dict(void) {
    pdckpt_value *root = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    size_t        len;
    uint8_t      *b = save_bytes(root, 4, PDCKPT_NUMPY_CORE, &len);
    CHECK(equals_hex(b, len,
                     "80049524000000000000007d948c1b53747275637475726564546f506172616d65"
                     "7465724e616d654040947d94732e"));
    pdckpt_free(NULL, b, len);
    b = save_bytes(root, 2, PDCKPT_NUMPY_CORE, &len);
    CHECK(equals_hex(b, len,
                     "80027d7100581b00000053747275637475726564546f506172616d657465724e61"
                     "6d65404071017d7102732e"));
    pdckpt_free(NULL, b, len);
    pdckpt_value_free(root);
}

/* ---- protocol 4 framing ---- */

#define RAW(n) (1ull << 62 | (n))

/* {'w': uint8[n] named linear_0.w_0}: frame layout CPython 3.11 + numpy 2 produce (measured with
 * pickle.dumps of the same object; spec §1.10's rule, the spec's own numbers used another object).
 */
static void check_frames(int64_t n, const uint64_t *want, int n_want) {
    uint8_t      *data = calloc(1, (size_t)n);
    pdckpt_value *root = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(root, "w", named_tensor(PDCKPT_DTYPE_UINT8, 1, &n, data, "linear_0.w_0"), NULL);
    size_t   len;
    uint8_t *b = save_bytes(root, 4, PDCKPT_NUMPY__CORE, &len);
    ops      o = disassemble(b, len, false);
    CHECK(o.ok);
    CHECK_EQ_INT(o.n_frames, n_want);
    for (int i = 0; i < n_want && i < o.n_frames; i++) CHECK_EQ_INT(o.frames[i], want[i]);
    pdckpt_free(NULL, b, len);
    pdckpt_value_free(root);
    free(data);
}

static void test_frame_boundaries(void) {
    const uint64_t f64000[] = {64199};                   /* stays in one frame */
    const uint64_t f65532[] = {65679, 52};               /* frame committed at the next save() */
    const uint64_t f65536[] = {140, RAW(5 + 65536), 56}; /* payload written outside frames */
    check_frames(64000, f64000, 1);
    check_frames(65532, f65532, 2);
    check_frames(65536, f65536, 3);
}

/* ---- memo ---- */

static pdckpt_value *many_tensors(int n, pdckpt_dtype second_dtype) {
    pdckpt_value *root = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    const int64_t dims[1] = {3};
    for (int i = 0; i < n; i++) {
        char key[32], name[32];
        snprintf(key, sizeof key, "layer%d.weight", i);
        snprintf(name, sizeof name, "linear_%d.w_0", i);
        pdckpt_dtype dt = i % 2 ? second_dtype : PDCKPT_DTYPE_FLOAT32;
        pdckpt_dict_set(root, key, named_tensor(dt, 1, dims, NULL, name), NULL);
    }
    return root;
}

static void test_memo_numbering(void) {
    pdckpt_value *root = many_tensors(40, PDCKPT_DTYPE_INT64);
    size_t        len;
    uint8_t      *b = save_bytes(root, 2, PDCKPT_NUMPY_CORE, &len);
    ops           o = disassemble(b, len, false);
    CHECK(o.ok);
    CHECK(o.n_long_put > 0); /* more than 256 objects: LONG_BINPUT */
    CHECK(o.n_long_get > 0); /* name-table keys refer back to keys beyond 255: LONG_BINGET */
    /* One GLOBAL per callable; dtypes shared per dtype (two here), fetched again by BINGET. */
    CHECK_EQ_INT(count_of(b, len, "cnumpy\ndtype\n", 13), 1);
    CHECK_EQ_INT(count_of(b, len,
                          "X\x02\x00\x00\x00"
                          "f4",
                          7),
                 1);
    CHECK_EQ_INT(count_of(b, len, "X\x02\x00\x00\x00i8", 7), 1);
    CHECK_EQ_INT(count_of(b, len, "c_codecs\nencode\n", 16), 1);
    CHECK_EQ_INT(count_of(b, len, "X\x06\x00\x00\x00latin1", 11), 1);
    /* Name-table keys are the data keys: each key text appears once. */
    CHECK_EQ_INT(count_of(b, len, "layer39.weight", 14), 1);
    CHECK_EQ_INT(count_of(b, len, "linear_39.w_0", 13), 1);
    pdckpt_free(NULL, b, len);
    b = save_bytes(root, 4, PDCKPT_NUMPY_CORE, &len);
    o = disassemble(b, len, false);
    CHECK(o.ok);
    CHECK_EQ_INT(o.n_long_put, 0); /* protocol 4 memoizes with MEMOIZE */
    CHECK(o.n_memo > 256 && o.n_long_get > 0);
    CHECK_EQ_INT(count_of(b, len, "\x8c\x05numpy", 7), 1); /* 'numpy' shared by ndarray/dtype */
    pdckpt_free(NULL, b, len);
    pdckpt_value_free(root);
}

/* ---- protocol 2: bytes as latin-1 text, UTF-8 encoded ---- */

static const uint8_t *find_binunicode(const uint8_t *b, size_t len, uint32_t n) {
    uint8_t h[5] = {'X', (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24)};
    for (size_t i = 0; i + 5 <= len; i++)
        if (memcmp(b + i, h, 5) == 0) return b + i + 5;
    return NULL;
}

static void check_latin1(int64_t n, unsigned mul) {
    uint8_t *data = malloc((size_t)n);
    uint32_t utf8 = 0;
    for (int64_t i = 0; i < n; i++) {
        data[i] = (uint8_t)(i * mul);
        utf8 += data[i] < 0x80 ? 1 : 2;
    }
    pdckpt_value *root = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(root, "bytes", named_tensor(PDCKPT_DTYPE_UINT8, 1, &n, data, "b_0"), NULL);
    size_t         len;
    uint8_t       *b = save_bytes(root, 2, PDCKPT_NUMPY_CORE, &len);
    const uint8_t *text = find_binunicode(b, len, utf8);
    CHECK(text != NULL);
    for (int64_t i = 0, o = 0; text && i < n; i++) {
        uint8_t c = data[i];
        bool    lead = text[o] == (0xc0 | (c >> 6)), cont = text[o + 1] == (0x80 | (c & 0x3f));
        bool    same = c < 0x80 ? text[o] == c : lead && cont;
        if (!same) {
            fprintf(stderr, "byte %lld (0x%02x) encoded wrongly\n", (long long)i, c);
            CHECK(false);
            break;
        }
        o += c < 0x80 ? 1 : 2;
    }
    CHECK(disassemble(b, len, false).ok);
    pdckpt_free(NULL, b, len);
    pdckpt_value_free(root);
    free(data);
}

static void test_latin1_every_byte(void) {
    check_latin1(256, 1);      /* each value once: 128 + 2 * 128 bytes */
    check_latin1(300001, 131); /* crosses the encoder's 64 KiB chunks */
}

/* ---- path selection and name table ---- */

static void test_paths(void) {
    const int64_t d1[1] = {2};
    pdckpt_value *root = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(root, "w", named_tensor(PDCKPT_DTYPE_FLOAT32, 1, d1, NULL, "fc.w_0"), NULL);
    pdckpt_value *lr = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(lr, "last_epoch", pdckpt_value_new_int(NULL, 3), NULL);
    pdckpt_dict_set(root, "LR_Scheduler", lr, NULL);
    size_t   len;
    uint8_t *b = save_bytes(root, 3, PDCKPT_NUMPY_CORE, &len);
    CHECK(contains(b, len, "StructuredToParameterName@@", 27)); /* state-dict path */
    CHECK(!contains(b, len, "builtins\ntuple", 14));
    pdckpt_free(NULL, b, len);
    /* A tensor inside a nested dict (master_weights) makes it the generic path. */
    pdckpt_value *mw = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(mw, "fc.w_0",
                    named_tensor(PDCKPT_DTYPE_FLOAT32, 1, d1, NULL, "fc.w_0_fp32_master_0"), NULL);
    pdckpt_dict_set(root, "master_weights", mw, NULL);
    b = save_bytes(root, 3, PDCKPT_NUMPY_CORE, &len);
    CHECK(!contains(b, len, "StructuredToParameterName@@", 27));
    CHECK_EQ_INT(count_of(b, len, "cbuiltins\ntuple\n", 16), 1); /* memoized after the first */
    CHECK(contains(b, len, "fc.w_0_fp32_master_0", 20));
    pdckpt_free(NULL, b, len);
    b = save_bytes(root, 2, PDCKPT_NUMPY_CORE, &len);
    CHECK(contains(b, len, "c__builtin__\ntuple\n", 19)); /* Python 2 spelling */
    pdckpt_free(NULL, b, len);
    pdckpt_value_free(root);
}

/* How the file was written decides where Paddle's rule alone would not: a name table means the
 * state-dict path (fluid.save_dygraph put ints beside tensors); a dict with no tensor and no table
 * is a plain pickled dict (jit.save's .pdiparams.info). */
static void test_paths_refined(void) {
    const int64_t d1[1] = {2};
    pdckpt_value *root = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(root, "w", named_tensor(PDCKPT_DTYPE_FLOAT32, 1, d1, NULL, "conv2d_0.w_0"),
                    NULL);
    pdckpt_dict_set(root, "epoch", pdckpt_value_new_int(NULL, 1), NULL);
    size_t   len;
    uint8_t *b = save_bytes(root, 2, PDCKPT_NUMPY_CORE, &len);
    CHECK(contains(b, len, "c__builtin__\ntuple\n", 19)); /* paddle.save: the generic path */
    pdckpt_free(NULL, b, len);
    pdckpt_value *table = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(table, "w", pdckpt_value_new_string(NULL, "conv2d_0.w_0", SIZE_MAX), NULL);
    pdckpt_dict_set(root, "StructuredToParameterName@@", table, NULL);
    b = save_bytes(root, 2, PDCKPT_NUMPY_CORE, &len);
    CHECK(!contains(b, len, "tuple", 5)); /* with its table: the state-dict path */
    pdckpt_free(NULL, b, len);
    pdckpt_value_free(root);
    root = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_value *info = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(info, "structured_name", pdckpt_value_new_string(NULL, "fc.weight", SIZE_MAX),
                    NULL);
    pdckpt_dict_set(root, "fc_0.w_0", info, NULL);
    b = save_bytes(root, 2, PDCKPT_NUMPY_CORE, &len);
    CHECK(!contains(b, len, "StructuredToParameterName@@", 27));
    pdckpt_free(NULL, b, len);
    pdckpt_value_free(root);
    /* SGD's state with a scheduler has no tensor, yet paddle.save writes it as a state dict. */
    root = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_value *lr = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(lr, "last_epoch", pdckpt_value_new_int(NULL, 2), NULL);
    pdckpt_dict_set(root, "LR_Scheduler", lr, NULL);
    b = save_bytes(root, 2, PDCKPT_NUMPY_CORE, &len);
    CHECK(contains(b, len, "StructuredToParameterName@@", 27));
    pdckpt_free(NULL, b, len);
    pdckpt_value_free(root);
}

/* A name table already in the tree (read from a Paddle file) is written as it is. */
static void test_existing_name_table(void) {
    const int64_t d1[1] = {2};
    pdckpt_value *root = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(root, "weight", named_tensor(PDCKPT_DTYPE_FLOAT32, 1, d1, NULL, "tensor_name"),
                    NULL);
    pdckpt_value *table = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(table, "weight", pdckpt_value_new_string(NULL, "table_name", SIZE_MAX), NULL);
    pdckpt_dict_set(root, "StructuredToParameterName@@", table, NULL);
    pdckpt_dict_set(root, "after", named_tensor(PDCKPT_DTYPE_FLOAT32, 1, d1, NULL, "x"), NULL);
    size_t   len;
    uint8_t *b = save_bytes(root, 4, PDCKPT_NUMPY_CORE, &len);
    CHECK(contains(b, len, "table_name", 10));
    CHECK(!contains(b, len, "tensor_name", 11));
    /* The table goes after every data key, wherever it sat in the tree. */
    const uint8_t *t = find(b, len, "Structured", 10), *a = find(b, len, "after", 5);
    CHECK(t && a && a < t);
    CHECK_EQ_INT(count_of(b, len, "weight", 6), 1); /* the table's key is the data key (BINGET) */
    pdckpt_free(NULL, b, len);
    pdckpt_value_free(root);
}

/* ---- big arrays (protocols 2 and 3): key@@.i slices + UnpackBigParamInfor@@ ---- */

/* A sink that keeps the first and last KEEP bytes and counts the rest, so a >1 GiB pickle can be
 * checked without storing it; the data itself is an untouched anonymous mapping (zero pages). */
#define KEEP 4096
typedef struct window_sink {
    uint8_t  head[KEEP], tail[KEEP];
    uint64_t total;
} window_sink;

static pdckpt_status window_write(void *self, const void *bytes, size_t len, pdckpt_error *err) {
    (void)err;
    window_sink   *w = self;
    const uint8_t *b = bytes;
    for (size_t i = 0; i < len && w->total + i < KEEP; i++) w->head[w->total + i] = b[i];
    if (len >= KEEP)
        memcpy(w->tail, b + len - KEEP, KEEP);
    else {
        memmove(w->tail, w->tail + len, KEEP - len);
        memcpy(w->tail + KEEP - len, b, len);
    }
    w->total += len;
    return PDCKPT_OK;
}

static pdckpt_status window_commit(void *self, pdckpt_error *err) {
    (void)self;
    (void)err;
    return PDCKPT_OK;
}

static void check_split(int proto) {
    const int64_t n = (1ll << 30) + 1; /* int8: 2^30-1 per slice -> 2 slices */
    void         *zeros = mmap(NULL, (size_t)n, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(zeros != MAP_FAILED);
    pdckpt_value *root = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT), *big = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_tensor_new_borrowed(NULL, PDCKPT_DTYPE_INT8, 1, &n, zeros, &big, &err), &err);
    pdckpt_tensor_set_name(big, "emb.w_0", NULL);
    const int64_t d1[1] = {1};
    pdckpt_dict_set(root, "w", big, NULL);
    pdckpt_dict_set(root, "v", named_tensor(PDCKPT_DTYPE_FLOAT32, 1, d1, NULL, "v_0"), NULL);
    static window_sink w;
    memset(&w, 0, sizeof w);
    pdckpt_sink_ops     sops = {PDCKPT_SINK_OPS_VERSION, window_write, window_commit, NULL};
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    ALLOW_TEST_CLASSES(so);
    so.format = PDCKPT_FORMAT_PICKLE;
    so.protocol = proto;
    CHECK_OK(pdckpt_save_sink(root, &sops, &w, &so, &err), &err);
    /* Data: 2^30-1 + 2 bytes (zeros are ASCII: same length as UTF-8 text in protocol 2). */
    CHECK(w.total > (uint64_t)n && w.total < (uint64_t)n + 2048);
    /* Order: the small key, the name table (listing w), the slices, the index. */
    const uint8_t *v = find(w.head, KEEP, "\x01\x00\x00\x00v", 5);
    const uint8_t *table = find(w.head, KEEP, "StructuredToParameterName@@", 27);
    const uint8_t *s0 = find(w.head, KEEP, "w@@.0", 5), *s1 = find(w.tail, KEEP, "w@@.1", 5);
    const uint8_t *info = find(w.tail, KEEP, "UnpackBigParamInfor@@", 21);
    CHECK(v && table && s0 && s1 && info && v < table && table < s0 && s1 < info);
    CHECK(find(w.head, KEEP, "emb.w_0", 7) != NULL);
    CHECK(find(w.tail, KEEP, "OriginShape", 11) && find(w.tail, KEEP, "slices", 6));
    CHECK_EQ_INT(count_of(w.tail, KEEP, "w@@.1", 5), 1); /* the slices list refers back */
    pdckpt_value_free(root);
    munmap(zeros, (size_t)n);
}

static void test_big_array_split(void) {
    check_split(3);
    check_split(2);
}

/* ---- generic objects and errors ---- */

static void test_object_newobj_protocol2(void) {
    /* A 1.5 LearningRateDecay-like object; bytes from CPython 3.11 pickle.dumps(obj, 2). */
    pdckpt_value *state = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(state, "step_num", pdckpt_value_new_int(NULL, 0), NULL);
    pdckpt_dict_set(state, "learning_rate", pdckpt_value_new_float(NULL, 0.5), NULL);
    pdckpt_value *obj =
        pdckpt_value_new_object(NULL, PDCKPT_OBJECT_NEWOBJ, "lrs", "NaturalExpDecay", NULL, state);
    size_t   len;
    uint8_t *b = save_bytes(obj, 2, PDCKPT_NUMPY_CORE, &len);
    CHECK(equals_hex(b, len,
                     "8002636c72730a4e61747572616c45787044656361790a7100298171017d710228"
                     "5808000000737465705f6e756d71034b00580d0000006c6561726e696e675f7261"
                     "74657104473fe000000000000075622e"));
    pdckpt_free(NULL, b, len);
    pdckpt_value_free(obj);
}

static pdckpt_status save_status(const pdckpt_value *root, int proto, pdckpt_error *err) {
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    ALLOW_TEST_CLASSES(so);
    so.format = PDCKPT_FORMAT_PICKLE;
    so.protocol = proto;
    void         *data = NULL;
    size_t        len = 0;
    pdckpt_status st = pdckpt_save_memory(root, &so, &data, &len, err);
    pdckpt_free(NULL, data, len);
    return st;
}

static void test_errors(void) {
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_value *root = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST);
    CHECK_STATUS(save_status(root, 5, &err), PDCKPT_ERR_ARGUMENT, &err);
    CHECK_STATUS(save_status(root, 1, &err), PDCKPT_ERR_ARGUMENT, &err);
    pdckpt_value *cur = root; /* nesting beyond the writer's bound */
    for (int i = 0; i < 600; i++) {
        pdckpt_value *next = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST);
        pdckpt_value_append(cur, next, NULL);
        cur = next;
    }
    CHECK_STATUS(save_status(root, 4, &err), PDCKPT_ERR_LIMIT, &err);
    CHECK(strstr(err.message, "nesting") != NULL);
    pdckpt_value_free(root);
    pdckpt_value *obj = pdckpt_value_new_object(NULL, PDCKPT_OBJECT_REDUCE, "m", "f",
                                                pdckpt_value_new_int(NULL, 1), NULL);
    CHECK_STATUS(save_status(obj, 4, &err), PDCKPT_ERR_ARGUMENT, &err);
    CHECK(strstr(err.message, "expected its arguments as a tuple") != NULL);
    pdckpt_value_free(obj);
    obj = pdckpt_value_new_object(NULL, PDCKPT_OBJECT_GLOBAL, "m\xc3\xa9", "f", NULL, NULL);
    CHECK_STATUS(save_status(obj, 2, &err), PDCKPT_ERR_UNSUPPORTED, &err);
    CHECK_OK(save_status(obj, 3, &err), &err);
    pdckpt_value_free(obj);
    obj = pdckpt_value_new_object(NULL, PDCKPT_OBJECT_GLOBAL, "m", "Outer.Inner", NULL, NULL);
    CHECK_STATUS(save_status(obj, 4, &err), PDCKPT_ERR_UNSUPPORTED, &err); /* a dotted name */
    CHECK(strstr(err.message, "refusing to write global m.Outer.Inner") != NULL);
    pdckpt_value_free(obj);
    /* A state dict whose unnamed tensor has no string key cannot name it in the table. */
    const int64_t d1[1] = {1};
    root = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set_value(root, pdckpt_value_new_int(NULL, 7),
                          named_tensor(PDCKPT_DTYPE_FLOAT32, 1, d1, NULL, NULL), NULL);
    CHECK_STATUS(save_status(root, 4, &err), PDCKPT_ERR_ARGUMENT, &err);
    pdckpt_value_free(root);
}

/* ---- Paddle 1.x dygraph writers ---- */

static void test_save_dygraph(void) {
    char *dir = tu_tempdir(), prefix[1024], path[1100];
    snprintf(prefix, sizeof prefix, "%s/model", dir);
    const int64_t d1[1] = {2};
    pdckpt_value *params = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(params, "fc.weight",
                    named_tensor(PDCKPT_DTYPE_FLOAT32, 1, d1, NULL, "fc_0.w_0"), NULL);
    pdckpt_value *opt = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(opt, "fc_0.w_0_moment1_0",
                    named_tensor(PDCKPT_DTYPE_FLOAT32, 1, d1, NULL, "fc_0.w_0_moment1_0"), NULL);
    pdckpt_dict_set(opt, "global_step",
                    named_tensor(PDCKPT_DTYPE_INT32, 1, d1, NULL, "@LR_DECAY_COUNTER@"), NULL);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    ALLOW_TEST_CLASSES(so);
    so.protocol = 4; /* ignored: save_dygraph always writes protocol 2 */
    so.durable = false;
    pdckpt_error err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_save_dygraph(params, opt, prefix, &so, &err), &err);
    size_t len;
    snprintf(path, sizeof path, "%s.pdparams", prefix);
    uint8_t *b = tu_read_file(path, &len);
    CHECK(b && len > 2 && b[0] == 0x80 && b[1] == 2);
    CHECK(b && contains(b, len, "fc_0.w_0", 8) &&
          contains(b, len, "StructuredToParameterName@@", 27));
    free(b);
    snprintf(path, sizeof path, "%s.pdopt", prefix);
    b = tu_read_file(path, &len);
    CHECK(b && b[1] == 2 && contains(b, len, "@LR_DECAY_COUNTER@", 18));
    free(b);
    CHECK_STATUS(pdckpt_save_dygraph(NULL, NULL, prefix, &so, &err), PDCKPT_ERR_ARGUMENT, &err);
    pdckpt_value *list = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST);
    CHECK_STATUS(pdckpt_save_dygraph(list, NULL, prefix, &so, &err), PDCKPT_ERR_ARGUMENT, &err);
    pdckpt_value_free(list);
    pdckpt_value_free(params);
    pdckpt_value_free(opt);
    tu_rmtree(dir);
    free(dir);
}

static void test_save_persistables(void) {
    char *dir = tu_tempdir(), target[1024], path[1200];
    snprintf(target, sizeof target, "%s/save_dir", dir);
    const float   w[2] = {1.5f, -2};
    const int64_t d1[1] = {2};
    pdckpt_value *model = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(model, "fc.w",
                    named_tensor(PDCKPT_DTYPE_FLOAT32, 1, d1, w, "mlp/MLP_0/FC_0.w_0"), NULL);
    pdckpt_dict_set(model, "b", named_tensor(PDCKPT_DTYPE_FLOAT32, 1, d1, w, NULL), NULL);
    pdckpt_value *state = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(state, "step_num", pdckpt_value_new_int(NULL, 0), NULL);
    pdckpt_dict_set(state, "learning_rate", pdckpt_value_new_float(NULL, 0.5), NULL);
    pdckpt_value *opts = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(
        opts, "SGDOptimizer_0",
        pdckpt_value_new_object(NULL, PDCKPT_OBJECT_NEWOBJ, "lrs", "NaturalExpDecay", NULL, state),
        NULL);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    ALLOW_TEST_CLASSES(so);
    so.durable = false;
    pdckpt_error err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_dygraph_save_persistables(model, target, opts, &so, &err), &err);
    /* The tensor file is a binary tensor stream named by the variable, '/' = subdirectories. */
    snprintf(path, sizeof path, "%s/mlp/MLP_0/FC_0.w_0", target);
    pdckpt_load_options lo = PDCKPT_LOAD_OPTIONS_INIT;
    lo.format = PDCKPT_FORMAT_TENSOR;
    pdckpt_value *back = NULL;
    CHECK_OK(pdckpt_load_file(path, &lo, &back, NULL, &err), &err);
    CHECK(back && pdckpt_value_equal(back, pdckpt_dict_get(model, "fc.w")));
    pdckpt_value_free(back);
    snprintf(path, sizeof path, "%s/b", target); /* unnamed: its key */
    CHECK(tu_file_exists(path));
    snprintf(path, sizeof path, "%s/optimizers/SGDOptimizer_0", target);
    size_t   len;
    uint8_t *b = tu_read_file(path, &len);
    CHECK(b && equals_hex(b, len,
                          "8002636c72730a4e61747572616c45787044656361790a7100298171017d71"
                          "02285808000000737465705f6e756d71034b00580d0000006c6561726e696e"
                          "675f726174657104473fe000000000000075622e"));
    free(b);
    /* A second save replaces the directory as a whole. */
    CHECK_OK(pdckpt_dygraph_save_persistables(model, target, NULL, &so, &err), &err);
    CHECK(!tu_file_exists(path));
    pdckpt_value_free(model);
    pdckpt_value_free(opts);
    tu_rmtree(dir);
    free(dir);
}

/* ---- restore check ---- */

static void test_restore_check(void) {
    const int64_t d23[2] = {2, 3}, d32[2] = {3, 2}, d1[1] = {1};
    pdckpt_value *want = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_value *got = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(want, "fc_0.w_0_moment1_0",
                    named_tensor(PDCKPT_DTYPE_FLOAT32, 2, d23, NULL, NULL), NULL);
    pdckpt_dict_set(got, "fc_3.w_0_moment1_2",
                    named_tensor(PDCKPT_DTYPE_FLOAT32, 2, d23, NULL, NULL), NULL);
    pdckpt_dict_set(want, "shape", named_tensor(PDCKPT_DTYPE_FLOAT32, 2, d23, NULL, NULL), NULL);
    pdckpt_dict_set(got, "shape", named_tensor(PDCKPT_DTYPE_FLOAT32, 2, d32, NULL, NULL), NULL);
    pdckpt_dict_set(want, "dtype", named_tensor(PDCKPT_DTYPE_FLOAT32, 1, d1, NULL, NULL), NULL);
    pdckpt_dict_set(got, "dtype", named_tensor(PDCKPT_DTYPE_FLOAT16, 1, d1, NULL, NULL), NULL);
    pdckpt_dict_set(want, "bf16", named_tensor(PDCKPT_DTYPE_BFLOAT16, 1, d1, NULL, NULL), NULL);
    pdckpt_dict_set(got, "bf16", named_tensor(PDCKPT_DTYPE_UINT16, 1, d1, NULL, NULL), NULL);
    /* (name, tensor) tuples of Paddle's generic path count as the tensor. */
    pdckpt_value *tup = pdckpt_value_new_container(NULL, PDCKPT_KIND_TUPLE);
    pdckpt_value_append(tup, pdckpt_value_new_string(NULL, "mw", SIZE_MAX), NULL);
    pdckpt_value_append(tup, named_tensor(PDCKPT_DTYPE_FLOAT32, 1, d1, NULL, "mw"), NULL);
    pdckpt_dict_set(want, "tuple", named_tensor(PDCKPT_DTYPE_FLOAT32, 1, d1, NULL, NULL), NULL);
    pdckpt_dict_set(got, "tuple", tup, NULL);
    pdckpt_value *lr_w = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(lr_w, "last_epoch", pdckpt_value_new_int(NULL, 0), NULL);
    pdckpt_dict_set(lr_w, "last_lr", pdckpt_value_new_float(NULL, 0.1), NULL);
    pdckpt_dict_set(want, "LR_Scheduler", lr_w, NULL);
    pdckpt_value *lr_g = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(lr_g, "last_epoch", named_tensor(PDCKPT_DTYPE_INT64, 1, d1, NULL, NULL), NULL);
    pdckpt_dict_set(got, "LR_Scheduler", lr_g, NULL);
    pdckpt_dict_set(got, "StructuredToParameterName@@",
                    pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT), NULL);
    pdckpt_restore_report r;
    pdckpt_error          err = PDCKPT_ERROR_INIT;
    CHECK_OK(pdckpt_check_restore(want, got, &r, &err), &err);
    CHECK_EQ_INT(r.n_expected, 7);
    CHECK_EQ_INT(r.n_loaded, 6);  /* the name table is not an entry */
    CHECK_EQ_INT(r.n_matched, 2); /* bf16 ~ uint16, tuple ~ tensor */
    CHECK_EQ_INT(r.n_missing, 2);
    CHECK_EQ_INT(r.n_unexpected, 1);
    CHECK_EQ_INT(r.n_mismatched, 3);
    CHECK_EQ_INT(r.n_issues, 6);
    if (r.n_issues == 6) {
        CHECK_EQ_INT(r.issues[0].kind, PDCKPT_RESTORE_MISSING);
        CHECK_STR(r.issues[0].name, "fc_0.w_0_moment1_0");
        CHECK_STR(r.issues[0].counterpart, "fc_3.w_0_moment1_2");
        CHECK_EQ_INT(r.issues[1].kind, PDCKPT_RESTORE_SHAPE);
        CHECK_EQ_INT(r.issues[2].kind, PDCKPT_RESTORE_DTYPE);
        CHECK_STR(r.issues[3].name, "LR_Scheduler/last_epoch");
        CHECK_EQ_INT(r.issues[3].kind, PDCKPT_RESTORE_KIND);
        CHECK_STR(r.issues[4].name, "LR_Scheduler/last_lr");
        CHECK_EQ_INT(r.issues[4].kind, PDCKPT_RESTORE_MISSING);
        CHECK(r.issues[4].counterpart == NULL);
        CHECK_EQ_INT(r.issues[5].kind, PDCKPT_RESTORE_UNEXPECTED);
        CHECK_STR(r.issues[5].counterpart, "fc_0.w_0_moment1_0");
        CHECK_STR(pdckpt_restore_issue_kind_name(r.issues[5].kind), "unexpected");
    }
    pdckpt_restore_report_free(&r);
    CHECK_OK(pdckpt_check_restore(want, want, &r, &err), &err);
    CHECK_EQ_INT(r.n_issues, 0);
    CHECK_EQ_INT(r.n_matched, 7);
    pdckpt_restore_report_free(&r);
    CHECK_STATUS(pdckpt_check_restore(want, NULL, &r, &err), PDCKPT_ERR_ARGUMENT, &err);
    pdckpt_value_free(want);
    pdckpt_value_free(got);
}

/* ---- allocation failures: every allocation of a save fails in turn, cleanly (ASan: no leak) ----
 */

typedef struct failing {
    long countdown; /* allocations left before the failure */
} failing;

static void *fail_alloc(void *ctx, size_t size, size_t alignment) {
    failing *f = ctx;
    if (f->countdown-- == 0) return NULL;
    size_t rounded = (size + alignment - 1) / alignment * alignment;
    return aligned_alloc(alignment < sizeof(void *) ? sizeof(void *) : alignment, rounded);
}

static void fail_free(void *ctx, void *ptr, size_t size) {
    (void)ctx;
    (void)size;
    free(ptr);
}

static void exhaust_save(const pdckpt_value *root, int proto) {
    for (long n = 0; n < 100000; n++) {
        failing             f = {n};
        pdckpt_allocator    a = {fail_alloc, fail_free, &f};
        pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
        ALLOW_TEST_CLASSES(so);
        so.allocator = &a;
        so.format = PDCKPT_FORMAT_PICKLE;
        so.protocol = proto;
        void         *data = NULL;
        size_t        len = 0;
        pdckpt_error  err = PDCKPT_ERROR_INIT;
        pdckpt_status st = pdckpt_save_memory(root, &so, &data, &len, &err);
        pdckpt_free(&a, data, len);
        if (st == PDCKPT_OK) {
            CHECK(n > 2);
            return;
        }
        CHECK_STATUS(st, PDCKPT_ERR_NOMEM, &err);
        if (st != PDCKPT_ERR_NOMEM) return;
    }
    CHECK(false);
}

/* The writer emits only globals on the allowlist or allowed by the caller: a tree from anywhere
 * (a hostile pickle read with allowances, a hand-built tree) cannot produce a call to run. */
static void test_globals_allowlist(void) {
    static const char *const bad[][2] = {
        {"posix", "system"}, {"builtins", "eval"}, {"builtins", "exec"}, {"lrs", "Other"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        for (int kind = 0; kind < 3; kind++) {
            pdckpt_value *args = pdckpt_value_new_container(NULL, PDCKPT_KIND_TUPLE);
            pdckpt_value *obj = pdckpt_value_new_object(NULL, (pdckpt_object_kind)kind, bad[i][0],
                                                        bad[i][1], kind == 2 ? NULL : args, NULL);
            if (kind == 2) pdckpt_value_free(args);
            pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
            so.format = PDCKPT_FORMAT_PICKLE;
            so.protocol = 2 + kind;
            void        *data = NULL;
            size_t       len = 0;
            pdckpt_error err = PDCKPT_ERROR_INIT;
            CHECK_STATUS(pdckpt_save_memory(obj, &so, &data, &len, &err), PDCKPT_ERR_UNSUPPORTED,
                         &err);
            char want[200];
            snprintf(want, sizeof want,
                     "refusing to write global %s.%s: it is not on pdckpt's "
                     "allowlist",
                     bad[i][0], bad[i][1]);
            CHECK(strstr(err.message, want) != NULL && data == NULL);
            pdckpt_value_free(obj);
        }
    /* the Python 2 spelling is judged as the name it stands for */
    pdckpt_value *g =
        pdckpt_value_new_object(NULL, PDCKPT_OBJECT_GLOBAL, "__builtin__", "eval", NULL, NULL);
    pdckpt_error err = PDCKPT_ERROR_INIT;
    CHECK_STATUS(save_status(g, 2, &err), PDCKPT_ERR_UNSUPPORTED, &err);
    CHECK(strstr(err.message, "refusing to write global builtins.eval") != NULL);
    pdckpt_value_free(g);
    /* allowed: written; builtins can never be allowed */
    g = pdckpt_value_new_object(NULL, PDCKPT_OBJECT_GLOBAL, "lrs", "NaturalExpDecay", NULL, NULL);
    CHECK_OK(save_status(g, 2, &err), &err);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    const char *const   allow[] = {"builtins.eval"};
    so.allowed_globals = allow;
    so.n_allowed_globals = 1;
    void  *data = NULL;
    size_t len = 0;
    CHECK_STATUS(pdckpt_save_memory(g, &so, &data, &len, &err), PDCKPT_ERR_ARGUMENT, &err);
    pdckpt_value_free(g);
}

static void test_allocation_failures(void) {
    pdckpt_value *state = many_tensors(40, PDCKPT_DTYPE_INT32); /* memo and frame growth */
    pdckpt_value *lr = pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT);
    pdckpt_dict_set(lr, "last_epoch", pdckpt_value_new_int(NULL, 3), NULL);
    pdckpt_dict_set(state, "LR_Scheduler", lr, NULL);
    pdckpt_value *generic = pdckpt_value_new_container(NULL, PDCKPT_KIND_LIST);
    pdckpt_value_append(generic, pdckpt_value_retain(state), NULL);
    pdckpt_value *set = pdckpt_value_new_container(NULL, PDCKPT_KIND_SET);
    pdckpt_value_append(set, pdckpt_value_new_string(NULL, "member", SIZE_MAX), NULL);
    pdckpt_value_append(generic, set, NULL);
    pdckpt_value_append(generic,
                        pdckpt_value_new_object(NULL, PDCKPT_OBJECT_NEWOBJ, "m", "C", NULL,
                                                pdckpt_value_new_container(NULL, PDCKPT_KIND_DICT)),
                        NULL);
    for (int proto = 2; proto <= 4; proto++) {
        exhaust_save(state, proto);
        exhaust_save(generic, proto);
    }
    pdckpt_value_free(state);
    pdckpt_value_free(generic);
}

int main(void) {
    RUN(test_worked_example_protocol4);
    RUN(test_worked_example_protocol2);
    RUN(test_empty_state_dict);
    RUN(test_frame_boundaries);
    RUN(test_memo_numbering);
    RUN(test_latin1_every_byte);
    RUN(test_paths);
    RUN(test_paths_refined);
    RUN(test_existing_name_table);
    RUN(test_big_array_split);
    RUN(test_object_newobj_protocol2);
    RUN(test_errors);
    RUN(test_save_dygraph);
    RUN(test_save_persistables);
    RUN(test_restore_check);
    RUN(test_globals_allowlist);
    RUN(test_allocation_failures);
    return CHECK_SUMMARY();
}
