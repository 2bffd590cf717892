# SPDX-License-Identifier: Apache-2.0
"""Round trips across pdckpt's formats and with real Paddle and the safetensors library.

States are random: every dtype, 0-d, empty, LoD, names with '/', hundreds of small tensors.
Paddle writes tensor files (paddle.save(use_binary_format=True), core.save_dense_tensor with LoD)
that pdckpt must list bit-exactly; pdckpt writes files Paddle must load bit-exactly."""
import hashlib
import json
import shutil

import pytest

from conftest import ls_json, run_cli
import refread

ALL_DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16",
              "float32", "float64", "complex64", "complex128", "float8_e4m3fn", "float8_e5m2"]
SIZE = {"bool": 1, "uint8": 1, "int8": 1, "int16": 2, "int32": 4, "int64": 8, "float16": 2,
        "bfloat16": 2, "float32": 4, "float64": 8, "complex64": 8, "complex128": 16,
        "float8_e4m3fn": 1, "float8_e5m2": 1}


def random_state(rng, many=300):
    """name -> (dtype, shape, raw bytes, lod)."""
    state = {}
    for i, dt in enumerate(ALL_DTYPES):
        shape = [int(d) for d in rng.integers(1, 5, size=i % 4 + 1)]
        n = 1
        for d in shape:
            n *= d
        raw = rng.integers(0, 2 if dt == "bool" else 256, size=n * SIZE[dt], dtype="uint8").tobytes()
        state[f"layer_{i}/{dt}.w_0"] = (dt, shape, raw, ())
    state["scalar_0d"] = ("float64", [], rng.bytes(8), ())
    state["empty"] = ("float32", [0, 7], b"", ())
    state["seq"] = ("float32", [5, 2], rng.bytes(40), ([0, 2, 5], [0, 1, 2, 3, 4, 5]))
    for i in range(many):
        state[f"opt/p{i}_moment1_0"] = ("float32", [4], rng.bytes(16), ())
    return state


def write_vars_dir(path, state):
    for name, (dt, shape, raw, lod) in state.items():
        f = path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(refread.write_stream(dt, shape, raw, lod))


def expected_listing(state, exclude_lod=False):
    return {name: (dt, shape, len(raw), hashlib.sha256(raw).hexdigest())
            for name, (dt, shape, raw, lod) in state.items() if not (exclude_lod and lod)}


def listing_of(path, *extra):
    out = {}
    for t in ls_json(path, "--hash", *extra)["tensors"]:
        out["/".join(map(str, t["key"]))] = (t["dtype"], t["shape"], t["nbytes"], t["sha256"])
    return out


@pytest.fixture(scope="module")
def state():
    import numpy as np
    return random_state(np.random.default_rng(7))


def test_vars_dir_combined_vars_dir(tmp_path, state):
    src = tmp_path / "src"
    write_vars_dir(src, state)
    assert listing_of(src) == expected_listing(state)
    run_cli("convert", src, tmp_path / "all.pdiparams", check=0)
    names = sorted(state, key=lambda s: s.encode())
    (tmp_path / "names.txt").write_text("\n".join(names) + "\n")
    assert listing_of(tmp_path / "all.pdiparams", "--names", f"@{tmp_path / 'names.txt'}") == expected_listing(state)
    # Paddle writes combined files in byte-wise name order: the file is exactly the sorted streams.
    expect = b"".join(refread.write_stream(*state[n][:2], state[n][2], state[n][3]) for n in names)
    assert (tmp_path / "all.pdiparams").read_bytes() == expect
    run_cli("convert", "--names", f"@{tmp_path / 'names.txt'}", tmp_path / "all.pdiparams",
            tmp_path / "back", "--to", "vars-dir", check=0)
    run_cli("diff", src, tmp_path / "back", check=0)
    for name in state:  # per-variable files are byte-identical to what Paddle's save op writes
        assert (tmp_path / "back" / name).read_bytes() == (src / name).read_bytes()


def test_safetensors_round_trip_and_library_interop(tmp_path, state):
    import numpy as np
    from safetensors.numpy import load_file, save_file

    src = tmp_path / "src"
    write_vars_dir(src, {k: v for k, v in state.items() if v[0] == "complex128"})
    proc = run_cli("convert", src, tmp_path / "c128.safetensors")
    assert proc.returncode == 1 and "safetensors has no complex128 dtype" in proc.stderr
    assert proc.stderr.startswith(f"pdckpt: {tmp_path / 'c128.safetensors'}: ")
    state = {k: v for k, v in state.items() if not v[3] and v[0] != "complex128"}
    shutil.rmtree(src)
    write_vars_dir(src, state)
    proc = run_cli("convert", src, tmp_path / "m.safetensors")
    assert proc.returncode == 0, proc.stderr
    assert listing_of(tmp_path / "m.safetensors") == expected_listing(state)
    # The safetensors library reads pdckpt's file (numpy has no bfloat16/float8: leave those out).
    numpy_state = {k: v for k, v in state.items()
                   if v[0] not in ("bfloat16", "float8_e4m3fn", "float8_e5m2")}
    write_vars_dir(tmp_path / "np_src", numpy_state)
    run_cli("convert", tmp_path / "np_src", tmp_path / "np.safetensors", check=0)
    loaded = load_file(str(tmp_path / "np.safetensors"))
    assert set(loaded) == set(numpy_state)
    for name, (dt, shape, raw, lod) in numpy_state.items():
        assert loaded[name].dtype == np.dtype(dt) and list(loaded[name].shape) == shape
        assert loaded[name].tobytes() == raw
    # ... and pdckpt reads the library's file.
    arrays = {k: v for k, v in loaded.items() if not k.startswith("opt/")}
    save_file(arrays, str(tmp_path / "lib.safetensors"))
    ours = listing_of(tmp_path / "lib.safetensors")
    assert ours == {k: (str(v.dtype), list(v.shape), v.nbytes, hashlib.sha256(v.tobytes()).hexdigest())
                    for k, v in arrays.items()}
    run_cli("convert", tmp_path / "m.safetensors", tmp_path / "again", "--to", "vars-dir", check=0)
    run_cli("diff", src, tmp_path / "again", check=0)


def test_lod_cannot_go_to_safetensors(tmp_path, state):
    src = tmp_path / "src"
    write_vars_dir(src, {"seq": state["seq"]})
    proc = run_cli("convert", src, tmp_path / "x.safetensors")
    assert proc.returncode == 1
    assert "LoD" in proc.stderr and not (tmp_path / "x.safetensors").exists()


def test_paddle_writes_pdckpt_reads(tmp_path, paddle_np):
    paddle, np = paddle_np
    from paddle.base import core

    expected = {}
    for dt in ["bfloat16", "float16", "float32", "float64", "complex64", "complex128", "bool",
               "int8", "uint8", "int16", "int32", "int64"]:
        x = paddle.to_tensor(np.random.default_rng(1).standard_normal((3, 4)).astype("float32") * 10)
        x = x.astype(dt)
        path = tmp_path / f"{dt}.bin"
        paddle.save(x, str(path), use_binary_format=True)
        arr = x.numpy()
        raw = arr.view(np.uint16).tobytes() if dt == "bfloat16" else arr.tobytes()
        expected[path] = (dt, [3, 4], len(raw), hashlib.sha256(raw).hexdigest())
    zero_d = paddle.to_tensor(np.float64(2.5))
    paddle.save(zero_d, str(tmp_path / "zero_d.bin"), use_binary_format=True)
    expected[tmp_path / "zero_d.bin"] = ("float64", [], 8, hashlib.sha256(np.float64(2.5).tobytes()).hexdigest())
    for path, want in expected.items():
        t = ls_json(path, "--hash")["tensors"]
        assert len(t) == 1 and (t[0]["dtype"], t[0]["shape"], t[0]["nbytes"], t[0]["sha256"]) == want
    lod = core.DenseTensor()
    lod.set(np.arange(10, dtype="float32").reshape(5, 2), core.CPUPlace())
    lod.set_lod([[0, 2, 5], [0, 1, 2, 3, 4, 5]])
    core.save_dense_tensor(lod, str(tmp_path / "lod.bin"))
    ref, _ = refread.read_stream((tmp_path / "lod.bin").read_bytes())
    assert ref["lod"] == [[0, 2, 5], [0, 1, 2, 3, 4, 5]]
    run_cli("convert", "--format", "tensor", tmp_path / "lod.bin", tmp_path / "lod_copy",
            "--to", "tensor", check=0)
    assert (tmp_path / "lod_copy").read_bytes() == (tmp_path / "lod.bin").read_bytes()


def test_pdckpt_writes_paddle_reads(tmp_path, state, paddle_np):
    paddle, np = paddle_np
    from paddle.base import core

    src = tmp_path / "src"
    write_vars_dir(src, state)
    # A per-variable directory written by pdckpt loads in Paddle with every value intact.
    run_cli("convert", src, tmp_path / "out", "--to", "vars-dir", check=0)
    loaded = paddle.load(str(tmp_path / "out"))
    numpy_dtypes = {"bfloat16": "uint16", "float8_e4m3fn": "int8", "float8_e5m2": "int8"}
    for name, (dt, shape, raw, lod) in state.items():
        arr = np.asarray(loaded[name])
        assert list(arr.shape) == shape, name
        if dt not in numpy_dtypes:
            assert arr.dtype == np.dtype(dt), name
        assert arr.tobytes() == raw, name
    # LoD survives into Paddle's own loader.
    t = core.DenseTensor()
    core.load_dense_tensor(t, str(tmp_path / "out" / "seq"))
    assert t.lod() == [[0, 2, 5], [0, 1, 2, 3, 4, 5]]
