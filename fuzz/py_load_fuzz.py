#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A seeded mutation loop over pdckpt's Python load paths (not in the test command: a campaign).

libFuzzer reaches the C readers; what only Python reaches is the conversion pass: paddle.Tensors
made over the read buffer (DLPack, W2's batched views of many small tensors, py_paddle_batch.c),
NumPy arrays (return_numpy=True), mapped loads (mmap=True) and the lazy open through a pickle's
index (pdckpt.open).  Bases are written by pdckpt.save: a state dict of 40 small tensors and two
large ones as a .pdparams (with its .pdkidx index) and a .safetensors, a protocol-2 pickle, and a
sharded safetensors directory.  Each case mutates one file of a base (bit flips, 8-byte fields set
to extremes, truncation, inserted or repeated bytes; for a pickle also the index), then loads it
every way and touches every array.  Anything but a result or a pdckpt.Error whose message names
the file is a finding; so is a worker killed by a signal (the input that killed it is kept).

    PYTHONPATH=build/python python fuzz/py_load_fuzz.py SECONDS [SEED] [OUT_DIR]
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

CASES_PER_WORKER = 400
RESAVE = {}
# PYFUZZ_LARGE=1: one tensor of 40 MiB, so loads take the block cache (>= 32 MiB) and, with the
# file's pages dropped before each load, the O_DIRECT cold read (PDCKPT_DIRECT_READ=1 is set);
# mutations then go mostly to the first and last 64 KiB, where the structure is.
LARGE = (10 << 20) if os.environ.get("PYFUZZ_LARGE") == "1" else 0
if LARGE:
    os.environ["PDCKPT_DIRECT_READ"] = "1"
    CASES_PER_WORKER = 50


def make_bases(root):
    import numpy as np
    import pdckpt

    rng = np.random.default_rng(7)
    sd = {f"layer{i}.w": rng.standard_normal((4, 4)).astype("float32") for i in range(40)}
    sd["big.w"] = rng.standard_normal(LARGE or 8193).astype("float32")
    sd["big.i"] = np.arange(5000, dtype="int64")
    bases = {}
    for name, fmt, kw in (("sd.pdparams", None, {}), ("sd.safetensors", "safetensors", {}),
                          ("p2.pdparams", None, {"protocol": 2})):
        path = os.path.join(root, name)
        pdckpt.save(sd, path, **({"format": fmt} if fmt else {}), **kw)
        bases[name] = path
        # a pickle's index holds only for the file version it was written for (inode, ctime):
        # a case saves the pickle anew where it mutates it, so its index is current
        RESAVE[path] = (sd, kw)
    shard_dir = os.path.join(root, "sharded")
    pdckpt.save(sd, shard_dir, format="safetensors-sharded", max_shard_size=20000)
    bases["sharded"] = shard_dir
    return bases


def files_of(base):
    if os.path.isdir(base):
        return sorted(os.path.join(base, f) for f in os.listdir(base))
    extra = base + ".pdkidx"
    return [base] + ([extra] if os.path.exists(extra) else [])


def mutate(data, rng):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(6)
        at = rng.randrange(len(data)) if data else 0
        if LARGE and len(data) > 1 << 17 and rng.random() < 0.8:  # the head or the tail
            at = rng.randrange(1 << 16) + (0 if rng.random() < 0.6 else len(data) - (1 << 16))
        if kind == 0 and data:
            data[at] ^= 1 << rng.randrange(8)
        elif kind == 1 and len(data) >= 8:
            at = min(at, len(data) - 8)
            value = rng.choice([0, 1, 2**31 - 1, 2**32 - 1, 2**62, 2**63 - 1, 2**64 - 1,
                                rng.getrandbits(64)])
            data[at:at + 8] = value.to_bytes(8, "little")
        elif kind == 2:
            del data[at:]
        elif kind == 3:
            data[at:at] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 16)))
        elif kind == 4 and data:
            end = min(len(data), at + rng.randint(1, 64))
            data[at:at] = data[at:end] * rng.randint(1, 8)
        elif data:
            data[at] = rng.choice([0x00, 0x80, 0xff, ord("q"), ord("h"), ord("."), ord("(")])
    return bytes(data)


def touch(obj, depth=0):
    import numpy as np

    if depth > 300:
        return
    if isinstance(obj, dict):
        for v in obj.values():
            touch(v, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            touch(v, depth + 1)
    elif isinstance(obj, np.ndarray):
        obj.tobytes()
    elif hasattr(obj, "numpy"):
        obj.numpy().tobytes()


def judge(path, shown, call):
    """None for a result or a clear pdckpt.Error; else what went wrong."""
    import pdckpt

    try:
        touch(call())
        return None
    except pdckpt.Error as e:
        if shown not in str(e) and os.path.basename(shown) not in str(e):
            return f"error without the file name: {type(e).__name__}: {e}"
        return None
    except RecursionError:
        return None  # touch's own walk of a deep (legal) tree
    except Exception as e:  # noqa: BLE001 -- every other exception is a finding
        return f"{type(e).__name__}: {e}"


def run_case(base, rng, work):
    import pdckpt

    case = os.path.join(work, "case")
    shutil.rmtree(case, ignore_errors=True)
    if os.path.isdir(base):
        shutil.copytree(base, case)
        target_dir = case
    else:
        os.makedirs(case)
        target_dir = case
        if base in RESAVE:
            pdckpt.save(RESAVE[base][0], os.path.join(case, os.path.basename(base)),
                        **RESAVE[base][1])
        for f in files_of(base):
            if not os.path.exists(os.path.join(case, os.path.basename(f))):
                shutil.copy(f, os.path.join(case, os.path.basename(f)))
    victims = files_of(case if os.path.isdir(base) else os.path.join(case, os.path.basename(base)))
    victim = rng.choice(victims)
    with open(victim, "rb") as f:
        data = f.read()
    with open(victim, "r+b") as f:  # in place: a pickle's index then sees a changed file
        f.write(mutate(data, rng))
        f.truncate()
    path = target_dir if os.path.isdir(base) else os.path.join(case, os.path.basename(base))
    findings = []
    if LARGE:  # cold: the reads go to the disk, with O_DIRECT
        for f in files_of(path):
            fd = os.open(f, os.O_RDONLY)
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
    calls = [("load", lambda: pdckpt.load(path)),
             ("load numpy", lambda: pdckpt.load(path, return_numpy=True)),
             ("load mmap", lambda: pdckpt.load(path, mmap=True)),
             ("open", lambda: dict(pdckpt.open(path).items()))]
    for what, call in calls:
        bad = judge(path, path, call)
        if bad:
            findings.append(f"{what}: {bad}")
    return victim, findings


def worker(seed, start, count, work, report):
    import paddle  # noqa: F401 -- paddle.Tensors out

    bases = make_bases(os.path.join(work, "bases"))
    names = sorted(bases)
    with open(report, "a") as out:
        for i in range(start, start + count):
            rng = random.Random(seed * 1_000_003 + i)
            base = bases[names[rng.randrange(len(names))]]
            with open(os.path.join(work, "current"), "w") as f:
                f.write(f"{i}\n")
            victim, findings = run_case(base, rng, work)
            for line in findings:
                keep = os.path.join(work, f"finding-{i}-{os.path.basename(victim)}")
                shutil.copy(victim, keep)
                out.write(f"case {i} ({os.path.basename(base)} / {os.path.basename(victim)}): "
                          f"{line[:400]} [kept {keep}]\n")
            out.flush()


def main():
    if sys.argv[1] == "worker":
        seed, start, count = (int(x) for x in sys.argv[2:5])
        worker(seed, start, count, sys.argv[5], sys.argv[6])
        return
    seconds = float(sys.argv[1])
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    out_dir = sys.argv[3] if len(sys.argv) > 3 else tempfile.mkdtemp(prefix="pdckpt-pyfuzz-")
    report = os.path.join(out_dir, "findings.txt")
    open(report, "a").close()
    deadline, start, crashes = time.time() + seconds, 0, 0
    while time.time() < deadline:
        work = tempfile.mkdtemp(prefix="w-", dir=out_dir)
        try:
            rc = subprocess.run([sys.executable, __file__, "worker", str(seed), str(start),
                                 str(CASES_PER_WORKER), work, report], timeout=600).returncode
        except subprocess.TimeoutExpired:
            rc = "hang"  # a case that never ends: the input is kept like a crash's
        done = CASES_PER_WORKER
        if rc != 0:
            with open(os.path.join(work, "current")) as f:
                done = int(f.read()) - start + 1
            sig = -rc if isinstance(rc, int) and rc < 0 else rc
            crashes += 1
            with open(report, "a") as out:
                out.write(f"case {start + done - 1}: worker died ({sig}), inputs in {work}/case\n")
        else:
            shutil.rmtree(work)
        start += done
    with open(report) as f:
        lines = f.read().splitlines()
    print(f"cases={start} seconds={seconds:.0f} findings={len(lines)} worker_deaths={crashes} "
          f"report={report}")
    for line in lines[:40]:
        print(line)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    main()
