# SPDX-License-Identifier: Apache-2.0
"""Errors raised while a loaded pickle's values become Python / Paddle objects name the file, the
offset of the opcode that made the value (an array's REDUCE) and what was expected (s11: they
named the file only: "the loaded pickle value cannot be converted to Python objects: ...").  The
tree's tensors and objects keep that offset (pdckpt_value_offset) at no cost in memory: it sits
in what was padding of the tensor record."""
import io
import pickle
import pickletools

import numpy as np
import paddle
import pdckpt
import pytest

TABLE = "StructuredToParameterName@@"


def _reduce_of_array(data, nth=0):
    """The offset of the REDUCE that makes the nth ndarray (numpy's _reconstruct) of a pickle:
    Python's own unpickler tells which REDUCEs call _reconstruct; each runs once, in file order."""
    positions = [pos for op, _, pos in pickletools.genops(data) if op.name == "REDUCE"]
    calls = []

    class Tracing(pickle._Unpickler):
        dispatch = dict(pickle._Unpickler.dispatch)

        def load_reduce(self):
            calls.append(getattr(self.stack[-2], "__name__", "") == "_reconstruct")
            pickle._Unpickler.load_reduce(self)

        dispatch[pickle.REDUCE[0]] = load_reduce

    Tracing(io.BytesIO(data), encoding="latin1").load()
    return [p for p, array in zip(positions, calls) if array][nth]


@pytest.mark.parametrize("layout,protocol", [("table", 2), ("plain", 4), ("list", 3)])
def test_an_array_paddle_cannot_take_is_named_with_its_offset(tmp_path, layout, protocol):
    a = np.zeros((1,) * 10, np.float32)  # Paddle's tensors have at most 9 dims
    obj = {"table": {"b": np.ones(2, np.float32), "w": a, TABLE: {"b": "b0", "w": "w0"}},
           "plain": {"b": np.ones(2, np.float32), "w": a},
           "list": [np.ones(2, np.float32), a]}[layout]
    data = pickle.dumps(obj, protocol=protocol)
    path = tmp_path / "ten_dims.pdparams"
    path.write_bytes(data)
    with pytest.raises(Exception):
        paddle.load(str(path))  # Paddle cannot load it either
    at = _reduce_of_array(data, 1)
    assert data[at:at + 1] == b"R"
    with pytest.raises(pdckpt.FormatError) as info:
        pdckpt.load(path)
    e = info.value
    assert e.source == str(path) and e.offset == at, (e.offset, at, str(e))
    assert f"{path}: offset {at}: expected pickle values Python and Paddle can take, found a" \
        in str(e) and "float32 array of shape [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]" in str(e), str(e)
    assert pdckpt.load(path, return_numpy=True) is not None  # NumPy takes it


def test_the_copy_budget_names_the_array_it_stopped_at(tmp_path):
    a = np.zeros(1, np.float32)
    data = pickle.dumps({"x": [a] * 20000}, protocol=4)
    path = tmp_path / "fan.pdparams"
    path.write_bytes(data)
    with pytest.raises(pdckpt.LimitError, match="tensors made again") as info:
        pdckpt.load(path)
    at = _reduce_of_array(data, 0)
    assert info.value.offset == at and f"{path}: offset {at}: expected at most" in str(info.value)
