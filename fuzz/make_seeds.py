#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes small valid seed inputs for the fuzz corpora (stdlib only; rerun to regenerate)."""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def stream(code, dims, data, lod=()):
    d = b"\x08" + varint(code) + b"".join(b"\x10" + varint(x) for x in dims)
    out = struct.pack("<IQ", 0, len(lod))
    for level in lod:
        out += struct.pack("<Q", 8 * len(level)) + struct.pack("<%dQ" % len(level), *level)
    return out + struct.pack("<Ii", 0, len(d)) + d + data


def write(target, name, data):
    os.makedirs(os.path.join(HERE, "corpus", target), exist_ok=True)
    with open(os.path.join(HERE, "corpus", target, name), "wb") as f:
        f.write(data)


f32 = stream(5, (2, 3), struct.pack("<6f", *range(6)))
lod = stream(5, (3, 1), struct.pack("<3f", 1, 2, 3), lod=([0, 2, 3],))
zero_d = stream(3, (), struct.pack("<q", 9999))
empty = stream(4, (0, 4), b"")
for target in ("fuzz_binary", "fuzz_roundtrip"):
    write(target, "f32_2x3", f32)
    write(target, "lod", lod)
    write(target, "zero_d", zero_d)
    write(target, "combined3", f32 + lod + empty)
header = json.dumps({"__metadata__": {"k": "v"},
                     "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                     "b": {"dtype": "I8", "shape": [], "data_offsets": [8, 9]}}).encode()
header += b" " * (-len(header) % 8)
st = struct.pack("<Q", len(header)) + header + bytes(9)
for target in ("fuzz_safetensors", "fuzz_roundtrip"):
    write(target, "small", st)
