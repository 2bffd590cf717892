/* SPDX-License-Identifier: Apache-2.0 */
/*
 * distcp_format.c — the sharded checkpoint directory (PDCKPT_FORMAT_DISTCP) as a registered
 * directory format: what pdckpt_load_file, verify, convert, ls and the Python module reach
 * through the registry.  Loaded by one process it is the whole state merged, every key whole in
 * the metadata's order (what `pdckpt dist merge` writes); the collectives that write and reshard
 * it are libpdckpt_mpi's (src/mpi).
 */
#include "../pdk_format.h"
#include "dist_data_file.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

static int distcp_sniff_dir(const char *path) {
    int64_t      newest = -1, largest = -1;
    pdckpt_error err = PDCKPT_ERROR_INIT;
    if (pdckpt_sharded_scan(path, &newest, &largest, &err) != PDCKPT_OK) return PDK_SNIFF_NO;
    /* Data files without metadata ("<n>_<id>.distcp" names): still ours, so the load says no save
     * completed rather than a per-variable directory guessing at them. */
    return newest >= 0 ? PDK_SNIFF_CERTAIN : largest >= 0 ? PDK_SNIFF_LIKELY : PDK_SNIFF_NO;
}

static pdckpt_status distcp_load_dir(const char *path, const pdckpt_load_options *opts,
                                     pdckpt_value **out, pdckpt_error *err) {
    return pdckpt_sharded_load(path, -1, NULL, 0, opts, out, err);
}

const pdk_format pdk_format_distcp = {
    .id = PDCKPT_FORMAT_DISTCP,
    .name = "distcp",
    .sniff_dir = distcp_sniff_dir,
    .load_dir = distcp_load_dir,
};

/* Opened beneath the directory and loaded from that one descriptor: the file the no-link check
 * passes is the file parsed (opening it again by path would let a link be swapped in between). */
pdckpt_status pdk_dist_load_data(const char *dir, const char *name,
                                 const pdckpt_load_options *given, pdckpt_value **out,
                                 pdckpt_error *err) {
    char                path[4200];
    pdckpt_load_options lo;
    *out = NULL;
    PDK_TRY(pdk_load_options_take(given, &lo, err));
    const pdk_format *f = pdk_format_get(lo.format);
    if (lo.format != PDCKPT_FORMAT_AUTO && (!f || !f->load))
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, name, -1, "no file format for a data file");
    PDK_TRY(pdk_path_join(dir, name, path, sizeof path, err));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return pdk_fail_sys(err, errno, dir, "open");
    pdk_input     in;
    pdckpt_status st = pdk_input_open_load_at(dfd, name, path, &lo, &in, err);
    close(dfd);
    if (st != PDCKPT_OK) return st;
    if (lo.format == PDCKPT_FORMAT_AUTO && (st = pdk_format_detect_input(&in, &f, err))) {
        pdk_input_close(&in);
        return st;
    }
    /* aligned data from a read: moved inside the one buffer, as pdckpt_load_file does */
    in.relayout = lo.require_aligned && in.owner && !pdckpt_buffer_is_mapped(in.owner);
    st = f->load(&in, &lo, out, err);
    pdk_error_set_source(err, path);
    if (st == PDCKPT_OK && in.relayout) pdk_tree_relayout(*out, in.owner, 1);
    pdk_input_close(&in);
    return st;
}
