# SPDX-License-Identifier: Apache-2.0
"""The W2 drop-in save's fast path (issue 18): paddle.Tensors read through one DLPack export each
(py_paddle_save.c) and the pickle emitter's shortcuts write exactly the bytes the slower paths
write -- the per-attribute questions (py_paddle.c), the Python leaf hook -- and paddle.save's own
bytes; real Paddle loads what was written."""

import numpy as np
import paddle
import pytest

import pdckpt
from pdckpt import _native
from pdckpt._convert import paddle_save_spec

NUMPY_MODULE = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"
DTYPES = ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32",
          "float64", "complex64", "complex128")


def tensor(arr, dtype=None, stop_gradient=True):
    t = paddle.to_tensor(arr, stop_gradient=stop_gradient)
    return t.astype(dtype) if dtype else t


def mixed_state():
    """Every saveable dtype, 0-d and n-d shapes, a transposed (non-contiguous) view, a slice that
    starts inside its allocation, tensors that require gradients, a Parameter, user names."""
    rng = np.random.default_rng(5)
    state = {f"d.{dt}": tensor((rng.standard_normal(6) * 9).reshape(2, 3), dt) for dt in DTYPES}
    base = tensor(np.arange(24, dtype=np.float32).reshape(4, 6))
    state["transposed"] = base.T
    state["rows"] = base[1:3]
    state["scalar"] = tensor(np.float32(2.5))
    state["scalar_i"] = tensor(np.int64(-7))
    state["grad"] = tensor(np.ones(5, np.float32), stop_gradient=False)
    state["param"] = paddle.create_parameter([3, 2], "float32")
    named = tensor(np.arange(4, dtype=np.int32))
    named.name = "my.own_name"
    state["named"] = named
    state["empty"] = tensor(np.zeros((0, 3), np.float32))
    return state


def save_bytes(obj, spec):
    return _native.save(obj, format="pickle", numpy_module=int(NUMPY_MODULE == "numpy._core"),
                        paddle=spec)


def three_ways(obj):
    """The bytes of the DLPack path, of the per-attribute path and of the leaf hook alone."""
    tensor_type, dtypes, trusted = paddle_save_spec(paddle)
    assert trusted  # Paddle 3 in this venv: the fast path is the one in use
    return (save_bytes(obj, (tensor_type, dtypes, True)),
            save_bytes(obj, (tensor_type, dtypes, False)), save_bytes(obj, None))


@pytest.mark.parametrize("shape", ["state", "nested", "list", "shared"])
def test_fast_path_writes_what_the_slow_paths_and_paddle_save_write(tmp_path, shape):
    state = mixed_state()
    if shape == "nested":  # a dict of dicts: paddle.save's generic path
        obj = {"model": state, "opt": {"step": 3, "lr": tensor(np.float32(0.1))}}
    elif shape == "list":
        obj = [state["d.float32"], state["transposed"], (state["named"], 1)]
    elif shape == "shared":  # one tensor under two keys and twice in a list: the memo
        obj = {"a": state["d.bfloat16"], "b": state["d.bfloat16"],
               "l": [state["grad"], state["grad"]]}
    else:
        obj = state
    fast, attrs, hook = three_ways(obj)
    assert fast == attrs == hook
    assert not state["transposed"].is_contiguous()  # no save made the caller's view contiguous
    # paddle.save pickles the transposed view in Fortran order (is_fortran, its memory as it is);
    # so does every path of pdckpt's (docs/formats.md, "Memory order")
    paddle.save(obj, str(tmp_path / "p.pdparams"))
    assert fast == (tmp_path / "p.pdparams").read_bytes()
    pdckpt.save(obj, tmp_path / "f.pdparams", numpy_module=NUMPY_MODULE)
    assert (tmp_path / "f.pdparams").read_bytes() == fast
    got = paddle.load(str(tmp_path / "f.pdparams"))
    if shape == "state":
        for k, v in state.items():
            assert got[k].name == v.name and got[k].dtype == v.dtype, k
            np.testing.assert_array_equal(got[k].astype("float32").numpy(),
                                          v.astype("float32").numpy())


def test_many_small_tensors_of_one_dtype_write_paddle_saves_bytes(tmp_path):
    """W2's shape in small: 3,000 1 KiB tensors (several frames, memo indexes past 65,535 are not
    reached here but BINGETs past 255 are), bfloat16 and float16 groups, one shared tensor."""
    rng = np.random.default_rng(1)
    blob = rng.standard_normal(3000 * 256).astype(np.float32)
    state = {f"param_{i}.moment1_0": tensor(blob[i * 256:(i + 1) * 256]) for i in range(3000)}
    for i in range(0, 3000, 7):
        state[f"param_{i}.moment1_0"] = state[f"param_{i}.moment1_0"].astype(
            "bfloat16" if i % 2 else "float16")
    state["again"] = state["param_5.moment1_0"]
    fast, attrs, hook = three_ways(state)
    assert fast == attrs == hook
    paddle.save(state, str(tmp_path / "p.pdparams"))
    assert fast == (tmp_path / "p.pdparams").read_bytes()
    got = paddle.load(str(tmp_path / "p.pdparams"))
    assert got["param_9.moment1_0"].name == state["param_9.moment1_0"].name
    np.testing.assert_array_equal(got["param_9.moment1_0"].numpy(), blob[9 * 256:10 * 256])


def test_float8_is_refused_the_same_way_on_every_path():
    t = tensor(np.ones(4, np.float32)).astype("float8_e4m3fn")
    messages = []
    tensor_type, dtypes, _ = paddle_save_spec(paddle)
    for spec in ((tensor_type, dtypes, True), (tensor_type, dtypes, False), None):
        with pytest.raises(pdckpt.UnsupportedError) as e:
            save_bytes({"f8": t}, spec)
        messages.append(str(e.value))
    assert messages[0] == messages[1] == messages[2] and "float8_e4m3fn" in messages[0]


def test_the_export_is_held_until_the_save_is_over_and_then_released(tmp_path):
    """The tree borrows Paddle's memory through each DLPack export: the tensors saved must still
    be right when the caller dropped every other reference, and nothing stays pinned after."""
    import gc
    import weakref

    def make():
        return {f"w{i}": tensor(np.full(64, i, np.float32)) for i in range(50)}

    state = make()
    refs = [weakref.ref(v) for v in state.values()]
    pdckpt.save(state, tmp_path / "m.pdparams")
    del state
    gc.collect()
    assert all(r() is None for r in refs)  # no capsule kept a tensor alive
    got = paddle.load(str(tmp_path / "m.pdparams"))
    for i in range(50):
        np.testing.assert_array_equal(got[f"w{i}"].numpy(), np.full(64, i, np.float32))


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_every_protocol_writes_paddle_saves_bytes(tmp_path, protocol):
    """State-dict keys are written once and named again by the name table straight from their
    memo index (BINGET below 256, LONG_BINGET past it; BINPUT / LONG_BINPUT below protocol 4);
    keys of 1-2 bytes share CPython's cached characters and take the memo's way; a nested dict
    makes the generic path."""
    rng = np.random.default_rng(2)
    state = {f"k{i:04d}": tensor(rng.standard_normal(3).astype(np.float32)) for i in range(300)}
    state["a"] = tensor(np.arange(3, dtype=np.int64))
    state["ab"] = tensor(np.arange(2, dtype=np.float16))
    state["LR_Scheduler"] = {"last_epoch": 3, "last_lr": 0.5}
    paddle.save(state, str(tmp_path / "p.pdparams"), protocol=protocol)
    pdckpt.save(state, tmp_path / "f.pdparams", protocol=protocol, numpy_module=NUMPY_MODULE)
    assert (tmp_path / "f.pdparams").read_bytes() == (tmp_path / "p.pdparams").read_bytes()
    got = paddle.load(str(tmp_path / "f.pdparams"))
    assert got["k0299"].name == state["k0299"].name
    np.testing.assert_array_equal(got["k0299"].numpy(), state["k0299"].numpy())


def test_a_loaded_state_dict_with_its_name_table_saves_back_as_it_was(tmp_path):
    """A tree that keeps Paddle's name table (its keys find the data keys by text): the memo's
    way, unchanged."""
    state = {f"layer_{i}.w": tensor(np.full(4, i, np.float32)) for i in range(20)}
    paddle.save(state, str(tmp_path / "p.pdparams"))
    tree = pdckpt.load(tmp_path / "p.pdparams", return_numpy=True, keep_name_table=True)
    assert "StructuredToParameterName@@" in tree
    pdckpt.save(tree, tmp_path / "f.pdparams", numpy_module=NUMPY_MODULE)
    assert (tmp_path / "f.pdparams").read_bytes() == (tmp_path / "p.pdparams").read_bytes()


def test_numpy_safetensors_save_writes_safetensors_bytes(tmp_path):
    """The NumPy path's safetensors writer (sort keys worked out once, numbers formatted by hand):
    safetensors' own bytes for thousands of arrays of mixed dtypes and shapes, 0-d, empty and
    negative-free dims of many digits."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(4)
    kinds = ["float32", "float16", "int64", "int8", "uint8", "float64", "bool", "int32"]
    state = {f"p_{i}.m": rng.standard_normal(int(rng.integers(0, 40))).astype(kinds[i % 8])
             for i in range(3000)}
    state["scalar"] = np.array(3.0, np.float32)
    state["empty"] = np.zeros((2, 0, 3), np.int32)
    state["wide"] = np.zeros((1, 1234567), np.uint8)
    save_file(state, str(tmp_path / "a.safetensors"))
    pdckpt.save(state, tmp_path / "b.safetensors")
    assert (tmp_path / "b.safetensors").read_bytes() == (tmp_path / "a.safetensors").read_bytes()
