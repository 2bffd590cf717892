# SPDX-License-Identifier: Apache-2.0
"""Error messages keep the file, the offset and what was expected, however long and hostile the
names in them (src/core/error_text.c; docs/RELIABILITY.md "Messages keep their tail"): a
safetensors file whose one key is 10 KB of control bytes and whose offsets are wrong, under a
file name of control bytes, through `pdckpt ls` and pdckpt.load."""
import json
import os
import struct

import pytest

import pdckpt
from conftest import run_cli

KEY = "".join(chr(1 + i % 30) for i in range(10000))
EXPECTED = "expected data_offsets spanning 8 bytes, found [0, 4]"


@pytest.fixture
def broken(tmp_path):
    header = json.dumps({KEY: {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}).encode()
    name = "".join(chr(1 + i % 30) for i in range(200)).replace("/", "_") + ".safetensors"
    path = tmp_path / name
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(4))
    return path


def check_line(line, path):
    assert f": offset 9: tensor '\\x01\\x02" in line and line.endswith(f"': {EXPECTED}"), line
    assert "bytes...]" in line  # the key, cut in its middle
    assert not any(ord(c) < 0x20 for c in line), line  # display-safe
    assert line.startswith(os.fsdecode(path.parent))  # the file, its name escaped


def test_the_cli_message_keeps_offset_and_expectation(broken):
    proc = run_cli("ls", broken, check=1)
    line = proc.stderr.rstrip("\n")
    assert line.count("\n") == 0
    check_line(line.removeprefix("pdckpt: "), broken)


def test_the_python_error_keeps_offset_and_expectation(broken):
    with pytest.raises(pdckpt.FormatError) as info:
        pdckpt.load(str(broken))
    e = info.value
    check_line(str(e), broken)
    assert e.offset == 9 and e.source == str(broken)  # the path itself, whole
    assert e.message.endswith(EXPECTED) and len(e.message.encode()) < 512
