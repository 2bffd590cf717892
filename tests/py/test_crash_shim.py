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
