/* SPDX-License-Identifier: Apache-2.0 */
/*
 * format_io.c — a descriptor run over a file, bytes or a sink: the input or sink around a
 * format's load or save, the format taken from the options or the name.  The public load and save
 * calls (src/api) check their arguments and dispatch here; formats that nest other formats (the
 * sharded checkpoints' shards and data files, distcp's metadata pickle) call here too, so no
 * format calls the public API and dependencies run one way (docs/DESIGN.md "Layers").
 */
#include "pdk_format.h"
#include "pickle/pickle.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

pdckpt_status pdk_load_input(const pdk_input *in, const pdckpt_load_options *opts,
                             pdckpt_value **out, pdckpt_format *out_format, pdckpt_error *err) {
    const pdk_format *f = NULL;
    if (opts->format == PDCKPT_FORMAT_AUTO)
        PDK_TRY(pdk_format_detect_input(in, &f, err));
    else
        PDK_TRY(pdk_format_usable(opts->format, false, in->name, &f, err));
    /* A name list only makes sense for a combined file; one stream is a valid combined file. */
    if (opts->format == PDCKPT_FORMAT_AUTO && opts->names && f->id == PDCKPT_FORMAT_TENSOR)
        f = &pdk_format_combined;
    pdckpt_status st = f->load(in, opts, out, err);
    pdk_error_set_source(err, in->name);
    if (st == PDCKPT_OK && out_format) *out_format = f->id;
    return st;
}

/* A zero-copy open of a pdckpt-written pickle: its index when it belongs to the file as it is now
 * (docs/pickles.md); verify and reads always parse. */
static bool load_indexed(const char *path, const struct stat *st, const pdckpt_load_options *opts,
                         pdckpt_value **out) {
    return opts->zero_copy && !opts->verify && !opts->names && !opts->progress &&
           (opts->format == PDCKPT_FORMAT_AUTO || opts->format == PDCKPT_FORMAT_PICKLE) &&
           S_ISREG(st->st_mode) && pdk_pickle_index_load(path, st, opts, out);
}

bool pdk_load_indexed(const char *path, const pdckpt_load_options *opts, pdckpt_value **out) {
    struct stat st;
    return stat(path, &st) == 0 && load_indexed(path, &st, opts, out);
}

/* Parses an opened input and closes it.  Aligned data from a read: the tensors are moved inside
 * the one buffer, not copied out. */
static pdckpt_status load_opened(pdk_input *in, const pdckpt_load_options *opts, pdckpt_value **out,
                                 pdckpt_format *out_format, pdckpt_error *err) {
    in->relayout = opts->require_aligned && in->owner && !pdckpt_buffer_is_mapped(in->owner);
    pdckpt_status status = pdk_load_input(in, opts, out, out_format, err);
    if (status == PDCKPT_OK && in->relayout) pdk_tree_relayout(*out, in->owner, 1);
    if (status != PDCKPT_OK) pdk_input_file_offset(in, err); /* filler is not the file's */
    pdk_input_close(in);
    return status;
}

/* Reads a file to load.  Aligned data from a read: a pickle's large payloads are read to aligned
 * places (the filler is pickle syntax, so a file detected as another format is read again as it
 * is), and what is left misaligned is moved inside the one buffer afterwards, not copied out. */
static pdckpt_status open_for_load(const char *path, const pdckpt_load_options *opts, pdk_input *in,
                                   pdckpt_error *err) {
    bool pickle = opts->format == PDCKPT_FORMAT_AUTO || opts->format == PDCKPT_FORMAT_PICKLE;
    PDK_TRY(pdk_input_open_placed(
        path, opts, opts->require_aligned && pickle ? &pdk_pickle_placer : NULL, in, err));
    if (!in->n_places || opts->format == PDCKPT_FORMAT_PICKLE) return PDCKPT_OK;
    const pdk_format *f = NULL;
    pdckpt_error      ignored = PDCKPT_ERROR_INIT;
    if (pdk_format_detect_input(in, &f, &ignored) == PDCKPT_OK && f->id == PDCKPT_FORMAT_PICKLE)
        return PDCKPT_OK;
    pdk_input_close(in);
    return pdk_input_open_load(path, opts, in, err);
}

pdckpt_status pdk_load_path(const char *path, const pdckpt_load_options *given, pdckpt_value **out,
                            pdckpt_format *out_format, pdckpt_error *err) {
    pdk_error_reset(err);
    *out = NULL;
    pdckpt_load_options opts;
    PDK_TRY(pdk_load_options_take(given, &opts, err));
    struct stat st;
    if (stat(path, &st) != 0) return pdk_fail_sys(err, errno, path, "stat");
    if (load_indexed(path, &st, &opts, out)) {
        if (out_format) *out_format = PDCKPT_FORMAT_PICKLE;
        return PDCKPT_OK;
    }
    pdk_input in;
    PDK_TRY(open_for_load(path, &opts, &in, err));
    return load_opened(&in, &opts, out, out_format, err);
}

pdckpt_status pdk_load_beneath(const char *dir, const char *name, const pdckpt_load_options *given,
                               pdckpt_value **out, pdckpt_error *err) {
    pdk_error_reset(err);
    *out = NULL;
    char                path[4200];
    pdckpt_load_options opts;
    PDK_TRY(pdk_load_options_take(given, &opts, err));
    PDK_TRY(pdk_path_join(dir, name, path, sizeof path, err));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return pdk_fail_sys(err, errno, dir, "open");
    pdk_input     in;
    pdckpt_status st = pdk_input_open_load_at(dfd, name, path, &opts, &in, err);
    close(dfd);
    if (st != PDCKPT_OK) return st;
    return load_opened(&in, &opts, out, NULL, err);
}

pdckpt_status pdk_load_bytes(const void *data, size_t len, const pdckpt_load_options *given,
                             pdckpt_value **out, pdckpt_format *out_format, pdckpt_error *err) {
    pdk_error_reset(err);
    *out = NULL;
    pdckpt_load_options opts;
    PDK_TRY(pdk_load_options_take(given, &opts, err));
    pdk_input in;
    pdk_input_from_memory(data, len, opts.zero_copy, &in);
    return pdk_load_input(&in, &opts, out, out_format, err);
}

/* The writer for `target`: the options' format, else (for a path) the one its name implies. */
static pdckpt_status save_format(const pdckpt_value *root, const char *target,
                                 const pdckpt_save_options *opts, bool dir_ok,
                                 const pdk_format **out, pdckpt_error *err) {
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

/* One file through the atomic sink (temp, fsync, rename, fsync dir), with its sidecars. */
static pdckpt_status save_one_file(const pdk_format *f, const pdckpt_value *root, const char *path,
                                   const pdckpt_save_options *opts, bool inner, pdckpt_error *err) {
    pdk_sink *sink;
    PDK_TRY((inner ? pdk_sink_open_atomic_inner
                   : pdk_sink_open_atomic_file)(path, opts->durable, opts->allocator, &sink, err));
    pdckpt_status st;
    if (opts->checksum && (st = pdk_sink_enable_checksum(sink, err)) != PDCKPT_OK) {
        pdk_sink_abort(sink);
        return st;
    }
    /* the lazy-open index (docs/pickles.md; without it opens only parse) only beside files named
     * as pickles (.pdparams, .pdopt, .pkl): not beside the data files of sharded checkpoints,
     * whose own index lists them */
    bool pickle =
        f->id == PDCKPT_FORMAT_PICKLE && pdckpt_format_from_path(path) == PDCKPT_FORMAT_PICKLE;
    pdk_pickle_offsets offs = {.alloc = opts->allocator};
    st = save_into(f, root, sink, opts, pickle ? &offs : NULL, err);
    if (st == PDCKPT_OK && pickle) pdk_pickle_index_write(root, path, &offs, opts->allocator);
    pdk_pickle_offsets_free(&offs);
    return st;
}

static pdckpt_status save_path(const pdckpt_value *root, const char *path,
                               const pdckpt_save_options *given, bool inner, pdckpt_error *err) {
    pdk_error_reset(err);
    pdckpt_save_options opts;
    PDK_TRY(pdk_save_options_take(given, &opts, err));
    const pdk_format *f = NULL;
    PDK_TRY(save_format(root, path, &opts, true, &f, err));
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
    pdckpt_status st = f->save_dir ? f->save_dir(root, path, &opts, err)
                                   : save_one_file(f, root, path, &opts, inner, err);
    pdk_error_set_source(err, path);
    return st;
}

pdckpt_status pdk_save_path(const pdckpt_value *root, const char *path,
                            const pdckpt_save_options *given, pdckpt_error *err) {
    return save_path(root, path, given, false, err);
}

pdckpt_status pdk_save_path_inner(const pdckpt_value *root, const char *path,
                                  const pdckpt_save_options *given, pdckpt_error *err) {
    return save_path(root, path, given, true, err);
}

pdckpt_status pdk_save_bytes(const pdckpt_value *root, const pdckpt_save_options *given,
                             void **out_data, size_t *out_len, pdckpt_error *err) {
    pdk_error_reset(err);
    *out_data = NULL;
    *out_len = 0;
    pdckpt_save_options opts;
    PDK_TRY(pdk_save_options_take(given, &opts, err));
    const pdk_format *f = NULL;
    PDK_TRY(save_format(root, "<memory>", &opts, false, &f, err));
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

pdckpt_status pdk_save_callback(const pdckpt_value *root, const pdckpt_sink_ops *ops, void *self,
                                const pdckpt_save_options *given, pdckpt_error *err) {
    pdk_error_reset(err);
    pdckpt_save_options opts;
    PDK_TRY(pdk_save_options_take(given, &opts, err));
    const pdk_format *f = NULL;
    PDK_TRY(save_format(root, "<sink>", &opts, false, &f, err));
    pdk_sink *sink;
    PDK_TRY(pdk_sink_open_callback(ops, self, opts.allocator, &sink, err));
    return save_into(f, root, sink, &opts, NULL, err);
}
