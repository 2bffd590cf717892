/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dygraph_dir_write.c — writes Paddle 1.5's fluid.dygraph.save_persistables directory (spec
 * pickle-and-distributed-formats.md §3.1): one binary tensor file per variable at its name ('/'
 * in a name = subdirectories, as the 1.5 `save` op's os.path.join(dirname, normpath(name))), and
 * "optimizers/<name>" = pickle.dump(lr_decay_object, f, 2).  Built as a directory transaction.
 */
#include "pickle/pickle_write.h"

#include <string.h>
#include <unistd.h>

#define OPT_PREFIX "optimizers/"

static pdckpt_status write_entry(pdk_dirtx *tx, const char *rel, const pdckpt_value *v,
                                 const pdckpt_save_options *opts, pdckpt_error *err) {
    bool optimizer = strncmp(rel, OPT_PREFIX, strlen(OPT_PREFIX)) == 0;
    if (!optimizer && pdckpt_value_kind(v) != PDCKPT_KIND_TENSOR)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1,
                        "entry '%s': expected a tensor (or an " OPT_PREFIX "<name> entry), "
                        "found a %s",
                        rel, pdckpt_kind_name(pdckpt_value_kind(v)));
    pdk_sink *sink = NULL;
    PDK_TRY(pdk_dirtx_open_file(tx, rel, &sink, err));
    pdckpt_status st;
    if (optimizer) {
        pdckpt_save_options o = *opts;
        o.protocol = 2; /* 1.5 wrote pickle.dump(obj, f, 2) */
        st = pdk_pickle_save_path(v, sink, &o, PDK_PICKLE_GENERIC, err);
    } else {
        st = pdk_tensor_stream_write(sink, v, err);
    }
    if (st != PDCKPT_OK) {
        pdk_sink_abort(sink);
        pdk_error_prefix(err, "entry '%s': ", rel);
        return st;
    }
    return pdk_sink_commit(sink, err);
}

/* Tensor streams, and optimizers/<name> pickles (protocol 2: PROTO 2 ... STOP). */
static int dygraph_dir_owns(const char *rel, int fd, uint64_t size) {
    if (strncmp(rel, OPT_PREFIX, strlen(OPT_PREFIX)) != 0 || strchr(rel + strlen(OPT_PREFIX), '/'))
        return pdk_tensor_stream_file_ok(fd, size);
    uint8_t first[2], last;
    if (size < 3) return 0;
    if (pread(fd, first, 2, 0) != 2 || pread(fd, &last, 1, (off_t)size - 1) != 1) return -1;
    return first[0] == 0x80 && first[1] >= 2 && last == '.';
}

const pdk_dir_kind pdk_dygraph_dir_kind = {"dygraph-dir", dygraph_dir_owns};

/* Splits the root: "optimizers/<name>" entries into *opt, the rest (a paddle.save state dict or
 * {path: tensor}) into *vars; both hold references to the root's values. */
static pdckpt_status split_root(const pdckpt_value *root, const char *path, pdckpt_value *vars,
                                pdckpt_value *opt, pdckpt_error *err) {
    for (size_t i = 0; i < pdckpt_value_len(root); i++) {
        const pdckpt_value *key = pdckpt_dict_key_at(root, i);
        size_t              len = 0;
        const char         *rel = pdckpt_value_get_string(key, &len);
        if (!rel || pdckpt_value_kind(key) != PDCKPT_KIND_STRING)
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1,
                            "entry %zu: expected a relative path as the key", i);
        if (memchr(rel, '\0', len)) /* a C string would end there: another key, or another's */
            return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1,
                            "entry %zu: expected a key without a NUL byte, found '%s' followed "
                            "by one",
                            i, rel);
        bool          o = strncmp(rel, OPT_PREFIX, strlen(OPT_PREFIX)) == 0;
        pdckpt_value *v = pdckpt_value_retain((pdckpt_value *)pdckpt_value_at(root, i));
        PDK_TRY(pdckpt_dict_set(o ? opt : vars, rel, v, err));
    }
    return PDCKPT_OK;
}

/* The variables as files: each tensor under its Paddle name (what 1.5's save_persistables named
 * the file), else its key; the name table is dropped (the file names carry it); what is not a
 * tensor is refused by name, or dropped and reported with skip_non_tensors. */
static pdckpt_status write_vars(pdk_dirtx *tx, const pdckpt_value *vars,
                                const pdckpt_save_options *opts, pdckpt_error *err) {
    pdk_flat_list fl;
    PDK_TRY(pdk_flat_collect(vars, opts, NULL, &fl, err));
    pdckpt_status st = PDCKPT_OK;
    for (size_t i = 0; i < fl.len && st == PDCKPT_OK; i++) {
        pdckpt_tensor_view t;
        if (pdckpt_tensor_get_memory(fl.entries[i].tensor, &t, NULL) && t.name && *t.name) {
            char *copy = pdk_strndup(fl.alloc, t.name, strlen(t.name));
            if (!copy) st = pdk_fail_nomem(err, "tensor name");
            if (copy) pdk_strfree(fl.alloc, fl.entries[i].name);
            if (copy) fl.entries[i].name = copy;
        }
    }
    if (st == PDCKPT_OK) st = pdk_flat_check_unique(&fl, err);
    for (size_t i = 0; i < fl.len && st == PDCKPT_OK; i++) {
        st = write_entry(tx, fl.entries[i].name, fl.entries[i].tensor, opts, err);
        if (st == PDCKPT_OK && opts->progress && opts->progress(opts->progress_ctx, i + 1, fl.len))
            st = pdk_fail(err, PDCKPT_ERR_ARGUMENT, NULL, -1, "cancelled");
    }
    pdk_flat_free(&fl);
    return st;
}

static pdckpt_status write_all(pdk_dirtx *tx, const pdckpt_value *root, const char *path,
                               const pdckpt_save_options *opts, pdckpt_error *err) {
    pdckpt_value *vars = pdckpt_value_new_container(opts->allocator, PDCKPT_KIND_DICT);
    pdckpt_value *opt = pdckpt_value_new_container(opts->allocator, PDCKPT_KIND_DICT);
    pdckpt_status st = vars && opt ? split_root(root, path, vars, opt, err)
                                   : pdk_fail_nomem(err, "dygraph-dir entries");
    if (st == PDCKPT_OK && pdckpt_value_len(vars) > 0) st = write_vars(tx, vars, opts, err);
    for (size_t i = 0; st == PDCKPT_OK && i < pdckpt_value_len(opt); i++)
        st = write_entry(tx, pdckpt_value_get_string(pdckpt_dict_key_at(opt, i), NULL),
                         pdckpt_value_at(opt, i), opts, err);
    pdckpt_value_free(vars);
    pdckpt_value_free(opt);
    return st;
}

pdckpt_status pdk_dygraph_dir_save(const pdckpt_value *root, const char *path,
                                   const pdckpt_save_options *opts, pdckpt_error *err) {
    if (pdckpt_value_kind(root) != PDCKPT_KIND_DICT)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, path, -1,
                        "expected a dict keyed by relative path, found a %s",
                        pdckpt_kind_name(pdckpt_value_kind(root)));
    pdk_dirtx *tx = NULL;
    PDK_TRY(pdk_dirtx_begin(path, opts->durable, &pdk_dygraph_dir_kind, opts->allocator, &tx, err));
    pdckpt_status st = write_all(tx, root, path, opts, err);
    if (st == PDCKPT_OK) return pdk_dirtx_commit(tx, err);
    pdk_dirtx_abort(tx);
    pdk_error_set_source(err, path);
    return st;
}
