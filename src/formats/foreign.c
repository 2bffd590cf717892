/* SPDX-License-Identifier: Apache-2.0 */
/*
 * foreign.c — files that are not checkpoints at all, recognised so that the error says what the
 * file is and what to do (docs/RELIABILITY.md, "Validation pass"): an empty file, a Git LFS
 * pointer checked out without `git lfs pull`, an HTML or XML error page a download saved in
 * place of the file, a zip archive (PyTorch's torch.save), a gzip or tar archive.  Asked only
 * when no format recognises the bytes, so a real checkpoint never reaches here.
 */
#include "pdk_format.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static bool starts(const pdk_input *in, size_t at, const char *prefix, bool nocase) {
    size_t n = strlen(prefix);
    if (in->len < at || in->len - at < n) return false;
    const char *s = (const char *)in->data + at;
    return nocase ? strncasecmp(s, prefix, n) == 0 : memcmp(s, prefix, n) == 0;
}

/* Where text begins: after a UTF-8 byte order mark and white space. */
static size_t text_start(const pdk_input *in) {
    size_t i = starts(in, 0, "\xef\xbb\xbf", false) ? 3 : 0;
    while (i < in->len && i < 4096 && isspace(in->data[i])) i++;
    return i;
}

static bool is_markup(const pdk_input *in) {
    static const char *const tags[] = {"<!doctype html", "<html", "<head", "<body", "<?xml"};
    size_t                   at = text_start(in);
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++)
        if (starts(in, at, tags[i], true)) return true;
    return false;
}

/* The page's <title> (up to 80 bytes), else "". */
static void page_title(const pdk_input *in, char *out, size_t cap) {
    out[0] = '\0';
    size_t      len = in->len < 65536 ? in->len : 65536;
    const char *s = (const char *)in->data, *end = s + len;
    for (const char *p = s; p + 7 <= end; p++)
        if (strncasecmp(p, "<title>", 7) == 0) {
            const char *t = p + 7, *q = t;
            while (q < end && *q != '<' && (size_t)(q - t) < cap - 1 && q - t < 80) q++;
            memcpy(out, t, (size_t)(q - t));
            out[q - t] = '\0';
            return;
        }
}

static bool holds_name(const pdk_input *in, const char *name) {
    size_t n = strlen(name), len = in->len < (1u << 20) ? in->len : (1u << 20);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(in->data + i, name, n) == 0) return true;
    return false;
}

static pdckpt_status not_checkpoint(const pdk_input *in, const char *what, pdckpt_error *err) {
    return pdk_fail(err, PDCKPT_ERR_FORMAT, in->name, 0, "expected a checkpoint, found %s", what);
}

static pdckpt_status archive(const pdk_input *in, pdckpt_error *err) {
    if (starts(in, 0, "PK\x03\x04", false))
        return not_checkpoint(
            in,
            holds_name(in, "data.pkl")
                ? "a PyTorch checkpoint (a zip archive holding data.pkl, as torch.save writes): "
                  "pdckpt reads Paddle's formats and safetensors; save it from PyTorch as "
                  "safetensors (safetensors.torch.save_file) and load that"
                : "a zip archive (PyTorch's torch.save and NumPy's .npz write these): extract "
                  "it, or save it as safetensors, and load that",
            err);
    if (starts(in, 0, "\x1f\x8b", false))
        return not_checkpoint(
            in, "a gzip-compressed file: decompress it first (tar -xzf or gunzip)", err);
    if (starts(in, 257, "ustar", false))
        return not_checkpoint(in, "a tar archive: extract it first (tar -xf)", err);
    return PDCKPT_OK;
}

pdckpt_status pdk_foreign_content(const pdk_input *in, pdckpt_error *err) {
    if (in->len == 0)
        return not_checkpoint(in, "an empty file (0 bytes): an interrupted download, copy or save?",
                              err);
    if (starts(in, 0, "version https://git-lfs.github.com/spec/", false))
        return pdk_fail(err, PDCKPT_ERR_FORMAT, in->name, 0,
                        "expected a checkpoint, found a Git LFS pointer (%zu bytes of text that "
                        "stand for the real file): fetch the file with `git lfs pull` in its "
                        "repository (git-lfs must be installed)",
                        in->len);
    if (is_markup(in)) {
        char title[96];
        page_title(in, title, sizeof title);
        return pdk_fail(err, PDCKPT_ERR_FORMAT, in->name, 0,
                        "expected a checkpoint, found an HTML/XML page%s%s%s (%zu bytes): a web "
                        "server's error or login page saved in place of the file; check the URL "
                        "and access rights and download it again",
                        title[0] ? " titled '" : "", title, title[0] ? "'" : "", in->len);
    }
    return archive(in, err);
}
