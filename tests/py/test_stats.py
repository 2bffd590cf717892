# SPDX-License-Identifier: Apache-2.0
"""`pdckpt stats` and pdckpt.stats(): per-tensor numbers equal NumPy's over the finite elements
for every real dtype (bfloat16 and float8 through ml_dtypes), the CLI's JSON equals the Python
twin, NaN/Inf are named with their role, --check fails on them, and plot_stats draws a PNG."""
import json
import math

import ml_dtypes
import numpy as np
import pytest

import pdckpt
from conftest import run_cli

DTYPES = [np.float32, np.float64, np.float16, ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn,
          ml_dtypes.float8_e5m2, np.int8, np.uint8, np.int32, np.int64, np.bool_]


def expected(arr):
    x = np.asarray(arr).astype(np.float64).ravel()
    finite = x[np.isfinite(x)]
    numbers = dict(zeros=int((finite == 0).sum()), nan=int(np.isnan(x).sum()),
                   pos_inf=int(np.isposinf(x).sum()), neg_inf=int(np.isneginf(x).sum()))
    if finite.size:
        numbers.update(min=finite.min(), max=finite.max(), mean=finite.mean(), std=finite.std())
    return numbers


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    rng = np.random.default_rng(7)
    state = {}
    for dt in DTYPES:
        base = rng.standard_normal(5000) * 3
        if np.dtype(dt).kind == "f" and np.dtype(dt).itemsize > 1 or dt in (
                ml_dtypes.bfloat16, ml_dtypes.float8_e5m2):
            base[[3, 17, 999]] = [np.nan, np.inf, -np.inf]
        state[f"t_{np.dtype(dt).name}"] = base.astype(dt)
    state["empty"] = np.zeros((0, 4), np.float32)
    state["linear_0.w_0_moment1_0"] = np.array([1.0, np.nan], np.float32)
    path = tmp_path_factory.mktemp("stats") / "mixed.safetensors"
    pdckpt.save(state, path)
    return path, state


def test_numbers_equal_numpy_for_every_dtype(mixed):
    path, state = mixed
    table = pdckpt.stats(path)
    assert set(table) == set(state)
    for key, arr in state.items():
        got, want = table[key], expected(arr)
        assert got["dtype"] == np.dtype(arr.dtype).name and got["shape"] == arr.shape
        for field in ("zeros", "nan", "pos_inf", "neg_inf"):
            assert got[field] == want[field], (key, field)
        for field in ("min", "max", "mean", "std"):
            if field not in want:
                assert math.isnan(got[field]), (key, field)
            else:
                assert got[field] == pytest.approx(want[field], rel=1e-9, abs=1e-12), (key, field)


def test_cli_json_is_the_python_twin(mixed):
    path, _ = mixed
    table = pdckpt.stats(path)
    doc = json.loads(run_cli("stats", "--json", path, check=0).stdout)
    assert doc["format"] == "safetensors"
    for row in doc["tensors"]:
        twin = table["/".join(row["key"])]
        for field in ("min", "max", "mean", "std"):
            value = twin[field]
            assert row[field] == (None if math.isnan(value) else pytest.approx(value, rel=1e-15))
        assert row["nan"] == twin["nan"] and row["zeros"] == twin["zeros"]
    assert sorted(map(tuple, doc["nonfinite"])) == sorted(
        tuple(table[k]["key"]) for k in pdckpt.nonfinite(table))


def test_summary_names_nonfinite_tensors_and_role(mixed, tmp_path):
    path, _ = mixed
    text = run_cli("stats", path, check=0).stdout
    assert "linear_0.w_0_moment1_0 (optimizer state): 1 NaN" in text
    assert "t_float32 (weights): 1 NaN, 1 +Inf, 1 -Inf of 5000" in text
    assert run_cli("stats", "--check", path).returncode == 1
    clean = tmp_path / "clean.pdparams"
    pdckpt.save({"w": np.ones(3, np.float32)}, clean)
    out = run_cli("stats", "--check", clean, check=0).stdout
    assert "summary: no NaN or Inf in 1 tensors" in out


def test_complex_has_no_order_and_bad_input_is_an_error(tmp_path):
    path = tmp_path / "c.pdparams"
    pdckpt.save({"c": np.ones(2, np.complex64), "w": np.arange(3, dtype=np.float32)}, path)
    assert pdckpt.stats(path)["c"]["min"] is None
    assert "(no order: complex)" in run_cli("stats", path, check=0).stdout
    bad = tmp_path / "bad.pdparams"
    bad.write_bytes(b"\x80\x04garbage")
    proc = run_cli("stats", bad, check=1)
    assert str(bad) in proc.stderr
    with pytest.raises(pdckpt.Error):
        pdckpt.stats(bad)


def test_plot_stats_writes_a_png(mixed, tmp_path):
    path, _ = mixed
    png = tmp_path / "stats.png"
    pdckpt.plot_stats(path, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
