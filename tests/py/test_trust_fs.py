# SPDX-License-Identifier: Apache-2.0
"""Issue 16, the filesystem trust boundary, through the CLI and the Python module
(docs/RELIABILITY.md "Filesystem trust boundary"; the C-level cases are tests/unit/test_trust_fs.c):
- FIFOs given as paths (with or without --format) and special files as save targets are refused
  within 1 s and left alone; every subprocess has a timeout, so a regression fails, never hangs;
- a save into a directory that is not only a checkpoint of its kind changes nothing; a save
  through a symlink keeps the link and updates the file it names, keeping its mode;
- `convert X - --to F` streams the same bytes a file save writes; `-` reads standard input;
- pdckpt.load's arrays survive paddle.save rewriting the file in place (real Paddle), and
  `pdckpt ls --hash` / `convert` never die of a file truncated under them."""
import os
import socket
import stat
import subprocess
import threading
import time

import numpy as np
import pytest

import pdckpt
from conftest import FIXTURES, PDCKPT_BIN, run_cli

VARS_DIR = FIXTURES / "fit_a_line-sepfiles-2019-05"  # Paddle-written: __model__ + 2 variables


def timed_cli(*args, input=None):
    t0 = time.monotonic()
    proc = subprocess.run([str(PDCKPT_BIN), *map(str, args)], capture_output=True, timeout=10,
                          input=input)
    return proc, time.monotonic() - t0


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "small.pdparams"
    run_cli("convert", VARS_DIR, path, check=0)
    return path


@pytest.mark.parametrize("args", [("ls",), ("verify",), ("ls", "--format", "pickle"),
                                  ("convert", "--from", "combined")])
def test_fifo_input_refused_at_once(tmp_path, args):
    fifo = tmp_path / "model.pdparams"
    os.mkfifo(fifo)
    extra = [tmp_path / "out.safetensors"] if args[0] == "convert" else []
    proc, took = timed_cli(*args, fifo, *extra)
    assert proc.returncode == 1 and took < 1.0, (proc.stderr, took)
    assert b"FIFO" in proc.stderr and str(fifo).encode() in proc.stderr


def special_targets(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    yield fifo, stat.S_ISFIFO
    dev = tmp_path / "null"
    try:  # /dev/null's numbers: only a process that may make device nodes (root) can
        os.mknod(dev, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:  # as tests/unit/test_trust_fs.c: that case needs CAP_MKNOD
        pass
    else:
        yield dev, stat.S_ISCHR
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    yield tmp_path / "sock", stat.S_ISSOCK
    sock.close()


def test_special_save_targets_refused_and_kept(tmp_path, small):
    for target, is_kind in special_targets(tmp_path):
        proc, took = timed_cli("convert", small, target, "--to", "safetensors")
        assert proc.returncode == 1 and took < 1.0, (target, proc.stderr)
        assert b"not replaced" in proc.stderr, proc.stderr
        assert is_kind(os.lstat(target).st_mode), target
    assert not [e for e in os.listdir(tmp_path) if "pdckpt-tmp" in e]


def test_save_into_foreign_directory_changes_nothing(tmp_path, small):
    runs = tmp_path / "runs" / "exp1"
    (runs / "logs").mkdir(parents=True)
    (runs / "notes.txt").write_text("keep me")
    before = sorted(p.relative_to(runs) for p in runs.rglob("*"))
    proc = run_cli("convert", small, runs, check=1)  # an existing directory -> vars-dir
    assert "notes.txt" in proc.stderr and str(runs) in proc.stderr
    with pytest.raises(pdckpt.Error, match="notes.txt"):
        pdckpt.save({"w": np.ones(3, np.float32)}, runs)
    assert sorted(p.relative_to(runs) for p in runs.rglob("*")) == before
    assert (runs / "notes.txt").read_text() == "keep me"
    assert os.listdir(runs.parent) == ["exp1"]  # no temporaries
    # a file format never replaces a directory (paddle.save raises IsADirectoryError)
    (tmp_path / "d.pdparams").mkdir()
    with pytest.raises(pdckpt.Error, match="directory"):
        pdckpt.save({"w": np.ones(3, np.float32)}, tmp_path / "d.pdparams")


def test_paddle_written_vars_dir_is_replaced_only_without_foreign_files(tmp_path, small):
    import shutil
    target = tmp_path / "params"
    shutil.copytree(VARS_DIR, target)
    proc = run_cli("convert", small, target, "--to", "vars-dir", check=1)
    assert "__model__" in proc.stderr  # an inference model is not a plain vars-dir
    (target / "__model__").unlink()  # what Paddle's save_persistables leaves: variables only
    run_cli("convert", small, target, "--to", "vars-dir", check=0)
    assert sorted(os.listdir(target)) == ["fc_0.b_0", "fc_0.w_0"]


def test_save_through_symlink_keeps_link_target_and_mode(tmp_path, small):
    real = tmp_path / "epoch3.safetensors"
    run_cli("convert", small, real, check=0)
    os.chmod(real, 0o600)
    link = tmp_path / "latest.safetensors"
    link.symlink_to("epoch3.safetensors")
    state = {"w": np.arange(6, dtype=np.float32)}
    pdckpt.save(state, link)
    assert link.is_symlink() and os.readlink(link) == "epoch3.safetensors"
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o600
    np.testing.assert_array_equal(pdckpt.load(real, return_numpy=True)["w"], state["w"])
    assert sorted(os.listdir(tmp_path)) == ["epoch3.safetensors", "latest.safetensors",
                                            "small.pdparams", "small.pdparams.pdkidx"]


@pytest.mark.parametrize("fmt,suffix", [("safetensors", ".safetensors"), ("pickle", ".pdparams"),
                                        ("combined", ".pdiparams")])
def test_convert_streams_to_stdout(tmp_path, small, fmt, suffix):
    file_out = tmp_path / f"out{suffix}"
    run_cli("convert", small, file_out, "--to", fmt, check=0)
    proc = subprocess.run([str(PDCKPT_BIN), "convert", str(small), "-", "--to", fmt],
                          capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == file_out.read_bytes()
    assert b"->" in proc.stderr  # the summary line goes to stderr, not into the stream
    # and `-` as the input reads standard input
    back, _ = timed_cli("convert", "-", tmp_path / f"back{suffix}", "--to", fmt,
                        input=proc.stdout)
    assert back.returncode == 0, back.stderr
    assert (tmp_path / f"back{suffix}").read_bytes() == proc.stdout


def test_a_broken_standard_input_is_named_stdin(tmp_path):
    """`-` as the input: an error named the bytes "<memory>" (what the library calls a buffer),
    which says nothing to the user who piped a file in."""
    proc = subprocess.run([str(PDCKPT_BIN), "ls", "-"], input=b"garbage\n", capture_output=True,
                          timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.decode().startswith("pdckpt: <stdin>: offset 0: expected"), proc.stderr


def test_stdout_refuses_directory_formats(small):
    proc = run_cli("convert", small, "-", "--to", "vars-dir", check=2)
    assert "directory format" in proc.stderr


def test_load_survives_paddle_rewriting_the_file(tmp_path, paddle_np):
    paddle, _ = paddle_np
    path = tmp_path / "latest.pdparams"
    first = {"w": np.arange(1 << 16, dtype=np.float32)}  # 256 KiB: mapped if it were mapped
    paddle.save(first, str(path))
    loaded = pdckpt.load(path, return_numpy=True)
    paddle.save({"w": np.zeros(1 << 16, np.float32) - 1}, str(path))  # truncate + rewrite
    np.testing.assert_array_equal(loaded["w"], first["w"])
    with open(path, "r+b") as f:
        f.truncate(0)
    np.testing.assert_array_equal(loaded["w"], first["w"])  # no SIGBUS, no change


def rewrite_in_place(path, blobs, stop):
    i = 0
    while not stop.is_set():
        with open(path, "r+b") as f:  # what paddle.save does: truncate, then write in pieces
            f.truncate(0)
            data = blobs[i % 2]
            for at in range(0, len(data), 1 << 16):
                f.write(data[at:at + (1 << 16)])
        i += 1


def test_cli_never_dies_on_a_file_truncated_under_it(tmp_path, small):
    big = {"w": np.arange(1 << 20, dtype=np.float32)}  # 4 MiB
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    pdckpt.save(big, a)
    pdckpt.save({"w": np.ones(1 << 19, np.float32)}, b)
    path = tmp_path / "latest.safetensors"
    path.write_bytes(a.read_bytes())
    stop = threading.Event()
    writer = threading.Thread(target=rewrite_in_place,
                              args=(path, [a.read_bytes(), b.read_bytes()], stop))
    writer.start()
    outcomes = []
    try:
        for i in range(40):
            cmd = ("ls", "--hash", path) if i % 2 else ("convert", path, tmp_path / "out.pdparams")
            proc, _ = timed_cli(*cmd)
            assert proc.returncode in (0, 1), (cmd, proc.returncode, proc.stderr)
            assert b"Bad address" not in proc.stderr and b"out.pdparams" not in proc.stderr, \
                proc.stderr
            outcomes.append(proc.returncode)
    finally:
        stop.set()
        writer.join()
    assert len(outcomes) == 40
