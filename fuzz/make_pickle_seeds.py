#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpus of fuzz_pickle (fuzz/corpus/fuzz_pickle) with Python's own pickle module
and numpy, shaped like what Paddle writes (spec pickle-and-distributed-formats.md §1): state
dicts with a name table, generic objects with Paddle's (name, ndarray) tuple reducer, optimizer
states with nested LR_Scheduler dicts, split big-array slices, every protocol 0-5, and the odd
numpy layouts.  Run it with the project venv's python (numpy needed); it rewrites the corpus."""
import collections
import copyreg
import io
import os
import pickle
import sys
import types

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_pickle")


class Tensor:
    """Stands in for paddle.Tensor: pickled by Paddle's reducer as tuple(((name, ndarray),))."""

    def __init__(self, name, arr):
        self.name, self.arr = name, arr


def reduce_tensor(t):
    return (tuple, ((t.name, t.arr),))


def dumps(obj, protocol):
    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol)
    p.dispatch_table = copyreg.dispatch_table.copy()
    p.dispatch_table[Tensor] = reduce_tensor
    p.dump(obj)
    return buf.getvalue()


class LRDecay:  # a 1.5-style LearningRateDecay object: NEWOBJ + BUILD with its __dict__
    def __init__(self):
        self.step_num, self.step_size, self.dtype = 3, 1, "float32"
        self.learning_rate, self.decay_rate, self.staircase = 0.1, 0.5, True


# Pickled by name as paddle.fluid.dygraph.learning_rate_scheduler.NaturalExpDecay (a stand-in
# module is registered so the pickler can find the class there).
LRDecay.__module__ = "paddle.fluid.dygraph.learning_rate_scheduler"
LRDecay.__qualname__ = LRDecay.__name__ = "NaturalExpDecay"
for _part in ("paddle", "paddle.fluid", "paddle.fluid.dygraph", LRDecay.__module__):
    sys.modules.setdefault(_part, types.ModuleType(_part))  # stand-ins, never the real Paddle
sys.modules[LRDecay.__module__].NaturalExpDecay = LRDecay


def state_dict():
    w = np.arange(6, dtype="float32").reshape(2, 3)
    return {"fc.weight": w, "fc.bias": np.zeros(3, dtype="float32"),
            "StructuredToParameterName@@": {"fc.weight": "linear_0.w_0", "fc.bias": "linear_0.b_0"}}


def optimizer_state():
    return {"linear_0.w_0_moment1_0": np.ones((2, 3), dtype="float32"),
            "linear_0.w_0_beta1_pow_acc_0": np.array([0.9], dtype="float32"),
            "LR_Scheduler": {"last_epoch": 12, "last_lr": 0.005,
                             "LinearWarmup_LR": {"last_epoch": 2, "last_lr": 0.005}},
            "StructuredToParameterName@@": {"linear_0.w_0_moment1_0": "linear_0.w_0_moment1_0"}}


def generic():
    t = Tensor("linear_1.w_0", np.arange(4, dtype="float64"))
    return {"model": collections.OrderedDict(w=t), "epoch": 3, "pair": ("x", np.int8(5)),
            "again": t, "huge": 2**70, "neg": -2**63, "set": {1, 2}, "fs": frozenset([3]),
            "f": np.asfortranarray(np.arange(6, dtype="int16").reshape(2, 3)),
            "be": np.arange(3, dtype=">f4"), "zero_d": np.array(1.5), "empty": np.zeros((0, 2)),
            "bool": np.array([True, False]), "c": np.complex64(1 + 2j), "text": "h\u00e9llo \u2603",
            "bytes": b"\x00\xff", "none": None, "nan": float("nan")}


def split_state():
    a = np.arange(10, dtype="int32")
    return {"StructuredToParameterName@@": {"w": "linear_2.w_0"}, "w@@.0": a[:6], "w@@.1": a[6:],
            "UnpackBigParamInfor@@": {"w": {"OriginShape": (2, 5), "slices": ["w@@.0", "w@@.1"]}}}


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {}
    for proto in range(6):
        seeds[f"state_p{proto}"] = dumps(state_dict(), proto)
        seeds[f"generic_p{proto}"] = dumps(generic(), proto)
    for proto in (2, 4):
        seeds[f"optimizer_p{proto}"] = dumps(optimizer_state(), proto)
        seeds[f"split_p{proto}"] = dumps(split_state(), proto)
        seeds[f"tensor_root_p{proto}"] = dumps(Tensor("w", np.ones(2, dtype="float16")), proto)
    seeds["lr_decay_p2"] = dumps(LRDecay(), 2)
    # Paddle's static DenseTensor reducer: [eval('data', {'data': ndarray})]
    seeds["dense_tensor_eval_p2"] = (
        b"\x80\x02]c__builtin__\neval\nX\x04\x00\x00\x00data}X\x04\x00\x00\x00data"
        + dumps(np.ones(2, dtype="float32"), 2)[2:-1] + b"s\x86Ra.")
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds)} seeds to {OUT}")


if __name__ == "__main__":
    main()
