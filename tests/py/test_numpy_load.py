# SPDX-License-Identifier: Apache-2.0
"""The NumPy load path (pdckpt.load(..., return_numpy=True) and Tree.convert): arrays made in C
through NumPy's C API over the load's own memory.  Dtypes, shapes, byte order, sharing, what keeps
the memory alive, writeability, and that loading again and again does not grow the process."""

import gc
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pdckpt

# Every dtype NumPy has that the formats carry, with the dtype the load gives back.
PLAIN = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
         "uint32", "uint64", "bool", "complex64", "complex128"]


def sample(dtype, shape=(3, 5)):
    rng = np.random.default_rng(7)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.startswith("complex"):
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return rng.standard_normal(shape).astype(dtype)


@pytest.fixture(params=["x.pdparams", "x.safetensors"])
def fname(request):
    return request.param


def test_every_dtype_comes_back_as_saved(tmp_path, fname):
    # (safetensors has no complex dtype; a pickle refuses uint16, which paddle.load would read
    # back as bfloat16)
    skip = ("complex",) if fname.endswith(".safetensors") else ("uint16",)
    state = {f"t_{d}": sample(d) for d in PLAIN if not d.startswith(skip)}
    pdckpt.save(state, tmp_path / fname)
    back = pdckpt.load(tmp_path / fname, return_numpy=True)
    assert sorted(back) == sorted(state)
    for k, v in state.items():
        assert type(back[k]) is np.ndarray
        assert back[k].dtype == v.dtype and back[k].dtype.isnative, k
        assert back[k].shape == v.shape and back[k].flags.c_contiguous
        np.testing.assert_array_equal(back[k], v)


def test_bfloat16_raw_bits_or_exact(tmp_path, fname):
    ml_dtypes = pytest.importorskip("ml_dtypes")  # a dependency of the test venv (Paddle's too)
    arr = np.array([[1.5, -2.0, 3.25]], dtype=ml_dtypes.bfloat16)
    pdckpt.save({"w": arr}, tmp_path / fname)
    raw = pdckpt.load(tmp_path / fname, return_numpy=True)["w"]
    assert raw.dtype == np.uint16  # the bits, as Tensor.numpy() gives bfloat16
    np.testing.assert_array_equal(raw, arr.view(np.uint16))
    exact = pdckpt.load(tmp_path / fname, return_numpy=True, exact_dtypes=True)["w"]
    assert exact.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(exact.view(np.uint16), arr.view(np.uint16))


@pytest.mark.parametrize("shape", [(), (0,), (4, 0, 2), (1,), (2, 3, 4, 5, 1, 2),
                                   (2, 1, 1, 1, 1, 1, 1, 1, 1, 3)])
def test_shapes_zero_d_and_empty(tmp_path, fname, shape):
    arr = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    pdckpt.save({"a": arr, "b": np.ones(3, np.int64)}, tmp_path / fname)
    back = pdckpt.load(tmp_path / fname, return_numpy=True)
    assert back["a"].shape == shape and back["a"].dtype == np.float32
    np.testing.assert_array_equal(back["a"], arr)
    np.testing.assert_array_equal(back["b"], np.ones(3, np.int64))


def test_big_endian_pickle_arrays_come_back_native(tmp_path):
    arr = np.arange(12, dtype=">f4").reshape(3, 4)
    ints = np.arange(5, dtype=">i8")
    path = tmp_path / "be.pdparams"
    path.write_bytes(pickle.dumps({"f": arr, "i": ints}, protocol=2))
    back = pdckpt.load(path, return_numpy=True)
    assert back["f"].dtype == np.dtype("float32") and back["f"].dtype.isnative
    np.testing.assert_array_equal(back["f"], arr.astype("<f4"))
    np.testing.assert_array_equal(back["i"], ints.astype("<i8"))


def test_shared_array_stays_one_object(tmp_path):
    a = np.arange(6, dtype=np.float32)
    path = tmp_path / "shared.pdparams"
    path.write_bytes(pickle.dumps({"x": a, "y": a, "l": [a, a], "z": a.copy()}, protocol=4))
    back = pdckpt.load(path, return_numpy=True)
    assert back["x"] is back["y"] is back["l"][0] is back["l"][1]
    assert back["z"] is not back["x"]
    np.testing.assert_array_equal(back["z"], a)


def test_arrays_share_one_base_and_outlive_the_result(tmp_path, fname):
    state = {f"p{i}": np.full(256, i, np.float32) for i in range(200)}
    pdckpt.save(state, tmp_path / fname)
    back = pdckpt.load(tmp_path / fname, return_numpy=True)
    bases = {id(v.base) for v in back.values()}
    assert len(bases) == 1  # one holder of the read buffer, not one object per array
    base = next(iter(back.values())).base
    kept = back["p7"]
    holders = sys.getrefcount(base)
    del back
    gc.collect()
    assert sys.getrefcount(base) == holders - 199  # each array held one reference
    del base
    np.testing.assert_array_equal(kept, np.full(256, 7, np.float32))
    kept += 1  # still its own writable memory
    assert float(kept.sum()) == 256 * 8


def test_writeable_as_before(tmp_path, fname):
    pdckpt.save({"a": np.arange(4, dtype=np.float32), "b": np.ones(2)}, tmp_path / fname)
    read = pdckpt.load(tmp_path / fname, return_numpy=True)
    assert read["a"].flags.writeable and not read["a"].flags.owndata
    read["a"][0] = 42  # private memory: nothing else sees it
    again = pdckpt.load(tmp_path / fname, return_numpy=True)
    assert again["a"][0] == 0
    mapped = pdckpt.load(tmp_path / fname, return_numpy=True, mmap=True)
    assert not mapped["a"].flags.writeable
    np.testing.assert_array_equal(mapped["a"], np.arange(4, dtype=np.float32))
    data = (tmp_path / fname).read_bytes()
    from_bytes = pdckpt.load(data, return_numpy=True)
    assert not from_bytes["a"].flags.writeable
    np.testing.assert_array_equal(from_bytes["b"], np.ones(2))


def test_safetensors_arrays_are_aligned(tmp_path):
    state = {f"t{i}": sample(d) for i, d in enumerate(["float64", "int32", "float16", "uint8"])}
    pdckpt.save(state, tmp_path / "x.safetensors")
    back = pdckpt.load(tmp_path / "x.safetensors", return_numpy=True)
    assert all(v.flags.aligned for v in back.values())


def test_name_table_kept_only_when_asked(tmp_path):
    inner = {"StructuredToParameterName@@": {"w": "w_0"}, "w": np.ones(2, np.float32)}
    state = {"w": np.zeros(3, np.float32), "nested": inner}
    path = tmp_path / "t.pdparams"
    path.write_bytes(pickle.dumps({**state, "StructuredToParameterName@@": {"w": "linear_0.w_0"}},
                                  protocol=4))
    plain = pdckpt.load(path, return_numpy=True)
    assert sorted(plain) == ["nested", "w"]
    assert plain["nested"]["StructuredToParameterName@@"] == {"w": "w_0"}  # only the root's goes
    kept = pdckpt.load(path, return_numpy=True, keep_name_table=True)
    assert kept["StructuredToParameterName@@"] == {"w": "linear_0.w_0"}
    np.testing.assert_array_equal(kept["w"], plain["w"])


def test_repeated_loads_do_not_grow_memory(tmp_path):
    """1000 loads of a 200-tensor file in a fresh process: the resident set levels off (every
    array, base and tree is freed)."""
    path = tmp_path / "small.pdparams"
    pdckpt.save({f"p{i}": np.full(256, i, np.float32) for i in range(200)}, path)
    code = textwrap.dedent(f"""
        import ctypes, gc, pdckpt
        trim = ctypes.CDLL(None).malloc_trim
        def rss():
            # live memory: freed heap pages handed back first (glibc keeps them at its whim)
            trim(0)
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * 4096
        for i in range(1100):
            d = pdckpt.load({str(path)!r}, return_numpy=True)
            keep = d["p3"]
            del d
            if i == 100:
                gc.collect(); start = rss()
        gc.collect()
        print(rss() - start)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300)
    grown = int(out.stdout.strip())
    assert grown < 4 << 20, f"RSS grew by {grown} bytes over 1000 loads"


def test_safetensors_header_escapes_read_like_plain_text(tmp_path):
    """Names and fields read in place when plain; escaped or non-ASCII ones are decoded the same."""
    import json
    import struct

    data = np.arange(5, dtype=np.float32).tobytes()
    header = ('{"plain": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
              '"q\\"uote\\u00e9": {"dt\\u0079pe": "F\\u00332", "shape": [2], '
              '"data_offsets": [8, 16]}, "gr\u00fc\u00dfe": {"shape": [1], "dtype": "F32", '
              '"data_offsets": [16, 20], "extra": "ignored"}}').encode()
    assert json.loads(header)  # valid JSON
    path = tmp_path / "esc.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    back = pdckpt.load(path, return_numpy=True)
    assert sorted(back) == sorted(['plain', 'q"uote\u00e9', "gr\u00fc\u00dfe"])
    np.testing.assert_array_equal(back['q"uote\u00e9'], np.array([2, 3], np.float32))
    np.testing.assert_array_equal(back["plain"], np.array([0, 1], np.float32))
    np.testing.assert_array_equal(back["gr\u00fc\u00dfe"], np.array([4], np.float32))
    bad = header.replace(b'"F\\u00332"', b'"F\\u00333"')
    path.write_bytes(struct.pack("<Q", len(bad)) + bad + data)
    with pytest.raises(pdckpt.Error, match='unsupported dtype "F33"'):
        pdckpt.load(path, return_numpy=True)
