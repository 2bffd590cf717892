# SPDX-License-Identifier: Apache-2.0
"""The fsync/rename ordering is what keeps a checkpoint old-or-new.  tests/crash/unsynced_drop.c
(LD_PRELOAD) simulates a power loss at the N-th write/fsync/close/rename call of a save of B over
A: writes not yet fsynced are dropped (a never-synced file comes back empty), and renames are
either kept or, in "revert" mode, undone when their directory was not fsynced.  Every crash point
of every kind is tried.  With pdckpt's normal (durable) saves each one leaves exactly A or B, and
B once the save has returned; with durable=false (no fsyncs) the same shim tears the checkpoint
(keep mode) and loses a save that had returned (revert mode)."""
import os
import shutil
import subprocess

import pytest

from conftest import BUILD, run_cli
from test_crash_consistency import KINDS, saver_cmd, snapshot

SHIM = BUILD / "tests" / "libpdckpt_unsynced_drop.so"


def shim_run(kind, target, shim_dir, extra=(), crash_at=0, renames="keep", count_file=None):
    env = dict(os.environ, LD_PRELOAD=str(SHIM), PDCKPT_SHIM_DIR=str(shim_dir),
               PDCKPT_CRASH_AT=str(crash_at), PDCKPT_SHIM_RENAMES=renames)
    if count_file:
        env["PDCKPT_SHIM_COUNT"] = str(count_file)
    return subprocess.run(saver_cmd(kind, target, "B", *extra), env=env, capture_output=True,
                          timeout=60)


def place(ref, target):
    if isinstance(ref, dict):
        for rel, data in ref.items():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            (target / rel).write_bytes(data)
    else:
        target.write_bytes(ref)


def refs_for(kind, tmp_path):
    out = {}
    for which in "AB":
        d = tmp_path / f"ref{which}"
        d.mkdir()
        subprocess.run(saver_cmd(kind, d / KINDS[kind][0], which), check=True,
                       capture_output=True)
        out[which] = snapshot(d / KINDS[kind][0])
    return out


def crash_outcomes(kind, tmp_path, refs, extra, renames):
    """Outcome ("A", "B" or "torn") at every crash point, in call order."""
    name = KINDS[kind][0]
    count_file = tmp_path / "count"
    dry = tmp_path / f"dry-{renames}-{len(extra)}"
    dry.mkdir()
    place(refs["A"], dry / name)
    assert shim_run(kind, dry / name, tmp_path, extra, count_file=count_file).returncode == 0
    total = int(count_file.read_text())
    assert snapshot(dry / name) == refs["B"]
    outcomes = []
    for n in range(1, total + 1):
        work = tmp_path / f"{renames}-{n}"
        work.mkdir()
        place(refs["A"], work / name)
        proc = shim_run(kind, work / name, tmp_path, extra, crash_at=n, renames=renames)
        assert proc.returncode == -9, (n, proc.returncode, proc.stderr)
        got = snapshot(work / name)
        outcome = next((w for w in "AB" if refs[w] == got), "torn")
        if outcome != "torn":
            run_cli("verify", "--format", KINDS[kind][1], work / name, check=0)
        outcomes.append(outcome)
        shutil.rmtree(work)
    return outcomes


@pytest.mark.parametrize("kind", list(KINDS))
def test_durable_save_survives_every_crash_point(kind, tmp_path):
    assert SHIM.exists(), f"build first: {SHIM}"
    refs = refs_for(kind, tmp_path)
    for renames in ("keep", "revert"):
        outcomes = crash_outcomes(kind, tmp_path, refs, (), renames)
        print(f"{kind} durable {renames}: {len(outcomes)} crash points -> {outcomes}")
        assert "torn" not in outcomes
        assert outcomes[0] == "A" and outcomes[-1] == "B"  # the last point: after save returned


@pytest.mark.parametrize("kind", list(KINDS))
def test_without_fsync_the_same_crashes_tear(kind, tmp_path):
    refs = refs_for(kind, tmp_path)
    keep = crash_outcomes(kind, tmp_path, refs, ("--no-durable",), "keep")
    print(f"{kind} no-durable keep: {keep}")
    assert "torn" in keep  # renamed before its data was on disk: an empty/zeroed checkpoint
    if kind != "varsdir":
        revert = crash_outcomes(kind, tmp_path, refs, ("--no-durable",), "revert")
        print(f"{kind} no-durable revert: {revert}")
        assert revert[-1] == "A"  # the save had returned, yet the old checkpoint came back


def lazy_equals_parse(target):
    """`pdckpt.open` (which believes a lazy-open index only when it belongs to the file) gives
    what a parse of the pickle gives."""
    import numpy as np
    import pdckpt
    parsed = pdckpt.load(target, return_numpy=True, keep_name_table=True)
    with pdckpt.open(target) as reader:
        lazy = {k: reader[k] for k in reader.keys()}
        assert list(lazy) == list(parsed)
        for k, v in lazy.items():
            if isinstance(parsed[k], np.ndarray):
                v = np.array(v)
                assert v.dtype == parsed[k].dtype and v.tobytes() == parsed[k].tobytes(), k
            else:
                assert v == parsed[k], k


def test_the_unsynced_index_is_ignored_after_every_crash(tmp_path):
    """The lazy-open index beside a pickle is written without fsync, even by a durable save (a
    torn or stale one fails its checks).  Every crash point of a durable .pdparams save, with the
    renames kept or reverted: the pickle is A or B and a lazy open gives what a parse gives; after
    the save has returned, a power loss leaves the index empty (it never reached the disk)."""
    refs = refs_for("pdparams", tmp_path)
    count_file = tmp_path / "count"
    dry = tmp_path / "dry"
    dry.mkdir()
    place(refs["A"], dry / "model.pdparams")
    assert shim_run("pdparams", dry / "model.pdparams", tmp_path,
                    count_file=count_file).returncode == 0
    assert (dry / "model.pdparams.pdkidx").stat().st_size > 0  # the save writes an index
    total = int(count_file.read_text())
    for renames in ("keep", "revert"):
        for n in range(1, total + 1):
            work = tmp_path / f"{renames}-{n}"
            work.mkdir()
            place(refs["A"], work / "model.pdparams")
            proc = shim_run("pdparams", work / "model.pdparams", tmp_path, crash_at=n,
                            renames=renames)
            assert proc.returncode == -9, (n, proc.returncode, proc.stderr)
            assert snapshot(work / "model.pdparams") in (refs["A"], refs["B"])
            lazy_equals_parse(work / "model.pdparams")
            if n == total and renames == "keep":
                assert snapshot(work / "model.pdparams") == refs["B"]
                assert (work / "model.pdparams.pdkidx").stat().st_size == 0
            shutil.rmtree(work)
