/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dist_data_file.h — loading one data file a sharded checkpoint's metadata names (in
 * distcp_format.c, beside the registry it needs: pdk_distcp.h and pdk_format.h cannot be
 * included together).
 */
#ifndef PDK_DIST_DATA_FILE_H
#define PDK_DIST_DATA_FILE_H

#include "../../core/pdk_core.h"

/* Loads the data file `name` beneath `dir` in the format given->format: opened with
 * PDK_OPEN_BENEATH (no link, no "..") and parsed from that one descriptor, so no link can be
 * swapped in between the check and the parse; errors name dir/name. */
pdckpt_status pdk_dist_load_data(const char *dir, const char *name,
                                 const pdckpt_load_options *given, pdckpt_value **out,
                                 pdckpt_error *err);

#endif /* PDK_DIST_DATA_FILE_H */
