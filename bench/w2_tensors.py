# SPDX-License-Identifier: Apache-2.0
"""How cheaply can a load hand out 100,000 small paddle.Tensors (issue 18, W2)?  Times, in one
process and interleaved, for a pdckpt-written W2 pickle (`bench_child.py make W2 DIR 1`, file
DIR/state.pdparams):

  paddle.load                      Paddle's own load
  pdckpt.load                      today's drop-in load: a paddle.Tensor(dense, place) per tensor
  numpy + Tensor(dense) each       pdckpt.load(return_numpy=True), then what the drop-in load does
                                   per tensor (from_dlpack + paddle.Tensor(dense, place) + name)
  numpy + one tensor, unbind       pdckpt.load(return_numpy=True), the equal-shaped tensors
                                   gathered into one array (a copy), one paddle.Tensor of it and
                                   paddle.unbind -> 100,000 tensors in one Paddle call, + names
                                   (views sharing one in-place version counter: not usable as is)
  numpy + one tensor, unstack      the same with paddle.unstack (copies: what pdckpt.load does now,
                                   py_paddle_batch.c, there without the gather for its own files)

    python bench/w2_tensors.py DIR/state.pdparams [ROUNDS]
"""
import gc
import os
import statistics
import sys
import time
import warnings

warnings.filterwarnings("ignore")
import numpy as np  # noqa: E402
import paddle  # noqa: E402
from paddle.base import core  # noqa: E402

import pdckpt  # noqa: E402

PLACE = paddle.CPUPlace()


def per_tensor(arrays):
    out = {}
    for k, a in arrays.items():
        t = paddle.Tensor(core.from_dlpack(a.__dlpack__()), PLACE)
        t.name = k
        out[k] = t
    return out


def unbound(arrays, split=None):
    """Runs of one shape and dtype become one tensor split by paddle.unbind (views of it) or
    paddle.unstack (copies)."""
    keys = list(arrays)
    first = arrays[keys[0]]
    if any(a.shape != first.shape or a.dtype != first.dtype for a in arrays.values()):
        raise SystemExit("this sketch handles one shape and dtype (W2)")
    big = np.stack([arrays[k] for k in keys])  # the gather: one copy into one allocation
    parts = (split or paddle.unbind)(paddle.Tensor(core.from_dlpack(big.__dlpack__()), PLACE), 0)
    for k, t in zip(keys, parts):
        t.name = k
    return dict(zip(keys, parts))


def main():
    path, rounds = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3
    ways = {
        "paddle.load": lambda: paddle.load(path),
        "pdckpt.load": lambda: pdckpt.load(path),
        "numpy + Tensor(dense) each": lambda: per_tensor(pdckpt.load(path, return_numpy=True)),
        "numpy + one tensor, unbind": lambda: unbound(pdckpt.load(path, return_numpy=True)),
        "numpy + one tensor, unstack": lambda: unbound(pdckpt.load(path, return_numpy=True),
                                                       paddle.unstack),
    }
    times = {k: [] for k in ways}
    check = None
    for _ in range(rounds):
        for name, fn in ways.items():
            t0 = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - t0)
            k = next(k for k in out if not k.endswith("@@"))
            v = np.array(out[k])
            check = v if check is None else check
            assert np.array_equal(v, check) and isinstance(out[k], paddle.Tensor), name
            del out
            gc.collect()
    n = sum(1 for k in pdckpt.open(path).keys() if not k.endswith("@@"))
    print(f"{n} tensors; load average {os.getloadavg()[0]:.1f}")
    for name, xs in times.items():
        m = statistics.median(xs)
        print(f"{name:28s} {m * 1e3:8.1f} ms ({min(xs) * 1e3:.1f}-{max(xs) * 1e3:.1f}), "
              f"{m / n * 1e6:.2f} us/tensor")


if __name__ == "__main__":
    main()
