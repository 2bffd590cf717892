# SPDX-License-Identifier: Apache-2.0
"""The `paddle.static.save(program, "X")` triple as one checkpoint, against real Paddle 3.3 in
legacy-IR mode (X.pdmodel + X.pdparams + X.pdopt) and PIR mode (X.json + X.pdparams + X.pdopt):
`pdckpt ls X` lists every persistable exactly as Python's own unpickler reads the two pickles;
`pdckpt convert X Y --static-out` (pdckpt_static_load, then pdckpt_static_save) writes pickles
that paddle.static.load accepts, restoring every persistable bit for bit in a new process; and
a triple whose files disagree with its program is refused naming the variable.

Run as a script (`python test_static_triple.py save|load MODE DIR`), it is the Paddle side."""
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ls_json, run_cli

MODES = ["legacy", "pir"]


def _program(paddle):
    main, start = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, start):
        x = paddle.static.data("x", [None, 4], "float32")
        h = paddle.static.nn.fc(paddle.static.nn.fc(x, 5, activation="relu"), 3)
        loss = paddle.mean(h * h)
        sched = paddle.optimizer.lr.StepDecay(0.1, 2)
        paddle.optimizer.Adam(sched).minimize(loss)
    return main, start, loss


def _worker(action, directory):
    import paddle

    paddle.enable_static()
    main, start, loss = _program(paddle)
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(start)
    if action == "save":
        feed = {"x": np.linspace(-1, 1, 8, dtype="float32").reshape(2, 4)}
        for _ in range(3):
            exe.run(main, feed=feed, fetch_list=[loss])
        paddle.static.save(main, os.path.join(directory, "X"))
        return
    paddle.static.load(main, os.path.join(directory, "Y"), exe)
    scope, out = paddle.static.global_scope(), {}
    names = sorted(set(n for n in _saved_names(directory)))
    for n in names:
        out[n] = np.array(scope.find_var(n).get_tensor())
    np.savez(os.path.join(directory, "restored.npz"), **out)


def _saved_names(directory):
    return [k for e in ("pdparams", "pdopt") for k in _pickled(os.path.join(directory, "X." + e))]


def _pickled(path):
    with open(path, "rb") as f:
        return pickle.load(f)  # the files this test's own Paddle process just wrote


def _run(action, mode, directory):
    env = dict(os.environ, FLAGS_enable_pir_api="1" if mode == "pir" else "0")
    proc = subprocess.run([sys.executable, __file__, action, str(directory)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module", params=MODES)
def saved(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    _run("save", request.param, d)
    assert (d / ("X.json" if request.param == "pir" else "X.pdmodel")).is_file()
    return request.param, d


def test_ls_lists_the_triple_exactly(saved):
    mode, d = saved
    listing = ls_json(d / "X")
    assert listing["format"] == "pickle"
    got = {tuple(t["key"]): (t["dtype"], t["shape"]) for t in listing["tensors"]}
    want = {}
    for part in ("pdparams", "pdopt"):
        for name, a in _pickled(d / ("X." + part)).items():
            want[(part, name)] = (str(a.dtype), list(a.shape))
    assert got == want
    assert len(want) == 2 * 2 + 2 * 2 * 4 + 1  # 4 params, 4 Adam accumulators each, the LR
    # Legacy IR files the learning rate with the optimizer; PIR (Paddle 3.3) with the parameters.
    lr_part = "pdparams" if mode == "pir" else "pdopt"
    assert any(k[0] == lr_part and k[1].startswith("learning_rate") for k in got)


def test_written_back_restores_in_paddle(saved):
    mode, d = saved
    for f in ("Y.pdparams", "Y.pdopt"):
        (d / f).unlink(missing_ok=True)
    run_cli("convert", d / "X", d / "Y", "--static-out", check=0)
    _run("load", mode, d)
    restored = np.load(d / "restored.npz")
    want = {**_pickled(d / "X.pdparams"), **_pickled(d / "X.pdopt")}
    assert sorted(restored.files) == sorted(want)
    for name, a in want.items():
        r = restored[name]
        assert r.dtype == a.dtype and r.shape == a.shape and r.tobytes() == a.tobytes(), name


def _broken_copy(d, tmp_path, change):
    for f in os.listdir(d):
        if f.startswith("X."):
            shutil.copy(d / f, tmp_path / f)
    opt = _pickled(d / "X.pdopt")
    change(opt)
    with open(tmp_path / "X.pdopt", "wb") as f:
        pickle.dump(opt, f, protocol=4)
    return run_cli("ls", tmp_path / "X")


def test_missing_and_mismatched_variables_are_named(saved, tmp_path):
    mode, d = saved
    victim = next(k for k in _pickled(d / "X.pdopt") if "moment1" in k)
    proc = _broken_copy(d, tmp_path, lambda opt: opt.pop(victim))
    assert proc.returncode == 1 and victim in proc.stderr and "found it in neither" in proc.stderr

    def reshape(opt):
        opt[victim] = np.zeros((7,), opt[victim].dtype)

    proc = _broken_copy(d, tmp_path, reshape)
    assert proc.returncode == 1 and victim in proc.stderr and "[7]" in proc.stderr, proc.stderr


def test_two_programs_for_one_prefix_are_refused(saved, tmp_path):
    mode, d = saved
    for f in os.listdir(d):
        if f.startswith("X."):
            shutil.copy(d / f, tmp_path / f)
    other = "X.pdmodel" if mode == "pir" else "X.json"
    shutil.copy(d / ("X.json" if mode == "pir" else "X.pdmodel"), tmp_path / other)
    proc = run_cli("ls", tmp_path / "X")
    assert proc.returncode == 1 and "found both" in proc.stderr, proc.stderr


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
