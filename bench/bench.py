# SPDX-License-Identifier: Apache-2.0
"""pdckpt's benchmark: pdckpt against paddle.save/load, NumPy, safetensors and the raw limits of
this machine, like for like, in one run, interleaved and repeated.  Three tables:
  drop-in  paddle.Tensors in and out (pdckpt.save/load as a Paddle user calls them, vs Paddle)
  numpy    NumPy arrays in and out (pdckpt's return_numpy path vs safetensors.numpy and np.save)
  C API    pdckpt's C library alone
and the limits: dd writes, a write from 4 KiB pages (Paddle's tensors' pages: the drop-in saves'
floor), cold and warm cat, a memcpy into fresh memory with 1 and 2 threads;
and the scaling curve: the drop-in pickle load with 1, 2, ... reading threads.

    .venv/bin/python bench/bench.py [--scale S] [--repeat R] [--out DIR] [--only W1,W2,W3]

Workloads: W1 1 GiB of float32 in 256 tensors; W2 100,000 tensors of 1 KiB; W3 a 350M-parameter
transformer-shaped state with its Adam state (.pdparams + .pdopt).  --scale shrinks every
workload (tensor sizes for W1, counts for W2, layers and vocabulary for W3).

Each measurement runs in its own process (so peak RSS is the operation's own, above the process's
RSS once its data is in memory), contenders take turns within each repetition, and a cold load
starts with the checkpoint's own pages dropped from the page cache (posix_fadvise DONTNEED, the
same for every contender; fincore checks it) while the libraries stay cached as in a training
job -- --drop-all drops the whole cache instead (root); the load average is recorded; every save starts after a sync, with no dirty pages left by
the previous contender, and (dd too) right after its process touched and freed as much memory as
it writes: on this VM free memory left alone is handed back to the host, and a save writing into
it pays the host's refetch (bench/NOTES.md), so no contender may depend on what its own input's
preparation happened to free.  A "load" reads every byte of every tensor (a sum over
8-byte words) cold (page cache dropped) and warm (every file read once by cat first); an "open"
parses without touching data, cold.  Saves are timed buffered (no fsync) and
durable (fsync of the data before the call returns; pdckpt also syncs the directory).
Writes bench/results.json, bench/chart.png and BENCHMARKS.md (bench/report.py).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("PDCKPT_BUILD", os.path.join(ROOT, "build"))
BENCH_C = os.path.join(BUILD, "bench", "pdckpt_bench_c")
CHILD = os.path.join(HERE, "bench_child.py")


def drop_caches():
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
        return True
    except OSError:
        return False


DROP_ALL = False  # --drop-all: the whole page cache (Paddle's own 250 MiB library included)


def evict(paths):
    """Makes a load of `paths` cold: their pages leave the page cache (synced first: dirty pages
    cannot be dropped) and nothing else's does, so every contender's libraries stay as warm as
    a training job's are.  With --drop-all the whole cache is dropped instead."""
    if DROP_ALL:
        return drop_caches()
    os.sync()
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def resident_bytes(paths):
    """Bytes of `paths` in the page cache (fincore), or None where fincore is missing."""
    if not shutil.which("fincore"):
        return None
    total = 0
    for i in range(0, len(paths), 1000):
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES",
                              *paths[i:i + 1000]], capture_output=True, text=True)
        total += sum(int(x) for x in out.stdout.split() if x.isdigit())
    return total


def run_child(*args):
    env = dict(os.environ, PYTHONPATH=os.path.join(BUILD, "python"), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, CHILD, *map(str, args)], capture_output=True,
                         text=True, env=env, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"{args}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_c(*args):
    out = subprocess.run([BENCH_C, *map(str, args)], capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"bench_c {args}: {out.stderr[-2000:]}")
    r = json.loads(out.stdout)
    r["extra_rss_mib"] = r.pop("peak_rss_kib") / 1024  # the C driver starts with nothing loaded
    return r


def dd(path, mib, fsync):
    return run_child("dd", path, mib, int(fsync))  # timed there, after the saves' recycling


def cat(paths):
    t0 = time.perf_counter()
    for i in range(0, len(paths), 1000):  # np.save's W2 directory holds 100,000 files
        subprocess.run(["cat", *paths[i:i + 1000]], check=True, stdout=subprocess.DEVNULL)
    return {"seconds": time.perf_counter() - t0}


def files_under(target):
    return [os.path.join(d, f) for d, _, fs in os.walk(target) for f in sorted(fs)]


# The drop-in table: paddle.Tensors in, paddle.Tensors out, for Paddle and pdckpt alike.
TENSOR_CONTENDERS = {
    "paddle.save/load": "paddle:pickle:tensor",
    "pdckpt pickle": "pdckpt:pickle:tensor",
    "pdckpt safetensors": "pdckpt:safetensors:tensor",
    "pdckpt combined": "pdckpt:combined:tensor",
}
# The NumPy table: NumPy arrays in and out.
NUMPY_CONTENDERS = {
    "pdckpt pickle (np)": "pdckpt:pickle:numpy",
    "pdckpt safetensors (np)": "pdckpt:safetensors:numpy",
    "safetensors.numpy": "safetensors:safetensors:numpy",
    "np.save/np.load": "numpy:npy:numpy",
    "np.savez/np.load": "numpy:npz:numpy",
    # the floor of any NumPy save/load: the arrays' bytes write()n to one file in turn, and the
    # file read back into one fresh array (no format, no per-array objects)
    "raw write/read": "numpy:raw:numpy",
}
# The C API (no Python objects at all).
C_FORMATS = {"pdckpt C pickle": ("pickle", "x.pdparams"),
             "pdckpt C combined": ("combined", "x.pdiparams"),
             "pdckpt C safetensors": ("safetensors", "x.safetensors")}
TABLE_OF = {**{n: "tensor" for n in TENSOR_CONTENDERS}, **{n: "numpy" for n in NUMPY_CONTENDERS},
            **{n: "c" for n in C_FORMATS}}
TABLE_OF.update({f"pdckpt pickle, {t} thread{'s' * (t > 1)}": "threads"
                 for t in range(1, (os.cpu_count() or 1) + 1)})
# W3 holds optimizer state with scalars: flat formats are given its tensors only (every
# contender of the NumPy table the same), Paddle-drop-in flat formats are left out, and the C
# driver's flat formats have no W3 source.
NOT_ON_W3 = {"pdckpt safetensors", "pdckpt combined", "pdckpt C combined", "pdckpt C safetensors"}


ONLY_CONTENDERS = None  # --contenders: a subset of the tables (no report, no thread curve)


def contenders_for(workload):
    names = [n for n, t in TABLE_OF.items() if t != "threads"]  # thread_round runs those
    if ONLY_CONTENDERS is not None:
        names = [n for n in names if n in ONLY_CONTENDERS]
    return [n for n in names if not (workload == "W3" and n in NOT_ON_W3)]


def run_save(name, workload, source, target, durable):
    if name in C_FORMATS:
        fmt, fname = C_FORMATS[name]
        src = source["pickle"] if fmt == "pickle" else source["flat"]
        return run_c("save", src, os.path.join(target, fname), fmt, int(durable))
    spec = {**TENSOR_CONTENDERS, **NUMPY_CONTENDERS}[name]
    return run_child("save", workload, source["npz"], spec, target, int(durable))


def run_read(name, op, workload, source, target):
    if name in C_FORMATS:
        return run_c(op, os.path.join(target, C_FORMATS[name][1]))
    spec = {**TENSOR_CONTENDERS, **NUMPY_CONTENDERS}[name]
    return run_child(op, workload, source["npz"], spec, target, 0)


def one_round(workload, source, work, cold, results, turn=0):
    """Every contender saves (buffered, then durable), opens cold, loads cold and loads warm.
    The order turns by one contender each repetition, and each contender's files are deleted
    once it is done: no contender always runs late, with the page cache filled by the others'
    files (which makes the kernel reclaim while it writes)."""
    names = contenders_for(workload)
    turn %= max(1, len(names))
    for name in names[turn:] + names[:turn]:
        rec = results.setdefault(name, {})
        target = os.path.join(work, name.replace(" ", "_").replace("/", "_"))
        for durable in (False, True):
            shutil.rmtree(target, ignore_errors=True)
            os.makedirs(target)
            os.sync()  # every save starts with no dirty backlog from the previous contender
            r = run_save(name, workload, source, target, durable)
            rec.setdefault("save_fsync" if durable else "save", []).append(r)
        rec["file_bytes"] = sum(os.path.getsize(f) for f in files_under(target))
        for op, warm in (("open", False), ("load", False), ("load", True)):
            if warm:
                cat(files_under(target))  # every byte in the page cache
            elif cold:
                evict(files_under(target))
                results.setdefault("_resident_after_evict", []).append(
                    resident_bytes(files_under(target)))
            key = op + ("_warm" if warm else "_cold" if cold else "")
            rec.setdefault(key, []).append(run_read(name, op, workload, source, target))
        if name == "pdckpt pickle" and ONLY_CONTENDERS is None:
            thread_round(workload, source, work, cold, results)
        shutil.rmtree(target, ignore_errors=True)


def thread_round(workload, source, work, cold, results):
    """The scaling curve: the drop-in pickle load with 1, 2, ... reading threads (up to the
    cores), cold and warm, on the file the "pdckpt pickle" contender saved this round."""
    target = os.path.join(work, "pdckpt_pickle")
    for threads in range(1, (os.cpu_count() or 1) + 1):
        name = f"pdckpt pickle, {threads} thread{'s' * (threads > 1)}"
        rec = results.setdefault(name, {})
        for warm in (False, True):
            if warm:
                cat(files_under(target))
            elif cold:
                evict(files_under(target))
            key = "load" + ("_warm" if warm else "_cold" if cold else "")
            rec.setdefault(key, []).append(run_child(
                "load", workload, source["npz"], f"pdckpt:pickle:tensor:{threads}", target, 0))


def limits_round(work, nbytes, cold, results):
    """The raw limits: dd writes (buffered, durable), the buffered write of as many bytes from
    4 KiB pages, cat reads (cold, warm), and a memcpy of the data size into fresh memory with one
    and with two threads."""
    mib = max(1, nbytes >> 20)
    path = os.path.join(work, "dd.bin")
    rec = results.setdefault("limits", {})
    os.sync()
    rec.setdefault("dd write", []).append(dd(path, mib, False))
    os.sync()  # the drop-in table's floor: its input (Paddle's tensors) is on 4 KiB pages
    small = os.path.join(work, "write4k.bin")  # a new file, as every save writes (no truncation)
    rec.setdefault("write from 4 KiB pages", []).append(run_child("write4k", small, mib))
    os.unlink(small)
    os.unlink(path)  # the durable dd writes a new file too (truncating 1 GiB took ~0.3 s of it)
    os.sync()
    rec.setdefault("dd write (durable)", []).append(dd(path, mib, True))
    if cold:
        evict([path])
    rec.setdefault("cat (cold)", []).append(cat([path]))
    rec.setdefault("cat (warm)", []).append(cat([path]))
    for threads in (1, 2):
        rec.setdefault(f"memcpy into fresh memory, {threads} thread{'s' * (threads > 1)}",
                       []).append(run_c("memcpy", mib << 20, threads))
    os.unlink(path)


def summarize(samples):
    secs = sorted(s["seconds"] for s in samples)
    if not secs:
        return {}
    out = {"median_s": statistics.median(secs), "min_s": secs[0], "max_s": secs[-1]}
    calls = sorted(s["call_seconds"] for s in samples if "call_seconds" in s)
    if len(calls) == len(secs):  # a Python load: its load calls alone, without the touch
        out.update(call_median_s=statistics.median(calls), call_min_s=calls[0],
                   call_max_s=calls[-1])
    kernel = sorted(s["sys_seconds"] for s in samples if "sys_seconds" in s)
    if len(kernel) == len(secs):  # the steps' kernel time (the wall time less waiting, user)
        out["sys_median_s"] = statistics.median(kernel)
    rss = [s["extra_rss_mib"] for s in samples if "extra_rss_mib" in s]
    if rss:
        out["peak_extra_rss_mib"] = max(rss)
    return out


def main():
    ap = argparse.ArgumentParser(description="pdckpt benchmark")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=HERE, help="where results.json and chart.png go")
    ap.add_argument("--only", default="W1,W2,W3")
    ap.add_argument("--workdir", default=None, help="where checkpoints are written (default: "
                    "$TMPDIR or /tmp; it should be the disk you care about)")
    ap.add_argument("--drop-all", action="store_true", help="cold loads drop the whole page "
                    "cache (root only) instead of only the checkpoint's pages")
    ap.add_argument("--contenders", default=None, help="comma-separated contender names (e.g. "
                    "'paddle.save/load,pdckpt pickle'): only those and the limits, results.json "
                    "only (BENCHMARKS.md is not rewritten)")
    args = ap.parse_args()
    global DROP_ALL, ONLY_CONTENDERS
    DROP_ALL = args.drop_all
    if args.contenders:
        ONLY_CONTENDERS = set(args.contenders.split(","))
        unknown = ONLY_CONTENDERS - set(TABLE_OF)
        if unknown:
            ap.error(f"unknown contenders: {', '.join(sorted(unknown))}")
    os.makedirs(args.out, exist_ok=True)
    work_root = tempfile.mkdtemp(prefix="pdckpt-bench-", dir=args.workdir)
    cold = drop_caches() if DROP_ALL else hasattr(os, "posix_fadvise")
    report = {"scale": args.scale, "repeat": args.repeat, "cold_loads": cold,
              "cold_method": "whole page cache dropped" if DROP_ALL else
              "the checkpoint's pages dropped (posix_fadvise DONTNEED after sync)",
              "machine": {"cpus": os.cpu_count(), "uname": " ".join(os.uname())},
              "workloads": {}}
    try:
        for workload in args.only.split(","):
            src_dir = os.path.join(work_root, workload + "-source")
            info = run_child("make", workload, src_dir, args.scale)
            source = {"npz": src_dir, "pickle": os.path.join(src_dir, "state.pdparams"),
                      "flat": os.path.join(src_dir, "state.safetensors")}
            results = {}
            load_avg = [os.getloadavg()]
            for rep in range(args.repeat):
                work = os.path.join(work_root, workload)
                shutil.rmtree(work, ignore_errors=True)
                os.makedirs(work)
                one_round(workload, source, work, cold, results, turn=rep)
                limits_round(work, info["bytes"], cold, results)
                shutil.rmtree(work, ignore_errors=True)
                load_avg.append(os.getloadavg())
            resident = [r for r in results.pop("_resident_after_evict", []) if r is not None]
            report["workloads"][workload] = {
                "info": info, "load_average": load_avg,
                "max_resident_after_evict": max(resident) if resident else None,
                "tables": {name: TABLE_OF.get(name, "limits") for name in results},
                "results": {name: {**{op: summarize(v) for op, v in rec.items()
                                      if isinstance(v, list)},
                                   "file_bytes": rec.get("file_bytes")}
                            for name, rec in results.items()}}
            print(json.dumps({workload: "done"}), flush=True)
            with open(os.path.join(args.out, "results.json"), "w") as f:
                json.dump(report, f, indent=1)  # each workload kept as soon as it is done
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    if ONLY_CONTENDERS is not None:
        return
    subprocess.run([sys.executable, os.path.join(HERE, "report.py"),
                    os.path.join(args.out, "results.json")], check=True)


if __name__ == "__main__":
    main()
