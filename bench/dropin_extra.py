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
         "crowded-save", "protocol2", "resnet50"]


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
    else:
        paddle.save({"w": paddle.randn([64, 64])}, f"{d}/m.pdparams")
    if case == "crowded-save":
        os.makedirs(f"{d}/crowd")
        for i in range(3000):
            open(f"{d}/crowd/f{i}", "w").close()


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
        fn = (lambda: pdckpt.load(p)) if who == "pdckpt" else (lambda: paddle.load(p))
        calls = 200 if case == "small-load" else 1
    elif case == "small-load-np":
        fn = ((lambda: pdckpt.load(p, return_numpy=True)) if who == "pdckpt"
              else (lambda: paddle.load(p, return_numpy=True)))
        calls = 200
    elif case in ("small-save", "crowded-save"):
        fn = ((lambda: pdckpt.save(state, out, durable=False)) if who == "pdckpt"
              else (lambda: paddle.save(state, out)))
        calls = 200
    elif case == "small-durable":
        fn = (lambda: pdckpt.save(state, out)) if who == "pdckpt" else durable_paddle
        calls = 50
    elif case == "resnet50":
        import paddle.vision.models as models
        m = models.resnet50()
        load = pdckpt.load if who == "pdckpt" else paddle.load

        def fn():
            m.set_state_dict(load(p))
            load(f"{d}/m.pdopt")
    if case not in ("first-load", "protocol2", "resnet50"):
        fn()  # the first call's costs are first-load's
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"wall": wall / calls, "cpu": cpu / calls}))


def fmt(xs):
    unit, k = ("ms", 1e3) if statistics.median(xs) >= 1e-3 else ("us", 1e6)
    return f"{statistics.median(xs) * k:.3g} {unit} ({min(xs) * k:.3g}-{max(xs) * k:.3g})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--only", default=",".join(CASES))
    ap.add_argument("--child", nargs=3)
    a = ap.parse_args()
    if a.child:
        return child(*a.child)
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    for case in a.only.split(","):
        with tempfile.TemporaryDirectory() as d:
            setup_in_child(case, d)
            got = {"pdckpt": [], "paddle": []}
            for r in range(a.rounds):
                for who in (("pdckpt", "paddle") if r % 2 == 0 else ("paddle", "pdckpt")):
                    proc = subprocess.run([sys.executable, __file__, "--child", case, who, d],
                                          check=True, capture_output=True, text=True)
                    got[who].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        row = [case]
        for who in ("pdckpt", "paddle"):
            row.append(f"{who} wall {fmt([g['wall'] for g in got[who]])}, "
                       f"cpu {fmt([g['cpu'] for g in got[who]])}")
        med = {w: statistics.median(g["wall"] for g in got[w]) for w in got}
        cpu = {w: statistics.median(g["cpu"] for g in got[w]) for w in got}
        row.append(f"ratio wall {med['paddle'] / med['pdckpt']:.2f}x, "
                   f"cpu {cpu['paddle'] / cpu['pdckpt']:.2f}x")
        print(" | ".join(row), f"| load {os.getloadavg()[0]:.2f}", flush=True)


def setup_in_child(case, d):
    code = f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); " \
           f"import dropin_extra; dropin_extra.setup({case!r}, {d!r})"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


if __name__ == "__main__":
    main()
