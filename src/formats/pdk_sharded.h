/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pdk_sharded.h — Hugging Face sharded checkpoints: shards ("model-00001-of-00003.safetensors",
 * PaddleNLP's "model_state-00001-of-00003.pdparams") plus an index "<prefix><ext>.index.json" =
 * {"metadata": {"total_size": n}, "weight_map": {tensor name: shard file}}.  The index is hostile
 * input like any file: shard names are checked before anything is opened (docs/formats.md
 * "Hugging Face sharded checkpoints").
 */
#ifndef PDK_SHARDED_H
#define PDK_SHARDED_H

#include "pdk_format.h"

/* What tells the two sharded formats apart. */
typedef struct pdk_shard_kind {
    pdckpt_format     id;
    const char       *ext;            /* ".safetensors" / ".pdparams": every shard ends so */
    const char       *default_prefix; /* "model" / "model_state" */
    const pdk_format *shard_format;   /* how one shard is read and written */
} pdk_shard_kind;

extern const pdk_format     pdk_format_safetensors_sharded;
extern const pdk_format     pdk_format_pickle_sharded;
extern const pdk_shard_kind pdk_shard_kind_safetensors;
extern const pdk_shard_kind pdk_shard_kind_pickle;

/* ---- shard_index.c: the index file ---- */

typedef struct pdk_index_entry {
    char    *name; /* tensor name (NUL-terminated) */
    size_t   name_len;
    char    *file; /* shard file, as the index spells it */
    size_t   file_len;
    uint32_t shard; /* position of `file` in pdk_index.shards */
    size_t   pos;   /* byte offset of the entry in the index, for errors */
} pdk_index_entry;

typedef struct pdk_index {
    pdk_index_entry  *entries; /* weight_map order */
    size_t            len, cap;
    pdk_index_entry **by_name; /* sorted by name, for lookups */
    const char      **shards;  /* distinct files in order of first appearance (borrowed) */
    size_t            n_shards;
} pdk_index;

/* The largest index read (as the safetensors header limit: far beyond real indexes). */
#define PDK_INDEX_MAX_BYTES 100000000u
/* Parses and checks an index: weight_map present, names unique, every shard file a relative path
 * without "." / ".." components or backslashes that ends with `ext`.  Errors carry the offset. */
pdckpt_status          pdk_index_parse(const pdk_input *in, const char *ext, pdk_index *out,
                                       pdckpt_error *err);
const pdk_index_entry *pdk_index_find(const pdk_index *index, const char *name, size_t len);
void                   pdk_index_free(pdk_index *index);

/* Writes huggingface_hub's index, byte for byte what json.dump(index, f, indent=2) writes:
 * {"metadata": {"total_size": total}, "weight_map": {names[i]: files[i]}}. */
pdckpt_status pdk_index_write(pdk_sink *sink, uint64_t total_size, const char *const *names,
                              const char *const *files, size_t n, pdckpt_error *err);

/* ---- sharded_load.c ---- */

/* The sharded format a file path names by its suffix (".safetensors.index.json",
 * ".pdparams.index.json"), or NULL. */
const pdk_format *pdk_sharded_for_index_name(const char *path);

/* ---- sharded_save.c ---- */

/* pdckpt_save_file for a sharded save (save_options.max_shard_size, or a sharded format). */
pdckpt_status pdk_sharded_save(const pdckpt_value *root, const char *path,
                               const pdk_shard_kind *kind, const pdckpt_save_options *opts,
                               pdckpt_error *err);

#endif /* PDK_SHARDED_H */
