# SPDX-License-Identifier: Apache-2.0
"""Issue 19 items 1 and 3 against real Paddle: the dtype pdckpt gives a value is the dtype Paddle
gives it, in C (the CLI), in Python and in every writer; what a format cannot give back is refused
with the tensor named, and --reinterpret / reinterpret= says what bits mean; Paddle's nested
(name, ndarray) tensors are tensors in the tree.

What real Paddle 3.3 does (checked here, not assumed): paddle.save pickles a bfloat16 tensor as a
uint16 array and float8 as an int8 array; paddle.load gives bfloat16 (paddle.to_tensor makes any
uint16 array bfloat16) and int8 (float8 is lost by Paddle itself)."""
import json
import struct
import warnings

import ml_dtypes
import numpy as np
import pytest

from conftest import ls_json, run_cli
import refread

warnings.filterwarnings("ignore")
import paddle  # noqa: E402

import pdckpt  # noqa: E402


def bf16(values):
    return paddle.to_tensor(np.asarray(values, np.float32)).astype("bfloat16")


def st_dtypes(path):
    """The dtypes a safetensors header declares, read here without pdckpt."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    return {k: v["dtype"] for k, v in header.items() if k != "__metadata__"}


def rows(path, *extra):
    return {"/".join(map(str, t["key"])): t for t in ls_json(path, *extra)["tensors"]}


@pytest.fixture
def bf16_files(tmp_path):
    """A state-dict-path file and a generic-path file (nested dict) holding bf16 tensors."""
    w = bf16([[1.5, -2.0], [3.0, 0.25]])
    state = tmp_path / "state.pdparams"
    paddle.save({"w": w}, str(state))
    generic = tmp_path / "generic.pdopt"
    paddle.save({"w": w, "nested": {"inner": bf16([7.0])}}, str(generic))
    return state, generic


def test_paddle_gives_bfloat16_and_so_does_pdckpt(bf16_files):
    for path in bf16_files:
        loaded = paddle.load(str(path))
        assert loaded["w"].dtype == paddle.bfloat16  # Paddle's own answer
        assert rows(path)["w"]["dtype"] == "bfloat16"  # the C tree (was uint16)
        assert pdckpt.load(path)["w"].dtype == paddle.bfloat16
        assert pdckpt.open(path).tensor("w").dtype == "bfloat16"
    assert rows(bf16_files[1])["nested/inner"]["dtype"] == "bfloat16"


def test_cli_and_python_write_BF16_safetensors(tmp_path, bf16_files):
    for path in bf16_files:
        cli_out, py_out = tmp_path / f"{path.stem}.cli.safetensors", tmp_path / f"{path.stem}.py.safetensors"
        run_cli("convert", path, cli_out, check=0)
        pdckpt.save(pdckpt.load(path, return_numpy=False), py_out)
        assert set(st_dtypes(cli_out).values()) == {"BF16"}  # was U16 from the CLI
        assert st_dtypes(cli_out) == st_dtypes(py_out)
        from safetensors.paddle import load_file

        back = load_file(str(cli_out))
        assert back["w"].dtype == paddle.bfloat16
        np.testing.assert_array_equal(back["w"].astype("float32").numpy(),
                                      paddle.load(str(path))["w"].astype("float32").numpy())


def test_bf16_converts_to_paddles_binary_formats(tmp_path, bf16_files):
    state = bf16_files[0]
    want = paddle.load(str(state))["w"]
    run_cli("convert", state, tmp_path / "w.pdiparams", check=0)  # failed: "no VarType code"
    (stream,) = refread.read_file(tmp_path / "w.pdiparams")  # VarType BF16 (22), read without us
    assert stream["dtype"] == "bfloat16" and stream["shape"] == [2, 2]
    assert stream["data"] == want.numpy().tobytes()
    run_cli("convert", state, tmp_path / "vars", "--to", "vars-dir", check=0)
    got = paddle.load(str(tmp_path / "vars" / "w"))  # Paddle's own reader of the tensor file
    assert got.dtype == paddle.bfloat16
    assert got.numpy().tobytes() == want.numpy().tobytes()
    run_cli("convert", state, tmp_path / "w.tnum", "--to", "tnum", check=0)
    assert rows(tmp_path / "w.tnum")["w"]["dtype"] == "bfloat16"


def test_float8_is_int8_in_a_pickle_as_paddle_loads_it(tmp_path):
    t = paddle.to_tensor(np.array([1.5, 2.0, -3.0], np.float32)).astype("float8_e4m3fn")
    path = tmp_path / "f8.pdparams"
    paddle.save({"f": t}, str(path))
    assert paddle.load(str(path))["f"].dtype == paddle.int8  # Paddle loses float8 here
    assert rows(path)["f"]["dtype"] == "int8"
    # the user who knows the bits says so, and gets float8 where a format holds it
    run_cli("convert", path, tmp_path / "f8.safetensors", "--reinterpret", "int8=float8_e4m3fn",
            check=0)
    assert st_dtypes(tmp_path / "f8.safetensors") == {"f": "F8_E4M3"}
    from safetensors.paddle import load_file

    assert load_file(str(tmp_path / "f8.safetensors"))["f"].dtype == paddle.float8_e4m3fn
    # float8 -> pickle would come back int8: refused, naming the tensor, unless asked
    proc = run_cli("convert", tmp_path / "f8.safetensors", tmp_path / "back.pdparams", check=1)
    assert "'f'" in proc.stderr and "float8_e4m3fn" in proc.stderr and "int8" in proc.stderr
    assert not (tmp_path / "back.pdparams").exists()
    run_cli("convert", tmp_path / "f8.safetensors", tmp_path / "back.pdparams", "--reinterpret",
            "float8_e4m3fn=int8", check=0)
    assert paddle.load(str(tmp_path / "back.pdparams"))["f"].numpy().tobytes() == \
        paddle.load(str(path))["f"].numpy().tobytes()
    # binary formats keep float8: the stream's VarType is FP8_E4M3FN (32), as Paddle writes it
    run_cli("convert", tmp_path / "f8.safetensors", tmp_path / "vars", "--to", "vars-dir", check=0)
    paddle.save(t, str(tmp_path / "paddle.bin"), use_binary_format=True)
    assert (tmp_path / "vars" / "f").read_bytes() == (tmp_path / "paddle.bin").read_bytes()


def test_uint16_numpy_input_is_named_or_reinterpreted(tmp_path):
    bits = np.array([0x3FC0, 0x4000], np.uint16)  # bf16 1.5, 2.0 as np.array(bf16 tensor) gives
    with pytest.raises(pdckpt.UnsupportedError, match="'x'.*reinterpret"):
        pdckpt.save({"x": bits}, tmp_path / "x.pdiparams")
    # a pickle would hand it back as bfloat16 (checked with Paddle): refused too
    paddle.save({"x": bits}, str(tmp_path / "paddle.pdparams"))
    assert paddle.load(str(tmp_path / "paddle.pdparams"))["x"].dtype == paddle.bfloat16
    with pytest.raises(pdckpt.UnsupportedError, match="'x'.*bfloat16"):
        pdckpt.save({"x": bits}, tmp_path / "x.pdparams")
    assert not (tmp_path / "x.pdparams").exists()
    pdckpt.save({"x": bits}, tmp_path / "x.pdiparams", reinterpret={"uint16": "bfloat16"})
    got = pdckpt.load(tmp_path / "x.pdiparams", names=["x"])["x"]
    assert got.dtype == paddle.bfloat16 and got.astype("float32").numpy().tolist() == [1.5, 2.0]
    pdckpt.save({"x": bits}, tmp_path / "x2.pdparams", reinterpret="uint16=bfloat16")
    assert (tmp_path / "x2.pdparams").read_bytes()[:2] == b"\x80\x04"
    # ml_dtypes arrays say what they are
    pdckpt.save({"x": bits.view(ml_dtypes.bfloat16)}, tmp_path / "m.pdiparams")
    assert rows(tmp_path / "m.pdiparams", "--names", "x")["x"]["dtype"] == "bfloat16"
    # and a load can retype too
    back = pdckpt.load(tmp_path / "m.pdiparams", names=["x"], return_numpy=True,
                       reinterpret={"bfloat16": "uint16"})
    assert back["x"].dtype == np.uint16 and back["x"].tolist() == bits.tolist()


def test_uint32_and_uint64_stay_arrays_paddle_load_reads(tmp_path):
    """Paddle has no uint32/uint64 tensor: paddle.save leaves such a NumPy array out of a state
    dict's name table and paddle.load returns it an array.  pdckpt listed it, and paddle.load of
    the file raised (checked with Paddle 3.3); from safetensors too.  Elsewhere, where
    paddle.load would make every array a tensor, the save is refused by name."""
    from safetensors.numpy import save_file

    t = paddle.ones([2])
    state = {"a": np.arange(3, dtype=np.uint32), "t": t, "b": np.arange(2, dtype=np.uint64)}
    pdckpt.save(state, tmp_path / "ours.pdparams")
    back = paddle.load(str(tmp_path / "ours.pdparams"))
    assert isinstance(back["t"], paddle.Tensor)
    assert back["a"].dtype == np.uint32 and back["a"].tolist() == [0, 1, 2]
    assert back["b"].dtype == np.uint64 and back["b"].tolist() == [0, 1]
    ours = pdckpt.load(tmp_path / "ours.pdparams")
    assert isinstance(ours["a"], np.ndarray) and ours["a"].dtype == np.uint32
    save_file({"a": np.arange(3, dtype=np.uint32), "w": np.ones(2, np.float32)},
              str(tmp_path / "u.safetensors"))
    run_cli("convert", tmp_path / "u.safetensors", tmp_path / "u.pdparams")
    conv = paddle.load(str(tmp_path / "u.pdparams"))
    assert conv["a"].dtype == np.uint32 and isinstance(conv["w"], paddle.Tensor)
    with pytest.raises(pdckpt.UnsupportedError, match="'0' is uint32.*paddle.load"):
        pdckpt.save([np.arange(3, dtype=np.uint32)], tmp_path / "list.pdparams")
    assert not (tmp_path / "list.pdparams").exists()


def test_reinterpret_needs_equal_sizes(tmp_path):
    proc = run_cli("convert", "x", tmp_path / "y.safetensors", "--reinterpret", "uint16=float32",
                   check=2)
    assert "element size" in proc.stderr
    with pytest.raises(pdckpt.ArgumentError, match="element sizes"):
        pdckpt.save({"x": np.zeros(2, np.uint16)}, tmp_path / "y.safetensors",
                    reinterpret={"uint16": "float32"})


def test_nested_paddle_tensors_are_tensors_in_c_cli_and_python(tmp_path):
    """paddle.save writes a tensor inside a nested dict as (name, ndarray); paddle.load gives a
    Tensor there, and so do the C tree and `pdckpt ls` (they gave the tuple, keys [..., 1])."""
    w = paddle.to_tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    w.name = "linear_0.w_0"
    obj = {"model": {"w": w}, "list": [w], "epoch": 2}
    path = tmp_path / "nested.pdparams"
    paddle.save(obj, str(path), protocol=4)
    got = ls_json(path)
    assert [t["key"] for t in got["tensors"]] == [["model", "w"], ["list", 0]]
    assert {t["name"] for t in got["tensors"]} == {"linear_0.w_0"}
    theirs, ours = paddle.load(str(path)), pdckpt.load(path)
    assert isinstance(theirs["model"]["w"], paddle.Tensor) and isinstance(ours["model"]["w"],
                                                                          paddle.Tensor)
    assert ours["model"]["w"].name == theirs["model"]["w"].name == "linear_0.w_0"
    with pdckpt.open(path) as r:
        assert r.kind("model") == "dict" and r["model"]["w"].shape == (2, 3)
    # the writer still gives paddle.save's bytes back
    run_cli("convert", path, tmp_path / "again.pdparams", "--numpy-module", "numpy._core",
            "--no-fsync", check=0)
    assert (tmp_path / "again.pdparams").read_bytes() == path.read_bytes()
    # and a flat format names it by its place
    run_cli("convert", path, tmp_path / "n.safetensors", "--skip-non-tensors", check=0)
    assert sorted(st_dtypes(tmp_path / "n.safetensors")) == ["list.0", "model.w"]
