# SPDX-License-Identifier: Apache-2.0
"""A few contenders of bench/bench.py on one workload, interleaved, each step in a fresh process
(bench_child.py), optionally from different builds: for measuring one change like for like
without the whole benchmark.  Prints a table of medians (min-max) and the load average.

    python bench/focus.py SRC_DIR W2 --repeat 5 --ops save,open,load_warm \\
        --contender pdckpt:pickle:tensor --contender paddle:pickle:tensor \\
        --contender pdckpt:pickle:tensor@/work/main/build

SRC_DIR is a workload made by `bench_child.py make W SRC_DIR SCALE`.  A contender is
LIBRARY:FORMAT:KIND as in bench_child.py, optionally @BUILD (default: this tree's build/).
Ops: save, save_durable (the checkpoint each contender saves is what it then reads), open
(cold), load_cold, load_warm.  Each also gets its CPU time (all threads of the child): on a
shared machine the wall time includes waiting for a core.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import bench


def child(build, *args):
    env = dict(os.environ, PYTHONPATH=os.path.join(build, "python"), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, bench.CHILD, *map(str, args)], capture_output=True,
                         text=True, env=env, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"{args}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def one_round(src, workload, contenders, ops, work, results):
    for name in contenders:
        spec, _, build = name.partition("@")
        build = build or bench.BUILD
        target = os.path.join(work, name.replace(":", "_").replace("/", "_").replace("@", "_"))
        shutil.rmtree(target, ignore_errors=True)
        os.makedirs(target)
        os.sync()
        durable = "save_durable" in ops
        r = child(build, "save", workload, src, spec, target, int(durable))
        rec = results.setdefault(name, {})
        key = "save_durable" if durable else "save"
        rec.setdefault(key, []).append(r["seconds"])
        rec.setdefault(key + " cpu", []).append(r["cpu_seconds"])
        for op in ops:
            if op in ("save", "save_durable"):
                continue
            files = bench.files_under(target)
            if op == "load_warm":
                bench.cat(files)
            else:
                bench.evict(files)
            what = "open" if op == "open" else "load"
            r = child(build, what, workload, src, spec, target, 0)
            rec.setdefault(op, []).append(r["seconds"])
            rec.setdefault(op + " cpu", []).append(r["cpu_seconds"])
    results.setdefault("_load", []).append(os.getloadavg()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("workload")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--ops", default="save,open,load_cold,load_warm")
    ap.add_argument("--contender", action="append", required=True)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    ops = args.ops.split(",")
    work = tempfile.mkdtemp(prefix="pdckpt-focus-", dir=args.workdir)
    results = {"_load": [os.getloadavg()[0]]}
    try:
        for _ in range(args.repeat):
            one_round(args.src, args.workload, args.contender, ops, work, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("load average (1 min) at the start and after each repetition:",
          ", ".join(f"{x:.1f}" for x in results.pop("_load")))
    for name, rec in results.items():
        cells = []
        for op in [o + c for o in ops for c in ("", " cpu")]:
            xs = sorted(rec.get(op, []))
            if xs:
                cells.append(f"{op} {statistics.median(xs) * 1e3:.1f} ms "
                             f"({xs[0] * 1e3:.1f}-{xs[-1] * 1e3:.1f})")
        print(f"{name}: " + "; ".join(cells))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
