# SPDX-License-Identifier: Apache-2.0
"""Runs under Paddle 1.8.5 (Python 3.7; tests/py/test_fortran_order.py): `write DIR` saves
F-contiguous NumPy arrays with fluid.save_dygraph (DIR/f.pdopt) and their values (DIR/f.npz);
`read DIR` loads DIR/c.pdparams and DIR/c.pdopt (written by pdckpt) with fluid.load_dygraph
and prints "ok" when the arrays of both equal DIR/f.npz's."""
import sys
import warnings

warnings.filterwarnings("ignore")
import numpy as np  # noqa: E402
import paddle.fluid as fluid  # noqa: E402


def arrays():
    return {"w": np.asfortranarray(np.arange(24, dtype=np.float32).reshape(2, 3, 4)),
            "i": np.arange(6, dtype=np.int64).reshape(2, 3).T}


def main(cmd, d):
    with fluid.dygraph.guard():
        if cmd == "write":
            fluid.dygraph.save_dygraph(arrays(), d + "/f")
            np.savez(d + "/f.npz", **arrays())
            return 0
        params, opt = fluid.dygraph.load_dygraph(d + "/c")
        want = np.load(d + "/f.npz")
        bad = [k for k in want.files for got in (params, opt)
               if not np.array_equal(got[k], want[k]) or got[k].dtype != want[k].dtype]
        print("differ: %s" % bad if bad else "ok")
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
