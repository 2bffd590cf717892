# SPDX-License-Identifier: Apache-2.0
"""An independent, stdlib-only reader of Paddle's binary tensor stream (spec §1), used by the tests
as a second opinion on what pdckpt reports.  Deliberately written from the spec, not from the C
code, and kept minimal: no error messages, just asserts."""
import hashlib
import struct

# VarType code -> (numpy dtype name, element size)
DTYPES = {0: ("bool", 1), 1: ("int16", 2), 2: ("int32", 4), 3: ("int64", 8), 4: ("float16", 2),
          5: ("float32", 4), 6: ("float64", 8), 20: ("uint8", 1), 21: ("int8", 1),
          22: ("bfloat16", 2), 23: ("complex64", 8), 24: ("complex128", 16),
          32: ("float8_e4m3fn", 1), 33: ("float8_e5m2", 1)}


def _varint(buf, pos):
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def _desc(buf):
    pos, dtype, dims = 0, None, []
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 1 and wire == 0:
            dtype, pos = _varint(buf, pos)
        elif field == 2 and wire == 0:
            d, pos = _varint(buf, pos)
            dims.append(d - (1 << 64) if d >= 1 << 63 else d)
        elif field == 2 and wire == 2:
            n, pos = _varint(buf, pos)
            end = pos + n
            while pos < end:
                d, pos = _varint(buf, pos)
                dims.append(d)
        else:
            raise AssertionError("unexpected field %d" % field)
    return dtype, dims


def read_stream(buf, pos=0):
    """Returns ({dtype, shape, nbytes, sha256, lod, data}, next position)."""
    version, lod_levels = struct.unpack_from("<IQ", buf, pos)
    assert version == 0
    pos += 12
    lod = []
    for _ in range(lod_levels):
        (nbytes,) = struct.unpack_from("<Q", buf, pos)
        pos += 8
        lod.append(list(struct.unpack_from("<%dQ" % (nbytes // 8), buf, pos)))
        pos += nbytes
    version, desc_size = struct.unpack_from("<Ii", buf, pos)
    assert version == 0
    pos += 8
    code, dims = _desc(buf[pos:pos + desc_size])
    pos += desc_size
    name, size = DTYPES[code]
    count = 1
    for d in dims:
        count *= d
    data = bytes(buf[pos:pos + count * size])
    assert len(data) == count * size
    pos += count * size
    return {"dtype": name, "shape": dims, "nbytes": len(data), "lod": lod, "data": data,
            "sha256": hashlib.sha256(data).hexdigest()}, pos


def read_combined(buf):
    out, pos = [], 0
    while pos < len(buf):
        t, pos = read_stream(buf, pos)
        out.append(t)
    return out


def read_file(path):
    with open(path, "rb") as f:
        return read_combined(f.read())


def _put_varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


CODES = {name: code for code, (name, _) in DTYPES.items()}


def write_stream(dtype_name, shape, data, lod=()):
    """Serialises one tensor stream from raw little-endian bytes (spec §1.1-1.2)."""
    desc = b"\x08" + _put_varint(CODES[dtype_name]) + b"".join(b"\x10" + _put_varint(d) for d in shape)
    out = struct.pack("<IQ", 0, len(lod))
    for level in lod:
        out += struct.pack("<Q", 8 * len(level)) + struct.pack("<%dQ" % len(level), *level)
    return out + struct.pack("<Ii", 0, len(desc)) + desc + bytes(data)
