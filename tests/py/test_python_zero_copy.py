# SPDX-License-Identifier: Apache-2.0
"""Zero copy, measured: pdckpt.open (and pdckpt.load(mmap=True)) maps a 256 MiB file without its
data becoming resident until it is touched (RSS from /proc/self/status, in a fresh process);
arrays are views of the file (a byte changed in the file shows in them) and outlive the reader,
while a default pdckpt.load copies (issue 16: a later rewrite of the file cannot change it); saving borrows the arrays' and
Paddle tensors' memory (peak RSS does not grow by the data size); DLPack export to NumPy and to
Paddle, with the read-only flag."""
import gc
import json
import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

import pdckpt

MIB = 1 << 20
BIG = 256 * MIB

CHILD_PRELUDE = r"""
import json, sys
import numpy as np
import pdckpt

def vm(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)
"""

OPEN_CHILD = CHILD_PRELUDE + r"""
path, how, fmt = sys.argv[1], sys.argv[2], sys.argv[3]
extra = {"format": "combined", "names": ["w"]} if fmt == "combined" else {}
base = vm("VmRSS")
if how == "open":
    reader = pdckpt.open(path, **extra)
    t = reader.tensor("w")
    meta = [t.dtype, list(t.shape), t.nbytes, t.mapped, t.read_only]
    arr = reader["w"]
else:
    arr = pdckpt.load(path, return_numpy=True, mmap=True, **extra)["w"]
    meta = None
opened = vm("VmRSS")
total = float(arr.sum(dtype=np.float64))  # touches every page
touched = vm("VmRSS")
print(json.dumps({"opened": opened - base, "touched": touched - base, "total": total,
                  "meta": meta}))
"""


def run_child(code, *args, timeout=300):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def big_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("big")
    arr = np.full(BIG // 4, 0.5, dtype=np.float32)
    paths = {"safetensors": d / "big.safetensors", "combined": d / "big.pdiparams"}
    for path in paths.values():
        pdckpt.save({"w": arr}, path, durable=False)
    return paths


@pytest.mark.parametrize("fmt", ["safetensors", "combined"])
@pytest.mark.parametrize("how", ["open", "load"])
def test_mapped_data_is_not_resident_until_touched(big_files, fmt, how):
    got = run_child(OPEN_CHILD, big_files[fmt], how, fmt)
    assert got["opened"] < 16 * MIB, got  # metadata and one view: no data pages
    assert got["touched"] > BIG * 0.9, got  # the measurement does see the data once read
    assert got["total"] == BIG // 4 * 0.5
    if how == "open":
        assert got["meta"] == ["float32", [BIG // 4], BIG, True, True]


SAVE_CHILD = CHILD_PRELUDE + r"""
path, kind = sys.argv[1], sys.argv[2]
if kind == "numpy":
    obj = {"w": np.ones(int(sys.argv[3]) // 4, dtype=np.float32)}
else:
    import paddle
    n = int(sys.argv[3]) // 4
    obj = {"w": paddle.ones([n], dtype="float32"),
           "b": paddle.ones([n // 2], dtype="float32").astype("bfloat16")}
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets VmHWM (the peak) to the current RSS
before = vm("VmHWM")
pdckpt.save(obj, path, durable=False)
print(json.dumps({"peak_growth": vm("VmHWM") - before}))
"""


@pytest.mark.parametrize("kind,size", [("numpy", BIG), ("paddle", 128 * MIB)])
def test_save_writes_from_the_arrays_own_memory(tmp_path, kind, size):
    target = tmp_path / "out.safetensors"
    got = run_child(SAVE_CHILD, target, kind, size)
    assert got["peak_growth"] < 32 * MIB, got  # a copy of the state would be >= size
    assert target.stat().st_size > size


# ---- views -------------------------------------------------------------------------------------

def data_address(a):
    return a.__array_interface__["data"][0]


@pytest.fixture
def mapped_file(tmp_path):
    """A 1 MiB safetensors file (mapped: files under 64 KiB are read instead)."""
    arr = np.arange(MIB // 4, dtype=np.float32)
    path = tmp_path / "m.safetensors"
    pdckpt.save({"w": arr}, path)
    header = int.from_bytes(path.read_bytes()[:8], "little")
    return path, arr, 8 + header  # the only tensor's data starts right after the header


def poke(path, offset, value):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, np.float32(value).tobytes(), offset)
    finally:
        os.close(fd)


def test_arrays_are_read_only_views_of_the_file(mapped_file):
    path, arr, data_at = mapped_file
    reader = pdckpt.open(path)
    t = reader.tensor("w")
    a, b, c = reader["w"], t.numpy(), np.from_dlpack(t)
    assert t.mapped and t.read_only
    assert data_address(a) == data_address(b) == data_address(c)
    assert np.shares_memory(a, c)
    loaded = pdckpt.load(path, return_numpy=True, mmap=True)["w"]
    copied = pdckpt.load(path, return_numpy=True)["w"]  # the default: a private copy
    poke(path, data_at, 1234.5)  # the same page cache the mapping shows
    assert copied[0] == arr[0] and copied.flags.writeable
    for view in (a, b, c, loaded):
        assert view[0] == 1234.5 and view[1] == arr[1]
    for view in (a, b, c, loaded):
        assert not view.flags.writeable
        with pytest.raises(ValueError):
            view[0] = 1
        with pytest.raises(ValueError):
            view.flags.writeable = True


def test_arrays_outlive_the_reader(mapped_file):
    path, arr, _ = mapped_file
    with pdckpt.open(path) as reader:
        a = reader["w"]
        t = reader.tensor("w")
    assert reader.closed
    with pytest.raises(ValueError, match="closed"):
        reader["w"]
    del reader
    gc.collect()
    np.testing.assert_array_equal(a, arr)
    np.testing.assert_array_equal(np.from_dlpack(t), arr)  # the Tensor holds the mapping too


def test_mmap_false_gives_private_writable_arrays(mapped_file):
    path, arr, data_at = mapped_file
    a = pdckpt.load(path, return_numpy=True, mmap=False)["w"]
    assert a.flags.writeable
    a[0] = -1
    poke(path, data_at + 4, 99.0)
    assert a[1] == arr[1]  # a private copy: the file's change does not show
    assert pdckpt.load(path, return_numpy=True)["w"][0] == arr[0]  # nor does ours in the file


def test_bytes_sources_are_viewed_not_copied(mapped_file):
    path, arr, _ = mapped_file
    data = path.read_bytes()
    a = pdckpt.load(data, return_numpy=True)["w"]
    assert np.shares_memory(a, np.frombuffer(data, dtype=np.uint8))
    assert not a.flags.writeable
    np.testing.assert_array_equal(a, arr)


def test_reader_api(tmp_path):
    state = {"a": np.ones(2, np.float32), "b": np.zeros((1, 2), np.int64)}
    pdckpt.save(state, tmp_path / "m.safetensors")
    with pdckpt.open(tmp_path / "m.safetensors") as r:
        assert r.format == "safetensors" and len(r) == 2 and sorted(r.keys()) == ["a", "b"]
        assert "a" in r and "z" not in r and [] not in r and list(r) == r.keys()
        assert r.kind("b") == "tensor" and r.get("z", 5) == 5
        assert {k: v.shape for k, v in r.items()} == {"a": (2,), "b": (1, 2)}
        t = r.tensor("b")
        assert (t.dtype, t.shape, t.nbytes, t.itemsize, t.name, t.lod) == \
            ("int64", (1, 2), 16, 8, None, [])
        assert repr(t) == "pdckpt.Tensor(name=None, dtype=int64, shape=(1, 2))"
        with pytest.raises(KeyError):
            r["z"]
    pdckpt.save(state, tmp_path / "m.pdiparams")
    with pdckpt.open(tmp_path / "m.pdiparams") as r:  # no names: a list, keyed by position
        assert r.format == "combined" and r.keys() == [0, 1]
        np.testing.assert_array_equal(r[1], state["b"])  # combined files are sorted by name
    pdckpt.save(state["b"], tmp_path / "b.pdtensor", use_binary_format=True)
    with pdckpt.open(tmp_path / "b.pdtensor") as r:  # one tensor: one entry
        assert r.format == "tensor" and r.keys() == [""]
        np.testing.assert_array_equal(r[""], state["b"])


# ---- DLPack ------------------------------------------------------------------------------------

def test_dlpack_capsules_and_flags(mapped_file):
    path, arr, _ = mapped_file
    t = pdckpt.open(path).tensor("w")
    assert t.__dlpack_device__() == (1, 0)
    assert "dltensor_versioned" in repr(t.__dlpack__(max_version=(1, 0)))
    # The legacy struct cannot say "read-only": mapped data is only handed out as a copy.
    assert '"dltensor"' in repr(t.__dlpack__())
    with pytest.raises(BufferError, match="read-only"):
        t.__dlpack__(copy=False)
    with pytest.raises(BufferError, match="CPU"):
        t.__dlpack__(max_version=(1, 0), dl_device=(2, 0))
    legacy = np.from_dlpack(t, copy=True)
    assert data_address(legacy) != data_address(t.numpy())
    np.testing.assert_array_equal(legacy, arr)
    assert legacy.flags.writeable


def test_dlpack_to_paddle(tmp_path):
    state = {"w": np.arange(MIB // 4, dtype=np.float32).reshape(256, -1),
             "bf": paddle.to_tensor(np.linspace(-2, 2, 64 * 1024, dtype=np.float32))
             .astype("bfloat16")}
    pdckpt.save(state, tmp_path / "m.safetensors")
    reader = pdckpt.open(tmp_path / "m.safetensors")
    w = paddle.utils.dlpack.from_dlpack(reader.tensor("w"))
    np.testing.assert_array_equal(w.numpy(), state["w"])
    # Paddle takes the versioned capsule without copying (and ignores the read-only flag, so
    # such a tensor must not be written in place) ...
    assert w.data_ptr() == data_address(reader["w"])
    # ... and copies when asked to.
    w2 = paddle.utils.dlpack.from_dlpack(reader.tensor("w"), copy=True)
    assert w2.data_ptr() != data_address(reader["w"])
    w2[0, 0] = 42.0
    assert reader["w"][0, 0] == 0.0
    bf = paddle.utils.dlpack.from_dlpack(reader.tensor("bf"))
    assert bf.dtype == paddle.bfloat16
    np.testing.assert_array_equal(bf.astype("float32").numpy(),
                                  state["bf"].astype("float32").numpy())


def test_small_files_are_read_not_mapped(tmp_path):
    pdckpt.save({"w": np.ones(4, np.float32)}, tmp_path / "s.safetensors")
    t = pdckpt.open(tmp_path / "s.safetensors").tensor("w")
    assert not t.mapped and t.read_only
    assert not np.from_dlpack(t).flags.writeable
