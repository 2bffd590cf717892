/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pickle_write.h — what the pickle writer offers beyond the format descriptor: choosing the path
 * the way paddle.save does, forcing one (fluid.save_dygraph always takes the state-dict path), and
 * the Paddle 1.5 dygraph directory writer (dygraph_dir_write.c).
 */
#ifndef PDK_PICKLE_WRITE_H
#define PDK_PICKLE_WRITE_H

#include "../pdk_format.h"

typedef enum pdk_pickle_path {
    PDK_PICKLE_AUTO,          /* paddle.save's _is_state_dict, refined (pickle_write.c) */
    PDK_PICKLE_STATE_DICT,    /* _legacy_save: ndarrays + name table (+ big-array split) */
    PDK_PICKLE_GENERIC,       /* _pickle_save: the object as it is, tensors reduced to tuples */
    PDK_PICKLE_STATIC_PARAMS, /* static.save's .pdparams: GENERIC + the big-array split */
} pdk_pickle_path;

/* paddle.framework.io._is_state_dict on a tree: a dict whose every value is a tensor, or a dict
 * with no tensor anywhere among its values (searched through dicts, lists and tuples). */
bool          pdk_pickle_is_state_dict(const pdckpt_value *root);
pdckpt_status pdk_pickle_save_path(const pdckpt_value *root, pdk_sink *sink,
                                   const pdckpt_save_options *opts, pdk_pickle_path path,
                                   pdckpt_error *err);

/* Paddle 1.5 fluid.dygraph.save_persistables layout, from a DICT keyed by relative path: a
 * TENSOR becomes a tensor-stream file at that path ('/' makes subdirectories); a key
 * "optimizers/<name>" becomes a protocol-2 pickle of its value.  Replaces `path` atomically. */
pdckpt_status pdk_dygraph_dir_save(const pdckpt_value *root, const char *path,
                                   const pdckpt_save_options *opts, pdckpt_error *err);

#endif /* PDK_PICKLE_WRITE_H */
