# SPDX-License-Identifier: Apache-2.0
"""Sharded checkpoints that real Paddle 3.x writes from a real 2-process job (`python -m
paddle.distributed.launch --nproc_per_node 2`, Gloo on CPU; paddle_sharded_worker.py is one rank),
read by pdckpt every way, and the reverse.  The job holds dist tensors on the mesh [0, 1] split by
rows (Shard(0)), columns (Shard(1)) and Replicate(), on the 2-D meshes [[0, 1]] and [[0], [1]],
0-d tensors, plain tensors, sharding v2's flattened ShardedWeights (made by hand: sharding v2 and
stage 3 do not run on CPU), float32/64, bfloat16, float16, int32/64 and bool; and real optimizer
states: auto-parallel AdamW (dist.shard_optimizer) and fleet sharding stage 1 (whole states per
rank), nested.  Paddle's save_state_dict writes them; every rank dumps its local values and boxes
(.npz/.json) and the test compares:
  * `pdckpt ls` lists exactly the pieces the ranks held; `pdckpt verify` passes;
  * pdckpt.load, and `pdckpt dist merge` under mpirun on 1, 2 and 3 ranks, give the global tensors
    the pieces make up, bit for bit;
  * pdckpt.distributed.load_state_dict in the job fills targets of the same, swapped (rows <->
    columns, reversed 2-D placements, another flattened split; also read without mapping the
    files), replicated and plain layouts, and on a 3-rank job (3-way splits), bit for bit;
  * the reverse: pdckpt.distributed.save_state_dict from the job (flattened pieces too) lists
    what Paddle's save lists, file by file; Paddle's load_state_dict reads it in the job (same
    sharding: dist tensors, flattened ShardedWeights) and in one process (whole); pdckpt reads it
    back every way;
  * an empty run, as sharding stage 3 makes it: Paddle stores it and then loads zeros; pdckpt
    reads Paddle's checkpoint right and leaves the run out of its own.
Paddle's own limits on CPU are asserted too (docs/distributed.md, "Real Paddle 3.x sharded
layouts"), so the docs stay true: its multi-process load into another sharding fails in its
resharder ("No available device found.", a .cuda() call), for its own checkpoints as for pdckpt's."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pdckpt

from conftest import PY_STAGE, ls_json, run_cli
import paddle_sharded_worker as W
from test_dist import mpirun

HERE = Path(__file__).resolve().parent
FLAT = {k for k, (_, _, how) in W.SPECS.items() if how.startswith("flat:")}
NO_DEVICE = "ValueError: No available device found."


def launch(out, nproc, *args):
    paths = [str(PY_STAGE), str(HERE)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    proc = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--log_dir",
                           str(out / f"log{nproc}"), "--nproc_per_node", str(nproc),
                           str(HERE / "paddle_sharded_worker.py"), str(out), *args],
                          capture_output=True, text=True, env=env, timeout=300)
    logs = "".join(p.read_text(errors="replace")[-3000:]
                   for p in sorted((out / f"log{nproc}").glob("workerlog.*")))
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:], logs)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    out = tmp_path_factory.mktemp("paddle_sharded")
    launch(out, 2, "job")
    notes = [json.loads((out / f"notes{r}.json").read_text()) for r in (0, 1)]
    return out, notes


def dumps(out, tag):
    """[(arrays, boxes)] of every rank that dumped `tag`."""
    res = []
    for j in sorted((out / tag).glob("r*.json")):
        with np.load(j.with_suffix(".npz")) as z:
            res.append(({k: z[k] for k in z.files}, json.loads(j.read_text())))
    return res


def positions(box):
    """Where a piece's elements sit in its tensor's row-major flattening."""
    gshape = tuple(box["global_shape"])
    box_idx = np.arange(int(np.prod(gshape)), dtype=np.int64).reshape(gshape)
    sl = tuple(slice(o, o + s) for o, s in zip(box["offset"], box["shape"]))
    run = box_idx[sl].reshape(-1)
    lo, hi = box["flattened_range"] or (0, run.size)
    return run[lo:hi]


def assemble(ranks):
    """The global tensors the ranks' pieces make up; every element covered, overlaps equal."""
    full, seen = {}, {}
    for arrays, boxes in ranks:
        for key, box in boxes.items():
            a = arrays[key]
            if key not in full:
                full[key] = np.zeros(box["global_shape"], dtype=a.dtype)
                seen[key] = np.zeros(box["global_shape"], dtype=bool)
            where = positions(box)
            old = full[key].reshape(-1)[where][seen[key].reshape(-1)[where]]
            assert old.tobytes() == a.reshape(-1)[seen[key].reshape(-1)[where]].tobytes(), key
            full[key].reshape(-1)[where] = a.reshape(-1)
            seen[key].reshape(-1)[where] = True
    for key, s in seen.items():
        assert s.all(), f"{key}: the pieces do not cover it"
    return full


def bits(paddle, arr, dtype):
    """The bytes Tensor.numpy() gives for `arr` held as `dtype` (bfloat16: its uint16 bits)."""
    return paddle.to_tensor(arr).astype(dtype).numpy().tobytes()


def raw(t):
    return np.ascontiguousarray(t.numpy() if hasattr(t, "numpy") else np.asarray(t)).tobytes()


def check_local_values(out, tag, full):
    """Every rank's dumped local value of `tag` is its box of the global tensor, bit for bit."""
    ranks = dumps(out, tag)
    assert ranks, tag
    for arrays, boxes in ranks:
        for key, box in boxes.items():
            want = full[key].reshape(-1)[positions(box)]
            assert arrays[key].dtype == want.dtype, (tag, key)
            assert arrays[key].reshape(-1).tobytes() == want.tobytes(), (tag, key, box)
    return ranks


def test_outcomes_in_the_job(job):
    """What worked in the job, the same on both ranks, and Paddle's own CPU limits."""
    _, notes = job
    assert notes[0] == notes[1]
    n = notes[0]
    for name in ("pdckpt_load_same", "pdckpt_load_swap", "pdckpt_load_rep", "pdckpt_load_plain",
                 "pdckpt_load_swap_copy",
                 "pdckpt_load_trained", "pdckpt_save", "pdckpt_save_trained",
                 "pdckpt_reload_swap", "pdckpt_reload_rep", "pdckpt_save_s3",
                 "paddle_load_paddle_sharded", "paddle_load_pdckpt_sharded",
                 "paddle_load_paddle_flat", "paddle_load_pdckpt_flat"):
        assert n[name] == "ok", (name, n[name])
    # Paddle's multi-process load into another sharding needs a GPU, for its own files as for
    # ours: dist tensors, and flattened pieces into other runs or into replicated dist tensors
    for what in ("swap", "flat_swap", "flat_rep"):
        assert n[f"paddle_load_paddle_{what}"] == n[f"paddle_load_pdckpt_{what}"] == NO_DEVICE
    # Shard(0) over both dims of a 2-D mesh: Paddle's save cannot place it; pdckpt says why
    assert "has no attribute 'get_dim'" in n["paddle_save_coshard"]
    assert n["pdckpt_save_coshard"].startswith("UnsupportedError: 'co': Paddle cannot place")


def test_the_ranks_held_what_the_specs_say(job, paddle_np):
    """The control: the dumps hold the synthetic tensors' pieces, split as the specs ask."""
    paddle, _ = paddle_np
    out, _ = job
    held = dumps(out, "held")
    full = assemble(held)
    for key, (dtype, shape, how) in W.SPECS.items():
        assert full[key].tobytes() == bits(paddle, W.full_tensors()[key], dtype), key
        assert full[key].any(), key  # so a load that left a target at zeros cannot match
        pieces = [(b[key]["offset"], b[key]["shape"], b[key]["flattened_range"]) for _, b in held
                  if key in b]
        if how == "P1":
            assert len(pieces) == 1 and key not in held[0][1], key  # rank 1's alone
            continue
        split = how in ("S0", "S1") or how[0] in "Mf"
        assert (pieces[0] != pieces[1]) == split, (key, pieces)  # really split between the ranks
    assert [b["model.w_row"]["shape"] for _, b in held] == [[4, 5], [3, 5]]
    assert [b["model.w_col"]["shape"] for _, b in held] == [[6, 3], [6, 2]]
    assert [b["flat.v"]["flattened_range"] for _, b in held] == [[0, 27], [27, 60]]


def listed_pieces(listing):
    return {t["key"]: (t["dtype"], t["shape"], sorted(
        (p["offset"], p["shape"], p.get("flattened_range")) for p in t["pieces"]))
        for t in listing["tensors"]}


def held_pieces(ranks):
    out = {}
    for _, boxes in ranks:
        for key, b in boxes.items():
            entry = out.setdefault(key, (b["dtype"], b["global_shape"], []))
            piece = (b["offset"], b["shape"], b["flattened_range"])
            if piece not in entry[2]:
                entry[2].append(piece)
    return {k: (d, s, sorted(p)) for k, (d, s, p) in out.items()}


def test_ls_and_verify_list_what_the_ranks_held(job):
    out, _ = job
    assert ls_json(out / "paddle_id3")["id"] == 3
    for ck, tag in (("paddle_ck", "held"), ("paddle_trained", "trained"),
                    ("paddle_safetensors", "held")):
        assert listed_pieces(ls_json(out / ck)) == held_pieces(dumps(out, tag)), ck
        assert run_cli("verify", out / ck).returncode == 0
        for f in sorted((out / ck).iterdir()):
            assert run_cli("verify", f).returncode == 0, f


def test_ls_marks_paddles_replicas(job):
    """save_replicas=True: every rank's copy of a replicated piece is listed, the extra ones
    (replica_id 1, which loads skip) marked as such."""
    out, _ = job
    listing = ls_json(out / "paddle_replicas")["tensors"]
    replicas = {t["key"]: sorted(p.get("replica_id", 0) for p in t["pieces"]) for t in listing}
    assert replicas["model.bias"] == replicas["model.small"] == [0, 1]
    assert replicas["model.w_row"] == [0, 0] and replicas["pp.w"] == [0]
    text = run_cli("ls", out / "paddle_replicas", check=0).stdout
    assert text.count(" replica 1 ") == sum(r.count(1) for r in replicas.values()) > 0, text


def test_pdckpt_load_and_mpi_merge_whole(job, tmp_path):
    """pdckpt.load and `pdckpt dist merge` on 1, 2 and 3 MPI ranks: the global tensors; also of
    Paddle's saves with save_replicas=True (every rank's copy listed, replica_id 1 skipped),
    safetensors=True (.safetensors data files) and unique_id=3."""
    out, _ = job
    for ck, tag in (("paddle_ck", "held"), ("paddle_trained", "trained"),
                    ("paddle_replicas", "held"), ("paddle_safetensors", "held"),
                    ("paddle_id3", "held"), ("pdckpt_ck", "held")):
        full = assemble(dumps(out, tag))
        got = pdckpt.load(str(out / ck))
        assert {k: raw(v) for k, v in got.items()} == {k: v.tobytes() for k, v in full.items()}
        assert run_cli("verify", out / ck).returncode == 0
        for n in (1, 2, 3) if tag == "trained" or ck == "paddle_ck" else (2,):
            merged = tmp_path / f"{ck}{n}.safetensors"
            mpirun(n, "dist", "merge", out / ck, merged)
            got = pdckpt.load(str(merged))
            assert {k: raw(v) for k, v in got.items()} == \
                {k: v.tobytes() for k, v in full.items()}, (ck, n)


def test_pdckpt_loads_into_every_layout_in_the_job(job):
    """pdckpt.distributed.load_state_dict of Paddle's checkpoint into the same, swapped,
    replicated and plain layouts (and the trained states into theirs), bit for bit."""
    out, _ = job
    full = assemble(dumps(out, "held"))
    same = check_local_values(out, "load_same", full)
    swap = check_local_values(out, "load_swap", full)
    assert [b for _, b in check_local_values(out, "load_swap_copy", full)] == [b for _, b in swap]
    for tag in ("load_rep", "load_plain"):
        for _, boxes in check_local_values(out, tag, full):
            assert all(b["shape"] == b["global_shape"] for b in boxes.values()), tag
    # the swapped layout really is another one
    assert [b["model.w_row"]["shape"] for _, b in swap] == [[7, 3], [7, 2]]
    assert [b["flat.m"]["flattened_range"] for _, b in swap] == [[0, 7], [7, 35]]
    for key in ("mesh.a", "mesh.b", "mesh.c", "mesh.d"):
        assert [b[key]["shape"] for _, b in same] != [b[key]["shape"] for _, b in swap], key
    trained = assemble(dumps(out, "trained"))
    check_local_values(out, "load_trained", trained)


def test_pdckpt_reloads_its_flattened_pieces_in_the_job(job):
    """pdckpt.distributed.load_state_dict of pdckpt's own checkpoint (flattened pieces saved as
    sharding v2 holds them) into the swapped layout (other runs, columns for rows) and
    replicated, bit for bit."""
    out, _ = job
    full = assemble(dumps(out, "held"))
    swap = check_local_values(out, "reload_swap", full)
    assert [b["flat.m"]["flattened_range"] for _, b in swap] == [[0, 7], [7, 35]]
    for _, boxes in check_local_values(out, "reload_rep", full):
        assert boxes["flat.v"]["shape"] == boxes["flat.v"]["global_shape"] == [3, 4, 5]


def test_an_empty_run_as_stage_3_makes_it(job, paddle_np):
    """Sharding stage 3 gives a rank past a parameter's end the empty run [numel, numel).
    Paddle 3.3 stores it (a 0-element tensor, listed in the metadata) and its own load of that
    checkpoint then returns zeros for the whole tensor; pdckpt reads it right, and its own save
    leaves the empty run out, so Paddle reads pdckpt's checkpoint right."""
    paddle, _ = paddle_np
    out, _ = job
    m = assemble(dumps(out, "held"))["flat.m"]
    paddles, ours = ls_json(out / "paddle_s3")["tensors"], ls_json(out / "pdckpt_s3")["tensors"]
    assert [p["flattened_range"] for p in paddles[0]["pieces"]] == [[0, 35], [35, 35]]
    assert [p["flattened_range"] for p in ours[0]["pieces"]] == [[0, 35]]
    for ck in ("paddle_s3", "pdckpt_s3"):
        assert raw(pdckpt.load(str(out / ck))["s3.w"]) == m.tobytes(), ck
        assert run_cli("verify", out / ck).returncode == 0
    assert paddle_full_load(paddle, out / "pdckpt_s3", {"s3.w": m}) == {"s3.w": m.tobytes()}
    lost = paddle_full_load(paddle, out / "paddle_s3", {"s3.w": m})["s3.w"]
    assert lost == np.zeros_like(m).tobytes()  # Paddle's own: zeros (docs/distributed.md)


def test_pdckpt_loads_on_3_ranks(job):
    """A 3-rank job loads the 2-rank checkpoint into 3-way row, column and replicated splits
    (the flattened pieces into 3-way dist tensors)."""
    out, _ = job
    launch(out, 3, "load3", str(out / "paddle_ck"))
    notes = [json.loads((out / f"notes3_{r}.json").read_text()) for r in (0, 1, 2)]
    assert all(n == {"pdckpt_load3_same3": "ok", "pdckpt_load3_swap": "ok"} for n in notes), notes
    full = assemble(dumps(out, "held"))
    ranks = check_local_values(out, "load3_same3", full)
    assert [b["model.w_row"]["shape"] for _, b in ranks] == [[3, 5], [3, 5], [1, 5]]
    ranks = check_local_values(out, "load3_swap", full)
    assert [b["model.w_row"]["shape"] for _, b in ranks] == [[7, 2], [7, 2], [7, 1]]


def test_pdckpt_resharded_to_3_mpi_ranks_paddle_reads(job, tmp_path, paddle_np):
    """`pdckpt dist shard` on 3 MPI ranks rewrites Paddle's checkpoint as column and block
    pieces; pdckpt and Paddle's load_state_dict (one process) read the same tensors."""
    paddle, _ = paddle_np
    out, _ = job
    full = assemble(dumps(out, "held"))
    for layout in ("col", "mesh.*=block,row"):
        ck = tmp_path / layout.replace("*", "_").replace("=", "_").replace(",", "_")
        mpirun(3, "dist", "shard", out / "paddle_ck", ck, "--ranks-layout", layout)
        assert sorted(p.name for p in ck.glob("*.distcp")) == ["0_0.distcp", "1_0.distcp",
                                                                 "2_0.distcp"]
        got = pdckpt.load(str(ck))
        assert {k: raw(v) for k, v in got.items()} == {k: v.tobytes() for k, v in full.items()}
        assert paddle_full_load(paddle, ck, full) == {k: v.tobytes() for k, v in full.items()}


def paddle_full_load(paddle, ck, full):
    """Paddle's single-process load_state_dict into plain tensors of the global shapes."""
    import paddle.distributed as dist
    from paddle.distributed.flex_checkpoint.dcp import load_state_dict as paddle_load

    paddle_load.PATH_TO_CHECKPOINT_FILES.clear()  # Paddle caches a directory's files
    dtypes = {t["key"]: t["dtype"] for t in ls_json(ck)["tensors"]}
    target = {k: paddle.zeros(v.shape, dtype=dtypes[k]) for k, v in full.items()}
    dist.load_state_dict(target, str(ck))
    return {k: raw(t) for k, t in target.items()}


def test_reverse_paddle_reads_what_pdckpt_saved(job, paddle_np):
    """pdckpt.distributed.save_state_dict in the job: the metadata lists what Paddle's lists --
    every piece, the flattened ones with their runs, each in the same file; Paddle's
    load_state_dict read it back in the job into the same sharding (dist tensors, and flattened
    ShardedWeights as sharding v2 holds them) and reads it in one process into whole tensors."""
    paddle, _ = paddle_np
    out, _ = job
    ours = ls_json(out / "pdckpt_ck")["tensors"]
    assert ours == ls_json(out / "paddle_ck")["tensors"]  # also the file of every piece
    assert {k: len(t["pieces"]) for t in ours for k in [t["key"]] if k in FLAT} == \
        {"flat.m": 2, "flat.v": 2}
    ours_t = ls_json(out / "pdckpt_trained")["tensors"]
    assert ours_t == ls_json(out / "paddle_trained")["tensors"]
    full = assemble(dumps(out, "held"))
    ranks = check_local_values(out, "paddle_load_pdckpt", full)
    assert set(ranks[0][1]) == {k for k, (_, s, how) in W.SPECS.items() if how[0] in "SM" and s}
    check_local_values(out, "paddle_load_paddle", full)
    for name in ("pdckpt", "paddle"):  # Paddle's load into flattened targets, of both
        ranks = check_local_values(out, f"paddle_load_{name}_flat", full)
        assert [b["flat.v"]["flattened_range"] for _, b in ranks] == [[0, 27], [27, 60]]
    want = {k: v.tobytes() for k, v in full.items()}
    assert paddle_full_load(paddle, out / "pdckpt_ck", full) == want
    from paddle.distributed.flex_checkpoint.dcp import load_state_dict as paddle_load
    paddle_load.PATH_TO_CHECKPOINT_FILES.clear()
    merged = paddle.distributed.load_merged_state_dict(str(out / "pdckpt_ck"))
    assert {k: raw(v) for k, v in merged.items()} == want
    trained = assemble(dumps(out, "trained"))
    assert paddle_full_load(paddle, out / "pdckpt_trained", trained) == \
        {k: v.tobytes() for k, v in trained.items()}


def test_one_process_loads_the_2_rank_checkpoint(job, paddle_np):
    """pdckpt.distributed.load_state_dict with no process group (a single process): whole
    tensors, and flattened ShardedWeights of another split, from Paddle's 2-rank checkpoint."""
    paddle, _ = paddle_np
    from paddle.distributed.flex_checkpoint.dcp.sharded_weight import ShardedWeight

    import pdckpt.distributed as pd

    out, _ = job
    full = assemble(dumps(out, "held"))
    dtypes = {t["key"]: t["dtype"] for t in ls_json(out / "paddle_ck")["tensors"]}
    target = {k: paddle.zeros(v.shape, dtype=dtypes[k]) for k, v in full.items()}
    pd.load_state_dict(W.nest(target), out / "paddle_ck")
    assert {k: raw(t) for k, t in target.items()} == {k: v.tobytes() for k, v in full.items()}
    for key in sorted(FLAT):
        shape, n = full[key].shape, full[key].size
        for lo, hi in ((0, n), (1, 2), (n - 9, n), (3, n - 4)):
            run = paddle.zeros([hi - lo], dtype=dtypes[key])
            sw = ShardedWeight(key, run, shape, shape, (0,) * len(shape), is_flattened=True,
                               flattened_range=slice(lo, hi))
            pd.load_state_dict({key: sw}, out / "paddle_ck")
            assert raw(run) == full[key].reshape(-1)[lo:hi].tobytes(), (key, lo, hi)
    # a run of a sub-box (a tensor-parallel piece that sharding v2 flattened in turn)
    for key, off, box, lo, hi in (("flat.m", (2, 0), (3, 7), 4, 17),
                                  ("flat.v", (1, 0, 2), (2, 4, 3), 7, 23)):
        run = paddle.zeros([hi - lo], dtype=dtypes[key])
        sw = ShardedWeight(key, run, box, full[key].shape, off, is_flattened=True,
                           flattened_range=slice(lo, hi))
        pd.load_state_dict({key: sw}, out / "paddle_ck")
        sub = full[key][tuple(slice(o, o + b) for o, b in zip(off, box))]
        assert raw(run) == np.ascontiguousarray(sub).reshape(-1)[lo:hi].tobytes(), key
    bad = ShardedWeight("flat.m", paddle.zeros([3]), (5, 7), (5, 7), (0, 0), is_flattened=True,
                        flattened_range=slice(33, 36))
    with pytest.raises(pdckpt.MismatchError, match=r"flattened_range \[33, 36\) does not fit"):
        pd.load_state_dict({"flat.m": bad}, out / "paddle_ck")


def _two_rank_runs(paddle, path, full, cuts):
    """The coordinator's steps for two ranks holding the runs cuts[0], cuts[1] of `full`'s
    flattening (as pdckpt.distributed stages a flattened ShardedWeight)."""
    from pdckpt import _native
    from pdckpt._convert import paddle_save_spec
    shape = list(full.shape)
    stages = [_native.sharded_stage([("w", paddle.to_tensor(full.reshape(-1)[lo:hi]), shape,
                                      [0] * len(shape), shape, (lo, hi))],
                                    paddle_save_spec(paddle)) for lo, hi in cuts]
    plan = _native.sharded_plan(str(path), [_native.sharded_describe(s) for s in stages], -1,
                                "pickle", False, [0, 1])
    for a, s in zip(_native.sharded_assignments(plan, 2), stages):
        _native.sharded_write(a, str(path), s, False)
    _native.sharded_commit(plan, 0)


def test_flattened_saves_in_one_process(tmp_path, paddle_np):
    """Without a job: pdckpt.distributed.save_state_dict of a flattened ShardedWeight (the whole
    box as one run; also async), the steps of two ranks' runs, and what is refused -- Paddle's
    single-process load_state_dict reads what was saved, bit for bit."""
    paddle, np = paddle_np
    from paddle.distributed.flex_checkpoint.dcp.sharded_weight import ShardedWeight

    import pdckpt.distributed as pd

    full = np.arange(35, dtype="float32").reshape(5, 7) / 4

    def sw(run, lo, hi, box=(5, 7)):
        return ShardedWeight("w", paddle.to_tensor(run), box, (5, 7), (0, 0), is_flattened=True,
                             flattened_range=slice(lo, hi))

    pd.save_state_dict({"w": sw(full.reshape(-1), 0, 35)}, tmp_path / "one")
    pd.save_state_dict({"w": sw(full.reshape(-1), 0, 35)}, tmp_path / "one", async_save=True).wait()
    _two_rank_runs(paddle, tmp_path / "two", full, [(0, 18), (18, 35)])
    for ck, ident, runs in (("one", 1, [[0, 35]]), ("two", 0, [[0, 18], [18, 35]])):
        piece = ls_json(tmp_path / ck, "--id", str(ident))["tensors"][0]["pieces"]
        assert [p["flattened_range"] for p in piece] == runs, ck
        assert raw(pdckpt.load(str(tmp_path / ck))["w"]) == full.tobytes()
    assert paddle_full_load(paddle, tmp_path / "two", {"w": full}) == {"w": full.tobytes()}
    with pytest.raises(pdckpt.MismatchError,
                       match=r"key 'w': the flattened runs \[0, 18\) of rank 0 and \[17, 35\)"):
        _two_rank_runs(paddle, tmp_path / "overlap", full, [(0, 18), (17, 35)])
    for bad, words in ((sw(full.reshape(-1)[:3], 0, 3, box=(5, 8)), "does not fit the global"),
                       (sw(full.reshape(-1)[:3], 0, 4), "1-D tensor of 4 elements"),
                       (sw(full, 0, 35), "not one of 2 dims"),
                       (ShardedWeight("w", paddle.to_tensor(full.reshape(-1)), (5, 7), (5, 7),
                                      (0, 0), is_flattened=True), "slice\\(start, stop\\)")):
        with pytest.raises(pdckpt.ArgumentError, match=words):
            pd.save_state_dict({"w": bad}, tmp_path / "bad")


def test_mpi_save_of_flattened_runs_paddle_reads(tmp_path, paddle_np):
    """pdckpt_mpi_save_sharded_runs under real OpenMPI (3 ranks, tests/support/
    sharded_runs_tool.c): runs of a whole box, runs of tensor-parallel boxes and plain boxes in
    one save; the metadata lists the runs as Paddle does, and pdckpt and Paddle's
    load_state_dict (one process) read back every tensor, bit for bit."""
    import subprocess as sp

    from test_dist import MPI_ENV

    paddle, np = paddle_np
    tool = PY_STAGE.parent / "tests" / "pdckpt_sharded_runs_tool"
    ck = tmp_path / "ck"
    proc = sp.run(["mpirun", "-n", "3", "--oversubscribe", str(tool), str(ck)],
                  capture_output=True, text=True, env=MPI_ENV, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    full = {"w": np.arange(35, dtype="float32").reshape(5, 7),
            "u": 100 + np.arange(24, dtype="float32").reshape(4, 6),
            "b": 1000 + np.arange(18, dtype="float32").reshape(6, 3)}
    tensors = {t["key"]: t for t in ls_json(ck)["tensors"]}
    assert [(p["flattened_range"], p["file"]) for p in tensors["w"]["pieces"]] == [
        ([0, 12], "0_0.distcp"), ([12, 24], "1_0.distcp"), ([24, 35], "2_0.distcp")]
    assert sorted((p["offset"], p["shape"], p["flattened_range"]) for p in tensors["u"]["pieces"]) == [
        ([0, 0], [2, 6], [0, 6]), ([0, 0], [2, 6], [6, 12]), ([2, 0], [2, 6], [0, 12])]
    assert all("flattened_range" not in p for p in tensors["b"]["pieces"])
    assert {k: raw(v) for k, v in pdckpt.load(str(ck)).items()} == {
        k: v.tobytes() for k, v in full.items()}
    assert paddle_full_load(paddle, ck, full) == {k: v.tobytes() for k, v in full.items()}


@pytest.fixture(scope="module")
def empty_job(tmp_path_factory):
    out = tmp_path_factory.mktemp("paddle_empty")
    launch(out, 2, "job_empty")
    return out


def test_replicated_pieces_after_an_empty_one_go_where_paddle_puts_them(empty_job):
    """Paddle's balanced_dedup_key_in_dict counts the empty piece rank 0 holds in its file's
    load, so the replicated "r" that follows goes to 1_0.distcp; pdckpt stores no empty piece but
    counts it the same way (it put "r" in 0_0.distcp), so every stored piece is where Paddle's
    save puts it."""
    tmp_path = empty_job

    def placed(ck):
        return {t["key"]: [(p["offset"], p["shape"], p["file"]) for p in t["pieces"]
                           if 0 not in p["shape"]] for t in ls_json(ck)["tensors"]}

    paddle = placed(tmp_path / "paddle_empty")
    assert paddle["r"] == [([0], [3], "1_0.distcp")] and paddle["r2"] == [([0], [2], "0_0.distcp")]
    assert placed(tmp_path / "pdckpt_empty") == paddle
    e = next(t for t in ls_json(tmp_path / "pdckpt_empty")["tensors"] if t["key"] == "e")
    assert [p["shape"] for p in e["pieces"]] == [[1, 4]]  # the empty piece is not stored


def _metadata(ck):
    import pickle

    import paddle  # noqa: F401  (its Metadata classes unpickle the file)

    with open(ck / "0.metadata", "rb") as f:
        return pickle.load(f)


def _holds(index_or_meta):
    m = index_or_meta
    run = m.flattened_range
    return 0 not in m.local_shape and (not m.is_flattened or run[0] < run[1])


def test_metadata_is_paddles_in_content_and_order(empty_job, paddle_np):
    """The whole Metadata pdckpt's save writes is Paddle's for the same job (2 ranks, keys in
    different orders per rank: an empty piece, replicated plain and dist tensors, rows, columns,
    flattened runs, two files), item by item and in order, with one difference on purpose: the
    empty piece is neither listed nor stored (docs/distributed.md).  Its key still comes where
    Paddle lists it -- first, from rank 0's empty piece; pdckpt put it last, at its first stored
    piece -- and Paddle's single-process load reads every tensor back."""
    paddle, np = paddle_np
    tmp_path = empty_job
    want, got = _metadata(tmp_path / "paddle_empty"), _metadata(tmp_path / "pdckpt_empty")
    keys = ["e", "r", "r2", "rows", "cols", "rep", "f"]
    assert list(want.state_dict_metadata) == keys and list(got.state_dict_metadata) == keys
    assert list(got.flat_mapping.items()) == list(want.flat_mapping.items())
    assert list(got.state_dict_metadata.items()) == [
        (k, [m for m in v if _holds(m)]) for k, v in want.state_dict_metadata.items()]
    assert list(got.storage_metadata.items()) == [
        (i, f) for i, f in want.storage_metadata.items() if _holds(i)]
    assert [m.local_shape for m in want.state_dict_metadata["e"]] == [(0, 4), (1, 4)]
    grid = np.arange(56, dtype="float32").reshape(7, 8)
    full = {"e": np.arange(4, dtype="float32").reshape(1, 4), "r": np.arange(3, dtype="float32"),
            "r2": np.arange(2, dtype="float32") + 5, "rows": grid, "cols": grid, "rep": grid,
            "f": np.arange(35, dtype="float32").reshape(5, 7)}
    assert paddle_full_load(paddle, tmp_path / "pdckpt_empty", full) == {
        k: v.tobytes() for k, v in full.items()}


def test_python_scalars_are_refused_like_paddle(tmp_path, paddle_np):
    """An optimizer's LR_Scheduler (Python numbers): Paddle's save_state_dict raises ValueError;
    pdckpt's an ArgumentError naming the key, and writes nothing."""
    paddle, _ = paddle_np
    import pdckpt.distributed as pd

    lin = paddle.nn.Linear(2, 2)
    opt = paddle.optimizer.AdamW(parameters=lin.parameters(),
                                 learning_rate=paddle.optimizer.lr.StepDecay(0.1, 2))
    lin(paddle.ones([1, 2])).sum().backward()
    opt.step()
    state = {"opt": opt.state_dict()}
    with pytest.raises(ValueError, match="should be dict or paddle.Tensor"):
        paddle.distributed.save_state_dict(state, str(tmp_path / "paddle"))
    with pytest.raises(pdckpt.ArgumentError, match="'opt.LR_Scheduler.last_epoch'"):
        pd.save_state_dict(state, tmp_path / "ours")
    assert not (tmp_path / "ours").exists() or not os.listdir(tmp_path / "ours")


def test_paddle_resave_keeps_the_old_metadata(tmp_path, paddle_np):
    """Paddle 3.3's save_state_dict into a directory that holds id 0 (unique_id=None reuses the
    largest id) rewrites the data files but keeps the old 0.metadata (write_to_file_if_empty):
    pieces of another dtype -- even one of the same size -- or shape are a MismatchError naming
    the file, the piece and both descriptions, never the bytes read as the old dtype."""
    paddle, _ = paddle_np
    import paddle.distributed as dist

    for n, (dtype, shape) in enumerate((("int32", [3, 4]), ("float32", [4, 3]))):
        ck = tmp_path / f"ck{n}"
        dist.save_state_dict({"a": paddle.zeros([3, 4], dtype="float32")}, str(ck))
        dist.save_state_dict({"a": paddle.ones(shape, dtype=dtype)}, str(ck))
        assert sorted(os.listdir(ck)) == ["0.metadata", "0_0.distcp"]
        with pytest.raises(pdckpt.MismatchError) as e:
            pdckpt.load(str(ck))
        assert str(e.value).endswith(f"0_0.distcp: tensor 'a': the metadata says the piece at "
                                     f"[0, 0] is float32 [3, 4], this data file holds {dtype} "
                                     f"[{shape[0]}, {shape[1]}]"), str(e.value)


def test_blocks_of_a_2x2_mesh_both_ways(tmp_path, paddle_np):
    """A 4-rank job on the mesh [[0, 1], [2, 3]]: Paddle saves a 2 x 2 grid of uneven blocks,
    row and column splits along either mesh dim (stored once per replica group); pdckpt lists and
    loads them whole and into the transposed placements; pdckpt's save of the same state lists
    what Paddle's lists (the same files too) and Paddle reads it back, in the job (the fully
    sharded tensors) and in one process (all, whole)."""
    paddle, _ = paddle_np
    out = tmp_path
    launch(out, 4, "job4")
    notes = [json.loads((out / f"notes4_{r}.json").read_text()) for r in range(4)]
    assert all(n == notes[0] for n in notes), notes
    assert {k: v for k, v in notes[0].items() if k != "paddle_save_coshard"} == {
        "pdckpt_load_transposed": "ok", "pdckpt_save": "ok", "paddle_load_pdckpt": "ok"}
    assert "has no attribute 'get_dim'" in notes[0]["paddle_save_coshard"]
    held = dumps(out, "blocks_held")
    full = assemble(held)
    assert listed_pieces(ls_json(out / "paddle_blocks")) == held_pieces(held)
    assert [b["blk.a"]["shape"] for _, b in held] == [[4, 3], [4, 2], [3, 3], [3, 2]]
    got = pdckpt.load(str(out / "paddle_blocks"))
    assert {k: raw(v) for k, v in got.items()} == {k: v.tobytes() for k, v in full.items()}
    moved = check_local_values(out, "blocks_transposed", full)
    assert [b["blk.a"]["shape"] for _, b in moved] == [[4, 3], [3, 3], [4, 2], [3, 2]]
    assert ls_json(out / "pdckpt_blocks")["tensors"] == ls_json(out / "paddle_blocks")["tensors"]
    check_local_values(out, "blocks_paddle_load", full)
    assert paddle_full_load(paddle, out / "pdckpt_blocks", full) == \
        {k: v.tobytes() for k, v in full.items()}
    merged = out / "merged.safetensors"
    mpirun(2, "dist", "merge", out / "paddle_blocks", merged)
    got = pdckpt.load(str(merged))
    assert {k: raw(v) for k, v in got.items()} == {k: v.tobytes() for k, v in full.items()}
