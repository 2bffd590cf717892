# SPDX-License-Identifier: Apache-2.0
"""pdckpt writes .pdparams / .pdopt files; real Paddle judges them.

Every test builds one object in Paddle and hands the same object to pdckpt (through the tree tool,
tests/support/tree_tool.c, or through `pdckpt convert`), then requires the file to be
byte-identical to paddle.save's and paddle.load of it to return equal values and names
(keep_name_table=True).  Objects paddle.save refuses (bytes, sets, opaque objects) are judged by
CPython's own pickler instead.  The tree tool of the sanitizer build runs the quick cases too.
"""
import collections
import filecmp
import json
import math
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import pdtree
from conftest import ROOT

PROTOCOLS = [2, 3, 4]
ASAN_TOOL = Path(os.environ.get("PDCKPT_BUILD_ASAN", ROOT / "build-asan")) / "tests" / "pdckpt_tree_tool"
TOOLS = [pdtree.TREE_TOOL] + ([ASAN_TOOL] if ASAN_TOOL.exists() else [])


@pytest.fixture(scope="module")
def paddle():
    import warnings

    warnings.filterwarnings("ignore")
    import paddle as pd

    pd.set_device("cpu")
    pd.seed(7)
    return pd


# ---- comparing what paddle.load returns ----

def assert_loaded_equal(a, b, where="root"):
    import paddle as pd

    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, dict):
        assert list(a.keys()) == list(b.keys()), where
        for k in a:
            assert_loaded_equal(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_loaded_equal(x, y, f"{where}/{i}")
    elif isinstance(a, pd.Tensor):
        assert a.name == b.name, where
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        assert np.array(a).tobytes() == np.array(b).tobytes(), where
    elif isinstance(a, np.ndarray):
        assert (a.dtype, a.shape, a.tobytes()) == (b.dtype, b.shape, b.tobytes()), where
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, where


def same_as_paddle(paddle, obj, tmp_path, protocol, tool=None, name="x"):
    """paddle.save(obj) and pdckpt's save of the same object: same bytes, same paddle.load."""
    theirs, ours = tmp_path / f"{name}.paddle.pdparams", tmp_path / f"{name}.pdckpt.pdparams"
    paddle.save(obj, str(theirs), protocol=protocol)
    proc = pdtree.save(obj, ours, protocol=protocol, tool=tool)
    assert proc.returncode == 0, proc.stderr
    assert ours.read_bytes() == theirs.read_bytes()
    assert_loaded_equal(paddle.load(str(theirs), keep_name_table=True),
                        paddle.load(str(ours), keep_name_table=True))


def same_as_cpython(obj, described, tmp_path, protocol, tool=None, share=False, allow=()):
    """pickle.dump(obj) by CPython vs pdckpt's save of its description."""
    ours = tmp_path / "obj.pkl"
    proc = pdtree.save(described, ours, protocol=protocol, tool=tool, share=share, allow=allow)
    assert proc.returncode == 0, proc.stderr
    assert ours.read_bytes() == pickle.dumps(obj, protocol=protocol)


# ---- models and optimizers ----

def small_net(paddle):
    nn = paddle.nn
    return nn.Sequential(nn.Conv2D(3, 4, 3), nn.BatchNorm2D(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 5), nn.Embedding(10, 3))


def train_steps(paddle, net, opt, sched=None, steps=2):
    for _ in range(steps):
        x = paddle.rand([2, 3, 8, 8])
        loss = net[:5](x).sum() + net[5](paddle.to_tensor([[1, 2]])).sum()
        loss.backward()
        opt.step()
        opt.clear_grad()
        if sched is not None:
            sched.step()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("tool", TOOLS, ids=["plain", "asan"][: len(TOOLS)])
def test_layer_state_dicts(paddle, tmp_path, protocol, tool):
    net = small_net(paddle)
    sd = net.state_dict()
    assert any(k.endswith("_mean") for k in sd) and any(k.endswith("_variance") for k in sd)
    same_as_paddle(paddle, sd, tmp_path, protocol, tool, "net")
    same_as_paddle(paddle, paddle.nn.Linear(3, 2).state_dict(), tmp_path, protocol, tool, "lin")


OPTIMIZERS = ["SGD", "Momentum", "Adam", "AdamW"]


def make_optimizer(paddle, name, params, sched, **kw):
    return getattr(paddle.optimizer, name)(learning_rate=sched, parameters=params, **kw)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("opt_name", OPTIMIZERS)
def test_optimizer_state_dicts(paddle, tmp_path, protocol, opt_name):
    net = small_net(paddle)
    lr = paddle.optimizer.lr
    sched = lr.LinearWarmup(lr.StepDecay(0.1, step_size=2), warmup_steps=3, start_lr=0.0, end_lr=0.1)
    opt = make_optimizer(paddle, opt_name, net.parameters(), sched)
    train_steps(paddle, net, opt, sched)
    sd = opt.state_dict()
    assert set(sd["LR_Scheduler"]) == {"last_epoch", "last_lr", "LinearWarmup_LR"}
    same_as_paddle(paddle, sd, tmp_path, protocol, name=opt_name)
    plain = make_optimizer(paddle, opt_name, net.parameters(), 0.01)  # no scheduler
    train_steps(paddle, net, plain)
    same_as_paddle(paddle, plain.state_dict(), tmp_path, protocol, name=opt_name + "_const")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reduce_on_plateau_scheduler(paddle, tmp_path, protocol):
    lin = paddle.nn.Linear(2, 2)
    sched = paddle.optimizer.lr.ReduceOnPlateau(0.1)
    opt = paddle.optimizer.Adam(sched, parameters=lin.parameters())
    lin(paddle.rand([1, 2])).sum().backward()
    opt.step()
    sched.step(1.5)
    assert "best" in sd_keys(opt.state_dict()["LR_Scheduler"])
    same_as_paddle(paddle, opt.state_dict(), tmp_path, protocol)


def sd_keys(d):
    return list(d.keys())


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("opt_name", OPTIMIZERS)
def test_master_weights_take_the_generic_path(paddle, tmp_path, protocol, opt_name):
    # bf16 parameters with multi_precision: master_weights is a dict of tensors, so paddle.save
    # takes the generic path ((name, ndarray) tuples, no name table).  CPU Paddle has no bf16
    # Adam kernel, but the accumulators and master weights exist before the kernel runs.
    lin = paddle.nn.Linear(4, 4)
    lin.to(dtype="bfloat16")
    sched = paddle.optimizer.lr.StepDecay(0.1, step_size=2)
    opt = make_optimizer(paddle, opt_name, lin.parameters(), sched, multi_precision=True)
    sum((p.astype("float32") ** 2).sum() for p in lin.parameters()).backward()
    try:
        opt.step()
    except Exception:  # noqa: BLE001 -- the missing CPU kernel, after the state was created
        pass
    sd = opt.state_dict()
    assert isinstance(sd["master_weights"], dict) and sd["master_weights"]
    same_as_paddle(paddle, sd, tmp_path, protocol, name=opt_name)


# ---- values ----

DTYPES = ["bfloat16", "float16", "float32", "float64", "complex64", "complex128", "bool", "int8",
          "uint8", "int16", "int32", "int64"]


def every_dtype(paddle):
    sd = {}
    base = np.arange(12, dtype=np.float64).reshape(3, 4) * 37 - 100
    for dt in DTYPES:
        src = (base > 0) if dt == "bool" else base
        sd[f"w_{dt}"] = paddle.to_tensor(src).astype(dt)
    sd["zero_d"] = paddle.to_tensor(np.float32(3.5))
    sd["empty"] = paddle.zeros([0, 3])
    sd["empty_i64"] = paddle.zeros([2, 0], dtype="int64")
    sd["b"] = paddle.to_tensor(np.array([98], dtype=np.uint8))  # 1-byte data, 1-char key
    sd["w"] = paddle.to_tensor(np.array([1, 2], dtype=np.int8))
    sd["six_d"] = paddle.rand([1, 2, 1, 2, 2, 1])
    return sd


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("tool", TOOLS, ids=["plain", "asan"][: len(TOOLS)])
def test_every_dtype_0d_and_empty(paddle, tmp_path, protocol, tool):
    same_as_paddle(paddle, every_dtype(paddle), tmp_path, protocol, tool)


def generic_object(paddle):
    t = paddle.to_tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    return {
        "model": {"w": t, "scalars": [1, 2.5, -0.0, None, True, False, 2**40, -(2**33), 300, 70000],
                  "strings": ["str", "a b", "", "é€😀", "x" * 300, "y" * 70000]},
        "tuple": (1, "x", (paddle.to_tensor(np.array([1, 2], np.int8)),)),
        "list": [paddle.to_tensor(np.float32(2.0)), np.arange(3), ("plain", np.arange(2))],
        "epoch": 3, "lr": 0.01, "name": "hello world", "empty": (), "nested": {"deeper": {}},
    }


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("tool", TOOLS, ids=["plain", "asan"][: len(TOOLS)])
def test_generic_path(paddle, tmp_path, protocol, tool):
    same_as_paddle(paddle, generic_object(paddle), tmp_path, protocol, tool, "generic")
    t = paddle.to_tensor(np.ones((2, 2), np.float32))
    same_as_paddle(paddle, t, tmp_path, protocol, tool, "tensor")
    same_as_paddle(paddle, [t, paddle.zeros([3], dtype="int32")], tmp_path, protocol, tool, "list")
    same_as_paddle(paddle, {"model": small_net(paddle)[4].state_dict(), "epoch": 1}, tmp_path,
                   protocol, tool, "nested")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_ordered_dict_as_plain_dict_loads_equal(paddle, tmp_path, protocol):
    # A reader that turns OrderedDict into a plain dict loses the class; written back, the file
    # differs from paddle.save's (EMPTY_DICT instead of OrderedDict's REDUCE) but loads the same.
    obj = {"model": small_net(paddle)[4].state_dict(), "epoch": 1}
    assert isinstance(obj["model"], collections.OrderedDict)
    ours = tmp_path / "plain.pdparams"
    proc = pdtree.save(obj, ours, protocol=protocol, ordered_dict_objects=False)
    assert proc.returncode == 0, proc.stderr
    paddle.save(obj, str(tmp_path / "paddle.pdparams"), protocol=protocol)
    loaded, theirs = paddle.load(str(ours)), paddle.load(str(tmp_path / "paddle.pdparams"))
    assert type(loaded["model"]) is dict and type(theirs["model"]) is collections.OrderedDict
    assert loaded["epoch"] == theirs["epoch"] == 1
    assert_loaded_equal(loaded["model"], dict(theirs["model"]))


@pytest.mark.parametrize("n", [64000, 65532, 65535, 65536, 200000])
def test_frame_boundaries(paddle, tmp_path, n):
    data = paddle.to_tensor((np.arange(n) % 256).astype(np.uint8))
    for protocol in PROTOCOLS:
        same_as_paddle(paddle, {"w": data}, tmp_path, protocol, name=f"sd{protocol}")
    same_as_paddle(paddle, {"w": data, "after": 1}, tmp_path, 4, name="generic")
    same_as_paddle(paddle, {"w": data, "x": data}, tmp_path, 4, name="twice")


@pytest.mark.parametrize("protocol", [2, 4])
def test_batches_of_1000(paddle, tmp_path, protocol):
    # (Keys are distinct across the dicts: a computed key repeated elsewhere is a fresh str to
    # Python but, looking like a name, is taken for an interned one by pdckpt.)
    obj = {"d1000": {f"a{i}": i for i in range(1000)}, "d2001": {f"b{i}": i for i in range(2001)},
           "l1": [1], "l1000": list(range(1000)), "l1001": list(range(1001)), "l2000": list(range(2000))}
    same_as_paddle(paddle, obj, tmp_path, protocol)


# ---- what paddle.save refuses: CPython's pickler judges ----

@pytest.fixture(scope="module")
def fake_module():
    """A module with Paddle 1.5-style classes, so CPython can pickle instances by reference."""
    mod = types.ModuleType("pdckpt_fake_lr")

    class NaturalExpDecay:
        def __init__(self, learning_rate, decay_steps, decay_rate, staircase=False, begin=0):
            self.step_num, self.step_size, self.dtype = begin, 1, "float32"
            self.learning_rate, self.decay_steps = learning_rate, decay_steps
            self.decay_rate, self.staircase = decay_rate, staircase

    class Reduced:
        def __init__(self, a):
            self.a = a

        def __reduce__(self):
            return (Reduced, (self.a,), {"extra": [1, 2]})

    class ListSub(list):
        pass

    for cls in (NaturalExpDecay, Reduced, ListSub):
        cls.__module__, cls.__qualname__ = mod.__name__, cls.__name__
        setattr(mod, cls.__name__, cls)
    sys.modules[mod.__name__] = mod
    yield mod
    del sys.modules[mod.__name__]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("tool", TOOLS, ids=["plain", "asan"][: len(TOOLS)])
def test_objects_like_cpython(tmp_path, protocol, tool, fake_module):
    Obj, m = pdtree.Obj, fake_module.__name__
    lr = fake_module.NaturalExpDecay(0.1, 10, 0.5, True)
    allow = [f"{m}.{c}" for c in ("NaturalExpDecay", "Reduced", "ListSub")]
    # the writer emits no global off its allowlist unless the caller allows it
    proc = pdtree.save(Obj("N", m, "NaturalExpDecay", (), {}), tmp_path / "no.pkl", tool=tool)
    assert proc.returncode == 1 and f"refusing to write global {m}.NaturalExpDecay" in proc.stderr
    assert not (tmp_path / "no.pkl").exists()
    same_as_cpython(lr, Obj("N", m, "NaturalExpDecay", (), dict(lr.__dict__)), tmp_path, protocol,
                    tool, allow=allow)
    od = collections.OrderedDict([("a", 1), ("b", [2])])
    obj = [fake_module.Reduced(5), od, collections.OrderedDict, fake_module.ListSub([1, 2, 3]),
           collections.OrderedDict([("only", 1)])]
    described = [Obj("R", m, "Reduced", (5,), {"extra": [1, 2]}),
                 Obj("R", "collections", "OrderedDict", (), None, {"a": 1, "b": [2]}),
                 Obj("G", "collections", "OrderedDict"),
                 Obj("N", m, "ListSub", (), None, [1, 2, 3]),
                 Obj("R", "collections", "OrderedDict", (), None, {"only": 1})]
    same_as_cpython(obj, described, tmp_path, protocol, tool, allow=allow)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_scalars_bytes_sets_like_cpython(tmp_path, protocol):
    ints = [0, 255, 256, 65535, 65536, -1, -128, -129, 2**31 - 1, -(2**31), 2**31, -(2**31) - 1,
            2**63 - 1, -(2**63), 127, 128, -32768]
    floats = [0.0, -0.0, 1.5, float("inf"), float("-inf"), 1e300, 5e-324]
    byts = [b"", b"x", b"\x00\xff" * 200, bytes(range(256)), b"y" * 70000, b"x"]
    sets = [set(), {1}, set(range(1000)), set(range(1001)), {"a", "b"}]
    for obj in (ints, floats, byts, sets):
        same_as_cpython(obj, obj, tmp_path, protocol)
    shared = [1, 2]
    obj = {"a": shared, "b": shared, "c": (shared, shared), "d": "long string x", "e": "long string x"}
    same_as_cpython(obj, obj, tmp_path, protocol, share=True)  # one object twice: BINGET


# ---- big arrays: key@@.i slices for protocols 2 and 3 ----

def test_big_array_split_protocol3(paddle, tmp_path):
    # Memory: the array (1 GiB) plus paddle.save's own copies stay near 5 GiB at the peak.
    n = 2**30 + 1  # int8: slices of 2^30-1 elements, so two slices
    pattern = np.arange(251, dtype=np.int8)
    big = np.tile(pattern, n // 251 + 1)[:n]
    t, small, after = paddle.to_tensor(big), paddle.ones([2]), paddle.zeros([3])
    name = t.name
    theirs, ours = tmp_path / "paddle.pdparams", tmp_path / "pdckpt.pdparams"
    paddle.save({"small": small, "big": t, "after": after}, str(theirs), protocol=3)
    del t
    proc = pdtree.save({"small": small, "big": pdtree.Tensor(big, name=name), "after": after},
                       ours, protocol=3)
    assert proc.returncode == 0, proc.stderr
    del big
    for f in tmp_path.glob("*.in.data"):
        f.unlink()
    assert filecmp.cmp(theirs, ours, shallow=False)
    theirs.unlink()
    loaded = paddle.load(str(ours), return_numpy=True, keep_name_table=True)
    assert list(loaded) == ["small", "after", "StructuredToParameterName@@", "big"]  # re-joined
    assert loaded["StructuredToParameterName@@"]["big"] == name
    got = loaded["big"]
    assert got.shape == (n,) and got.dtype == np.int8
    step = 251 * 2**20
    for start in range(0, n, step):
        chunk = got[start:start + step]
        assert np.array_equal(chunk, np.resize(pattern, chunk.shape[0]))
    ours.unlink()  # pytest keeps recent temp dirs: do not leave a GiB behind


# ---- numpy module spelling ----

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_numpy_core_spelling_loads_in_numpy2(paddle, tmp_path, protocol):
    sd = every_dtype(paddle)
    path = tmp_path / "core.pdparams"
    proc = pdtree.save(sd, path, protocol=protocol, numpy_module="numpy.core")
    assert proc.returncode == 0, proc.stderr
    data = path.read_bytes()
    assert b"numpy.core.multiarray" in data and b"numpy._core" not in data
    paddle.save(sd, str(tmp_path / "p.pdparams"), protocol=protocol)
    assert_loaded_equal(paddle.load(str(tmp_path / "p.pdparams"), keep_name_table=True),
                        paddle.load(str(path), keep_name_table=True))


# ---- the CLI: other formats -> .pdparams / .pdopt ----

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_convert_safetensors_to_pdopt(paddle, tmp_path, cli, protocol):
    from safetensors.numpy import save_file

    net = small_net(paddle)
    opt = paddle.optimizer.Adam(0.01, parameters=net.parameters())
    train_steps(paddle, net, opt)
    # safetensors stores tensors by name (all float32 here: sorted by name); an optimizer state's
    # keys are its tensor names, so the same state in that order is what Paddle would save.
    sd = {k: v for k, v in sorted(opt.state_dict().items())}
    save_file({k: np.array(v) for k, v in sd.items()}, str(tmp_path / "opt.safetensors"))
    paddle.save(sd, str(tmp_path / "paddle.pdopt"), protocol=protocol)
    cli("convert", tmp_path / "opt.safetensors", tmp_path / "pdckpt.pdopt", "--protocol",
        protocol, "--numpy-module", "numpy._core", "--no-fsync", check=0)
    assert (tmp_path / "pdckpt.pdopt").read_bytes() == (tmp_path / "paddle.pdopt").read_bytes()


def test_convert_binary_formats_to_pdparams(paddle, tmp_path, cli):
    sd = every_dtype(paddle)
    del sd["w_complex128"]  # safetensors cannot hold it
    del sd["w_bfloat16"]  # np.array() gives uint16, which Paddle's tensor files cannot hold
    arrays = {k: np.array(v) for k, v in sd.items()}
    from safetensors.numpy import save_file

    save_file({k: a for k, a in arrays.items()}, str(tmp_path / "in.safetensors"))
    cli("convert", tmp_path / "in.safetensors", tmp_path / "vars", "--to", "vars-dir", check=0)
    for src in ("in.safetensors", "vars"):
        out = tmp_path / f"{src}.pdparams"
        cli("convert", tmp_path / src, out, check=0)
        assert out.read_bytes()[:2] == b"\x80\x04"
        loaded = paddle.load(str(out), keep_name_table=True)
        table = loaded.pop("StructuredToParameterName@@")
        assert sorted(loaded) == sorted(arrays)
        for k, v in loaded.items():
            assert table[k] == k and v.name == k  # unnamed tensors: the key names them
            want = arrays[k]
            assert np.array(v).tobytes() == want.tobytes() and tuple(v.shape) == want.shape


# ---- Paddle 1.x dygraph writers ----

def test_save_dygraph_pair(paddle, tmp_path):
    net = small_net(paddle)
    lr = paddle.optimizer.lr
    sched = lr.StepDecay(0.1, step_size=1)
    opt = paddle.optimizer.Adam(sched, parameters=net.parameters())
    train_steps(paddle, net, opt, sched)
    params, state = net.state_dict(), opt.state_dict()
    proc = pdtree.save_dygraph(params, state, tmp_path / "model")
    assert proc.returncode == 0, proc.stderr
    # fluid.save_dygraph = the state-dict path at protocol 2, which paddle.save(protocol=2) writes.
    for obj, suffix in ((params, ".pdparams"), (state, ".pdopt")):
        paddle.save(obj, str(tmp_path / f"paddle{suffix}"), protocol=2)
        assert (tmp_path / f"model{suffix}").read_bytes() == (tmp_path / f"paddle{suffix}").read_bytes()
    loaded = paddle.load(str(tmp_path / "model.pdopt"))
    assert loaded["LR_Scheduler"] == state["LR_Scheduler"]
    proc = pdtree.save_dygraph(None, state, tmp_path / "only_opt")
    assert proc.returncode == 0 and not (tmp_path / "only_opt.pdparams").exists()


def test_save_persistables_layout(paddle, tmp_path, fake_module):
    net = small_net(paddle)
    sd = net.state_dict()
    model = {k: pdtree.Tensor(np.array(v), name=f"mlp/{v.name}") for k, v in sd.items()}
    lr = fake_module.NaturalExpDecay(0.1, 10, 0.5)
    opts = {"SGDOptimizer_0": pdtree.Obj("N", fake_module.__name__, "NaturalExpDecay", (),
                                         dict(lr.__dict__))}
    proc = pdtree.save_persistables(model, opts, tmp_path / "save_dir",
                                    allow=[f"{fake_module.__name__}.NaturalExpDecay"])
    assert proc.returncode == 0, proc.stderr
    for k, v in sd.items():
        path = tmp_path / "save_dir" / "mlp" / v.name  # '/' in the name: a subdirectory
        assert np.array(paddle.load(str(path))).tobytes() == np.array(v).tobytes()
    pkl = (tmp_path / "save_dir" / "optimizers" / "SGDOptimizer_0").read_bytes()
    assert pkl == pickle.dumps(lr, 2)  # what 1.5 wrote: pickle.dump(lr_decay, f, 2)
    assert pickle.loads(pkl).__dict__ == lr.__dict__


# ---- the restore check ----

def test_check_finds_renamed_accumulators(paddle, tmp_path, cli):
    from safetensors.numpy import save_file

    def optimizer_state(shift):
        with paddle.utils.unique_name.guard():
            for _ in range(shift):  # another model built first: counters move on (#32926)
                paddle.nn.Linear(2, 2)
            net = paddle.nn.Sequential(paddle.nn.Linear(4, 3), paddle.nn.Linear(3, 2))
            opt = paddle.optimizer.Momentum(0.1, parameters=net.parameters())
            net(paddle.rand([2, 4])).sum().backward()
            opt.step()
            return {k: np.array(v) for k, v in opt.state_dict().items()}

    expected, shifted = optimizer_state(0), optimizer_state(1)
    save_file(expected, str(tmp_path / "expected.safetensors"))
    save_file(shifted, str(tmp_path / "shifted.safetensors"))
    ok = cli("check", tmp_path / "expected.safetensors", tmp_path / "expected.safetensors", check=0)
    assert "restores cleanly" in ok.stdout
    bad = cli("check", tmp_path / "expected.safetensors", tmp_path / "shifted.safetensors", check=1)
    # The second model's layers are linear_1 and linear_2: linear_1's names now hold what the
    # expected linear_0 holds, so name matching restores the wrong shapes or nothing at all.
    lines = bad.stdout.splitlines()
    assert lines[0] == "missing: linear_0.b_0_velocity_0 (float32 [3]) -- in its place the " \
        "checkpoint has linear_1.b_0_velocity_0: the names differ only in their numbers " \
        "(unique_name counters, Paddle #32926)"
    assert lines[3].startswith("shape mismatch: linear_1.w_0_velocity_0: expected float32 [3, 2], "
                               "found float32 [4, 3] -- in its place the checkpoint has "
                               "linear_2.w_0_velocity_0")
    assert lines[5].startswith("unexpected: linear_2.w_0_velocity_0 (float32 [3, 2]) -- in its "
                               "place the model expects linear_1.w_0_velocity_0")
    assert lines[-1] == "4 expected, 4 in the checkpoint, 0 match; 2 missing, 2 unexpected, " \
        "2 mismatched"
    js = json.loads(cli("check", "--json", tmp_path / "expected.safetensors",
                        tmp_path / "shifted.safetensors", check=1).stdout)
    assert js["matched"] == 0 and len(js["issues"]) == 6
    assert js["issues"][0] == {"kind": "missing", "name": "linear_0.b_0_velocity_0",
                               "expected": "float32 [3]", "counterpart": "linear_1.b_0_velocity_0"}
