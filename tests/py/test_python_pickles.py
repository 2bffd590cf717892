# SPDX-License-Identifier: Apache-2.0
"""The Python module with Paddle's own pickles and APIs: pdckpt.save writes the bytes paddle.save
writes, pdckpt.load returns what paddle.load returns, file objects, ints beyond 64 bits, numpy
1.x/2.x module spellings, a hostile pickle that imports nothing, and the seeds' dygraph and static
APIs judged by real Paddle."""
import io
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

warnings.filterwarnings("ignore")
import paddle  # noqa: E402

import pdckpt  # noqa: E402
from conftest import PY_STAGE, ROOT  # noqa: E402

paddle.set_device("cpu")


def trained():
    paddle.seed(3)
    with paddle.utils.unique_name.guard():  # the same names every time, as in a new process
        net = paddle.nn.Sequential(paddle.nn.Linear(3, 5), paddle.nn.ReLU(), paddle.nn.Linear(5, 2))
        sched = paddle.optimizer.lr.CosineAnnealingDecay(0.1, T_max=4)
        opt = paddle.optimizer.AdamW(learning_rate=sched, parameters=net.parameters())
        for _ in range(2):  # accumulators are created (and named) at the first step
            net(paddle.ones([2, 3])).sum().backward()
            opt.step()
            opt.clear_grad()
            sched.step()
    return net, opt


def same_tree(a, b):
    if isinstance(a, dict):
        return (isinstance(b, dict) and list(a) == list(b)
                and all(same_tree(a[k], b[k]) for k in a))
    if isinstance(a, paddle.Tensor):
        return (isinstance(b, paddle.Tensor) and a.name == b.name and a.dtype == b.dtype
                and np.array_equal(a.numpy(), b.numpy()))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_save_writes_paddles_bytes(tmp_path, protocol):
    net, opt = trained()
    spelling = "numpy._core" if np.__version__ >= "2" else "numpy.core"
    for name, state in (("m.pdparams", net.state_dict()), ("m.pdopt", opt.state_dict())):
        paddle.save(state, str(tmp_path / f"paddle-{name}"), protocol=protocol)
        pdckpt.save(state, tmp_path / name, protocol=protocol, numpy_module=spelling)
        assert (tmp_path / name).read_bytes() == (tmp_path / f"paddle-{name}").read_bytes()
        # The default spelling (numpy.core, readable by NumPy 1 and 2) differs only there.
        pdckpt.save(state, tmp_path / "default.bin", protocol=protocol)
        assert b"numpy.core.multiarray" in (tmp_path / "default.bin").read_bytes()
        assert same_tree(paddle.load(str(tmp_path / "default.bin")), paddle.load(
            str(tmp_path / name)))


def test_load_returns_what_paddle_load_returns(tmp_path):
    net, opt = trained()
    for name, state in (("m.pdparams", net.state_dict()), ("m.pdopt", opt.state_dict())):
        paddle.save(state, str(tmp_path / name))
        assert same_tree(pdckpt.load(tmp_path / name), paddle.load(str(tmp_path / name)))
        want = paddle.load(str(tmp_path / name), return_numpy=True)
        assert same_tree(pdckpt.load(tmp_path / name, return_numpy=True), want)
    restored, opt2 = trained()
    restored.set_state_dict(pdckpt.load(tmp_path / "m.pdparams"))
    opt2.set_state_dict(pdckpt.load(tmp_path / "m.pdopt"))
    for a, b in zip(restored.parameters(), net.parameters()):
        assert np.array_equal(a.numpy(), b.numpy())


def test_file_objects_both_ways():
    net, _ = trained()
    buf = io.BytesIO()
    pdckpt.save(net.state_dict(), buf)
    buf.seek(0)
    assert same_tree(paddle.load(buf), net.state_dict())
    buf = io.BytesIO()
    paddle.save(net.state_dict(), buf)
    buf.seek(0)
    assert same_tree(pdckpt.load(buf), net.state_dict())


def test_ints_beyond_64_bits_round_trip(tmp_path):
    obj = {"a": 2**70, "b": -2**65, "edge": [2**63, -2**63 - 1, 7**400], "small": 2**63 - 1}
    for protocol in (2, 3, 4):
        pdckpt.save(obj, tmp_path / "ints.pkl", protocol=protocol)
        assert (tmp_path / "ints.pkl").read_bytes() == pickle.dumps(obj, protocol=protocol)
        assert pdckpt.load(tmp_path / "ints.pkl") == obj


def test_numpy_1_and_2_spellings_both_read(tmp_path):
    arr = np.arange(6, dtype="float32").reshape(2, 3)
    for spelling in ("numpy.core", "numpy._core"):
        pdckpt.save({"w": arr}, tmp_path / "s.pkl", numpy_module=spelling)
        data = (tmp_path / "s.pkl").read_bytes()
        assert spelling.encode() + b".multiarray" in data
        assert np.array_equal(pickle.loads(data)["w"], arr)  # this NumPy (2.x) reads both
        assert np.array_equal(pdckpt.load(data, return_numpy=True)["w"], arr)


HOSTILE = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
import pdckpt
payload = b"\x80\x02csubprocess\ncheck_call\nq\x00]q\x01(X\x05\x00\x00\x00touchq\x02X" + \
    len(sys.argv[2]).to_bytes(4, "little") + sys.argv[2].encode() + b"eq\x03\x85q\x04Rq\x05."
before = set(sys.modules)
try:
    pdckpt.load(payload)
    print("loaded")
except pdckpt.UnsupportedError as e:
    print("refused:", e)
print("new modules:", sorted(set(sys.modules) - before))
print("ran:", os.path.exists(sys.argv[2]))
"""


def test_hostile_pickle_imports_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    out = subprocess.run([sys.executable, "-c", HOSTILE, str(PY_STAGE), str(marker)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "refusing global subprocess.check_call: not on pdckpt's allowlist" in out
    assert "new modules: []" in out and "ran: False" in out and not marker.exists()


def test_dygraph_1x_apis_against_paddle(tmp_path):
    net, opt = trained()
    pdckpt.dygraph.save_persistables(net.state_dict(), tmp_path / "d", {"lr": {"step_num": 3}})
    names = sorted(p.name for p in net.parameters())
    assert sorted(os.listdir(tmp_path / "d")) == sorted(names + ["optimizers"])
    for p in net.parameters():  # each file is Paddle's binary tensor stream: Paddle reads it
        assert np.array_equal(np.array(paddle.load(str(tmp_path / "d" / p.name))), p.numpy())
    params, optimizers = pdckpt.dygraph.load_persistables(tmp_path / "d")
    assert {k: v.numpy().tolist() for k, v in params.items()} == {
        p.name: p.numpy().tolist() for p in net.parameters()}
    assert optimizers == {"lr": {"step_num": 3}}
    path = pdckpt.dygraph.save_dygraph(net.state_dict(), tmp_path / "m")
    assert path.endswith(".pdparams")
    assert pdckpt.dygraph.save_dygraph(opt.state_dict(), tmp_path / "m").endswith(".pdopt")
    assert same_tree(paddle.load(path), net.state_dict())
    p2, o2 = pdckpt.dygraph.load_dygraph(tmp_path / "m.pdparams")
    assert same_tree(p2, net.state_dict()) and same_tree(o2, paddle.load(str(tmp_path / "m.pdopt")))


STATIC = r"""
import sys, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, sys.argv[1])
import numpy as np, paddle, pdckpt
out = sys.argv[2]
paddle.enable_static()
main, start = paddle.static.Program(), paddle.static.Program()
with paddle.static.program_guard(main, start):
    x = paddle.static.data("x", [None, 4], "float32")
    y = paddle.static.nn.fc(x, 3)
exe = paddle.static.Executor(paddle.CPUPlace())
exe.run(start)
paddle.static.save_inference_model(out + "/model", [x], [y], exe, program=main)
program = out + "/model.json" if paddle.framework.use_pir_api() else out + "/model.pdmodel"
names = pdckpt.static.persistables(program)
rng = np.random.default_rng(5)
state = {n: rng.standard_normal(np.array(paddle.static.global_scope().find_var(n).get_tensor()).shape)
         .astype("float32") for n in names}
pdckpt.static.save_inference_params(out + "/model", state)
prog, feeds, fetches = paddle.static.load_inference_model(out + "/model", exe)
xin = np.ones((2, 4), "float32")
got = exe.run(prog, feed={feeds[0]: xin}, fetch_list=fetches)[0]
w = [state[n] for n in names if state[n].ndim == 2][0]
b = [state[n] for n in names if state[n].ndim == 1][0]
assert np.allclose(got, xin @ w + b, atol=1e-5), (got, xin @ w + b)
data = pdckpt.static.save_persistables(exe, None, program)  # values from Paddle's scope
back = pdckpt.static.load_persistables(None, data, program)
assert list(back) == names
pdckpt.static.save_persistables(None, out + "/vars", program, state=state)
pdckpt.static.save_persistables(None, out + "/one", program, "all", state=state)
for where in (pdckpt.static.load_persistables(None, out + "/vars", program),
              pdckpt.static.load_persistables(exe, out + "/one", program, "all")):
    assert all(np.array_equal(where[n], state[n]) for n in names)
scope = paddle.static.global_scope()
assert all(np.array_equal(np.array(scope.find_var(n).get_tensor()), state[n]) for n in names)
print("ok", len(names))
"""


@pytest.mark.parametrize("pir", [True, False], ids=["pir", "legacy"])
def test_static_apis_against_paddle(tmp_path, pir):
    env = dict(os.environ, FLAGS_enable_pir_api="1" if pir else "0")
    proc = subprocess.run([sys.executable, "-c", STATIC, str(PY_STAGE), str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0 and proc.stdout.split() == ["ok", "2"], proc.stderr[-3000:]


def run_example(*args):
    script = ROOT / "examples" / "train_resume.py"
    env = dict(os.environ, PYTHONPATH=str(PY_STAGE), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=env)


def test_example_killed_and_resumed_matches_an_uninterrupted_run(tmp_path):
    full = run_example(tmp_path / "full", "--steps", 14, "--every", 3)
    assert full.returncode == 0, full.stderr[-2000:]
    killed = run_example(tmp_path / "crash", "--steps", 14, "--every", 3, "--kill-at", 8)
    assert killed.returncode == -9  # SIGKILL after step 8: the newest checkpoint is step 6
    assert killed.stdout.split("\n")[:8] == full.stdout.split("\n")[:8]
    resumed = run_example(tmp_path / "crash", "--steps", 14, "--every", 3)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    losses = dict(line.split() for line in full.stdout.split("\n") if line)
    again = dict(line.split() for line in resumed.stdout.split("\n") if line)
    assert sorted(again, key=int)[0] == "6" and all(again[s] == losses[s] for s in again)
    assert (tmp_path / "crash" / "final.pdparams").read_bytes() == (
        tmp_path / "full" / "final.pdparams").read_bytes()


def test_keys_paddle_load_acts_on_must_be_what_it_expects(tmp_path):
    """paddle.load joins "UnpackBigParamInfor@@" and reads "StructuredToParameterName@@" as
    {key: name}; a user's value under either key made a file neither paddle.load nor pdckpt.load
    could read (paddle.save writes it too).  pdckpt.save refuses it before writing; a real name
    table (a dict of str to str naming keys beside it) is still written."""
    import paddle
    w = np.zeros(2, np.float32)
    bad = [{"w": w, "UnpackBigParamInfor@@": {"x": 1}},
           {"w": w, "StructuredToParameterName@@": np.ones(3, np.float32)},
           {"w": w, "StructuredToParameterName@@": {"x": "x"}},
           {"w": w, "StructuredToParameterName@@": {"w": 7}}]
    for i, tree in enumerate(bad):
        p = tmp_path / f"bad{i}.pdparams"
        paddle.save(tree, str(p))
        with pytest.raises(Exception):
            paddle.load(str(p))  # what paddle.save made of it
        with pytest.raises(pdckpt.ArgumentError, match="paddle.load"):
            pdckpt.save(tree, str(p) + ".x")
        assert not os.path.exists(str(p) + ".x")
    p = str(tmp_path / "good.pdparams")
    pdckpt.save({"w": w, "StructuredToParameterName@@": {"w": "linear_0.w_0"}}, p)
    assert paddle.load(p)["w"].name == "linear_0.w_0"


class _Reduced:
    """Pickles as `fn(*args)` without being it (a hand-made reduction)."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def test_str_scalar_past_the_last_code_point_is_a_format_error(tmp_path):
    """A np.str_ scalar (numpy's scalar(dtype('<U1'), 4 bytes)) whose UCS-4 unit is past
    U+10FFFF: rebuilding it raised SystemError out of pdckpt.load, as pickle.load / paddle.load
    do; now a FormatError naming the file (any other np.str_ loads as paddle.load gives it)."""
    from numpy.core import multiarray
    bad = pickle.dumps({"s": _Reduced(multiarray.scalar, (np.dtype("U1"), b"\xff\xff\xff\xff"))},
                       protocol=2)
    good = pickle.dumps({"s": np.str_("\U0010ffff")}, protocol=2)
    with pytest.raises(SystemError):
        pickle.loads(bad)
    (tmp_path / "bad.pkl").write_bytes(bad)
    (tmp_path / "good.pkl").write_bytes(good)
    with pytest.raises(pdckpt.FormatError) as e:
        pdckpt.load(str(tmp_path / "bad.pkl"))
    assert "bad.pkl" in str(e.value) and "U+10FFFF" in str(e.value), str(e.value)
    got = pdckpt.load(str(tmp_path / "good.pkl"))["s"]
    assert type(got) is np.str_ and got == pickle.loads(good)["s"]
