# SPDX-License-Identifier: Apache-2.0
"""SelectedRows streams: what a valid one satisfies (docs/formats.md, "SelectedRows").

Real Paddle writes them (1.8 save_persistables of a SELECTED_ROWS table, 2.6 paddle.save with
use_binary_format=True; both run here in their venvs): pdckpt reads each exactly, writes it back
byte for byte, and that Paddle reads the re-write.  Crafted streams that break a rule -- a negative
height, a row outside [0, height), more rows than the value tensor has -- are refused at the
offset of the field, naming the file and what was expected (Paddle's own reader checks none of
it; its kernels then index out of bounds), by pdckpt.load and by `pdckpt ls`.  A save of such a
SelectedRows is refused too, and writes nothing."""
import json
import shutil
import struct

import numpy as np
import paddle
import pytest

import pdckpt
from conftest import run_cli, run_old_paddle

from pathlib import Path

WORKER = Path(__file__).with_name("selected_rows_worker.py")
core = paddle.base.core


def describe(sr):
    value = np.array(sr.get_tensor())
    return {"rows": [int(r) for r in sr.rows()], "height": int(sr.height()),
            "shape": list(value.shape), "value": value.ravel().tolist()}


def rewrite(src, dst):
    """pdckpt reads Paddle's file and writes it again (as paddle.save would)."""
    pdckpt.save(pdckpt.load(str(src)), str(dst), use_binary_format=True)
    assert dst.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("tag", ["18", "26"])
def test_real_paddle_selected_rows_read_exactly_and_written_back(tmp_path, tag):
    run_old_paddle(tag, WORKER, f"write{tag}", tmp_path)
    truth = json.loads((tmp_path / "truth.json").read_text())
    back = tmp_path / "back"
    if tag == "18":  # the program's directory, its SELECTED_ROWS table re-written by pdckpt
        shutil.copytree(tmp_path / "vars", back)
        files = {"table": tmp_path / "vars" / "table"}
    else:
        back.mkdir()
        files = {name: tmp_path / name for name in truth}
    assert truth["table"]["rows"] == [] and truth["table"]["shape"][0] > 0  # capacity, no ids
    for name, path in files.items():
        assert describe(pdckpt.load(str(path))) == truth[name]
        rewrite(path, back / name)
    got = run_old_paddle(tag, WORKER, f"read{tag}", tmp_path).stdout
    assert json.loads(got.strip().splitlines()[-1]) == truth


# ---- crafted streams -------------------------------------------------------------------------

def inner_tensor(value):
    """Paddle's inner tensor stream: version, TensorDesc (FP32 = 5, dims unpacked), data."""
    desc = b"\x08\x05" + b"".join(b"\x10" + bytes([d]) for d in value.shape)
    return struct.pack("<Ii", 0, len(desc)) + desc + value.astype("<f4").tobytes()


def stream(rows, height, value):
    return (struct.pack("<IQ", 0, len(rows)) + struct.pack(f"<{len(rows)}q", *rows) +
            struct.pack("<q", height) + inner_tensor(value))


BROKEN = {  # name: (rows, height, value, offset of the bad field, what was expected)
    "negative height": ([], -1, np.zeros((0, 3)), 12, "expected SelectedRows height >= 0, found -1"),
    "row past height": ([0, 10], 10, np.zeros((2, 3)), 20,
                        "expected SelectedRows row 1 in [0, height 10), found 10"),
    "negative row": ([-3], 4, np.zeros((1, 3)), 12,
                     "expected SelectedRows row 0 in [0, height 4), found -3"),
    "more rows than values": ([0, 1, 2], 4, np.zeros((2, 3)), 44,
                              "with at least 3 rows (one per stored row), found 2 dims, first 2"),
    "rows with a 0-d value": ([0], 1, np.zeros(()), 28,
                              "with at least 1 rows (one per stored row), found 0 dims"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_selected_rows_is_refused_at_its_offset(tmp_path, case):
    rows, height, value, offset, expected = BROKEN[case]
    path = tmp_path / "sr"
    path.write_bytes(stream(rows, height, value))
    assert list(paddle.load(str(path)).rows()) == rows  # Paddle's reader takes it as it is
    with pytest.raises(pdckpt.FormatError) as info:
        pdckpt.load(str(path))
    e = info.value
    assert e.source == str(path) and e.offset == offset and expected in e.message, str(e)
    assert str(e).startswith(f"{path}: offset {offset}: ")
    proc = run_cli("ls", path, check=1)
    assert f"{path}: offset {offset}: " in proc.stderr and expected in proc.stderr


def test_a_valid_crafted_stream_loads(tmp_path):
    # the rules' edges: the last row, repeats, fewer rows than values, height 0 with no rows
    for rows, height, n in (([4, 4, 0], 5, 3), ([2], 3, 7), ([], 0, 0)):
        path = tmp_path / "sr"
        path.write_bytes(stream(rows, height, np.ones((n, 2))))
        got = pdckpt.load(str(path))
        assert list(got.rows()) == rows and got.height() == height
        assert np.array(got.get_tensor()).shape == (n, 2)


@pytest.mark.parametrize("rows, height, n", [([3], 3, 1), ([0], -2, 1), ([0, 1], 4, 1)])
def test_saving_a_selected_rows_pdckpt_would_refuse_writes_nothing(tmp_path, rows, height, n):
    sr = core.SelectedRows(rows, height)
    sr.get_tensor().set(np.ones((n, 2), np.float32), paddle.CPUPlace())
    with pytest.raises(pdckpt.ArgumentError, match="every row in \\[0, height\\)"):
        pdckpt.save(sr, str(tmp_path / "sr"), use_binary_format=True)
    assert not (tmp_path / "sr").exists()
