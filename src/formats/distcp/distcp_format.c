/* SPDX-License-Identifier: Apache-2.0 */
/*
 * distcp_format.c — the sharded checkpoint directory (PDCKPT_FORMAT_DISTCP) as a registered
 * directory format: what pdckpt_load_file, verify, convert, ls and the Python module reach
 * through the registry.  Loaded by one process it is the whole state merged, every key whole in
 * the metadata's order (what `pdckpt dist merge` writes); the collectives that write and reshard
 * it are libpdckpt_mpi's (src/mpi).
 */
#include "../pdk_format.h"

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
