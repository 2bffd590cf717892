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

const pdk_format pdk_format_program = {
    .id = PDCKPT_FORMAT_PROGRAM,
    .name = "program",
    .sniff = pdk_program_desc_sniff,
    .load = program_load,
};

const pdk_format pdk_format_pir_json = {
    .id = PDCKPT_FORMAT_PIR_JSON,
    .name = "pir-json",
    .sniff = pdk_program_pir_sniff,
    .load = pir_load,
};
