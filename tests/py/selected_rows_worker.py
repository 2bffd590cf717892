# SPDX-License-Identifier: Apache-2.0
"""The Paddle side of test_selected_rows_rules.py, run in an older Paddle's venv (1.8: Python 3.7).

  write18 DIR   fluid.io.save_persistables of a program with a SELECTED_ROWS table as Paddle
                initialises one (uniform_random: capacity rows, no row ids yet) beside a sparse
                embedding trained a step; DIR/truth.json: what Paddle holds in its scope
  read18 DIR    load_persistables of DIR/back (pdckpt's re-write): prints Paddle's table as JSON
  write26 DIR   paddle.save(SelectedRows, use_binary_format=True): rows with repeats, unsorted,
                none; DIR/truth.json
  read26 DIR    paddle.load of each DIR/back/<name>: prints them as JSON
"""
import json
import os
import sys

import numpy as np


def describe(sr):
    value = np.array(sr.get_tensor())
    return {"rows": [int(r) for r in sr.rows()], "height": int(sr.height()),
            "shape": list(value.shape), "value": value.ravel().tolist()}


def program18():
    import paddle.fluid as fluid
    import paddle.fluid.core as core
    main, startup = fluid.Program(), fluid.Program()
    with fluid.program_guard(main, startup):
        for prog in (main, startup):
            var = prog.global_block().create_var(
                name="table", type=core.VarDesc.VarType.SELECTED_ROWS, shape=[10, 4],
                dtype="float32", persistable=True)
        startup.global_block().append_op(
            type="uniform_random", outputs={"Out": var},
            attrs={"shape": [10, 4], "min": -1.0, "max": 1.0, "seed": 7, "dtype": var.dtype})
        ids = fluid.data(name="ids", shape=[-1, 1], dtype="int64")
        emb = fluid.embedding(ids, size=[10, 4], is_sparse=True)
        fluid.optimizer.SGD(0.1).minimize(fluid.layers.reduce_mean(emb))
    return fluid, main, startup


def write18(d):
    fluid, main, startup = program18()
    exe = fluid.Executor(fluid.CPUPlace())
    exe.run(startup)
    exe.run(main, feed={"ids": np.array([[1], [3], [3]], dtype="int64")})
    fluid.io.save_persistables(exe, os.path.join(d, "vars"), main)
    table = fluid.global_scope().find_var("table").get_selected_rows()
    with open(os.path.join(d, "truth.json"), "w") as f:
        json.dump({"table": describe(table)}, f)


def read18(d):
    fluid, main, startup = program18()
    exe = fluid.Executor(fluid.CPUPlace())
    exe.run(startup)
    fluid.io.load_persistables(exe, os.path.join(d, "back"), main)
    print(json.dumps({"table": describe(fluid.global_scope().find_var("table").get_selected_rows())}))


CASES26 = {  # name: (rows, height, value rows); 2.x writes what its SelectedRows holds
    "grad": ([7, 1, 7, 3], 8, 4),   # a sparse gradient: ids as looked up, repeats and all
    "table": ([], 16, 16),          # capacity, no ids yet
    "partial": ([5, 0], 6, 3),      # fewer ids than capacity
    "empty": ([], 0, 0),
}


def write26(d):
    import paddle
    core = paddle.base.core if hasattr(paddle, "base") else paddle.fluid.core
    truth = {}
    for name, (rows, height, n) in CASES26.items():
        sr = core.SelectedRows(rows, height)
        value = np.arange(n * 3, dtype=np.float32).reshape(n, 3) / 7
        sr.get_tensor().set(value, paddle.CPUPlace())
        paddle.save(sr, os.path.join(d, name), use_binary_format=True)
        truth[name] = describe(paddle.load(os.path.join(d, name)))
    with open(os.path.join(d, "truth.json"), "w") as f:
        json.dump(truth, f)


def read26(d):
    import paddle
    back = os.path.join(d, "back")
    print(json.dumps({n: describe(paddle.load(os.path.join(back, n))) for n in sorted(os.listdir(back))}))


if __name__ == "__main__":
    {"write18": write18, "read18": read18, "write26": write26, "read26": read26}[sys.argv[1]](sys.argv[2])
