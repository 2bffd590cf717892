/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pdk_program.h — the in-memory program model shared by the ProgramDesc reader (program_desc.c),
 * the PIR JSON reader (program_pir.c), the persistable selection rule (program_model.c), the
 * inference-model loader (inference.c) and the public accessors (api/api_program.c).  A program
 * is reduced to what checkpoints need: its variables (name, kind, dtype, dims, flags), feeds,
 * fetches, and the sorted list of variables a combined file or a static save holds.
 */
#ifndef PDK_PROGRAM_H
#define PDK_PROGRAM_H

#include "pdk_format.h"

/* Paddle VarType codes that name variable kinds (spec binary §1.4). */
enum {
    PDK_VT_LOD_TENSOR = 7,
    PDK_VT_SELECTED_ROWS = 8,
    PDK_VT_FEED_MINIBATCH = 9,
    PDK_VT_FETCH_LIST = 10,
    PDK_VT_READER = 15,
    PDK_VT_RAW = 17,
    PDK_VT_VOCAB = 27,
};

typedef struct pdk_prog_var {
    char        *name;
    int32_t      block;
    int32_t      type;      /* VarType code of the variable kind */
    int32_t      data_type; /* element VarType code, -1 when the kind has no TensorDesc */
    pdckpt_dtype dtype;     /* INVALID when data_type is not a loadable element type */
    int32_t      n_dims;
    int64_t     *dims; /* -1 = unknown */
    int32_t      lod_level;
    bool         persistable;
    bool         is_parameter;
    bool         stop_gradient;
    bool         trainable; /* PIR only: the parameter op's trainable flag */
    bool         saved;     /* chosen by the persistable rule */
} pdk_prog_var;

typedef struct pdk_prog_target {
    char   *name;
    int64_t col;   /* the op's `col` attribute; -1 when absent (then program order) */
    size_t  order; /* position in the program, to keep the sort stable */
} pdk_prog_target;

typedef struct pdk_target_list {
    pdk_prog_target *items;
    size_t           len, cap;
    const char     **names; /* items' names in column order, built by pdk_program_finish */
} pdk_target_list;

struct pdckpt_program {
    const pdckpt_allocator *alloc;
    pdckpt_format           format;  /* PROGRAM or PIR_JSON */
    int64_t                 version; /* ProgramDesc version / PIR base_code version; -1 absent */
    size_t                  n_blocks;
    size_t                  n_ops;
    pdk_prog_var           *vars;
    size_t                  n_vars, cap_vars;
    pdk_target_list         feeds;
    pdk_target_list         fetches;
    const char            **persistables;    /* point into vars[].name; sorted, unique */
    size_t                 *persistable_var; /* index into vars for each persistable */
    size_t                  n_persistables, cap_persistables;
};

/* ---- program_model.c ---- */
pdckpt_status pdk_program_new(const pdckpt_allocator *a, pdckpt_format format, pdckpt_program **out,
                              pdckpt_error *err);
void          pdk_program_free(pdckpt_program *p);
/* Appends a variable (copies name and dims); returns it through *out (may be NULL). */
pdckpt_status pdk_program_add_var(pdckpt_program *p, const char *name, size_t name_len,
                                  int32_t n_dims, const int64_t *dims, pdk_prog_var **out,
                                  pdckpt_error *err);
/* Appends a feed/fetch target name (copied) at column `col` (-1 = next). */
pdckpt_status pdk_program_add_target(pdckpt_program *p, bool fetch, const char *name,
                                     size_t name_len, int64_t col, pdckpt_error *err);
/* Applies Paddle's selection rule and fills persistables (call once, after all variables). */
pdckpt_status pdk_program_finish(pdckpt_program *p, pdckpt_error *err);
/* The variable a persistable name refers to (last declaration wins, as in Paddle); NULL if none. */
const pdk_prog_var *pdk_program_find(const pdckpt_program *p, const char *name);
/* Lower-case name of a variable kind code ("lod_tensor", "selected_rows", ...). */
const char *pdk_var_type_name(int32_t code);
/* Checks a loaded tensor against the program's declaration (dtype, rank, dims; -1 matches any):
 * MISMATCH "variable 'n': the program declares float32 [-1, 10], the file holds ..." at offset. */
pdckpt_status pdk_program_check_tensor(const pdk_prog_var *var, const pdckpt_value *tensor,
                                       const char *source, int64_t offset, pdckpt_error *err);
/* "float32 [784, 10]" for a declaration or a tensor. */
void pdk_program_decl_text(const pdk_prog_var *var, char *buf, size_t cap);
/* The value tree a `program` / `pir-json` load returns: name -> {block, type, dtype, shape,
 * lod_level, persistable, saved}. */
pdckpt_status pdk_program_to_value(const pdckpt_program *p, pdckpt_value **out, pdckpt_error *err);

/* ---- program_desc.c: ProgramDesc protobuf (spec binary §6.1-§6.3) ---- */
int           pdk_program_desc_sniff(const pdk_input *in);
pdckpt_status pdk_program_desc_parse(const pdk_input *in, const pdckpt_load_options *opts,
                                     pdckpt_program **out, pdckpt_error *err);
/* True when the bytes are Fluid 0.11's pickled __model__ (refused with a clear message). */
bool pdk_program_is_fluid011_pickle(const pdk_input *in);

/* ---- program_check.c: wire validation against the protobuf-c descriptors ---- */
struct ProtobufCMessageDescriptor;
pdckpt_status pdk_pb_validate(pdk_cursor *cur, const struct ProtobufCMessageDescriptor *desc);

/* ---- program_pir.c: Paddle 3 PIR JSON (spec binary §6.5) ---- */
int           pdk_program_pir_sniff(const pdk_input *in);
pdckpt_status pdk_program_pir_parse(const pdk_input *in, const pdckpt_load_options *opts,
                                    pdckpt_program **out, pdckpt_error *err);

/* Parses a program of either kind (by opts->format, else by sniffing). */
pdckpt_status pdk_program_parse(const pdk_input *in, const pdckpt_load_options *opts,
                                pdckpt_program **out, pdckpt_error *err);
pdckpt_status pdk_program_open(const char *path, const pdckpt_load_options *opts,
                               pdckpt_program **out, pdckpt_error *err);

/* ---- selected_rows.c: SelectedRows streams (spec binary §2.1) ---- */
pdckpt_status pdk_selected_rows_read(pdk_cursor *cur, const pdk_input *in,
                                     const pdckpt_load_options *opts, pdckpt_value **out);
pdckpt_status pdk_selected_rows_write(pdk_sink *sink, const pdckpt_value *sr, const char *name,
                                      pdckpt_error *err);
/* True when `in` starts with a whole SelectedRows stream; *end is where it ends. */
bool pdk_selected_rows_length(const pdk_input *in, size_t *end);

/* ---- resolve.c: paddle.static.save's prefix ---- */
/* True when PREFIX.pdparams and PREFIX.pdmodel or PREFIX.json exist. */
bool pdk_static_triple_at(const char *prefix);
/* Fills pdmodel/json (PDCKPT_PATH_MAX each) with PREFIX's two possible program paths; returns
 * which exist (1: the .pdmodel, 2: the PIR .json, 3: both), -1 when the prefix is too long. */
int pdk_static_programs(const char *prefix, char *pdmodel, char *json);

/* ---- params_info.c: `.pdiparams.info` (spec binary §3.5) ---- */
pdckpt_status pdk_params_info_parse(const pdk_input *in, const pdckpt_load_options *opts,
                                    pdckpt_value **out, pdckpt_error *err);

/* ---- inference.c: program-named checkpoints (spec binary §3, §4.2) ---- */
/* Whether the parameters file `path` (X.pdiparams, dir/__params__, ...) has its program beside
 * it, as Paddle would find it (X.pdmodel / X.json; __model__): then *out locates the model. */
bool pdk_inference_params_beside(const char *path, pdckpt_inference_paths *out);
/* `path` is an X.pdiparams with X.pdiparams.info beside it: `info` (PDCKPT_PATH_MAX) gets its
 * path. */
bool          pdk_params_info_beside(const char *path, char *info);
pdckpt_status pdk_inference_locate(const char *path, pdckpt_inference_paths *out,
                                   pdckpt_error *err);
/* UNSUPPORTED unless a checkpoint can hold variable `v` (dense tensors; SelectedRows only as its
 * own file, not in a combined file). */
pdckpt_status pdk_inference_check_kind(const pdk_prog_var *v, bool combined, const char *source,
                                       pdckpt_error *err);
pdckpt_status pdk_inference_load_combined(const pdk_input *in, const pdckpt_program *p,
                                          const pdckpt_load_options *opts, pdckpt_value **out,
                                          pdckpt_error *err);
pdckpt_status pdk_inference_load_vars(const char *dir, const pdckpt_program *p,
                                      const pdckpt_load_options *opts, pdckpt_value **out,
                                      pdckpt_error *err);
pdckpt_status pdk_inference_load_params(const pdckpt_inference_paths *paths,
                                        const pdckpt_program *p, const pdckpt_load_options *opts,
                                        pdckpt_value **out, pdckpt_error *err);
pdckpt_status pdk_inference_load(const char *path, const pdckpt_load_options *opts,
                                 pdckpt_value **out, pdckpt_error *err);

/* ---- static_save.c: save_persistables (spec binary §3, §4) ---- */
pdckpt_status pdk_static_write_combined(const pdckpt_program *p, const pdckpt_value *state,
                                        pdk_sink *sink, pdckpt_error *err);
pdckpt_status pdk_static_write_vars(const pdckpt_program *p, const pdckpt_value *state,
                                    const char *dirname, const pdckpt_save_options *opts,
                                    pdckpt_error *err);

extern const pdk_format pdk_format_program;
extern const pdk_format pdk_format_pir_json;
extern const pdk_format pdk_format_inference;

#endif /* PDK_PROGRAM_H */
