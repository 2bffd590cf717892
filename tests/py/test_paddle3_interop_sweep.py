# SPDX-License-Identifier: Apache-2.0
"""Paddle 3.x checkpoints of every dtype Paddle 3 keeps -- float8 and complex included, a 0-d
and an empty tensor -- judged against what real Paddle 3 gives for the same files.
paddle.jit.save models (PIR: X.json + X.pdiparams) with control flow (if / while regions) and a
second to_static method (X.other.json): pdckpt.load(prefix) against
paddle.jit.load(prefix).state_dict() (names from the program, values, dtypes, shapes), and the
.pdiparams pdckpt writes back for the program, byte-identical and run by jit.load.  The NumPy
dtype of every raw-bits type against Paddle's own Tensor.numpy() and paddle.load of a directory
(the float8s were uint8 in pdckpt, int8 in Paddle).  paddle.distributed.save_state_dict of every
dtype through pdckpt.distributed.load_state_dict (float8 was refused)."""
import os
import shutil

import numpy as np
import pytest

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "float16", "bfloat16", "float32",
          "float64", "complex64", "complex128", "float8_e4m3fn", "float8_e5m2"]


def _layers(paddle):
    spec = paddle.static.InputSpec

    class AllDtypes(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.lin = paddle.nn.Linear(4, 3)
            base = paddle.to_tensor([[0.5, -2.0, 3.0], [1.0, 0.0, -0.25]])
            for d in DTYPES:
                self.register_buffer("buf_" + d, (base > 0 if d == "bool" else base).astype(d))
            self.register_buffer("zero_d", paddle.to_tensor(3.5))
            self.register_buffer("empty", paddle.zeros([0, 3]))

        def forward(self, x):
            if paddle.mean(x) > 0:  # control flow: the parameters of both branches are kept
                y = self.lin(x)
            else:
                y = self.lin(x * 2.0)
            i = paddle.zeros([1], "int64")
            while i < 2:
                y = y + 1.0
                i = i + 1
            for d in DTYPES:
                y = y + getattr(self, "buf_" + d).astype("float32").sum()
            return y + self.zero_d + self.empty.sum()

    class TwoMethods(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.a = paddle.nn.Linear(4, 3)
            self.b = paddle.nn.Linear(4, 2)

        @paddle.jit.to_static(input_spec=[spec([None, 4], "float32")], full_graph=True)
        def forward(self, x):
            return self.a(x)

        @paddle.jit.to_static(input_spec=[spec([None, 4], "float32")], full_graph=True)
        def other(self, x):
            return self.b(x) * 2.0

    all_dtypes = paddle.jit.to_static(AllDtypes(), input_spec=[spec([None, 4], "float32")],
                                      full_graph=True)
    return all_dtypes, TwoMethods()


@pytest.fixture(scope="module")
def saved(tmp_path_factory, paddle_np):
    paddle, _ = paddle_np
    d = tmp_path_factory.mktemp("jit3")
    all_dtypes, two = _layers(paddle)
    paddle.jit.save(all_dtypes, str(d / "dt"))
    paddle.jit.save(two, str(d / "mm"))
    return d


def _paddle_state(paddle, prefix):
    """jit.load's parameters, param_0.. in the order of the program's sorted names."""
    sd = paddle.jit.load(str(prefix)).state_dict()
    return [sd[k] for k in sorted(sd, key=lambda k: int(k.rsplit("_", 1)[1]))]


def _same(pdk, paddle_state):
    assert len(pdk) == len(paddle_state)
    for (name, got), want in zip(sorted(pdk.items()), paddle_state):
        ref = want.numpy()
        assert (got.dtype, got.shape) == (ref.dtype, ref.shape), name
        assert np.ascontiguousarray(got).tobytes() == ref.tobytes(), name


def test_jit_prefix_of_every_dtype_loads_as_paddle_gives_it(saved, paddle_np):
    import pdckpt

    paddle, _ = paddle_np
    pdk = pdckpt.load(str(saved / "dt"))
    assert len(pdk) == len(DTYPES) + 4  # the buffers, 0-d, empty, the Linear's two
    _same(pdk, _paddle_state(paddle, saved / "dt"))  # float8 as int8 (was uint8)


def test_second_method_and_control_flow_programs(saved, paddle_np):
    import pdckpt

    paddle, _ = paddle_np
    state = _paddle_state(paddle, saved / "mm")  # both programs' parameters, forward's first
    first = pdckpt.load(str(saved / "mm"))
    other = pdckpt.load(str(saved / "mm.other"))
    _same(first, state[:len(first)])
    _same(other, state[len(first):])
    assert set(first).isdisjoint(other)


def test_raw_bits_dtypes_are_paddles_numpy_dtypes(tmp_path, paddle_np):
    import pdckpt

    paddle, _ = paddle_np
    base = paddle.to_tensor([1.0, -2.0, 0.5])
    state = {d: base.astype(d) for d in ("bfloat16", "float8_e4m3fn", "float8_e5m2")}
    pdckpt.save(state, str(tmp_path / "vars"), format="vars-dir")
    theirs = paddle.load(str(tmp_path / "vars"))
    ours = pdckpt.load(str(tmp_path / "vars"))
    assert set(ours) == set(theirs) == set(state)
    for name, t in state.items():
        assert ours[name].dtype == theirs[name].dtype == t.numpy().dtype, name
        assert ours[name].tobytes() == theirs[name].tobytes() == t.numpy().tobytes(), name
    # a pdckpt.Tensor's own NumPy view agrees
    with pdckpt.open(str(tmp_path / "vars")) as reader:
        for name, t in state.items():
            assert reader.tensor(name).numpy().dtype == t.numpy().dtype, name


def test_pdiparams_written_back_is_paddles_and_runs(saved, tmp_path, paddle_np):
    import pdckpt
    import pdckpt.static

    paddle, _ = paddle_np
    for prefix in ("dt", "mm", "mm.other"):
        out = tmp_path / prefix
        shutil.copy(saved / f"{prefix}.json", f"{out}.json")
        state = pdckpt.load(str(saved / prefix), exact_dtypes=True)
        assert pdckpt.static.save_inference_params(str(out), state) == f"{out}.pdiparams"
        assert (saved / f"{prefix}.pdiparams").read_bytes() == \
            open(f"{out}.pdiparams", "rb").read(), prefix
        _same(pdckpt.load(str(out)), _paddle_state(paddle, out))
    # Without exact dtypes the arrays carry raw bits: the program's declaration is named
    with pytest.raises(pdckpt.Error, match=r"program declares (bfloat16|float8_e\w+) \["):
        pdckpt.static.save_inference_params(str(tmp_path / "dt"), pdckpt.load(str(saved / "dt")))
    assert not os.path.exists(tmp_path / "dt.pdiparams.pdckpt-tmp")


def test_save_state_dict_of_every_dtype_loads_with_its_dtype(tmp_path, paddle_np):
    """paddle.distributed.save_state_dict pickles a float8 piece as its int8 bits under float8
    metadata; pdckpt refused it ("this data file holds int8").  Now it loads as the metadata's
    float8 (Paddle's own load_state_dict hands back int8 tensors there), every other dtype as
    Paddle's load gives it."""
    import paddle.distributed as dist
    import pdckpt.distributed

    paddle, _ = paddle_np
    base = paddle.to_tensor([[0.5, -2.0, 3.0], [1.0, 0.0, -0.25]])
    state = {d: (base > 0 if d == "bool" else base).astype(d) for d in DTYPES}
    state["zero_d"] = paddle.to_tensor(2.5)
    dist.save_state_dict(state, str(tmp_path / "ckpt"))

    def target():
        return {k: paddle.zeros(v.shape, "float32").astype(v.dtype) for k, v in state.items()}

    ours, theirs = target(), target()
    pdckpt.distributed.load_state_dict(ours, str(tmp_path / "ckpt"))
    dist.load_state_dict(theirs, str(tmp_path / "ckpt"))
    for k, v in state.items():
        want = v.reshape([-1]).view(paddle.uint8).numpy().tobytes()
        assert ours[k].dtype == v.dtype and ours[k].shape == v.shape, k
        assert ours[k].reshape([-1]).view(paddle.uint8).numpy().tobytes() == want, k
        if "float8" not in k:  # Paddle's own load agrees except where it makes float8 int8
            assert theirs[k].dtype == v.dtype, k
            assert theirs[k].reshape([-1]).view(paddle.uint8).numpy().tobytes() == want, k


def test_hidden_variable_files_load_as_paddle_loads_them(tmp_path, paddle_np):
    """A variable whose name starts with '.' is a hidden file in a vars-dir: paddle.load of the
    directory gives it, pdckpt passed every hidden file over (the variable vanished without a
    word, or 'found none').  Now a hidden file that is one tensor stream is a variable; other
    hidden files (not a tensor, a pdckpt temporary) are still passed over, and a save refuses a
    hidden directory, which loads pass over."""
    import pdckpt

    paddle, _ = paddle_np
    d = tmp_path / "vars"
    d.mkdir()
    state = {".hidden_w": paddle.to_tensor([[1.5, -2.0]]), "w": paddle.arange(3, dtype="int64")}
    for name, t in state.items():
        paddle.save(t, str(d / name), use_binary_format=True)
    theirs = paddle.load(str(d))
    (d / ".DS_Store").write_bytes(b"\0\0\0\1Bud1 not a tensor")
    paddle.save(state["w"], str(d / ".w.pdckpt-tmp-1-00"), use_binary_format=True)
    ours = pdckpt.load(str(d))
    assert sorted(ours) == sorted(theirs) == sorted(state)
    for k, v in theirs.items():
        assert (ours[k].dtype, ours[k].shape, ours[k].tobytes()) == (v.dtype, v.shape, v.tobytes())
    pdckpt.save(state, str(tmp_path / "mine"), format="vars-dir")
    assert sorted(pdckpt.load(str(tmp_path / "mine"))) == sorted(paddle.load(str(tmp_path / "mine")))
    with pytest.raises(pdckpt.Error, match="directory starting with '.'"):
        pdckpt.save({".d/w": state["w"]}, str(tmp_path / "refused"), format="vars-dir")
    assert not (tmp_path / "refused").exists()
