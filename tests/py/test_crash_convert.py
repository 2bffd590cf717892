# SPDX-License-Identifier: Apache-2.0
"""Killing a `pdckpt convert` (SIGKILL) while it writes never damages the previous output: after
each kill the target is the complete old file or the complete new one, and the next successful
save removes the dead writer's temp files."""
import hashlib
import os
import random
import signal
import subprocess
import time

from conftest import PDCKPT_BIN, run_cli
import refread


def big_vars_dir(path, seed, n_tensors=32, floats=1 << 20):
    rng = random.Random(seed)
    path.mkdir()
    for i in range(n_tensors):
        raw = rng.randbytes(floats * 4)
        (path / f"w{i:02d}").write_bytes(refread.write_stream("float32", [floats], raw))


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_kill_during_convert_keeps_old_output(tmp_path):
    old_src, new_src = tmp_path / "old", tmp_path / "new"
    big_vars_dir(old_src, 1)
    big_vars_dir(new_src, 2)
    out = tmp_path / "model.pdiparams"
    run_cli("convert", old_src, out, check=0)
    old_digest = digest(out)
    start = time.monotonic()
    run_cli("convert", new_src, tmp_path / "probe.pdiparams", check=0)
    duration = time.monotonic() - start
    new_digest = digest(tmp_path / "probe.pdiparams")
    rng = random.Random(3)
    outcomes = set()
    for trial in range(8):
        run_cli("convert", old_src, out, check=0)  # reset to the old checkpoint
        proc = subprocess.Popen([str(PDCKPT_BIN), "convert", str(new_src), str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, duration * 1.1))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        got = digest(out)
        assert got in (old_digest, new_digest), f"trial {trial}: torn output"
        outcomes.add("new" if got == new_digest else "old")
        run_cli("verify", "--format", "combined", out, check=0)
    assert "old" in outcomes  # at least one kill landed mid-write
    run_cli("convert", new_src, out, check=0)  # the next save sweeps the dead writers' temps
    assert [f for f in os.listdir(tmp_path) if ".pdckpt-tmp-" in f] == []
