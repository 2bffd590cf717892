/* SPDX-License-Identifier: Apache-2.0 */
/*
 * error_text.c — error messages that fit their fixed buffer (pdckpt_error.message, 512 bytes: a
 * public struct the caller allocates, so its size stays) without losing their tail.  A message
 * quotes names from the file; made display-safe a name can grow 4x (a control byte is "\xhh"),
 * and a hostile 10 KB name would push "at offset N: expected ..." out of the buffer.  So each
 * quoted string is escaped on its own and, when the whole would not fit, the longest ones are cut
 * in the middle ("head[...N bytes...]tail"): the words of the message itself always survive.
 */
#include "pdk_core.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLAGS        PDCKPT_DISPLAY_KEEP_BACKSLASH
#define MIN_BUDGET   40 /* a cut string keeps at least this much: some head, marker, some tail */
#define MAX_PIECES   48
#define SCRATCH_SIZE 1024

static size_t shown(const char *s, size_t n) {
    return pdckpt_display_text(s, n, FLAGS, NULL, 0);
}

/* Bytes an escape starting with the backslash at s[i] spans ("\xhh" 4, "\uhhhh" 6, else 2). */
static size_t escape_len(const char *s, size_t len, size_t i) {
    char c = i + 1 < len ? s[i + 1] : 0;
    return c == 'x' ? 4 : c == 'u' ? 6 : 2;
}

/* Moves a cut at byte `at` off the inside of a UTF-8 sequence or an escape already in the text
 * (an inner message re-wrapped): backwards for a head, forwards for a tail. */
static size_t boundary(const char *s, size_t len, size_t at, bool forwards) {
    for (size_t i = at > 5 ? at - 5 : 0; i < at; i++)
        if (s[i] == '\\' && i + escape_len(s, len, i) > at) {
            at = forwards ? i + escape_len(s, len, i) : i;
            break;
        }
    if (at > len) at = len;
    while (at > 0 && at < len && ((unsigned char)s[at] & 0xc0) == 0x80) at += forwards ? 1 : -1;
    return at;
}

/* The most bytes of s[0..len), from its start (or its end), shown in at most `budget` bytes. */
static size_t fit(const char *s, size_t len, size_t budget, bool at_end) {
    size_t lo = 0, hi = len < budget ? len : budget; /* a byte is never shown in less */
    while (lo < hi) {
        size_t k = (lo + hi + 1) / 2;
        size_t from = at_end ? boundary(s, len, len - k, true) : 0;
        size_t to = at_end ? len : boundary(s, len, k, false);
        if (shown(s + from, to - from) <= budget)
            lo = k;
        else
            hi = k - 1;
    }
    return at_end ? len - boundary(s, len, len - lo, true) : boundary(s, len, lo, false);
}

size_t pdk_display_cut(const char *s, size_t len, size_t budget, char *dst, size_t cap) {
    if (cap == 0) return 0;
    if (shown(s, len) <= budget) return pdckpt_display_text(s, len, FLAGS, dst, cap);
    char   mark[48];
    size_t m = (size_t)snprintf(mark, sizeof mark, "[...%zu bytes...]", len); /* upper bound */
    size_t room = budget > m ? budget - m : 0;
    size_t head = fit(s, len, room / 2, false);
    size_t tail = fit(s + head, len - head, room - shown(s, head), true);
    snprintf(mark, sizeof mark, "[...%zu bytes...]", len - head - tail);
    size_t used = pdckpt_display_text(s, head, FLAGS, dst, cap);
    used = used < cap ? used : cap - 1;
    used += (size_t)snprintf(dst + used, cap - used, "%s", mark);
    if (used < cap) pdckpt_display_text(s + len - tail, tail, FLAGS, dst + used, cap - used);
    return strlen(dst);
}

/* ---- formatting: every "%s" (and "%c") argument escaped, and cut when the whole is too long */

typedef struct piece {
    const char *s;
    size_t      len;
    bool        quoted; /* text from outside: escaped, and cut if need be */
    size_t      budget;
} piece;

typedef struct pieces {
    piece  p[MAX_PIECES];
    size_t n;
    char   scratch[SCRATCH_SIZE]; /* numbers and characters, rendered */
    size_t used;
} pieces;

static void add(pieces *ps, const char *s, size_t len, bool quoted) {
    if (ps->n < MAX_PIECES) ps->p[ps->n++] = (piece){s, len, quoted, 0};
}

/* The conversion spec at fmt[0] ('%'): its length, with '*' width or precision taken now. */
static size_t spec_end(const char *fmt, va_list *ap, char *spec, size_t cap, int *precision) {
    size_t i = 1, o = 1;
    spec[0] = '%';
    *precision = -1;
    for (; fmt[i] && o + 12 < cap; i++) {
        if (fmt[i] == '*') {
            int v = va_arg(*ap, int);
            if (i > 0 && fmt[i - 1] == '.') *precision = v;
            o += (size_t)snprintf(spec + o, cap - o, "%d", v);
            continue;
        }
        spec[o++] = fmt[i];
        if (strchr("diouxXeEfFgGaAcspn%", fmt[i])) break;
    }
    spec[o] = '\0';
    const char *dot = strchr(spec, '.');
    if (dot && *precision < 0) *precision = (int)strtol(dot + 1, NULL, 10);
    return fmt[i] ? i + 1 : i;
}

/* An integer argument of the spec's length modifier (l1: its last letter, l2: the one before). */
static int print_int(char *at, size_t cap, const char *spec, char l1, char l2, bool u,
                     va_list *ap) {
    if (l1 == 'l' && l2 == 'l')
        return u ? snprintf(at, cap, spec, va_arg(*ap, unsigned long long))
                 : snprintf(at, cap, spec, va_arg(*ap, long long));
    if (l1 == 'l')
        return u ? snprintf(at, cap, spec, va_arg(*ap, unsigned long))
                 : snprintf(at, cap, spec, va_arg(*ap, long));
    if (l1 == 'z') return snprintf(at, cap, spec, va_arg(*ap, size_t));
    if (l1 == 'j')
        return u ? snprintf(at, cap, spec, va_arg(*ap, uintmax_t))
                 : snprintf(at, cap, spec, va_arg(*ap, intmax_t));
    if (l1 == 't') return snprintf(at, cap, spec, va_arg(*ap, ptrdiff_t));
    return u ? snprintf(at, cap, spec, va_arg(*ap, unsigned))
             : snprintf(at, cap, spec, va_arg(*ap, int));
}

/* One number (or pointer) conversion rendered into the scratch space. */
static void add_number(pieces *ps, const char *spec, va_list *ap) {
    size_t n = strlen(spec);
    char   conv = spec[n - 1], l1 = n > 2 ? spec[n - 2] : 0, l2 = n > 3 ? spec[n - 3] : 0;
    char  *at = ps->scratch + ps->used;
    size_t cap = SCRATCH_SIZE - ps->used;
    int    w;
    if (conv == 'n') { /* never written through: nothing in a message needs it */
        (void)va_arg(*ap, void *);
        return;
    }
    if (strchr("eEfFgGaA", conv))
        w = l1 == 'L' ? snprintf(at, cap, spec, va_arg(*ap, long double))
                      : snprintf(at, cap, spec, va_arg(*ap, double));
    else if (conv == 'p')
        w = snprintf(at, cap, spec, va_arg(*ap, void *));
    else
        w = print_int(at, cap, spec, l1, l2, strchr("ouxX", conv) != NULL, ap);
    size_t len = w < 0 || cap == 0 ? 0 : (size_t)w < cap ? (size_t)w : cap - 1;
    add(ps, at, len, false);
    ps->used += len;
}

/* A short string with a width ("%-6s"), escaped first, then padded as printf pads. */
static void add_padded(pieces *ps, const char *spec, const char *s, size_t len) {
    char   safe[128];
    char  *at = ps->scratch + ps->used;
    size_t cap = SCRATCH_SIZE - ps->used;
    pdckpt_display_text(s, len, FLAGS, safe, sizeof safe);
    int    w = snprintf(at, cap, spec, safe);
    size_t n = w < 0 || cap == 0 ? 0 : (size_t)w < cap ? (size_t)w : cap - 1;
    add(ps, at, n, false);
    ps->used += n;
}

static void parse(pieces *ps, const char *fmt, va_list *ap) {
    while (*fmt) {
        const char *pct = strchr(fmt, '%');
        size_t      lit = pct ? (size_t)(pct - fmt) : strlen(fmt);
        if (lit) add(ps, fmt, lit, false);
        if (!pct) return;
        char   spec[40];
        int    precision;
        size_t n = spec_end(pct, ap, spec, sizeof spec, &precision);
        char   conv = spec[strlen(spec) - 1];
        if (conv == '%') {
            add(ps, "%", 1, false);
        } else if (conv == 's') {
            const char *s = va_arg(*ap, const char *);
            if (!s) s = "(null)";
            size_t len = precision >= 0 ? strnlen(s, (size_t)precision) : strlen(s);
            if (strlen(spec) > 2 && !strchr(spec, '.') && shown(s, len) < 128)
                add_padded(ps, spec, s, len); /* "%-6s": a column of short names */
            else
                add(ps, s, len, true);
        } else if (conv == 'c') { /* the argument is taken even when there is no room */
            char c = (char)va_arg(*ap, int);
            if (ps->used < SCRATCH_SIZE) {
                ps->scratch[ps->used] = c;
                add(ps, ps->scratch + ps->used++, 1, true);
            }
        } else {
            add_number(ps, spec, ap);
        }
        fmt = pct + n;
    }
}

/* Gives each quoted piece its whole shown length if all fit in `room`, else shares the room out:
 * short pieces whole, the longest ones cut to an equal share (never under MIN_BUDGET). */
static void share(pieces *ps, size_t room) {
    size_t order[MAX_PIECES], k = 0;
    for (size_t i = 0; i < ps->n; i++)
        if (ps->p[i].quoted) {
            ps->p[i].budget = shown(ps->p[i].s, ps->p[i].len);
            size_t j = k++;
            for (; j > 0 && ps->p[order[j - 1]].budget > ps->p[i].budget; j--)
                order[j] = order[j - 1];
            order[j] = i;
        }
    for (size_t j = 0; j < k; j++) {
        piece *p = &ps->p[order[j]];
        size_t fair = room / (k - j);
        if (p->budget > fair) p->budget = fair > MIN_BUDGET ? fair : MIN_BUDGET;
        room = room > p->budget ? room - p->budget : 0;
    }
}

size_t pdk_format_bounded(char *dst, size_t cap, const char *fmt, va_list ap) {
    if (cap == 0) return 0;
    pieces  ps = {.n = 0, .used = 0};
    va_list copy;
    va_copy(copy, ap);
    parse(&ps, fmt, &copy);
    va_end(copy);
    size_t fixed = 0;
    for (size_t i = 0; i < ps.n; i++) fixed += ps.p[i].quoted ? 0 : ps.p[i].len;
    share(&ps, fixed < cap - 1 ? cap - 1 - fixed : 0);
    size_t used = 0;
    dst[0] = '\0';
    for (size_t i = 0; i < ps.n && used + 1 < cap; i++) {
        const piece *p = &ps.p[i];
        if (p->quoted) {
            pdk_display_cut(p->s, p->len, p->budget, dst + used, cap - used);
            used += strlen(dst + used);
        } else {
            size_t n = p->len < cap - 1 - used ? p->len : cap - 1 - used;
            memcpy(dst + used, p->s, n);
            used += n;
            dst[used] = '\0';
        }
    }
    return used;
}
