# SPDX-License-Identifier: Apache-2.0
"""Optional drop-in workloads beside W1-W3 (not in results.json): where a call's fixed costs, not
its bytes, decide.  Each sample is a fresh process timing one contender (pdckpt or Paddle, in
turn, the order swapped every round); medians with min-max of wall and CPU time (user + system,
all threads) and the pdckpt/Paddle ratio of the medians (> 1: pdckpt is faster).

    PYTHONPATH=build/python .venv/bin/python bench/dropin_extra.py [--rounds 7] [--only a,b]

Workloads (files are written warm, in a fresh temporary directory):
  small-load     load of a 1-tensor [64, 64] .pdparams, per call (200 calls in one process)
  small-load-np  the same with return_numpy=True
  small-save     save of it, durable=False against paddle.save, per call (200 calls)
  small-durable  pdckpt.save's default (fsync + rename) against paddle.save + os.fsync
  first-load     the first drop-in load of a process, after `import paddle, pdckpt`
  crowded-save   small-save into a directory that holds 3,000 other files
  protocol2      load of a ResNet-50 state dict that paddle.save wrote with protocol=2
  resnet50       set_state_dict(load(.pdparams)) and load(.pdopt) of ResNet-50 + AdamW
  static-load    load in static-graph mode (core.DenseTensors out) of paddle.static.save's
                 .pdparams of 24 fc layers 1024 x 1024 (100 MB)
  safetensors    ResNet-50 .safetensors into paddle.Tensors: pdckpt.load against
                 paddle.load(path, safetensors=True) (Paddle maps the file: lazy, copy-on-write)
  scalars        drop-in load of 100,000 0-d float32 tensors
  scalars-np     the same with return_numpy=True
  nested         load of [{"w": [16,16], "b": [16], "meta": {...}} x 5,000] (a generic pickle)
  bytesio        load of ResNet-50's state dict from an io.BytesIO
  static-save    save in static-graph mode of main_program.state_dict() (core.DenseTensors) of
                 8 fc layers 1024 x 1024 + Adam (100 MB), durable=False and numpy 2's spelling
                 (numpy_module="numpy._core") against paddle.save;
                 the files are checked byte-equal
`--old PYTHONPATH` adds a third contender, "old": pdckpt imported from there (a before/after
run, interleaved with the others).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CASES = ["small-load", "small-load-np", "small-save", "small-durable", "first-load",
         "crowded-save", "protocol2", "resnet50", "static-load", "safetensors", "scalars",
         "scalars-np", "nested", "bytesio", "static-save"]
# one call, timed as it is (the first call's costs are part of it)
ONE_CALL = ("first-load", "protocol2", "resnet50", "static-load", "safetensors", "scalars",
            "scalars-np", "nested", "bytesio", "static-save")


def setup(case, d):
    import paddle
    paddle.seed(0)
    if case == "protocol2":
        m = paddle.vision.models.resnet50()
        paddle.save(m.state_dict(), f"{d}/m.pdparams", protocol=2)
    elif case == "resnet50":
        m = paddle.vision.models.resnet50()
        opt = paddle.optimizer.AdamW(paddle.optimizer.lr.CosineAnnealingDecay(1e-3, 100),
                                     parameters=m.parameters())
        m(paddle.randn([2, 3, 64, 64])).mean().backward()
        opt.step()
        paddle.save(m.state_dict(), f"{d}/m.pdparams")
        paddle.save(opt.state_dict(), f"{d}/m.pdopt")
    elif case in ("safetensors", "bytesio"):
        import safetensors.paddle
        m = paddle.vision.models.resnet50()
        safetensors.paddle.save_file(dict(m.state_dict()), f"{d}/m.safetensors")
        paddle.save(m.state_dict(), f"{d}/m.pdparams")
    elif case == "static-load":
        static_state(paddle, f"{d}/m")
    elif case in ("scalars", "scalars-np"):
        paddle.save({f"s{i}": paddle.to_tensor(float(i)) for i in range(100000)}, f"{d}/m.pdparams")
    elif case == "nested":
        paddle.save({"layers": [{"w": paddle.randn([16, 16]), "b": paddle.randn([16]),
                                 "meta": {"step": i, "name": f"l{i}"}} for i in range(5000)],
                     "epoch": 3}, f"{d}/m.pdparams")
    else:
        paddle.save({"w": paddle.randn([64, 64])}, f"{d}/m.pdparams")
    if case == "crowded-save":
        os.makedirs(f"{d}/crowd")
        for i in range(3000):
            open(f"{d}/crowd/f{i}", "w").close()


def fc_program(paddle, layers, adam=False):
    """A static program of `layers` fc layers of 1024 x 1024 (and Adam's state), its startup
    run on the CPU; returns the main program."""
    paddle.enable_static()
    main, start = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, start):
        h = paddle.static.data("x", [None, 1024])
        for _ in range(layers):
            h = paddle.static.nn.fc(h, 1024)
        if adam:
            paddle.optimizer.Adam(1e-3).minimize(paddle.mean(h))
    paddle.static.Executor(paddle.CPUPlace()).run(start)
    return main


def static_state(paddle, prefix):
    """paddle.static.save of 24 fc layers of 1024 x 1024 (100 MB of parameters)."""
    paddle.static.save(fc_program(paddle, 24), prefix)


def static_save_call(who, d, paddle, pdckpt):
    """A static program of 8 fc layers 1024 x 1024 + Adam, its state set from a seeded NumPy
    generator (the same bytes in every process); the call saves main.state_dict() and returns the
    file's path (the digest compares the files' bytes, read after the timing)."""
    import pathlib
    import numpy as np
    main = fc_program(paddle, 8, adam=True)
    rng = np.random.default_rng(0)
    state = dict(sorted(main.state_dict().items()))  # (Program.state_dict's order is a set's)
    for t in state.values():
        t.set(rng.standard_normal(t.shape()).astype(np.array(t).dtype), paddle.CPUPlace())
    out = f"{d}/x-{who}.pdparams"
    save = ((lambda: paddle.save(state, out)) if who == "paddle"
            else (lambda: pdckpt.save(state, out, durable=False, numpy_module="numpy._core")))

    def call():
        save()
        return pathlib.Path(out)
    return call


def extra_call(case, who, d, paddle, pdckpt):
    """The call of the cases added in s11 (pdckpt's, or Paddle's doing the same)."""
    import io
    load = pdckpt.load if who != "paddle" else paddle.load
    p = f"{d}/m.pdparams"
    if case == "static-load":
        paddle.enable_static()
        return lambda: load(p)
    if case == "static-save":
        return static_save_call(who, d, paddle, pdckpt)
    if case == "safetensors":
        st = f"{d}/m.safetensors"
        return (lambda: paddle.load(st, safetensors=True)) if who == "paddle" else (lambda: load(st))
    if case == "scalars-np":
        return lambda: load(p, return_numpy=True)
    if case == "bytesio":
        raw = open(p, "rb").read()
        return lambda: load(io.BytesIO(raw))
    return lambda: load(p)


def child(case, who, d):
    import paddle
    import pdckpt
    p = f"{d}/m.pdparams"
    state = {"w": paddle.randn([64, 64])}
    out = f"{d}/crowd/x.pdparams" if case == "crowded-save" else f"{d}/x.pdparams"

    def durable_paddle():
        paddle.save(state, out)
        fd = os.open(out, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    calls, fn = 1, None
    if case in ("small-load", "first-load", "protocol2"):
        fn = (lambda: pdckpt.load(p)) if who != "paddle" else (lambda: paddle.load(p))
        calls = 200 if case == "small-load" else 1
    elif case == "small-load-np":
        fn = ((lambda: pdckpt.load(p, return_numpy=True)) if who != "paddle"
              else (lambda: paddle.load(p, return_numpy=True)))
        calls = 200
    elif case in ("small-save", "crowded-save"):
        fn = ((lambda: pdckpt.save(state, out, durable=False)) if who != "paddle"
              else (lambda: paddle.save(state, out)))
        calls = 200
    elif case == "small-durable":
        fn = (lambda: pdckpt.save(state, out)) if who != "paddle" else durable_paddle
        calls = 50
    elif case == "resnet50":
        import paddle.vision.models as models
        m = models.resnet50()
        load = pdckpt.load if who != "paddle" else paddle.load

        def fn():
            m.set_state_dict(load(p))
            load(f"{d}/m.pdopt")
    elif case in ONE_CALL:
        fn = extra_call(case, who, d, paddle, pdckpt)
    if case not in ONE_CALL:
        fn()  # the first call's costs are first-load's
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(calls - 1):
        fn()
    res = fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"wall": wall / calls, "cpu": cpu / calls,
                      "digest": digest(res) if case in ONE_CALL else None}))


def digest(obj):
    """The result's structure and bytes (checked equal across the contenders)."""
    import hashlib
    import pathlib
    import numpy as np
    h = hashlib.sha1()

    def walk(path, v):
        if isinstance(v, pathlib.Path):  # a saved file: its bytes
            h.update(v.read_bytes())
        elif isinstance(v, dict):
            for k in sorted(v, key=str):
                walk(f"{path}/{k}", v[k])
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                walk(f"{path}/{i}", x)
        elif hasattr(v, "numpy") or type(v).__name__ in ("DenseTensor", "Tensor", "ndarray"):
            a = v.numpy() if hasattr(v, "numpy") else np.array(v)
            h.update(f"{path}:{a.shape}".encode() + a.tobytes())
        else:
            h.update(f"{path}={v!r}".encode())
    walk("", obj)
    return h.hexdigest()


def fmt(xs):
    unit, k = ("ms", 1e3) if statistics.median(xs) >= 1e-3 else ("us", 1e6)
    return f"{statistics.median(xs) * k:.3g} {unit} ({min(xs) * k:.3g}-{max(xs) * k:.3g})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--only", default=",".join(CASES))
    ap.add_argument("--child", nargs=3)
    ap.add_argument("--old", help="PYTHONPATH of an older pdckpt: a third contender, 'old'")
    a = ap.parse_args()
    if a.child:
        return child(*a.child)
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    whos = ["pdckpt", "paddle"] + (["old"] if a.old else [])
    for case in a.only.split(","):
        with tempfile.TemporaryDirectory() as d:
            setup_in_child(case, d)
            got = {w: [] for w in whos}
            for r in range(a.rounds):
                for who in whos[r % len(whos):] + whos[:r % len(whos)]:  # order rotated
                    env = dict(os.environ, PYTHONPATH=a.old) if who == "old" else None
                    proc = subprocess.run([sys.executable, __file__, "--child", case, who, d],
                                          check=True, capture_output=True, text=True, env=env)
                    got[who].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        digests = {g["digest"] for w in whos for g in got[w]}
        assert len(digests) == 1, f"{case}: the contenders' results differ"
        row = [case]
        for who in whos:
            row.append(f"{who} wall {fmt([g['wall'] for g in got[who]])}, "
                       f"cpu {fmt([g['cpu'] for g in got[who]])}")
        med = {w: statistics.median(g["wall"] for g in got[w]) for w in got}
        cpu = {w: statistics.median(g["cpu"] for g in got[w]) for w in got}
        for who in whos[:1] + whos[2:]:
            row.append(f"{who} ratio wall {med['paddle'] / med[who]:.2f}x, "
                       f"cpu {cpu['paddle'] / cpu[who]:.2f}x")
        print(" | ".join(row), f"| load {os.getloadavg()[0]:.2f}", flush=True)


def setup_in_child(case, d):
    code = f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); " \
           f"import dropin_extra; dropin_extra.setup({case!r}, {d!r})"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


if __name__ == "__main__":
    main()
