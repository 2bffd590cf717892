# SPDX-License-Identifier: Apache-2.0
"""Programs and inference models against real Paddle 3.3 (CPU), in both IRs: the legacy
ProgramDesc IR (FLAGS_enable_pir_api=0: .pdmodel / __model__) and PIR (.json).

Paddle builds small static programs (fc, conv + batch norm, embedding, an Adam-trained MLP) and
saves them (paddle_static_worker.py export); pdckpt must list every persistable exactly as
Paddle's scope holds it (names, dtypes, shapes, bytes).  Then pdckpt writes new random weights
for the same programs (a .pdiparams, a 1.x directory of variable files, static saves to a
directory, one file and memory); Paddle loads them (paddle_static_worker.py check), the models
run and their outputs equal a numpy forward pass with those weights, and every static variable
Paddle loads equals what pdckpt wrote.  One Paddle process per mode and phase."""
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conftest import BUILD, FIXTURES, ls_json, run_cli

HERE = Path(__file__).resolve().parent
WORKER = HERE / "paddle_static_worker.py"
TOOL = BUILD / "tests" / "pdckpt_static_tool"
KINDS = ("mlp", "conv", "emb")


def worker(mode, phase, out):
    env = dict(os.environ, GLOG_minloglevel="3")
    if mode == "legacy":
        env["FLAGS_enable_pir_api"] = "0"
    else:
        env.pop("FLAGS_enable_pir_api", None)
    proc = subprocess.run([sys.executable, str(WORKER), phase, str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.fixture(scope="module", params=["legacy", "pir"])
def exported(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    worker(request.param, "export", out)
    return request.param, out, json.loads((out / "manifest.json").read_text())


def digest(arr):
    return {"dtype": str(arr.dtype), "shape": list(arr.shape),
            "sha256": hashlib.sha256(np.array(arr, order="C").tobytes()).hexdigest()}


def listing(path, *extra):
    """name -> {dtype, shape, sha256} of pdckpt's listing (and its format)."""
    got = ls_json(path, "--hash", *extra)
    return got["format"], {t["key"][0]: {"dtype": t["dtype"], "shape": t["shape"],
                                         "sha256": t["sha256"]} for t in got["tensors"]}


def program_file(base, manifest_kind):
    return base / ("model" + manifest_kind["ext"])


# ---- Paddle writes, pdckpt reads ----

def test_inference_models_list_exactly(exported):
    mode, out, manifest = exported
    for kind in KINDS:
        want = manifest[kind]["vars"]
        fmt, got = listing(out / kind / "infer" / "model")  # the path prefix
        assert fmt == "inference" and got == want, kind
        assert list(got) == sorted(want)  # the program's (byte-wise sorted) order
        fmt, got = listing(out / kind / "infer")  # the directory
        assert got == want
        fmt, got = listing(out / kind / "sep")  # __model__ / __model__.json + variable files
        assert fmt == "inference" and got == want
        # pdckpt rewrites Paddle's own parameters byte for byte
        program = program_file(out / kind / "infer", manifest[kind])
        again = out / "rewritten" / kind / "model.pdiparams"
        run_cli("convert", out / kind / "infer" / "model", again, "--out-program", program, check=0)
        assert again.read_bytes() == (out / kind / "infer" / "model.pdiparams").read_bytes()
        prog = ls_json(program)
        assert prog["format"] == ("pir-json" if mode == "pir" else "program")
        assert prog["persistables"] == sorted(want)
        declared = {v["name"]: v for v in prog["variables"] if v["saved"]}
        assert {n: (v["dtype"], v["shape"]) for n, v in declared.items()} == {
            n: (w["dtype"], w["shape"]) for n, w in want.items()}


def test_static_saves_read_exactly(exported, tmp_path):
    mode, out, manifest = exported
    want = manifest["static"]["vars"]
    program = next((out / "static").glob("main.*"))
    fmt, got = listing(out / "static" / "files", "--program", program)
    assert fmt == "vars-dir" and got == want
    fmt, got = listing(out / "static" / "one" / "all", "--program", program)
    assert fmt == "combined" and got == want
    proc = run_cli("verify", out / "static" / "one" / "all", "--program", program)
    assert proc.returncode == 0 and f"{len(want)} tensors" in proc.stdout
    if mode == "legacy":  # Paddle 3.3's PIR save_vars cannot save to memory (see README)
        run_tool("deserialize", program, out / "static" / "memory.bin", tmp_path / "m.safetensors")
        got = {k: digest(v) for k, v in load_file(tmp_path / "m.safetensors").items()}
        assert got == want


def test_selected_rows_and_jit_info(exported):
    mode, out, manifest = exported
    if mode == "pir":  # PIR's jit.save writes no .pdiparams.info (as the Paddle 3 fixture shows)
        assert manifest["jit"]["files"] == ["net.json", "net.pdiparams"]
        return
    got = ls_json(out / "sr" / "files", "--program", out / "sr" / "sr.pdmodel", "--hash")
    tensors = {tuple(t["key"]): t for t in got["tensors"]}
    sr = manifest["sr"]
    assert tensors[("table", "value")]["sha256"] == sr["value"]["sha256"]
    assert tensors[("table", "rows")]["sha256"] == hashlib.sha256(
        np.array(sr["rows"], "int64").tobytes()).hexdigest()
    assert got["scalars"] == [{"key": ["table", "height"], "value": sr["height"]}]
    info = pickle.loads((out / "jit" / "net.pdiparams.info").read_bytes())
    listed = ls_json(out / "jit" / "net")
    assert {t["key"][0]: t["structured_name"] for t in listed["tensors"]} == {
        name: entry["structured_name"] for name, entry in info.items()}


# ---- pdckpt writes, Paddle reads ----

def run_tool(*args):
    proc = subprocess.run([str(TOOL), *map(str, args)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def random_state(rng, variables, positive=()):
    state = {}
    for name, v in variables.items():
        arr = np.array(rng.standard_normal(v["shape"]), dtype=v["dtype"])  # 0-d stays 0-d
        if name in positive:
            arr = np.abs(arr) + np.array(0.5, dtype=arr.dtype)  # batch norm variance
        state[name] = arr
    return state


def write_inference(mode, out, manifest, rng):
    weights = {}
    for kind in KINDS:
        roles = manifest[kind]["roles"]
        state = random_state(rng, manifest[kind]["vars"], positive=[roles.get("var")])
        weights[kind] = state
        save_file(state, out / f"{kind}.safetensors")
        dest = out / "pdckpt" / kind / "infer"
        dest.mkdir(parents=True)
        prog = program_file(dest, manifest[kind])
        shutil.copy(program_file(out / kind / "infer", manifest[kind]), prog)
        run_cli("convert", out / f"{kind}.safetensors", dest / "model.pdiparams",
                "--out-program", prog, check=0)
        if mode == "legacy":  # into an existing directory next to its __model__
            sep = out / "pdckpt" / kind / "sep"
            sep.mkdir()
            shutil.copy(out / kind / "sep" / "__model__", sep / "__model__")
            run_cli("convert", out / f"{kind}.safetensors", sep, "--to", "vars-dir",
                    "--out-program", sep / "__model__", check=0)
    return weights


def write_static(mode, out, manifest, rng):
    state = random_state(rng, manifest["static"]["vars"])
    save_file(state, out / "static.safetensors")
    program = next((out / "static").glob("main.*"))
    dest = out / "pdckpt" / "static"
    dest.mkdir(parents=True)
    run_cli("convert", out / "static.safetensors", dest / "files", "--to", "vars-dir",
            "--out-program", program, check=0)
    run_cli("convert", out / "static.safetensors", dest / "one" / "all", "--to", "combined",
            "--out-program", program, check=0)
    if mode == "legacy":
        run_tool("serialize", program, out / "static.safetensors", dest / "memory.bin")
        assert (dest / "memory.bin").read_bytes() == (dest / "one" / "all").read_bytes()
        # SelectedRows: pdckpt re-writes Paddle's variable files; byte-identical, and Paddle loads them
        run_cli("convert", out / "sr" / "files", out / "pdckpt" / "sr", "--program",
                out / "sr" / "sr.pdmodel", "--to", "vars-dir", "--out-program",
                out / "sr" / "sr.pdmodel", check=0)
        for name in ("table", "w"):
            assert (out / "pdckpt" / "sr" / name).read_bytes() == (out / "sr" / "files" / name).read_bytes()
    return state


@pytest.fixture(scope="module")
def written(exported):
    mode, out, manifest = exported
    rng = np.random.default_rng(11)
    weights = write_inference(mode, out, manifest, rng)
    static = write_static(mode, out, manifest, rng)
    worker(mode, "check", out)
    return mode, out, manifest, weights, static, json.loads((out / "check.json").read_text())


def inputs():
    rng = np.random.default_rng(7)  # the same inputs as the worker's
    return {"mlp": rng.standard_normal((3, 4)).astype("float32"),
            "conv": rng.standard_normal((2, 1, 6, 6)).astype("float32"),
            "emb": rng.integers(0, 10, (3, 5)).astype("int64")}


def forward(kind, x, w, roles):
    p = {role: w[name].astype("float64") for role, name in roles.items()}
    if kind == "mlp":
        return np.maximum(x @ p["w1"] + p["b1"], 0) @ p["w2"] + p["b2"]
    if kind == "emb":
        return p["table"][x].mean(axis=1) @ p["w"] + p["b"]
    n, _, h, wd = x.shape
    k = p["cw"].shape[-1]
    y = np.zeros((n, p["cw"].shape[0], h - k + 1, wd - k + 1))
    for i in range(h - k + 1):
        for j in range(wd - k + 1):
            y[:, :, i, j] = np.einsum("nchw,ochw->no", x[:, :, i:i + k, j:j + k], p["cw"])
    y += p["cb"][None, :, None, None]
    bn = lambda a: a[None, :, None, None]  # noqa: E731
    y = (y - bn(p["mean"])) / np.sqrt(bn(p["var"]) + 1e-5) * bn(p["scale"]) + bn(p["shift"])
    return np.maximum(y, 0).reshape(n, -1) @ p["fw"] + p["fb"]


def test_paddle_runs_models_with_pdckpt_weights(written):
    mode, out, manifest, weights, static, check = written
    for kind, x in inputs().items():
        want = forward(kind, x.astype("float64") if kind != "emb" else x, weights[kind],
                       manifest[kind]["roles"])
        forms = ["infer"] + (["sep"] if mode == "legacy" else [])
        for form in forms:
            got = np.array(check["inference"][kind][form])
            assert got.shape == want.shape, (kind, form)
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=f"{kind} {form}")


def test_paddle_loads_pdckpt_static_saves(written):
    mode, out, manifest, weights, static, check = written
    want = {name: digest(arr) for name, arr in static.items()}
    forms = ["files", "one"] + (["memory"] if mode == "legacy" else [])
    for form in forms:
        assert check["static"][form] == want, form
    if mode == "legacy":
        assert check["static"]["sr"] == {k: manifest["sr"][k] for k in ("rows", "height", "value", "w")}
