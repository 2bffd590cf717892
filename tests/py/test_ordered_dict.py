# SPDX-License-Identifier: Apache-2.0
"""A checkpoint that nests model.state_dict() (an OrderedDict), as users write
`paddle.save({"model": net.state_dict(), "opt": opt.state_dict(), "epoch": e}, path)`: Paddle's
generic path pickles the nested OrderedDict as collections.OrderedDict.  pdckpt reads it back as
an OrderedDict (paddle.load's type), writes it as one (paddle.save's bytes, protocols 2-4), and a
CLI rewrite of Paddle's file is byte-identical.  Judged by real Paddle 3.x in this process."""
import collections
import io

import pytest

from conftest import run_cli


def _types(x):
    if isinstance(x, dict):
        return (type(x).__name__, list(x), [_types(v) for v in x.values()])
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [_types(v) for v in x])
    return type(x).__name__


def _objects(paddle):
    paddle.seed(1)
    net = paddle.nn.Sequential(paddle.nn.Linear(3, 4), paddle.nn.LayerNorm(4))
    sched = paddle.optimizer.lr.StepDecay(0.1, 1)
    opt = paddle.optimizer.AdamW(parameters=net.parameters(), learning_rate=sched)
    net(paddle.ones([2, 3])).mean().backward()
    opt.step()
    shared = collections.OrderedDict(w=paddle.ones([2]))
    return {
        "ckpt": {"model": net.state_dict(), "opt": opt.state_dict(), "epoch": 3},
        "root": collections.OrderedDict(step=1, hist=[net.state_dict(), collections.OrderedDict()]),
        "state_dict": net.state_dict(),  # the state-dict path: a plain dict, as Paddle writes it
        "shared": {"a": shared, "b": (shared,)},
    }


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_nested_ordered_dicts_both_ways(paddle_np, tmp_path, protocol):
    import pdckpt

    paddle, _ = paddle_np
    for tag, obj in _objects(paddle).items():
        theirs, ours = io.BytesIO(), io.BytesIO()
        paddle.save(obj, theirs, protocol=protocol)
        pdckpt.save(obj, ours, protocol=protocol, numpy_module="numpy._core")
        assert ours.getvalue() == theirs.getvalue(), tag
        want = _types(paddle.load(io.BytesIO(theirs.getvalue())))
        assert _types(pdckpt.load(io.BytesIO(theirs.getvalue()))) == want, tag
        assert _types(paddle.load(io.BytesIO(ours.getvalue()))) == want, tag
        src, out = tmp_path / f"{tag}.pdparams", tmp_path / f"{tag}_cli.pdparams"
        src.write_bytes(theirs.getvalue())
        run_cli("convert", src, out, "--protocol", protocol, "--numpy-module", "numpy._core",
                "--no-fsync", check=0)
        assert out.read_bytes() == theirs.getvalue(), tag
    got = pdckpt.load(io.BytesIO(theirs.getvalue()))
    assert got["a"] is got["b"][0]  # shared stays shared


def test_only_pickles_keep_the_container_type(paddle_np, tmp_path):
    """safetensors has no container type; pdckpt's tree metadata keeps it (it was lost: the
    OrderedDict came back a dict), and the pickle written back is the first one, byte for byte."""
    import pdckpt

    paddle, _ = paddle_np
    sd = _objects(paddle)["ckpt"]["model"]
    pdckpt.save({"model": sd}, tmp_path / "n.pdparams")
    assert type(pdckpt.load(str(tmp_path / "n.pdparams"))["model"]) is collections.OrderedDict
    run_cli("convert", tmp_path / "n.pdparams", tmp_path / "n.safetensors", "--no-fsync", check=0)
    back = pdckpt.load(str(tmp_path / "n.safetensors"))
    assert list(back) == ["model"] and type(back["model"]) is collections.OrderedDict
    assert list(back["model"]) == list(sd)
    run_cli("convert", tmp_path / "n.safetensors", tmp_path / "m.pdparams", "--no-fsync", check=0)
    assert (tmp_path / "m.pdparams").read_bytes() == (tmp_path / "n.pdparams").read_bytes()
