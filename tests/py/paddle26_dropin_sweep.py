# SPDX-License-Identifier: Apache-2.0
"""Runs under Paddle 2.6 with pdckpt importable (tests/py/test_paddle26_interop.py): paddle.save
and pdckpt.save of the same objects give the same bytes, and paddle.load and pdckpt.load of
Paddle's file the same objects (types, keys, nesting, dtypes, shapes, names, bytes).  Prints one
line per difference and "ok" when there is none."""
import collections
import io
import sys
import warnings

warnings.filterwarnings("ignore")
import numpy as np  # noqa: E402
import paddle  # noqa: E402

import pdckpt  # noqa: E402
from load_describe import describe  # noqa: E402  (beside this script)


def objects():
    paddle.seed(2)
    t = lambda *shape: paddle.randn(list(shape) or [2])  # noqa: E731
    lin = paddle.nn.Linear(3, 2)
    sched = paddle.optimizer.lr.LinearWarmup(paddle.optimizer.lr.StepDecay(0.1, 1), 2, 0.0, 0.1)
    opt = paddle.optimizer.Adam(sched, parameters=lin.parameters())
    lin(paddle.ones([1, 3])).mean().backward()
    opt.step()
    sched.step()
    return {
        "bare tensor": t(3), "list": [t(), t(1)], "tuple": (t(), 1, "x"),
        "int keys": {1: t(), 2: "x"}, "dict of ndarrays": {"a": np.ones(2), "b": np.array(3.0)},
        "ndarray in a state dict's nested dict": {"w": t(), "sub": {"a": np.ones(3)}},
        "tensor and ndarray in a list": [t(), np.ones(3)],
        "numpy scalars": {"h": [np.float16(0.5), np.float16("nan")], "u": np.uint64(5),
                          "f": np.float32(0.1), "i": np.int8(-2)},
        "0-d and empty": {"a": paddle.to_tensor(3.0), "e": paddle.zeros([0, 3])},
        "every dtype": {dt: paddle.ones([2]).astype(dt) for dt in
                        ["bool", "uint8", "int8", "int16", "int32", "int64", "float16",
                         "bfloat16", "float32", "float64", "complex64", "complex128"]},
        "state dict": lin.state_dict(), "optimizer with nested scheduler": opt.state_dict(),
        "checkpoint": {"model": lin.state_dict(), "opt": opt.state_dict(), "epoch": 1},
        "OrderedDict": collections.OrderedDict(a=t()), "str": "s", "none": None,
        "set": {"s": {1, 2}},
        # (no defaultdict: paddle.load 2.6 refuses one, 3.x gives it, and so does pdckpt)
        "complex, lone surrogates": {"c": [complex(1, -2), 1j], "k\udc80": "x\ud800"},
        "dicts without tensors": {"cfg": {"lr": 0.1}, "m": {"a": np.ones(2)}},
        # np.array() of a transposed tensor is F-contiguous: pickled is_fortran, memory as is
        "transposed tensors": {"t": t(4, 6).T, "r": t(2, 3, 4).transpose([2, 1, 0]),
                               "n": t(2, 3, 4).transpose([0, 2, 1]), "1xN": t(1, 3).T},
        "F-order arrays beside a tensor": [t(), np.asfortranarray(np.ones((2, 3))),
                                           np.arange(12.0).reshape(3, 4).T],
    }


def main():
    assert paddle.__version__.startswith("2.6"), paddle.__version__
    bad = []
    for case, obj in objects().items():
        for protocol in (2, 3, 4):
            theirs, ours = io.BytesIO(), io.BytesIO()
            paddle.save(obj, theirs, protocol=protocol)
            # NumPy arrays alone: pdckpt's name table unless asked for paddle.save's layout
            layout = {"pickle_layout": "generic"} if case == "dict of ndarrays" else {}
            pdckpt.save(obj, ours, protocol=protocol, numpy_module="numpy.core", **layout)
            if ours.getvalue() != theirs.getvalue():
                bad.append(f"bytes differ: {case} (protocol {protocol})")
            for return_numpy in (False, True):
                want = describe(paddle.load(io.BytesIO(theirs.getvalue()),
                                            return_numpy=return_numpy))
                got = describe(pdckpt.load(io.BytesIO(theirs.getvalue()),
                                           return_numpy=return_numpy))
                if got != want:
                    bad.append(f"load differs: {case} (protocol {protocol}, return_numpy="
                               f"{return_numpy}): {[g for g, w in zip(got, want) if g != w][:1]}")
    bad += binary_and_static()
    print("\n".join(bad) if bad else "ok")
    return 1 if bad else 0


def binary_and_static():
    """use_binary_format=True of every dtype, 0-d, empty and a LoDTensor (2.6's DenseTensor:
    pdckpt raised AttributeError, core.DenseTensor, for every such save), and loads in
    static-graph mode (DenseTensors: the same name)."""
    bad = []
    dense = paddle.base.core.LoDTensor()
    dense.set(np.arange(6, dtype="int32").reshape(2, 3), paddle.CPUPlace())
    dtypes = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16",
              "float32", "float64", "complex64", "complex128"]
    cases = {dt: paddle.to_tensor([[0.5, -2.0, 3.0]]).astype(dt) for dt in dtypes}
    cases.update({"0-d": paddle.to_tensor(2.5), "empty": paddle.zeros([0, 3]),
                  "LoDTensor": dense})  # (an ndarray: 2.6 refuses it, NotImplementedError)
    for case, obj in cases.items():
        theirs, ours = io.BytesIO(), io.BytesIO()
        paddle.save(obj, theirs, use_binary_format=True)
        try:
            pdckpt.save(obj, ours, use_binary_format=True)
        except Exception as e:  # noqa: BLE001  (every failure is a difference to report)
            bad.append(f"binary save failed: {case}: {type(e).__name__}: {e}")
            continue
        if ours.getvalue() != theirs.getvalue():
            bad.append(f"binary bytes differ: {case}")
        if describe(pdckpt.load(io.BytesIO(theirs.getvalue()))) != \
                describe(paddle.load(io.BytesIO(theirs.getvalue()))):
            bad.append(f"binary load differs: {case}")
    state = io.BytesIO()
    paddle.save({"w": cases["float32"], "b": cases["int64"], "s": cases["0-d"]}, state)
    paddle.enable_static()
    try:
        for return_numpy in (False, True):
            got = describe(pdckpt.load(io.BytesIO(state.getvalue()), return_numpy=return_numpy))
            want = describe(paddle.load(io.BytesIO(state.getvalue()), return_numpy=return_numpy))
            if got != want:
                bad.append(f"static-mode load differs (return_numpy={return_numpy}): "
                           f"{[g for g, w in zip(got, want) if g != w][:1]}")
    except Exception as e:  # noqa: BLE001
        bad.append(f"static-mode load failed: {type(e).__name__}: {e}")
    finally:
        paddle.disable_static()
    return bad


if __name__ == "__main__":
    sys.exit(main())
