# SPDX-License-Identifier: Apache-2.0
"""The distributed CLI under real OpenMPI (`mpirun --oversubscribe`), checked against real Paddle:
`pdckpt dist shard` splits a checkpoint into a sharded one, `pdckpt ls` lists its pieces, `pdckpt
dist merge` rebuilds it on another number of ranks (a combined file written collectively with
MPI-IO, or any format gathered on one rank), and Paddle loads what comes out.  kill -9 of a whole
job in the middle of a save leaves the previous checkpoint loadable and the new one incomplete."""
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import time

import pytest

import pdckpt

from conftest import BUILD, PDCKPT_BIN, ls_json, run_cli
import refread

MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
PDCKPT_MPI = PDCKPT_BIN.parent / "pdckpt-mpi"

# name -> (dtype, shape); uneven dims for every split
SPECS = {"linear_0.w_0": ("float32", [7, 5]), "linear_0.b_0": ("float32", [13]),
         "emb.w_0": ("float64", [9, 10]), "step": ("int64", [1]), "scale": ("float32", []),
         "conv.w_0": ("float16", [5, 6, 3]), "norm.w_0": ("bfloat16", [11]),
         "empty.w_0": ("float32", [0, 4])}
SIZE = {"float32": 4, "float64": 8, "int64": 8, "float16": 2, "bfloat16": 2}


def mpirun(n, *args, check=0, timeout=300):
    proc = subprocess.run(["mpirun", "-n", str(n), "--oversubscribe", str(PDCKPT_BIN), *map(str, args)],
                          capture_output=True, text=True, env=MPI_ENV, timeout=timeout)
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
    return proc


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    """A per-variable directory of random tensors (the input) and its contents."""
    import numpy as np
    rng = np.random.default_rng(11)
    src = tmp_path_factory.mktemp("dist") / "src"
    src.mkdir()
    contents = {}
    for name, (dt, shape) in SPECS.items():
        n = int(np.prod(shape)) if shape else 1
        raw = rng.integers(0, 256, size=n * SIZE[dt], dtype="uint8").tobytes()
        if dt in ("float32", "float64", "float16"):  # finite values, so Paddle can compare them
            raw = rng.standard_normal(n).astype(dt).tobytes()
        (src / name).write_bytes(refread.write_stream(dt, shape, raw))
        contents[name] = (dt, shape, raw)
    return src, contents


def names_file(path, contents):
    path.write_text("\n".join(sorted(contents, key=lambda s: s.encode())) + "\n")
    return path


def test_mpi_cli_is_built():
    assert PDCKPT_MPI.exists(), "pdckpt-mpi is built when MPI is found; install libopenmpi-dev"


def test_shard_ls_merge_across_rank_counts(tmp_path, state):
    src, contents = state
    ck = tmp_path / "ck"
    out = mpirun(3, "dist", "shard", src, ck, "--ranks-layout", "*.w_0=col,emb.*=block,row")
    assert "sharded checkpoint id 0, 8 tensors over 3 ranks" in out.stdout
    listing = json.loads(run_cli("ls", "--json", ck, check=0).stdout)
    assert listing["format"] == "sharded" and listing["id"] == 0
    tensors = {t["key"]: t for t in listing["tensors"]}
    assert set(tensors) == set(contents)
    for name, (dt, shape, raw) in contents.items():
        t = tensors[name]
        assert (t["dtype"], t["shape"], t["nbytes"]) == (dt, shape, len(raw))
        assert all((ck / p["file"]).exists() for p in t["pieces"])
    assert len(tensors["linear_0.w_0"]["pieces"]) == 3  # 5 columns: 2, 2, 1
    assert [p["shape"] for p in tensors["linear_0.w_0"]["pieces"]] == [[7, 2], [7, 2], [7, 1]]
    assert len(tensors["scale"]["pieces"]) == 1  # 0-d: replicated, written once
    text = run_cli("ls", ck, check=0).stdout
    assert "sharded checkpoint id 0" in text and "in 2_0.distcp" in text
    names = names_file(tmp_path / "names.txt", contents)
    for m in (1, 2, 4):
        mpirun(m, "dist", "merge", ck, tmp_path / f"m{m}.pdiparams")  # MPI-IO, all ranks write
        run_cli("diff", "--names", f"@{names}", tmp_path / f"m{m}.pdiparams", src, check=0)
        mpirun(m, "dist", "merge", ck, tmp_path / f"m{m}.safetensors")  # gathered on rank 0
        run_cli("diff", tmp_path / f"m{m}.safetensors", src, check=0)
    # The collective combined file is byte for byte what Paddle's save_combine writes.
    expect = b"".join(refread.write_stream(*contents[n]) for n in sorted(contents, key=str.encode))
    assert (tmp_path / "m4.pdiparams").read_bytes() == expect


def test_reshard_many_layouts(tmp_path, state):
    src, contents = state
    names = names_file(tmp_path / "names.txt", contents)
    for n, layout in ((4, "block"), (2, "col"), (1, "row"), (3, "rep")):
        ck = tmp_path / f"ck_{n}_{layout}"
        mpirun(n, "dist", "shard", src, ck, "--ranks-layout", layout, "--data-format",
               "combined" if n == 2 else "safetensors")
        for m in (1, 3):
            out = tmp_path / f"out_{n}_{layout}_{m}.pdiparams"
            mpirun(m, "dist", "merge", ck, out)
            run_cli("diff", "--names", f"@{names}", out, src, check=0)


def test_pieces_follow_paddles_balanced_split(tmp_path, paddle_np):
    """Row pieces of 1-D tensors of every length 1..13 over 2, 3 and 4 ranks: the boxes are the
    ones Paddle's own balanced_split gives (offsets = sums of the preceding pieces); where Paddle's
    formula would make the last piece negative (e.g. 5 over 4) the pieces are clipped at the end,
    and empty pieces are not stored."""
    from paddle.distributed.flex_checkpoint.dcp.utils import balanced_split
    src = tmp_path / "src"
    src.mkdir()
    for n in range(1, 14):
        (src / f"v{n:02d}").write_bytes(refread.write_stream("int32", [n], bytes(4 * n)))
    for ranks in (2, 3, 4):
        ck = tmp_path / f"ck{ranks}"
        mpirun(ranks, "dist", "shard", src, ck, "--ranks-layout", "row")
        pieces = {t["key"]: [(p["offset"][0], p["shape"][0]) for p in t["pieces"]]
                  for t in json.loads(run_cli("ls", "--json", ck, check=0).stdout)["tensors"]}
        for n in range(1, 14):
            paddle_sizes = balanced_split(n, ranks)
            chunk = -(-n // ranks)
            ours = [(min(i * chunk, n), max(0, min(chunk, n - i * chunk))) for i in range(ranks)]
            if min(paddle_sizes) >= 0:  # Paddle's formula is valid: ours is the same split
                assert [size for _, size in ours] == paddle_sizes, (n, ranks)
                assert [off for off, _ in ours] == [sum(paddle_sizes[:i]) for i in range(ranks)]
            assert sorted(pieces[f"v{n:02d}"]) == [box for box in ours if box[1] > 0], (n, ranks)


def test_paddle_reads_what_the_ranks_wrote(tmp_path, state, paddle_np):
    paddle, np = paddle_np
    src, contents = state
    # Paddle's safetensors loader cannot view zero-size tensors (it fails on the safetensors
    # library's own files too), so Paddle gets the state without the empty one.
    nonempty = {n: v for n, v in contents.items() if 0 not in v[1]}
    src = tmp_path / "src"
    src.mkdir()
    for n, v in nonempty.items():
        (src / n).write_bytes(refread.write_stream(*v))
    ck = tmp_path / "ck"
    mpirun(4, "dist", "shard", src, ck, "--ranks-layout", "row")
    mpirun(2, "dist", "merge", ck, tmp_path / "all.safetensors")
    # Paddle's safetensors loader reads the file gathered on rank 0 ...
    loaded = paddle.load(str(tmp_path / "all.safetensors"), safetensors=True)
    assert set(loaded) == set(nonempty)
    for name, (dt, shape, raw) in nonempty.items():
        t = loaded[name]
        assert list(t.shape) == shape and t.numpy().tobytes() == raw, name
    # ... and every rank's data file: the row pieces of linear_0.w_0 are 2 + 2 + 2 + 1 rows.
    rows = [np.asarray(paddle.load(str(ck / f"{r}_0.distcp"))["linear_0.w_0"])
            for r in range(4)]
    assert [r.shape[0] for r in rows] == [2, 2, 2, 1]
    assert np.concatenate(rows).tobytes() == contents["linear_0.w_0"][2]
    # Paddle's load_combine (static load_vars) reads a combined file the ranks wrote together
    # with MPI-IO; load_vars wants the file to hold exactly its parameters: the float ones.
    floats = {n: v for n, v in contents.items()
              if v[0] in ("float32", "float64", "float16") and v[1] and 0 not in v[1]}
    sub = tmp_path / "floats"
    sub.mkdir()
    for n, v in floats.items():
        (sub / n).write_bytes(refread.write_stream(*v))
    mpirun(2, "dist", "shard", sub, tmp_path / "fck", "--ranks-layout", "col")
    mpirun(3, "dist", "merge", tmp_path / "fck", tmp_path / "floats.pdiparams")
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            params = [paddle.static.create_parameter(shape, dt, name=n)
                      for n, (dt, shape, _) in floats.items()]
        exe = paddle.static.Executor(paddle.CPUPlace())
        exe.run(startup)
        paddle.static.load_vars(exe, dirname=str(tmp_path), main_program=main, vars=params,
                                filename="floats.pdiparams")
        scope = paddle.static.global_scope()
        for n, (dt, shape, raw) in floats.items():
            got = np.array(scope.find_var(n).get_tensor())
            assert got.dtype == np.dtype(dt) and list(got.shape) == shape and got.tobytes() == raw, n
    finally:
        paddle.disable_static()


# Paddle's flex checkpoints (paddle.distributed.save_state_dict / load_state_dict): dtypes as
# numpy and Paddle name them, shapes with uneven splits.
FLEX = {"linear.w": ("float32", (7, 5)), "linear.b": ("float64", (13,)),
        "emb.w": ("float16", (9, 10)), "step": ("int64", (1,)), "mask": ("bool", (6, 4)),
        "ids": ("int32", (11, 3))}


def _flex_state(np, seed):
    rng = np.random.default_rng(seed)
    return {k: (rng.standard_normal(shape) * 10).astype(dt) if dt != "bool"
            else rng.integers(0, 2, size=shape).astype(bool) for k, (dt, shape) in FLEX.items()}


def test_paddle_save_state_dict_loads_on_any_rank_count(tmp_path, paddle_np):
    """Real Paddle writes a flex checkpoint (0_0.distcp + 0.metadata, a pickled Metadata);
    pdckpt lists it and loads it back on 1 to 4 ranks, bit for bit."""
    paddle, np = paddle_np
    import paddle.distributed as dist
    state = _flex_state(np, 5)
    ck = tmp_path / "ck"
    dist.save_state_dict({k: paddle.to_tensor(v) for k, v in state.items()}, str(ck))
    assert sorted(os.listdir(ck)) == ["0.metadata", "0_0.distcp"]
    listing = json.loads(run_cli("ls", "--json", ck, check=0).stdout)
    assert {t["key"]: (t["dtype"], tuple(t["shape"])) for t in listing["tensors"]} == FLEX
    for m in (1, 2, 3, 4):
        out = tmp_path / f"m{m}.safetensors"
        mpirun(m, "dist", "merge", ck, out)
        got = pdckpt.load(str(out))
        for k, v in state.items():
            a = got[k].numpy() if hasattr(got[k], "numpy") else np.asarray(got[k])
            assert a.dtype == v.dtype and a.tobytes() == v.tobytes(), (m, k)


def _flattened_checkpoint(paddle, np, path, runs=None):
    """A checkpoint of Paddle 3's flattened pieces (sharding v2), made with Paddle's own
    Metadata / LocalTensorMetadata / LocalTensorIndex classes and paddle.save, as
    save_state_dict writes them from ShardedWeight(is_flattened=True, flattened_range=...) on
    several ranks (one process cannot play several ranks of save_state_dict): every stored
    tensor is the 1-D run [start, end) of the row-major flattening of its box; ranks that share
    a box hold consecutive runs, one tensor per key per file."""
    from paddle.distributed.flex_checkpoint.dcp.metadata import (
        LocalTensorIndex, LocalTensorMetadata, Metadata)
    rng = np.random.default_rng(5)
    full = {"w": rng.standard_normal((6, 10)).astype("float32"),
            "b": rng.standard_normal((8, 5)).astype("float64"),
            "e": np.arange(7, dtype="int64")}
    # (key, box offset, box shape, flattened run or None, rank): runs cross rows and boxes
    pieces = runs or [("w", (0, 0), (6, 10), (0, 17), 0), ("w", (0, 0), (6, 10), (17, 41), 1),
                      ("w", (0, 0), (6, 10), (41, 60), 2),
                      ("b", (0, 0), (4, 5), (0, 7), 0), ("b", (0, 0), (4, 5), (7, 20), 1),
                      ("b", (4, 0), (4, 5), (0, 13), 2), ("b", (4, 0), (4, 5), (13, 20), 3),
                      ("e", (0,), (7,), None, 2)]
    files, sdm, storage = {}, {}, {}
    for key, off, shape, run, rank in pieces:
        box = full[key][tuple(slice(o, o + s) for o, s in zip(off, shape))]
        data = box.reshape(-1)[run[0]:run[1]] if run else box
        name = f"{rank}_0.distcp"
        files.setdefault(name, {})[key] = paddle.to_tensor(np.ascontiguousarray(data))
        sdm.setdefault(key, []).append(LocalTensorMetadata(
            off, shape, str(full[key].dtype), full[key].shape, run is not None, run))
        storage[LocalTensorIndex(key, off, run is not None, run, None, shape)] = name
    os.makedirs(path, exist_ok=True)
    for name, sd in files.items():
        paddle.save(sd, os.path.join(path, name))
    paddle.save(Metadata(sdm, storage, {}), os.path.join(path, "0.metadata"))
    return full


def test_paddle_flattened_pieces_load(tmp_path, paddle_np):
    """Issue 20: Paddle's flattened pieces (is_flattened, flattened_range) load on 1 to 3 ranks,
    bit for bit — the same values Paddle's own load_state_dict reads from the same files; `ls`
    shows each run; a run outside its box is a FORMAT error naming the key."""
    paddle, np = paddle_np
    ck = tmp_path / "ck"
    full = _flattened_checkpoint(paddle, np, ck)
    target = {k: paddle.zeros(v.shape, dtype=str(v.dtype)) for k, v in full.items()}
    paddle.distributed.load_state_dict(target, str(ck))
    for k, v in full.items():
        assert target[k].numpy().tobytes() == v.tobytes(), k  # the fixture is Paddle's own
    listing = json.loads(run_cli("ls", "--json", ck, check=0).stdout)
    runs = {tuple(p["flattened_range"]) for t in listing["tensors"] if t["key"] == "w"
            for p in t["pieces"]}
    assert runs == {(0, 17), (17, 41), (41, 60)}
    for m in (1, 2, 3):
        out = tmp_path / f"m{m}.safetensors"
        mpirun(m, "dist", "merge", ck, out)
        got = pdckpt.load(str(out))
        for k, v in full.items():
            a = np.asarray(got[k])
            assert a.dtype == v.dtype and a.tobytes() == v.tobytes(), (m, k)
    bad = tmp_path / "bad"
    _flattened_checkpoint(paddle, np, bad, runs=[("w", (0, 0), (6, 10), (0, 61), 0)])
    proc = mpirun(1, "dist", "merge", bad, tmp_path / "bad.safetensors", check=None)
    assert proc.returncode != 0 and "flattened piece of 'w'" in proc.stderr, proc.stderr


def test_paddle_load_state_dict_reads_what_the_ranks_wrote(tmp_path, paddle_np):
    """pdckpt writes Paddle's layout on 1 to 4 ranks (row, column, block and replicated pieces,
    .distcp pickles, the pickled Metadata); Paddle's load_state_dict reshards it into one
    process's full tensors, bit for bit."""
    paddle, np = paddle_np
    import paddle.distributed as dist
    state = _flex_state(np, 6)
    src = tmp_path / "src.safetensors"
    pdckpt.save(state, str(src))
    for n, layout in ((1, "row"), (2, "col"), (3, "linear.*=col,emb.*=block,row"), (4, "rep")):
        ck = tmp_path / f"ck{n}"
        mpirun(n, "dist", "shard", src, ck, "--ranks-layout", layout)
        assert (ck / "0.metadata").exists() and (ck / f"{n - 1}_0.distcp").exists()
        target = {k: paddle.zeros(v.shape, dtype=str(v.dtype)) for k, v in state.items()}
        dist.load_state_dict(target, str(ck))
        for k, v in state.items():
            assert target[k].numpy().tobytes() == v.tobytes(), (n, layout, k)


def test_paddle_loads_a_pdparams_written_by_all_ranks(tmp_path, state, paddle_np):
    """One .pdparams written by 4 ranks at once with MPI-IO (pdckpt_mpi_save_combined; tensors of
    1 MiB and more straight from the ranks that hold them): paddle.load reads it exactly, and it
    is byte for byte what one process writes for the same dict."""
    paddle, np = paddle_np
    src, contents = state
    rng = np.random.default_rng(8)
    big = {"big.w": rng.standard_normal((512, 1024)).astype(np.float32),
           "big.h": rng.standard_normal((700, 1000)).astype(np.float16)}
    for name, arr in big.items():
        (src / name).write_bytes(refread.write_stream(str(arr.dtype), list(arr.shape),
                                                      arr.tobytes()))
    try:
        ck = tmp_path / "ck"
        mpirun(3, "dist", "shard", src, ck, "--ranks-layout", "*.w_0=col,block")
        out = tmp_path / "model.pdparams"
        mpirun(4, "dist", "merge", ck, out)
        assert sorted(os.listdir(tmp_path)) == ["ck", "model.pdparams"]  # no temporaries
        loaded = paddle.load(str(out))
        want = {**{n: (dt, shape, raw) for n, (dt, shape, raw) in contents.items()},
                **{n: (str(a.dtype), list(a.shape), a.tobytes()) for n, a in big.items()}}
        assert set(loaded) == set(want)
        for name, (dt, shape, raw) in want.items():
            got = loaded[name]
            got = got.numpy() if hasattr(got, "numpy") else np.asarray(got)
            assert list(got.shape) == shape and got.tobytes() == raw, name
        run_cli("convert", out, tmp_path / "again.pdparams", check=0)
        assert (tmp_path / "again.pdparams").read_bytes() == out.read_bytes()
    finally:
        for name in big:
            (src / name).unlink()


def _as_plain(paddle, np, v):
    """paddle.load's result with every tensor as a numpy array, for comparison."""
    if isinstance(v, dict):
        return {k: _as_plain(paddle, np, x) for k, x in v.items()}
    if hasattr(v, "numpy"):
        v = v.numpy()
    if isinstance(v, np.ndarray):
        return (v.dtype.str, v.shape, v.tobytes())
    return v


def test_paddle_loads_gathered_params_and_opt(tmp_path, paddle_np):
    """paddle.distributed.save's gather_to: 4 ranks' params gathered to rank 0 and optimizer
    states (moments, master_weights, LR_Scheduler) to ranks 1 and 2, in 1 KiB transfer groups,
    and params with 1.25 MiB tensors streamed into rank 0's file in 1 MiB groups
    (tests/unit/test_dist_save.c, PDCKPT_DIST_KEEP): paddle.load reads each file with exactly
    the values of the expected merge."""
    paddle, np = paddle_np
    tool = BUILD / "tests" / "test_dist_save"
    proc = subprocess.run(["mpirun", "-n", "4", "--oversubscribe", str(tool)], capture_output=True,
                          text=True, env=dict(MPI_ENV, PDCKPT_DIST_KEEP=str(tmp_path)), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pairs = [("params.pdparams", "expected_params.pdparams"),
             ("opt1.pdopt", "expected_opt1.pdopt"), ("opt2.pdopt", "expected_opt2.pdopt"),
             ("streamed.pdparams", "expected_streamed.pdparams")]  # 1.25 MiB tensors: streamed
    for got, want in pairs:
        g = _as_plain(paddle, np, paddle.load(str(tmp_path / got)))
        w = _as_plain(paddle, np, paddle.load(str(tmp_path / want)))
        assert g == w and list(g) == list(w), got
    opt = paddle.load(str(tmp_path / "opt1.pdopt"))
    assert set(opt["master_weights"]) == {"p0", "p1", "p2", "p3", "shared"}
    assert opt["LR_Scheduler"]["last_epoch"] == 1  # the writer's own scheduler


def test_cli_errors(tmp_path, state):
    src, _ = state
    proc = mpirun(2, "dist", "shard", src, tmp_path / "ck", check=2)
    assert "--ranks-layout" in proc.stderr
    proc = mpirun(2, "dist", "shard", src, tmp_path / "ck", "--ranks-layout", "2x2x2", check=2)
    assert "one factor per dim" in proc.stderr
    proc = mpirun(2, "dist", "merge", tmp_path / "missing", tmp_path / "o.pdiparams", check=1)
    assert "missing: open directory: No such file or directory" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = mpirun(2, "dist", "merge", tmp_path / "empty", tmp_path / "o.pdiparams", check=1)
    assert "no complete sharded checkpoint" in proc.stderr
    assert run_cli("dist", "frobnicate").returncode == 2


def _session_pids(sid):
    # read from /proc, not `ps`: a process started at the moment of the kill would cost the job
    # 35-80 ms more to finish the save the kill must land in (a 0.2 s window for the merge below)
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # not a process, or it ended meanwhile
            continue
        if int(fields[3]) == sid:  # state, ppid, pgrp, session
            pids.append(int(entry))
    return pids


def _kill_session(sid):
    for pid in _session_pids(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # it ended between the listing and the kill
            pass


def _kill_job_when(cmd, ready, timeout=120):
    """Starts an mpirun job in its own session, SIGKILLs every process of it as soon as
    ready() is true; returns whether it was killed before finishing."""
    proc = subprocess.Popen(["mpirun", "--oversubscribe", *map(str, cmd)], env=MPI_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    killed = False
    while proc.poll() is None and time.monotonic() < deadline:
        if ready():
            _kill_session(proc.pid)
            killed = True
            break
        time.sleep(0.002)
    proc.wait(timeout=60)
    _kill_session(proc.pid)  # nothing of the job may survive
    return killed


def _big_input(path, seed, rows=1536):
    import numpy as np
    rng = np.random.default_rng(seed)
    path.mkdir()
    for i in range(4):
        raw = rng.integers(0, 256, size=rows * 4096 * 4, dtype="uint8").tobytes()
        (path / f"layer_{i}.w_0").write_bytes(refread.write_stream("float32", [rows, 4096], raw))


def _kill_job_after(cmd, delay):
    """Starts an mpirun job in its own session and SIGKILLs all of it `delay` seconds later."""
    return _kill_job_when(cmd, lambda start=time.monotonic(): time.monotonic() - start >= delay)


SHARDED_TRIALS = int(os.environ.get("PDCKPT_SHARDED_CRASH_TRIALS", "12"))


def test_sigkill_sharded_save_at_random_points(tmp_path):
    """The crash harness for sharded checkpoints: a 2-rank `dist shard` of checkpoint A or B
    (alternately) over a directory that holds complete ones is killed -9 at a random moment of
    its run.  Afterwards the newest complete checkpoint is exactly the last save that finished
    or the one just killed (if it got as far as its metadata), never a mix; the killed save's
    leftovers are swept by the next save.  scripts/crash_campaign.sh runs more trials."""
    sources = {"A": tmp_path / "A", "B": tmp_path / "B"}
    _big_input(sources["A"], 21, rows=384)
    _big_input(sources["B"], 22, rows=384)
    ck = tmp_path / "ck"
    shard = ["-n", "2", PDCKPT_BIN, "dist", "shard", None, ck, "--ranks-layout", "row"]
    t0 = time.monotonic()
    mpirun(2, *shard[3:5], sources["A"], *shard[6:])
    full = time.monotonic() - t0
    saved = {0: "A"}  # checkpoint id -> which source it holds
    seed = int(os.environ.get("PDCKPT_CRASH_SEED", "7"))
    rng = random.Random(seed)
    outcomes = {"old": 0, "new": 0}
    for trial in range(SHARDED_TRIALS):
        which = "AB"[(trial + 1) % 2]
        before = json.loads(run_cli("ls", "--json", ck, check=0).stdout)["id"]
        shard[5] = sources[which]
        _kill_job_after(shard, rng.uniform(0, full * 1.2))
        now = json.loads(run_cli("ls", "--json", ck, check=0).stdout)["id"]
        if now == before:
            outcomes["old"] += 1
        else:
            assert now > before, (trial, before, now)
            saved[now] = which
            outcomes["new"] += 1
        back = tmp_path / f"back{trial}"
        mpirun(1, "dist", "merge", ck, back, "--to", "vars-dir")
        run_cli("diff", back, sources[saved[now]], check=0)  # exactly one whole checkpoint
    mpirun(2, "dist", "shard", sources["A"], ck, "--ranks-layout", "col")
    assert [f for f in os.listdir(ck) if ".pdckpt-" in f] == []  # the next save swept them
    print(f"sharded: {SHARDED_TRIALS} kills (seed {seed}): {outcomes}")


def test_kill_9_during_sharded_save(tmp_path):
    src = tmp_path / "big"
    _big_input(src, 5)
    ck = tmp_path / "ck"
    mpirun(4, "dist", "shard", src, ck, "--ranks-layout", "row")
    conclusive = 0
    for attempt in range(4):
        new_id = attempt + 1
        def mid_save():
            return any(f".pdckpt-tmp-" in f or f.endswith(f"_{new_id}.distcp") for f in os.listdir(ck))
        killed = _kill_job_when(["-n", "4", PDCKPT_BIN, "dist", "shard", src, ck, "--ranks-layout", "col"],
                                mid_save)
        complete = (ck / f"{new_id}.metadata").exists()
        listing = json.loads(run_cli("ls", "--json", ck, check=0).stdout)
        if killed and not complete:
            conclusive += 1
            assert listing["id"] == 0  # the new checkpoint never looks complete
            assert listing["largest_id"] >= new_id or any(".pdckpt-" in f for f in os.listdir(ck))
        if conclusive >= 2:
            break
    assert conclusive >= 1, "no kill landed before the save completed"
    # The previous checkpoint still loads, bit for bit.
    mpirun(3, "dist", "merge", ck, tmp_path / "back", "--to", "vars-dir", "--id", "0")
    run_cli("diff", tmp_path / "back", src, check=0)
    # The next save works and takes a fresh id (never one a killed save touched).
    out = mpirun(2, "dist", "shard", src, ck, "--ranks-layout", "block").stdout
    assert "sharded checkpoint id" in out and "id 0," not in out
    assert [f for f in os.listdir(ck) if f.startswith(".")] == []  # temporaries swept


def test_kill_9_during_collective_write(tmp_path):
    src = tmp_path / "big"
    _big_input(src, 6)
    ck = tmp_path / "ck"
    mpirun(4, "dist", "shard", src, ck, "--ranks-layout", "row")
    out = tmp_path / "model.pdiparams"
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "x").write_bytes(refread.write_stream("float32", [2], b"\0" * 8))
    run_cli("convert", tmp_path / "old", out, check=0)
    old = hashlib.sha256(out.read_bytes()).hexdigest()
    killed = _kill_job_when(["-n", "4", PDCKPT_BIN, "dist", "merge", ck, out],
                            lambda: any(".pdckpt-dist-" in f for f in os.listdir(tmp_path)))
    assert killed, "the kill did not land while the ranks were writing"
    assert hashlib.sha256(out.read_bytes()).hexdigest() == old  # the old file, untouched
    mpirun(4, "dist", "merge", ck, out)  # then a full write replaces it, sweeping the temporary
    assert [f for f in os.listdir(tmp_path) if ".pdckpt-" in f] == []
    names = names_file(tmp_path / "names.txt", {f.name: None for f in src.iterdir()})
    run_cli("diff", "--names", f"@{names}", out, src, check=0)


def test_dead_rank_fails_the_others_fast(tmp_path):
    """Issue 20: a rank killed -9 in the middle of a save must not cost the others the 600 s
    default timeout.  Under a plain mpirun Open MPI 4.1 aborts the whole job at once; under
    `mpirun --enable-recovery` the job lives on and an operation with the dead rank just hangs,
    so the survivors notice themselves (dist_alive.c: the ranks on the dead rank's host see its
    process gone and tell the rest).  Both survivors fail with an MPI error naming the dead rank
    within seconds, for the save it died in and for the next one it never joins; no temporary
    file is left."""
    tool = BUILD / "tests" / "pdckpt_dist_dead_rank"
    t0 = time.monotonic()
    proc = subprocess.run(["mpirun", "-n", "3", "--oversubscribe", "--enable-recovery", str(tool),
                           str(tmp_path / "out.pdparams")], capture_output=True, text=True,
                          env=MPI_ENV, timeout=120)
    took = time.monotonic() - t0
    lines = [line for line in proc.stdout.splitlines() if ": rank " in line]
    assert len(lines) == 4, proc.stdout + proc.stderr  # two saves on each of the two survivors
    for line in lines:
        m = re.match(r"(first|second): rank ([01]): status mpi after ([0-9.]+) s: (.*)", line)
        assert m, line
        assert float(m.group(3)) < 10, line
        assert "died" in m.group(4) or "dead" in m.group(4), line
    assert any("rank 2" in line for line in lines if line.startswith("first"))
    assert took < 60, took
    assert [f for f in os.listdir(tmp_path) if ".pdckpt-" in f] == []


RESAVE_TRIALS = int(os.environ.get("PDCKPT_RESAVE_CRASH_TRIALS", "20"))
DATA_FILE = re.compile(r"^\d+_\d+\.distcp$")


def _holds(ck, ident, sources, tmp_path, tag):
    """Which source checkpoint `ident` of `ck` holds, bit for bit (merged on one rank)."""
    back = tmp_path / f"back-{tag}"
    mpirun(1, "dist", "merge", ck, back, "--to", "vars-dir", "--id", ident)
    same = [name for name, src in sources.items()
            if run_cli("diff", back, src).returncode == 0]
    assert len(same) == 1, (tag, same)
    return same[0]


def _assert_clean(ck):
    """Only what the committed metadata names (and the metadata) is left: no uncommitted file."""
    ids = [f.split(".")[0] for f in os.listdir(ck) if f.endswith(".metadata")]
    named = {f["name"] for i in ids for f in ls_json(ck, "--id", i)["files"]}
    data = {f for f in os.listdir(ck) if DATA_FILE.match(f) and not (ck / f).is_symlink()}
    assert data == named, (data, named)
    assert [f for f in os.listdir(ck) if ".pdckpt-" in f] == []


def test_sigkill_resave_of_an_explicit_id(tmp_path):
    """Issue 20: `dist shard --id 5` over a directory whose checkpoint 5 is complete, killed -9
    at a random moment of its run, RESAVE_TRIALS times (A and B alternately).  Checkpoint 5
    always loads, whole: the previous save or the killed one if it got to its metadata — the old
    metadata is never removed before the new one replaces it.  Every fifth trial a save that
    runs to the end must leave only the files its metadata names (the killed saves' leftovers are
    swept).  scripts run 100 trials with PDCKPT_RESAVE_CRASH_TRIALS=100."""
    sources = {"A": tmp_path / "A", "B": tmp_path / "B"}
    _big_input(sources["A"], 31, rows=256)
    _big_input(sources["B"], 32, rows=256)
    ck = tmp_path / "ck"
    shard = ["-n", "2", PDCKPT_BIN, "dist", "shard", None, ck, "--ranks-layout", "row", "--id", "5"]
    t0 = time.monotonic()
    mpirun(2, *shard[3:5], sources["A"], *shard[6:])
    full = time.monotonic() - t0
    holds = "A"
    rng = random.Random(int(os.environ.get("PDCKPT_CRASH_SEED", "11")))
    outcomes = {"old": 0, "new": 0}
    for trial in range(RESAVE_TRIALS):
        which = "AB"[(trial + 1) % 2]
        shard[5] = sources[which]
        _kill_job_after(shard, rng.uniform(0, full * 1.2))
        assert ls_json(ck)["id"] == 5
        now = _holds(ck, 5, sources, tmp_path, trial)
        assert now in (holds, which), (trial, holds, which, now)
        outcomes["old" if now == holds and now != which else "new"] += 1
        holds = now
        if trial % 5 == 4:  # a save that finishes sweeps every leftover of the killed ones
            mpirun(2, *shard[3:5], sources[holds], *shard[6:])
            _assert_clean(ck)
    mpirun(2, *shard[3:5], sources["B"], *shard[6:])
    _assert_clean(ck)
    assert _holds(ck, 5, sources, tmp_path, "end") == "B"
    print(f"re-saved id 5: {RESAVE_TRIALS} kills: {outcomes}")


def test_dist_gc_and_keep(tmp_path, state):
    src, contents = state
    ck = tmp_path / "ck"
    for _ in range(3):
        mpirun(2, "dist", "shard", src, ck, "--ranks-layout", "row")
    # Leftovers of a killed save (id 9, no metadata), a temporary, and things that are not ours.
    (ck / "0_9.distcp").write_bytes(b"partial")
    (ck / ".0_9.distcp.pdckpt-tmp-1234").write_bytes(b"partial")
    outside = tmp_path / "precious.bin"
    outside.write_bytes(b"keep me")
    os.symlink(outside, ck / "1_9.distcp")
    (ck / "notes.txt").write_text("mine")
    out = run_cli("dist", "gc", ck, "--keep", "2", check=0).stdout
    assert "removed 1 old checkpoints" in out
    left = sorted(os.listdir(ck))
    assert "0.metadata" not in left and "1.metadata" in left and "2.metadata" in left
    assert "0.pdkidx" not in left and "1.pdkidx" in left  # the index sidecar goes with it
    assert "0_9.distcp" not in left and not any(".pdckpt-" in f for f in left)
    assert "1_9.distcp" in left and outside.read_bytes() == b"keep me"  # a symlink: not ours
    assert "notes.txt" in left
    assert not any(f.endswith("_0.distcp") for f in left)  # checkpoint 0's files went too
    mpirun(1, "dist", "merge", ck, tmp_path / "back", "--to", "vars-dir", "--id", "1")
    run_cli("diff", tmp_path / "back", src, check=0)
    # A save with --keep 1 leaves the newest only.
    mpirun(2, "dist", "shard", src, ck, "--ranks-layout", "col", "--keep", "1")
    assert sorted(f for f in os.listdir(ck) if f.endswith((".metadata", ".pdkidx"))) == [
        "3.metadata", "3.pdkidx"]
    _assert_clean(ck)
    # Re-saving an older id with --keep 1 keeps what was just saved (not only the largest id).
    mpirun(2, "dist", "shard", src, ck, "--ranks-layout", "row", "--id", "1", "--keep", "1")
    assert sorted(f for f in os.listdir(ck) if f.endswith(".metadata")) == [
        "1.metadata", "3.metadata"]
    _assert_clean(ck)
    run_cli("dist", "gc", ck, "--keep", "0", check=2)


def test_index_sidecar_is_only_a_shortcut(tmp_path, state):
    """The "<id>.pdkidx" sidecar a save writes lets a load skip unpickling the metadata; a missing,
    stale (another metadata's) or corrupt one is ignored and the metadata is read instead."""
    src, contents = state
    ck = tmp_path / "ck"
    mpirun(2, "dist", "shard", src, ck, "--ranks-layout", "block")
    side = (ck / "0.pdkidx").read_bytes()
    assert side[:8] == b"PDKIDX2\0"
    variants = {"missing": None, "garbage": b"\0" * 100,
                "right header, bad body": side[:24] + bytes(range(256)) * 4,
                "stale": b"PDKIDX2\0" + (1).to_bytes(8, "little") + side[16:]}
    for name, data in variants.items():
        (ck / "0.pdkidx").unlink(missing_ok=True)
        if data is not None:
            (ck / "0.pdkidx").write_bytes(data)
        back = tmp_path / f"back-{name.replace(' ', '_').replace(',', '')}"
        mpirun(3, "dist", "merge", ck, back, "--to", "vars-dir")
        run_cli("diff", back, src, check=0)
