# SPDX-License-Identifier: Apache-2.0
"""A drop-in load of a safetensors file hands Paddle the tensors where the read put them (aligned
to their element, as Paddle's own safetensors load gives them: 8-byte-aligned data, no move to
64-byte places).  Judged against paddle.load(..., safetensors=True) and safetensors' own reader:
dtype, shape, values; a tensor at an offset its element does not divide (a hand-made file) is
copied, not handed over misaligned; tensors of one load stay independent and outlive it."""

import gc
import json
import struct

import numpy as np
import paddle
import safetensors.numpy

import pdckpt


def test_safetensors_dropin_equals_paddles_load(tmp_path):
    rng = np.random.default_rng(0)
    state = {"fc.bias": rng.standard_normal(1000).astype("float32"),  # 4000 B: the next is
             "fc.weight": rng.standard_normal((7, 13)).astype("float32"),  # off 64 B places
             "ids": np.arange(11, dtype="int64"), "half": rng.standard_normal(5).astype("float16"),
             "mask": np.array([True, False, True]), "scalar": np.array(2.5, "float64")}
    path = str(tmp_path / "m.safetensors")
    safetensors.numpy.save_file(state, path)
    want = paddle.load(path, safetensors=True)
    got = pdckpt.load(path)
    assert sorted(got) == sorted(want)
    for k, w in want.items():
        assert isinstance(got[k], paddle.Tensor), k
        assert (got[k].dtype, got[k].shape) == (w.dtype, w.shape), k
        np.testing.assert_array_equal(got[k].numpy(), w.numpy())
        np.testing.assert_array_equal(got[k].numpy(), state[k])
    got["fc.weight"].add_(paddle.ones([7, 13]))  # in place: its neighbours are untouched
    np.testing.assert_array_equal(got["fc.bias"].numpy(), state["fc.bias"])
    np.testing.assert_array_equal(got["ids"].numpy(), state["ids"])
    kept = got.pop("fc.weight")
    del got, want
    gc.collect()
    np.testing.assert_array_equal(kept.numpy(), state["fc.weight"] + 1)


def test_misaligned_safetensors_tensor_is_copied_correctly(tmp_path):
    # a 3-byte uint8 tensor first: the float32 after it starts at data offset 3
    vals = np.arange(6, dtype="<f4")
    header = {"a": {"dtype": "U8", "shape": [3], "data_offsets": [0, 3]},
              "b": {"dtype": "F32", "shape": [2, 3], "data_offsets": [3, 27]}}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path = tmp_path / "odd.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes([1, 2, 3]) + vals.tobytes())
    got = pdckpt.load(str(path))
    np.testing.assert_array_equal(got["b"].numpy(), vals.reshape(2, 3))
    np.testing.assert_array_equal(got["a"].numpy(), [1, 2, 3])
    assert got["b"].data_ptr() % 4 == 0
    got["b"].scale_(2.0)
    np.testing.assert_array_equal(got["a"].numpy(), [1, 2, 3])
    np.testing.assert_array_equal(got["b"].numpy(), 2 * vals.reshape(2, 3))
