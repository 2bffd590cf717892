# SPDX-License-Identifier: Apache-2.0
"""The Python module's API (pdckpt.save / load / open) through the formats the library writes
today (safetensors, combined, vars-dir, tensor): every dtype, shapes, paddle.Tensor names,
BytesIO, errors with their attributes, configs, atomic replacement.  Paddle is the real one in the
venv; bfloat16/float8 arrays come from ml_dtypes."""
import enum
import io
import os
import pickle

import ml_dtypes
import numpy as np
import paddle
import pytest

import pdckpt

# dtype -> a NumPy dtype holding it exactly.
DTYPES = {
    "bool": np.dtype(bool), "uint8": np.dtype(np.uint8), "int8": np.dtype(np.int8),
    "int16": np.dtype(np.int16), "uint16": np.dtype(np.uint16), "int32": np.dtype(np.int32),
    "uint32": np.dtype(np.uint32), "int64": np.dtype(np.int64), "uint64": np.dtype(np.uint64),
    "float16": np.dtype(np.float16), "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64), "complex64": np.dtype(np.complex64),
    "complex128": np.dtype(np.complex128), "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float8_e4m3fn": np.dtype(ml_dtypes.float8_e4m3fn),
    "float8_e5m2": np.dtype(ml_dtypes.float8_e5m2),
}
# Facts of the formats: Paddle's VarType has no uint16/32/64, safetensors no complex128.
CANNOT_HOLD = {
    "safetensors": {"complex128"},
    "combined": {"uint16", "uint32", "uint64"},
    "vars-dir": {"uint16", "uint32", "uint64"},
    "tensor": {"uint16", "uint32", "uint64"},
}
TARGETS = {"safetensors": "m.safetensors", "combined": "m.pdiparams", "vars-dir": "m_vars/",
           "tensor": "m.pdtensor"}
RAW_BITS = {"bfloat16": np.uint16, "float8_e4m3fn": np.int8, "float8_e5m2": np.int8}


def sample(dtype_name, shape, seed=0):
    """Deterministic values of every dtype (random bits for the float-ish ones)."""
    rng = np.random.default_rng(seed)
    dt = DTYPES[dtype_name]
    if dtype_name == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    raw = rng.integers(0, 256, size=int(np.prod(shape)) * dt.itemsize, dtype=np.uint8)
    arr = raw.view(dt).reshape(shape)
    if dt.kind in "fc" or dtype_name in RAW_BITS:  # keep NaN payloads out of == comparisons
        wide = arr.astype(np.float64 if dt.kind != "c" else np.complex128)
        arr = np.asarray(np.nan_to_num(wide)).astype(dt).reshape(shape)
    return arr


def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def save_one(tmp_path, fmt, obj, **kw):
    target = os.path.join(str(tmp_path), TARGETS[fmt])  # keeps the trailing '/' of a directory
    if fmt == "tensor":
        pdckpt.save(obj, target, use_binary_format=True, **kw)
    elif fmt == "vars-dir":  # a trailing '/' alone is refused, as paddle.save refuses it
        pdckpt.save(obj, target, format="vars-dir", **kw)
    else:
        pdckpt.save(obj, target, **kw)
    return target


@pytest.mark.parametrize("fmt", ["safetensors", "combined", "vars-dir"])
def test_every_dtype_round_trips_exactly(tmp_path, fmt):
    state = {f"t_{name}": sample(name, (3, 5), seed=i) for i, name in enumerate(DTYPES)
             if name not in CANNOT_HOLD[fmt]}
    names = sorted(state)
    target = save_one(tmp_path, fmt, state, durable=False)
    extra = {"names": names} if fmt == "combined" else {}
    exact = pdckpt.load(target, return_numpy=True, exact_dtypes=True, **extra)
    assert sorted(exact) == names
    for key, arr in state.items():
        assert same(exact[key], arr), key
    raw = pdckpt.load(target, return_numpy=True, **extra)
    for name, bits in RAW_BITS.items():  # default: the raw bits, as Tensor.numpy() gives them
        assert same(raw[f"t_{name}"], state[f"t_{name}"].view(bits))


@pytest.mark.parametrize("fmt", ["safetensors", "combined", "vars-dir"])
def test_a_dtype_the_format_cannot_hold_is_refused_and_nothing_written(tmp_path, fmt):
    name = sorted(CANNOT_HOLD[fmt])[0]
    with pytest.raises(pdckpt.UnsupportedError) as info:
        save_one(tmp_path, fmt, {"a": sample(name, (2,))})
    assert name in str(info.value) and info.value.status_name == "unsupported"
    assert os.listdir(tmp_path) == []  # no temporary left behind either


@pytest.mark.parametrize("fmt", ["safetensors", "combined", "vars-dir", "tensor"])
@pytest.mark.parametrize("shape", [(), (0,), (0, 3), (7,), (2, 3, 4), (1, 1, 1, 1, 2)])
def test_shapes_round_trip(tmp_path, fmt, shape):
    arr = sample("float32", shape, seed=len(shape))
    obj = arr if fmt == "tensor" else {"w": arr}
    # (One stream alone reads as a single-tensor file; format= makes it a one-entry list.)
    got = pdckpt.load(save_one(tmp_path, fmt, obj, durable=False), return_numpy=True,
                      format=fmt)
    got = got if fmt == "tensor" else (got[0] if fmt == "combined" else got["w"])
    assert same(got, arr)


def test_strided_and_big_endian_arrays_are_saved_by_value(tmp_path):
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    state = {"t": base.T, "s": base[::2, 1::3], "be": base.astype(">f8")}
    pdckpt.save(state, tmp_path / "x.safetensors")
    got = pdckpt.load(tmp_path / "x.safetensors", return_numpy=True)
    np.testing.assert_array_equal(got["t"], base.T)
    np.testing.assert_array_equal(got["s"], base[::2, 1::3])
    assert got["be"].dtype == np.float64 and np.array_equal(got["be"], base)


def test_nested_structures_flatten_into_flat_formats(tmp_path):
    obj = {"model": {"fc": {"w": np.ones((2, 2), np.float32)}, "blocks": [np.zeros(3, np.int64)]},
           "epoch": 3, "note": "x", "opt": (np.full(2, 7, np.int8),)}
    with pytest.warns(UserWarning, match=r"dropped 2 value\(s\): epoch \(int\), note \(string\)"):
        pdckpt.save(obj, tmp_path / "x.safetensors", skip_non_tensors=True)
    got = pdckpt.load(tmp_path / "x.safetensors", return_numpy=True)
    assert sorted(got) == ["model.blocks.0", "model.fc.w", "opt.0"]
    assert same(got["model.fc.w"], obj["model"]["fc"]["w"])
    assert same(got["opt.0"], obj["opt"][0])
    # Paddle's tensor files hold a flat list of tensors only: nesting and values are refused
    with pytest.raises(pdckpt.UnsupportedError, match="nested dict at 'model'"):
        pdckpt.save(obj, tmp_path / "y.pdiparams")
    with pytest.raises(pdckpt.UnsupportedError, match="found a int at 'epoch'"):
        pdckpt.save({"w": obj["opt"][0], "epoch": 3}, tmp_path / "y.pdiparams")
    # safetensors keeps the whole tree in __metadata__["pdckpt.tree"] (issue 19 item 2)
    pdckpt.save(obj, tmp_path / "y.safetensors")
    back = pdckpt.load(tmp_path / "y.safetensors", return_numpy=True)
    assert back["epoch"] == 3 and back["note"] == "x" and isinstance(back["opt"], tuple)
    assert same(back["model"]["fc"]["w"], obj["model"]["fc"]["w"])
    assert same(back["model"]["blocks"][0], obj["model"]["blocks"][0])


def test_safetensors_metadata_is_a_dict_of_strings(tmp_path):
    obj = {"__metadata__": {"format": "pd", "step": "10"}, "w": np.ones(2, np.float32)}
    pdckpt.save(obj, tmp_path / "m.safetensors")
    got = pdckpt.load(tmp_path / "m.safetensors", return_numpy=True)
    assert list(got) == ["w"]  # strings about the file, not a tensor key (issue 21)
    with pdckpt.open(tmp_path / "m.safetensors") as reader:
        assert reader.metadata() == {"format": "pd", "step": "10"}


def test_one_array_under_two_keys_is_saved_twice(tmp_path):
    a = np.arange(4, dtype=np.float32)
    pdckpt.save({"x": a, "y": a}, tmp_path / "m.safetensors")
    got = pdckpt.load(tmp_path / "m.safetensors", return_numpy=True)
    assert same(got["x"], a) and same(got["y"], a)


def test_numpy_scalars_and_int_subclasses_are_values(tmp_path):
    class Step(enum.IntEnum):
        TEN = 10
    obj = {"w": np.ones(1, np.float32), "lr": np.float32(0.5), "step": Step.TEN}
    # The flat formats keep tensors only; the values were converted (not refused as objects).
    pdckpt.save(obj, tmp_path / "m.safetensors", skip_non_tensors=True)
    assert sorted(pdckpt.load(tmp_path / "m.safetensors", return_numpy=True)) == ["w"]


def test_unsupported_objects_and_values_raise_before_writing(tmp_path):
    target = tmp_path / "m.safetensors"
    with pytest.raises(TypeError, match="cannot save objects of type paddle.nn"):
        pdckpt.save({"layer": paddle.nn.Linear(2, 2)}, target)
    with pytest.raises(pdckpt.UnsupportedError, match="stores only tensors"):
        pdckpt.save({"big": 2**70}, tmp_path / "m.pdiparams")  # beyond 64 bits: no tensor
    assert not (tmp_path / "m.pdiparams").exists()
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="contains itself"):
        pdckpt.save({"loop": loop}, target, skip_non_tensors=True)
    with pytest.raises(TypeError, match="cannot save dtype"):  # (str arrays: as numpy pickles)
        pdckpt.save({"s": np.array(["a", None], dtype=object)}, target)
    assert not target.exists()


def test_opaque_objects_reach_the_library(tmp_path):
    obj = pdckpt.OpaqueObject("newobj", "mymod", "Config", args=(), state={"lr": 0.1})
    assert obj.qualname == "mymod.Config" and "newobj mymod.Config" in repr(obj)
    with pytest.raises(ValueError):
        pdckpt.OpaqueObject("exec", "os", "system")
    # Paddle's tensor files hold tensors only: the object got through conversion and the format
    # refused it; safetensors carries it in its metadata and gives it back.
    with pytest.raises(pdckpt.UnsupportedError, match="found a object at 'cfg'"):
        pdckpt.save({"cfg": obj, "w": np.ones(1)}, tmp_path / "m.pdiparams")
    pdckpt.save({"cfg": obj, "w": np.ones(1)}, tmp_path / "m.safetensors")
    back = pdckpt.load(tmp_path / "m.safetensors", return_numpy=True)["cfg"]
    assert (back.kind, back.qualname, back.args, back.state) == ("newobj", "mymod.Config", (),
                                                                 {"lr": 0.1})


# ---- paddle.Tensor in, named tensors out ----------------------------------------------------

def paddle_state():
    paddle.seed(1)
    lin = paddle.nn.Linear(4, 3)
    state = dict(lin.state_dict())
    for dtype in ("bfloat16", "float8_e4m3fn", "float8_e5m2", "float16", "int8", "bool",
                  "complex64", "int64"):
        src = paddle.to_tensor(np.linspace(-3, 3, 6, dtype=np.float32).reshape(2, 3))
        t = src.astype(dtype) if dtype != "complex64" else paddle.complex(src, -src)
        t.name = f"var_{dtype}"
        state[f"t_{dtype}"] = t
    state["scalar"] = paddle.to_tensor(np.float64(2.5))
    return state


def as_f32(t):
    if t.dtype == paddle.bool:
        return t.astype("int32").numpy()
    if t.dtype in (paddle.complex64, paddle.complex128):
        return t.numpy()
    return t.astype("float32").numpy()


@pytest.mark.parametrize("fmt", ["vars-dir", "combined"])
def test_paddle_tensors_round_trip_with_names(tmp_path, fmt):
    state = paddle_state()
    target = save_one(tmp_path, fmt, state)
    extra = {"names": sorted(state)} if fmt == "combined" else {}
    got = pdckpt.load(target, **extra)
    assert sorted(got) == sorted(state)
    if fmt == "vars-dir":
        # paddle.load of a directory (its _legacy_load) gives NumPy arrays, return_numpy or not,
        # in os.walk's order; float8 it cannot read (Paddle's np.array of a float8 tensor is
        # garbage), pdckpt gives the raw bits as every NumPy float8 load does
        theirs = paddle.load(str(target))
        assert list(got) == list(theirs)
        for key, t in state.items():
            assert isinstance(got[key], np.ndarray), key
            if "float8" not in key:
                assert got[key].dtype == theirs[key].dtype, key
                assert got[key].tobytes() == theirs[key].tobytes(), key
        return
    for key, t in state.items():
        out = got[key]
        assert isinstance(out, paddle.Tensor), key
        assert out.dtype == t.dtype and list(out.shape) == list(t.shape), key
        np.testing.assert_array_equal(as_f32(out), as_f32(t), err_msg=key)
        assert out.name == key  # these formats name each variable by its key


def test_paddle_tensors_through_safetensors_and_return_numpy(tmp_path):
    state = paddle_state()
    pdckpt.save(state, tmp_path / "m.safetensors")
    got = pdckpt.load(tmp_path / "m.safetensors")
    for key, t in state.items():
        assert got[key].dtype == t.dtype, key
        np.testing.assert_array_equal(as_f32(got[key]), as_f32(t), err_msg=key)
    arrays = pdckpt.load(tmp_path / "m.safetensors", return_numpy=True)
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    # As Paddle itself: a bfloat16 tensor's numpy() is its uint16 bits.
    assert same(arrays["t_bfloat16"], state["t_bfloat16"].numpy())
    np.testing.assert_array_equal(arrays["weight"], state["weight"].numpy())


def test_binary_tensor_files_interoperate_with_paddle(tmp_path):
    t = paddle.to_tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    ours = str(tmp_path / "ours.pdtensor")
    pdckpt.save(t, ours, use_binary_format=True)
    back = paddle.load(ours)  # Paddle's own reader of the binary tensor stream
    np.testing.assert_array_equal(back.numpy(), t.numpy())
    theirs = str(tmp_path / "theirs.pdtensor")
    paddle.save(t * 2, theirs, use_binary_format=True)
    got = pdckpt.load(theirs)
    assert isinstance(got, paddle.Tensor)
    np.testing.assert_array_equal(got.numpy(), t.numpy() * 2)
    assert same(pdckpt.load(theirs, return_numpy=True), (t * 2).numpy())


# ---- file objects and bytes -------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["safetensors", "combined", "tensor"])
def test_bytesio_targets_and_sources(tmp_path, fmt):
    arr = sample("float32", (4, 4), seed=3)
    obj = arr if fmt == "tensor" else {"w": arr}
    buf = io.BytesIO()
    pdckpt.save(obj, buf, format=fmt)
    pdckpt.save(obj, tmp_path / "f", format=fmt)
    assert buf.getvalue() == (tmp_path / "f").read_bytes()  # same bytes as a file save
    for source in (io.BytesIO(buf.getvalue()), buf.getvalue(), bytearray(buf.getvalue()),
                   memoryview(buf.getvalue())):
        got = pdckpt.load(source, return_numpy=True, format=fmt)
        got = got if fmt == "tensor" else (got[0] if fmt == "combined" else got["w"])
        assert same(got, arr)


def test_a_file_object_that_writes_in_pieces(tmp_path):
    class Trickle(io.RawIOBase):
        def __init__(self):
            self.parts = []

        def writable(self):
            return True

        def write(self, b):
            n = min(len(b), 7)
            self.parts.append(bytes(b[:n]))
            return n

    sink = Trickle()
    pdckpt.save({"w": np.arange(10, dtype=np.int32)}, sink, format="safetensors")
    got = pdckpt.load(b"".join(sink.parts), return_numpy=True)
    assert same(got["w"], np.arange(10, dtype=np.int32))


# ---- errors -----------------------------------------------------------------------------------

def test_missing_file_is_not_found_with_errno(tmp_path):
    missing = tmp_path / "nope.pdparams"
    with pytest.raises(pdckpt.NotFoundError) as info:
        pdckpt.load(missing)
    e = info.value
    assert isinstance(e, FileNotFoundError) and isinstance(e, pdckpt.Error)
    assert (e.status, e.status_name, e.errno) == (6, "not_found", 2)
    assert e.source == str(missing) and e.offset is None
    assert str(e).startswith(f"{missing}: ") and e.message in str(e)


def test_corrupt_file_gives_format_error_with_offset(tmp_path):
    good = tmp_path / "m.safetensors"
    pdckpt.save({"w": np.ones(4, np.float32)}, good)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(good.read_bytes()[:-3])
    with pytest.raises(pdckpt.FormatError) as info:
        pdckpt.load(bad)
    e = info.value
    assert isinstance(e, ValueError) and e.status_name == "format" and e.errno is None
    assert e.source == str(bad) and isinstance(e.offset, int) and e.offset > 0
    assert str(e) == f"{bad}: offset {e.offset}: {e.message}"
    assert "expected data_offsets within" in e.message
    with pytest.raises(pdckpt.FormatError) as info:
        pdckpt.load(b"\x00" * 3)
    assert info.value.source == "<memory>"


def test_every_status_has_its_class():
    for status, name in pdckpt._native.status_names().items():
        if status == 0:
            continue
        cls = pdckpt._errors.BY_STATUS[status]
        assert issubclass(cls, pdckpt.Error), name
        assert cls.__name__.lower().startswith(name.replace("_", "")[:4]), (cls, name)


def test_configs_are_checked_like_paddle(tmp_path):
    with pytest.raises(ValueError, match=r"config \(bogus\)"):
        pdckpt.save({}, tmp_path / "a.safetensors", bogus=1)
    with pytest.raises(ValueError, match=r"config \(bogus\)"):
        pdckpt.load(tmp_path / "a.safetensors", bogus=1)
    with pytest.raises(ValueError, match="protocol"):
        pdckpt.save({}, tmp_path / "a.safetensors", protocol=5)
    with pytest.raises(ValueError, match="unknown format"):
        pdckpt.save({}, tmp_path / "a.bin", format="zip")


def test_formats_and_format_for_path():
    caps = pdckpt.formats()
    for name in ("tensor", "combined", "vars-dir", "safetensors"):
        assert caps[name] == (True, True), name
    assert pdckpt.format_for_path("a/m.pdiparams") == "combined"
    assert pdckpt.format_for_path("a/m.safetensors") == "safetensors"
    assert pdckpt.format_for_path("a/m.pdparams") == "pickle"
    assert pdckpt.format_for_path("a/dir/") == "vars-dir"
    assert pdckpt.format_for_path("a/m.bin") is None


# ---- atomic, durable saves --------------------------------------------------------------------

def test_failed_save_leaves_the_old_file(tmp_path):
    target = tmp_path / "m.pdiparams"
    pdckpt.save({"w": np.ones(3, np.float32)}, target)
    before = target.read_bytes()
    with pytest.raises(pdckpt.UnsupportedError):
        pdckpt.save({"a": np.ones(2, np.float32), "b": np.ones(2, np.uint32)}, target)
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["m.pdiparams"]
    pdckpt.save({"w": np.zeros(3, np.float32)}, target, durable=False)
    got = pdckpt.load(target, return_numpy=True, format="combined", names=["w"])
    assert same(got["w"], np.zeros(3, np.float32))


def test_save_creates_parent_directories_like_paddle(tmp_path):
    target = tmp_path / "a" / "b" / "m.safetensors"
    pdckpt.save({"w": np.ones(1)}, target)
    assert target.is_file()


# ---- Paddle's inference-model naming ----------------------------------------------------------

def test_params_filename_and_names_in_a_directory(tmp_path):
    state = {"fc_0.b_0": np.ones(3, np.float32), "fc_0.w_0": np.eye(3, dtype=np.float32)}
    pdckpt.save(state, tmp_path / "__params__", format="combined")
    got = pdckpt.load(tmp_path, params_filename="__params__", names=sorted(state))
    assert [t.name for t in got.values()] == sorted(state)
    np.testing.assert_array_equal(got["fc_0.w_0"].numpy(), state["fc_0.w_0"])
    # A prefix finds <prefix>.pdiparams, as paddle.load does for jit/inference saves.
    pdckpt.save(state, tmp_path / "inference.pdiparams")
    got = pdckpt.load(tmp_path / "inference", names=sorted(state), return_numpy=True)
    assert same(got["fc_0.b_0"], state["fc_0.b_0"])


# ---- what paddle.load makes of a loaded object (checked against Paddle's own code) ---------------

def paddle_oracle(obj, return_numpy):
    """Paddle 3's post-pickle step of paddle.load, applied to an already unpickled object."""
    from paddle.framework import io as pio
    if isinstance(obj, dict) and pdckpt._convert.NAME_TABLE in obj:
        for key, name in obj[pdckpt._convert.NAME_TABLE].items():
            if isinstance(obj[key], np.ndarray):
                obj[key] = pio._ndarray_to_tensor(obj[key], return_numpy)
                if not return_numpy:
                    obj[key].name = name
        del obj[pdckpt._convert.NAME_TABLE]
        return obj
    return pio._parse_load_result(obj, return_numpy)


def describe(obj):
    """Structure, types, names and values, comparable across the two conversions."""
    if isinstance(obj, paddle.Tensor):
        return ("tensor", obj.name if not obj.name.startswith("generated") else "?",
                str(obj.dtype), obj.numpy().tolist())
    if isinstance(obj, np.ndarray):
        return ("ndarray", str(obj.dtype), obj.tolist())
    if isinstance(obj, dict):
        return {k: describe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [describe(v) for v in obj])
    return obj


def loaded_objects():
    a = lambda *v: np.array(v, dtype=np.float32)  # noqa: E731
    return {
        "state_dict": {"w": a(1, 2), "b": a(3), "LR_Scheduler": {"last_epoch": 3},
                       pdckpt._convert.NAME_TABLE: {"w": "fc_0.w_0", "b": "fc_0.b_0"}},
        "generic": {"model": {"w": ("linear_0.w_0", a(1))}, "plain": a(5), "epoch": 4,
                    "hist": [("t_1", a(2, 2)), "x"], "pair": ("not", "tensor")},
        "arrays_only": {"x": a(1), "y": [a(2), {"z": a(3)}], "n": None},
        "bare_array": a(7, 8),
    }


@pytest.mark.parametrize("case", sorted(loaded_objects()))
@pytest.mark.parametrize("return_numpy", [False, True])
def test_load_result_matches_paddles_rules(case, return_numpy):
    # The rules are applied by the C conversion pass itself (py_paddle.c), for Tensors and for
    # return_numpy alike: what it gives must be what Paddle's own post-pickle step gives.
    data = pickle.dumps(loaded_objects()[case], protocol=4)
    ours = pdckpt.load(data, return_numpy=return_numpy)
    theirs = paddle_oracle(loaded_objects()[case], return_numpy)
    assert describe(ours) == describe(theirs)


def test_keep_name_table_and_carried_names():
    data = pickle.dumps(loaded_objects()["state_dict"], protocol=4)
    out = pdckpt.load(data, keep_name_table=True)
    assert out[pdckpt._convert.NAME_TABLE] == {"w": "fc_0.w_0", "b": "fc_0.b_0"}
    assert out["w"].name == "fc_0.w_0"
    assert pdckpt._convert.NAME_TABLE not in pdckpt.load(data)
    # The bits of a bfloat16 tensor named "emb", in Paddle's (name, ndarray) form.
    data = pickle.dumps({"e": ("emb", np.ones(2, np.uint16))}, protocol=4)
    out = pdckpt.load(data)
    assert out["e"].name == "emb" and out["e"].dtype == paddle.bfloat16
    out = pdckpt.load(data, return_numpy=True)
    assert out["e"].dtype == np.uint16 and out["e"].tolist() == [1, 1]
