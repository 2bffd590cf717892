# SPDX-License-Identifier: Apache-2.0
"""Runs inside the Paddle 2.6 venv (tests/py/test_paddle26_interop.py): `write DIR` saves what
Paddle 2.6 writes, `read DIR FILE...` loads each FILE with Paddle 2.6 and records what it got.
Every array is recorded in DIR/<tag>.npz with its dtype and bytes as Paddle gives them."""
import json
import os
import sys

import numpy as np
import paddle


def arrays(tree, prefix=""):
    out = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.update(arrays(v, f"{prefix}{k}/"))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            out.update(arrays(v, f"{prefix}{i}/"))
    elif isinstance(tree, paddle.Tensor):
        out[prefix[:-1]] = tree.numpy()
    elif isinstance(tree, np.ndarray):
        out[prefix[:-1]] = tree
    return out


def types(tree):
    """The container classes and keys of a tree (OrderedDict vs dict included)."""
    if isinstance(tree, dict):
        return [type(tree).__name__, [[str(k), types(v)] for k, v in tree.items()]]
    if isinstance(tree, (list, tuple)):
        return [type(tree).__name__, [types(v) for v in tree]]
    return "array" if hasattr(tree, "shape") else type(tree).__name__  # tensor or ndarray


def record(d, tag, tree):
    got = arrays(tree)
    np.savez(os.path.join(d, tag + ".npz"), **{k.replace("/", "|"): v for k, v in got.items()})
    return {k: str(v.dtype) for k, v in got.items()}


def write(d):
    paddle.seed(5)
    net = paddle.nn.Sequential(paddle.nn.Linear(4, 6), paddle.nn.BatchNorm1D(6), paddle.nn.Linear(6, 2))
    sched = paddle.optimizer.lr.StepDecay(0.1, step_size=1, gamma=0.5)
    opt = paddle.optimizer.AdamW(sched, parameters=net.parameters())
    x = paddle.to_tensor(np.linspace(-1, 1, 12, dtype="float32").reshape(3, 4))
    for _ in range(2):
        net(x).mean().backward()
        opt.step()
        opt.clear_grad()
        sched.step()
    net.eval()
    paddle.save(net.state_dict(), os.path.join(d, "net.pdparams"))
    paddle.save(opt.state_dict(), os.path.join(d, "opt.pdopt"))
    nested = {"a": {"w": paddle.to_tensor(np.arange(6, dtype="int64").reshape(2, 3))},
              "b": [paddle.to_tensor(np.array([True, False])), 3.5], "h": paddle.to_tensor(
                  np.arange(4, dtype="float16"))}
    paddle.save(nested, os.path.join(d, "nested.pdparams"))
    # the usual training checkpoint: model.state_dict() nested, an OrderedDict on the generic path
    ckpt = {"model": net.state_dict(), "opt": opt.state_dict(), "epoch": 2}
    for proto in (2, 4):
        paddle.save(ckpt, os.path.join(d, f"ckpt_p{proto}.pdparams"), protocol=proto)
    paddle.jit.save(net, os.path.join(d, "infer", "net"),
                    input_spec=[paddle.static.InputSpec([None, 4], "float32")])
    meta = {tag: record(d, tag, paddle.load(os.path.join(d, tag + ext)))
            for tag, ext in [("net", ".pdparams"), ("opt", ".pdopt"), ("nested", ".pdparams")]}
    # paddle.load of a jit.save prefix: keyed by the .pdiparams.info's structured names
    jit_state = paddle.load(os.path.join(d, "infer", "net"))
    meta["jit_keys"] = list(jit_state)
    meta["jit"] = record(d, "jit", jit_state)
    np.save(os.path.join(d, "x.npy"), x.numpy())
    np.save(os.path.join(d, "y.npy"), net(x).numpy())
    meta["lr"] = paddle.load(os.path.join(d, "opt.pdopt"))["LR_Scheduler"]
    meta["ckpt_types"] = types(paddle.load(os.path.join(d, "ckpt_p4.pdparams")))
    json.dump(meta, open(os.path.join(d, "written.json"), "w"))


def read(d, files):
    meta = {}
    for f in files:
        tag = os.path.basename(f).replace(".", "_")
        if f.endswith("/net"):  # an inference model prefix: run it
            layer = paddle.jit.load(f)
            x = paddle.to_tensor(np.load(os.path.join(d, "x.npy")))
            np.save(os.path.join(d, tag + "_y.npy"), layer(x).numpy())
            meta[tag] = "ran"
            continue
        tree = paddle.load(f)
        meta[tag] = record(d, tag, tree)
        meta[tag + "_types"] = types(tree)
        if isinstance(tree, dict) and "LR_Scheduler" in tree:
            meta[tag + "_lr"] = tree["LR_Scheduler"]
    json.dump(meta, open(os.path.join(d, "read.json"), "w"))


def sharded(d):
    """Under `python -m paddle.distributed.launch --nproc_per_node 2`: Paddle 2.6's
    save_state_dict of tensors split by rows and by columns, and replicated ones of other dtypes;
    rank 0 records the whole tensors."""
    import paddle.distributed as dist
    dist.init_parallel_env()
    mesh = dist.ProcessMesh([0, 1], dim_names=["x"])
    rng = np.random.default_rng(3)
    full = {"rows": rng.standard_normal((6, 4)).astype("float32"),
            "cols": rng.standard_normal((3, 8)).astype("float32"),
            "half": rng.standard_normal((2, 3)).astype("float16"),
            "ids": np.arange(10, dtype="int64"), "mask": rng.standard_normal(4) > 0,
            "scale": np.float32(2.5), "bf": rng.standard_normal((4, 2)).astype("float32")}
    tensors = {k: paddle.to_tensor(v) for k, v in full.items()}
    tensors["bf"] = tensors["bf"].astype("bfloat16")
    state = {"rows": dist.shard_tensor(tensors["rows"], mesh, [dist.Shard(0)]),
             "cols": dist.shard_tensor(tensors["cols"], mesh, [dist.Shard(1)]),
             "ids": dist.shard_tensor(tensors["ids"], mesh, [dist.Shard(0)]),
             "bf": tensors["bf"], "half": tensors["half"], "mask": tensors["mask"],
             "scale": tensors["scale"]}  # 2.6 splits neither float16 nor bfloat16 on CPU
    dist.save_state_dict(state, os.path.join(d, "ck"))
    if dist.get_rank() == 0:
        record(d, "sharded", tensors)
        json.dump({k: [str(v.dtype).split(".")[-1], list(v.shape)] for k, v in tensors.items()},
                  open(os.path.join(d, "sharded.json"), "w"))


if __name__ == "__main__":
    paddle.set_device("cpu")
    assert paddle.__version__.startswith("2.6"), paddle.__version__
    modes = {"write": lambda: write(sys.argv[2]), "read": lambda: read(sys.argv[2], sys.argv[3:]),
             "sharded": lambda: sharded(sys.argv[2])}
    modes[sys.argv[1]]()
