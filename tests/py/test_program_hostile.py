# SPDX-License-Identifier: Apache-2.0
"""Hostile ProgramDesc block structures.  pdckpt.load of a program hands its bytes to Paddle
(Program.parse_from_string), whose C++ indexes blocks by the numbers in the file unchecked: a
sub_block attribute past the last block killed the process with SIGSEGV, and blocks whose parents
form a cycle made it loop forever (found by the attack pass).  pdckpt now refuses both, with the
block's offset, before Paddle sees the bytes; real programs (one with while/conditional blocks)
still load.  The loads run in a child process, so a regression shows as a crash, not a dead
test run."""
import json
import subprocess
import sys

import pytest

from conftest import FIXTURES, PY_STAGE, run_cli


def varint(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        if not n:
            return out + bytes([b])
        out += bytes([b | 0x80])


def field(num, wire, payload):
    key = varint(num << 3 | wire)
    return key + (varint(payload) if wire == 0 else varint(len(payload)) + payload)


NONE = 2**64 - 1  # int32 -1 on the wire


def block(idx, parent, ops=(), forward=None):
    body = field(1, 0, idx) + field(2, 0, parent) + b"".join(field(4, 2, o) for o in ops)
    return field(1, 2, body + (field(5, 0, forward) if forward is not None else b""))


def op(kind, attr_name, attr_type, value_field, value):
    attr = field(1, 2, attr_name.encode()) + field(2, 0, attr_type) + field(value_field, 0, value)
    return field(3, 2, kind.encode()) + field(4, 2, attr)


CASES = {  # name: (bytes, what the error says)
    "sub_block_past_the_end": (
        block(0, NONE, [op("while", "sub_block", 8, 12, 99999)]),
        "block 0, op 0 (while): expected attribute 'sub_block' to name one of the program's 1 "
        "blocks, found 99999"),
    "blocks_attr_negative": (
        block(0, NONE) + block(1, 0, [op("cond", "blocks", 10, 14, NONE)]),
        "block 1, op 0 (cond): expected attribute 'blocks' to name one of the program's 2 blocks, "
        "found -1"),
    "parent_cycle": (
        block(0, NONE) + block(1, 2) + block(2, 1),
        "block 1: expected parent_idx to name an earlier block, found 2"),
    "block_0_with_a_parent": (block(0, 0), "block 0: expected parent_idx -1, found 0"),
    "idx_out_of_order": (block(0, NONE) + block(5, 0),
                         "block 1: expected idx equal to its position, found 5"),
    "forward_block_past_the_end": (
        block(0, NONE) + block(1, 0, forward=7),
        "block 1: expected forward_block_idx to be -1 or name a block, found 7"),
}

def block_offsets(data):
    """Where each top-level field (every one here is a block) starts."""
    offsets, at = [], 0
    while at < len(data):
        offsets.append(at)
        at += 1  # the tag (field 1, length-delimited): one byte
        length, shift = 0, 0
        while True:
            byte = data[at]
            at += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        at += length
    return offsets


CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import pdckpt
out = {}
for path in sys.argv[2:]:
    try:
        r = pdckpt.load(path)
        out[path] = ["ok", type(r).__name__]
    except pdckpt.Error as e:
        out[path] = [type(e).__name__, str(e), e.offset]
print(json.dumps(out))
"""


def load_in_child(paths):
    proc = subprocess.run([sys.executable, "-c", CHILD, str(PY_STAGE), *map(str, paths)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"the loading process died ({proc.returncode}): {proc.stderr[-800:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile-programs")
    paths = {}
    for name, (data, _) in CASES.items():
        paths[name] = d / f"{name}.pdmodel"
        paths[name].write_bytes(data)
    return paths


def test_load_refuses_bad_block_structure_before_paddle(hostile):
    got = load_in_child(hostile.values())
    for name, (data, message) in CASES.items():
        kind, text, at = got[str(hostile[name])]
        assert kind == "FormatError", (name, text)
        assert text.startswith(f"{hostile[name]}: offset {at}: ") and message in text, (name, text)
        bad = int(message.split()[1].rstrip(":,"))  # "block N..."
        assert at == block_offsets(data)[bad], (name, at)


def test_cli_says_the_same(hostile):
    for name, (_, message) in CASES.items():
        proc = run_cli("ls", hostile[name])
        assert proc.returncode == 1 and message in proc.stderr, (name, proc.stderr)


def test_valid_block_structures_still_read(tmp_path):
    """A sub_block naming a later block, blocks_idx, forward_block_idx, and every real program
    (one of them with while / conditional blocks) pass the check."""
    valid = (block(0, NONE, [op("conditional_block", "sub_block", 8, 12, 1)])
             + block(1, 0, [op("while", "blocks", 10, 14, 2)]) + block(2, 1, forward=1))
    path = tmp_path / "valid-blocks.pdmodel"
    path.write_bytes(valid)
    proc = run_cli("ls", path)
    assert proc.returncode == 0 and "3 blocks, 2 ops" in proc.stdout, proc.stderr
    real = sorted(p for p in FIXTURES.rglob("*") if p.name == "__model__" or p.suffix == ".pdmodel")
    assert any(b"sub_block" in p.read_bytes() for p in real)
    for p in real:
        if p.parent.name.startswith("luotao1-example-2018-01"):
            continue  # Fluid 0.11's pickled __model__: refused for what it is
        proc = run_cli("ls", p)
        assert proc.returncode == 0, (p, proc.stderr)


SWAP_CHILD = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
import pdckpt
path, swap, hostile = sys.argv[2], sys.argv[3], sys.argv[4]
real = pdckpt._open_tree
def open_then_swap(src, cfg, **kw):  # the file swapped right after pdckpt checked it
    tree = real(src, cfg, **kw)
    if isinstance(src, str):
        os.unlink(path)
        os.mkfifo(path) if swap == "fifo" else open(path, "wb").write(open(hostile, "rb").read())
    return tree
pdckpt._open_tree = open_then_swap
try:
    pdckpt.load(path)
    print("loaded")
except pdckpt.Error as e:
    print(type(e).__name__, e)
"""


@pytest.mark.parametrize("swap", ["fifo", "hostile"])
def test_a_program_swapped_after_the_check_never_reaches_paddle(tmp_path, hostile, swap):
    """pdckpt.load of a program checks it, then hands Paddle the file's bytes: they were read by
    a second, plain open of the path, so a FIFO put there meanwhile hung the load, and a program
    Paddle crashes on reached it unchecked.  Now the bytes are read without blocking and checked
    again before Paddle parses them."""
    real = FIXTURES / "program-only-pphgnetv2-paddle2.6.2"
    path = tmp_path / "model.pdmodel"
    path.write_bytes(next(real.glob("*.pdmodel")).read_bytes())
    proc = subprocess.run([sys.executable, "-c", SWAP_CHILD, str(PY_STAGE), str(path), swap,
                           str(hostile["sub_block_past_the_end"])],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"the loading process died ({proc.returncode}): {proc.stderr[-800:]}"
    out = proc.stdout.strip().splitlines()[-1]
    want = ("ArgumentError", "a regular file") if swap == "fifo" else ("FormatError",
                                                                        "changed after it was checked")
    assert out.startswith(f"{want[0]} {path}: ") and want[1] in out, out
