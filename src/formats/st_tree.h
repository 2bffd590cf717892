/* SPDX-License-Identifier: Apache-2.0 */
/*
 * st_tree.h — a whole value tree through safetensors (st_tree.c): the tensors as entries, the
 * structure, Paddle names and non-tensor leaves as __metadata__["pdckpt.tree"].
 */
#ifndef PDK_ST_TREE_H
#define PDK_ST_TREE_H

#include "json_lite.h"

#define PDK_ST_METADATA_KEY "__metadata__"
#define PDK_ST_TREE_KEY     "pdckpt.tree"

/* False for a dict of string keys -> tensors without names of their own (besides a top-level
 * "__metadata__"): what every safetensors reader already gives back without the key. */
bool pdk_st_tree_needed(const pdckpt_value *root);
/* The JSON text for `root` (a top-level "__metadata__" entry left out) and the list of its
 * tensors, named by their '.'-joined paths; free with pdk_st_tree_json_free and pdk_flat_free. */
pdckpt_status pdk_st_tree_encode(const pdckpt_value *root, const char *target, pdk_flat_list *flat,
                                 char **json, size_t *json_len, pdckpt_error *err);
void          pdk_st_tree_json_free(char *json, size_t len);
/* Rebuilds the tree from the JSON text over the file's tensors (a dict name -> tensor; tensors
 * get their Paddle names).  Every tensor must be used. */
pdckpt_status pdk_st_tree_decode(const char *json, size_t len, const char *source,
                                 const pdckpt_value *tensors, const pdckpt_allocator *a,
                                 pdckpt_value **out, pdckpt_error *err);

#endif /* PDK_ST_TREE_H */
