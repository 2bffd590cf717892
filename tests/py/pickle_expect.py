# SPDX-License-Identifier: Apache-2.0
"""Expected listings for pickle tests: a tree of Python values with T() for tensors, flattened
the way `pdckpt ls --json --hash` reports it (tensors and other leaves, in walk order)."""
import hashlib
import math

import numpy as np

from conftest import ls_json, run_cli


class T:
    """An expected tensor: the numpy array paddle.save pickles, the name pdckpt must show and the
    dtype it must show when that is not the array's (the one paddle.load gives, e.g. bfloat16 for
    a uint16 array it makes a tensor)."""

    def __init__(self, arr, name=None, dtype=None):
        self.arr = np.asarray(arr)
        self.name = name
        self.dtype = dtype


def take_loaded_dtypes(expected, loaded):
    """Sets each T's dtype to the dtype of the paddle.Tensor paddle.load returned in its place
    (`loaded`: paddle.load's result with keep_name_table=True).  A (name, T) tuple that Paddle
    turned into a tensor takes that tensor's dtype."""
    if isinstance(expected, T):
        if hasattr(loaded, "place"):  # a paddle.Tensor
            expected.dtype = str(loaded.dtype).rsplit(".", 1)[-1]
    elif (isinstance(expected, tuple) and len(expected) == 2 and isinstance(expected[1], T)
          and hasattr(loaded, "place")):
        take_loaded_dtypes(expected[1], loaded)
    elif isinstance(expected, dict) and isinstance(loaded, dict):
        for k, v in expected.items():
            if k in loaded:
                take_loaded_dtypes(v, loaded[k])
    elif isinstance(expected, (list, tuple)) and isinstance(loaded, (list, tuple)):
        for e, g in zip(expected, loaded):
            take_loaded_dtypes(e, g)


def tensor_row(key, t):
    a = t.arr.copy(order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    row = {"key": key, "dtype": t.dtype or a.dtype.name, "shape": list(a.shape), "nbytes": a.nbytes}
    if t.name is not None:
        row["name"] = t.name
    row["sha256"] = hashlib.sha256(a.tobytes()).hexdigest()
    return row


def scalar_json(v):
    if isinstance(v, np.generic):
        v = v.item()
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v  # beyond 64 bits too: pdckpt carries builtins.int bytes, ls prints the number
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        return v if math.isfinite(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, bytes):
        return f"<bytes: {len(v)}>"
    raise AssertionError(f"no expectation for {type(v)}")


def flatten(tree, path=()):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from flatten(v, path + (k,))
    elif isinstance(tree, (list, tuple, set, frozenset)):
        for i, v in enumerate(tree):
            yield from flatten(v, path + (i,))
    else:
        yield list(path), tree


def expected_listing(tree):
    tensors, scalars = [], []
    for key, leaf in flatten(tree):
        if isinstance(leaf, T):
            tensors.append(tensor_row(key, leaf))
        else:
            scalars.append({"key": key, "value": scalar_json(leaf)})
    return tensors, scalars


def assert_lists_exactly(path, expected_tree):
    got = ls_json(path, "--hash")
    want_tensors, want_scalars = expected_listing(expected_tree)
    assert got["format"] == "pickle"
    assert got["tensors"] == want_tensors
    assert got["scalars"] == want_scalars
    run_cli("verify", path, check=0)
