# SPDX-License-Identifier: Apache-2.0
"""The Paddle 1.x dygraph layouts through the CLI.

No Paddle 1.5/1.6 runs here (they need Python <= 3.7), so the files are assembled from parts real
Paddle 3.3.1 still writes byte-for-byte the same way: the tensor streams come from
paddle.save(use_binary_format=True) (the 1.5 `save` op's format; its inner part is what 1.6's
C++ SaveTensorToDisk writes after each name), the container bytes follow the spec (binary §5.1,
§5.2; the layout was re-checked against Paddle's save_load_util.cc).  The 1.5 optimizer pickle is
a protocol-2 pickle of a stand-in class with the LearningRateDecay attributes, pickled under
Paddle's class path."""
import hashlib
import os
import pickle
import struct
import sys
import types

import numpy as np
import pytest

from conftest import ls_json, run_cli
import refread

import warnings  # noqa: E402
warnings.filterwarnings("ignore")
import paddle  # noqa: E402

DTYPES = ["float32", "float64", "float16", "bfloat16", "int8", "int16", "int32", "int64", "uint8",
          "bool", "complex64", "complex128"]


def paddle_stream(t, tmp_path):
    """Paddle's own serialization of a tensor: (outer stream, inner stream)."""
    path = tmp_path / "one.bin"
    paddle.save(t, str(path), use_binary_format=True)
    data = path.read_bytes()
    assert struct.unpack_from("<IQ", data) == (0, 0)
    return data, data[12:]


def sample_tensors(seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for i, dt in enumerate(DTYPES):
        base = rng.standard_normal((2, i % 3 + 1)) * 5
        if dt.startswith("complex"):
            out[f"fc_{i}.w_0"] = paddle.to_tensor(base + 1j * base).astype(dt)
        else:
            out[f"fc_{i}.w_0"] = paddle.to_tensor(base.astype("float32")).astype(dt)
    out["scalar_0d"] = paddle.to_tensor(np.float32(2.5))
    return out


def tnum_bytes(records, reserved):
    """records: name -> inner stream.  Sorted byte-wise by name, as std::map orders them."""
    out = reserved + b"TNUM" + struct.pack("<Q", len(records))
    for name in sorted(records, key=lambda n: n.encode()):
        out += b"NAME" + struct.pack("<Q", len(name.encode())) + name.encode() + records[name]
    return out


def read_tnum(data):
    """An independent reader of the spec's TNUM layout: (reserved, [(name, stream dict)])."""
    assert data[256:260] == b"TNUM"
    (count,) = struct.unpack_from("<Q", data, 260)
    pos, out = 268, []
    for _ in range(count):
        assert data[pos:pos + 4] == b"NAME"
        (n,) = struct.unpack_from("<Q", data, pos + 4)
        name = data[pos + 12:pos + 12 + n].decode()
        t, end = refread.read_stream(b"\0" * 12 + data[pos + 12 + n:])
        out.append((name, t))
        pos += 12 + n + end - 12
    assert pos == len(data)
    return data[:256], out


def expected_row(name, t):
    raw = np.array(t).tobytes()
    shape = list(t.shape)
    return {"key": [name], "dtype": str(t.dtype).replace("paddle.", ""), "shape": shape,
            "nbytes": len(raw), "name": name, "sha256": hashlib.sha256(raw).hexdigest()}


def test_tnum_read_from_paddle_streams(tmp_path):
    tensors = sample_tensors()
    records = {name: paddle_stream(t, tmp_path)[1] for name, t in tensors.items()}
    path = tmp_path / "model.pdparams"  # 1.6 used the same suffix as the later pickles
    # arbitrary reserved bytes, seeded: detection must not depend on a lucky draw
    path.write_bytes(tnum_bytes(records, np.random.default_rng(89).bytes(256)))
    got = ls_json(path, "--hash")
    assert got["format"] == "tnum" and got["scalars"] == []
    names = sorted(tensors, key=lambda n: n.encode())
    assert got["tensors"] == [expected_row(n, tensors[n]) for n in names]  # bf16 stays bf16 here
    assert "bfloat16" in {t["dtype"] for t in got["tensors"]}
    run_cli("verify", path, check=0)
    out = tmp_path / "model.pdiparams"  # to a combined file, read back independently
    run_cli("convert", path, out, check=0)
    back = refread.read_file(out)
    assert [(t["dtype"], t["data"]) for t in back] == [
        (str(tensors[n].dtype).replace("paddle.", ""), np.array(tensors[n]).tobytes()) for n in names]


def test_tnum_written_like_paddle(tmp_path):
    """pdckpt's TNUM records equal the bytes Paddle's serializer writes for each tensor; the
    reserved area is zeros; names are sorted; Paddle-saved pickles convert to it."""
    sd = paddle.nn.Linear(4, 3).state_dict()
    src = tmp_path / "m.pdparams"
    paddle.save(sd, str(src), protocol=2)
    out = tmp_path / "m16.pdparams"
    proc = run_cli("convert", src, out, "--to", "tnum", check=0)
    assert "(pickle) ->" in proc.stdout and "(tnum): 2 tensors" in proc.stdout
    data = out.read_bytes()
    reserved, records = read_tnum(data)
    assert reserved == bytes(256)
    assert [n for n, _ in records] == sorted(sd, key=lambda n: n.encode())
    body = data[268:]
    for name in sorted(sd, key=lambda n: n.encode()):
        head = b"NAME" + struct.pack("<Q", len(name)) + name.encode()
        assert body.startswith(head + paddle_stream(sd[name], tmp_path)[1])
        body = body[len(head) + len(paddle_stream(sd[name], tmp_path)[1]):]
    assert body == b""
    run_cli("verify", out, check=0)


class LRDecayStandIn:
    def __init__(self):
        self.step_num, self.step_size, self.dtype = 20, 1, "float32"
        self.learning_rate, self.decay_steps, self.decay_rate, self.staircase = 0.1, 1, 0.5, True


def lr_decay_pickle():
    module = "paddle.fluid.dygraph.learning_rate_scheduler"
    stub = types.ModuleType(module)
    cls = type("NaturalExpDecay", (LRDecayStandIn,), {"__module__": module})
    stub.NaturalExpDecay = cls
    saved = {k: sys.modules.get(k) for k in (module,)}
    sys.modules[module] = stub
    try:
        return pickle.dumps(cls(), protocol=2)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def make_15_dir(tmp_path):
    tensors = {"mlp/MLP_0/FC_0.w_0": paddle.to_tensor(np.arange(6, dtype="float32").reshape(2, 3)),
               "mlp/MLP_0/FC_0.b_0": paddle.to_tensor(np.ones(3, dtype="float32")),
               "mlp/MLP_0/FC_1.w_0": paddle.to_tensor(np.eye(3, dtype="float64"))}
    d = tmp_path / "save_dir"
    for name, t in tensors.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(paddle_stream(t, tmp_path)[0])
    (d / "optimizers").mkdir()
    (d / "optimizers" / "SGDOptimizer_0").write_bytes(lr_decay_pickle())
    return d, tensors


def test_dygraph_15_directory(tmp_path):
    d, tensors = make_15_dir(tmp_path)
    got = ls_json(d, "--hash")
    assert got["format"] == "dygraph-dir"
    names = sorted(tensors)
    assert got["tensors"] == [expected_row(n, tensors[n]) for n in names]
    assert len(got["scalars"]) == 1 and got["scalars"][0]["key"] == ["optimizers/SGDOptimizer_0"]
    obj = got["scalars"][0]["value"]
    assert obj.startswith("<object paddle.fluid.dygraph.learning_rate_scheduler.NaturalExpDecay() "
                          "state={'step_num': 20, 'step_size': 1, 'dtype': 'float32', "
                          "'learning_rate': 0.1, ")
    text = run_cli("ls", d, check=0).stdout
    assert "dygraph-dir, 3 tensors" in text and "optimizers/SGDOptimizer_0 = \"<object " in text
    run_cli("verify", d, check=0)
    out = tmp_path / "params.safetensors"
    # the LR object is not a tensor: safetensors keeps it in __metadata__["pdckpt.tree"]
    run_cli("convert", d, tmp_path / "all.safetensors", check=0)
    assert ls_json(tmp_path / "all.safetensors", "--hash")["scalars"] == got["scalars"]
    proc = run_cli("convert", d, out, "--skip-non-tensors", check=0)
    assert "dropped object 'optimizers/SGDOptimizer_0'" in proc.stderr
    from safetensors.numpy import load_file
    back = load_file(str(out))
    assert {k: v.tobytes() for k, v in back.items()} == {
        k: np.array(t).tobytes() for k, t in tensors.items()}


def test_vars_dir_without_optimizers_stays_vars_dir(tmp_path):
    d, _ = make_15_dir(tmp_path)
    (d / "optimizers" / "SGDOptimizer_0").unlink()
    (d / "optimizers").rmdir()
    assert ls_json(d)["format"] == "vars-dir"


def test_pickle_cli_diff_and_convert(tmp_path):
    sd = paddle.nn.Linear(3, 2).state_dict()
    a, b = tmp_path / "a.pdparams", tmp_path / "b.pdparams"
    paddle.save(sd, str(a), protocol=2)
    paddle.save(sd, str(b), protocol=4)
    assert run_cli("diff", a, b).returncode == 0
    sd2 = {k: v * 2 for k, v in sd.items()}
    for k in sd2:
        sd2[k].name = sd[k].name
    paddle.save(sd2, str(b), protocol=4)
    proc = run_cli("diff", a, b)
    assert proc.returncode == 1  # bias is zeros, so doubling changes only the weight
    assert proc.stdout == 'data differs at ["weight"]: 6 of 6 elements (first at flat index 0)\n1 difference\n'
    st = tmp_path / "a.safetensors"
    run_cli("convert", a, st, check=0)
    listing = {t["key"][0]: t["sha256"] for t in ls_json(st, "--hash")["tensors"]}
    assert listing == {k: hashlib.sha256(np.array(v).tobytes()).hexdigest() for k, v in sd.items()}
