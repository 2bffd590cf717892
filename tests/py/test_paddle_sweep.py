# SPDX-License-Identifier: Apache-2.0
"""pdckpt.save / pdckpt.load as drop-ins for paddle.save / paddle.load, swept against real Paddle
3.x in this process over what the earlier interop tests did not cover: objects that are not
state dicts (bare tensors, lists, tuples, int and other non-str keys, a str / int / None at the
top, NumPy arrays beside tensors and inside a state dict's nested dicts, numpy scalars of every
width), protocols 2-4, return_numpy and keep_name_table, optimizer states with master weights of
float16 / bfloat16 parameters and every LR scheduler (LinearWarmup around another, nested;
ReduceOnPlateau), GradScaler, use_binary_format of every dtype (0-d and empty too), strided
inputs, static-graph mode, safetensors=True, and directories / inference-model prefixes.

Each case is written by paddle.save and by pdckpt.save: the files must be byte-identical, and
paddle.load and pdckpt.load of Paddle's file must give the same objects -- types (dict vs
OrderedDict, list vs tuple, int vs numpy scalar vs tensor), keys and their order, nesting, tensor
dtype, shape, name, stop_gradient, and bytes (NaN payloads, -0.0).  Names Paddle makes up on load
(generated_tensor_N, eager_tmp_N) are counters and compared as such.  Where Paddle itself is wrong
the test says what pdckpt does instead (docs/python.md, "Where pdckpt differs from paddle.load")."""
import collections
import io
import re
import os
import warnings

import numpy as np
import pytest

warnings.filterwarnings("ignore")
import paddle  # noqa: E402

import pdckpt  # noqa: E402
from load_describe import describe  # noqa: E402

NP2 = int(np.__version__.split(".")[0]) >= 2
NUMPY_MODULE = "numpy._core" if NP2 else "numpy.core"  # what this NumPy's pickles name


def assert_same_load(path, cell, **configs):
    want = describe(paddle.load(str(path), **configs))
    got = describe(pdckpt.load(str(path), **configs))
    assert got == want, (cell, configs, next((g, w) for g, w in zip(got, want) if g != w)
                         if len(got) == len(want) else (len(got), len(want)))


def save_both(obj, tmp_path, stem, ours_only=None, **configs):
    """paddle.save and pdckpt.save of `obj`: (Paddle's file, pdckpt's file)."""
    theirs, ours = tmp_path / f"{stem}.paddle", tmp_path / f"{stem}.pdckpt"
    paddle.save(obj, str(theirs), **configs)
    pdckpt.save(obj, ours, numpy_module=NUMPY_MODULE, durable=False, **(ours_only or {}),
                **configs)
    return theirs, ours


def nan_payload():
    arr = np.array([np.nan, -0.0, np.inf, 1e-45], np.float32)
    arr.view(np.uint32)[0] = 0x7FC12345
    return arr


def objects():
    """The objects a Paddle user hands paddle.save, one case each."""
    paddle.seed(3)
    t = lambda *shape, dtype="float32": paddle.randn(list(shape) or [2]).astype(dtype)  # noqa
    lin = paddle.nn.Linear(3, 2)
    w = paddle.randn([3, 4])
    w.stop_gradient = False
    half = np.array([1.0, -0.0, 65504, 6e-8, np.inf, np.nan], np.float16)
    half.view(np.uint16)[-1] = 0x7D23  # a NaN with a payload
    return {
        "bare tensor": w,
        "bare parameter": lin.weight,
        "list of tensors": [t(2), t(3, dtype="int64")],
        "tuple": (t(2), 3, "x"),
        "nested": {"a": [(t(1), [1, 2.5]), {"b": (None, True)}]},
        "int keys": {1: t(2), 2: "x"},
        "other keys": {1: 1, "a": 2, 2.5: 3, (1, 2): 4, None: 5, True: 6},
        "str": "hello", "int": 42, "none": None, "negative zero": -0.0, "big int": 2**70,
        "top-level ndarray": np.arange(6).reshape(2, 3),
        "NaN payload": {"x": paddle.to_tensor(nan_payload()), "n": float("nan")},
        "numpy scalars": {"f16": [np.float16(x) for x in half], "f32": np.float32(1.5),
                          "f64": np.float64(2.0), "i8": np.int8(-3), "u8": np.uint8(200),
                          "u16": np.uint16(9), "u32": np.uint32(7), "u64": [np.uint64(2**63 - 1), np.uint64(2**64 - 1)],
                          "i64": np.int64(3), "b": np.bool_(True), "c64": np.complex64(1 - 2j),
                          "c128": [np.complex128(-0.0 + 3j)]},
        "0-d": {"a": paddle.to_tensor(3.0), "b": paddle.to_tensor(5, dtype="int64")},
        "zero-size": {"a": paddle.zeros([0, 4]), "b": paddle.zeros([2, 0], "int32")},
        "state dict": lin.state_dict(),
        "nested state dict (OrderedDict)": {"model": lin.state_dict(), "epoch": 7},
        "OrderedDict of tensors": collections.OrderedDict([("b", t(1)), ("a", t(2))]),
        "long name": {"x" * 5000: t(1)},
        "unicode names": {"权重.ü🙂": t(2), "ключ": [1]},
        "every dtype": {dt: paddle.ones([2, 2]).astype(dt) for dt in
                        ["bool", "uint8", "int8", "int16", "int32", "int64", "float16",
                         "bfloat16", "float32", "float64", "complex64", "complex128"]},
        "shared tensor": (lambda x: {"a": x, "b": x})(t(2)),
        "ndarray in a state dict's nested dict": {"w": t(2), "sub": {"a": np.ones(3),
                                                                     "l": [np.ones(1)]}},
        "dict of ndarrays": {"a": np.ones(2), "b": np.array(3.0)},
        "tensor and ndarray": {"w": t(2), "n": np.ones(2)},
        "tensors and ndarrays in a list": [t(2), np.ones(3), {"k": np.zeros(2)}],
        "user (name, ndarray) tuple": {"x": ("nm", np.ones(2)), "y": np.ones(1)},
        "scheduler beside tensors": {"w": t(2), "LR_Scheduler": {"last_epoch": 3,
                                                                 "last_lr": 0.1}},
        "empty containers": {"a": {}, "b": [], "c": ()},
        "empty dict": {},
        "set": {"s": {1, 2}},
        "dicts without tensors": {"cfg": {"lr": 0.1, "a": np.ones(2)}, "m": {}},
        "one dict of arrays": {"m": {"b": np.array([True, False])}},
        "lone surrogates": {"k\udc80": 1, "v": "x\ud800y"},
        "defaultdicts": {"i": collections.defaultdict(int, {"a": 2}),  # (not in lists:
                         "n": collections.defaultdict(None),  # paddle.load refuses them there)
                         "d": collections.defaultdict(dict, {"x": {"y": np.ones(2)}})},
        "numpy str scalars and dtypes": {"s": np.str_("abc"), "e": np.str_(""), "b": np.dtype(bool),
                                         "f": np.dtype("float32"), "u": np.dtype(">U2")},
        "Python complex": {"c": complex(1, -2), "l": [1j, complex(-0.0, float("inf"))]},
    }


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_objects_save_and_load_as_paddle(tmp_path, protocol):
    for i, (case, obj) in enumerate(objects().items()):
        cell = f"{case} (protocol {protocol})"
        # NumPy arrays alone: pdckpt's name table unless asked for paddle.save's layout
        arrays = {"pickle_layout": "generic"} if case == "dict of ndarrays" else None
        theirs, ours = save_both(obj, tmp_path, str(i), arrays, protocol=protocol)
        assert ours.read_bytes() == theirs.read_bytes(), cell
        for return_numpy in (False, True):
            for keep in (False, True):
                assert_same_load(theirs, cell, return_numpy=return_numpy, keep_name_table=keep)


def test_a_dict_of_arrays_alone_gets_the_name_table(tmp_path):
    """paddle.save pickles {name: ndarray} as it is; pdckpt writes the state-dict layout (the same
    whether or not Paddle is imported), so paddle.load names each tensor by its key and a load
    can take the batched path; the values, dtypes and shapes are the same either way."""
    obj = {"a": np.ones(2, np.float32), "b": np.array(3.0)}
    theirs, ours = save_both(obj, tmp_path, "arrays")
    assert b"StructuredToParameterName@@" in ours.read_bytes()
    assert b"StructuredToParameterName@@" not in theirs.read_bytes()
    got = paddle.load(str(ours))
    assert {k: t.name for k, t in got.items()} == {"a": "a", "b": "b"}
    for path in (theirs, ours):
        assert describe(pdckpt.load(str(path), return_numpy=True)) == describe(obj)


def _step_without_kernel(opt, params):
    """CPU Paddle has no float16 / bfloat16 optimizer kernels: the accumulators and master
    weights exist once step() has begun, which is what the state dict holds."""
    sum((p.astype("float32") ** 2).sum() for p in params).backward()
    try:
        opt.step()
    except Exception:  # noqa: BLE001 -- the missing kernel
        pass
    opt.clear_grad()


def optimizer_states():
    lr = paddle.optimizer.lr
    out = {}
    for name in ("Adam", "AdamW", "Momentum", "Lamb"):
        for dtype in ("float16", "bfloat16"):
            layer = paddle.nn.Linear(3, 2)
            layer.to(dtype=dtype)
            sched = lr.LinearWarmup(lr.CosineAnnealingDecay(0.1, 5), 2, 0.0, 0.1)  # nested
            opt = getattr(paddle.optimizer, name)(learning_rate=sched, multi_precision=True,
                                                 parameters=layer.parameters())
            for _ in range(2):
                _step_without_kernel(opt, layer.parameters())
                sched.step()
            out[f"{name} {dtype}"] = opt.state_dict()
            out[f"{name} {dtype} model"] = layer.state_dict()
    schedulers = {
        "StepDecay": lr.StepDecay(0.1, 2, 0.5), "Cosine": lr.CosineAnnealingDecay(0.1, 10),
        "ReduceOnPlateau": lr.ReduceOnPlateau(0.1, patience=0),
        "Piecewise": lr.PiecewiseDecay([1, 2], [0.1, 0.05, 0.01]),
        "OneCycle": lr.OneCycleLR(0.1, 10), "Cyclic": lr.CyclicLR(0.01, 0.1, 2),
        "MultiStep": lr.MultiStepDecay(0.1, [1, 2]), "Noam": lr.NoamDecay(16, 2),
        "WarmRestarts": lr.CosineAnnealingWarmRestarts(0.1, 2),
    }
    for name, sched in schedulers.items():
        layer = paddle.nn.Linear(3, 2)
        opt = paddle.optimizer.Adam(learning_rate=sched, parameters=layer.parameters())
        for step in range(3):
            layer(paddle.ones([1, 3])).mean().backward()
            opt.step()
            opt.clear_grad()
            sched.step(1.0 / (step + 1)) if name == "ReduceOnPlateau" else sched.step()
        out[f"Adam + {name}"] = opt.state_dict()
        out[f"{name} alone"] = sched.state_dict()
    scaler = paddle.amp.GradScaler(init_loss_scaling=1024)
    out["GradScaler"] = scaler.state_dict()
    out["training checkpoint"] = {"model": layer.state_dict(), "opt": opt.state_dict(),
                                  "scaler": scaler.state_dict(), "epoch": 3}
    return out


@pytest.mark.parametrize("protocol", [2, 4])
def test_optimizer_scheduler_and_scaler_states(tmp_path, protocol):
    states = optimizer_states()
    assert isinstance(states["Adam bfloat16"]["master_weights"], dict)
    assert isinstance(states["Adam float16"]["LR_Scheduler"]["LinearWarmup_LR"], dict)
    for i, (case, obj) in enumerate(states.items()):
        theirs, ours = save_both(obj, tmp_path, str(i), protocol=protocol)
        assert ours.read_bytes() == theirs.read_bytes(), case
        for return_numpy in (False, True):
            assert_same_load(theirs, case, return_numpy=return_numpy)


def test_numpy_scalars_keep_their_type_and_bits():
    """float16 scalars (NaN payloads, -0.0, subnormals, inf) and uint64 ones (beyond int64 too)
    came back as Python numbers, complex ones as 0-d arrays or paddle.Tensors; paddle.load gives numpy scalars, and so
    does pdckpt, bit for bit."""
    obj = objects()["numpy scalars"]
    buf = io.BytesIO()
    paddle.save(obj, buf)
    got = pdckpt.load(io.BytesIO(buf.getvalue()))
    assert [type(v) for v in got["f16"]] == [np.float16] * len(obj["f16"])
    assert [v.tobytes() for v in got["f16"]] == [v.tobytes() for v in obj["f16"]]
    assert [type(v) for v in got["u64"]] == [np.uint64] * 2 and got["u64"][1] == 2**64 - 1
    assert type(got["c64"]) is np.complex64 and type(got["c128"][0]) is np.complex128
    assert type(pdckpt.load(io.BytesIO(buf.getvalue()), return_numpy=True)["c64"]) is np.complex64


def test_use_binary_format_every_dtype_0d_and_empty(tmp_path):
    """One tensor as a binary stream: pdckpt writes Paddle's bytes for every dtype, 0-d and empty
    tensors included (an empty one was refused as 'never initialised'), and loads what paddle.load
    loads.  float8: Paddle 3.3 reads its own float8 stream as a float32 tensor of garbage (four
    bytes per element, past the data), pdckpt gives the float8 tensor it holds."""
    for dtype in ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16",
                  "float32", "float64", "complex64", "complex128", "float8_e4m3fn",
                  "float8_e5m2"]:
        for shape in ([2, 3], [], [0, 3]):
            base = paddle.to_tensor(np.linspace(-3, 3, int(np.prod(shape))).astype("float32")
                                    .reshape(shape))
            t = paddle.complex(base, -base).astype(dtype) if "complex" in dtype \
                else base.astype(dtype)
            cell = f"{dtype} {shape}"
            theirs, ours = save_both(t, tmp_path, "bin", use_binary_format=True)
            assert ours.read_bytes() == theirs.read_bytes(), cell
            back = pdckpt.load(str(ours))
            assert (back.dtype, list(back.shape)) == (t.dtype, shape), cell
            if "float8" in dtype:
                assert back.view(paddle.uint8).numpy().tobytes() == \
                    t.view(paddle.uint8).numpy().tobytes(), cell
                continue
            assert_same_load(theirs, cell)
            if 0 in shape:  # Paddle's return_numpy of an empty stream: float64 of shape (0,)
                got = pdckpt.load(str(theirs), return_numpy=True)
                assert got.shape == tuple(shape) and got.size == 0, cell
            else:
                assert_same_load(theirs, cell, return_numpy=True)


def test_strided_inputs_are_saved_and_left_alone(tmp_path):
    """A transposed or sliced tensor saves with its values; the caller's tensor keeps its layout
    (pdckpt.save made it contiguous in place).  The same values, dtype and shape come back from
    either file (a transposed tensor is pickled in Fortran order by both: paddle.save's bytes are
    checked in test_fortran_order.py)."""
    base = paddle.arange(15, dtype="float32").reshape([3, 5])
    for make in (lambda: base.clone().T, lambda: base.clone()[:, ::2],
                 lambda: base.clone().astype("bfloat16").T):
        t = make()
        assert not t.is_contiguous()
        pdckpt.save({"t": t}, tmp_path / "ours.pdparams", durable=False)
        assert not t.is_contiguous()  # untouched
        paddle.save({"t": make()}, str(tmp_path / "theirs.pdparams"))
        for path in ("ours.pdparams", "theirs.pdparams"):
            got = pdckpt.load(str(tmp_path / path))["t"]
            want = paddle.load(str(tmp_path / path))["t"]
            assert (got.dtype, got.shape) == (t.dtype, t.shape)
            assert got.numpy().tobytes() == want.numpy().tobytes() == t.numpy().tobytes()


def test_static_mode_keeps_0d_tensors_0d(tmp_path):
    """In static-graph mode a 0-d value loads as a 0-d DenseTensor, as paddle.load's (it had shape
    [1]: np.ascontiguousarray makes 0-d arrays 1-d)."""
    paddle.save({"a": np.array(3.0)}, str(tmp_path / "arrays.pdparams"))  # no name table
    paddle.save({"t": paddle.to_tensor(2.0), "m": paddle.ones([2, 2])},
                str(tmp_path / "state.pdparams"))  # a state dict
    paddle.enable_static()
    try:
        for name, key in (("arrays", "a"), ("state", "t")):
            got = pdckpt.load(str(tmp_path / f"{name}.pdparams"))
            want = paddle.load(str(tmp_path / f"{name}.pdparams"))
            assert describe(got) == describe(want)
            assert got[key].shape() == []
    finally:
        paddle.disable_static()


def test_static_mode_saves_state_dicts_as_paddle(tmp_path):
    """In static-graph mode paddle.save pickles a state dict as bare arrays, no name table
    (_legacy_static_save); pdckpt wrote its dygraph layout.  Now the same bytes, for dygraph
    tensors (bfloat16 and 0-d among them), DenseTensors and a nested dict of plain values."""
    lin = paddle.nn.Linear(3, 2)
    state = dict(lin.state_dict(), bf=paddle.ones([2], "bfloat16"), z=paddle.to_tensor(1.0),
                 sched={"last_epoch": 1, "last_lr": 0.5})
    paddle.enable_static()
    try:
        dense = paddle.base.core.DenseTensor()
        dense.set(np.arange(4, dtype=np.float32).reshape(2, 2), paddle.CPUPlace())
        for i, obj in enumerate((state, {"d": dense, "w": lin.weight})):
            for protocol in (2, 4):
                theirs, ours = save_both(obj, tmp_path, f"s{i}", protocol=protocol)
                assert ours.read_bytes() == theirs.read_bytes(), (i, protocol)
                assert describe(pdckpt.load(str(theirs))) == describe(paddle.load(str(theirs)))
    finally:
        paddle.disable_static()


# (paddle.save in static mode crashes the process on bfloat16 and float8 DenseTensors)
STATIC_DTYPES = ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32",
                 "float64", "complex64", "complex128")


def test_static_mode_saves_dense_tensors_from_their_memory(tmp_path):
    """A static program's state (core.DenseTensors) is saved from the tensors' own memory
    (DLPack), not from a NumPy copy of each: the same bytes as paddle.save for every dtype, and a
    file a later in-place change of the tensors does not touch."""
    rng = np.random.default_rng(3)
    made = {dt: paddle.to_tensor(rng.standard_normal((3, 5)) * 50).astype(dt)
            for dt in STATIC_DTYPES}  # (DenseTensor.set takes no complex)
    state = {dt: t.get_tensor() for dt, t in made.items()}
    paddle.enable_static()
    try:
        assert all(isinstance(t, paddle.base.core.DenseTensor) for t in state.values())
        arr, _ = pdckpt._paddle_io.dense_array(state["float32"])
        assert arr.ctypes.data == state["float32"]._ptr()  # the tensor's memory, not a copy
        theirs, ours = save_both(state, tmp_path, "dense")
        saved = ours.read_bytes()
        assert saved == theirs.read_bytes()
        before = {k: np.array(t) for k, t in state.items()}
        for t in state.values():
            if np.array(t).dtype.kind != "c":
                t.set(np.zeros(t.shape(), np.array(t).dtype), paddle.CPUPlace())
        assert ours.read_bytes() == saved
        got = pdckpt.load(str(ours))
        for k, want in before.items():
            assert np.array(got[k]).tobytes() == want.tobytes(), k
    finally:
        paddle.disable_static()


def test_safetensors_config_as_paddle(tmp_path):
    """Paddle 3's paddle.save(..., safetensors=True) / paddle.load(..., safetensors=True): the same
    bytes (no Paddle names in the metadata) and the same tensors back; what it does not take (a
    nested dict) is refused."""
    sd = {"w": paddle.randn([3, 2]), "b": paddle.ones([2], "bfloat16"), "i": paddle.arange(3),
          "z": paddle.to_tensor(1.0)}
    theirs, ours = save_both(sd, tmp_path, "st", safetensors=True)
    assert ours.read_bytes() == theirs.read_bytes()
    for path in (theirs, ours):
        assert_same_load(path, "safetensors", safetensors=True)
    numeric = {k: v for k, v in sd.items() if k != "b"}  # Paddle's NumPy route has no bfloat16
    theirs, _ = save_both(numeric, tmp_path, "st2", safetensors=True)
    assert_same_load(theirs, "safetensors numpy", safetensors=True, return_numpy=True)
    with pytest.raises(pdckpt.Error):
        pdckpt.save({"a": {"b": sd["w"]}}, tmp_path / "n.safetensors", safetensors=True)


def test_directories_and_prefixes_load_as_numpy(tmp_path):
    """paddle.load of a save_vars directory or a save_inference_model prefix (its _legacy_load)
    gives NumPy arrays whatever return_numpy says, a directory's in os.walk's order; pdckpt gave
    paddle.Tensors, in sorted order."""
    with paddle.pir_utils.OldIrGuard():
        paddle.enable_static()
        try:
            main, start = paddle.static.Program(), paddle.static.Program()
            with paddle.static.program_guard(main, start):
                x = paddle.static.data("x", [None, 4], "float32")
                y = paddle.static.nn.batch_norm(paddle.static.nn.fc(x, 3))
            exe = paddle.static.Executor(paddle.CPUPlace())
            exe.run(start)
            paddle.static.save_inference_model(str(tmp_path / "inf" / "model"), [x], [y], exe,
                                               program=main)
            paddle.static.save_vars(exe, str(tmp_path / "vars"), main,
                                    predicate=lambda v: v.persistable and
                                    v.name not in ("feed", "fetch"))
        finally:
            paddle.disable_static()
        for path in (tmp_path / "vars", tmp_path / "inf" / "model"):  # a legacy program
            for return_numpy in (False, True):
                # Paddle's load of a prefix makes the program's variables anew: a second load in
                # one process names them fc_0.w_1... unless the name generator starts afresh
                with paddle.utils.unique_name.guard():
                    assert_same_load(path, path.name, return_numpy=return_numpy)
            assert all(type(v) is np.ndarray for v in pdckpt.load(str(path)).values())
    walk = [f for _, _, files in os.walk(tmp_path / "vars") for f in files]
    assert list(pdckpt.load(str(tmp_path / "vars"))) == walk


def test_numpy_scalars_without_a_counterpart_are_refused_by_name(tmp_path):
    """A numpy scalar whose item() is no Python number (longdouble, clongdouble, datetime64) was
    handed back to the converter as itself until Python's RecursionError; now it is refused
    naming its dtype (paddle.save pickles it; pdckpt has no value for it)."""
    for value in (np.longdouble(1.5), np.clongdouble(1j), np.datetime64("2020-01-01")):
        with pytest.raises(pdckpt.ArgumentTypeError, match=re.escape(f"numpy {value.dtype.name} scalar")):
            pdckpt.save({"v": value}, tmp_path / "x.pdparams")
        assert not (tmp_path / "x.pdparams").exists()


def test_numpy_str_and_bytes_arrays(tmp_path):
    """numpy str / bytes arrays (a checkpoint's class names) loaded as OpaqueObjects and were
    refused by save.  Now each is written as paddle.save writes it, and loads as the array
    paddle.load(return_numpy=True) gives (without return_numpy paddle.load raises: to_tensor of
    a str array; pdckpt gives the array)."""
    arrays = {"s": np.array(["ab", "c"]), "b": np.array([b"xy", b"z"]), "e": np.array([], "U3"),
              "f": np.asfortranarray(np.array([["a", "bb"], ["c", "d"]])), "z": np.array("x")}
    for key, arr in arrays.items():
        for protocol in (2, 4):
            theirs, ours = save_both({key: arr}, tmp_path, f"{key}{protocol}", protocol=protocol)
            assert ours.read_bytes() == theirs.read_bytes(), (key, protocol)
            assert_same_load(theirs, key, return_numpy=True)
            got = pdckpt.load(str(theirs))[key]
            assert got.dtype == arr.dtype and np.array_equal(got, arr) and got.flags.writeable
