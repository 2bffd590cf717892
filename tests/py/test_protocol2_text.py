# SPDX-License-Identifier: Apache-2.0
"""Protocol 2's bytes are pickled as text: _codecs.encode(latin-1 text, 'latin1'), the text stored
as UTF-8 (one byte below 0x80, two bytes 0xC2/0xC3 + continuation above).  The reader checks and
decodes that text eight bytes at a time (pk_latin1_span, latin1_decode): every byte value, at
every position of an 8-byte word, a lead in a word's last byte, and text that is not latin-1 at
each offset, against what Python's own pickle (and Paddle's protocol-2 save) gives."""
import pickle
import struct
import warnings

import numpy as np
import pytest

import pdckpt
from hostile_pickles import gtext, tuple_of, utext

warnings.filterwarnings("ignore")
import paddle  # noqa: E402


def blob_cases():
    rng = np.random.default_rng(7)
    yield bytes(range(256))
    yield bytes(range(255, -1, -1))
    for n in range(0, 40):  # every length around the word size, random bytes
        yield rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    for lead in range(0, 17):  # a high byte (a 2-byte character) at every position of a word
        for high in (0x80, 0xBF, 0xC0, 0xFF):
            yield b"a" * lead + bytes([high]) + b"b" * 9 + bytes([high, high])
    yield b"\x00" * 1000 + rng.integers(128, 256, 333, dtype=np.uint8).tobytes()
    yield rng.integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("proto", [2])
def test_every_byte_at_every_position(tmp_path, proto):
    arrays = {f"a{i}": np.frombuffer(b, np.uint8).copy() for i, b in enumerate(blob_cases())}
    path = tmp_path / "p2.pkl"
    path.write_bytes(pickle.dumps(arrays, protocol=proto))
    got = pdckpt.load(path, return_numpy=True)
    assert list(got) == list(arrays)
    for k, v in arrays.items():
        assert got[k].dtype == v.dtype and got[k].tobytes() == v.tobytes(), k


def test_paddle_protocol2_state_dict_is_read_bit_exactly(tmp_path):
    paddle.seed(3)
    sd = {"w": paddle.randn([512, 384]), "b": paddle.randn([7]).astype("float16"),
          "h": paddle.randn([33, 5]).astype("bfloat16")}
    path = tmp_path / "m.pdparams"
    paddle.save(sd, str(path), protocol=2)
    mine, theirs = pdckpt.load(str(path)), paddle.load(str(path))
    assert list(mine) == list(theirs)
    for k in sd:
        assert mine[k].dtype == theirs[k].dtype and mine[k].name == theirs[k].name
        assert np.array_equal(mine[k].view("int16" if k != "w" else "int32").numpy(),
                              theirs[k].view("int16" if k != "w" else "int32").numpy())


def encode_pickle(raw_text: bytes) -> bytes:
    """_codecs.encode(<BINUNICODE of raw_text>, 'latin1') as a protocol-2 pickle."""
    text = b"X" + struct.pack("<I", len(raw_text)) + raw_text
    return (b"\x80\x02" + gtext("_codecs", "encode") + tuple_of(text, utext("latin1")) + b"R.")


@pytest.mark.parametrize("offset", [0, 1, 6, 7, 8, 9, 15, 16, 23])
@pytest.mark.parametrize("char", ["\u0100", "\u20ac", "\U0001f600"])
def test_text_beyond_latin1_is_refused_at_its_offset(tmp_path, offset, char):
    raw = ("\u00e9" * (offset // 2) + "x" * (offset % 2) + char + "y" * 20).encode()
    path = tmp_path / "bad.pkl"
    path.write_bytes(encode_pickle(raw))
    with pytest.raises(UnicodeEncodeError):
        pickle.loads(path.read_bytes())  # Python refuses it too
    with pytest.raises(pdckpt.FormatError, match=f"below U\\+0100.*at text offset {offset}\\b"):
        pdckpt.load(path, return_numpy=True)


@pytest.mark.parametrize("raw", [
    b"abcdefg\xc3", b"abcdefgh\xc3", b"\xc3abcdefgh", b"abcdefg\x80bcdefgh", b"abc\xc0\x80defgh",
    b"abcdefgh\xe2\x82", b"abcdefgh\xf8\x88\x80\x80\x80", b"\xc3\xa9" * 5 + b"\xa9" + b"x" * 8])
def test_invalid_utf8_is_refused_like_python(tmp_path, raw):
    path = tmp_path / "bad.pkl"
    path.write_bytes(b"\x80\x02X" + struct.pack("<I", len(raw)) + raw + b".")
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(path.read_bytes())
    with pytest.raises(pdckpt.FormatError):
        pdckpt.load(path, return_numpy=True)


def test_text_of_every_script_round_trips(tmp_path):
    keys = ["plain", "caf\u00e9", "\u00ff\u00c0" * 9, "\u4e2d\u6587\u952e" * 3, "mix\u00e9\u4e2d\U0001f600z",
            "\ud800lone", "a" * 7 + "\u00e9", "a" * 8 + "\u20ac"]
    obj = {k: i for i, k in enumerate(keys)}
    path = tmp_path / "keys.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=2))
    assert pdckpt.load(path, return_numpy=True) == obj
