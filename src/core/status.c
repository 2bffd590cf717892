/* SPDX-License-Identifier: Apache-2.0 */
/*
 * status.c — status names and the error record helpers every layer uses.
 * First error wins: the innermost failure describes what went wrong, outer layers may only add a
 * prefix or fill in the source path (docs/DESIGN.md, "Errors are values").
 */
#include "pdk_core.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const status_names[] = {
    [PDCKPT_OK] = "ok",
    [PDCKPT_ERR_ARGUMENT] = "argument",
    [PDCKPT_ERR_NOMEM] = "nomem",
    [PDCKPT_ERR_IO] = "io",
    [PDCKPT_ERR_FORMAT] = "format",
    [PDCKPT_ERR_UNSUPPORTED] = "unsupported",
    [PDCKPT_ERR_NOT_FOUND] = "not_found",
    [PDCKPT_ERR_MISMATCH] = "mismatch",
    [PDCKPT_ERR_LIMIT] = "limit",
    [PDCKPT_ERR_MPI] = "mpi",
    [PDCKPT_ERR_CORRUPT] = "corrupt",
};

const char *pdckpt_status_name(pdckpt_status status) {
    if ((unsigned)status < sizeof status_names / sizeof status_names[0] && status_names[status])
        return status_names[status];
    return "unknown";
}

unsigned pdckpt_version_number(void) {
    return PDCKPT_VERSION_NUMBER;
}

const char *pdckpt_version_string(void) {
    return PDCKPT_VERSION_STRING;
}

static void copy_text(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Messages quote names from files: made display-safe once, here, where they are formatted
 * (pdckpt.h, "Display-safe text").  Backslashes are kept so that a message re-wrapped by an outer
 * layer ("%s" of an inner message) is not escaped twice. */
static void safe_text(char *dst, size_t cap, const char *src) {
    pdckpt_display_text(src, strlen(src), PDCKPT_DISPLAY_KEEP_BACKSLASH, dst, cap);
}

void pdk_error_reset(pdckpt_error *err) {
    if (!err) return;
    err->status = PDCKPT_OK;
    err->sys_errno = 0;
    err->offset = -1;
    err->source[0] = '\0';
    err->message[0] = '\0';
}

void pdk_error_set_source(pdckpt_error *err, const char *source) {
    if (err && source && err->source[0] == '\0') copy_text(err->source, sizeof err->source, source);
}

void pdk_error_replace_source(pdckpt_error *err, const char *source) {
    if (err && source) copy_text(err->source, sizeof err->source, source);
}

pdckpt_status pdk_failv(pdckpt_error *err, pdckpt_status status, const char *source, int64_t offset,
                        const char *fmt, va_list ap) {
    if (!err) return status;
    if (err->status != PDCKPT_OK) return err->status;
    err->status = status;
    err->offset = offset;
    if (source) copy_text(err->source, sizeof err->source, source);
    pdk_format_bounded(err->message, sizeof err->message, fmt, ap);
    return status;
}

pdckpt_status pdk_fail(pdckpt_error *err, pdckpt_status status, const char *source, int64_t offset,
                       const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pdckpt_status st = pdk_failv(err, status, source, offset, fmt, ap);
    va_end(ap);
    return st;
}

pdckpt_status pdk_fail_sys(pdckpt_error *err, int errnum, const char *source, const char *fmt,
                           ...) {
    if (!err) return PDCKPT_ERR_IO;
    if (err->status != PDCKPT_OK) return err->status;
    char    what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    pdckpt_status status = errnum == ENOENT   ? PDCKPT_ERR_NOT_FOUND
                           : errnum == ENOMEM ? PDCKPT_ERR_NOMEM
                                              : PDCKPT_ERR_IO;
    pdk_fail(err, status, source, -1, "%s: %s", what, strerror(errnum));
    err->sys_errno = errnum;
    return status;
}

pdckpt_status pdk_fail_nomem(pdckpt_error *err, const char *what) {
    return pdk_fail(err, PDCKPT_ERR_NOMEM, NULL, -1, "out of memory allocating %s", what);
}

/* Room a prefix always gets: the message is cut in its middle for it if need be. */
#define PREFIX_ROOM 160

void pdk_error_prefix(pdckpt_error *err, const char *fmt, ...) {
    if (!err || err->status == PDCKPT_OK) return;
    char   prefix[sizeof err->message];
    size_t cap = sizeof err->message, mlen = strlen(err->message);
    if (mlen > cap - 1 - PREFIX_ROOM) { /* keep the message's head and tail */
        char whole[sizeof err->message];
        memcpy(whole, err->message, mlen + 1);
        mlen = pdk_display_cut(whole, mlen, cap - 1 - PREFIX_ROOM, err->message, cap);
    }
    va_list ap;
    va_start(ap, fmt);
    size_t plen = pdk_format_bounded(prefix, cap - mlen, fmt, ap);
    va_end(ap);
    /* Build "<prefix><message>" in place: move the message right, then copy the prefix in. */
    memmove(err->message + plen, err->message, mlen + 1);
    memcpy(err->message, prefix, plen);
}

void pdk_error_suffix(pdckpt_error *err, const char *fmt, ...) {
    if (!err || err->status == PDCKPT_OK) return;
    char    suffix[PREFIX_ROOM + 1];
    size_t  cap = sizeof err->message, mlen = strlen(err->message);
    va_list ap;
    va_start(ap, fmt);
    size_t slen = pdk_format_bounded(suffix, sizeof suffix, fmt, ap);
    va_end(ap);
    if (mlen + slen > cap - 1) { /* keep the message's head and tail */
        char whole[sizeof err->message];
        memcpy(whole, err->message, mlen + 1);
        mlen = pdk_display_cut(whole, mlen, cap - 1 - slen, err->message, cap);
    }
    memcpy(err->message + mlen, suffix, slen + 1);
}

/* snprintf's count, clamped to what was written. */
static size_t wrote(int n, size_t room) {
    return n < 0 ? 0 : (size_t)n >= room ? room - 1 : (size_t)n;
}

const char *pdckpt_error_format(const pdckpt_error *err, char *buf, size_t size) {
    if (!buf || size == 0) return buf;
    buf[0] = '\0';
    if (!err) return buf;
    const char *msg = err->message[0] ? err->message : pdckpt_status_name(err->status);
    char        off[32] = "";
    if (err->offset >= 0) snprintf(off, sizeof off, "offset %lld: ", (long long)err->offset);
    size_t used = 0,
           after = strlen(off) + 2 +
                   pdckpt_display_text(msg, strlen(msg), PDCKPT_DISPLAY_KEEP_BACKSLASH, NULL, 0);
    if (err->source[0]) { /* the source stays as given (a path to open); shown display-safe and,
                           * if need be, cut in its middle so that the offset and message fit */
        size_t budget = size - 1 > after ? size - 1 - after : 0;
        used = pdk_display_cut(err->source, strlen(err->source),
                               budget > size / 4 ? budget : size / 4, buf, size);
        used += wrote(snprintf(buf + used, size - used, ": "), size - used);
    }
    used += wrote(snprintf(buf + used, size - used, "%s", off), size - used);
    if (used + 1 < size) safe_text(buf + used, size - used, msg); /* again: it is idempotent */
    return buf;
}
