#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes seed inputs for the program fuzz targets (stdlib only; rerun to regenerate):
fuzz_program gets hand-encoded ProgramDescs (spec binary §6.1), a combined file for its fixed
program and a .pdiparams.info pickle; fuzz_pir_json gets small PIR JSON programs (spec §6.5)."""
import json
import os
import pickle
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def field(num, wire, payload):
    return varint(num << 3 | wire) + (varint(len(payload)) + payload if wire == 2 else payload)


def var_desc(name, kind, dtype=None, dims=(), persistable=1):
    vtype = field(1, 0, varint(kind))
    if dtype is not None:
        tensor = field(1, 0, varint(dtype)) + b"".join(field(2, 0, varint(d)) for d in dims)
        vtype += field(3, 2, field(1, 2, tensor) + field(2, 0, varint(0))) if kind == 7 \
            else field(2, 2, tensor)
    return field(1, 2, name.encode()) + field(2, 2, vtype) + field(3, 0, varint(persistable))


def op(kind, inputs=(), outputs=(), col=None):
    out = b""
    for num, slots in ((1, inputs), (2, outputs)):
        for param, arg in slots:
            out += field(num, 2, field(1, 2, param.encode()) + field(2, 2, arg.encode()))
    out += field(3, 2, kind.encode())
    if col is not None:
        out += field(4, 2, field(1, 2, b"col") + field(2, 0, varint(0)) + field(3, 0, varint(col)))
    return out


def block(idx, parent, variables, ops=()):
    out = field(1, 0, varint(idx)) + field(2, 0, varint(parent))
    out += b"".join(field(3, 2, v) for v in variables)
    return out + b"".join(field(4, 2, o) for o in ops)


def program(*blocks, version=None):
    out = b"".join(field(1, 2, b) for b in blocks)
    return out + (field(4, 2, field(1, 0, varint(version))) if version is not None else b"")


def stream(code, dims, data):
    d = b"\x08" + varint(code) + b"".join(b"\x10" + varint(x) for x in dims)
    return struct.pack("<IQIi", 0, 0, 0, len(d)) + d + data


def write(target, name, data):
    os.makedirs(os.path.join(HERE, "corpus", target), exist_ok=True)
    with open(os.path.join(HERE, "corpus", target, name), "wb") as f:
        f.write(data)


mlp = program(block(0, -1, [
    var_desc("feed", 9), var_desc("fetch", 10), var_desc("x", 7, 5, (-1, 4), 0),
    var_desc("fc_0.w_0", 7, 5, (4, 2)), var_desc("fc_0.b_0", 7, 5, (2,)),
    var_desc("fc_0.tmp_0", 7, 5, (-1, 2), 0)], [
    op("feed", [("X", "feed")], [("Out", "x")], 0),
    op("mul", [("X", "x"), ("Y", "fc_0.w_0")], [("Out", "fc_0.tmp_0")]),
    op("fetch", [("X", "fc_0.tmp_0")], [("Out", "fetch")], 0)]), version=2004000)
write("fuzz_program", "mlp.pdmodel", mlp)
write("fuzz_program", "two_blocks.pdmodel", program(
    block(0, -1, [var_desc("w", 7, 6, (3,)), var_desc("rows", 8, 5, (-1, 2)),
                  var_desc("raw", 17), var_desc("@LR_DECAY_COUNTER@", 7, 3, (1,))]),
    block(1, 0, [var_desc("w", 7, 4, (3,)), var_desc("lr", 7, 5, (1,))], [op("assign")])))
write("fuzz_program", "fixed_program_params.bin",
      stream(5, (2,), struct.pack("<2f", 1, 2)) + stream(3, (3,), struct.pack("<3q", 4, 5, 6)))
write("fuzz_program", "params.info", pickle.dumps({
    "fc_0.w_0": {"structured_name": "fc.weight", "stop_gradient": False, "trainable": True},
    "fc_0.b_0": {"structured_name": "fc.bias", "stop_gradient": False, "trainable": True},
    "bn.w_1": {"structured_name": "bn._mean", "stop_gradient": True, "trainable": False}},
    protocol=2))


def dtensor(dtype, dims):
    return {"#": "0.t_dtensor", "D": [{"#": "0." + dtype}, dims, "NCHW", [], 0]}


def attr(name, kind, value):
    return {"AT": {"#": kind, "D": value}, "N": name}


ops = [
    {"#": "p", "A": [0, 1, 1, "linear_0.w_0"], "DA": [], "O": {"%": 1, "TT": dtensor("t_f32", [4, 2])},
     "OA": [1, 0, 1], "QA": []},
    {"#": "p", "A": [0, 0, 0, "bn.w_1"], "O": {"%": 2, "TT": dtensor("t_f16", [2])}, "OA": [1, 1, 0]},
    {"#": "1.data", "A": [attr("name", "0.a_str", "x"), attr("shape", "1.a_intarray", [-1, 4])],
     "O": [{"%": 3, "TT": dtensor("t_f32", [-1, 4])}]},
    {"#": "1.data", "A": [attr("name", "0.a_str", "learning_rate_0")],
     "O": [{"%": 4, "TT": dtensor("t_f32", [1])}],
     "OA": [attr("persistable", "0.a_array", [{"#": "0.a_bool", "D": True}])]},
    {"#": "1.if", "I": [{"%": 3}], "O": [], "regions": [{"#": "region_1", "blocks": [
        {"#": "block_1", "args": [], "ops": [{"#": "1.relu", "I": [{"%": 3}], "O": [{"%": 5}]}]}]}]},
    {"#": "1.fetch", "A": [attr("name", "0.a_str", "fetch_name_0"), attr("col", "0.a_i32", 0)],
     "I": [{"%": 5}]},
]
pir = {"base_code": {"magic": "pir", "trainable": True, "version": 1},
       "program": {"regions": [{"#": "region_0", "blocks": [{"#": "block_0", "args": [], "ops": ops}]}]}}
write("fuzz_pir_json", "small.json", json.dumps(pir).encode())
write("fuzz_pir_json", "readable.json", json.dumps(pir, indent=2).encode())
