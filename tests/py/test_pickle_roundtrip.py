"""Reader and writer together: every pickle among the real fixtures, read by pdckpt and written
anew with the protocol and numpy spelling it was written with, comes out byte-identical; and
training resumes exactly from .pdparams/.pdopt files that went through pdckpt's C reader and
writer (issue 3's resume test)."""
import json
import os
import pickle
import subprocess
import sys

import pytest

from conftest import FIXTURES, ls_json, run_cli

# Pickles not written by CPython 3's pickler, with why their bytes cannot come back equal.
NOT_CPYTHON3 = {
    "luotao1-example-2018-01-fluid0.11-pickled/__model__":
        "Python 2's cPickle wrote its str values as BINSTRING/SHORT_BINSTRING; pdckpt reads them "
        "as text (latin-1, as paddle.load does) and writes text the way Python 3 does",
}


def fixture_pickles():
    found = []
    for path in sorted(FIXTURES.rglob("*")):
        if path.is_file() and path.read_bytes()[:1] in (b"\x80", b"(", b"}", b"]"):
            proc = run_cli("ls", "--json", path)
            if proc.returncode == 0 and json.loads(proc.stdout)["format"] == "pickle":
                found.append(path)
    return found


PICKLES = fixture_pickles()


def test_every_pickle_fixture_is_found():
    # SOURCES.md: paddle.save / save_dygraph / hapi / jit.save outputs plus the 0.11 __model__.
    assert len(PICKLES) >= 14


def written_with(path):
    data = path.read_bytes()
    protocol = data[1] if data[0] == 0x80 else 0
    spelling = "numpy._core" if b"numpy._core" in data else "numpy.core"
    return protocol, spelling


@pytest.mark.parametrize("path", PICKLES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixture_written_back_identically(path, tmp_path):
    protocol, spelling = written_with(path)
    out = tmp_path / "again.pdparams"
    run_cli("convert", path, out, "--to", "pickle", "--protocol", protocol, "--numpy-module",
            spelling, check=0)
    rel = str(path.relative_to(FIXTURES))
    if rel in NOT_CPYTHON3:
        assert out.read_bytes() != path.read_bytes()
        same = pickle.loads(out.read_bytes(), encoding="latin1")
        assert same == pickle.loads(path.read_bytes(), encoding="latin1")
    else:
        assert out.read_bytes() == path.read_bytes()
    assert ls_json(out, "--hash") == ls_json(path, "--hash")


TRAIN = r"""
import sys, warnings
warnings.filterwarnings("ignore")
import numpy as np, paddle
paddle.set_device("cpu")
paddle.seed(7)
mode, where, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
net = paddle.nn.Sequential(paddle.nn.Linear(6, 16), paddle.nn.ReLU(), paddle.nn.Linear(16, 1))
sched = paddle.optimizer.lr.StepDecay(learning_rate=0.05, step_size=3, gamma=0.5)
opt = paddle.optimizer.AdamW(learning_rate=sched, parameters=net.parameters(), weight_decay=0.01)
def batch(step):
    rng = np.random.default_rng(step)
    x = rng.standard_normal((8, 6)).astype("float32")
    return paddle.to_tensor(x), paddle.to_tensor(x.sum(1, keepdims=True) ** 2)
def train(steps):
    out = []
    for step in steps:
        x, y = batch(step)
        loss = ((net(x) - y) ** 2).mean()
        loss.backward(); opt.step(); opt.clear_grad(); sched.step()
        out.append(float(loss))
    return out
if mode == "resume":
    net.set_state_dict(paddle.load(where + ".pdparams"))
    opt.set_state_dict(paddle.load(where + ".pdopt"))
    losses = train(range(k, k + 20))
else:
    train(range(k))
    if mode == "save":
        paddle.save(net.state_dict(), where + ".pdparams")
        paddle.save(opt.state_dict(), where + ".pdopt")
    losses = train(range(k, k + 20))
print(" ".join(np.float32(v).tobytes().hex() for v in losses))
"""


def run_train(*args):
    proc = subprocess.run([sys.executable, "-c", TRAIN, *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_training_resumes_exactly_through_pdckpt(tmp_path):
    k = 5
    uninterrupted = run_train("full", tmp_path / "unused", k)
    saved = run_train("save", tmp_path / "paddle", k)
    assert saved == uninterrupted
    for suffix in (".pdparams", ".pdopt"):
        # Paddle wrote protocol 4; pdckpt reads it and writes protocol 2 (other bytes entirely).
        run_cli("convert", tmp_path / f"paddle{suffix}", tmp_path / f"pdckpt{suffix}", "--to",
                "pickle", "--protocol", "2", check=0)
        assert (tmp_path / f"pdckpt{suffix}").read_bytes() != (tmp_path / f"paddle{suffix}").read_bytes()
    opt = ls_json(tmp_path / "pdckpt.pdopt")
    assert any(s["key"] == ["LR_Scheduler", "last_epoch"] and s["value"] == k for s in opt["scalars"])
    assert any("moment1" in t["key"][0] for t in opt["tensors"])
    assert run_train("resume", tmp_path / "pdckpt", k) == uninterrupted


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_ints_beyond_64_bits_are_written_back_as_longs(tmp_path, protocol):
    """The reader carries them as builtins.int objects; the writer gives back LONG1/LONG4."""
    obj = {"ids": {2**64 + i: -2**70 - i for i in range(3)}, "huge": 3**700, "edge": -2**63 - 1}
    src = tmp_path / "ints.pkl"
    src.write_bytes(pickle.dumps(obj, protocol=protocol))
    run_cli("convert", src, tmp_path / "out.pkl", "--to", "pickle", "--protocol", protocol,
            check=0)
    assert (tmp_path / "out.pkl").read_bytes() == src.read_bytes()
