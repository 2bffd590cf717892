# SPDX-License-Identifier: Apache-2.0
"""Train a small Paddle model, checkpoint it with pdckpt every N steps, survive being killed.

    python examples/train_resume.py CKPT_DIR [--steps 20] [--every 3] [--kill-at STEP]

Each checkpoint is a directory ``CKPT_DIR/step_<n>/`` holding ``model.pdparams`` and
``model.pdopt`` (exactly what ``paddle.save`` writes, AdamW moments and the LR scheduler
included); ``CKPT_DIR/latest.pkl`` names the newest complete one and is replaced atomically only
after both files are durable, so a kill at any moment leaves a consistent checkpoint to resume
from.  Started again, the script resumes from ``latest`` and its losses continue exactly as an
uninterrupted run's.  ``--kill-at`` SIGKILLs the process after that step (the test's crash).
Prints ``<step> <loss as float32 hex>`` per step and writes ``CKPT_DIR/final.pdparams`` at the end.
"""

import argparse
import os
import signal
import warnings

warnings.filterwarnings("ignore")
import numpy as np  # noqa: E402
import paddle  # noqa: E402

import pdckpt  # noqa: E402


def build():
    paddle.seed(11)
    net = paddle.nn.Sequential(paddle.nn.Linear(8, 32), paddle.nn.Tanh(), paddle.nn.Linear(32, 1))
    sched = paddle.optimizer.lr.StepDecay(learning_rate=0.02, step_size=5, gamma=0.7)
    opt = paddle.optimizer.AdamW(learning_rate=sched, parameters=net.parameters(),
                                 weight_decay=0.01)
    return net, opt, sched


def batch(step):
    rng = np.random.default_rng(1000 + step)  # data depends only on the step: resumable
    x = rng.standard_normal((16, 8)).astype("float32")
    return paddle.to_tensor(x), paddle.to_tensor(np.sin(x).sum(1, keepdims=True))


def save_checkpoint(ckpt, step, net, opt):
    where = os.path.join(ckpt, f"step_{step}")
    pdckpt.save(net.state_dict(), os.path.join(where, "model.pdparams"))
    pdckpt.save(opt.state_dict(), os.path.join(where, "model.pdopt"))
    pdckpt.save({"step": step, "dir": f"step_{step}"}, os.path.join(ckpt, "latest.pkl"))


def resume(ckpt, net, opt):
    latest = os.path.join(ckpt, "latest.pkl")
    if not os.path.exists(latest):
        return 0
    meta = pdckpt.load(latest)
    where = os.path.join(ckpt, meta["dir"])
    net.set_state_dict(pdckpt.load(os.path.join(where, "model.pdparams")))
    opt.set_state_dict(pdckpt.load(os.path.join(where, "model.pdopt")))
    return meta["step"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--every", type=int, default=3)
    ap.add_argument("--kill-at", type=int, default=None)
    args = ap.parse_args()
    paddle.set_device("cpu")
    net, opt, sched = build()
    start = resume(args.ckpt, net, opt)
    for step in range(start, args.steps):
        x, y = batch(step)
        loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        opt.clear_grad()
        sched.step()
        print(step, np.float32(float(loss)).tobytes().hex(), flush=True)
        if (step + 1) % args.every == 0:
            save_checkpoint(args.ckpt, step + 1, net, opt)
        if args.kill_at is not None and step + 1 == args.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    pdckpt.save(net.state_dict(), os.path.join(args.ckpt, "final.pdparams"))


if __name__ == "__main__":
    main()
