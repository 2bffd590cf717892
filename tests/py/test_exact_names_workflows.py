# SPDX-License-Identifier: Apache-2.0
"""Issue 19 items 4 and 6 against real Paddle: names found where Paddle finds them (the program
beside a lone .pdiparams, the name table of a fine-tuned state dict written into an inference
model's .pdiparams, diff by Paddle name) and the workflows that used to stop or lose data
(save_dygraph of loaded parameters, dygraph-dir from paddle.save files, .tnum by suffix, missing
parent directories)."""
import os
import shutil

import numpy as np
import pytest

from conftest import ls_json, run_cli


def _net_class(paddle):
    class Net(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.emb = paddle.nn.Embedding(10, 4)
            self.fc = paddle.nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(self.emb(x)).sum(axis=1)

    return Net


@pytest.fixture(scope="module")
def finetune(paddle_np, tmp_path_factory):
    """jit.save an nn.Layer (the inference model), fine-tune it, paddle.save the result."""
    paddle, _ = paddle_np
    d = tmp_path_factory.mktemp("finetune")
    with paddle.utils.unique_name.guard():  # the names the asserts spell, in any test order
        paddle.seed(7)
        net = _net_class(paddle)()
        net.eval()
        spec = [paddle.static.InputSpec([None, 5], "int64")]
        paddle.jit.save(net, str(d / "infer" / "net"), input_spec=spec)
        net.train()
        sched = paddle.optimizer.lr.StepDecay(0.05, step_size=1, gamma=0.5)
        opt = paddle.optimizer.Adam(sched, parameters=net.parameters())
        x = paddle.to_tensor(np.arange(10, dtype="int64").reshape(2, 5))
        for _ in range(3):
            net(x).mean().backward()
            opt.step()
            opt.clear_grad()
            sched.step()
        paddle.save(net.state_dict(), str(d / "finetuned.pdparams"))
        paddle.save(opt.state_dict(), str(d / "finetuned.pdopt"))
    net.eval()
    return paddle, d, net, x


def _program(d):
    infer = d / "infer"
    return next(p for p in (infer / "net.pdmodel", infer / "net.json") if p.exists())


def test_finetuned_pdparams_into_inference_model(finetune, tmp_path):
    """convert finetuned.pdparams net.pdiparams --out-program net.pdmodel: structured keys
    (emb.weight) reach the program's variables by the name table; Paddle runs the result and
    gives the fine-tuned outputs."""
    paddle, d, net, x = finetune
    prog = _program(d)
    out = tmp_path / "deploy"
    out.mkdir()
    shutil.copy(prog, out / prog.name)
    run_cli("convert", d / "finetuned.pdparams", out / "net.pdiparams", "--out-program",
            out / prog.name, "--no-fsync", check=0)
    loaded = paddle.jit.load(str(out / "net"))
    want = net(x).numpy()
    got = loaded(x).numpy()
    assert got.tobytes() == want.tobytes()
    # The original inference model gives other outputs: the weights did change.
    assert paddle.jit.load(str(d / "infer" / "net"))(x).numpy().tobytes() != want.tobytes()


def test_lone_pdiparams_named_by_program_beside(finetune):
    """A lone net.pdiparams lists (and loads) with the program's names, not by index;
    --format combined still reads the raw streams."""
    paddle, d, _, _ = finetune
    params = d / "infer" / "net.pdiparams"
    listing = ls_json(params)
    assert listing["format"] == "inference"
    keys = [t["key"] for t in listing["tensors"]]
    assert keys == [["embedding_0.w_0"], ["linear_0.b_0"], ["linear_0.w_0"]], keys
    raw = ls_json(params, "--format", "combined")
    assert [t["key"] for t in raw["tensors"]] == [[0], [1], [2]]
    import pdckpt

    got = pdckpt.load(str(params), return_numpy=True)
    assert list(got) == ["embedding_0.w_0", "linear_0.b_0", "linear_0.w_0"]
    # Paddle's own reading of the file (jit.load renames the variables; its values are these).
    theirs = sorted((v.numpy() for v in paddle.jit.load(str(d / "infer" / "net")).parameters()),
                    key=lambda a: a.tobytes())
    assert sorted((v.tobytes() for v in got.values())) == sorted(a.tobytes() for a in theirs)


def test_combined_converted_back_keeps_names(finetune, tmp_path):
    paddle, d, _, _ = finetune
    back = tmp_path / "back.pdparams"
    run_cli("convert", d / "infer" / "net.pdiparams", back, "--no-fsync", check=0)
    loaded = paddle.load(str(back))
    assert sorted(loaded) == ["embedding_0.w_0", "linear_0.b_0", "linear_0.w_0"]


def test_diff_pdparams_against_plain_safetensors(finetune, tmp_path):
    """A .pdparams against its correct conversion by another tool (no name table): identical,
    with a note about the name table, not one difference per entry."""
    paddle, d, _, _ = finetune
    from safetensors.numpy import save_file

    sd = paddle.load(str(d / "finetuned.pdparams"))
    plain = tmp_path / "plain.safetensors"
    save_file({k: v.numpy() for k, v in sd.items()}, str(plain))
    proc = run_cli("diff", d / "finetuned.pdparams", plain, check=0)
    assert proc.stdout.strip() == "identical"
    assert "only A has a name table" in proc.stderr and "3 entries" in proc.stderr
    # A real difference is still one.
    changed = {k: v.numpy() for k, v in sd.items()}
    changed["fc.bias"] = changed["fc.bias"] + 1
    save_file(changed, str(plain))
    proc = run_cli("diff", d / "finetuned.pdparams", plain, check=1)
    assert "data differs at [\"fc.bias\"]" in proc.stdout and "1 difference" in proc.stdout


def test_diff_by_paddle_name(finetune, tmp_path):
    """--by-name lines a state dict (emb.weight) up with a program-named .pdiparams."""
    paddle, d, _, _ = finetune
    out = tmp_path / "m"
    out.mkdir()
    prog = _program(d)
    shutil.copy(prog, out / prog.name)
    run_cli("convert", d / "finetuned.pdparams", out / "net.pdiparams", "--out-program",
            out / prog.name, "--no-fsync", check=0)
    by_key = run_cli("diff", d / "finetuned.pdparams", out / "net.pdiparams", check=1)
    assert "only in A: [\"emb.weight\"]" in by_key.stdout
    by_name = run_cli("diff", "--by-name", d / "finetuned.pdparams", out / "net.pdiparams",
                      check=0)
    assert by_name.stdout.strip() == "identical"
    other = run_cli("diff", "--by-name", d / "finetuned.pdparams", d / "infer" / "net.pdiparams",
                    check=1)
    assert "data differs at [\"embedding_0.w_0\"]" in other.stdout


def test_save_dygraph_refuses_loaded_parameters(finetune, tmp_path):
    """save_dygraph(params_from_load_dygraph, prefix) used to write them as .pdopt, which the
    optimizer's save then overwrote: now a ValueError; the layer's and the optimizer's own
    state dicts still go to .pdparams and .pdopt."""
    paddle, d, net, _ = finetune
    import pdckpt.dygraph as dy

    params, opt = dy.load_dygraph(str(d / "finetuned"))
    with pytest.raises(ValueError, match="'emb.weight' is not optimizer state"):
        dy.save_dygraph(params, str(tmp_path / "ckpt"))
    numpy_params, _ = dy.load_dygraph(str(d / "finetuned"), return_numpy=True)
    with pytest.raises(ValueError, match="emb.weight"):
        dy.save_dygraph(numpy_params, str(tmp_path / "ckpt"))
    assert not list(tmp_path.iterdir())
    assert dy.save_dygraph(net.state_dict(), str(tmp_path / "ckpt")).endswith(".pdparams")
    assert dy.save_dygraph(opt, str(tmp_path / "ckpt")).endswith(".pdopt")
    got = paddle.load(str(tmp_path / "ckpt.pdparams"))
    assert got["emb.weight"].numpy().tobytes() == net.emb.weight.numpy().tobytes()
    assert "LR_Scheduler" in paddle.load(str(tmp_path / "ckpt.pdopt"))


def test_convert_paddle_save_to_dygraph_dir(finetune, tmp_path):
    paddle, d, net, _ = finetune
    out = tmp_path / "dy"
    run_cli("convert", d / "finetuned.pdparams", out, "--to", "dygraph-dir", "--no-fsync",
            check=0)
    assert sorted(os.listdir(out)) == sorted(p.name for p in net.parameters())
    import pdckpt.dygraph as dy

    params, _ = dy.load_persistables(str(out), return_numpy=True)
    for p in net.parameters():
        assert params[p.name].tobytes() == p.numpy().tobytes()
    # The optimizer's LR_Scheduler has no place in a dygraph-dir: refused by name, or dropped
    # and listed with --skip-non-tensors.
    proc = run_cli("convert", d / "finetuned.pdopt", tmp_path / "o", "--to", "dygraph-dir",
                   check=1)
    assert "LR_Scheduler" in proc.stderr and not (tmp_path / "o").exists()
    proc = run_cli("convert", d / "finetuned.pdopt", tmp_path / "o", "--to", "dygraph-dir",
                   "--skip-non-tensors", "--no-fsync", check=0)
    assert "dropped" in proc.stderr and "LR_Scheduler" in proc.stderr
    assert "linear_0.w_0_moment1_0" in os.listdir(tmp_path / "o")


def test_convert_to_tnum_by_suffix(finetune, tmp_path):
    paddle, d, _, _ = finetune
    run_cli("convert", d / "finetuned.pdparams", tmp_path / "x.tnum", "--no-fsync", check=0)
    assert ls_json(tmp_path / "x.tnum")["format"] == "tnum"


def test_every_save_makes_missing_parent_directories(finetune, tmp_path):
    """paddle.save and Paddle's save ops create a missing directory; so do the C API (CLI),
    pdckpt.save, static save_persistables (one file and a file per variable) and save_dygraph."""
    paddle, d, _, _ = finetune
    import pdckpt
    import pdckpt.dygraph as dy
    import pdckpt.static as st

    run_cli("convert", d / "finetuned.pdparams", tmp_path / "a" / "b" / "x.safetensors",
            "--no-fsync", check=0)
    run_cli("convert", d / "finetuned.pdparams", tmp_path / "v" / "w" / "vars", "--to",
            "vars-dir", "--no-fsync", check=0)
    pdckpt.save({"x": np.ones(3, "float32")}, str(tmp_path / "p" / "q" / "x.pdparams"))
    prog = _program(d)
    state = {v.name: v.numpy() for v in paddle.load(str(d / "finetuned.pdparams")).values()}
    st.save_persistables(None, str(tmp_path / "s" / "t"), str(prog), "net.pdiparams", state=state)
    st.save_persistables(None, str(tmp_path / "s2" / "t2"), str(prog), state=state)
    dy.save_dygraph(dy.load_dygraph(str(d / "finetuned"))[1], str(tmp_path / "g" / "h" / "opt"))
    for path in ["a/b/x.safetensors", "v/w/vars/fc.weight", "p/q/x.pdparams",
                 "s/t/net.pdiparams", "s2/t2/embedding_0.w_0"]:
        assert (tmp_path / path).exists(), path
    assert (tmp_path / "g" / "h" / "opt.pdopt").exists()
