# SPDX-License-Identifier: Apache-2.0
"""Issue 3's resume test.  Real Paddle trains a small MLP for K steps and saves model.state_dict()
and optimizer.state_dict() (.pdparams/.pdopt); it then trains 20 more steps without interruption
and records those losses.  pdckpt reads both files and writes them anew from C (`pdckpt convert`).
A NEW Python process builds the model and optimizer afresh, restores them from pdckpt's files
with paddle.load + set_state_dict, trains 20 steps, and its losses must equal the uninterrupted
run's exactly (bit for bit).  Two optimizers: AdamW with a CosineAnnealingDecay scheduler (moments,
beta pow accumulators, LR_Scheduler state) and Momentum with a StepDecay scheduler (velocities).

Run as a script (`python test_resume_training.py train|resume DIR`), it is the Paddle side."""
import json
import os
import subprocess
import sys

import pytest

from conftest import run_cli

K, MORE = 7, 20
OPTIMIZERS = ["adamw", "momentum"]


def _setup(paddle, np, kind):
    paddle.seed(1234)
    model = paddle.nn.Sequential(paddle.nn.Linear(8, 16), paddle.nn.Tanh(), paddle.nn.Linear(16, 1))
    if kind == "adamw":
        sched = paddle.optimizer.lr.CosineAnnealingDecay(learning_rate=0.05, T_max=9)
        opt = paddle.optimizer.AdamW(learning_rate=sched, parameters=model.parameters(),
                                     weight_decay=0.01)
    else:
        sched = paddle.optimizer.lr.StepDecay(learning_rate=0.05, step_size=3, gamma=0.5)
        opt = paddle.optimizer.Momentum(learning_rate=sched, momentum=0.9,
                                        parameters=model.parameters())
    rng = np.random.default_rng(7)
    xs = rng.standard_normal((K + MORE, 16, 8)).astype("float32")
    ys = rng.standard_normal((K + MORE, 16, 1)).astype("float32")
    return model, opt, sched, xs, ys


def _step(paddle, model, opt, sched, x, y):
    loss = paddle.mean((model(paddle.to_tensor(x)) - paddle.to_tensor(y)) ** 2)
    loss.backward()
    opt.step()
    opt.clear_grad()
    sched.step()
    return float(loss.numpy()).hex()


def _worker(mode, out_dir):
    import numpy as np
    import paddle

    paddle.set_device("cpu")
    result = {}
    for kind in OPTIMIZERS:
        model, opt, sched, xs, ys = _setup(paddle, np, kind)
        if mode == "train":
            for i in range(K):
                _step(paddle, model, opt, sched, xs[i], ys[i])
            paddle.save(model.state_dict(), os.path.join(out_dir, kind + ".pdparams"))
            paddle.save(opt.state_dict(), os.path.join(out_dir, kind + ".pdopt"))
        else:
            model.set_state_dict(paddle.load(os.path.join(out_dir, "pdckpt_" + kind + ".pdparams")))
            opt.set_state_dict(paddle.load(os.path.join(out_dir, "pdckpt_" + kind + ".pdopt")))
            sched = opt._learning_rate  # set_state_dict restored the scheduler's own state
        result[kind] = [_step(paddle, model, opt, sched, xs[i], ys[i]) for i in range(K, K + MORE)]
    print(json.dumps(result))


def _run_worker(mode, out_dir):
    proc = subprocess.run([sys.executable, __file__, mode, str(out_dir)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_resume_through_pdckpt_equals_uninterrupted_run(tmp_path):
    uninterrupted = _run_worker("train", tmp_path)
    for kind in OPTIMIZERS:
        for ext in (".pdparams", ".pdopt"):
            src, dst = tmp_path / (kind + ext), tmp_path / ("pdckpt_" + kind + ext)
            data = src.read_bytes()
            npmod = "numpy._core" if b"numpy._core" in data else "numpy.core"
            run_cli("convert", src, dst, "--protocol", data[1], "--numpy-module", npmod, check=0)
            # Written anew from C, not copied: and still what paddle.save wrote, byte for byte.
            assert dst.read_bytes() == data, f"{kind}{ext}"
        listing = run_cli("ls", tmp_path / ("pdckpt_" + kind + ".pdopt"), check=0).stdout
        assert "LR_Scheduler" in listing
    resumed = _run_worker("resume", tmp_path)
    for kind in OPTIMIZERS:
        assert len(resumed[kind]) == MORE
        assert resumed[kind] == uninterrupted[kind], kind


def test_resume_detects_a_changed_optimizer_state(tmp_path):
    """The comparison above is sensitive: a resume with the optimizer state dropped diverges."""
    uninterrupted = _run_worker("train", tmp_path)
    for kind in OPTIMIZERS:
        run_cli("convert", tmp_path / (kind + ".pdparams"), tmp_path / ("pdckpt_" + kind +
                ".pdparams"), check=0)
    # A fresh optimizer's state (no moments/velocities, scheduler at step 0) in place of the saved.
    code = ("import paddle,sys;sys.path.insert(0,%r);import test_resume_training as t,numpy as np;"
            "[paddle.save(t._setup(paddle,np,k)[1].state_dict(),%r+'/pdckpt_'+k+'.pdopt') "
            "for k in t.OPTIMIZERS]") % (os.path.dirname(__file__), str(tmp_path))
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)
    resumed = _run_worker("resume", tmp_path)
    for kind in OPTIMIZERS:
        assert resumed[kind] != uninterrupted[kind], kind


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
