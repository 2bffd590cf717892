# SPDX-License-Identifier: Apache-2.0
"""One measurement of bench/bench.py in a fresh process (see there).  Prints one JSON line.

    bench_child.py make W DIR SCALE                     the workload's source files in DIR
    bench_child.py save|open|load W DIR CONTENDER TARGET DURABLE
    bench_child.py dd PATH MIB FSYNC                    dd's write of MIB MiB (the floor)
    bench_child.py write4k PATH MIB                     MIB MiB written from 4 KiB pages

CONTENDER is LIBRARY:FORMAT:KIND[:THREADS], e.g. pdckpt:pickle:tensor, paddle:pickle:tensor,
safetensors:safetensors:numpy, pdckpt:pickle:tensor:2 (see bench.py).
"""

import json
import os
import resource
import sys
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mib():
    """The process's peak RSS since the last reset (VmHWM).  Not ru_maxrss: that also keeps the
    peak any exiting thread saw, which clear_refs cannot reset (a pre-reset peak then leaked into
    a timed step's figure)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def anon_huge_mib():
    """MiB of this process's anonymous memory on 2 MiB pages (THP): a save's input on 4 KiB pages
    (Paddle's tensors) costs the page-cache copy more than the same bytes on 2 MiB pages."""
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                if line.startswith("AnonHugePages:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def usage(who=resource.RUSAGE_SELF):
    r = resource.getrusage(who)
    return r.ru_utime, r.ru_stime, r.ru_minflt


def usage_since(before, who=resource.RUSAGE_SELF):
    """Kernel and user seconds and minor faults since `before` (a timed step's own)."""
    after = usage(who)
    return {"user_seconds": after[0] - before[0], "sys_seconds": after[1] - before[1],
            "minor_faults": after[2] - before[2]}


def recycle_memory(nbytes):
    """Before a timed save (every contender of every table; bench_c.c's bench_recycle_memory
    does the same): touches `nbytes` of fresh anonymous memory (2 MiB pages asked for) and frees
    it, then restarts the peak RSS from here.  This VM's balloon reports free 2 MiB blocks to
    its host, which drops them: the page cache a save writes into is then refetched from the
    host page by page inside the write's copy (1 GiB: 0.2-0.35 s more kernel time), unless
    something was freed just before.  Making a paddle.Tensor input frees each array's read
    buffer, one np.fromfile of the whole blob frees nothing: without this step the drop-in and C
    tables wrote onto recycled memory and the NumPy table onto refetched memory (bench/NOTES.md).
    """
    import mmap

    if nbytes:
        m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(m, "madvise") and hasattr(mmap, "MADV_HUGEPAGE"):
            m.madvise(mmap.MADV_HUGEPAGE)
        view = np.frombuffer(m, dtype=np.uint8)
        view[:] = 1
        del view
        m.close()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the peak RSS restarts from the current RSS
    except OSError:
        pass


# ---- workloads ---------------------------------------------------------------------------------

def w1_shapes(scale):
    n = 1 << 20  # 256 tensors of 4 MiB (1 Mi float32 each) at scale 1
    side = max(1, int(n * scale))
    return {f"layer_{i}.w_0": ((side,), "float32") for i in range(256)}


def w2_shapes(scale):
    return {f"param_{i}.moment1_0": ((256,), "float32") for i in range(max(1, int(100000 * scale)))}


def w3_shapes(scale):
    """GPT-2-medium-like: 24 layers of d=1024, FFN 4096, vocabulary 50,304 (~354M params)."""
    d, ffn = 1024, 4096
    layers, vocab = max(1, round(24 * scale)), max(64, int(50304 * scale))
    params = {"embedding_0.w_0": ((vocab, d), "float32")}
    for i in range(layers):
        p = f"layer_{i}"
        for j, shape in enumerate([(d, 3 * d), (3 * d,), (d, d), (d,), (d, ffn), (ffn,),
                                   (ffn, d), (d,), (d,), (d,), (d,), (d,)]):
            params[f"{p}.w_{j}"] = (shape, "float32")
    opt = {}
    for name, (shape, dtype) in params.items():
        opt[f"{name}_moment1_0"] = (shape, dtype)
        opt[f"{name}_moment2_0"] = (shape, dtype)
        opt[f"{name}_beta1_pow_acc_0"] = ((1,), dtype)
        opt[f"{name}_beta2_pow_acc_0"] = ((1,), dtype)
    return params, opt


def make(workload, directory, scale):
    os.makedirs(directory, exist_ok=True)
    groups = ({"params": w1_shapes(scale)} if workload == "W1" else
              {"params": w2_shapes(scale)} if workload == "W2" else
              dict(zip(("params", "opt"), w3_shapes(scale))))
    index, offset, rng = {}, 0, np.random.default_rng(0)
    with open(os.path.join(directory, "blob.bin"), "wb") as f:
        for group, shapes in groups.items():
            for name, (shape, dtype) in shapes.items():
                arr = rng.standard_normal(shape, dtype=np.float32).astype(dtype)
                f.write(arr.tobytes())
                index.setdefault(group, []).append([name, list(shape), dtype, offset])
                offset += arr.nbytes
    with open(os.path.join(directory, "index.json"), "w") as f:
        json.dump(index, f)
    state = load_source(directory)  # the C driver's inputs: what it saves from memory
    import pdckpt

    pdckpt.save(merged(state, workload), os.path.join(directory, "state.pdparams"), durable=False)
    if workload != "W3":
        pdckpt.save(state["params"], os.path.join(directory, "state.safetensors"), durable=False)
    n = sum(len(v) for v in index.values())
    return {"tensors": n, "bytes": offset, "scale": scale}


def merged(state, workload):
    if workload != "W3":
        return state["params"]
    return {"params": state["params"], "opt": state["opt"]}


def load_source(directory, per_array=False):
    """{group: {name: array}}: views of one read of the blob (no copies), or with per_array one
    read per array (so converting each to a Paddle tensor never holds two copies)."""
    with open(os.path.join(directory, "index.json")) as f:
        index = json.load(f)
    path = os.path.join(directory, "blob.bin")
    blob = None if per_array else np.fromfile(path, dtype=np.uint8)
    out = {}
    for group, entries in index.items():
        d = out[group] = {}
        for name, shape, dtype, offset in entries:
            count = int(np.prod(shape, dtype=np.int64))
            if blob is None:
                d[name] = np.fromfile(path, dtype=dtype, count=count, offset=offset).reshape(shape)
            else:
                d[name] = blob[offset:offset + count * 4].view(dtype).reshape(shape)
    if "opt" in out:
        out["opt"]["LR_Scheduler"] = {"last_epoch": 1000, "last_lr": 3e-4}
    return out


# ---- contenders --------------------------------------------------------------------------------
# A contender is (library, format, kind): kind "tensor" takes paddle.Tensors and gives back
# paddle.Tensors (what a Paddle user's save/load does), kind "numpy" takes and gives NumPy arrays.
# Every contender of one kind gets the same input and returns the same kind of output.

def fsync_tree(target):
    for d, _, files in os.walk(target):
        for name in files:
            fd = os.open(os.path.join(d, name), os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        fd = os.open(d, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


def groups_of(workload):
    return ["params", "opt"] if workload == "W3" else ["params"]


PICKLE_EXT = {"params": ".pdparams", "opt": ".pdopt"}


def flat_tensors(data):
    """The tensors of a group with the non-tensor leaves dropped (what a flat format holds)."""
    return {k: v for k, v in data.items() if not isinstance(v, dict)}


def inputs_for(contender, workload, state):
    """{group: object to save}: flat formats get the tensors only, so all contenders of a table
    write the same tensors; pickles get the whole group (W3's LR_Scheduler included)."""
    lib, fmt, _ = contender.split(":")
    flat = fmt in ("safetensors", "combined", "npy", "npz", "raw")
    return {g: flat_tensors(state[g]) if flat else state[g] for g in groups_of(workload)}


def file_name(contender, group):
    lib, fmt, _ = contender.split(":")
    ext = {"pickle": PICKLE_EXT[group], "safetensors": ".safetensors", "combined": ".pdiparams",
           "npz": ".npz", "npy": "", "raw": ".bin"}[fmt]
    return group + ext


def save(contender, workload, state, target, durable):
    lib, fmt, kind = contender.split(":")
    for group, data in inputs_for(contender, workload, state).items():
        path = os.path.join(target, file_name(contender, group))
        if lib == "pdckpt":
            import pdckpt

            pdckpt.save(data, path, durable=durable)
        elif lib == "paddle":
            import paddle

            paddle.save(data, path)
        elif fmt == "raw":  # the floor: every array's bytes written in turn, nothing else
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                for arr in data.values():
                    view = memoryview(np.ascontiguousarray(arr)).cast("B")
                    while view:
                        view = view[os.write(fd, view):]
            finally:
                os.close(fd)
        elif lib == "numpy" and fmt == "npy":
            os.makedirs(path, exist_ok=True)
            for name, arr in data.items():
                np.save(os.path.join(path, name + ".npy"), arr)
        elif lib == "numpy":
            np.savez(path, **data)
        else:
            from safetensors.numpy import save_file

            save_file(data, path)
    if durable and lib != "pdckpt":
        fsync_tree(target)  # the same durability pdckpt gives (data and directory synced)


def checkpoint_files(target):
    """What a contender wrote, less pdckpt's lazy-open index sidecars ("<file>.pdkidx"), which
    are not checkpoints and are read only by the file's own open."""
    return [n for n in sorted(os.listdir(target)) if not n.endswith(".pdkidx")]


def open_lazy(contender, target):
    """What each library offers for reading metadata without the data."""
    lib, fmt, *_ = contender.split(":")
    n = 0
    for name in checkpoint_files(target):
        path = os.path.join(target, name)
        if lib == "pdckpt":
            import pdckpt

            with pdckpt.open(path) as r:
                n += len(r.keys())
        elif lib == "safetensors":
            from safetensors import safe_open

            with safe_open(path, framework="np") as f:
                n += len(list(f.keys()))
        elif fmt == "raw":  # the floor has no metadata to read: its size
            n += os.path.getsize(path) > 0
        elif lib == "numpy" and fmt == "npy":
            n += sum(np.load(os.path.join(path, f), mmap_mode="r").ndim >= 0
                     for f in os.listdir(path))
        elif lib == "numpy":
            n += len(np.load(path).files)
        else:  # paddle.load has no lazy mode: opening is loading
            import paddle

            n += len(paddle.load(path))
    return n


def touch(arr):
    b = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
    n8 = b.size // 8 * 8
    return int(b[:n8].view(np.uint64).sum(dtype=np.uint64)) + int(b[n8:].sum())


def arrays_in(obj, kind):
    """Every tensor of a loaded tree as a NumPy view (no copy).  A tensor-kind load must have
    produced paddle.Tensors: anything else means the contender returned an easier output."""
    if isinstance(obj, dict):
        for v in obj.values():
            yield from arrays_in(v, kind)
    elif isinstance(obj, np.ndarray):
        if kind == "tensor":
            raise TypeError("a Tensor-kind load returned a NumPy array")
        yield obj
    elif hasattr(obj, "__dlpack__") and not isinstance(obj, np.ndarray):
        if kind == "numpy":
            raise TypeError("a NumPy-kind load returned a paddle.Tensor")
        yield np.from_dlpack(obj)


def load_one(contender, path):
    lib, fmt, kind, *threads = contender.split(":")
    if lib == "pdckpt":
        import pdckpt

        return pdckpt.load(path, return_numpy=kind == "numpy",
                           threads=int(threads[0]) if threads else None)
    if lib == "paddle":
        import paddle

        return paddle.load(path)
    if fmt == "raw":  # the floor: the whole file read into one fresh array
        return {"all": np.fromfile(path, dtype=np.uint8)}
    if lib == "numpy" and fmt == "npy":
        return {f: np.load(os.path.join(path, f)) for f in sorted(os.listdir(path))}
    if lib == "numpy":
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    from safetensors.numpy import load_file

    return load_file(path)


def load_full(contender, target):
    """Loads every file and touches every byte of the result (so a lazy result pays for its
    reads); returns the bytes touched and the time spent in the load calls alone."""
    kind = contender.split(":")[2]
    total, nbytes, call_seconds = 0, 0, 0.0
    for name in checkpoint_files(target):
        t0 = time.perf_counter()
        obj = load_one(contender, os.path.join(target, name))
        call_seconds += time.perf_counter() - t0
        for arr in arrays_in(obj, kind):
            total += touch(arr)
            nbytes += arr.nbytes
    return nbytes, call_seconds


def prepare_state(contender, source):
    """The state to save, in memory before the clock starts: paddle.Tensors for the tensor kind
    (made one array at a time, so the process never holds two copies), NumPy arrays otherwise."""
    kind = contender.split(":")[2]
    state = load_source(source, per_array=kind == "tensor")
    if kind == "tensor":
        import paddle

        for group in state:
            for k, v in state[group].items():
                if isinstance(v, np.ndarray):
                    state[group][k] = paddle.to_tensor(v)
    return state


def dd(path, mib, fsync):
    """The write floor: dd of `mib` MiB of zeros, started as every save is (recycle_memory)."""
    import subprocess

    recycle_memory(mib << 20)
    u0, t0 = usage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={mib}"]
                   + (["conv=fsync"] if fsync else []), check=True, capture_output=True)
    return {"seconds": time.perf_counter() - t0, **usage_since(u0, resource.RUSAGE_CHILDREN)}


def write_small_pages(path, mib):
    """The write floor for an input on 4 KiB pages, as Paddle's CPU tensors are (its allocator is
    posix_memalign; with THP in "madvise" mode nothing asks for 2 MiB pages): `mib` MiB filled
    on 4 KiB pages, recycled as every save is, then write()n in 4 MiB pieces.  dd's source is
    one 1 MiB buffer, always translated; a copy from 4 KiB pages walks 512 times more page
    tables, each walk nested on this VM (bench/NOTES.md, "W1's drop-in save")."""
    import mmap

    nbytes = mib << 20
    m = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(m, "madvise") and hasattr(mmap, "MADV_NOHUGEPAGE"):
        m.madvise(mmap.MADV_NOHUGEPAGE)
    view = memoryview(m)
    np.frombuffer(m, dtype=np.uint8)[:] = 1
    huge = anon_huge_mib()
    recycle_memory(nbytes)
    u0, t0 = usage(), time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for off in range(0, nbytes, 4 << 20):
            piece = view[off:off + (4 << 20)]
            while piece:
                piece = piece[os.write(fd, piece):]
    finally:
        os.close(fd)
    return {"seconds": time.perf_counter() - t0, **usage_since(u0), "input_huge_mib": huge}


def main():
    mode, workload = sys.argv[1], sys.argv[2]
    if mode == "dd":  # bench_child.py dd PATH MIB FSYNC: the dd floor, after the same recycling
        print(json.dumps(dd(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1")))
        return
    if mode == "write4k":  # bench_child.py write4k PATH MIB: the floor from 4 KiB pages
        print(json.dumps(write_small_pages(sys.argv[2], int(sys.argv[3]))))
        return
    if mode == "make":
        print(json.dumps(make(workload, sys.argv[3], float(sys.argv[4]))))
        return
    source, contender, target, durable = sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6] == "1"
    lib, _, kind, *_ = contender.split(":")
    if kind == "tensor" or lib == "paddle":
        import paddle  # noqa: F401  (imported before the clock starts, like every module)
    if lib == "pdckpt":
        import pdckpt  # noqa: F401
    elif lib == "safetensors":
        import safetensors.numpy  # noqa: F401
    if mode == "save":
        state = prepare_state(contender, source)
        recycled = os.path.getsize(os.path.join(source, "blob.bin"))
        huge = anon_huge_mib()  # read before the recycle, which frees only what it took
        recycle_memory(recycled)
    before, peak_before = rss_mib(), peak_mib()
    u0 = usage()
    t0, c0 = time.perf_counter(), time.process_time()
    extra = {}
    if mode == "save":
        extra["recycled_mib"] = recycled / 2**20
        extra["input_huge_mib"] = huge
        save(contender, workload, state, target, durable)
    elif mode == "open":
        extra["entries"] = open_lazy(contender, target)
    else:
        extra["bytes"], extra["call_seconds"] = load_full(contender, target)
    seconds = time.perf_counter() - t0
    extra["cpu_seconds"] = time.process_time() - c0  # all threads: the wall time minus waiting
    extra.update(usage_since(u0))
    peak = peak_mib()
    print(json.dumps({"seconds": seconds, "extra_rss_mib": max(0.0, peak - max(before, 0)),
                      "peak_before_mib": peak_before, **extra}))


if __name__ == "__main__":
    main()
