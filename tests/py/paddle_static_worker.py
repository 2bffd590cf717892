# SPDX-License-Identifier: Apache-2.0
"""Real Paddle's side of tests/py/test_programs.py, run as a subprocess per IR mode (the mode is
fixed at process start: FLAGS_enable_pir_api=0 for the legacy ProgramDesc IR, unset for PIR).

  export OUT   build small static programs (fc, conv + batch norm, embedding, a training MLP
               with Adam), save them as Paddle does (save_inference_model in prefix and
               separate-file form, jit.save with .pdiparams.info, static persistable saves to
               files, one file and memory) and write OUT/manifest.json: every persistable's
               dtype, shape and sha256 as Paddle's scope holds it.
  check OUT    load what pdckpt wrote (OUT/pdckpt/...): run the inference models on fixed inputs
               and return their outputs; load the static saves and return every variable's
               sha256 from the scope.  Writes OUT/check.json.
"""
import hashlib
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
import numpy as np  # noqa: E402
import paddle  # noqa: E402
from paddle.base import core  # noqa: E402

PIR = os.environ.get("FLAGS_enable_pir_api") != "0"
paddle.enable_static()
EXE = paddle.static.Executor(paddle.CPUPlace())


def digest(arr):
    arr = np.ascontiguousarray(arr)
    return {"dtype": str(arr.dtype), "shape": list(arr.shape),
            "sha256": hashlib.sha256(arr.tobytes()).hexdigest()}


def tensor_digest(t):
    """dtype, dims (as the tensor has them: numpy turns a 0-d DenseTensor into shape (1,)) and
    the sha256 of its bytes."""
    d = digest(np.array(t))
    d["shape"] = list(t.shape())
    return d


def scope_digest(names):
    scope = paddle.static.global_scope()
    return {n: tensor_digest(scope.find_var(n).get_tensor()) for n in names}


def inputs():
    rng = np.random.default_rng(7)
    return {"mlp": {"x": rng.standard_normal((3, 4)).astype("float32")},
            "conv": {"x": rng.standard_normal((2, 1, 6, 6)).astype("float32")},
            "emb": {"ids": rng.integers(0, 10, (3, 5)).astype("int64")}}


def build(kind):
    """A static program with named roles -> parameter names (for the numpy forward)."""
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        if kind == "mlp":
            x = paddle.static.data("x", [None, 4], "float32")
            l1, l2 = paddle.nn.Linear(4, 8), paddle.nn.Linear(8, 3)
            out = l2(paddle.nn.functional.relu(l1(x)))
            roles = {"w1": l1.weight, "b1": l1.bias, "w2": l2.weight, "b2": l2.bias}
        elif kind == "conv":
            x = paddle.static.data("x", [None, 1, 6, 6], "float32")
            conv, bn, fc = paddle.nn.Conv2D(1, 2, 3), paddle.nn.BatchNorm2D(2), paddle.nn.Linear(32, 3)
            bn.eval()
            out = fc(paddle.flatten(paddle.nn.functional.relu(bn(conv(x))), 1))
            roles = {"cw": conv.weight, "cb": conv.bias, "scale": bn.weight, "shift": bn.bias,
                     "mean": bn._mean, "var": bn._variance, "fw": fc.weight, "fb": fc.bias}
        else:
            x = paddle.static.data("ids", [None, 5], "int64")
            emb, fc = paddle.nn.Embedding(10, 4), paddle.nn.Linear(4, 2)
            out = fc(paddle.mean(emb(x), axis=1))
            roles = {"table": emb.weight, "w": fc.weight, "b": fc.bias}
    EXE.run(startup)
    return main, x, out, {k: v.name for k, v in roles.items()}


def program_persistables(program):
    if PIR:
        params, opts = paddle.static.pir_io.get_pir_parameters(program)
        return sorted({v.name for v in params + opts if v.persistable})
    return sorted({v.name for v in program.list_vars() if paddle.framework.io_utils.is_persistable(v)
                   and v.type != core.VarDesc.VarType.RAW})


def export_inference(out, manifest):
    for kind in ("mlp", "conv", "emb"):
        main, x, y, roles = build(kind)
        base = os.path.join(out, kind)
        paddle.static.save_inference_model(base + "/infer/model", [x], [y], EXE, program=main)
        paddle.static.save_inference_model(base + "/sep/model", [x], [y], EXE, program=main,
                                           separate_parameters=True)
        names = program_persistables(main)
        manifest[kind] = {"roles": roles, "vars": scope_digest(names),
                          "ext": ".json" if PIR else ".pdmodel"}


def train_program():
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        x = paddle.static.data("x", [None, 4], "float32")
        y = paddle.static.nn.fc(paddle.static.nn.fc(x, 3, activation="relu"), 2)
        loss = paddle.mean(y)
        paddle.optimizer.Adam(0.01).minimize(loss)
    EXE.run(startup)
    EXE.run(main, feed={"x": np.ones((2, 4), "float32")}, fetch_list=[loss])
    return main


def save_program(main, path):
    if PIR:
        core.serialize_pir_program(main, path, True, False, True)
    else:
        with open(path, "wb") as f:
            f.write(main.desc.serialize_to_string())


def export_static(out, manifest):
    main = train_program()
    d = os.path.join(out, "static")
    os.makedirs(d, exist_ok=True)
    save_program(main, os.path.join(d, "main" + (".json" if PIR else ".pdmodel")))
    if PIR:
        paddle.static.save_vars(EXE, d + "/files", main)
        paddle.static.save_vars(EXE, d + "/one", main, filename="all")
    else:
        paddle.distributed.io.save_persistables(EXE, d + "/files", main)
        paddle.distributed.io.save_persistables(EXE, d + "/one", main, filename="all")
        with open(d + "/memory.bin", "wb") as f:
            f.write(paddle.distributed.io.save_persistables(EXE, None, main))
    manifest["static"] = {"vars": scope_digest(program_persistables(main))}
    if not PIR:
        export_selected_rows(out, manifest)


def sr_program():
    main = paddle.static.Program()
    blk = main.global_block()
    sr = blk.create_var(name="table", type=core.VarDesc.VarType.SELECTED_ROWS, persistable=True,
                        dtype="float32", shape=[10, 2])
    w = blk.create_var(name="w", persistable=True, dtype="float32", shape=[2])
    return main, [sr, w]


def export_selected_rows(out, manifest):
    main, variables = sr_program()
    scope = paddle.static.global_scope()
    t = scope.var("table").get_selected_rows()
    t.set_height(10)
    t.set_rows([0, 5, 9])
    t.get_tensor().set(np.arange(6, dtype="float32").reshape(3, 2), paddle.CPUPlace())
    scope.var("w").get_tensor().set(np.array([1, 2], "float32"), paddle.CPUPlace())
    d = os.path.join(out, "sr")
    paddle.static.save_vars(EXE, d + "/files", main, vars=variables)
    save_program(main, d + "/sr.pdmodel")
    manifest["sr"] = {"rows": [0, 5, 9], "height": 10,
                      "value": digest(np.arange(6, dtype="float32").reshape(3, 2)),
                      "w": digest(np.array([1, 2], "float32"))}


def export_jit(out, manifest):
    paddle.disable_static()
    net = paddle.nn.Sequential(paddle.nn.Linear(4, 3), paddle.nn.BatchNorm1D(3), paddle.nn.Linear(3, 2))
    net.eval()
    paddle.jit.save(net, os.path.join(out, "jit", "net"),
                    input_spec=[paddle.static.InputSpec([None, 4], "float32")])
    manifest["jit"] = {"files": sorted(os.listdir(os.path.join(out, "jit")))}
    paddle.enable_static()


def export(out):
    manifest = {"pir": PIR}
    export_inference(out, manifest)
    export_static(out, manifest)
    export_jit(out, manifest)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f)


# ---- check: load what pdckpt wrote ----

def run_inference(prefix, feed, **kw):
    with paddle.static.scope_guard(paddle.static.Scope()):
        program, feeds, fetches = paddle.static.load_inference_model(prefix, EXE, **kw)
        return EXE.run(program, feed=feed, fetch_list=fetches)[0].tolist()


def check_inference(out, result):
    for kind, feed in inputs().items():
        base = os.path.join(out, "pdckpt", kind)
        result[kind] = {"infer": run_inference(base + "/infer/model", feed)}
        if not PIR:  # the 1.x directory form: __model__ + one file per variable
            result[kind]["sep"] = run_inference(base + "/sep", feed, model_filename="__model__")


def load_and_digest(load, names):
    with paddle.static.scope_guard(paddle.static.Scope()):
        load()
        return scope_digest(names)


def check_static(out, result):
    main = train_program()
    names = program_persistables(main)
    d = os.path.join(out, "pdckpt", "static")
    if PIR:
        result["files"] = load_and_digest(lambda: paddle.static.load_vars(EXE, d + "/files", main), names)
        result["one"] = load_and_digest(
            lambda: paddle.static.load_vars(EXE, d + "/one", main, filename="all"), names)
        return
    io = paddle.distributed.io
    result["files"] = load_and_digest(lambda: io.load_persistables(EXE, d + "/files", main), names)
    result["one"] = load_and_digest(lambda: io.load_persistables(EXE, d + "/one", main, "all"), names)
    with open(d + "/memory.bin", "rb") as f:
        data = f.read()
    result["memory"] = load_and_digest(
        lambda: paddle.static.deserialize_persistables(main, data, EXE), names)
    main, variables = sr_program()
    with paddle.static.scope_guard(paddle.static.Scope()):
        paddle.static.load_vars(EXE, os.path.join(out, "pdckpt", "sr"), main, vars=variables)
        t = paddle.static.global_scope().find_var("table").get_selected_rows()
        result["sr"] = {"rows": list(t.rows()), "height": t.height(),
                        "value": tensor_digest(t.get_tensor()),
                        "w": scope_digest(["w"])["w"]}


def check(out):
    result = {"inference": {}, "static": {}}
    check_inference(out, result["inference"])
    check_static(out, result["static"])
    with open(os.path.join(out, "check.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    {"export": export, "check": check}[sys.argv[1]](sys.argv[2])
