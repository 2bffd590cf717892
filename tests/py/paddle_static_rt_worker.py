# SPDX-License-Identifier: Apache-2.0
"""Runs under one real Paddle (1.8.5, 2.6.2 or 3.x with FLAGS_enable_pir_api=0) for
tests/py/test_paddle_static_roundtrip.py, everything in this one process: writes a static program's
variables of every dtype and shape that Paddle's static API takes with paddle.static.save
(1.8: fluid.save), save_vars and save_persistables; has the pdckpt CLI (argv[2]) rewrite them
(pickle -> pickle, the triple through --static-out, both through safetensors) and checks that
the rewrites are Paddle's bytes and that Paddle's load_program_state / set_program_state /
static.load take them as its own, and that a static checkpoint converted for its program is
save_persistables(filename=)'s file.  Writes truth.json (dtype, shape, sha256 per variable) and
prints one line per failure, or "ok"."""
import hashlib
import json
import os
import subprocess
import sys
import warnings

warnings.filterwarnings("ignore")
import numpy as np  # noqa: E402
import paddle  # noqa: E402

OLD = paddle.__version__.startswith("1.")
if OLD:
    import paddle.fluid as fluid  # noqa: E402

    static, create = fluid, fluid.layers.create_global_var
    io = fluid.io
else:
    paddle.enable_static()
    static, create, io = paddle.static, paddle.static.create_global_var, paddle.static
DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"]
if OLD:  # 1.8's fill_constant has no int8 / int16 / uint8 kernel
    DTYPES = [d for d in DTYPES if d not in ("int8", "int16", "uint8")]
else:
    DTYPES.append("bfloat16")
SHAPES = {"s": [2, 3], "e": [0, 3], "r": [2, 1, 2, 1, 2, 1, 2, 1, 2]}
if not OLD:
    SHAPES["z"] = []  # 1.8 has no 0-d tensors


def build():
    main, start = static.Program(), static.Program()
    with static.program_guard(main, start):
        for dt in DTYPES:
            for tag, shape in SHAPES.items():
                create(shape=shape, value=0, dtype=dt, persistable=True, name=f"v_{dt}_{tag}")
    exe = static.Executor(paddle.CPUPlace() if not OLD else fluid.CPUPlace())
    exe.run(start)
    return main, exe


def fill(scope, rng):
    truth = {}
    for dt in DTYPES:
        for tag in SHAPES:
            name = f"v_{dt}_{tag}"
            t = scope.find_var(name).get_tensor()
            a = np.array(t)
            if a.size:
                if a.dtype == np.bool_:
                    v = rng.integers(0, 2, a.shape).astype(bool)
                elif a.dtype.kind in "iu":
                    v = rng.integers(0, 100, a.shape).astype(a.dtype)  # bfloat16: uint16 bits
                else:
                    v = rng.standard_normal(a.shape).astype(a.dtype)
                t.set(v, paddle.CPUPlace() if not OLD else fluid.CPUPlace())
            truth[name] = describe(np.array(scope.find_var(name).get_tensor()))
    return truth


def describe(a):
    a = np.asarray(a)
    return [a.dtype.str, list(a.shape), hashlib.sha256(a.tobytes()).hexdigest()]


def cli(*args):
    p = subprocess.run([sys.argv[2], *args], capture_output=True, text=True)
    return p.returncode, p.stderr


def same_bytes(bad, a, b, what):
    if open(a, "rb").read() != open(b, "rb").read():
        bad.append(f"{what}: {b} differs from Paddle's {a}")


def check_state(bad, state, truth, what):
    extra = sorted(set(state) - set(truth))
    if extra:
        bad.append(f"{what}: load_program_state gives keys Paddle's own file does not: {extra}")
    for k, v in truth.items():
        if k not in state or describe(state[k]) != v:
            bad.append(f"{what}: {k} {describe(state[k]) if k in state else 'missing'} != {v}")


def check_load(bad, main, exe, truth, prefix, what):
    state = io.load_program_state(prefix)
    check_state(bad, state, truth, what)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        io.set_program_state(main, state)
    said = [str(w.message)[:120] for w in seen if "not set" in str(w.message)]
    if said:
        bad.append(f"{what}: set_program_state warned {said}")
    scope = static.global_scope()
    for k in truth:  # zero the scope, then static.load / fluid.load must restore every byte
        a = np.array(scope.find_var(k).get_tensor())
        if a.size:
            scope.find_var(k).get_tensor().set(np.zeros_like(a), paddle.CPUPlace() if not OLD
                                               else fluid.CPUPlace())
    (fluid.load(main, prefix, exe) if OLD else static.load(main, prefix, exe))
    got = {k: describe(np.array(scope.find_var(k).get_tensor())) for k in truth}
    if got != truth:
        bad.append(f"{what}: static.load restored {[k for k in truth if got[k] != truth[k]]}")


def main():
    out = sys.argv[1]
    main_prog, exe = build()
    truth = fill(static.global_scope(), np.random.default_rng(0))
    json.dump(truth, open(os.path.join(out, "truth.json"), "w"))
    prefix = os.path.join(out, "ss", "m")
    (fluid.save if OLD else static.save)(main_prog, prefix)  # (1.8 and legacy IR: X.pdmodel)
    everything = [main_prog.global_block().var(k) for k in sorted(truth)]
    # the save op has no bool kernel (1.8: no float16 either)
    storable = [v for v in everything
                if not v.name.startswith("v_bool") and not (OLD and "float16" in v.name)]
    io.save_vars(exe, os.path.join(out, "sep"), main_prog, vars=storable)
    io.save_vars(exe, os.path.join(out, "comb"), main_prog, vars=everything, filename="params")
    if OLD:
        fluid.io.save_persistables(exe, os.path.join(out, "pc"), main_prog, filename="__params__")
    else:
        import paddle.distributed.io as dio

        dio.save_persistables(exe, os.path.join(out, "pc"), main_prog, filename="__params__")
    bad = []
    numpy_module = "numpy._core" if np.__version__ >= "2" else "numpy.core"
    opts = ["--numpy-module", numpy_module, "--protocol", "2" if OLD else "4"]
    w = os.path.join(out, "w")
    steps = [  # (pdckpt convert args, what to compare with Paddle's bytes)
        ([prefix + ".pdopt", w + "/pp.pdopt"], [(prefix + ".pdopt", w + "/pp.pdopt")]),
        ([prefix + ".pdopt", w + "/o.safetensors"], []),
        ([w + "/o.safetensors", w + "/st.pdopt"], [(prefix + ".pdopt", w + "/st.pdopt")]),
        ([prefix, w + "/so", "--static-out"],
         [(prefix + ".pdparams", w + "/so.pdparams"), (prefix + ".pdopt", w + "/so.pdopt")]),
        ([prefix, w + "/t.safetensors"], []),
        ([w + "/t.safetensors", w + "/sto", "--static-out"],
         [(prefix + ".pdparams", w + "/sto.pdparams"), (prefix + ".pdopt", w + "/sto.pdopt")]),
        # the static checkpoint as save_persistables(filename=) writes it, for its program
        ([prefix, w + "/pc.pdiparams", "--out-program", prefix + ".pdmodel"],
         [(os.path.join(out, "pc", "__params__"), w + "/pc.pdiparams")]),
    ]
    for args, pairs in steps:
        to_pickle = not args[1].endswith((".safetensors", ".pdiparams"))
        rc, err = cli("convert", *args, *(opts if to_pickle else []))
        if rc:
            bad.append(f"convert {args}: {err.strip()}")
            continue
        for a, b in pairs:
            same_bytes(bad, a, b, "convert " + " ".join(os.path.basename(x) for x in args))
    check_load(bad, main_prog, exe, truth, prefix, "Paddle's own static save")
    for p in ("so", "sto"):
        if os.path.exists(os.path.join(w, p + ".pdopt")):
            check_load(bad, main_prog, exe, truth, os.path.join(w, p), "pdckpt's " + p)
    print("\n".join(bad) if bad else "ok")


if __name__ == "__main__":
    main()
