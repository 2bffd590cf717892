# SPDX-License-Identifier: Apache-2.0
"""Resume from files pdckpt converted (issue 19): train with AdamW and an LR scheduler, paddle.save,
convert .pdparams/.pdopt through safetensors and back (and the parameters through a program-named
combined .pdiparams), resume, and the loss trajectory equals resuming from Paddle's own files bit
for bit.  AMP O2 training cannot run on CPU in Paddle 3.3 (no bfloat16/float16 matmul or adamw
kernel on CPU), so the AMP optimizer state (master_weights beside the moments, beta powers and
LR_Scheduler) carries fp32 master weights built as Paddle names them; the resume through it is
the last test."""
import shutil

import numpy as np
import pytest

from conftest import run_cli

STEPS_BEFORE, STEPS_AFTER = 4, 5


def _make(paddle):
    net = paddle.nn.Sequential(paddle.nn.Linear(6, 8), paddle.nn.ReLU(), paddle.nn.Linear(8, 2))
    sched = paddle.optimizer.lr.LinearWarmup(
        paddle.optimizer.lr.StepDecay(0.05, step_size=2, gamma=0.5), 2, 0.0, 0.05)
    opt = paddle.optimizer.AdamW(sched, parameters=net.parameters(), weight_decay=0.01)
    return net, opt, sched


def _batches(paddle, n, offset):
    rng = np.random.default_rng(offset)
    return [(paddle.to_tensor(rng.standard_normal((4, 6), dtype="float32")),
             paddle.to_tensor(rng.standard_normal((4, 2), dtype="float32"))) for _ in range(n)]


def _train(paddle, net, opt, sched, batches):
    losses = []
    for x, y in batches:
        loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        opt.clear_grad()
        sched.step()
        losses.append(np.float32(loss.numpy()).tobytes())
    return losses


@pytest.fixture(scope="module")
def trained(paddle_np, tmp_path_factory):
    paddle, _ = paddle_np
    d = tmp_path_factory.mktemp("resume")
    paddle.seed(11)
    with paddle.utils.unique_name.guard():  # the same variable names on every build
        net, opt, sched = _make(paddle)
        _train(paddle, net, opt, sched, _batches(paddle, STEPS_BEFORE, 1))
    paddle.save(net.state_dict(), str(d / "ckpt.pdparams"))
    paddle.save(opt.state_dict(), str(d / "ckpt.pdopt"))
    net.eval()
    paddle.jit.save(net, str(d / "infer" / "net"),
                    input_spec=[paddle.static.InputSpec([None, 6], "float32")])
    return paddle, d


def _resume(paddle, params, opt_state, by_name=False):
    with paddle.utils.unique_name.guard():
        net, opt, sched = _make(paddle)
        net.set_state_dict(params, use_structured_name=not by_name)
        opt.set_state_dict(opt_state)
        return _train(paddle, net, opt, sched, _batches(paddle, STEPS_AFTER, 2))


def test_resume_through_safetensors_is_bit_identical(trained, tmp_path):
    paddle, d = trained
    want = _resume(paddle, paddle.load(str(d / "ckpt.pdparams")), paddle.load(str(d / "ckpt.pdopt")))
    for name in ("ckpt.pdparams", "ckpt.pdopt"):
        mid = tmp_path / (name + ".safetensors")
        run_cli("convert", d / name, mid, "--no-fsync", check=0)
        run_cli("convert", mid, tmp_path / name, "--no-fsync", check=0)
    got = _resume(paddle, paddle.load(str(tmp_path / "ckpt.pdparams")),
                  paddle.load(str(tmp_path / "ckpt.pdopt")))
    assert len(want) == STEPS_AFTER and got == want
    # The scheduler's state came through: LR_Scheduler is in the safetensors tree.
    assert paddle.load(str(tmp_path / "ckpt.pdopt"))["LR_Scheduler"] == \
        paddle.load(str(d / "ckpt.pdopt"))["LR_Scheduler"]


def test_resume_through_program_named_combined_is_bit_identical(trained, tmp_path):
    """.pdparams -> .pdiparams for the jit.save program (by the name table) -> .pdparams named
    by the program beside it -> set_state_dict(use_structured_name=False)."""
    paddle, d = trained
    want = _resume(paddle, paddle.load(str(d / "ckpt.pdparams")), paddle.load(str(d / "ckpt.pdopt")))
    prog = next(p for p in (d / "infer").iterdir() if p.suffix in (".pdmodel", ".json"))
    shutil.copy(prog, tmp_path / prog.name)
    run_cli("convert", d / "ckpt.pdparams", tmp_path / "net.pdiparams", "--out-program",
            tmp_path / prog.name, "--no-fsync", check=0)
    run_cli("convert", tmp_path / "net.pdiparams", tmp_path / "back.pdparams", "--no-fsync",
            check=0)
    params = paddle.load(str(tmp_path / "back.pdparams"))
    assert sorted(params) == ["linear_0.b_0", "linear_0.w_0", "linear_1.b_0", "linear_1.w_0"]
    got = _resume(paddle, params, paddle.load(str(d / "ckpt.pdopt")), by_name=True)
    assert got == want



def _plain(paddle, tree):
    if isinstance(tree, dict):
        return {k: _plain(paddle, v) for k, v in tree.items()}
    if isinstance(tree, paddle.Tensor):
        return (tree.name, str(tree.dtype), tree.shape, tree.numpy().tobytes())
    return tree


def test_resume_amp_optimizer_state_through_safetensors_is_bit_identical(paddle_np, tmp_path):
    """An AMP optimizer state -- master_weights (a nested dict of fp32 tensors) beside moments,
    beta powers and LR_Scheduler -- through safetensors and back: set_state_dict takes it, the
    resumed loss trajectory equals resuming from Paddle's own file bit for bit, and the master
    weights the optimizer then holds equal Paddle's (names included).  The master weights are
    fp32 copies named as Paddle names them: AMP O2 training, which makes them, needs float16 or
    bfloat16 matmul/adamw kernels Paddle's CPU build lacks (and GradScaler is disabled on CPU:
    its state_dict() is empty)."""
    paddle, _ = paddle_np
    paddle.seed(13)
    with paddle.utils.unique_name.guard():
        net, opt, sched = _make(paddle)
        _train(paddle, net, opt, sched, _batches(paddle, STEPS_BEFORE, 1))
    state = opt.state_dict()
    masters = {}
    for p in net.parameters():
        m = paddle.to_tensor(p.numpy())
        m.name = p.name + "_fp32_master_0"
        masters[p.name] = m
    state["master_weights"] = masters
    state["LR_Scheduler"] = state.pop("LR_Scheduler")  # Paddle's order: master_weights first
    for name, obj in {"ckpt.pdparams": net.state_dict(), "ckpt.pdopt": state}.items():
        paddle.save(obj, str(tmp_path / name))
        mid = tmp_path / (name + ".safetensors")
        run_cli("convert", tmp_path / name, mid, "--no-fsync", check=0)
        run_cli("convert", mid, tmp_path / ("back_" + name), "--no-fsync", check=0)

    def resume(prefix):
        with paddle.utils.unique_name.guard():
            net, opt, sched = _make(paddle)
            net.set_state_dict(paddle.load(str(tmp_path / (prefix + "ckpt.pdparams"))))
            opt.set_state_dict(paddle.load(str(tmp_path / (prefix + "ckpt.pdopt"))))
            restored = _plain(paddle, opt.state_dict()["master_weights"])
            return _train(paddle, net, opt, sched, _batches(paddle, STEPS_AFTER, 2)), restored

    want, got = resume(""), resume("back_")
    assert len(want[0]) == STEPS_AFTER and got == want
    assert list(want[1]) == [p.name for p in net.parameters()]
    assert want[1] == _plain(paddle, masters)
