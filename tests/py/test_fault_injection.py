# SPDX-License-Identifier: Apache-2.0
"""Fault injection (issue 8 item 3): a save or a load whose system calls fail.

- Every write/fsync/close/rename of a save of B over A fails in turn with ENOSPC, then EIO
  (tests/crash/unsynced_drop.c in fault mode), for every kind of target.  Each time the save
  returns an error naming the checkpoint and the system's reason, the target is still exactly A
  (or B, when only a step after the rename failed), `pdckpt verify` accepts it, and no
  temporary is left.  The saver is the ASan/LSan build when there is one: no leak on any path.
- Every read of `pdckpt verify` fails in turn with EIO (mappings refused, so loads read): a clean
  error naming the file, never a crash.
- A real full disk: a 256 KiB tmpfs (in a user+mount namespace, no root needed) that a save does
  not fit on."""
import errno
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import pdckpt
from conftest import BUILD, ROOT, run_cli
from test_crash_consistency import KINDS, TEMP_TAG, saver_cmd, snapshot
from test_crash_shim import SHIM, place, refs_for

ASAN_SAVER = Path(os.environ.get("PDCKPT_BUILD_ASAN", ROOT / "build-asan")) / "tests" \
    / "pdckpt_crash_saver"
FAULTS = {"ENOSPC": errno.ENOSPC, "EIO": errno.EIO}


def shim_env(tmp_path, fail_at, err=errno.EIO, count_file=None, no_mmap=False):
    env = dict(os.environ, LD_PRELOAD=str(SHIM), PDCKPT_SHIM_DIR=str(tmp_path),
               PDCKPT_FAIL_AT=str(fail_at), PDCKPT_FAIL_ERRNO=str(err),
               ASAN_OPTIONS="verify_asan_link_order=0:detect_leaks=1")
    if count_file:
        env["PDCKPT_SHIM_COUNT"] = str(count_file)
    if no_mmap:  # loads: mappings refused, so the loader reads; only reads fail
        env["PDCKPT_FAIL_MMAP"] = env["PDCKPT_FAIL_READS_ONLY"] = "1"
    return env


def saver(kind, target, which):
    cmd = saver_cmd(kind, target, which)
    if ASAN_SAVER.exists():
        cmd[0] = str(ASAN_SAVER)
    return cmd


def count_calls(cmd, tmp_path, **kw):
    count_file = tmp_path / "count"
    proc = subprocess.run(cmd, env=shim_env(tmp_path, 0, count_file=count_file, **kw),
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return int(count_file.read_text())


@pytest.mark.parametrize("kind", list(KINDS))
def test_save_fails_cleanly_at_every_call(kind, tmp_path):
    refs = refs_for(kind, tmp_path)
    name = KINDS[kind][0]
    dry = tmp_path / "dry"
    dry.mkdir()
    place(refs["A"], dry / name)
    total = count_calls(saver(kind, dry / name, "B"), tmp_path)
    summary = {}
    for label, code in FAULTS.items():
        outcomes = []
        for n in range(1, total):  # the last call is the saver's "saved" report, after the save
            work = tmp_path / f"{label}-{n}"
            work.mkdir()
            place(refs["A"], work / name)
            proc = subprocess.run(saver(kind, work / name, "B"), env=shim_env(tmp_path, n, code),
                                  capture_output=True, timeout=120)
            err = proc.stderr.decode()
            got = snapshot(work / name)
            outcome = next((w for w in "AB" if refs[w] == got), "torn")
            assert outcome != "torn", (label, n, err)
            assert [e for e in os.listdir(work) if TEMP_TAG in e] == [], (label, n, err)
            if proc.returncode == 0:  # a failed close of a synced directory: nothing is lost
                assert outcome == "B" and err == "", (label, n, err)
            else:
                assert proc.returncode == 1, (label, n, err)  # 1: an error; LSan would say 23
                assert f"save B failed: {work / name}" in err and os.strerror(code) in err, err
            run_cli("verify", "--format", KINDS[kind][1], work / name, check=0)
            outcomes.append(outcome if proc.returncode else "ok")
            shutil.rmtree(work)
        assert outcomes[0] == "A"
        summary[label] = "".join(o[0] for o in outcomes)
    print(f"{kind}: {total - 1} calls, outcome per failing call (A old, B new, o ok): {summary}")


LOAD_KINDS = ["combined", "pdparams", "varsdir"]


@pytest.mark.parametrize("kind", LOAD_KINDS)
def test_load_fails_cleanly_at_every_read(kind, tmp_path):
    name, fmt, _ = KINDS[kind]
    target = tmp_path / name
    place(refs_for(kind, tmp_path)["A"], target)
    cmd = [str(BUILD / "cli" / "pdckpt"), "verify", "--format", fmt, str(target)]
    total = count_calls(cmd, tmp_path, no_mmap=True)
    assert total >= 1
    for n in range(1, total + 1):
        proc = subprocess.run(cmd, env=shim_env(tmp_path, n, errno.EIO, no_mmap=True),
                              capture_output=True, timeout=60)
        err = proc.stderr.decode()
        assert proc.returncode == 1, (n, proc.returncode, err)
        assert err.startswith(f"pdckpt: {target}") and os.strerror(errno.EIO) in err, err
    print(f"{kind}: {total} reads, each failing read reported")


FULL_DISK = r"""
set -u
mount -t tmpfs -o size=256k tmpfs "$1" || exit 90
cd "$1"
"$2" pdparams model.pdparams A >/dev/null || exit 91
sha256sum model.pdparams > before
big=$3
"$4" convert "$big" model.pdparams 2> err; echo "rc=$?"
cat err
sha256sum -c before >/dev/null && echo "intact"
ls -A
"""


def test_a_full_disk(tmp_path):
    """A save that does not fit: ENOSPC from a real filesystem, the old checkpoint intact."""
    big = tmp_path / "big.pdparams"  # 1 MiB: four times what the tmpfs holds
    pdckpt.save({"w": np.arange(1 << 18, dtype=np.float32)}, str(big))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                           FULL_DISK, "sh", str(mnt), str(BUILD / "tests" / "pdckpt_crash_saver"),
                           str(big), str(BUILD / "cli" / "pdckpt")],
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout
    assert proc.returncode == 0, (proc.stderr, out)
    assert "rc=1" in out and "model.pdparams" in out and os.strerror(errno.ENOSPC) in out, out
    assert "intact" in out, out
    # the old checkpoint and the lazy-open index its save wrote beside it (still its own: the
    # failed save replaced nothing), no temporary
    assert out.strip().splitlines()[-4:] == ["before", "err", "model.pdparams",
                                             "model.pdparams.pdkidx"], out
