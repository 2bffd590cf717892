# SPDX-License-Identifier: Apache-2.0
"""Runs inside the Paddle 1.8.5 venv (Python 3.7; tests/py/test_paddle18_interop.py).

`write DIR`: Paddle 1.8 trains a small dygraph model and a static program and saves them with
every 1.8 API (save_dygraph, fluid.save, save_persistables with and without filename,
save_inference_model combined and separate); what it holds is recorded in DIR/truth/<tag>.npz
(name -> array, dtype and bytes as Paddle holds them) and DIR/truth.json.
`read DIR JOBS.json`: each job loads files with the 1.8 API it names into a fresh model or scope
and records what Paddle got in DIR/got/<tag>.npz and DIR/got.json; "resume" jobs continue
training from the files and record the losses.  All 1.8 work of a test run is two processes."""
import json
import os
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")
import paddle.fluid as fluid  # noqa: E402
from paddle.fluid.dygraph import BatchNorm, Linear, to_variable  # noqa: E402

PLACE = fluid.CPUPlace()
STEPS_BEFORE, STEPS_AFTER = 3, 4
# One variable per dtype 1.8 holds (empty included).  1.8's CPU `save` op has no float16, bool
# or uint8 kernel, so the static main program (saved per variable too) holds only the rest;
# the "wide" program holds all of them and is saved by fluid.save and save_combine.
WIDE = [("g_f32", "float32", (2, 3)), ("g_f16", "float16", (4,)), ("g_f64", "float64", (2,)),
        ("g_i64", "int64", (2, 2)), ("g_i32", "int32", (3,)), ("g_i16", "int16", (2,)),
        ("g_i8", "int8", (3,)), ("g_u8", "uint8", (5,)), ("g_b", "bool", (4,)),
        ("g_empty", "float32", (0, 3)), ("g_empty_i64", "int64", (0,))]
NO_SAVE_KERNEL = {"float16", "bool", "uint8"}
WIDE_NO_LOD = [(name, dtype, shape, []) for name, dtype, shape in WIDE]
# Sequence data: LoD as recursive sequence lengths (2 sequences of 2 and 1 rows; 2 sequences of
# 1 and 2 subsequences of 1, 1 and 2 rows).
LOD = [("seq", "float32", (3, 2), [[2, 1]]), ("seq2", "int64", (4, 1), [[1, 2], [1, 1, 2]])]
DTYPE_OF = {fluid.core.VarDesc.VarType.FP32: "float32", fluid.core.VarDesc.VarType.FP16: "float16",
            fluid.core.VarDesc.VarType.FP64: "float64", fluid.core.VarDesc.VarType.INT64: "int64",
            fluid.core.VarDesc.VarType.INT32: "int32", fluid.core.VarDesc.VarType.INT16: "int16",
            fluid.core.VarDesc.VarType.INT8: "int8", fluid.core.VarDesc.VarType.UINT8: "uint8",
            fluid.core.VarDesc.VarType.BOOL: "bool"}


def values(dtype, shape, seed):
    """Values that show any change of bits: negatives, -0.0, inf and NaN among the floats."""
    rng = np.random.RandomState(seed)
    a = (rng.standard_normal(shape) * 50)
    if dtype == "bool":
        return a > 0
    a = a.astype(dtype)
    if a.dtype.kind == "f" and a.size >= 4:
        a.flat[:3] = [-0.0, np.inf, np.nan]
    return a


def save_npz(path, arrays):
    np.savez(path, **{k.replace("/", "|"): v for k, v in arrays.items()})


class Net(fluid.dygraph.Layer):
    def __init__(self):
        super(Net, self).__init__()
        self.fc1 = Linear(4, 6, act="relu")
        self.bn = BatchNorm(6)
        self.fc2 = Linear(6, 2)

    def forward(self, x):
        return self.fc2(self.bn(self.fc1(x)))


def dygraph_model(kind):
    """Net + Adam with a piecewise LR schedule ("adam"), or + Momentum with ReduceLROnPlateau
    ("plateau", whose LR_Scheduler holds NumPy float32 scalars), named as in every process."""
    with fluid.unique_name.guard():
        net = Net()
        if kind == "adam":
            sched = fluid.dygraph.PiecewiseDecay([2, 5], [0.1, 0.05, 0.02], 0)
            opt = fluid.optimizer.AdamOptimizer(sched, parameter_list=net.parameters())
        else:
            sched = fluid.dygraph.ReduceLROnPlateau(0.3, decay_rate=0.5, patience=0)
            opt = fluid.optimizer.MomentumOptimizer(sched, 0.9, parameter_list=net.parameters())
    return net, opt, sched


def train(model, steps):
    net, opt, sched = model
    x = to_variable(np.linspace(-1, 1, 20, dtype="float32").reshape(5, 4))
    t = to_variable(np.linspace(1, -2, 10, dtype="float32").reshape(5, 2))
    losses = []
    for _ in range(steps):
        loss = fluid.layers.reduce_mean(fluid.layers.square(net(x) - t))
        loss.backward()
        opt.minimize(loss)
        net.clear_gradients()
        if isinstance(sched, fluid.dygraph.ReduceLROnPlateau):
            sched.step(loss)
        losses.append(loss.numpy().tobytes().hex())
    return losses


def typed(tree):
    """A LR_Scheduler dict as JSON: each value with its Python type's name."""
    return {k: [type(v).__name__, v.item() if isinstance(v, np.generic) else v]
            for k, v in tree.items()}


def state_arrays(state):
    return {k: v.numpy() for k, v in state.items() if hasattr(v, "numpy")}


def write_dygraph(d, meta):
    with fluid.dygraph.guard(PLACE):
        fluid.default_startup_program().random_seed = 7
        fluid.default_main_program().random_seed = 7
        for kind, prefix in (("adam", "m"), ("plateau", "pl")):
            model = dygraph_model(kind)
            net, opt, _ = model
            train(model, STEPS_BEFORE)
            fluid.dygraph.save_dygraph(net.state_dict(), os.path.join(d, "dy", prefix))
            fluid.dygraph.save_dygraph(opt.state_dict(), os.path.join(d, "dy", prefix))
            save_npz(os.path.join(d, "truth", prefix + "_params.npz"),
                     state_arrays(net.state_dict()))
            save_npz(os.path.join(d, "truth", prefix + "_opt.npz"), state_arrays(opt.state_dict()))
            meta[prefix + "_names"] = {k: v.name for k, v in net.state_dict().items()}
            meta[prefix + "_lr"] = typed(opt.state_dict()["LR_Scheduler"])
            meta[prefix + "_uninterrupted"] = train(model, STEPS_AFTER)
        # A dict of variables that are no Parameters: save_dygraph writes it as .pdopt.
        dt = {"t_" + name: to_variable(values(dtype, shape, i), name="v_" + name)
              for i, (name, dtype, shape) in enumerate(WIDE)}
        fluid.dygraph.save_dygraph(dt, os.path.join(d, "dy", "dt"))
        save_npz(os.path.join(d, "truth", "dy_dt.npz"), state_arrays(dt))
        meta["dy_dt_names"] = {k: v.name for k, v in dt.items()}


def static_program(kind):
    """The static main program "st" (fc, fc, Adam with an exponential-decay LR, extra
    persistables of the dtypes 1.8 saves per variable), the "wide" program (one variable per
    dtype) or the "lod" program (variables with 1 and 2 LoD levels)."""
    main, start = fluid.Program(), fluid.Program()
    with fluid.program_guard(main, start), fluid.unique_name.guard():
        block = main.global_block()
        if kind != "st":
            for name, dtype, shape, lod in (WIDE_NO_LOD if kind == "wide" else LOD):
                block.create_var(name=name, shape=shape, dtype=dtype, persistable=True,
                                 lod_level=len(lod))
            return main, start, None, None
        x = fluid.data("x", [None, 4], "float32")
        y = fluid.layers.fc(fluid.layers.fc(x, 5, act="relu"), 2)
        loss = fluid.layers.reduce_mean(fluid.layers.square(y))
        for name, dtype, shape in WIDE:
            if dtype not in NO_SAVE_KERNEL:
                block.create_var(name=name, shape=shape, dtype=dtype, persistable=True)
        lr = fluid.layers.exponential_decay(0.1, 2, 0.5)
        fluid.optimizer.Adam(lr).minimize(loss)
    return main, start, y, loss


def persistables(program):
    return [v for v in program.list_vars() if fluid.io.is_persistable(v)]


def scope_arrays(program):
    scope = fluid.global_scope()
    return {v.name: np.array(scope.find_var(v.name).get_tensor()) for v in persistables(program)}


def fresh_scope(program, start):
    """Runs the startup program, then zeroes every persistable: whatever a load leaves is then
    visibly the file's."""
    fluid.Executor(PLACE).run(start)
    scope = fluid.global_scope()
    for v in persistables(program):
        shape = [int(s) for s in v.shape]
        scope.var(v.name).get_tensor().set(np.zeros(shape, DTYPE_OF[v.dtype]), PLACE)


X = np.linspace(-2, 2, 12, dtype="float32").reshape(3, 4)


def static_train(main, loss, steps):
    exe = fluid.Executor(PLACE)
    return [exe.run(main, feed={"x": X}, fetch_list=[loss])[0].tobytes().hex()
            for _ in range(steps)]


def write_lod(d, meta):
    """1.8 saves LoD tensors one per file and combined (fluid.save's pickles drop LoD)."""
    main, start, _, _ = static_program("lod")
    exe = fluid.Executor(PLACE)
    with fluid.scope_guard(fluid.Scope()):
        for i, (name, dtype, shape, lod) in enumerate(LOD):
            t = fluid.global_scope().var(name).get_tensor()
            t.set(values(dtype, shape, 80 + i), PLACE)
            t.set_recursive_sequence_lengths(lod)
        fluid.io.save_persistables(exe, os.path.join(d, "lod_v"), main)
        fluid.io.save_persistables(exe, os.path.join(d, "lod_c"), main, filename="all")
        os.makedirs(os.path.join(d, "lod"))
        with open(os.path.join(d, "lod", "m.pdmodel"), "wb") as f:
            f.write(main.desc.serialize_to_string())
        save_npz(os.path.join(d, "truth", "lod.npz"), scope_arrays(main))
        meta["lod"] = scope_lod(main)


def scope_lod(program):
    scope = fluid.global_scope()
    lod = {v.name: scope.find_var(v.name).get_tensor().recursive_sequence_lengths()
           for v in persistables(program)}
    return {k: v for k, v in lod.items() if v}


def write_static(d, wide, meta):
    tag = "wide" if wide else "st"
    main, start, y, loss = static_program(tag)
    exe = fluid.Executor(PLACE)
    with fluid.scope_guard(fluid.Scope()):
        exe.run(start)
        for i, (name, dtype, shape) in enumerate(WIDE):
            if main.global_block().has_var(name):
                fluid.global_scope().var(name).get_tensor().set(values(dtype, shape, 50 + i), PLACE)
        if not wide:
            static_train(main, loss, STEPS_BEFORE)
        fluid.save(main, os.path.join(d, tag, "m"))
        fluid.io.save_persistables(exe, os.path.join(d, tag + "_c"), main, filename="all")
        save_npz(os.path.join(d, "truth", tag + ".npz"), scope_arrays(main))
        if wide:
            return
        fluid.io.save_persistables(exe, os.path.join(d, "st_v"), main)
        fluid.io.save_inference_model(os.path.join(d, "inf"), ["x"], [y], exe, main_program=main)
        fluid.io.save_inference_model(os.path.join(d, "infc"), ["x"], [y], exe, main_program=main,
                                      model_filename="model", params_filename="params")
        meta["st_uninterrupted"] = static_train(main, loss, STEPS_AFTER)


def write(d):
    os.makedirs(os.path.join(d, "truth"))
    meta = {}
    write_dygraph(d, meta)
    write_static(d, False, meta)
    write_static(d, True, meta)
    write_lod(d, meta)
    np.save(os.path.join(d, "x.npy"), X)
    json.dump(meta, open(os.path.join(d, "truth.json"), "w"))


def read_dygraph(job, got):
    params, opt = fluid.dygraph.load_dygraph(job["path"], keep_name_table=True)
    names = params.pop("StructuredToParameterName@@", None)
    out = {"params": {k: v for k, v in params.items() if isinstance(v, np.ndarray)}}
    got["names"] = names
    got["param_types"] = {k: type(v).__name__ for k, v in params.items()}
    if opt is not None:
        got["opt_names"] = opt.pop("StructuredToParameterName@@", None)
        got["lr"] = typed(opt.pop("LR_Scheduler", {}))
        got["opt_types"] = {k: type(v).__name__ for k, v in opt.items()}
        out["opt"] = {k: v for k, v in opt.items() if isinstance(v, np.ndarray)}
    return out


def read_resume(job, got):
    with fluid.dygraph.guard(PLACE):
        model = dygraph_model(job["model"])
        params, state = fluid.dygraph.load_dygraph(job["path"])
        model[0].set_dict(params)
        model[1].set_dict(state)
        got["losses"] = train(model, STEPS_AFTER)
        net = model[0]
        return {"params": state_arrays(net.state_dict())}


def read_static(job, got):
    main, start, _, loss = static_program(job["program"])
    exe = fluid.Executor(PLACE)
    with fluid.scope_guard(fluid.Scope()):
        fresh_scope(main, start)
        if job["api"] == "fluid.load":
            fluid.load(main, job["path"], exe)
        else:
            fluid.io.load_persistables(exe, job["path"], main, filename=job.get("filename"))
        loaded = scope_arrays(main)
        got["lod"] = scope_lod(main)
        if loss is not None:  # training continues from what was loaded
            got["losses"] = static_train(main, loss, STEPS_AFTER)
        return {"vars": loaded}


def read_inference(job, got):
    exe = fluid.Executor(PLACE)
    with fluid.scope_guard(fluid.Scope()):
        prog, feeds, fetches = fluid.io.load_inference_model(
            job["path"], exe, model_filename=job.get("model"), params_filename=job.get("params"))
        y, = exe.run(prog, feed={feeds[0]: X}, fetch_list=fetches)
        got["feeds"] = feeds
        return {"vars": scope_arrays(prog), "y": {"y": y}}


READERS = {"load_dygraph": read_dygraph, "resume": read_resume, "fluid.load": read_static,
           "load_persistables": read_static, "load_inference_model": read_inference}


def read(d, jobs_file):
    os.makedirs(os.path.join(d, "got"))
    meta = {}
    for job in json.load(open(jobs_file)):
        got = {}
        try:
            if job["api"] == "load_dygraph":
                with fluid.dygraph.guard(PLACE):
                    arrays = read_dygraph(job, got)
            else:
                arrays = READERS[job["api"]](job, got)
            for part, tree in arrays.items():
                save_npz(os.path.join(d, "got", "%s.%s.npz" % (job["tag"], part)), tree)
        except Exception as e:  # recorded: the test names the job and Paddle's error
            got["error"] = "%s: %s" % (type(e).__name__, str(e).strip().splitlines()[-1:])
        meta[job["tag"]] = got
    json.dump(meta, open(os.path.join(d, "got.json"), "w"), default=lambda o: o.item())


if __name__ == "__main__":
    import paddle

    assert paddle.__version__ == "1.8.5", paddle.__version__
    write(sys.argv[2]) if sys.argv[1] == "write" else read(sys.argv[2], sys.argv[3])
