/* SPDX-License-Identifier: Apache-2.0 */
/*
 * registry.c — the closed table of formats, their names, and detection.  Detection asks each
 * format for its evidence and takes the strongest; a tie between different formats is reported
 * instead of guessed (docs/DESIGN.md "Formats").
 */
#include "pdk_program.h"
#include "pdk_sharded.h"

#include <stdlib.h>
#include <string.h>

static const pdk_format *const registered[] = {
    &pdk_format_tensor,         &pdk_format_combined,      &pdk_format_vars_dir,
    &pdk_format_safetensors,    &pdk_format_pickle,        &pdk_format_program,
    &pdk_format_pir_json,       &pdk_format_inference,     &pdk_format_tnum,
    &pdk_format_dygraph_dir,    &pdk_format_selected_rows, &pdk_format_safetensors_sharded,
    &pdk_format_pickle_sharded, &pdk_format_distcp,
};
#define N_REGISTERED (sizeof registered / sizeof registered[0])

/* Names live in the descriptors only; "auto" is the one name without a format behind it. */
const char *pdckpt_format_name(pdckpt_format format) {
    if (format == PDCKPT_FORMAT_AUTO) return "auto";
    const pdk_format *f = pdk_format_get(format);
    return f ? f->name : "unknown";
}

pdckpt_format pdckpt_format_from_name(const char *name, bool *known) {
    bool          found = name && strcmp(name, "auto") == 0;
    pdckpt_format id = PDCKPT_FORMAT_AUTO;
    for (size_t i = 0; name && !found && i < N_REGISTERED; i++)
        if (strcmp(registered[i]->name, name) == 0) {
            found = true;
            id = registered[i]->id;
        }
    if (known) *known = found;
    return id;
}

const pdk_format *pdk_format_get(pdckpt_format id) {
    for (size_t i = 0; i < N_REGISTERED; i++)
        if (registered[i]->id == id) return registered[i];
    return NULL;
}

pdckpt_status pdk_format_usable(pdckpt_format id, bool dir, const char *source,
                                const pdk_format **out, pdckpt_error *err) {
    const pdk_format *f = pdk_format_get(id);
    if (!f)
        return pdk_fail(err, PDCKPT_ERR_UNSUPPORTED, source, -1,
                        "format '%s' is not available in this build", pdckpt_format_name(id));
    if (dir ? !f->load_dir : !f->load)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, source, -1, "format '%s' is not a %s format",
                        f->name, dir ? "directory" : "file");
    *out = f;
    return PDCKPT_OK;
}

bool pdckpt_format_can_load(pdckpt_format format) {
    const pdk_format *f = pdk_format_get(format);
    return f && (f->load || f->load_dir);
}

bool pdckpt_format_can_save(pdckpt_format format) {
    const pdk_format *f = pdk_format_get(format);
    return f && (f->save || f->save_dir);
}

const char *const *pdckpt_format_suffixes(pdckpt_format format) {
    static const char *const none[] = {NULL};
    const pdk_format        *f = pdk_format_get(format);
    return f && f->suffixes ? f->suffixes : none;
}

pdckpt_format pdk_format_named_by(const char *path) {
    const pdk_format *best = NULL;
    size_t            best_len = 0;
    for (size_t i = 0; path && i < N_REGISTERED; i++)
        for (const char *const *s = registered[i]->suffixes; s && *s; s++)
            if (pdk_ends_with(path, *s) && strlen(*s) > best_len) {
                best = registered[i];
                best_len = strlen(*s);
            }
    return best ? best->id : PDCKPT_FORMAT_AUTO;
}

/* What a save writes to `path` when no format is given: the format its name implies, else the
 * per-variable directory for an existing directory or a name ending in "/". */
pdckpt_format pdckpt_format_from_path(const char *path) {
    if (!path) return PDCKPT_FORMAT_AUTO;
    pdckpt_format f = pdk_format_named_by(path);
    if (f != PDCKPT_FORMAT_AUTO) return f;
    if (pdk_is_directory(path) || pdk_ends_with(path, "/")) return PDCKPT_FORMAT_VARS_DIR;
    return PDCKPT_FORMAT_AUTO;
}

/* The sniffs' verdict: the highest score and a format that ties it (a tie is refused). */
typedef struct vote {
    const pdk_format *best, *tie;
    int               score;
} vote;

static void vote_for(vote *v, const pdk_format *f, int score) {
    if (score > v->score) {
        v->best = f;
        v->score = score;
        v->tie = NULL;
    } else if (score == v->score && score > 0) {
        v->tie = f;
    }
}

static pdckpt_status pick(const vote *v, const char *source, const pdk_format **out,
                          pdckpt_error *err, const char *what) {
    if (v->score <= 0)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, source, 0,
                        "expected a Paddle checkpoint %s, found none that pdckpt recognises", what);
    if (v->tie)
        return pdk_fail(err, PDCKPT_ERR_FORMAT, source, 0,
                        "ambiguous %s: both %s and %s match equally; name the format explicitly",
                        what, v->best->name, v->tie->name);
    *out = v->best;
    return PDCKPT_OK;
}

pdckpt_status pdk_format_detect_input(const pdk_input *in, const pdk_format **out,
                                      pdckpt_error *err) {
    vote v = {NULL, NULL, 0};
    for (size_t i = 0; i < N_REGISTERED; i++)
        if (registered[i]->sniff) vote_for(&v, registered[i], registered[i]->sniff(in));
    const pdk_format *named = pdk_format_get(pdk_format_named_by(in->name));
    /* an LFS pointer, an HTML page... (an empty file: the named format's own words) */
    if (v.score <= 0 && (in->len > 0 || !named || !named->load))
        PDK_TRY(pdk_foreign_content(in, err));
    if (v.score <= 0 && named && named->load) {
        *out = named;
        return PDCKPT_OK;
    }
    return pick(&v, in->name, out, err, "file");
}

pdckpt_status pdk_format_detect_dir(const char *path, const pdk_format **out, pdckpt_error *err) {
    vote v = {NULL, NULL, 0};
    for (size_t i = 0; i < N_REGISTERED; i++)
        if (registered[i]->sniff_dir) vote_for(&v, registered[i], registered[i]->sniff_dir(path));
    return pick(&v, path, out, err, "directory");
}

bool pdk_format_locate(const char *path, pdk_found *out) {
    pdk_found *trial = malloc(sizeof *trial);
    int        best = 0;
    if (!trial) return false; /* found nothing: the stat error stands */
    for (size_t i = 0; i < N_REGISTERED; i++) {
        if (!registered[i]->locate) continue;
        memset(trial, 0, sizeof *trial);
        pdk_error_reset(&trial->probe);
        int score = registered[i]->locate(path, trial);
        if (score > best) {
            best = score;
            pdckpt_error probe = out->probe;
            *out = *trial;
            out->format = registered[i];
            out->probe = probe;
        } else if (score <= 0 && trial->probe.status != PDCKPT_OK &&
                   out->probe.status == PDCKPT_OK) {
            out->probe = trial->probe;
        }
    }
    free(trial);
    return best > 0;
}
