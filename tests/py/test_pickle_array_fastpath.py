# SPDX-License-Identifier: Apache-2.0
"""The pickle reader's ndarray fast path (src/formats/pickle/pickle_array.c) gives what the
ordinary opcode handlers give, also when a pickle refers back (GET) to a value the fast path did
not build: the shape tuple, the data bytes, the array itself, the dtype.  Pickles are made here by
CPython's own pickler, so the opcode sequences are the ones real files hold."""
import pickle

import numpy as np
import pytest

import pdckpt

try:  # numpy >= 2 spells the module numpy._core
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct


class Reduced:
    """Pickles exactly as an ndarray does, but with a state object the test can share."""

    def __init__(self, state):
        self.state = state

    def __reduce__(self):
        return (_reconstruct, (np.ndarray, (0,), b"b"), self.state)


def load(obj, protocol):
    return pdckpt.load(pickle.dumps(obj, protocol=protocol), return_numpy=True)


def arrays(n):
    return [np.arange(i, i + 6, dtype="float32").reshape(2, 3) for i in range(n)]


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_many_arrays_exact(protocol):
    src = {f"w{i}": a for i, a in enumerate(arrays(50))}
    src["scalar"] = np.array(1.5)
    src["empty"] = np.zeros((0, 4), dtype="int64")
    src["wide"] = np.ones((2, 1, 2, 1, 2), dtype="int16")  # MARK ... TUPLE shapes
    got = load(src, protocol)
    assert list(got) == list(src)
    for k, v in src.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape
        assert np.array_equal(got[k], v)


@pytest.mark.parametrize("protocol", [2, 4])
def test_same_array_twice(protocol):
    a, b = arrays(2)
    got = load({"a": a, "b": b, "b_again": b, "list": [a, b]}, protocol)
    assert np.array_equal(got["b_again"], b) and np.array_equal(got["list"][1], b)
    assert np.array_equal(got["list"][0], a)


@pytest.mark.parametrize("protocol", [2, 4])
def test_get_of_a_skipped_value_loads_again_without_the_fast_path(protocol):
    first, second = arrays(2)
    state = second.__reduce__()[2]  # (1, shape, dtype, False, bytes)
    src = {"first": first, "second": Reduced(state), "shape": state[1], "raw": state[4]}
    got = load(src, protocol)
    assert np.array_equal(got["first"], first) and np.array_equal(got["second"], second)
    assert got["shape"] == (2, 3)
    assert bytes(got["raw"]) == second.tobytes()


def test_big_endian_and_fortran_arrays_take_the_ordinary_path():
    src = {"le": arrays(1)[0], "be": np.arange(6, dtype=">i4").reshape(2, 3),
           "f": np.asfortranarray(np.arange(6, dtype="float32").reshape(2, 3))}
    got = load(src, 4)
    for k, v in src.items():
        assert np.array_equal(got[k], v) and got[k].dtype == v.dtype.newbyteorder("=")
