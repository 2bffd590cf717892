# SPDX-License-Identifier: Apache-2.0
"""Issue 19's interop matrix, against real Paddle 3.x (the venv's): every format pdckpt writes
(pickle, safetensors, combined .pdiparams, vars-dir, tnum) x {fp32, fp16, bf16, float8, int64,
bool, complex64, 0-d, empty} x {state dict, optimizer state with master_weights and
LR_Scheduler, nested dict}.  Each source is what real Paddle writes (paddle.save; float8, which a
pickle cannot hold, comes from pdckpt.save to safetensors), each cell converts it with the CLI
and back, and the result must list exactly like the source -- keys, nesting, dtypes, shapes,
SHA-256 of the bytes, non-tensor values, and Paddle names where the format keeps names (pickle,
safetensors) -- or the conversion must refuse, naming what the target cannot hold.  Small tensors
keep the 135 cells fast."""
import warnings

import numpy as np
import pytest

from conftest import ls_json, run_cli

warnings.filterwarnings("ignore")
import paddle  # noqa: E402

import pdckpt  # noqa: E402

DTYPES = ["float32", "float16", "bfloat16", "float8_e4m3fn", "int64", "bool", "complex64", "0-d",
          "empty"]
TREES = ["state", "optimizer", "nested"]
TARGETS = {"pickle": "out.pdparams", "safetensors": "out.safetensors", "combined": "out.pdiparams",
           "vars-dir": "out_vars", "tnum": "out.tnum"}
NAMED = {"pickle", "safetensors"}  # formats that keep a Paddle name apart from the key


def tensor(dtype, seed):
    rng = np.random.default_rng(seed)
    if dtype == "0-d":
        return paddle.to_tensor(np.float32(rng.standard_normal()))
    if dtype == "empty":
        return paddle.zeros([0, 3], dtype="float32")
    base = paddle.to_tensor(rng.standard_normal((2, 3)).astype(np.float32) * 4)
    if dtype == "complex64":
        return paddle.complex(base, -base)
    if dtype == "bool":
        return base > 0
    return base.astype(dtype)


def tree(kind, dtype):
    t, f32 = tensor(dtype, 1), tensor("float32", 2)
    if kind == "state":
        return {"linear.weight": t, "linear.bias": f32}
    if kind == "optimizer":  # what an AMP optimizer's state_dict holds
        return {"linear_0.w_0_moment1_0": t, "master_weights": {"linear_0.w_0": f32},
                "LR_Scheduler": {"last_epoch": 3, "last_lr": 0.05}}
    return {"model": {"encoder": {"w": t}, "head": [f32]}}


def expected_refusal(target, kind, dtype):
    """The part of the error a refusal must contain, or None when the round trip must succeed."""
    if target in ("combined", "vars-dir", "tnum") and kind != "state":
        return "nested dict"  # a flat list of tensors cannot hold the nesting
    if target == "pickle" and dtype == "float8_e4m3fn":
        return "float8_e4m3fn, which a pickle holds as int8"
    return None


def listing(path, *extra, names=True):
    got = ls_json(path, "--hash", *extra)
    rows = []
    for t in got["tensors"]:
        row = dict(t)
        if not names:
            row.pop("name", None)
        rows.append(row)
    scalars = [s for s in got["scalars"] if s["key"][0] != "StructuredToParameterName@@"]
    return sorted(rows, key=lambda r: r["key"]), scalars


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """(tree kind, dtype) -> the source file real Paddle (or, for float8, pdckpt) wrote."""
    root = tmp_path_factory.mktemp("matrix_sources")
    out = {}
    for kind in TREES:
        for dtype in DTYPES:
            obj = tree(kind, dtype)
            if dtype == "float8_e4m3fn":  # paddle.save would store int8 (and load int8)
                path = root / f"{kind}_{dtype}.safetensors"
                pdckpt.save(obj, path)
            else:
                path = root / f"{kind}_{dtype}.pdparams"
                paddle.save(obj, str(path))
            out[kind, dtype] = path
    return out


def back_args(target, written):
    """Reading a target back: a combined file needs its names, in the order it stores them
    (byte-wise sorted, as Paddle's save_combine does)."""
    if target != "combined":
        return ()
    return ("--names", ",".join(sorted(written)))


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("kind", TREES)
def test_round_trip_or_named_refusal(tmp_path, sources, target, kind):
    for dtype in DTYPES:
        src = sources[kind, dtype]
        out = tmp_path / f"{dtype}_{TARGETS[target]}"
        to = ("--to", target) if target in ("vars-dir", "tnum") else ()
        proc = run_cli("convert", src, out, *to, "--no-fsync")
        refusal = expected_refusal(target, kind, dtype)
        cell = f"{kind} x {dtype} -> {target}"
        if refusal:
            assert proc.returncode == 1, (cell, proc.stdout)
            assert refusal in proc.stderr, (cell, proc.stderr)
            assert not out.exists(), cell  # nothing half-written
            continue
        assert proc.returncode == 0, (cell, proc.stderr)
        want = listing(src, names=target in NAMED)
        written = [] if target != "combined" else \
            [".".join(map(str, r["key"])) for r in ls_json(src)["tensors"]]
        back = tmp_path / f"{dtype}_back{src.suffix}"
        run_cli("convert", out, back, *back_args(target, written), "--no-fsync", check=0)
        assert listing(back, names=target in NAMED) == want, cell
        if back.suffix == ".pdparams":  # Paddle itself reads the round-tripped file
            theirs, ours = paddle.load(str(src)), paddle.load(str(back))
            assert sorted(theirs) == sorted(ours), cell
