/* SPDX-License-Identifier: Apache-2.0 */
/*
 * program_format.c — the `program` (ProgramDesc: `__model__`, `*.pdmodel`) and `pir-json`
 * (Paddle 3 `model.json` / `inference.json`) format modules, and opening a program of either
 * kind by its bytes (spec binary-and-static-formats.md §6).  A program holds no tensor data: as
 * a value tree it is a DICT variable name -> {block, type, dtype, shape, lod_level, persistable,
 * saved}, the same information `pdckpt ls` prints for it.
 */
#include "pdk_program.h"

#include <string.h>

pdckpt_status pdk_program_parse(const pdk_input *in, const pdckpt_load_options *opts,
                                pdckpt_program **out, pdckpt_error *err) {
    pdckpt_format f = opts->format;
    if (f != PDCKPT_FORMAT_PROGRAM && f != PDCKPT_FORMAT_PIR_JSON) {
        /* By content: the ProgramDesc reader reports a damaged protobuf precisely, so anything
         * that is not JSON goes to it (it also recognises Fluid 0.11's pickle). */
        f = pdk_program_pir_sniff(in) > 0 ? PDCKPT_FORMAT_PIR_JSON : PDCKPT_FORMAT_PROGRAM;
        if (f == PDCKPT_FORMAT_PROGRAM && in->len > 0 && in->data[0] != 0x0a &&
            !pdk_program_is_fluid011_pickle(in))
            return pdk_fail(err, PDCKPT_ERR_FORMAT, in->name, 0,
                            "expected a Paddle program (a ProgramDesc protobuf starting with "
                            "0x0a, or PIR JSON), found first byte 0x%02x",
                            in->data[0]);
    }
    if (f == PDCKPT_FORMAT_PIR_JSON) return pdk_program_pir_parse(in, opts, out, err);
    return pdk_program_desc_parse(in, opts, out, err);
}

pdckpt_status pdk_program_open(const char *path, const pdckpt_load_options *opts,
                               pdckpt_program **out, pdckpt_error *err) {
    pdk_input in;
    PDK_TRY(pdk_input_open_file(path, false, opts->allocator, &in, err));
    pdckpt_status st = pdk_program_parse(&in, opts, out, err);
    pdk_error_set_source(err, path);
    pdk_input_close(&in); /* the program copies everything it keeps */
    return st;
}

static pdckpt_status load_as_value(const pdk_input *in, const pdckpt_load_options *opts,
                                   pdckpt_format format, pdckpt_value **out, pdckpt_error *err) {
    pdckpt_load_options o = *opts;
    o.format = format;
    pdckpt_program *p = NULL;
    PDK_TRY(pdk_program_parse(in, &o, &p, err));
    pdckpt_status st = pdk_program_to_value(p, out, err);
    pdk_program_free(p);
    return st;
}

static pdckpt_status program_load(const pdk_input *in, const pdckpt_load_options *opts,
                                  pdckpt_value **out, pdckpt_error *err) {
    return load_as_value(in, opts, PDCKPT_FORMAT_PROGRAM, out, err);
}

static pdckpt_status pir_load(const pdk_input *in, const pdckpt_load_options *opts,
                              pdckpt_value **out, pdckpt_error *err) {
    return load_as_value(in, opts, PDCKPT_FORMAT_PIR_JSON, out, err);
}

/* Saving a program (paddle.save(program, path)): the root is its serialised bytes, which only
 * Paddle can produce from its Program object (ProgramDesc protobuf or PIR JSON).  They are parsed
 * and checked like a loaded program before a byte is written, so what is saved loads again. */
static pdckpt_status save_checked(const pdckpt_value *root, pdk_sink *sink, pdckpt_format format,
                                  pdckpt_error *err) {
    size_t      len = 0;
    const void *data = pdckpt_value_get_bytes(root, &len);
    if (!data) data = pdckpt_value_get_string(root, &len);
    if (!data)
        return pdk_fail(err, PDCKPT_ERR_ARGUMENT, sink->name, -1,
                        "a %s is saved from its serialised bytes, found a %s",
                        pdckpt_format_name(format), pdckpt_kind_name(pdckpt_value_kind(root)));
    pdk_input in;
    pdk_input_from_memory(data, len, true, &in);
    in.name = sink->name;
    pdckpt_load_options opts = PDCKPT_LOAD_OPTIONS_INIT;
    opts.format = format;
    pdckpt_program *p = NULL;
    PDK_TRY(pdk_program_parse(&in, &opts, &p, err));
    pdk_program_free(p);
    return pdk_sink_write(sink, data, len, err);
}

static pdckpt_status program_save(const pdckpt_value *root, pdk_sink *sink,
                                  const pdckpt_save_options *opts, pdckpt_error *err) {
    (void)opts;
    return save_checked(root, sink, PDCKPT_FORMAT_PROGRAM, err);
}

static pdckpt_status pir_save(const pdckpt_value *root, pdk_sink *sink,
                              const pdckpt_save_options *opts, pdckpt_error *err) {
    (void)opts;
    return save_checked(root, sink, PDCKPT_FORMAT_PIR_JSON, err);
}

const pdk_format pdk_format_program = {
    .id = PDCKPT_FORMAT_PROGRAM,
    .name = "program",
    .suffixes = (const char *const[]){PDK_NAME_PDMODEL, PDK_NAME_MODEL_1X, NULL},
    .sniff = pdk_program_desc_sniff,
    .load = program_load,
    .save = program_save,
};

const pdk_format pdk_format_pir_json = {
    .id = PDCKPT_FORMAT_PIR_JSON,
    .name = "pir-json",
    .suffixes = (const char *const[]){PDK_NAME_PIR_JSON, NULL},
    .sniff = pdk_program_pir_sniff,
    .load = pir_load,
    .save = pir_save,
};
