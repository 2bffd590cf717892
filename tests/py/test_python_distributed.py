# SPDX-License-Identifier: Apache-2.0
"""pdckpt.distributed from a real 2-process Paddle job (`python -m paddle.distributed.launch
--nproc_per_node 2`, Gloo on CPU; dist_paddle_worker.py is one rank): sharded save of row-sharded
dist tensors, replicated and nested optimizer-like state; loads with another sharding (column),
whole, and of a checkpoint Paddle's own save_state_dict wrote; async save, wait, load; failures
on one rank raised on every rank.  Then, in this process: Paddle's single-process load_state_dict
reads what pdckpt wrote, bit for bit (Paddle's multi-process load cannot run on CPU: its resharder
calls .cuda()); the metadata lists exactly what Paddle's save lists for the same state; `pdckpt
ls` and `pdckpt verify` read the result."""
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from conftest import PY_STAGE, ls_json, run_cli
import dist_paddle_worker as W

HERE = Path(__file__).resolve().parent
SCENARIOS = {
    "save_returns_id_0", "load_col_from_row", "load_row_same_layout", "load_plain_whole",
    "load_paddle_written_col", "load_paddle_written_plain", "async_save_wait_load",
    "pending_async_committed_by_next_call", "failure_on_one_rank_raises_everywhere",
    "load_mismatch_raises_everywhere", "control_zeros_do_not_match",
    "arguments_differ_raise_everywhere", "subgroup_files_named_by_global_rank",
    "save_replicas_refused_with_reason", "aoa_config_refused_with_reason",
}
SEEDS = {0: 5, 1: 6, 7: 5}  # checkpoint id -> the seed of the state it holds


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    out = tmp_path_factory.mktemp("paddle_job")
    paths = [str(PY_STAGE), str(HERE)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    proc = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--log_dir",
                           str(out / "log"), "--nproc_per_node", "2",
                           str(HERE / "dist_paddle_worker.py"), str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    logs = "".join(p.read_text(errors="replace")[-4000:]
                   for p in sorted((out / "log").glob("workerlog.*")))
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:], logs)
    return out, [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_every_scenario_passed_on_both_ranks(job):
    _, results = job
    for res in results:
        assert set(res["checks"]) == SCENARIOS, res
        failed = {k for k, ok in res["checks"].items() if not ok}
        assert not failed, (res["rank"], failed, res["notes"])
    # the failing rank raised its own error; the other one the same error, naming the rank
    notes = [r["notes"] for r in results]
    assert notes[0]["agreed_failure"] == "rank 1: " + notes[1]["agreed_failure"]
    assert notes[1]["agreed_mismatch"] == "rank 0: " + notes[0]["agreed_mismatch"]


def test_files_are_paddles_layout(job):
    out, _ = job
    names = set(os.listdir(out / "pdckpt_ck"))
    # ids 0, 1 and 7 committed, each: one data file per rank, the metadata, pdckpt's index sidecar;
    # the failed save left nothing (no temporary, no data file of an uncommitted id)
    assert names == {f"{n}" for i in SEEDS for n in
                     (f"{i}.metadata", f"{i}.pdkidx", f"0_{i}.distcp", f"1_{i}.distcp")}
    assert set(os.listdir(out / "paddle_ck")) == {"0.metadata", "0_0.distcp", "1_0.distcp"}


def test_metadata_lists_what_paddles_save_lists(job):
    """Same keys, dtypes, shapes, pieces and the same rank storing each replicated tensor once."""
    out, _ = job
    ours = ls_json(out / "pdckpt_ck", "--id", "0")["tensors"]
    assert ours == ls_json(out / "paddle_ck")["tensors"]
    pieces = {t["key"]: t["pieces"] for t in ours}
    for name, (_, _, how) in W.SPECS.items():
        assert len(pieces[name]) == (2 if how == "row" else 1), name


def test_paddle_load_state_dict_reads_what_pdckpt_wrote(job, paddle_np):
    paddle, _ = paddle_np
    import paddle.distributed as dist

    from paddle.distributed.flex_checkpoint.dcp import load_state_dict as paddle_load

    out, _ = job
    for ident, seed in SEEDS.items():
        # Paddle caches a directory's file list per process whatever unique_id asks for
        paddle_load.PATH_TO_CHECKPOINT_FILES.clear()
        full = W.full_tensors(paddle, seed)
        # flat keys: Paddle 3's load_state_dict refuses nested targets in its local-resume check
        target = {k: paddle.zeros_like(v) for k, v in full.items()}
        dist.load_state_dict(target, str(out / "pdckpt_ck"), unique_id=ident)
        assert {k: W.raw(t) for k, t in target.items()} == {k: W.raw(v) for k, v in full.items()}


def test_cli_reads_the_result(job):
    out, _ = job
    ck = out / "pdckpt_ck"
    listing = ls_json(ck)
    assert listing["format"] == "sharded" and listing["id"] == 7
    assert {t["key"] for t in listing["tensors"]} == set(W.SPECS)
    for f in sorted(os.listdir(ck)):
        if not f.endswith(".pdkidx"):
            assert run_cli("verify", ck / f).returncode == 0, f


# ---- one process (no launch): the same API without a process group ----------------------------

def test_single_process_nested_roundtrip_and_paddle(tmp_path, paddle_np):
    paddle, _ = paddle_np
    import paddle.distributed as dist

    import pdckpt.distributed as pd

    full = W.full_tensors(paddle, 9)
    assert pd.save_state_dict(W.nest({k: v.clone() for k, v in full.items()}), tmp_path) == 0
    target = W.nest({k: paddle.zeros_like(v) for k, v in full.items()})
    pd.load_state_dict(target, tmp_path)
    assert {k: W.raw(t) for k, t in W.flat(target).items()} == {k: W.raw(v) for k, v in full.items()}
    flat = {k: paddle.zeros_like(v) for k, v in full.items()}
    dist.load_state_dict(flat, str(tmp_path))
    assert {k: W.raw(t) for k, t in flat.items()} == {k: W.raw(v) for k, v in full.items()}


def test_resave_of_an_id_replaces_it_and_keep_last(tmp_path, paddle_np):
    paddle, _ = paddle_np
    import pdckpt.distributed as pd

    a, b = W.full_tensors(paddle, 1), W.full_tensors(paddle, 2)
    assert pd.save_state_dict(dict(a), tmp_path, unique_id=3) == 3
    assert pd.save_state_dict(dict(b), tmp_path, unique_id=3) == 3   # replaced at its commit
    target = {k: paddle.zeros_like(v) for k, v in a.items()}
    pd.load_state_dict(target, tmp_path, unique_id=3)
    assert {k: W.raw(t) for k, t in target.items()} == {k: W.raw(v) for k, v in b.items()}
    assert pd.save_state_dict(dict(a), tmp_path) == 4
    assert pd.save_state_dict(dict(a), tmp_path, keep_last=1, safetensors=True) == 5
    assert sorted(os.listdir(tmp_path)) == ["0_5.safetensors", "5.metadata", "5.pdkidx"]
    pd.load_state_dict(target, tmp_path)
    assert {k: W.raw(t) for k, t in target.items()} == {k: W.raw(v) for k, v in a.items()}


def test_single_process_errors(tmp_path, paddle_np):
    paddle, _ = paddle_np
    import pdckpt
    import pdckpt.distributed as pd

    w = {"w": paddle.ones([2, 3])}
    with pytest.raises(pdckpt.UnsupportedError):
        pd.save_state_dict(w, tmp_path, save_replicas=True)
    with pytest.raises(pdckpt.ArgumentError, match="should be a dict"):
        pd.save_state_dict([paddle.ones([1])], tmp_path)
    with pytest.raises(pdckpt.ArgumentError, match="'w.x' should be a paddle.Tensor"):
        pd.save_state_dict({"w": {"x": 3}}, tmp_path)
    with pytest.raises(pdckpt.NotFoundError, match="no complete sharded checkpoint"):
        pd.load_state_dict(w, tmp_path)
    assert os.listdir(tmp_path) == []
    pd.save_state_dict(w, tmp_path)
    with pytest.raises(pdckpt.UnsupportedError):
        pd.load_state_dict(w, tmp_path, aoa_config={})
    with pytest.raises(pdckpt.MismatchError, match="float32"):
        pd.load_state_dict({"w": paddle.ones([2, 3], dtype="float64")}, tmp_path)
    # a key the checkpoint lacks is left as it is, with a warning (as Paddle does)
    target = {"w": paddle.zeros([2, 3]), "extra": paddle.full([2], 5.0)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pd.load_state_dict(target, tmp_path)
    assert any("extra" in str(c.message) for c in caught)
    assert target["w"].numpy().tolist() == [[1.0] * 3] * 2
    assert target["extra"].numpy().tolist() == [5.0, 5.0]


# ---- a rank dies mid-save ------------------------------------------------------------------------

def test_rank_dying_before_the_commit_keeps_the_previous_checkpoint(tmp_path, paddle_np):
    """Rank 1 dies once its data file of a re-save of id 0 is written: the launcher ends the job,
    nothing is committed, id 0 still holds the first save (for pdckpt and for Paddle), and the
    next save of id 0 sweeps the dead save's data files."""
    paddle, _ = paddle_np
    import paddle.distributed as dist
    from paddle.distributed.flex_checkpoint.dcp import load_state_dict as paddle_load

    import pdckpt.distributed as pd

    paths = [str(PY_STAGE), str(HERE)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    proc = subprocess.run([sys.executable, "-m", "paddle.distributed.launch", "--log_dir",
                           str(tmp_path / "log"), "--nproc_per_node", "2",
                           str(HERE / "dist_paddle_worker.py"), str(tmp_path), "die"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0 and not list(tmp_path.glob("survived*")), proc.stdout[-2000:]
    ck = tmp_path / "ck"
    first = {"0.metadata", "0.pdkidx", "0_0.distcp", "1_0.distcp"}
    assert first < set(os.listdir(ck))  # + the dead save's data files, uncommitted
    full = W.full_tensors(paddle, 5)
    target = {k: paddle.zeros_like(v) for k, v in full.items()}
    pd.load_state_dict(target, ck)
    assert {k: W.raw(t) for k, t in target.items()} == {k: W.raw(v) for k, v in full.items()}
    paddle_load.PATH_TO_CHECKPOINT_FILES.clear()
    target = {k: paddle.zeros_like(v) for k, v in full.items()}
    dist.load_state_dict(target, str(ck), unique_id=0)
    assert {k: W.raw(t) for k, t in target.items()} == {k: W.raw(v) for k, v in full.items()}
    # the next save of id 0 (here by one process) sweeps them, then replaces id 0 at its commit
    assert pd.save_state_dict({"x": paddle.ones([2])}, ck, unique_id=0) == 0
    assert set(os.listdir(ck)) == {"0.metadata", "0.pdkidx", "2_0.distcp"}
    target = {"x": paddle.zeros([2])}
    pd.load_state_dict(target, ck)
    assert target["x"].numpy().tolist() == [1.0, 1.0]


def test_async_save_never_waited_is_not_a_checkpoint(tmp_path):
    """A process that exits with an async save pending: its data file is finished, the save is
    not committed (that needs every rank), and it says so."""
    script = ("import paddle, pdckpt.distributed as pd\n"
              f"pd.save_state_dict({{'w': paddle.ones([64, 64])}}, {str(tmp_path)!r})\n"
              f"h = pd.save_state_dict({{'w': paddle.zeros([64, 64])}}, {str(tmp_path)!r},"
              " async_save=True)\n"
              "print('pending', h.id)\n")
    paths = [str(PY_STAGE)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(paths)), timeout=120)
    assert proc.returncode == 0 and "pending 1" in proc.stdout, proc.stderr[-2000:]
    assert "async sharded save of id 1" in proc.stderr and "never committed" in proc.stderr
    assert set(os.listdir(tmp_path)) == {"0.metadata", "0.pdkidx", "0_0.distcp", "0_1.distcp"}
    assert run_cli("verify", tmp_path / "0_1.distcp").returncode == 0  # whole, just uncommitted
    assert ls_json(tmp_path)["id"] == 0


def _numbered_save(paddle, np, path, full, numbers, unique_id=-1):
    """The coordinator's steps for two ranks holding the row halves of `full`, their data files
    numbered `numbers` (what pdckpt.distributed passes: the group's global ranks)."""
    from pdckpt import _native
    from pdckpt._convert import paddle_save_spec
    half = full.shape[0] // 2
    stages = [_native.sharded_stage([("w", paddle.to_tensor(full[r * half:(r + 1) * half]),
                                      list(full.shape), [r * half, 0])],
                                    paddle_save_spec(paddle)) for r in (0, 1)]
    plan = _native.sharded_plan(str(path), [_native.sharded_describe(s) for s in stages],
                                unique_id, "pickle", False, numbers)
    for a, s in zip(_native.sharded_assignments(plan, 2), stages):
        _native.sharded_write(a, str(path), s, False)
    _native.sharded_commit(plan, 0)
    return _native.sharded_plan_id(plan)


def test_data_files_numbered_by_global_rank_and_resaved_past_them(tmp_path, paddle_np):
    """Ranks 0 and 1 of a group whose global ranks are 3 and 1 write 3_0.distcp and 1_0.distcp;
    re-saving id 0 writes past the numbers in use (the previous files stay until the commit) and
    then removes them; numbers that repeat or are negative are refused before anything is
    written."""
    import pdckpt
    paddle, np = paddle_np
    ck = tmp_path / "ck"
    a = np.arange(24, dtype="float32").reshape(4, 6)
    assert _numbered_save(paddle, np, ck, a, [3, 1]) == 0
    data = lambda: sorted(n for n in os.listdir(ck) if n.endswith(".distcp"))  # noqa: E731
    assert data() == ["1_0.distcp", "3_0.distcp"]
    assert pdckpt.load(str(ck))["w"].numpy().tolist() == a.tolist()
    _numbered_save(paddle, np, ck, a + 100, [3, 1], unique_id=0)
    assert data() == ["5_0.distcp", "7_0.distcp"]  # base 4: past 3, the largest in use
    assert pdckpt.load(str(ck))["w"].numpy().tolist() == (a + 100).tolist()
    for bad, words in (([2, 2], "same file number"), ([0, -1], "not in [0, 2^31)")):
        with pytest.raises(pdckpt.ArgumentError, match=words.replace("[", r"\[").replace(
                "^", r"\^").replace(")", r"\)")):
            _numbered_save(paddle, np, tmp_path / "other", a, bad)
        assert not (tmp_path / "other").exists()
