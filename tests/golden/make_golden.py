#!/usr/bin/env python3
"""Writes the golden corrupt files in this directory and expected.tsv, their exact diagnoses.

One file per check the readers make (spec binary-and-static-formats.md §1, §3, §6; safetensors).
Each starts from a valid file and corrupts one field.  Run it after changing a reader's message;
the C test test_golden and tests/py/test_golden_cli.py compare against expected.tsv.
Columns: file, format, names ('-' = none; 'program=F' = named by the program file F written
here), status, offset, message.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
rows = []


def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def desc(dtype=5, dims=(2, 3)):
    return b"\x08" + varint(dtype) + b"".join(b"\x10" + varint(d) for d in dims)


def stream(dtype=5, dims=(2, 3), data=None, lod=(), desc_bytes=None, versions=(0, 0)):
    d = desc_bytes if desc_bytes is not None else desc(dtype, dims)
    if data is None:
        data = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
    out = struct.pack("<IQ", versions[0], len(lod))
    for level in lod:
        out += struct.pack("<Q", 8 * len(level)) + struct.pack("<%dQ" % len(level), *level)
    return out + struct.pack("<Ii", versions[1], len(d)) + d + data


def golden(name, data, fmt, status, offset, message, names="-"):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    rows.append((name, fmt, names, status, str(offset), message))


def safetensors(header, data_len):
    h = header.encode()
    return struct.pack("<Q", len(h)) + h + bytes(data_len)


good = stream()
assert len(good) == 50
golden("tensor_truncated_header.bin", good[:10], "tensor", "format", 4,
       "truncated LoD level count: expected 8 bytes, found 6")
golden("tensor_empty.bin", b"", "tensor", "format", 0,
       "truncated tensor stream version: expected 4 bytes, found 0")
golden("tensor_bad_version.bin", stream(versions=(1, 0)), "tensor", "format", 0,
       "expected tensor stream version 0, found 1")
golden("tensor_bad_inner_version.bin", stream(versions=(0, 2)), "tensor", "format", 12,
       "expected tensor version 0, found 2")
golden("tensor_desc_size_beyond_file.bin", good[:16] + struct.pack("<i", 1000) + good[20:],
       "tensor", "format", 16, "expected TensorDesc size <= 30 (bytes left), found 1000")
golden("tensor_negative_desc_size.bin", good[:16] + struct.pack("<i", -1) + good[20:],
       "tensor", "format", 16, "expected TensorDesc size >= 0, found -1")
golden("tensor_negative_dim.bin", stream(desc_bytes=desc(5, (2, -3))), "tensor", "format", 25,
       "expected dim 1 >= 0, found -3")
golden("tensor_element_count_overflow.bin", stream(desc_bytes=desc(5, (1 << 40, 1 << 40))),
       "tensor", "format", 36, "element count overflows 64 bits at dim 1")
golden("tensor_byte_size_overflow.bin", stream(desc_bytes=desc(5, (1 << 62,))), "tensor",
       "format", 32, "tensor byte size overflows 63 bits (4611686018427387904 elements of 4 bytes)")
golden("tensor_truncated_data.bin", good[:-4], "tensor", "format", 26,
       "truncated tensor data: expected 24 bytes, found 20")
golden("tensor_unknown_dtype.bin", stream(dtype=99), "tensor", "unsupported", 20,
       "expected a tensor element type code, found 99")
golden("tensor_size_t_dtype.bin", stream(dtype=19), "tensor", "unsupported", 20,
       "expected a tensor element type code, found 19")
golden("tensor_no_data_type.bin", stream(desc_bytes=b"\x10\x02\x10\x03"), "tensor", "format", 20,
       "expected TensorDesc.data_type (field 1), found none")
golden("tensor_varint_too_long.bin", stream(desc_bytes=b"\x08\x05\x10" + b"\xff" * 11),
       "tensor", "format", 23, "varint in dim: expected at most 64 bits, found more")
golden("tensor_absurd_lod_count.bin", good[:4] + struct.pack("<Q", 1 << 40) + good[12:],
       "tensor", "format", 4, "expected LoD level count <= 4 (bytes left / 8), found 1099511627776")
golden("tensor_lod_level_not_multiple_of_8.bin",
       struct.pack("<IQQ", 0, 1, 5) + b"\0" * 5 + good[12:], "tensor", "format", 12,
       "expected LoD level size to be a multiple of 8, found 5")
golden("tensor_trailing_bytes.bin", good + b"\0\0\0", "tensor", "format", 50,
       "expected end of file after the tensor, found 3 more bytes")
two = stream() + stream(dtype=3, dims=(3,), data=struct.pack("<3q", 7, 8, 9))
golden("combined_trailing_bytes.bin", two, "combined", "format", 50,
       "expected end of file after 1 tensors, found 48 more bytes", names="fc_0.w_0")
golden("combined_missing_tensor.bin", two, "combined", "format", 98,
       "expected 3 tensors, found 2: the file ends before 'c'", names="a,b,c")
golden("combined_truncated_second.bin", two[:-1], "combined", "format", 74,
       "tensor 1: truncated tensor data: expected 24 bytes, found 23")
golden("combined_empty.bin", b"", "combined", "format", 0,
       "expected at least one tensor, found an empty file")
golden("safetensors_header_over_limit.bin", struct.pack("<Q", 100000001) + b"{}", "safetensors",
       "limit", 0, "expected header size <= 100000000 bytes, found 100000001")
golden("safetensors_overlap.bin", safetensors(
    '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
    '"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', 8), "safetensors", "format", 62,
    "tensor 'b': expected data to start at 8, found 4 (overlapping offsets)")
golden("safetensors_offsets_beyond_data.bin", safetensors(
    '{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', 8), "safetensors", "format", 9,
    "tensor 'a': expected data_offsets within the 8 data bytes, found end 16")



# ---- programs (spec §6.1): hand-encoded ProgramDescs naming combined files ----

def field(num, wire, payload):
    return varint(num << 3 | wire) + (varint(len(payload)) + payload if wire == 2 else payload)


def var_desc(name, kind, dtype, dims, persistable):
    vtype = field(1, 0, varint(kind))
    if dtype is not None and kind == 7:
        tensor = field(1, 0, varint(dtype)) + b"".join(field(2, 0, varint(d)) for d in dims)
        vtype += field(3, 2, field(1, 2, tensor) + field(2, 0, varint(0)))
    return field(1, 2, name.encode()) + field(2, 2, vtype) + field(3, 0, varint(persistable))


def program(*variables):
    block = field(1, 0, varint(0)) + field(2, 0, varint(-1))
    block += field(3, 2, var_desc("feed", 9, None, (), 1))
    block += field(3, 2, var_desc("x", 7, 5, (-1, 2), 0))
    for v in variables:
        block += field(3, 2, var_desc(*v, 1))
    return field(1, 2, block)


A = ("a", 7, 5, (2, 3))
B = ("b", 7, 3, (3,))
C = ("c", 7, 5, (1,))
for name, variables in (("program_a.pdmodel", (A,)), ("program_ab.pdmodel", (B, A)),
                        ("program_abc.pdmodel", (C, B, A))):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(program(*variables))
b_int64 = stream(dtype=3, dims=(3,), data=struct.pack("<3q", 7, 8, 9))
golden("combined_program_names_more.bin", good + b_int64, "combined", "format", 98,
       "expected 3 tensors (the program's persistable variables), found 2: the file ends before 'c'",
       names="program=program_abc.pdmodel")
golden("combined_program_names_fewer.bin", good + b_int64, "combined", "format", 50,
       "expected end of file after the program's 1 persistable variables, found 48 more bytes",
       names="program=program_a.pdmodel")
golden("combined_program_dtype_mismatch.bin", good + stream(dtype=5, dims=(3,), data=bytes(12)),
       "combined", "mismatch", 50,
       "variable 'b': the program declares int64 [3], the file holds float32 [3]",
       names="program=program_ab.pdmodel")
golden("combined_program_shape_mismatch.bin", stream(dims=(3, 2)) + b_int64, "combined",
       "mismatch", 0, "variable 'a': the program declares float32 [2, 3], the file holds float32 [3, 2]",
       names="program=program_ab.pdmodel")
whole = program(B, A)
cut = whole[:len(whole) - 7]
block_len = len(whole) - 1 - len(varint(len(whole) - 2))  # the BlockDesc's declared length
left = len(cut) - 1 - len(varint(block_len))
golden("program_truncated.pdmodel", cut, "program", "format", 1,
       "ProgramDesc.blocks (field 1): expected a length <= %d (bytes left in the message), found %d"
       % (left, block_len))
golden("program_vardesc_without_type.pdmodel",
       field(1, 2, field(1, 0, varint(0)) + field(2, 0, varint(-1)) + field(3, 2, field(1, 2, b"w"))),
       "program", "format", 17, "VarDesc: expected required field 'type' (2), found none")

with open(os.path.join(HERE, "expected.tsv"), "w") as f:
    f.write("# file\tformat\tnames\tstatus\toffset\tmessage\n")
    for row in rows:
        f.write("\t".join(row) + "\n")
print("wrote %d golden files" % len(rows))
