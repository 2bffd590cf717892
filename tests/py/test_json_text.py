# SPDX-License-Identifier: Apache-2.0
"""pdckpt_json_write_string, the one JSON string writer (safetensors headers, shard indexes, the
CLI's --json), against Python's json module: with PDCKPT_JSON_SHORT | PDCKPT_JSON_ASCII it must
write what json.dumps writes (huggingface_hub's index), with PDCKPT_JSON_SHORT what
json.dumps(ensure_ascii=False) writes (serde_json's escaping, the safetensors header), and with no
flags every control byte as \\u00xx (the CLI's --json, unchanged); json.loads reads each back."""
import ctypes
import json
import random

import pytest

from conftest import BUILD

SHORT, ASCII = 1, 2
WRITE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                            ctypes.c_void_p)


class Error(ctypes.Structure):  # pdckpt_error
    _fields_ = [("status", ctypes.c_int), ("sys_errno", ctypes.c_int),
                ("offset", ctypes.c_int64), ("source", ctypes.c_char * 512),
                ("message", ctypes.c_char * 512)]


@pytest.fixture(scope="module")
def lib():
    so = ctypes.CDLL(str(BUILD / "libpdckpt.so"))
    so.pdckpt_json_write_string.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                            WRITE_FN, ctypes.c_void_p, ctypes.POINTER(Error)]
    so.pdckpt_json_write_string.restype = ctypes.c_int
    return so


def quote(lib, data, flags, fail_with=0):
    """(status, bytes written, error) of writing `data` (bytes)."""
    out = bytearray()

    def write(_self, ptr, n, _err):
        out.extend(ctypes.string_at(ptr, n))
        return fail_with

    err = Error(0, 0, -1, b"", b"")
    st = lib.pdckpt_json_write_string(data, len(data), flags, WRITE_FN(write), None,
                                      ctypes.byref(err))
    return st, bytes(out), err


def plain(s):
    """The no-flags spelling: \\" \\\\ and \\u00xx for every control character."""
    body = "".join("\\" + c if c in '"\\' else f"\\u{ord(c):04x}" if ord(c) < 0x20 else c
                   for c in s)
    return f'"{body}"'


def samples():
    rng = random.Random(17)
    alphabet = ([chr(c) for c in range(0x80)] + ["ß", "é", "中", "\u2028", "\ufeff", "\uffff",
                                                 "😀", "\U0010ffff", "\U00010000"])
    yield "".join(chr(c) for c in range(0x80))
    yield ""
    yield "größe.ü/中文_😀"
    for _ in range(300):
        yield "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 12)))


def test_matches_python_json_in_every_mode(lib):
    for s in samples():
        data = s.encode()
        cases = {SHORT | ASCII: json.dumps(s), SHORT: json.dumps(s, ensure_ascii=False),
                 0: plain(s)}
        for flags, want in cases.items():
            st, got, _ = quote(lib, data, flags)
            assert st == 0 and got == want.encode(), (s, flags, got)
            assert json.loads(got) == s
    st, got, _ = quote(lib, b"\x7f\x1f\n", ASCII)  # ASCII alone keeps \u00xx for control bytes
    assert st == 0 and got == b'"\\u007f\\u001f\\u000a"'


def test_bytes_that_are_not_utf8(lib):
    lone = "a\ud800b".encode("utf-8", "surrogatepass")  # as a pickle may carry it
    for flags in (0, SHORT):  # copied as they are: the CLI shows what the file holds
        assert quote(lib, lone + b"\xff", flags)[:2] == (0, b'"' + lone + b'\xff"')
    for data, at in ((lone, 1), (b"ok\xc3", 2), (b"\xc0\xaf", 0), (b"x\xf5\x80\x80\x80", 1)):
        st, _, err = quote(lib, data, SHORT | ASCII)
        assert st == 1 and err.offset == at, data  # PDCKPT_ERR_ARGUMENT at the bad byte
        assert b"expected UTF-8 text" in err.message


def test_a_failing_writer_stops_it(lib):
    st, got, _ = quote(lib, b"abc\ndef", SHORT, fail_with=3)  # PDCKPT_ERR_IO from the writer
    assert st == 3 and got == b'"'
