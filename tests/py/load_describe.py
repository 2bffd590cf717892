# SPDX-License-Identifier: Apache-2.0
"""Everything a caller can see of a load result, leaf by leaf: the one describer that
test_paddle_sweep.py (Paddle 3.x, under pytest) and paddle26_dropin_sweep.py (a script run by
Paddle 2.6's interpreter) compare paddle.load's and pdckpt.load's results with.  Works on both
Paddles: 2.6 has no Tensor.persistable for every tensor and calls DenseTensor LoDTensor."""
import re
import struct

import numpy as np
import paddle

AUTO_NAME = re.compile(r"^(generated_tensor|eager_tmp)_\d+$")
DENSE = getattr(paddle.base.core, "DenseTensor", None) or paddle.base.core.LoDTensor


def describe(x, path="", out=None):
    out = [] if out is None else out
    kind = f"{type(x).__module__}.{type(x).__qualname__}"
    if isinstance(x, dict):
        out.append((path, kind, [repr(k) for k in x]))
        for k, v in x.items():
            describe(v, f"{path}/{k!r}", out)
    elif isinstance(x, (list, tuple)):
        out.append((path, kind, len(x)))
        for i, v in enumerate(x):
            describe(v, f"{path}/{i}", out)
    elif isinstance(x, paddle.Tensor):
        bits = x.numpy()  # bfloat16: its uint16 bits
        name = "<auto>" if AUTO_NAME.match(x.name) else x.name
        out.append((path, kind, str(x.dtype), list(x.shape), name, x.stop_gradient,
                    getattr(x, "persistable", None), bits.dtype.str, bits.tobytes()))
    elif isinstance(x, DENSE):
        arr = np.array(x)
        dtype = str(x._dtype()) if hasattr(x, "_dtype") else None
        out.append((path, kind, dtype, list(x.shape()), arr.dtype.str, arr.tobytes()))
    elif isinstance(x, np.ndarray):
        out.append((path, kind, x.dtype.str, x.shape, x.tobytes()))
    elif isinstance(x, np.generic):
        out.append((path, kind, x.dtype.str, x.tobytes()))
    elif isinstance(x, float):
        out.append((path, kind, struct.pack("<d", x)))
    else:
        out.append((path, kind, repr(x)))
    return out
