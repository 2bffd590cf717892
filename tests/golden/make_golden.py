#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
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


# What a pickle that ends too soon adds to its message (pickle_vm.h PK_TRUNCATED_HINT).
SHORT = " (the input ends too soon: it looks truncated -- an interrupted download, copy or save?)"


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
    "tensor 'a': expected data_offsets within the 8 data bytes, found end 16 (the file "
    "ends at least 8 bytes too soon: it looks truncated -- an interrupted download, copy or save?)")



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


# ---- pickles (spec pickle-and-distributed-formats.md §1): truncation, declared sizes beyond the
# file, hostile globals, cycles, limits, arrays that do not fit their shape ----
import pickle  # noqa: E402  (only to write plain stdlib values; nothing is loaded)


def short_text(s):
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


def array_p4(code, dims, data):
    """numpy's protocol-4 pickling of an ndarray, as in the spec's worked example (§7)."""
    out = short_text("numpy.core.multiarray") + short_text("_reconstruct") + b"\x93"
    out += short_text("numpy") + short_text("ndarray") + b"\x93" + b"K\x00\x85C\x01b\x87R"
    out += b"(K\x01(" + b"".join(b"J" + struct.pack("<i", d) for d in dims) + b"t"
    out += short_text("numpy") + short_text("dtype") + b"\x93" + short_text(code) + b"\x89\x88\x87R"
    out += b"(K\x03" + short_text("<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    out += b"\x89C" + bytes([len(data)]) + data + b"tb"
    return out


state = b"\x80\x04}(" + short_text("w") + array_p4("f4", [2], struct.pack("<2f", 1, 2)) + b"u."
# state[7:30] is the text 'numpy.core.multiarray': cut after it, and inside it
golden("pickle_truncated.bin", state[:30], "pickle", "format", 30,
       "expected an opcode (the pickle ends with STOP), found the end of the input" + SHORT)
golden("pickle_truncated_text.bin", state[:28], "pickle", "format", 7,
       "SHORT_BINUNICODE: expected 21 bytes of text, found 19 before the end" + SHORT)
golden("pickle_text_beyond_file.bin", b"\x80\x04X\x00\x00\x00\x10abc.", "pickle", "format", 2,
       "BINUNICODE: expected 268435456 bytes of text, found 4 before the end" + SHORT)
golden("pickle_bytes8_beyond_file.bin", b"\x80\x04\x8e" + struct.pack("<Q", 1 << 62) + b".",
       "pickle", "format", 2,
       "BINBYTES8: expected 4611686018427387904 bytes of bytes, found 1 before the end" + SHORT)
golden("pickle_frame_beyond_file.bin", b"\x80\x04\x95" + struct.pack("<Q", 1 << 40) + b"N.",
       "pickle", "format", 2,
       "FRAME: expected a frame of at most 2 bytes (what is left), found 1099511627776" + SHORT)
golden("pickle_memo_missing.bin", b"\x80\x02}q\x00h\x07.", "pickle", "format", 5,
       "BINGET: expected memo entry 7 to have been stored, found none")
golden("pickle_memo_index_limit.bin", b"\x80\x02Nr\xff\xff\xff\xff.", "pickle", "limit", 3,
       "LONG_BINPUT: expected a memo index below 16777216 (max_memo), found 4294967295")
golden("pickle_bad_protocol.bin", b"\x80\x07N.", "pickle", "unsupported", 0,
       "PROTO: expected pickle protocol 0-5, found 7")
golden("pickle_bad_opcode.bin", b"\x80\x02}\xfa.", "pickle", "format", 3,
       "expected a pickle opcode, found byte 0xfa")
golden("pickle_bad_utf8.bin", b"\x80\x04\x8c\x03ab\xff.", "pickle", "format", 2,
       "SHORT_BINUNICODE: expected UTF-8 text, found byte 0xff at text offset 2")
system = b"\x80\x02cposix\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."
assert pickle.loads.__name__  # (the payload above is never unpickled here)
NOT_ALLOWED = ("not on pdckpt's allowlist of what Paddle and numpy checkpoints name (pdckpt never "
               "imports or calls anything from a pickle; allowed_globals / --allow-global carry a "
               "class you trust as an inert object)")
golden("pickle_posix_system.bin", system, "pickle", "unsupported", 2,
       "GLOBAL: refusing global posix.system: " + NOT_ALLOWED)
hidden = (b"\x80\x04}(" + short_text("w") + array_p4("f4", [1], b"\0\0\x80?") + short_text("evil")
          + short_text("builtins") + short_text("exec") + b"\x93" + short_text("print(1)") + b"\x85")
golden("pickle_hidden_in_state_dict.bin", hidden + b"Ru.", "pickle", "unsupported",
       hidden.index(b"\x93", len(hidden) - 20), "STACK_GLOBAL: refusing global builtins.exec: "
       + NOT_ALLOWED)
golden("pickle_self_reference.bin", b"\x80\x02]q\x00]q\x01h\x00aa.", "pickle", "unsupported", 11,
       "APPEND: cannot add items to a list that is already inside another value (a "
       "self-referencing pickle; pdckpt refuses reference cycles)")
golden("pickle_deep_nesting.bin", b"\x80\x02" + b"]" * 300 + b"a" * 299 + b".", "pickle", "limit",
       302 + 199, "APPEND: expected nesting of at most 200 levels (max_depth), found deeper")
mismatch = b"\x80\x04" + array_p4("f8", [3], b"12345678") + b"."
golden("pickle_array_size_mismatch.bin", mismatch, "pickle", "format", len(mismatch) - 2,
       "BUILD: expected 24 bytes of float64 array data, found 8")  # the array's own BUILD
golden("pickle_stack_underflow.bin", b"\x80\x02K\x01(\x86.", "pickle", "format", 5,
       "TUPLE2: expected 2 items on the stack above the last MARK, found 0")


# ---- hostile inputs (issue 8 item 4): code-execution attempts, memo and nesting bombs, sizes
# and dims that overflow or exceed the file, duplicate names, absurd LoD.  test_golden also
# checks that none of these makes the loader allocate more than the file's size plus 128 KiB.
golden("pickle_subprocess.bin", b"\x80\x04" + short_text("subprocess") + short_text("Popen")
       + b"\x93" + short_text("ls") + b"\x85R.", "pickle", "unsupported", 21,
       "STACK_GLOBAL: refusing global subprocess.Popen: " + NOT_ALLOWED)
getattr_eval = (b"\x80\x04" + short_text("builtins") + short_text("getattr") + b"\x93"
                + short_text("builtins") + short_text("__import__") + b"\x93"
                + short_text("eval") + b"\x86R.")
golden("pickle_getattr_eval.bin", getattr_eval, "pickle", "unsupported", 21,
       "STACK_GLOBAL: refusing global builtins.getattr: " + NOT_ALLOWED)
golden("pickle_inst_os_system.bin", b"(S'ls'\nios\nsystem\n.", "pickle", "unsupported", 7,
       "INST: refusing global os.system: " + NOT_ALLOWED)
bomb = b"\x80\x02]q\x00"  # list i = [list i-1, list i-1]: 2**59 values once expanded
for i in range(1, 60):
    bomb += b"](h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"eq" + bytes([i])
golden("pickle_memo_bomb.bin", bomb + b".", "pickle", "limit", 200,
       "APPENDS: expected at most 4194438 values once shared (memo) references are expanded "
       "(max_alloc_bytes / 16), found more")
golden("pickle_long4_beyond_file.bin", b"\x80\x02\x8b" + struct.pack("<i", 1 << 30) + b".",
       "pickle", "format", 2,
       "LONG4: expected 1073741824 bytes of integer, found 1 before the end" + SHORT)
golden("safetensors_duplicate_name.bin", safetensors(
    '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
    '"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', 8), "safetensors", "format", 62,
    "duplicate tensor name 'a'")
golden("safetensors_shape_overflow.bin", safetensors(
    '{"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,4]}}', 4),
    "safetensors", "format", 9, "tensor 'a': element count overflows 64 bits at dim 1")
golden("tensor_lod_beyond_rows.bin", stream(lod=([0, 1, 1000000],)), "tensor", "format", 36,
       "LoD level 0: expected the last offset to be 2 (the tensor's first dimension), found "
       "1000000")
golden("tensor_lod_decreasing.bin", stream(lod=([0, 2, 1],)), "tensor", "format", 36,
       "LoD level 0: expected offsets starting at 0 and non-decreasing, found 1 at index 2")
golden("tensor_lod_levels_disagree.bin", stream(lod=([0, 5], [0, 1, 2])), "tensor", "format", 28,
       "LoD level 0: expected the last offset to be 2 (the next level's offset count - 1), found 5")
golden("combined_duplicate_names.bin", two, "combined", "argument", -1,
       "duplicate variable name 'a' in the name list (entry 1)", names="a,a")

with open(os.path.join(HERE, "expected.tsv"), "w") as f:
    f.write("# file\tformat\tnames\tstatus\toffset\tmessage\n")
    for row in rows:
        f.write("\t".join(row) + "\n")
print("wrote %d golden files" % len(rows))
