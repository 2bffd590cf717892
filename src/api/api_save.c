/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_save.c — public save entry points.  Files go through the atomic sink (temp, fsync, rename,
 * fsync dir); directories through a directory transaction; memory and caller sinks take the same
 * format writers.  The format comes from the options or the target's name.
 */
#include "../formats/pdk_sharded.h"
#include "../formats/pickle/pickle.h"

#include <string.h>

pdckpt_format pdckpt_format_from_path(const char *path) {
    if (!path) return PDCKPT_FORMAT_AUTO;
    pdckpt_format f = pdk_format_named_by(path);
    if (f != PDCKPT_FORMAT_AUTO) return f;
    if (pdk_is_directory(path) || pdk_ends_with(path, "/")) return PDCKPT_FORMAT_VARS_DIR;
    return PDCKPT_FORMAT_AUTO;
}

static pdckpt_status resolve(const pdckpt_value *root, const char *target,
                             const pdckpt_save_options *opts, bool dir_ok, const pdk_format **out,
                             pdckpt_error *err) {
    if (!root)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, target, -1, "nothing to save (root is NULL)");
    if (opts->protocol < 2 || opts->protocol > 4)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, target, -1,
                        "expected pickle protocol 2, 3 or 4, found %d", opts->protocol);
    pdckpt_format id = opts->format;
    if (id == PDCKPT_FORMAT_AUTO && dir_ok) id = pdckpt_format_from_path(target);
    if (id == PDCKPT_FORMAT_AUTO)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, target, -1,
                        "cannot tell the format from the name; pass one explicitly");
    const pdk_format *f = pdk_format_get(id);
    if (!f || (!f->save && !f->save_dir))
        return pdk_fail(err, PDCKPT_ERR_UNSUPPORTED, target, -1,
                        "format '%s' cannot be saved by this build", pdckpt_format_name(id));
    if (opts->max_shard_size && !dir_ok)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, target, -1,
                        "max_shard_size writes several files; it needs a path, not %s", target);
    if (!f->save && !dir_ok)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, target, -1,
                        "format '%s' is a directory and cannot be written to memory or a sink",
                        f->name);
    *out = f;
    return PDCKPT_OK;
}

/* Runs the writer into a sink it commits on success and aborts on failure; a pickle writer
 * records where its tensors went in `offs` (may be NULL) for the lazy-open index. */
static pdckpt_status save_into(const pdk_format *f, const pdckpt_value *root, pdk_sink *sink,
                               const pdckpt_save_options *opts, pdk_pickle_offsets *offs,
                               pdckpt_error *err) {
    if (opts->progress) pdk_sink_set_progress(sink, opts->progress, opts->progress_ctx, 0);
    pdckpt_status st = offs ? pdk_pickle_save_recorded(root, sink, opts, offs, err)
                            : f->save(root, sink, opts, err);
    if (st != PDCKPT_OK) {
        pdk_sink_abort(sink);
        return st;
    }
    return pdk_sink_commit(sink, err);
}

pdckpt_status pdckpt_save_file(const pdckpt_value *root, const char *path,
                               const pdckpt_save_options *given, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!path) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "path is NULL");
    pdckpt_save_options opts;
    PDK_TRY(pdk_save_options_take(given, &opts, err));
    const pdk_format *f = NULL;
    PDK_TRY(resolve(root, path, &opts, true, &f, err));
    if (opts.max_shard_size &&
        (f->id == PDCKPT_FORMAT_SAFETENSORS || f->id == PDCKPT_FORMAT_PICKLE))
        f = pdk_format_get(f->id == PDCKPT_FORMAT_PICKLE ? PDCKPT_FORMAT_PICKLE_SHARDED
                                                         : PDCKPT_FORMAT_SAFETENSORS_SHARDED);
    if (f->save_dir && opts.checksum)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1,
                        "checksum sidecars are written for single files; '%s' is a directory "
                        "format",
                        f->name);
    PDK_TRY(pdk_make_parent_dirs(path, err)); /* as paddle.save and Paddle's save ops do */
    pdckpt_status st;
    if (f->save_dir) {
        st = f->save_dir(root, path, &opts, err);
    } else {
        pdk_sink *sink;
        PDK_TRY(pdk_sink_open_atomic_file(path, opts.durable, opts.allocator, &sink, err));
        if (opts.checksum && (st = pdk_sink_enable_checksum(sink, err)) != PDCKPT_OK) {
            pdk_sink_abort(sink);
            return st;
        }
        /* the lazy-open index only beside files named as pickles (.pdparams, .pdopt, .pkl):
         * not beside the data files of sharded checkpoints, whose own index lists them */
        bool pickle =
            f->id == PDCKPT_FORMAT_PICKLE && pdckpt_format_from_path(path) == PDCKPT_FORMAT_PICKLE;
        pdk_pickle_offsets offs = {.alloc = opts.allocator};
        st = save_into(f, root, sink, &opts, pickle ? &offs : NULL, err);
        /* the lazy-open index beside a pickle (docs/pickles.md); without it opens only parse */
        if (st == PDCKPT_OK && pickle)
            pdk_pickle_index_write(root, path, opts.durable, &offs, opts.allocator);
        pdk_pickle_offsets_free(&offs);
    }
    pdk_error_set_source(err, path);
    return st;
}

pdckpt_status pdckpt_save_memory(const pdckpt_value *root, const pdckpt_save_options *given,
                                 void **out_data, size_t *out_len, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!out_data || !out_len)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, "<memory>", -1, "out is NULL");
    *out_data = NULL;
    *out_len = 0;
    pdckpt_save_options opts;
    PDK_TRY(pdk_save_options_take(given, &opts, err));
    const pdk_format *f = NULL;
    PDK_TRY(resolve(root, "<memory>", &opts, false, &f, err));
    pdk_sink *sink;
    PDK_TRY(pdk_sink_open_memory(opts.allocator, &sink, err));
    if (opts.progress) pdk_sink_set_progress(sink, opts.progress, opts.progress_ctx, 0);
    pdckpt_status st = f->save(root, sink, &opts, err);
    if (st != PDCKPT_OK) {
        pdk_sink_abort(sink);
        return st;
    }
    return pdk_sink_memory_take(sink, out_data, out_len, err);
}

pdckpt_status pdckpt_save_sink(const pdckpt_value *root, const pdckpt_sink_ops *ops, void *self,
                               const pdckpt_save_options *given, pdckpt_error *err) {
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    pdckpt_save_options opts;
    PDK_TRY(pdk_save_options_take(given, &opts, err));
    const pdk_format *f = NULL;
    PDK_TRY(resolve(root, "<sink>", &opts, false, &f, err));
    pdk_sink *sink;
    PDK_TRY(pdk_sink_open_callback(ops, self, opts.allocator, &sink, err));
    return save_into(f, root, sink, &opts, NULL, err);
}

/* Digits with an optional fraction, as a double the way Python's float() rounds it (an exact
 * integer mantissa divided by an exact power of ten); *exact keeps integers exact. */
static const char *parse_number(const char *s, double *value, uint64_t *exact, bool *integral) {
    uint64_t mant = 0;
    int      digits = 0, frac = 0;
    bool     dot = false;
    for (; (*s >= '0' && *s <= '9') || (*s == '.' && !dot); s++) {
        if (*s == '.') {
            dot = true;
            continue;
        }
        if (digits >= 18) return NULL;
        mant = mant * 10 + (uint64_t)(*s - '0');
        digits++;
        frac += dot;
    }
    if (digits == 0) return NULL;
    double scale = 1;
    for (int i = 0; i < frac; i++) scale *= 10;
    *value = (double)mant / scale;
    *exact = mant;
    *integral = frac == 0;
    return s;
}

pdckpt_status pdckpt_parse_size(const char *text, uint64_t *out, pdckpt_error *err) {
    static const struct {
        const char *unit;
        uint64_t    mult;
    } units[] = {{"", 1},
                 {"B", 1},
                 {"KB", 1000ull},
                 {"MB", 1000000ull},
                 {"GB", 1000000000ull},
                 {"TB", 1000000000000ull},
                 {"KIB", 1ull << 10},
                 {"MIB", 1ull << 20},
                 {"GIB", 1ull << 30},
                 {"TIB", 1ull << 40}};
    pdckpt_error local = PDCKPT_ERROR_INIT;
    if (!err) err = &local;
    pdk_error_reset(err);
    if (!text || !out) return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "text/out is NULL");
    const char *s = text + strspn(text, " \t");
    double      value;
    uint64_t    exact;
    bool        integral;
    char        unit[8] = "";
    size_t      n = 0;
    if ((s = parse_number(s, &value, &exact, &integral)) != NULL) {
        s += strspn(s, " \t");
        while (*s && *s != ' ' && *s != '\t' && n < sizeof unit - 1)
            unit[n++] = (char)(*s >= 'a' && *s <= 'z' ? *s - 32 : *s), s++;
        unit[n] = '\0';
        s += strspn(s, " \t");
    }
    for (size_t i = 0; s && *s == '\0' && i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(unit, units[i].unit) != 0) continue;
        double bytes = value * (double)units[i].mult; /* huggingface_hub: int(float * unit) */
        if (integral && exact <= UINT64_MAX / units[i].mult)
            bytes = (double)(exact * units[i].mult);
        if (bytes >= 1 && bytes < 9223372036854775808.0) {
            *out = integral && exact <= UINT64_MAX / units[i].mult ? exact * units[i].mult
                                                                   : (uint64_t)bytes;
            return PDCKPT_OK;
        }
        break;
    }
    return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                    "expected a size such as 5GB, 500MB, 2GiB or 1000000 (bytes, at least 1), "
                    "found '%s'",
                    text);
}
