/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_format.c — the `pickle` format descriptor: .pdparams / .pdopt files as Paddle's
 * paddle.save / fluid.save_dygraph write them.  The work is in pickle_read.c and pickle_write.c.
 */
#include "pickle.h"

const pdk_format pdk_format_pickle = {
    .id = PDCKPT_FORMAT_PICKLE,
    .name = "pickle",
    .suffixes = (const char *const[]){PDK_NAME_PDPARAMS, PDK_NAME_PDOPT, ".pkl", NULL},
    .locate = pdk_locate_static, /* paddle.static.save's prefix (resolve.c) */
    .sniff = pdk_pickle_sniff,
    .load = pdk_pickle_load,
    .save = pdk_pickle_save,
};
