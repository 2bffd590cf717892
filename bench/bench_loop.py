# SPDX-License-Identifier: Apache-2.0
"""Loads in a loop: one process loads the same checkpoint N times, as an evaluation over
checkpoints or a timeit loop does, paddle.Tensors out for both libraries.

    .venv/bin/python bench/bench_loop.py [--mib 340] [--loads 6] [--rounds 3] [--dir DIR]

The state is BERT-base shaped (12 layers of 768 x 768 attention and 768 x 3072 feed-forward
float32 weights, 96 tensors, 340 MB at the default size), written once by paddle.save.  Each
round starts one fresh process per contender, the contenders' order turning each round; a
process loads the file --loads times (the result dropped before the next load) and reports
every load's wall time, CPU time and minor page faults.  The first load of a process pays for
fresh memory for both libraries; the figures quoted are the medians of loads 2..N over all
rounds, with their min-max, and the ratio of the medians.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, os, resource, sys, time
which, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
import paddle
import pdckpt
paddle.set_device("cpu")
load = paddle.load if which == "paddle.load" else pdckpt.load
rows = []
for _ in range(n):
    f0, c0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, os.times(), time.perf_counter()
    state = load(path)
    t1, c1 = time.perf_counter(), os.times()
    f1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    assert isinstance(next(iter(state.values())), paddle.Tensor)
    del state
    rows.append([t1 - t0, (c1.user - c0.user) + (c1.system - c0.system), f1 - f0])
print(json.dumps(rows))
"""


def make_state(path, mib):
    import numpy as np
    import paddle
    rng = np.random.default_rng(0)
    layers = max(1, round(12 * mib / 340))
    shapes = [("q", (768, 768)), ("k", (768, 768)), ("v", (768, 768)), ("o", (768, 768)),
              ("ffn1", (768, 3072)), ("ffn2", (3072, 768)), ("bias", (768,)), ("ln", (768,))]
    state = {f"layer{i}.{n}": paddle.to_tensor(rng.standard_normal(s, dtype=np.float32))
             for i in range(layers) for n, s in shapes}
    paddle.save(state, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=340)
    ap.add_argument("--loads", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    work = args.dir or tempfile.mkdtemp(prefix="pdckpt-loop-")
    path = os.path.join(work, "bert.pdparams")
    make_state(path, args.mib)
    contenders = ["paddle.load", "pdckpt.load"]
    rows = {c: [] for c in contenders}
    for r in range(args.rounds):
        for c in contenders[r % 2:] + contenders[:r % 2]:
            out = subprocess.run([sys.executable, "-c", CHILD, c, path, str(args.loads)],
                                 capture_output=True, text=True, check=True)
            rows[c].extend(json.loads(out.stdout.strip().splitlines()[-1])[1:])
    med = {}
    for c in contenders:
        wall, cpu, faults = zip(*rows[c])
        med[c] = statistics.median(wall)
        print(f"{c:12s} wall {med[c]:.3f} s ({min(wall):.3f}-{max(wall):.3f}), "
              f"CPU {statistics.median(cpu):.3f} s, minor faults {statistics.median(faults):.0f}")
    print(f"ratio (paddle.load / pdckpt.load, medians of loads 2..{args.loads}): "
          f"{med['paddle.load'] / med['pdckpt.load']:.2f}x; file {os.path.getsize(path) >> 20} MiB; "
          f"load average {os.getloadavg()[0]:.2f}")
    os.unlink(path)


if __name__ == "__main__":
    main()
