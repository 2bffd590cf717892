/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_output.c — text and JSON rendering of values, SHA-256 of tensor bytes (OpenSSL's EVP, which
 * uses the CPU's SHA extensions), and the progress bar.
 */
#include "cli.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pdckpt_status to_file(void *out, const void *bytes, size_t len, pdckpt_error *err) {
    (void)err; /* unchecked, as the printf calls around it are */
    fwrite(bytes, 1, len, out);
    return PDCKPT_OK;
}

void cli_json_string(FILE *out, const char *s, size_t len) {
    pdckpt_json_write_string(s, len, PDCKPT_JSON_DISPLAY, to_file, out, NULL);
}

/* A ring of renderings: each lives until CLI_SAFE_SLOTS later calls (one command runs at a time,
 * on one thread). */
static char  *safe_slots[CLI_SAFE_SLOTS];
static size_t safe_next;

const char *cli_safe_n(const char *s, size_t len) {
    size_t need = pdckpt_display_text(s, len, 0, NULL, 0) + 1;
    char  *buf = malloc(need);
    if (!buf) return "<out of memory>";
    pdckpt_display_text(s, len, 0, buf, need);
    free(safe_slots[safe_next]);
    safe_slots[safe_next] = buf;
    safe_next = (safe_next + 1) % CLI_SAFE_SLOTS;
    return buf;
}

const char *cli_safe(const char *s) {
    return s ? cli_safe_n(s, strlen(s)) : "(null)";
}

size_t cli_width(const char *text) {
    return pdckpt_display_width(text, strlen(text));
}

void cli_put_cell(FILE *out, const char *text, size_t width) {
    fputs(text, out);
    for (size_t w = cli_width(text); w < width; w++) fputc(' ', out);
}

void cli_json_str(FILE *out, const char *s) {
    cli_json_string(out, s, strlen(s));
}

static void json_double(FILE *out, double d) {
    if (isnan(d))
        fputs("\"NaN\"", out);
    else if (isinf(d))
        fputs(d > 0 ? "\"Infinity\"" : "\"-Infinity\"", out);
    else {
        char buf[40];
        /* The shortest of 15-17 digits that reads back exactly (0.005, not 0.0050000000000000001).
         */
        for (int digits = 15; digits <= 17; digits++) {
            snprintf(buf, sizeof buf, "%.*g", digits, d);
            if (strtod(buf, NULL) == d) break;
        }
        /* Keep floats recognisable as floats in JSON (1.0, not 1). */
        if (!strpbrk(buf, ".eE")) strcat(buf, ".0");
        fputs(buf, out);
    }
}

static void describe(char *buf, size_t cap, const pdckpt_value *leaf) {
    pdckpt_kind k = pdckpt_value_kind(leaf);
    size_t      n = 0;
    if (k == PDCKPT_KIND_BYTES) {
        pdckpt_value_get_bytes(leaf, &n);
        snprintf(buf, cap, "<bytes: %zu>", n);
    } else if (k == PDCKPT_KIND_OBJECT) { /* class path, arguments and state, shortened */
        char repr[240];
        cli_repr(leaf, repr, sizeof repr);
        snprintf(buf, cap, "<object %s>", repr);
    } else {
        snprintf(buf, cap, "<%s>", pdckpt_kind_name(k));
    }
}

void cli_json_scalar(FILE *out, const pdckpt_value *leaf) {
    bool        b;
    int64_t     i;
    double      d;
    size_t      n;
    const char *s;
    char        buf[600];
    switch (pdckpt_value_kind(leaf)) {
    case PDCKPT_KIND_NONE: fputs("null", out); break;
    case PDCKPT_KIND_BOOL:
        pdckpt_value_get_bool(leaf, &b);
        fputs(b ? "true" : "false", out);
        break;
    case PDCKPT_KIND_INT:
        pdckpt_value_get_int(leaf, &i);
        fprintf(out, "%lld", (long long)i);
        break;
    case PDCKPT_KIND_FLOAT:
        pdckpt_value_get_float(leaf, &d);
        json_double(out, d);
        break;
    case PDCKPT_KIND_STRING:
        s = pdckpt_value_get_string(leaf, &n);
        cli_json_string(out, s, n);
        break;
    default:
        if (pdckpt_bigint_decimal(leaf, buf,
                                  sizeof buf)) { /* an int beyond 64 bits: a JSON number */
            fputs(buf, out);
            break;
        }
        describe(buf, sizeof buf, leaf);
        cli_json_str(out, buf);
        break;
    }
}

void cli_text_scalar(FILE *out, const pdckpt_value *leaf) {
    size_t n;
    if (pdckpt_value_get_string(leaf, &n)) { /* quoted, control bytes escaped, long ones cut */
        char repr[200];
        cli_repr(leaf, repr, sizeof repr);
        fputs(repr, out);
        if (n > 150) fprintf(out, " (%zu bytes)", n);
        return;
    }
    cli_json_scalar(out, leaf);
}

void cli_dims_text(int32_t n_dims, const int64_t *dims, char *buf, size_t cap) {
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int32_t d = 0; d < n_dims && used < cap; d++)
        used +=
            (size_t)snprintf(buf + used, cap - used, "%s%lld", d ? ", " : "", (long long)dims[d]);
    if (used < cap) snprintf(buf + used, cap - used, "]");
}

void cli_shape_text(const pdckpt_tensor_view *v, char *buf, size_t cap) {
    cli_dims_text(v->n_dims, v->dims, buf, cap);
}

int cli_sha256_hex(const void *data, uint64_t len, char out[65]) {
    unsigned char        digest[32];
    unsigned int         n = 0;
    EVP_MD_CTX          *ctx = EVP_MD_CTX_new();
    int                  ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    const unsigned char *p = data;
    for (uint64_t left = len; ok && left > 0;) {
        size_t chunk = left > (64u << 20) ? (64u << 20) : (size_t)left;
        ok = EVP_DigestUpdate(ctx, p, chunk);
        p += chunk;
        left -= chunk;
    }
    ok = ok && EVP_DigestFinal_ex(ctx, digest, &n);
    EVP_MD_CTX_free(ctx);
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", digest[i]);
    return ok ? 0 : -1;
}

/* ---- progress ---- */

static struct {
    const char     *label;
    struct timespec start;
    double          after; /* seconds of work before the bar appears */
    bool            drawn;
    bool            tty;
} meter; /* the bar on stderr (one per process: one command runs) */

static double elapsed(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - meter.start.tv_sec) +
           (double)(now.tv_nsec - meter.start.tv_nsec) / 1e9;
}

void cli_progress_begin(const char *label) {
    meter.label = label;
    meter.drawn = false;
    meter.tty = isatty(STDERR_FILENO) == 1;
    /* PDCKPT_PROGRESS_AFTER overrides the one-second delay (the tests use 0). */
    const char *after = getenv("PDCKPT_PROGRESS_AFTER");
    meter.after = after ? atof(after) : 1.0;
    clock_gettime(CLOCK_MONOTONIC, &meter.start);
}

int cli_progress_cb(void *ctx, uint64_t done, uint64_t total) {
    (void)ctx;
    double t = elapsed();
    if (!meter.tty || t < meter.after) return 0;
    char bar[31], amount[32], whole[32], rate[32];
    int  filled = total ? (int)((double)done / (double)total * 30.0) : 0;
    if (filled > 30) filled = 30;
    memset(bar, '#', (size_t)filled);
    memset(bar + filled, '.', (size_t)(30 - filled));
    bar[30] = '\0';
    cli_human_bytes(done, amount, sizeof amount);
    cli_human_bytes(t > 0 ? (uint64_t)((double)done / t) : 0, rate, sizeof rate);
    if (total)
        fprintf(stderr, "\r%s [%s] %3d%% %s / %s, %s/s\033[K", meter.label, bar,
                (int)(done * 100 / total), amount, cli_human_bytes(total, whole, sizeof whole),
                rate);
    else
        fprintf(stderr, "\r%s %s, %s/s\033[K", meter.label, amount, rate);
    meter.drawn = true;
    return 0;
}

void cli_progress_end(void) {
    if (meter.drawn) fputs("\r\033[K", stderr);
    meter.drawn = false;
}
