/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tree_tool.c — a test driver that builds a value tree from a text description and saves it with
 * the public API, so the Python tests can give pdckpt exactly the tree they give Paddle (names,
 * nesting, dtypes numpy has and safetensors lacks) and compare the bytes.  Tensors borrow their
 * data from a raw data file (mapped), so saving streams from that memory.
 *
 * Description grammar (whitespace-separated tokens; text is hex-encoded UTF-8, "-" for empty):
 *   N | T | F | i <int> | f <16 hex digits: IEEE-754 bits> | s <hex> | b <hex>
 *   L <n> v... | U <n> v... | S <n> v... | D <n> (k v)...       list, tuple, set, dict
 *   t <dtype> <ndims> <dims...> <offset> <name hex | ".">         tensor ("." = no name)
 *   o <R|N|G> <module hex> <name hex> <args|x> <state|x> <items|x>  opaque object
 *   = <label> v    defines v under a label        @ <label>    the same node again
 *
 * Usage: tree_tool save DESC DATA OUT [--protocol N] [--numpy-module M] [--format F]
 *                  [--allow-global module.name]...
 *        tree_tool dygraph PARAMS|- OPT|- DATA PREFIX [--numpy-module M]
 *        tree_tool persistables MODEL OPTIMIZERS|- DATA DIR
 */
#include <fcntl.h>
#include <pdckpt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct parser {
    FILE          *in;
    const uint8_t *data;
    size_t         data_len;
    pdckpt_value  *labels[4096];
} parser;

static void die(const char *msg) {
    fprintf(stderr, "tree_tool: %s\n", msg);
    exit(2);
}

static char *token(parser *ps) {
    static char  *buf;
    static size_t cap;
    size_t        n = 0;
    int           c;
    while ((c = getc(ps->in)) != EOF && (c == ' ' || c == '\n')) continue;
    if (c == EOF) die("unexpected end of description");
    for (; c != EOF && c != ' ' && c != '\n'; c = getc(ps->in)) {
        if (n + 2 > cap && !(buf = realloc(buf, cap = cap ? cap * 2 : 256))) die("out of memory");
        buf[n++] = (char)c;
    }
    buf[n] = '\0';
    return buf;
}

static char *unhex(const char *h, size_t *len) {
    size_t n = strcmp(h, "-") == 0 ? 0 : strlen(h) / 2;
    char  *out = malloc(n + 1);
    for (size_t i = 0; i < n; i++) sscanf(h + 2 * i, "%2hhx", (unsigned char *)&out[i]);
    out[n] = '\0';
    *len = n;
    return out;
}

static pdckpt_value *parse(parser *ps);

static pdckpt_value *parse_tensor(parser *ps) {
    pdckpt_dtype dtype = pdckpt_dtype_from_name(token(ps));
    int32_t      n_dims = atoi(token(ps));
    int64_t      dims[PDCKPT_MAX_DIMS];
    for (int32_t i = 0; i < n_dims; i++) dims[i] = atoll(token(ps));
    size_t        offset = strtoull(token(ps), NULL, 10);
    pdckpt_value *t = NULL;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    if (offset > ps->data_len) die("tensor offset beyond the data file");
    if (pdckpt_tensor_new_borrowed(NULL, dtype, n_dims, dims, ps->data + offset, &t, &err))
        die(err.message);
    const char *name = token(ps);
    if (strcmp(name, ".") != 0) {
        size_t len;
        char  *s = unhex(name, &len);
        pdckpt_tensor_set_name(t, s, NULL);
        free(s);
    }
    return t;
}

static pdckpt_value *parse_optional(parser *ps) {
    long pos = ftell(ps->in);
    if (strcmp(token(ps), "x") == 0) return NULL;
    fseek(ps->in, pos, SEEK_SET);
    return parse(ps);
}

static pdckpt_value *parse_object(parser *ps) {
    const char        *k = token(ps);
    pdckpt_object_kind kind = k[0] == 'R'   ? PDCKPT_OBJECT_REDUCE
                              : k[0] == 'N' ? PDCKPT_OBJECT_NEWOBJ
                                            : PDCKPT_OBJECT_GLOBAL;
    size_t             len;
    char              *module = unhex(token(ps), &len), *name = unhex(token(ps), &len);
    pdckpt_value      *args = parse_optional(ps), *state = parse_optional(ps);
    pdckpt_value      *items = parse_optional(ps);
    pdckpt_value      *obj = pdckpt_value_new_object(NULL, kind, module, name, args, state);
    if (items) pdckpt_object_set_items(obj, items, NULL);
    free(module);
    free(name);
    return obj;
}

static pdckpt_value *parse_container(parser *ps, pdckpt_kind kind) {
    pdckpt_value *c = pdckpt_value_new_container(NULL, kind);
    long          n = atol(token(ps));
    for (long i = 0; i < n; i++) {
        pdckpt_status st;
        if (kind == PDCKPT_KIND_DICT) {
            pdckpt_value *key = parse(ps);
            st = pdckpt_dict_set_value(c, key, parse(ps), NULL);
        } else {
            st = pdckpt_value_append(c, parse(ps), NULL);
        }
        if (st != PDCKPT_OK) die("cannot add an item");
    }
    return c;
}

static pdckpt_value *parse(parser *ps) {
    char  *t = token(ps);
    size_t len;
    char   c = t[0];
    if (c == 'N') return pdckpt_value_new_none(NULL);
    if (c == 'T' || c == 'F') return pdckpt_value_new_bool(NULL, c == 'T');
    if (c == 'i') return pdckpt_value_new_int(NULL, atoll(token(ps)));
    if (c == 'f') {
        uint64_t bits = strtoull(token(ps), NULL, 16);
        double   d;
        memcpy(&d, &bits, sizeof d);
        return pdckpt_value_new_float(NULL, d);
    }
    if (c == 's' || c == 'b') {
        char         *s = unhex(token(ps), &len);
        pdckpt_value *v =
            c == 's' ? pdckpt_value_new_string(NULL, s, len) : pdckpt_value_new_bytes(NULL, s, len);
        free(s);
        return v;
    }
    if (c == 'L') return parse_container(ps, PDCKPT_KIND_LIST);
    if (c == 'U') return parse_container(ps, PDCKPT_KIND_TUPLE);
    if (c == 'S') return parse_container(ps, PDCKPT_KIND_SET);
    if (c == 'D') return parse_container(ps, PDCKPT_KIND_DICT);
    if (c == 't') return parse_tensor(ps);
    if (c == 'o') return parse_object(ps);
    if (c == '=' || c == '@') {
        int label = atoi(token(ps));
        if (label < 0 || label >= 4096) die("label out of range");
        if (c == '=') return ps->labels[label] = parse(ps);
        if (!ps->labels[label]) die("undefined label");
        return pdckpt_value_retain(ps->labels[label]);
    }
    die("unknown token in description");
    return NULL;
}

static pdckpt_value *load_desc(const char *path, const uint8_t *data, size_t len) {
    if (strcmp(path, "-") == 0) return NULL;
    parser ps = {fopen(path, "r"), data, len, {0}};
    if (!ps.in) die("cannot open the description");
    pdckpt_value *v = parse(&ps);
    fclose(ps.in);
    return v;
}

static const uint8_t *map_data(const char *path, size_t *len) {
    int         fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) die("cannot open the data file");
    *len = (size_t)st.st_size;
    if (*len == 0) return (const uint8_t *)"";
    void *m = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) die("cannot map the data file");
    return m;
}

static void parse_options(int argc, char **argv, int first, pdckpt_save_options *so) {
    static const char *allowed[16];
    for (int i = first; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--allow-global") == 0 && so->n_allowed_globals < 16) {
            allowed[so->n_allowed_globals++] = argv[i + 1];
            so->allowed_globals = allowed;
        } else if (strcmp(argv[i], "--protocol") == 0)
            so->protocol = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--numpy-module") == 0)
            so->numpy_module =
                strcmp(argv[i + 1], "numpy._core") == 0 ? PDCKPT_NUMPY__CORE : PDCKPT_NUMPY_CORE;
        else if (strcmp(argv[i], "--format") == 0)
            so->format = pdckpt_format_from_name(argv[i + 1], NULL);
        else
            die("unknown option");
    }
}

static int report(pdckpt_status st, const pdckpt_error *err) {
    if (st == PDCKPT_OK) return 0;
    char line[1200];
    fprintf(stderr, "tree_tool: %s\n", pdckpt_error_format(err, line, sizeof line));
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 6) die("usage: see the header of tests/support/tree_tool.c");
    size_t              len;
    const uint8_t      *data = map_data(argv[strcmp(argv[1], "save") == 0 ? 3 : 4], &len);
    pdckpt_save_options so = PDCKPT_SAVE_OPTIONS_INIT;
    so.durable = false;
    pdckpt_error  err = PDCKPT_ERROR_INIT;
    pdckpt_status st;
    pdckpt_value *a = load_desc(argv[2], data, len), *b = NULL;
    if (strcmp(argv[1], "save") == 0) {
        parse_options(argc, argv, 5, &so);
        st = pdckpt_save_file(a, argv[4], &so, &err);
    } else {
        b = load_desc(argv[3], data, len);
        parse_options(argc, argv, 6, &so);
        if (strcmp(argv[1], "dygraph") == 0)
            st = pdckpt_save_dygraph(a, b, argv[5], &so, &err);
        else
            st = pdckpt_dygraph_save_persistables(a, argv[5], b, &so, &err);
    }
    pdckpt_value_free(a);
    pdckpt_value_free(b);
    return report(st, &err);
}
