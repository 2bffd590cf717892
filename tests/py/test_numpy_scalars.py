# SPDX-License-Identifier: Apache-2.0
"""numpy scalars in a pickle (np.float32 learning rates and losses, np.int64 counters, np.bool_
flags -- what users and Paddle 1.8's ReduceLROnPlateau put beside tensors) load as the numpy
scalars paddle.load gives, and pdckpt writes them as paddle.save does, byte for byte (Python and
CLI routes, protocols 2-4).  Judged by real Paddle 3.x in this process; Paddle 1.8's own file is
tests/py/test_paddle18_interop.py's ReduceLROnPlateau .pdopt."""
import io

import numpy as np
import pytest

from conftest import run_cli


def _kinds(tree):
    if isinstance(tree, dict):
        return {k: _kinds(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [type(tree).__name__, [_kinds(v) for v in tree]]
    if hasattr(tree, "shape") and not isinstance(tree, np.generic):
        return "array"
    return [type(tree).__name__, repr(tree)]


def _object(paddle):
    return {"w": paddle.ones([2]),
            "LR_Scheduler": {"best": np.float32(0.0729), "lr": np.float32(0.010000001),
                             "last_epoch": 3},
            "loss": np.float64(0.1), "step": np.int64(9), "better": np.bool_(True),
            "small": [np.int8(-3), np.uint8(200), np.int16(-7), np.uint16(9), np.int32(5),
                      np.uint32(7)], "nan": np.float32("nan"), "plain": (1.5, 2, True)}


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_numpy_scalars_both_ways(paddle_np, tmp_path, protocol):
    import pdckpt

    paddle, _ = paddle_np
    obj = _object(paddle)
    theirs, ours = io.BytesIO(), io.BytesIO()
    paddle.save(obj, theirs, protocol=protocol)
    pdckpt.save(obj, ours, protocol=protocol, numpy_module="numpy._core")
    assert ours.getvalue() == theirs.getvalue()
    want = _kinds(paddle.load(io.BytesIO(theirs.getvalue())))
    assert want["LR_Scheduler"]["best"][0] == "float32"
    assert _kinds(pdckpt.load(io.BytesIO(theirs.getvalue()))) == want
    assert _kinds(pdckpt.load(io.BytesIO(theirs.getvalue()), return_numpy=True)) == want
    src, out = tmp_path / "s.pdparams", tmp_path / "o.pdparams"
    src.write_bytes(theirs.getvalue())
    run_cli("convert", src, out, "--protocol", protocol, "--numpy-module", "numpy._core",
            "--no-fsync", check=0)
    assert out.read_bytes() == theirs.getvalue()


def test_scalars_of_every_width_stay_numpy_scalars(paddle_np):
    """float16, uint64 beyond int64 (held as the big int it is) and complex scalars: the numpy
    scalars paddle.load gives; a plain int beyond int64 stays a plain int."""
    import pdckpt

    paddle, _ = paddle_np
    buf = io.BytesIO()
    obj = {"h": np.float16(0.5), "u": np.uint64(2**63 + 5), "s": np.uint64(7), "big": 2**63 + 5,
           "c": np.complex128(1 - 1j)}
    paddle.save(obj, buf)
    got = pdckpt.load(io.BytesIO(buf.getvalue()))
    assert got == obj
    assert [type(got[k]) for k in obj] == [np.float16, np.uint64, np.uint64, int, np.complex128]
    again = io.BytesIO()
    pdckpt.save(got, again, numpy_module="numpy._core" if int(np.__version__.split(".")[0]) >= 2
                else "numpy.core")
    assert again.getvalue() == buf.getvalue()
