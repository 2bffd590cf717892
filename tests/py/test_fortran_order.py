# SPDX-License-Identifier: Apache-2.0
"""Fortran-order (column-major) arrays, judged by real Paddle 3.x.  paddle.save pickles an ndarray
as numpy's reduce gives it: np.array() of a transposed paddle.Tensor, or an F-contiguous NumPy
array, is F- and not C-contiguous, so its state is (1, shape, dtype, is_fortran=True, the memory as
it is).  pdckpt.save writes those bytes (no C-order copy), in every protocol and layout; the
formats that store C order (tensor streams, combined, safetensors, ...) get C order; and
Paddle's Fortran-order pickles load, list, hash and convert with their values exact."""
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest

import pdckpt
from conftest import PDCKPT_BIN, run_cli

NUMPY_MODULE = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"


def views():
    """Strided paddle.Tensors: F-contiguous permutations, ones that are neither C nor F, and the
    size-1 / empty shapes where numpy calls the array C-contiguous too (is_fortran False)."""
    a = paddle.arange(24, dtype="float32")
    return {
        "T 2-D": a.reshape([4, 6]).T,
        "reversed 3-D": a.reshape([2, 3, 4]).transpose([2, 1, 0]),
        "reversed 4-D int64": a.astype("int64").reshape([1, 2, 3, 4]).transpose([3, 2, 1, 0]),
        "perm 021 (neither)": a.reshape([2, 3, 4]).transpose([0, 2, 1]),
        "perm 102 (neither)": a.reshape([2, 3, 4]).transpose([1, 0, 2]),
        "T of 1xN": a[:3].reshape([1, 3]).T,
        "T of Nx1": a[:3].reshape([3, 1]).T,
        "column slice": a.reshape([4, 6])[:, ::2],
        "T of a column slice": a.reshape([4, 6])[:, ::2].T,
        "T bfloat16": a.reshape([4, 6]).astype("bfloat16").T,
        "T bool": (a.reshape([4, 6]) > 3).T,
        "T complex64": paddle.complex(a.reshape([4, 6]), -a.reshape([4, 6])).T,
        "T empty": paddle.zeros([0, 3]).T,
    }


# The views np.array() gives as F- and not C-contiguous (the others: C order, or strided).
FORTRAN_VIEWS = {"T 2-D", "reversed 3-D", "reversed 4-D int64", "T bfloat16", "T bool",
                 "T complex64"}


def arrays():
    f = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    return {
        "asfortranarray 3-D": np.asfortranarray(f),
        "asfortranarray int32": np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)),
        "ndarray.T": np.arange(12, dtype=np.float32).reshape(3, 4).T,
        "F 1xN (C too)": np.asfortranarray(np.ones((1, 5), np.float32)),
        "F 0-d": np.asfortranarray(np.float32(3)),
        "F empty": np.asfortranarray(np.zeros((0, 4), np.float32)),
        "F column slice (F)": np.asfortranarray(f[0])[:, :2],
        "F row slice (neither)": np.asfortranarray(f[0])[:2, :],
    }


def both(tmp_path, obj, protocol, **kw):
    """paddle.save's and pdckpt.save's bytes of `obj`."""
    paddle.save(obj, str(tmp_path / "p.bin"), protocol=protocol)
    pdckpt.save(obj, tmp_path / "c.bin", protocol=protocol, numpy_module=NUMPY_MODULE, **kw)
    return (tmp_path / "p.bin").read_bytes(), (tmp_path / "c.bin").read_bytes()


def fortran_flags(data):
    """numpy's is_fortran of every array a pickle holds, in order."""
    flags = []

    def walk(o):
        if isinstance(o, np.ndarray):
            flags.append(o.flags.f_contiguous and not o.flags.c_contiguous)
        elif isinstance(o, dict):
            for v in o.values():
                walk(v)
        elif isinstance(o, (list, tuple)):
            for v in o:
                walk(v)
    walk(pickle.loads(data))
    return flags


def numpy_rule(arr):
    return arr.flags.f_contiguous and not arr.flags.c_contiguous


@pytest.mark.parametrize("protocol", [2, 3, 4])
@pytest.mark.parametrize("case", list(views()))
def test_strided_tensors_save_as_paddle_save(tmp_path, case, protocol):
    t = views()[case]
    contiguous = t.is_contiguous()
    for obj in ({"w": t, "b": paddle.ones([2])},            # a state dict (name table)
                {"m": {"w": t}, "l": [t, (1, t)]},          # paddle.save's generic path
                t):                                          # a bare tensor
        theirs, ours = both(tmp_path, obj, protocol)
        assert ours == theirs, (case, type(obj))
    assert t.is_contiguous() == contiguous  # the caller's view is left as it was
    want = numpy_rule(np.array(t.cpu()))
    assert fortran_flags(theirs) == [want]  # the case is what its name says
    assert want == (case in FORTRAN_VIEWS)


@pytest.mark.parametrize("protocol", [2, 3, 4])
@pytest.mark.parametrize("case", list(arrays()))
def test_fortran_arrays_save_as_paddle_save(tmp_path, case, protocol):
    arr = arrays()[case]
    for obj, kw in (({"w": arr}, {"pickle_layout": "generic"}),  # arrays alone: paddle.save's
                    ({"w": arr, "t": paddle.ones([2])}, {}),      # beside a tensor
                    ([arr, {"x": arr}, (arr,)], {}), (arr, {})):
        theirs, ours = both(tmp_path, obj, protocol, **kw)
        assert ours == theirs, (case, obj if not isinstance(obj, np.ndarray) else "bare")
    assert fortran_flags(theirs) == [numpy_rule(arr)]


def test_memory_is_written_as_it_is(tmp_path):
    """No C-order copy: the payload is the F array's own memory, flagged."""
    arr = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    pdckpt.save([arr], tmp_path / "c.pdparams", numpy_module=NUMPY_MODULE)
    data = (tmp_path / "c.pdparams").read_bytes()
    raw = arr.T.tobytes()  # column-major memory: 0 3 1 4 2 5
    at = data.index(raw)
    assert data[at - 3:at] == b"\x88C\x18"  # NEWTRUE, SHORT_BINBYTES of 24
    assert raw != arr.tobytes()


def optimizer_state():
    paddle.seed(3)
    lin = paddle.nn.Linear(4, 3)
    sched = paddle.optimizer.lr.StepDecay(0.1, 1)
    opt = paddle.optimizer.Adam(sched, parameters=lin.parameters())
    lin(paddle.ones([2, 4])).mean().backward()
    opt.step()
    state = opt.state_dict()
    key = next(k for k in state if k.endswith("moment1_0") and "w_0" in k)
    state[key] = state[key].T  # an accumulator handed over as a transposed view
    return state, key


@pytest.mark.parametrize("protocol", [2, 4])
def test_optimizer_state_with_a_transposed_accumulator(tmp_path, protocol):
    state, key = optimizer_state()
    theirs, ours = both(tmp_path, state, protocol)
    assert ours == theirs
    got = paddle.load(str(tmp_path / "c.bin"))
    np.testing.assert_array_equal(got[key].numpy(), state[key].numpy())
    assert got["LR_Scheduler"] == state["LR_Scheduler"]


def test_static_mode_saves_as_paddle_save(tmp_path):
    """_legacy_static_save (static-graph mode) pickles np.array of each value: F order kept."""
    t, arr = views()["T 2-D"], arrays()["asfortranarray 3-D"]
    paddle.enable_static()
    try:
        for obj, kw in (({"w": t}, {}), ({"a": arr}, {"pickle_layout": "generic"})):
            for protocol in (2, 4):
                theirs, ours = both(tmp_path, obj, protocol, **kw)
                assert ours == theirs, (list(obj), protocol)
    finally:
        paddle.disable_static()


@pytest.mark.parametrize("case", ["T 2-D", "reversed 3-D", "perm 021 (neither)"])
def test_binary_format_is_c_order_as_paddle_writes_it(tmp_path, case):
    t = views()[case]
    paddle.save(t, str(tmp_path / "p.bin"), use_binary_format=True)
    pdckpt.save(t, tmp_path / "c.bin", use_binary_format=True)
    assert (tmp_path / "c.bin").read_bytes() == (tmp_path / "p.bin").read_bytes()
    assert (tmp_path / "p.bin").read_bytes().endswith(np.ascontiguousarray(t.numpy()).tobytes())


def test_safetensors_of_a_transposed_tensor_is_c_order(tmp_path):
    """paddle.save(safetensors=True) refuses a non-contiguous tensor (safetensors' ValueError);
    pdckpt writes its values in C order, which safetensors itself and paddle.load read back."""
    from safetensors.numpy import load_file

    t = views()["reversed 3-D"]
    with pytest.raises(ValueError, match="non contiguous"):
        paddle.save({"w": t}, str(tmp_path / "p.safetensors"), safetensors=True)
    pdckpt.save({"w": t, "f": arrays()["asfortranarray 3-D"]}, tmp_path / "c.safetensors",
                safetensors=True)
    got = load_file(str(tmp_path / "c.safetensors"))
    np.testing.assert_array_equal(got["w"], t.numpy())
    np.testing.assert_array_equal(got["f"], arrays()["asfortranarray 3-D"])
    back = paddle.load(str(tmp_path / "c.safetensors"), safetensors=True)
    np.testing.assert_array_equal(back["w"].numpy(), t.numpy())


# ---- loading Paddle's Fortran-order pickles --------------------------------------------------

def paddle_files(tmp_path):
    """Paddle's pickles holding Fortran-order arrays: a state dict, a nested object, protocol 2."""
    v, a = views(), arrays()
    objs = {"state.pdparams": ({"t": v["T 2-D"], "r": v["reversed 4-D int64"],
                                "b": v["T bfloat16"], "n": v["perm 021 (neither)"]}, 4),
            "nested.pdparams": ({"m": {"t": v["reversed 3-D"]}, "a": [a["asfortranarray 3-D"]],
                                 "c": v["T complex64"]}, 4),
            "proto2.pdopt": ({"t": v["T 2-D"], "f": a["ndarray.T"], "x": paddle.ones([2])}, 2)}
    for name, (obj, protocol) in objs.items():
        paddle.save(obj, str(tmp_path / name), protocol=protocol)
    return list(objs)


def flat(tree, prefix=""):
    """{key path: value as a C-order NumPy array} of every tensor / array leaf."""
    out = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.update(flat(v, f"{prefix}{k}/"))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            out.update(flat(v, f"{prefix}{i}/"))
    elif isinstance(tree, paddle.Tensor):
        out[prefix[:-1]] = (str(tree.dtype).replace("paddle.", ""),
                            np.ascontiguousarray(tree.numpy()))
    elif isinstance(tree, np.ndarray):
        out[prefix[:-1]] = (tree.dtype.name, np.ascontiguousarray(tree))
    return out


def same(got, want):
    assert sorted(got) == sorted(want)
    for k in want:
        assert got[k][0] == want[k][0], k
        assert got[k][1].shape == want[k][1].shape and got[k][1].tobytes() == want[k][1].tobytes(), k


@pytest.mark.parametrize("return_numpy", [False, True])
def test_paddle_fortran_pickles_load_as_paddle_load(tmp_path, return_numpy):
    """Tensors (drop-in) and NumPy arrays: paddle.load's values, dtypes and shapes, and its
    arrays' memory order (F-ordered where numpy unpickles them so: a view of the file's bytes)."""
    for name in paddle_files(tmp_path):
        path = str(tmp_path / name)
        theirs = paddle.load(path, return_numpy=return_numpy)
        want = flat(theirs)
        order = [(a.flags.c_contiguous, a.flags.f_contiguous) for a in flat_arrays(theirs)]
        assert return_numpy is False or (False, True) in order  # the files hold F-order arrays
        for kw in ({}, {"mmap": True}):
            got = pdckpt.load(path, return_numpy=return_numpy, **kw)
            same(flat(got), want)
            assert [(a.flags.c_contiguous, a.flags.f_contiguous)
                    for a in flat_arrays(got)] == order, name
        reader = pdckpt.open(path)
        if name == "state.pdparams":  # lazy, entry by entry
            for key in ("t", "r", "n"):
                np.testing.assert_array_equal(np.asarray(reader[key]), want[key][1])


def flat_arrays(tree):
    if isinstance(tree, dict):
        return [a for v in tree.values() for a in flat_arrays(v)]
    if isinstance(tree, (list, tuple)):
        return [a for v in tree for a in flat_arrays(v)]
    return [tree] if isinstance(tree, np.ndarray) else []


@pytest.mark.parametrize("protocol", [2, 4])
def test_round_trips_both_ways(tmp_path, protocol):
    """paddle.save -> pdckpt.load -> pdckpt.save -> paddle.load, and pdckpt.save -> paddle.load:
    the values of every Fortran-order array survive."""
    state = {"t": views()["T 2-D"], "r": views()["reversed 3-D"], "x": paddle.ones([2])}
    paddle.save(state, str(tmp_path / "p.pdparams"), protocol=protocol)
    pdckpt.save(pdckpt.load(tmp_path / "p.pdparams"), tmp_path / "again.pdparams",
                protocol=protocol)
    pdckpt.save(state, tmp_path / "c.pdparams", protocol=protocol)
    want = flat(state)
    for name in ("again.pdparams", "c.pdparams"):
        for return_numpy in (False, True):
            same(flat(paddle.load(str(tmp_path / name), return_numpy=return_numpy)), want)
    arr = arrays()["asfortranarray 3-D"]
    buf = io.BytesIO()
    pdckpt.save({"a": arr, "n": [arr]}, buf, protocol=protocol)
    back = paddle.load(io.BytesIO(buf.getvalue()), return_numpy=True)
    np.testing.assert_array_equal(back["a"], arr)
    np.testing.assert_array_equal(back["n"][0], arr)


TARGETS = ["out.safetensors", "out.pdiparams", "vars_dir", "out.pdparams", "out.tnum"]


@pytest.mark.parametrize("target", TARGETS)
def test_convert_writes_c_order_values(tmp_path, target):
    """pdckpt convert of Paddle's Fortran-order pickle: each format's values are the array's, and
    those that store raw C-order bytes (safetensors, a combined file) hold exactly them."""
    state = {"t": views()["T 2-D"], "r": views()["reversed 4-D int64"],
             "b": views()["T bfloat16"]}
    src = tmp_path / "p.pdparams"
    paddle.save(state, str(src))
    out = tmp_path / target
    extra = ["--to", "vars-dir"] if target == "vars_dir" else []
    run_cli("convert", src, out, *extra, check=0)
    got = pdckpt.load(out, return_numpy=True)
    if isinstance(got, list):  # a combined file without a program: by name, byte-wise sorted
        got = dict(zip(sorted(state), got))
    for k, t in state.items():
        want = np.ascontiguousarray(t.numpy())
        assert got[k].tobytes() == want.tobytes() and got[k].shape == want.shape, k
        if target in ("out.safetensors", "out.pdiparams"):
            assert want.tobytes() in out.read_bytes(), k


def test_cli_ls_hash_diff_and_stats_see_values(tmp_path):
    """`ls --hash` hashes the C-order bytes (the values), `diff` finds Paddle's F-order file equal
    to a C-order file of the same values, `stats` reads the values."""
    t = views()["reversed 3-D"]
    paddle.save({"w": t}, str(tmp_path / "f.pdparams"))
    c = paddle.to_tensor(np.ascontiguousarray(t.numpy()))
    c.name = t.name
    paddle.save({"w": c}, str(tmp_path / "c.pdparams"))
    assert (tmp_path / "f.pdparams").read_bytes() != (tmp_path / "c.pdparams").read_bytes()
    ls = json.loads(run_cli("ls", "--json", "--hash", tmp_path / "f.pdparams", check=0).stdout)
    want = hashlib.sha256(np.ascontiguousarray(t.numpy()).tobytes()).hexdigest()
    assert [e["sha256"] for e in ls["tensors"]] == [want]
    run_cli("diff", tmp_path / "f.pdparams", tmp_path / "c.pdparams", check=0)
    other = paddle.to_tensor(np.ascontiguousarray(t.numpy()).reshape(-1)[::-1].reshape(t.shape))
    other.name = t.name
    paddle.save({"w": other}, str(tmp_path / "o.pdparams"))
    run_cli("diff", tmp_path / "f.pdparams", tmp_path / "o.pdparams", check=1)
    stats = json.loads(run_cli("stats", "--json", tmp_path / "f.pdparams", check=0).stdout)
    row = stats["tensors"][0]
    assert (row["min"], row["max"], row["mean"]) == (0, 23, 11.5)


PEAK = """import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024)"""


def peak_mib(*args):
    """The CLI's exit code and peak RSS (MiB) for one run, measured by a small Python between (a
    child's maxrss starts at its parent's RSS at the fork: this one's would be pytest's)."""
    out = subprocess.run([sys.executable, "-c", PEAK, str(PDCKPT_BIN), *map(str, args)],
                         capture_output=True, text=True, check=True, timeout=600).stdout.split()
    return int(out[0]), float(out[1])


def test_metadata_readers_and_writers_hold_no_c_copies(tmp_path):
    """ls, stats, verify and diff of a file of transposed tensors make no C-order copies (diff
    compares two of the same order as they are), and a convert writes each tensor's C order a
    chunk at a time: each peaks within a few MiB of the same command on the C-order file of the
    same values (they made a 32 MiB copy of every tensor, kept to the end)."""
    rng = np.random.default_rng(0)
    c = {f"w{i}": rng.standard_normal((512, 2048), dtype=np.float32) for i in range(8)}  # 32 MiB
    pdckpt.save({k: np.asfortranarray(v) for k, v in c.items()}, tmp_path / "f.pdparams")
    pdckpt.save(c, tmp_path / "c.pdparams")
    assert pdckpt.load(tmp_path / "f.pdparams", return_numpy=True)["w0"].flags.f_contiguous
    for cmd in (["ls"], ["stats"], ["verify"], ["diff", "{src}"], ["convert", "{name}.safetensors"],
                ["convert", "{name}.pdiparams"]):
        peaks = []
        for name in ("c", "f"):
            src = tmp_path / f"{name}.pdparams"
            args = [tmp_path / a.format(src=src, name=name) for a in cmd[1:]]
            rc, mib = peak_mib(cmd[0], src, *args)
            assert rc == 0, (cmd, name)
            peaks.append(mib)
        assert peaks[1] < peaks[0] + 12, (cmd, peaks)
        if cmd[0] == "convert":
            got = pdckpt.load(args[0], return_numpy=True)
            got = dict(zip(sorted(c), got)) if isinstance(got, list) else got
            assert all(got[k].tobytes() == v.tobytes() for k, v in c.items()), cmd


def test_diff_of_transposed_files_names_the_c_order_index(tmp_path):
    """Two files of the same memory order differing in one element: diff says so and gives its
    flat index in C order (the values' order, as for any other file pair)."""
    a = np.arange(24 * 30, dtype=np.float32).reshape(24, 30)
    b = a.copy()
    b[5, 7] = -1
    pdckpt.save({"w": np.asfortranarray(a)}, tmp_path / "a.pdparams")
    pdckpt.save({"w": np.asfortranarray(b)}, tmp_path / "b.pdparams")
    pdckpt.save({"w": b}, tmp_path / "bc.pdparams")
    run_cli("diff", tmp_path / "b.pdparams", tmp_path / "bc.pdparams", check=0)
    for other in ("b.pdparams", "bc.pdparams"):
        out = run_cli("diff", tmp_path / "a.pdparams", tmp_path / other, check=1).stdout
        assert "1 of 720 elements (first at flat index %d)" % (5 * 30 + 7) in out, out


def test_a_proc_file_is_refused_unread(tmp_path):
    """/proc files report st_size 0 (or a page) whatever they hold, and some never end: ls says
    what the file is (not "empty"), at once, and a load is refused the same way."""
    for path in ("/proc/self/mem", "/proc/self/status", "/sys/kernel/mm/transparent_hugepage/enabled"):
        if not os.path.exists(path):
            continue
        proc = run_cli("ls", path, timeout=60)
        assert proc.returncode != 0 and "empty" not in proc.stderr, proc.stderr
        assert "a file of /proc or /sys" in proc.stderr and "not read" in proc.stderr
    with pytest.raises(pdckpt.Error, match="/proc or /sys"):
        pdckpt.load("/proc/self/status")


def test_paddle18_save_dygraph_of_fortran_arrays(tmp_path):
    """Paddle 1.8's fluid.save_dygraph pickles F-contiguous arrays as numpy does (protocol 2,
    is_fortran): pdckpt writes those bytes (given 1.8's empty name table, as load_dygraph's
    keep_name_table returns it), loads 1.8's file exactly, and 1.8 loads pdckpt's."""
    from conftest import run_old_paddle

    worker = Path(__file__).with_name("fortran18_worker.py")
    run_old_paddle("18", worker, "write", tmp_path)
    want = dict(np.load(tmp_path / "f.npz"))
    ours = {**{k: np.asfortranarray(v) for k, v in want.items()},
            "StructuredToParameterName@@": {}}
    assert not ours["w"].flags.c_contiguous
    pdckpt.save(ours, tmp_path / "c.pdopt", protocol=2, pickle_layout="state-dict",
                numpy_module="numpy.core")
    assert (tmp_path / "c.pdopt").read_bytes() == (tmp_path / "f.pdopt").read_bytes()
    pdckpt.save(ours, tmp_path / "c.pdparams", protocol=2, pickle_layout="state-dict",
                numpy_module="numpy.core")  # load_dygraph wants a .pdparams beside
    got = pdckpt.load(tmp_path / "f.pdopt", return_numpy=True)
    for k, v in want.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape
        assert got[k].tobytes() == np.ascontiguousarray(v).tobytes(), k
    assert run_old_paddle("18", worker, "read", tmp_path).stdout.strip() == "ok"


@pytest.mark.parametrize("fmt", ["tensor", "combined", "vars-dir", "safetensors", "tnum",
                                 "dygraph-dir", "safetensors-sharded", "pickle-sharded",
                                 "distcp"])
def test_python_save_of_fortran_arrays_to_c_order_formats(tmp_path, fmt):
    """Fortran-order arrays and transposed tensors handed to pdckpt.save for a format that stores
    C order: the values come back (the core gives every such writer C order)."""
    f = arrays()["asfortranarray 3-D"]
    t = views()["reversed 3-D"]
    state = {"f": f, "t": t, "n": views()["perm 021 (neither)"]}
    out = tmp_path / ("out.bin" if fmt in ("tensor", "combined", "tnum") else "out")
    if fmt == "tensor":
        pdckpt.save(f, out, format=fmt)
        got = {"f": pdckpt.load(out, return_numpy=True)}
    elif fmt == "distcp":  # paddle.Tensors only
        from pdckpt import distributed

        state["f"] = paddle.to_tensor(np.ascontiguousarray(f.transpose(2, 1, 0))).T
        distributed.save_state_dict(state, str(out))
        got = pdckpt.load(out, return_numpy=True)
    else:
        extra = {"max_shard_size": "1KB"} if fmt.endswith("-sharded") else {}
        pdckpt.save(state, out, format=fmt, **extra)
        got = pdckpt.load(out, return_numpy=True)
        if isinstance(got, list):  # combined: byte-wise sorted by name
            got = dict(zip(sorted(state), got))
        if fmt == "dygraph-dir":  # Paddle names, not keys
            key_of = {getattr(v, "name", k): k for k, v in state.items()}
            got = {key_of[name]: v for name, v in got.items()}
    assert f.flags.f_contiguous and not t.is_contiguous()  # the callers' objects as they were
    for k in got:
        want = np.asarray(state[k].numpy() if isinstance(state[k], paddle.Tensor) else state[k])
        assert got[k].shape == want.shape and got[k].tobytes() == np.ascontiguousarray(
            want).tobytes(), (fmt, k)
    assert len(got) == (1 if fmt == "tensor" else 3)


def order_of(a):
    return a.flags.c_contiguous, a.flags.f_contiguous


@pytest.mark.parametrize("layout", ["state dict", "generic"])
def test_own_fortran_saves_open_lazily_and_mapped_with_their_values(tmp_path, layout):
    """A save that writes a Fortran-order payload writes a version-4 lazy-open index, which marks
    each column-major tensor (version 3 has no such mark: a reader that knows only it parses the
    file); pdckpt.open makes its entries from the index, and every way of reading the file gives
    the values in the order a full load gives; C-order saves keep writing version 3."""
    x = paddle.arange(512 * 300, dtype="float32").reshape([512, 300])  # 600 KB a tensor
    state = {"t": x.T, "c": x + 1, "u": (x * 2).T}
    if layout == "generic":
        state["a"] = np.asfortranarray(x.numpy() - 1)
    path = tmp_path / "m.pdparams"
    side = tmp_path / "m.pdparams.pdkidx"
    pdckpt.save({"c": x + 1, "d": x}, path)
    assert side.read_bytes()[:8] == b"PDKIDX3\n"  # C order: the version older readers know
    pdckpt.save(state, path)
    assert side.read_bytes()[:8] == b"PDKIDX4\n"
    lazy = pdckpt._native.open_lazy(str(path))
    assert lazy is not None and len(lazy) == len(state) + (layout == "state dict")
    want = {k: np.asarray(v.numpy() if isinstance(v, paddle.Tensor) else v)
            for k, v in state.items()}
    full = pdckpt.load(path, return_numpy=True, mmap=True, verify=True)  # verify: a parse
    reader = pdckpt.open(path)
    for k, v in want.items():
        got = reader[k]
        np.testing.assert_array_equal(got, v)
        assert order_of(got) == order_of(full[k]) == order_of(v), k
    assert order_of(want["t"]) == (False, True)
    for kw in ({"mmap": True}, {}):
        got = pdckpt.load(path, return_numpy=True, **kw)
        for k, v in want.items():
            np.testing.assert_array_equal(got[k], v)
            assert order_of(got[k]) == order_of(v), (kw, k)
    np.testing.assert_array_equal(paddle.load(str(path))["t"].numpy(), want["t"])


def test_index_versions_a_reader_does_not_know_are_parsed_not_misread(tmp_path):
    """An index of a version this reader does not know is not used (the pickle is parsed); a
    version-3 index carrying the column-major mark (which only version 4 may) is refused: the
    whole-tree open parses, and the lazy entry is CorruptError, never C order read wrongly."""
    x = np.arange(400 * 300, dtype=np.float32).reshape(400, 300)
    path = tmp_path / "m.pdparams"
    pdckpt.save({"t": np.asfortranarray(x), "c": x}, path)
    side = tmp_path / "m.pdparams.pdkidx"
    idx = bytearray(side.read_bytes())
    assert idx[:8] == b"PDKIDX4\n"
    for digit, lazy_ok in ((b"9", False), (b"3", True)):
        idx[6:7] = digit
        side.write_bytes(idx)
        got = pdckpt.load(path, return_numpy=True, mmap=True)
        np.testing.assert_array_equal(got["t"], x)
        lazy = pdckpt._native.open_lazy(str(path))
        assert (lazy is not None) == lazy_ok
        if lazy_ok:
            with pytest.raises(pdckpt.CorruptError, match="not what pdckpt writes"):
                pdckpt.open(path)["t"]


@pytest.mark.parametrize("protocol", [2, 4])
def test_load_then_save_writes_what_paddle_writes(tmp_path, protocol):
    """A loaded Fortran-order array keeps its order, so: `pdckpt convert` of Paddle's pickle to a
    pickle gives Paddle's bytes back; load(return_numpy=True) then save, and load then save of
    tensors (contiguous, in Paddle as in pdckpt), write what paddle.load then paddle.save write."""
    v = views()
    state = {"t": v["T 2-D"], "r": v["reversed 4-D int64"], "c": v["T complex64"],
             "x": paddle.ones([2])}  # (bfloat16: return_numpy's uint16 is refused by design)
    src = tmp_path / "p.pdparams"
    paddle.save(state, str(src), protocol=protocol)
    run_cli("convert", src, tmp_path / "c.pdparams", "--protocol", protocol, "--numpy-module",
            NUMPY_MODULE, check=0)
    assert (tmp_path / "c.pdparams").read_bytes() == src.read_bytes()
    for return_numpy, kw in ((True, {"pickle_layout": "generic"}), (False, {})):
        paddle.save(paddle.load(str(src), return_numpy=return_numpy), str(tmp_path / "pp.bin"),
                    protocol=protocol)
        pdckpt.save(pdckpt.load(src, return_numpy=return_numpy), tmp_path / "cc.bin",
                    protocol=protocol, numpy_module=NUMPY_MODULE, **kw)
        assert (tmp_path / "cc.bin").read_bytes() == (tmp_path / "pp.bin").read_bytes(), \
            return_numpy
