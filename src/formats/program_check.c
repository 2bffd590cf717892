/* SPDX-License-Identifier: Apache-2.0 */
/*
 * program_check.c — validates protobuf wire bytes against protobuf-c's generated descriptors
 * before protobuf-c unpacks them.  protobuf-c only says "failed"; this walk finds the exact
 * offset and says what was expected (spec binary-and-static-formats.md §6.1 "Decoder rules"):
 * every length within its parent, known fields with their declared wire type (packed repeated
 * scalars accepted), nested messages recursively, required fields present.  It accepts nothing
 * that protobuf-c would refuse, so a validated message always unpacks.
 */
#include "pdk_program.h"

#include <protobuf-c/protobuf-c.h>
#include <string.h>

/* Schema nesting is fixed (no recursive messages), so depth only guards against a bad table. */
#define MAX_MESSAGE_DEPTH 16

static int wire_of(ProtobufCType type) {
    switch (type) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT: return PDK_PB_I32;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return PDK_PB_I64;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE: return PDK_PB_LEN;
    default: return PDK_PB_VARINT;
    }
}

static const char *wire_name(uint32_t wire) {
    switch (wire) {
    case PDK_PB_VARINT: return "a varint";
    case PDK_PB_I64: return "a 64-bit value";
    case PDK_PB_LEN: return "a length-delimited value";
    case PDK_PB_I32: return "a 32-bit value";
    default: return "a group";
    }
}

static pdckpt_status check_at(pdk_cursor *cur, const ProtobufCMessageDescriptor *desc, int depth);

/* A packed run of scalars: the run must split exactly into elements. */
static pdckpt_status check_packed(pdk_cursor *sub, const ProtobufCFieldDescriptor *f) {
    int wire = wire_of(f->type);
    while (pdk_cur_left(sub) > 0) {
        uint64_t ignored;
        if (wire == PDK_PB_VARINT)
            PDK_TRY(pdk_pb_varint(sub, &ignored, f->name));
        else
            PDK_TRY(pdk_cur_skip(sub, wire == PDK_PB_I32 ? 4 : 8, f->name));
    }
    return PDCKPT_OK;
}

/* A variable's name (VarDesc.name, an op's argument): it names a tensor and, in a directory of
 * variables, the file it is read from. */
static bool names_a_variable(const ProtobufCMessageDescriptor *desc,
                             const ProtobufCFieldDescriptor   *f) {
    return f->type == PROTOBUF_C_TYPE_STRING &&
           ((strcmp(desc->short_name, "VarDesc") == 0 && strcmp(f->name, "name") == 0) ||
            (strcmp(desc->short_name, "Var") == 0 && strcmp(f->name, "arguments") == 0));
}

static pdckpt_status check_len_field(pdk_cursor *cur, const ProtobufCMessageDescriptor *desc,
                                     const ProtobufCFieldDescriptor *f, int depth) {
    size_t   at = cur->pos;
    uint64_t len;
    PDK_TRY(pdk_pb_varint(cur, &len, "field length"));
    if (len > pdk_cur_left(cur))
        return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT,
                               "%s.%s (field %u): expected a length <= %zu (bytes left in the "
                               "message), found %llu",
                               desc->short_name, f->name, f->id, pdk_cur_left(cur),
                               (unsigned long long)len);
    pdk_cursor sub;
    pdk_cur_sub(&sub, cur, (size_t)len);
    if (names_a_variable(desc, f) && memchr(cur->base + cur->pos, '\0', (size_t)len))
        return pdk_cur_fail_at(cur, cur->pos, PDCKPT_ERR_FORMAT,
                               "%s.%s (field %u): expected a variable name without a NUL byte, "
                               "found one (C code would read only the part before it, another "
                               "name, or another variable's file)",
                               desc->short_name, f->name, f->id);
    cur->pos += (size_t)len;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) return check_at(&sub, f->descriptor, depth + 1);
    if (wire_of(f->type) != PDK_PB_LEN) return check_packed(&sub, f); /* packed repeated */
    return PDCKPT_OK;
}

static pdckpt_status wrong_wire(pdk_cursor *cur, size_t at, const ProtobufCMessageDescriptor *desc,
                                const ProtobufCFieldDescriptor *f, uint32_t wire) {
    /* Fluid 0.11 stored the VarType enum directly in VarDesc field 2 (spec §6.3). */
    bool fluid011 = strcmp(desc->short_name, "VarDesc") == 0 && f->id == 2 && wire == PDK_PB_VARINT;
    return pdk_cur_fail_at(cur, at, PDCKPT_ERR_FORMAT, "%s.%s (field %u): expected %s, found %s%s",
                           desc->short_name, f->name, f->id, wire_name((uint32_t)wire_of(f->type)),
                           wire_name(wire),
                           fluid011 ? " (a Fluid 0.11 VarDesc layout, which pdckpt does not read; "
                                      "programs from Fluid 0.12 on are supported)"
                                    : "");
}

static pdckpt_status check_field(pdk_cursor *cur, const ProtobufCMessageDescriptor *desc,
                                 const ProtobufCFieldDescriptor *f, uint32_t wire, size_t at,
                                 int depth) {
    int  want = wire_of(f->type);
    bool packed = f->label == PROTOBUF_C_LABEL_REPEATED && want != PDK_PB_LEN && wire == PDK_PB_LEN;
    if ((uint32_t)want != wire && !packed) return wrong_wire(cur, at, desc, f, wire);
    if (wire == PDK_PB_LEN) return check_len_field(cur, desc, f, depth);
    return pdk_pb_skip(cur, wire);
}

static pdckpt_status check_required(const pdk_cursor *cur, const ProtobufCMessageDescriptor *desc,
                                    uint64_t seen) {
    for (unsigned i = 0; i < desc->n_fields && i < 64; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        if (f->label == PROTOBUF_C_LABEL_REQUIRED && !(seen & (UINT64_C(1) << i)))
            return pdk_cur_fail_at(cur, 0, PDCKPT_ERR_FORMAT,
                                   "%s: expected required field '%s' (%u), found none",
                                   desc->short_name, f->name, f->id);
    }
    return PDCKPT_OK;
}

static pdckpt_status check_at(pdk_cursor *cur, const ProtobufCMessageDescriptor *desc, int depth) {
    if (depth > MAX_MESSAGE_DEPTH || desc->n_fields > 64)
        return pdk_cur_fail(cur, "%s: message nesting deeper than the schema allows",
                            desc->short_name);
    uint64_t seen = 0;
    for (;;) {
        size_t   at = cur->pos;
        uint32_t field, wire;
        PDK_TRY(pdk_pb_tag(cur, &field, &wire));
        if (field == 0) break;
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(desc, field);
        if (!f) {
            PDK_TRY(pdk_pb_skip(cur, wire)); /* unknown fields are kept by protobuf-c, not read */
            continue;
        }
        PDK_TRY(check_field(cur, desc, f, wire, at, depth));
        seen |= UINT64_C(1) << (unsigned)(f - desc->fields);
    }
    return check_required(cur, desc, seen);
}

pdckpt_status pdk_pb_validate(pdk_cursor *cur, const struct ProtobufCMessageDescriptor *desc) {
    return check_at(cur, desc, 0);
}
