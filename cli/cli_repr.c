/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_repr.c — compact, Python-like one-line renderings of values the listings cannot break into
 * rows: opaque pickled objects (class path, arguments, state), ints beyond 64 bits (which a
 * pickle carries as builtins.int over two's-complement bytes), and long or binary strings.
 * Output is always truncated to the buffer and marked with "..." when cut.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

typedef struct out {
    char  *buf;
    size_t cap, len;
    bool   full;
} out;

static void put(out *o, const char *s, size_t n) {
    if (o->full) return;
    if (o->len + n + 4 >= o->cap) {
        size_t fit = o->cap > o->len + 4 ? o->cap - o->len - 4 : 0;
        while (fit > 0 && ((unsigned char)s[fit] & 0xc0) == 0x80) fit--; /* whole characters */
        n = fit;
        o->full = true;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    if (o->full) {
        memcpy(o->buf + o->len, "...", 3);
        o->len += 3;
    }
    o->buf[o->len] = '\0';
}

static void puts_(out *o, const char *s) {
    put(o, s, strlen(s));
}

static void repr(out *o, const pdckpt_value *v, int depth);

/* Text as its display-safe rendering (cli_safe), a quote as \'; bytes as Python shows them (every
 * byte past ASCII as \xhh). */
static void repr_text(out *o, const char *s, size_t n, bool bytes) {
    char        esc[8];
    const char *shown = bytes ? s : cli_safe_n(s, n);
    size_t      len = bytes ? n : strlen(shown);
    puts_(o, bytes ? "b'" : "'");
    for (size_t i = 0; i < len && !o->full; i++) {
        unsigned char c = (unsigned char)shown[i];
        if (c == '\'' || (bytes && c == '\\'))
            snprintf(esc, sizeof esc, "\\%c", c);
        else if (bytes && (c < 0x20 || c >= 0x7f))
            snprintf(esc, sizeof esc, "\\x%02x", c);
        else
            esc[0] = (char)c, esc[1] = '\0';
        puts_(o, esc);
    }
    puts_(o, "'");
}

static void repr_items(out *o, const pdckpt_value *v, int depth, const char *open,
                       const char *close) {
    puts_(o, open);
    for (size_t i = 0; i < pdckpt_value_len(v) && !o->full; i++) {
        if (i) puts_(o, ", ");
        if (pdckpt_value_kind(v) == PDCKPT_KIND_DICT) {
            repr(o, pdckpt_dict_key_at(v, i), depth + 1);
            puts_(o, ": ");
        }
        repr(o, pdckpt_value_at(v, i), depth + 1);
    }
    if (pdckpt_value_kind(v) == PDCKPT_KIND_TUPLE && pdckpt_value_len(v) == 1) puts_(o, ",");
    puts_(o, close);
}

static void repr_object(out *o, const pdckpt_value *v, int depth) {
    char num[1600];
    if (pdckpt_bigint_decimal(v, num, sizeof num)) {
        puts_(o, num);
        return;
    }
    puts_(o, cli_safe(pdckpt_object_module(v)));
    puts_(o, ".");
    puts_(o, cli_safe(pdckpt_object_name(v)));
    if (pdckpt_object_kind_of(v) == PDCKPT_OBJECT_GLOBAL) return;
    const pdckpt_value *args = pdckpt_object_args(v);
    if (args && pdckpt_value_kind(args) == PDCKPT_KIND_TUPLE)
        repr_items(o, args, depth, "(", ")");
    else
        puts_(o, "()");
    if (pdckpt_object_state(v)) {
        puts_(o, " state=");
        repr(o, pdckpt_object_state(v), depth + 1);
    }
    if (pdckpt_object_items(v)) {
        puts_(o, " items=");
        repr(o, pdckpt_object_items(v), depth + 1);
    }
}

static void repr(out *o, const pdckpt_value *v, int depth) {
    char               buf[64];
    size_t             n;
    pdckpt_tensor_view tv;
    if (depth > 32) return puts_(o, "...");
    switch (pdckpt_value_kind(v)) {
    case PDCKPT_KIND_NONE: return puts_(o, "None");
    case PDCKPT_KIND_BOOL: {
        bool b = false;
        pdckpt_value_get_bool(v, &b);
        return puts_(o, b ? "True" : "False");
    }
    case PDCKPT_KIND_STRING: {
        const char *s = pdckpt_value_get_string(v, &n);
        return repr_text(o, s, n, false);
    }
    case PDCKPT_KIND_BYTES: {
        const char *s = pdckpt_value_get_bytes(v, &n);
        return repr_text(o, s, n, true);
    }
    case PDCKPT_KIND_LIST: return repr_items(o, v, depth, "[", "]");
    case PDCKPT_KIND_TUPLE: return repr_items(o, v, depth, "(", ")");
    case PDCKPT_KIND_SET: return repr_items(o, v, depth, "{", "}");
    case PDCKPT_KIND_DICT: return repr_items(o, v, depth, "{", "}");
    case PDCKPT_KIND_OBJECT: return repr_object(o, v, depth);
    case PDCKPT_KIND_TENSOR:
        pdckpt_tensor_get_memory(v, &tv, NULL);
        cli_shape_text(&tv, buf, sizeof buf);
        puts_(o, "<tensor ");
        puts_(o, pdckpt_dtype_name(tv.dtype));
        puts_(o, " ");
        puts_(o, buf);
        return puts_(o, ">");
    default: break;
    }
    if (pdckpt_value_kind(v) == PDCKPT_KIND_INT) {
        int64_t i = 0;
        pdckpt_value_get_int(v, &i);
        snprintf(buf, sizeof buf, "%lld", (long long)i);
    } else {
        double d = 0;
        pdckpt_value_get_float(v, &d);
        for (int digits = 15; digits <= 17; digits++) { /* the shortest that reads back */
            snprintf(buf, sizeof buf, "%.*g", digits, d);
            if (strtod(buf, NULL) == d) break;
        }
    }
    puts_(o, buf);
}

void cli_repr(const pdckpt_value *v, char *buf, size_t cap) {
    out o = {buf, cap, 0, false};
    buf[0] = '\0';
    repr(&o, v, 0);
}
