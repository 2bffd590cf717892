# SPDX-License-Identifier: Apache-2.0
"""Every prefix of a valid tensor file and of a named combined file is rejected with exit 1 and
a message naming the file and the offset (no crash, no hang); every golden corrupt file gives
exactly its expected diagnosis through the CLI."""
import re
import struct
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
import refread

GOLDEN = ROOT / "tests" / "golden"


def sample_files():
    lod = refread.write_stream("float32", [3, 1], struct.pack("<3f", 1, 2, 3), lod=([0, 2, 3],))
    w = refread.write_stream("int64", [2, 2], struct.pack("<4q", 1, 2, 3, 4))
    empty = refread.write_stream("float16", [0, 3], b"")
    return lod, lod + w + empty


def expect_rejected(path, args, length):
    proc = run_cli("verify", *args, path, timeout=20)
    assert proc.returncode == 1, (length, proc.stdout, proc.stderr)
    m = re.match(r"pdckpt: (.*?): offset (\d+): ", proc.stderr)
    assert m and m.group(1) == str(path), (length, proc.stderr)
    assert int(m.group(2)) <= length


def test_every_prefix_of_a_tensor_file(tmp_path):
    tensor, _ = sample_files()
    for n in range(len(tensor)):
        path = tmp_path / f"t{n}"
        path.write_bytes(tensor[:n])
        expect_rejected(path, ["--format", "tensor"], n)


def test_every_prefix_of_a_named_combined_file(tmp_path):
    _, combined = sample_files()
    names = ["a", "b", "c"]
    for n in range(len(combined)):
        path = tmp_path / f"c{n}"
        path.write_bytes(combined[:n])
        expect_rejected(path, ["--format", "combined", "--names", ",".join(names)], n)
    whole = tmp_path / "whole"
    whole.write_bytes(combined)
    run_cli("verify", "--names", "a,b,c", "--format", "combined", whole, check=0)


def golden_rows():
    rows = []
    for line in (GOLDEN / "expected.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            rows.append(line.split("\t"))
    return rows


@pytest.mark.parametrize("row", golden_rows(), ids=lambda r: r[0])
def test_golden_diagnosis_through_cli(row):
    name, fmt, names, status, offset, message = row
    path = GOLDEN / name
    if names.startswith("program="):
        args = ["--format", fmt, "--program", GOLDEN / names[len("program="):]]
    else:
        args = ["--format", fmt] + ([] if names == "-" else ["--names", names])
    proc = run_cli("verify", *args, path)
    assert proc.returncode == 1
    where = "" if offset == "-1" else f"offset {offset}: "  # -1: not about a byte of the file
    assert proc.stderr == f"pdckpt: {path}: {where}{message}\n"
