/*
 * api_save.c — public save entry points.  Files go through the atomic sink (temp, fsync, rename,
 * fsync dir); directories through a directory transaction; memory and caller sinks take the same
 * format writers.  The format comes from the options or the target's name.
 */
#include "../formats/pdk_format.h"

#include <string.h>

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

pdckpt_format pdckpt_format_from_path(const char *path) {
    if (!path) return PDCKPT_FORMAT_AUTO;
    pdckpt_format f = pdk_format_named_by(path);
    if (f != PDCKPT_FORMAT_AUTO) return f;
    if (pdk_is_directory(path) || ends_with(path, "/")) return PDCKPT_FORMAT_VARS_DIR;
    return PDCKPT_FORMAT_AUTO;
}

static void save_defaults(const pdckpt_save_options *given, pdckpt_save_options *out) {
    static const pdckpt_save_options defaults = PDCKPT_SAVE_OPTIONS_INIT;
    *out = given ? *given : defaults;
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
    if (!f->save && !dir_ok)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, target, -1,
                        "format '%s' is a directory and cannot be written to memory or a sink",
                        f->name);
    *out = f;
    return PDCKPT_OK;
}

/* Runs the writer into a sink it commits on success and aborts on failure. */
static pdckpt_status save_into(const pdk_format *f, const pdckpt_value *root, pdk_sink *sink,
                               const pdckpt_save_options *opts, pdckpt_error *err) {
    if (opts->progress) pdk_sink_set_progress(sink, opts->progress, opts->progress_ctx, 0);
    pdckpt_status st = f->save(root, sink, opts, err);
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
    save_defaults(given, &opts);
    const pdk_format *f = NULL;
    PDK_TRY(resolve(root, path, &opts, true, &f, err));
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
        st = save_into(f, root, sink, &opts, err);
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
    save_defaults(given, &opts);
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
    save_defaults(given, &opts);
    const pdk_format *f = NULL;
    PDK_TRY(resolve(root, "<sink>", &opts, false, &f, err));
    pdk_sink *sink;
    PDK_TRY(pdk_sink_open_callback(ops, self, opts.allocator, &sink, err));
    return save_into(f, root, sink, &opts, err);
}
