# SPDX-License-Identifier: Apache-2.0
"""The progress bar: drawn on stderr only when stderr is a terminal and the work has lasted long
enough (one second by default; PDCKPT_PROGRESS_AFTER=0 here so small files suffice); never when
stderr is a pipe."""
import os
import pty
import re
import subprocess

from conftest import PDCKPT_BIN
import refread


def run_on_pty(args, env):
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(PDCKPT_BIN), *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait()
    os.close(master)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


def test_progress_bar_on_a_terminal_only(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        (src / f"w{i}").write_bytes(refread.write_stream("float32", [1 << 18], os.urandom(1 << 20)))
    env = dict(os.environ, PDCKPT_PROGRESS_AFTER="0")
    rc, text = run_on_pty(["ls", "--hash", src], env)
    assert rc == 0
    assert "hashing [" in text and "100%" in text and "\r" in text
    assert "4.00 MiB / 4.00 MiB" in text and re.search(r"[0-9.]+ [KMG]iB/s", text)  # total, rate
    rc, text = run_on_pty(["ls", "--hash", src], dict(os.environ, PDCKPT_PROGRESS_AFTER="3600"))
    assert rc == 0 and "hashing" not in text  # short work: no bar
    piped = subprocess.run([str(PDCKPT_BIN), "ls", "--hash", src], capture_output=True, text=True,
                           env=env)
    assert piped.returncode == 0 and piped.stderr == ""
