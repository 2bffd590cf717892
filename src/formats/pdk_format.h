/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pdk_format.h — the descriptor every on-disk format fills in, and the helpers formats share.
 * The set of formats is closed and listed in registry.c; auto-detection asks every format's
 * sniff for its evidence and refuses ties (docs/DESIGN.md "Formats").
 */
#ifndef PDK_FORMAT_H
#define PDK_FORMAT_H

#include "../core/cursor.h"
#include "../io/pdk_io.h"

/* The file names Paddle gives a checkpoint's parts, spelled once: the descriptors list them as
 * their suffixes (program_format.c, combined.c, pickle/pickle_format.c), and the locators
 * (resolve.c, inference.c), vars_dir.c's list of files that are no variables and the sharded
 * data files build names from them -- never from a literal of their own. */
#define PDK_NAME_PDMODEL   ".pdmodel"      /* program, 2.x (program_format.c) */
#define PDK_NAME_MODEL_1X  "__model__"     /* program, 1.x; also __model__.json (3.x) */
#define PDK_NAME_PIR_JSON  ".json"         /* PIR program, 3.x (program_format.c) */
#define PDK_NAME_PDIPARAMS ".pdiparams"    /* combined parameters, 2.x (combined.c) */
#define PDK_NAME_PARAMS_1X "__params__"    /* combined parameters, 1.x save_inference_model */
#define PDK_NAME_VARS_1X   "__variables__" /* combined parameters, 1.x jit.save */
#define PDK_NAME_INFO      ".info"         /* X.pdiparams.info beside parameters (params_info.c) */
#define PDK_NAME_INFO_1X   "__variables.info__" /* the info beside 1.x jit.save's __variables__ */
#define PDK_NAME_PDPARAMS  ".pdparams"          /* pickled parameters (pickle_format.c) */
#define PDK_NAME_PDOPT     ".pdopt"             /* pickled optimizer state (pickle_format.c) */
/* PDK_NAME_INDEX, pdckpt's own index beside a file it saved, is in ../io/pdk_io.h: the sweep of
 * dead saves' temporaries (fs_util.c) recognises its temporaries too. */

/* Evidence scores returned by sniff: 0 = not this format. */
enum { PDK_SNIFF_NO = 0, PDK_SNIFF_WEAK = 10, PDK_SNIFF_LIKELY = 50, PDK_SNIFF_CERTAIN = 100 };

struct pdk_found;

typedef struct pdk_format {
    pdckpt_format id;
    const char   *name;
    /* Name endings that imply this format (".pdiparams", "__params__"), NULL-terminated; the
     * longest match over all formats wins (pdk_format_named_by).  The one place for suffixes,
     * public as pdckpt_format_suffixes: the first is the name Paddle 2.x gives the file. */
    const char *const *suffixes;
    /* A path that does not exist but names this format's checkpoint by Paddle's convention (a
     * prefix: "out/model" for out/model.pdmodel + out/model.pdiparams): its evidence as sniff's
     * scores, filling `out` (kind, format, paths, target); the strongest claim wins
     * (pdk_format_locate).  0 = not this format's, with why in out->probe for a near miss. */
    int (*locate)(const char *path, struct pdk_found *out);
    /* File formats: evidence from the whole mapped input (sniffers only read a bounded prefix). */
    int (*sniff)(const pdk_input *in);
    pdckpt_status (*load)(const pdk_input *in, const pdckpt_load_options *opts, pdckpt_value **out,
                          pdckpt_error *err);
    pdckpt_status (*save)(const pdckpt_value *root, pdk_sink *sink, const pdckpt_save_options *opts,
                          pdckpt_error *err);
    /* Directory formats. */
    int (*sniff_dir)(const char *path);
    pdckpt_status (*load_dir)(const char *path, const pdckpt_load_options *opts, pdckpt_value **out,
                              pdckpt_error *err);
    pdckpt_status (*save_dir)(const pdckpt_value *root, const char *path,
                              const pdckpt_save_options *opts, pdckpt_error *err);
} pdk_format;

/* registry.c */
const pdk_format *pdk_format_get(pdckpt_format id);
/* The descriptor of `id` when this build has it and it reads a directory (`dir`) or a file;
 * else an UNSUPPORTED or ARGUMENT error naming `source`. */
pdckpt_status pdk_format_usable(pdckpt_format id, bool dir, const char *source,
                                const pdk_format **out, pdckpt_error *err);
/* The file format a path's name implies (".pdiparams", "__params__" -> combined, ".pdparams" ->
 * pickle, ".pdmodel", "__model__" -> program, ...), AUTO when it implies none. */
pdckpt_format pdk_format_named_by(const char *path);
/* Picks the format with the strongest evidence in the bytes; when none recognises them, the one
 * the name implies (so a damaged file gets that format's precise diagnosis); FORMAT error when
 * nothing matches, a tie, ... */
pdckpt_status pdk_format_detect_input(const pdk_input *in, const pdk_format **out,
                                      pdckpt_error *err);
/* foreign.c: fails (FORMAT, offset 0) saying what the file is when it is a known kind of
 * non-checkpoint (empty, Git LFS pointer, HTML/XML page, zip, gzip, tar); else OK. */
pdckpt_status pdk_foreign_content(const pdk_input *in, pdckpt_error *err);
pdckpt_status pdk_format_detect_dir(const char *path, const pdk_format **out, pdckpt_error *err);

/* format_io.c: a descriptor run over a file, bytes or a sink -- what the public load and save
 * calls dispatch to after their argument checks, and what a format that nests another calls (no
 * format calls the public API).  Options as the public calls take them (NULL: the defaults); err
 * is reset first.  pdk_load_path reads one existing file (format from opts, else its bytes);
 * pdk_save_path writes a file or directory (format from opts, else the name) atomically. */
pdckpt_status pdk_load_input(const pdk_input *in, const pdckpt_load_options *opts,
                             pdckpt_value **out, pdckpt_format *out_format, pdckpt_error *err);
pdckpt_status pdk_load_path(const char *path, const pdckpt_load_options *opts, pdckpt_value **out,
                            pdckpt_format *out_format, pdckpt_error *err);
pdckpt_status pdk_load_bytes(const void *data, size_t len, const pdckpt_load_options *opts,
                             pdckpt_value **out, pdckpt_format *out_format, pdckpt_error *err);
/* Loads the file `name` beneath `dir` (opened with PDK_OPEN_BENEATH: no link, no "..") and
 * parses that one descriptor, so no link can be swapped in between a check and the parse; errors
 * name dir/name. */
pdckpt_status pdk_load_beneath(const char *dir, const char *name, const pdckpt_load_options *opts,
                               pdckpt_value **out, pdckpt_error *err);
/* A zero-copy open answered by a pickle's lazy-open index (docs/pickles.md): true with *out. */
bool pdk_load_indexed(const char *path, const pdckpt_load_options *opts, pdckpt_value **out);
pdckpt_status pdk_save_path(const pdckpt_value *root, const char *path,
                            const pdckpt_save_options *opts, pdckpt_error *err);
/* The same for a file inside a checkpoint directory (a sharded save's data files): a symbolic
 * link at `path` is refused, never followed — also one planted after a caller's own check, as
 * the rename then replaces the link itself. */
pdckpt_status pdk_save_path_inner(const pdckpt_value *root, const char *path,
                                  const pdckpt_save_options *given, pdckpt_error *err);
pdckpt_status pdk_save_bytes(const pdckpt_value *root, const pdckpt_save_options *opts,
                             void **out_data, size_t *out_len, pdckpt_error *err);
pdckpt_status pdk_save_callback(const pdckpt_value *root, const pdckpt_sink_ops *ops, void *self,
                                const pdckpt_save_options *opts, pdckpt_error *err);

/* resolve.c: what a path names, the one answer load, detect, the CLI and Python share. */
typedef enum pdk_found_kind {
    PDK_FOUND_FILE,    /* a file whose bytes decide the format */
    PDK_FOUND_DIR,     /* a directory: the directory formats' evidence decides */
    PDK_FOUND_INDEX,   /* a sharded checkpoint's index file (format set) */
    PDK_FOUND_MODEL,   /* an inference-model prefix that does not exist itself (paths set) */
    PDK_FOUND_STATIC,  /* paddle.static.save's prefix: X.pdparams (+ X.pdopt) and its program */
    PDK_FOUND_BESIDE,  /* parameters named by the program beside them (paths set) */
    PDK_FOUND_INFO,    /* an X.pdiparams named by the X.pdiparams.info beside it (info set) */
    PDK_FOUND_PREFIX,  /* X for a lone X.pdiparams (no program): target names the file */
    PDK_FOUND_MISSING, /* nothing: probe holds why when it is known, else stat_errno */
} pdk_found_kind;

typedef struct pdk_found {
    pdk_found_kind         kind;
    const pdk_format      *format; /* implied by the kind; NULL for FILE, DIR, MISSING */
    pdckpt_inference_paths paths;
    char                   info[PDCKPT_PATH_MAX];
    char                   target[PDCKPT_PATH_MAX]; /* PREFIX */
    pdckpt_error           probe;
    int                    stat_errno;
} pdk_found;

void pdk_resolve(const char *path, pdk_found *out);
/* registry.c: asks every format's locate about the missing `path`; the strongest claim fills
 * `out` (true), else out->probe holds the first near miss's reason (false). */
bool pdk_format_locate(const char *path, pdk_found *out);
/* The locators (resolve.c): an inference-model prefix, paddle.static.save's prefix (with
 * Paddle's save_dygraph hint as a near miss), the prefix of a lone X.pdiparams. */
int pdk_locate_inference(const char *path, pdk_found *out);
int pdk_locate_static(const char *path, pdk_found *out);
int pdk_locate_params(const char *path, pdk_found *out);
/* Names Paddle derives from a prefix (resolve.c), for the API calls that write them: the suffixes
 * of a prefix's two pickles, parameters and optimizer state (paddle.static.save,
 * fluid.save_dygraph). */
extern const char *const pdk_state_parts[2];
/* The combined parameters file of an inference model or jit.save: X.pdiparams. */
extern const char *const pdk_params_suffix;

/* Formats registered in this build (each module defines one). */
extern const pdk_format pdk_format_tensor;
extern const pdk_format pdk_format_combined;
extern const pdk_format pdk_format_vars_dir;
extern const pdk_format pdk_format_safetensors;
extern const pdk_format pdk_format_pickle;
extern const pdk_format pdk_format_tnum;
extern const pdk_format pdk_format_dygraph_dir;
extern const pdk_format pdk_format_selected_rows;
extern const pdk_format pdk_format_distcp; /* distcp/distcp_format.c */

/* ---- proto_wire.c: the protobuf wire codec (what TensorDesc and programs need) ---- */

enum { PDK_PB_VARINT = 0, PDK_PB_I64 = 1, PDK_PB_LEN = 2, PDK_PB_I32 = 5 };
pdckpt_status pdk_pb_varint(pdk_cursor *cur, uint64_t *out, const char *what);
/* Reads a tag; *field = 0 at end of input. */
pdckpt_status pdk_pb_tag(pdk_cursor *cur, uint32_t *field, uint32_t *wire);
pdckpt_status pdk_pb_skip(pdk_cursor *cur, uint32_t wire);
/* Writes a varint into buf (>= 10 bytes); returns its length. */
size_t pdk_pb_put_varint(uint8_t *buf, uint64_t v);

/* ---- tensor_stream.c: the binary tensor stream, reused by combined/vars-dir/tnum/... ---- */

/* Paddle's protobuf VarType.TensorDesc message as decoded (element type code and dims; dims are
 * checked non-negative) -- not distcp's pdk_tensor_desc, a tensor's whole description without
 * its data (pdk_distcp.h). */
typedef struct pdk_pb_tensor_desc {
    int          data_type; /* Paddle VarType code */
    pdckpt_dtype dtype;     /* INVALID when the code is not an element type */
    int32_t      n_dims;
    int64_t      dims[PDCKPT_MAX_DIMS];
} pdk_pb_tensor_desc;

pdckpt_status pdk_pb_tensor_desc_parse(pdk_cursor *cur, pdk_pb_tensor_desc *out);
/* Serializes a TensorDesc (dims unpacked, as Paddle writes them); returns its length. */
size_t pdk_pb_tensor_desc_encode(int data_type, int32_t n_dims, const int64_t *dims, uint8_t *buf,
                                 size_t cap);
/* The one walk of a tensor stream's headers, so that its layout is known in one place (every
 * reader of streams uses it: the loader, the directory check, the distcp skim): the outer
 * version 0, the LoD level count and levels (u64 byte size, u64 offsets), then the inner stream's
 * version 0, i32 TensorDesc size and TensorDesc.  It stops at the data: cur->pos is where the data
 * starts, n_bytes its size (the bytes are not checked to be there).  A bad header is a FORMAT (an
 * unknown element type UNSUPPORTED) error in cur->err naming the source, the offset and what was
 * expected; each group of bytes is bounded by the cursor before it is read. */
typedef struct pdk_stream_walk pdk_stream_walk;
struct pdk_stream_walk {
    pdk_cursor *cur;
    void       *ctx; /* the callbacks' */
    /* Optional, for a walker that holds only part of the stream (the cursor spans all of it):
     * makes the `n` bytes at cursor position `at` readable before they are read. */
    pdckpt_status (*fetch)(pdk_stream_walk *w, size_t at, size_t n);
    /* Optional: LoD level i of n_lod, its byte size (a multiple of 8) stored at cursor position
     * `at` and its offsets the nbytes at `raw`. */
    pdckpt_status (*level)(pdk_stream_walk *w, uint64_t i, size_t at, const uint8_t *raw,
                           uint64_t nbytes);
    uint64_t           n_lod;               /* out: the LoD level count (outer walk) */
    pdk_pb_tensor_desc desc;                /* out */
    uint64_t           n_elements, n_bytes; /* out: the data's, from desc */
};
/* Walks an outer stream (version, LoD, then the inner headers) at w->cur. */
pdckpt_status pdk_stream_walk_outer(pdk_stream_walk *w);
/* Walks an inner stream's headers (version, TensorDesc) only. */
pdckpt_status pdk_stream_walk_inner(pdk_stream_walk *w);
/* Reads one outer stream (version, LoD, inner stream) at the cursor into a tensor value. */
pdckpt_status pdk_tensor_stream_read(pdk_cursor *cur, const pdk_input *in,
                                     const pdckpt_load_options *opts, pdckpt_value **out);
/* True when `in` starts with a whole tensor stream; *end is where it ends. */
bool pdk_tensor_stream_length(const pdk_input *in, size_t *end);
/* A reader of one stream at the cursor (pdk_tensor_stream_read, pdk_selected_rows_read). */
typedef pdckpt_status (*pdk_stream_read_fn)(pdk_cursor *cur, const pdk_input *in,
                                            const pdckpt_load_options *opts, pdckpt_value **out);
/* How a sniff or a length probe reads streams: default options, errors kept in `scratch`, and no
 * tensor retaining or copying the input (each is freed at once).  Not to be moved once set. */
typedef struct pdk_stream_probe {
    pdckpt_error        scratch;
    pdckpt_load_options opts;
    pdk_input           in;
    pdk_cursor          cur; /* at the start of `in`; each stream read moves it on */
} pdk_stream_probe;
void pdk_stream_probe_init(pdk_stream_probe *p, const pdk_input *in);
/* Reads the stream at p->cur with `read`; true when it is a whole one. */
bool pdk_stream_probe_next(pdk_stream_probe *p, pdk_stream_read_fn read);
/* True when `in` starts with a whole stream `read` accepts; *end is where it ends. */
bool pdk_stream_length(const pdk_input *in, pdk_stream_read_fn read, size_t *end);
/* The sniff score of a file that is exactly one such stream (just below certain), else NO. */
int pdk_stream_sniff_one(const pdk_input *in, pdk_stream_read_fn read);
/* Loads a file that is exactly one stream: `read`, then the end of the file ("expected end of
 * file after the <what>, found N more bytes"). */
pdckpt_status pdk_stream_load_one(const pdk_input *in, const pdckpt_load_options *opts,
                                  pdk_stream_read_fn read, const char *what, pdckpt_value **out,
                                  pdckpt_error *err);
/* Reads an inner stream (version, desc, data) only: the TNUM and SelectedRows payload. */
pdckpt_status pdk_tensor_inner_read(pdk_cursor *cur, const pdk_input *in,
                                    const pdckpt_load_options *opts, pdckpt_value **out);
pdckpt_status pdk_tensor_stream_write(pdk_sink *sink, const pdckpt_value *tensor,
                                      pdckpt_error *err);
/* Whether the open file (`size` bytes) is exactly one tensor stream, judged from its headers
 * (at most its first 64 KiB are read; LoD offsets must lie in them): how a save recognises the
 * files of a directory it may replace. */
int pdk_tensor_stream_file_ok(int fd, uint64_t size); /* 1 yes, 0 no, -1 read error (errno) */
/* The directory kinds saves write (vars_dir.c, dygraph_dir_write.c): see pdk_dirtx_begin. */
extern const pdk_dir_kind pdk_vars_dir_kind;
extern const pdk_dir_kind pdk_dygraph_dir_kind;
pdckpt_status pdk_tensor_inner_write(pdk_sink *sink, const pdckpt_value *tensor, pdckpt_error *err);
/* Makes a tensor value whose data is `data` inside input `in`: zero-copy when allowed, else a
 * copy (caller memory without zero_copy, or misaligned data with require_aligned). */
pdckpt_status pdk_tensor_from_input(const pdk_input *in, const pdckpt_load_options *opts,
                                    pdckpt_dtype dtype, int32_t n_dims, const int64_t *dims,
                                    const uint8_t *data, pdckpt_value **out, pdckpt_error *err);

/* flat formats share the tree flattener: pdk_flat_* in ../core/pdk_core.h (flatten.c) */

#endif /* PDK_FORMAT_H */
