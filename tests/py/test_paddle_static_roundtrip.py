# SPDX-License-Identifier: Apache-2.0
"""Layouts a rewrite must keep, judged by real Paddle 1.8.5, 2.6.2 and 3.x (docs/formats.md,
"Layouts kept through convert").

- paddle.static.save / fluid.save pickle {name: ndarray} as it is, with no name table: pdckpt's
  rewrites (pickle -> pickle, --static-out, both through safetensors) added paddle.save's
  `StructuredToParameterName@@`, so Paddle's load_program_state returned that extra key and
  set_program_state warned about it.  One process per Paddle (paddle_static_rt_worker.py) writes
  every dtype and shape its static API takes, has the CLI rewrite them and loads the rewrites.
- The same checkpoint converted for its program (`--out-program X.pdmodel`) was refused ("found
  no such key": the variables are in its "pdparams" / "pdopt" parts); it is now
  save_persistables(filename=)'s file byte for byte.
- pdckpt's safetensors tree metadata lost an OrderedDict (nested state dicts in a training
  checkpoint) and numpy scalars (np.float32, np.int64, ...), so safetensors -> pickle changed
  the container and the leaves' types; a str with a lone surrogate (which Paddle pickles) was
  refused instead of kept as the tree's hex form; a transposed tensor came back in C order (the
  same values, not Paddle's bytes)."""
import collections
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import PDCKPT_BIN, old_paddle_python, run_cli

WORKER = Path(__file__).with_name("paddle_static_rt_worker.py")


def _run_worker(tag, out):
    import os
    import subprocess
    import sys

    py = sys.executable if tag == "3" else str(old_paddle_python(tag))
    env = {**os.environ, "PYTHONPATH": "", "FLAGS_enable_pir_api": "0"}
    proc = subprocess.run([py, str(WORKER), str(out), str(PDCKPT_BIN)], capture_output=True,
                          text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1:], proc.stdout


@pytest.mark.parametrize("tag", ["3", "26", "18"])
def test_static_saves_rewritten_as_paddle_wrote_them(tag, tmp_path):
    last, out = _run_worker(tag, tmp_path)
    assert last == ["ok"], out
    # and pdckpt reads every form Paddle wrote exactly (dtype, shape, bytes)
    import pdckpt

    truth = json.loads((tmp_path / "truth.json").read_text())

    def same(got, names, what):
        assert sorted(got) == sorted(names), what
        for k in names:
            a = np.asarray(got[k])
            got_k = [a.dtype.str, list(a.shape)]
            assert got_k == truth[k][:2], (what, k, got_k, truth[k])
            import hashlib

            assert hashlib.sha256(a.tobytes()).hexdigest() == truth[k][2], (what, k)

    static = pdckpt.load(str(tmp_path / "ss" / "m"), return_numpy=True)
    same({**static["pdparams"], **static["pdopt"]}, truth, "static save")
    sep = pdckpt.load(str(tmp_path / "sep"), return_numpy=True)
    same(sep, [k for k in truth if k in sep], "save_vars")
    assert len(sep) >= len(truth) - 8
    comb = pdckpt.load(str(tmp_path / "comb" / "params"), names=sorted(truth),
                       return_numpy=True)
    same(comb, truth, "save_vars(filename=)")


def test_safetensors_keeps_ordered_dicts_and_numpy_scalars(paddle_np, tmp_path):
    paddle, _ = paddle_np
    paddle.seed(1)
    net = paddle.nn.Sequential(paddle.nn.Linear(3, 4), paddle.nn.BatchNorm1D(4))
    sched = paddle.optimizer.lr.ReduceOnPlateau(0.1)
    opt = paddle.optimizer.AdamW(sched, parameters=net.parameters())
    net(paddle.randn([2, 3])).mean().backward()
    opt.step()
    sched.step(np.float32(0.25))
    objs = {
        "checkpoint": {"model": net.state_dict(), "opt": opt.state_dict(), "epoch": 3},
        "ordered": collections.OrderedDict([("z", paddle.ones([1])), ("a", paddle.ones([2]))]),
        "scalars": {"w": paddle.ones([2]), "f32": np.float32(1.5), "i64": np.int64(3),
                    "b": np.bool_(True), "f16": np.float16(0.5), "u8": np.uint8(7),
                    "c64": np.complex64(1 - 2j), "u64": np.uint64(2**63 + 5)},
        "arrays": {"a": np.ones((2, 3), "float32"), "b": np.arange(4)},
        "generic OrderedDict of arrays": collections.OrderedDict(b=np.ones(2), a=np.zeros(3)),
        # a lone surrogate in a str key or value (the tree's "x" form): refused as "not UTF-8"
        "lone surrogates": {"k\udc80": "x\ud800", "c": complex(1, -2), "w": paddle.ones([1])},
        # Paddle pickles a transposed tensor's column-major memory as it is (is_fortran): the
        # safetensors file holds C order, the tree marks it, the pickle written back is Paddle's
        "transposed": {"t": paddle.randn([4, 6]).T, "w": paddle.ones([2]),
                       "r": paddle.randn([2, 3, 4]).transpose([2, 1, 0])},
        "F-order arrays": [paddle.ones([2]), np.asfortranarray(np.arange(6.0).reshape(2, 3))],
    }
    for case, obj in objs.items():
        for protocol in (2, 4):
            src = tmp_path / f"{len(case)}_{protocol}.pdparams"
            paddle.save(obj, str(src), protocol=protocol)
            st, back = src.with_suffix(".safetensors"), src.with_suffix(".back.pdparams")
            run_cli("convert", src, st, "--no-fsync", check=0)
            run_cli("convert", st, back, "--no-fsync", "--protocol", protocol,
                    "--numpy-module", "numpy._core", check=0)
            assert back.read_bytes() == src.read_bytes(), (case, protocol)
            again = src.with_suffix(".pp.pdparams")  # and pickle -> pickle keeps the layout
            run_cli("convert", src, again, "--no-fsync", "--protocol", protocol,
                    "--numpy-module", "numpy._core", check=0)
            assert again.read_bytes() == src.read_bytes(), (case, protocol)


def test_tree_metadata_flags_are_checked(tmp_path):
    """A numpy scalar whose dtype cannot hold its value, or unknown dict flags, are refused."""
    import struct

    def st_file(tree):
        meta = {"__metadata__": {"pdckpt.tree": json.dumps(tree)}}
        head = json.dumps(meta).encode()
        head += b" " * (-len(head) % 8)
        p = tmp_path / "t.safetensors"
        p.write_bytes(struct.pack("<Q", len(head)) + head)
        return p

    ok = st_file({"v": 1, "root": {"d": [["a", {"N": ["int8", {"i": "5"}]}]], "f": "op"}})
    assert run_cli("ls", ok, check=0).returncode == 0
    # a column-major tensor is copied once at load: naming it twice would copy it each time
    data = np.arange(6, dtype="<f4").tobytes()
    head = json.dumps({"__metadata__": {"pdckpt.tree": json.dumps(
        {"v": 1, "root": {"l": [{"t": "w", "F": 1}] * 3}})},
        "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}).encode()
    head += b" " * (-len(head) % 8)
    (tmp_path / "twice.safetensors").write_bytes(struct.pack("<Q", len(head)) + head + data)
    proc = run_cli("ls", tmp_path / "twice.safetensors", check=1)
    assert "column-major tensor 'w' named twice" in proc.stderr, proc.stderr
    for bad, said in [({"N": ["int8", {"i": "300"}]}, "whose dtype holds its value"),
                      ({"d": [], "f": "x"}, "dict flags"), ({"t": "w", "F": 2}, '"F":1'),
                      ({"t": "w", "G": 1}, '"n" or "F"')]:
        proc = run_cli("ls", st_file({"v": 1, "root": bad}), check=1)
        assert said in proc.stderr, proc.stderr


def test_convert_says_when_names_are_not_kept(tmp_path):
    """A combined file or a tensor stream has no names: convert said nothing when a dict's keys
    went (the tensors are written in byte-wise name order, which only --names brings back)."""
    import safetensors.numpy

    src = tmp_path / "za.safetensors"
    safetensors.numpy.save_file({"z": np.ones(2, np.float32), "a": np.zeros(3, np.int64)},
                                str(src))
    proc = run_cli("convert", src, tmp_path / "za.pdiparams", check=0)
    assert "stores no names: its 2 tensors are in byte-wise name order" in proc.stderr
    back = run_cli("ls", "--json", "--names", "a,z", tmp_path / "za.pdiparams", check=0)
    assert [t["key"] for t in json.loads(back.stdout)["tensors"]] == [["a"], ["z"]]
    one = tmp_path / "one.safetensors"
    safetensors.numpy.save_file({"w": np.ones(2, np.float32)}, str(one))
    proc = run_cli("convert", one, tmp_path / "w.bin", "--to", "tensor", check=0)
    assert "a tensor stream stores no name" in proc.stderr
    proc = run_cli("convert", one, tmp_path / "w.safetensors", check=0)  # names kept: no note
    assert "note" not in proc.stderr


def test_key_only_formats_say_which_paddle_names_they_drop(paddle_np, tmp_path):
    """A vars-dir or TNUM file stores each tensor under its key: a state dict's Paddle names
    ('0.weight' is 'linear_0.w_0') went without a word (a dygraph-dir already said what it
    renamed)."""
    import warnings

    import pdckpt

    paddle, _ = paddle_np
    net = paddle.nn.Sequential(paddle.nn.Linear(2, 3))
    src = tmp_path / "m.pdparams"
    paddle.save(net.state_dict(), str(src))
    for out, fmt in ((tmp_path / "vd", "vars-dir"), (tmp_path / "m.tnum", "tnum")):
        proc = run_cli("convert", src, out, "--to", fmt, check=0)
        w = net[0].weight.name  # linear_N.w_0
        assert f"'0.weight' keeps its key; not kept: its Paddle name '{w}'" in proc.stderr
        assert f"a {fmt} keeps keys, not Paddle names: 2 tensors lost their" in proc.stderr
        with pytest.warns(UserWarning, match=f"a {fmt} keeps keys, not Paddle names; not kept: "
                          f"'0.weight' -> '{w}'"):
            pdckpt.save(net.state_dict(), str(tmp_path / ("py_" + out.name)), format=fmt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # keys that are the names, names Paddle made up: quiet
        pdckpt.save({"a": np.ones(2, "float32"), "t": paddle.to_tensor([1.0])},
                    str(tmp_path / "plain.tnum"))
    proc = run_cli("convert", tmp_path / "plain.tnum", tmp_path / "plain2", "--to", "vars-dir",
                   check=0)
    assert "note" not in proc.stderr
