# SPDX-License-Identifier: Apache-2.0
"""Crash consistency: a process that saves A, B, A, ... to one target through the public API
(tests/crash/crash_saver.c) is SIGKILLed after a random (seeded) delay, for every kind of target
(one tensor file, a combined file, a per-variable directory, a .pdparams pickle, and a combined
file with its xxh3 checksum sidecar).  After each kill
the target must be byte-identical to A or to B (absent only while no save has ever completed) and
pass `pdckpt verify`; the next successful save must sweep every temporary the dead writers left.

PDCKPT_CRASH_TRIALS (per kind, default 55) and PDCKPT_CRASH_SEED let scripts/crash_campaign.sh run
the long campaign with the same code."""
import os
import random
import signal
import subprocess
import time

import pytest

from conftest import BUILD, run_cli

SAVER = BUILD / "tests" / "pdckpt_crash_saver"
TRIALS = int(os.environ.get("PDCKPT_CRASH_TRIALS", "55"))
SEED = int(os.environ.get("PDCKPT_CRASH_SEED", "8"))
EXTRA_TRIALS = 20  # at most, and only while the kills have not yet left both A and B
TEMP_TAG = ".pdckpt-tmp-"  # src/io/fs_util.c: ".<base>.pdckpt-tmp-<pid>-<hex>"
KINDS = {  # kind -> (target name, `pdckpt verify` format, saver options)
    "tensor": ("w.tensor", "tensor", ()),
    "combined": ("model.pdiparams", "combined", ()),
    "varsdir": ("vars", "vars-dir", ()),
    "pdparams": ("model.pdparams", "pickle", ()),
    # A combined file with its xxh3 sidecar: verify must never see a sidecar of another file.
    "combined+xxh3": ("model.pdiparams", "combined", ("--checksum",)),
}


def saver_cmd(kind, target, mode, *extra):
    return [str(SAVER), kind.split("+")[0], str(target), mode, *KINDS[kind][2], *extra]


def snapshot(path):
    """The exact bytes at `path`: a file's bytes, a directory's {relative path: bytes}, or None."""
    if path.is_dir():
        return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
                if p.is_file()}
    return path.read_bytes() if path.exists() else None


def debris(directory):
    return sorted(n for n in os.listdir(directory) if TEMP_TAG in n)


def save_once(kind, target, which, *extra):
    proc = subprocess.run(saver_cmd(kind, target, which, *extra), capture_output=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"saved {which}\n".encode()


def references(kind, tmp_path):
    name = KINDS[kind][0]
    refs = {}
    for which in "AB":
        ref_dir = tmp_path / f"ref{which}"
        ref_dir.mkdir()
        save_once(kind, ref_dir / name, which)
        refs[which] = snapshot(ref_dir / name)
    assert refs["A"] != refs["B"]
    return refs


def one_trial(kind, target, refs, delay, start):
    existed = target.exists()
    mode = "loopB" if start == "B" else "loop"
    proc = subprocess.Popen(saver_cmd(kind, target, mode), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, err)
    completed = out.count(b"saved ")
    got = snapshot(target)
    if got is None:
        assert not existed and completed == 0, "a completed checkpoint disappeared"
        return "absent", completed
    outcome = [w for w in "AB" if refs[w] == got]
    assert outcome, f"torn {kind} checkpoint after a kill ({completed} saves completed)"
    run_cli("verify", "--format", KINDS[kind][1], target, check=0)
    # A save that completed swept older writers' temps; only the killed one's may remain.
    if completed:
        assert len(debris(target.parent)) <= 1, debris(target.parent)
    return outcome[0], completed


@pytest.mark.parametrize("kind", list(KINDS))
def test_sigkill_leaves_old_or_new(kind, tmp_path):
    assert SAVER.exists(), f"build first: {SAVER}"
    refs = references(kind, tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    target = work / KINDS[kind][0]
    start = time.monotonic()
    save_once(kind, tmp_path / "probe", "B")  # one process start + one save, for the delays
    once = time.monotonic() - start
    rng = random.Random(f"{SEED}-{kind}")
    outcomes = {"A": 0, "B": 0, "absent": 0}
    mid_run = 0
    for trial in range(TRIALS + EXTRA_TRIALS):  # loops start with A or B in turn
        if trial >= TRIALS and outcomes["A"] and outcomes["B"]:
            break
        # The probe's time can understate a loaded machine's: trials past the seeded ones, run
        # only while one outcome is still missing, wait longer so a save can complete.
        stretch = 1 if trial < TRIALS else 2 + trial - TRIALS
        delay = rng.uniform(0, 3 * once * stretch)
        outcome, completed = one_trial(kind, target, refs, delay, "AB"[trial % 2])
        outcomes[outcome] += 1
        mid_run += completed > 0
    print(f"{kind}: {sum(outcomes.values())} kills -> {outcomes}, {mid_run} after >= 1 completed save, torn 0")
    assert outcomes["A"] and outcomes["B"], outcomes  # the kills landed at varied points
    save_once(kind, target, "A")
    assert snapshot(target) == refs["A"]
    assert debris(work) == [], "temporaries survived the next successful save"
