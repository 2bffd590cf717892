# SPDX-License-Identifier: Apache-2.0
"""Object conversion between Python and the C library's value trees -- the parts that need Python
objects (NumPy dtypes, paddle.Tensor) rather than C.  No file format is parsed or produced here.

Conventions (they are the C library's; its pickle reader and writer follow them):

* a NumPy array is a TENSOR without a name; a ``paddle.Tensor`` is a TENSOR named ``t.name``;
* Paddle's "generic path" tensor, pickled as ``(name, ndarray)``, is a TENSOR named ``name``
  (paddle.load gives a Tensor there);
* a dtype is the one Paddle gives (a pickled uint16 array paddle.load makes a tensor is bfloat16);
* bfloat16 / float8 tensors come out of NumPy conversion as their raw bits (``uint16`` / ``int8``,
  as ``paddle.Tensor.numpy()`` gives them) unless ``exact_dtypes=True`` asks for ml_dtypes'
  types; their true dtype is always known to the library and to ``pdckpt.Tensor.dtype``.
"""

from __future__ import annotations

import collections
import re
import sys
from typing import Any

import numpy as np

from . import _native, _paddle_io
from ._errors import ArgumentTypeError, make

NAME_TABLE = _native.NAME_TABLE_KEY

# The dtypes NumPy has no type for: an integer type of the same size holds their bits -- the
# one Paddle's own NumPy conversion gives (Tensor.numpy(), paddle.load of a directory: uint16 for
# bfloat16, int8 for its float8s); unsigned for the float8s Paddle has no tensor type for.
_RAW_BITS = {"bfloat16": np.dtype(np.uint16), "float8_e4m3fn": np.dtype(np.int8),
             "float8_e5m2": np.dtype(np.int8), "float8_e4m3fnuz": np.dtype(np.uint8),
             "float8_e5m2fnuz": np.dtype(np.uint8), "float8_e8m0fnu": np.dtype(np.uint8)}
# safetensors dtypes Paddle has no tensor type for: load keeps their arrays.
_NOT_PADDLE = {"uint32", "uint64", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu"}
# Paddle has no uint16: its bfloat16 bits are viewed as int16 (same bytes).
_PADDLE_BITS_VIEW = {"bfloat16": "int16", "float8_e4m3fn": "uint8", "float8_e5m2": "uint8"}
_OBJECT_KINDS = {"reduce": 0, "newobj": 1, "global": 2}


class OpaqueObject:
    """A pickled Python object pdckpt carried without importing or running anything.

    ``module`` and ``name`` name the class or function; ``kind`` says how the pickle built it
    (``"reduce"``: ``callable(*args)``, ``"newobj"``: ``cls.__new__(cls, *args)``,
    ``"global"``: a bare reference); ``state`` is what ``BUILD`` applied (e.g. ``__dict__``) and
    ``items`` what was appended/set afterwards.  ``pdckpt.save`` writes it back as it was read.
    """

    __slots__ = ("kind", "module", "name", "args", "state", "items")

    def __init__(self, kind: str, module: str, name: str, args: Any = None, state: Any = None,
                 items: Any = None) -> None:
        if kind not in _OBJECT_KINDS:
            raise ValueError(f"kind must be one of {sorted(_OBJECT_KINDS)}, not {kind!r}")
        self.kind, self.module, self.name = kind, module, name
        self.args, self.state, self.items = args, state, items

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"

    def __repr__(self) -> str:
        parts = [f"{self.kind} {self.qualname}"]
        for field in ("args", "state", "items"):
            value = getattr(self, field)
            if value is not None:
                parts.append(f"{field}={value!r}")
        return f"<pdckpt.OpaqueObject {' '.join(parts)}>"


def numpy_dtype(name: str, exact: bool) -> np.dtype:
    """The NumPy dtype for a pdckpt dtype name."""
    if name in _RAW_BITS:
        if not exact:
            return _RAW_BITS[name]
        try:
            import ml_dtypes
        except ImportError as e:
            raise ImportError(f"exact_dtypes=True needs the ml_dtypes package for {name}") from e
        return np.dtype(getattr(ml_dtypes, name))
    return np.dtype(name)


# ---- saving: what the C side cannot tell by itself ------------------------------------------

def _array_leaf(arr: np.ndarray, name: str | None, dtype_name: str | None = None) -> tuple:
    if arr.dtype.hasobject or arr.dtype.names is not None:  # (numpy: "array of references")
        raise make(ArgumentTypeError, None, f"pdckpt cannot save dtype {arr.dtype.name}: an "
                   "array of Python objects or of records has no tensor and no pickle pdckpt "
                   "writes")
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and sys.byteorder == "big"):
        arr = arr.astype(arr.dtype.newbyteorder("<"))  # the formats are little-endian
    dtype_name = dtype_name or arr.dtype.name
    if arr.flags.f_contiguous and not arr.flags.c_contiguous:
        # numpy pickles it column-major (is_fortran): its memory as it is, no copy
        flat = arr.T.reshape(-1).view(np.uint8)
        return ("tensor", flat, dtype_name, arr.shape, name, "F")
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)  # a copy only for strided arrays
    flat = arr.reshape(-1).view(np.uint8)  # views: the C side borrows these very bytes
    return ("tensor", flat, dtype_name, arr.shape, name)


def _paddle_leaf(paddle: Any, t: Any) -> tuple:
    """A paddle.Tensor's bytes without a copy where Paddle allows it (CPU, dense, contiguous)."""
    dtype_name = str(t.dtype).rsplit(".", 1)[-1]
    if not t._is_initialized():
        if 0 not in t.shape:
            _paddle_io.check_initialized(t, "Tensor")
        # Paddle allocates nothing for an empty tensor (paddle.to_tensor of a (0, 3) array, or
        # what pdckpt.load gives for one), so it is "uninitialised"; paddle.save saves it.
        empty = np.zeros(t.shape, numpy_dtype(dtype_name, False))
        return _array_leaf(empty, t.name, dtype_name)
    if _paddle_io.static_mode(paddle):
        # detach() / DLPack on a dygraph tensor crash the process in static-graph mode;
        # numpy() (a copy, as Paddle's own static save makes) is safe there.
        return _array_leaf(np.asarray(t.numpy()), t.name, dtype_name)
    src = t.detach()
    if not src.place.is_cpu_place():
        src = src.cpu()  # device memory has to come to the host
    if not src.is_contiguous():
        # A strided view (t.T, t[:, ::2]): contiguous() on the detached tensor would rewrite the
        # caller's own tensor in place (its layout changes under it); numpy() copies instead, as
        # paddle.save's np.array(t.cpu()) does: column-major for a transpose (kept so, as numpy
        # pickles it), else C order, or strided (_array_leaf then puts it in C order).
        return _array_leaf(np.asarray(src.numpy()), t.name, dtype_name)
    try:
        # NumPy cannot import bfloat16/float8 through DLPack: view them as same-size integers.
        view_as = _PADDLE_BITS_VIEW.get(dtype_name)
        arr = np.from_dlpack(src.view(getattr(paddle, view_as)) if view_as else src)
    except (BufferError, TypeError, ValueError, RuntimeError, AttributeError):
        arr = np.asarray(src.numpy())  # Paddle refused to share: a copy
    return _array_leaf(arr, t.name, dtype_name)


def make_opaque(kind: str, module: str, name: str, args: Any = None, state: Any = None,
                items: Any = None) -> Any:
    """What a pickled object the library carried becomes in Python: an OpaqueObject (ints beyond
    64 bits never come here: the binding makes them ints through the core's big-int calls)."""
    if _is_complex(kind, module, name, args, state, items):
        return complex(*args)  # CPython's reduction of a complex: paddle.load gives the number
    numpy_value = _numpy_text(kind, module, name, args, state, items)
    if numpy_value is not None:
        return numpy_value  # a str / bytes array or scalar, or a plain dtype: paddle.load's
    if _is_defaultdict(kind, module, name, args, state, items):
        d = collections.defaultdict(_FACTORIES[args[0].name] if args else None)
        d.update(items or {})
        return d  # as paddle.load gives it: its factory one of the harmless builtin types
    return OpaqueObject(kind, module, name, args, state, items)


# numpy's reductions pdckpt's tree has no value for but Python rebuilds without running anything
# from the file: np.dtype of a plain type code, and str / bytes arrays and scalars of one
# (numpy.dtype(code) and np.frombuffer of the bytes; object, structured and void dtypes stay
# OpaqueObjects).
_PLAIN_CODE = re.compile(r"[biufcUS][0-9]+\Z")
_MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray")


def _plain_dtype(args: Any, state: Any) -> Any:
    """numpy.dtype(code, False, True) + BUILD (3, byteorder, None, None, None, ...), or None."""
    if not (type(args) is tuple and len(args) == 3 and type(args[0]) is str
            and _PLAIN_CODE.match(args[0]) and type(state) is tuple and len(state) == 8
            and state[1] in ("<", ">", "|", "=") and state[2:5] == (None, None, None)):
        return None
    return np.dtype(state[1] + args[0] if state[1] in "<>" else args[0])


def _numpy_text(kind: str, module: str, name: str, args: Any, state: Any, items: Any) -> Any:
    if kind != "reduce" or items is not None:
        return None
    if module == "numpy" and name == "dtype":
        return _plain_dtype(args, state)
    if module not in _MULTIARRAY or type(args) is not tuple:
        return None
    if name == "scalar" and state is None and len(args) == 2 and _text_dtype(args[0]) \
            and type(args[1]) is bytes:
        if args[0].itemsize == 0:  # "" (numpy pickles some padding)
            return args[0].type()
        if len(args[1]) != args[0].itemsize:
            return None
        _check_code_points(args[1], args[0])
        return np.frombuffer(args[1], args[0])[0]
    if name != "_reconstruct" or type(state) is not tuple or len(state) != 5:
        return None
    _, shape, dt, fortran, raw = state
    if not (_text_dtype(dt) and type(shape) is tuple and all(type(d) is int and d >= 0
                                                             for d in shape)
            and type(fortran) is bool and type(raw) is bytes
            and len(raw) == int(np.prod(shape, dtype=np.int64)) * dt.itemsize and dt.itemsize):
        return None
    order = "F" if fortran else "C"
    return np.frombuffer(raw, dt).reshape(shape, order=order).copy(order=order)


def _check_code_points(raw: bytes, dt: np.dtype) -> None:
    """A str_ scalar's UCS-4 units must be code points: numpy's scalar of one past U+10FFFF
    raises SystemError (pickle.load's too), which no caller expects; a ValueError here becomes
    the load's FormatError naming the file."""
    units = np.frombuffer(raw, dt.byteorder + "u4") if dt.kind == "U" else ()
    if len(units) and int(units.max()) > 0x10FFFF:
        raise ValueError("a numpy str_ scalar holds a character code past U+10FFFF")


def _text_dtype(dt: Any) -> bool:
    return isinstance(dt, np.dtype) and dt.kind in "US"


def _numpy_reduced(obj: Any) -> tuple:
    """A np.dtype, or a str / bytes array or scalar, as numpy reduces it (the leaf of an
    OpaqueObject pdckpt writes as such)."""
    fn, args, *rest = obj.__reduce__()
    state = rest[0] if rest else None
    if isinstance(obj, np.dtype):
        if _plain_dtype(args, state) is None:
            raise make(ArgumentTypeError, None, f"pdckpt cannot save the numpy dtype {obj!r}")
        return ("object", _OBJECT_KINDS["reduce"], "numpy", "dtype", args, state, None)
    if isinstance(obj, np.ndarray):
        args = (OpaqueObject("global", "numpy", "ndarray"),) + tuple(args[1:])
    return ("object", _OBJECT_KINDS["reduce"], fn.__module__, fn.__name__, args, state, None)


# The defaultdict factories made real on load and written on save: builtin types whose call is
# harmless (the allowlist takes them as arguments, src/formats/pickle/pickle_names.c).
_FACTORIES = {f.__name__: f for f in (list, dict, set, frozenset, tuple, int, float, str, bool,
                                      bytes, bytearray, complex)}


def _is_defaultdict(kind: str, module: str, name: str, args: Any, state: Any,
                    items: Any) -> bool:
    """CPython's reduction of a defaultdict: defaultdict((factory,) or ()) + SETITEMS."""
    return (kind == "reduce" and module == "collections" and name == "defaultdict"
            and state is None and (items is None or type(items) is dict)
            and isinstance(args, tuple) and len(args) <= 1
            and all(isinstance(a, OpaqueObject) and a.kind == "global" and a.module == "builtins"
                    and a.name in _FACTORIES for a in args))


def _defaultdict_leaf(obj: Any) -> tuple:
    f = obj.default_factory
    if f is not None and _FACTORIES.get(getattr(f, "__name__", None)) is not f:
        raise make(ArgumentTypeError, None, "pdckpt can save a defaultdict whose factory is None "
                   f"or one of {', '.join(_FACTORIES)}, not {f!r}")
    args = () if f is None else (OpaqueObject("global", "builtins", f.__name__),)
    return ("object", _OBJECT_KINDS["reduce"], "collections", "defaultdict", args, None,
            dict(obj))


def _is_complex(kind: str, module: str, name: str, args: Any, state: Any, items: Any) -> bool:
    """complex(real, imag) as CPython pickles a complex (complex.__reduce__), nothing else."""
    return (kind == "reduce" and module == "builtins" and name == "complex" and state is None
            and items is None and isinstance(args, tuple) and 1 <= len(args) <= 2
            and all(type(a) in (int, float) for a in args))


# The numpy scalars a tree keeps as such (pdckpt_value_set_numpy_scalar); others become numbers.
_NUMPY_SCALARS = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                  "uint64", "float16", "float32", "float64"}


def leaf_hook(obj: Any) -> tuple:
    """Tells the C converter what a non-container, non-scalar object is (see py_to_tree.c)."""
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in "US" \
            and type(obj) in (np.ndarray, np.str_, np.bytes_) or isinstance(obj, np.dtype):
        return _numpy_reduced(obj)  # as numpy pickles them
    if isinstance(obj, np.ndarray):
        return _array_leaf(obj, None)
    if isinstance(obj, np.generic):  # numpy scalars: numbers that keep their numpy dtype
        if obj.dtype.name in _NUMPY_SCALARS:
            return ("value", obj.item(), obj.dtype.name)
        if obj.dtype.name in ("complex64", "complex128"):  # held as a 0-d array, marked
            return ("value", np.asarray(obj), obj.dtype.name)
        item = obj.item()
        if isinstance(item, np.generic) or not isinstance(item, (int, float, str, bytes)):
            # longdouble, datetime64, void: item() gives no Python scalar (and was handed back
            # here, recursing until Python's RecursionError)
            raise make(ArgumentTypeError, None, f"pdckpt cannot save a numpy {obj.dtype.name} "
                       "scalar (it has no Python or pdckpt counterpart); convert it first, "
                       "e.g. float(x) or np.float64(x)")
        return ("value", item)
    if isinstance(obj, _paddle_io.StaticArray):
        return _array_leaf(obj.array, None, obj.dtype_name)
    if type(obj) is collections.defaultdict:  # as CPython reduces it
        return _defaultdict_leaf(obj)
    if isinstance(obj, complex):  # as CPython reduces it: complex(real, imag)
        return ("object", _OBJECT_KINDS["reduce"], "builtins", "complex", (obj.real, obj.imag),
                None, None)
    if isinstance(obj, OpaqueObject):
        return ("object", _OBJECT_KINDS[obj.kind], obj.module, obj.name, obj.args, obj.state,
                obj.items)
    paddle = sys.modules.get("paddle")  # a paddle.Tensor means paddle is imported already
    if paddle is not None and isinstance(obj, paddle.Tensor):
        return _paddle_leaf(paddle, obj)
    if paddle is not None and isinstance(obj, _paddle_io.dense_type(paddle)):
        arr, dtype_name = _paddle_io.dense_array(obj)
        return _array_leaf(arr, None, dtype_name if dtype_name in _RAW_BITS else None)
    if paddle is not None:
        _paddle_io.refuse_object(obj, paddle)
    if isinstance(obj, int) and not isinstance(obj, bool):
        return ("value", int(obj))  # IntEnum and other int subclasses (big ones too)
    if isinstance(obj, (str, bytes)):
        # other str / bytes subclasses (a str Enum): their text or bytes, as before
        return ("value", str.__str__(obj) if isinstance(obj, str) else bytes(obj))
    if isinstance(obj, float):
        return ("value", float(obj))
    if hasattr(obj, "__array_interface__") or hasattr(obj, "__array__"):
        return _array_leaf(np.asarray(obj), None)  # e.g. Paddle's DenseTensor
    raise make(ArgumentTypeError, None, f"pdckpt cannot save objects of type "
               f"{type(obj).__module__}.{type(obj).__qualname__}")


# ---- loading: what paddle.load returns -------------------------------------------------------

def to_paddle(paddle: Any, arr: np.ndarray, name: str | None, dtype_name: str) -> Any:
    """A paddle.Tensor with a copy of `arr` (Paddle tensors own their memory), named `name`; in
    static-graph mode a core.DenseTensor (unnamed), as paddle.load gives there."""
    if dtype_name in _NOT_PADDLE:
        return arr  # Paddle has no such tensor type; paddle.load would fail, we keep the array
    if _paddle_io.static_mode(paddle):
        return _paddle_io.dense_tensor(paddle, arr)
    if dtype_name in _RAW_BITS and dtype_name != "bfloat16":
        t = paddle.to_tensor(arr.view(np.uint8)).view(getattr(paddle, dtype_name))
    elif dtype_name == "bfloat16":
        t = paddle.to_tensor(arr.view(np.uint16))  # Paddle makes uint16 bits a bfloat16 tensor
    else:
        t = paddle.to_tensor(arr)
    if name:
        t.name = name
    return t


_SPECS: dict = {}


def paddle_spec(paddle: Any) -> tuple:
    """What the C conversion needs to make paddle.Tensors itself (py_paddle.c): Paddle's DLPack
    import (None in static-graph mode), the Tensor type, the CPU place, to_paddle for what
    cannot go through DLPack, paddle.unstack (many small equal tensors in one call, copied),
    whether small tensors may be made over the read buffer instead (_views_probe, asked when
    needed), and whether
    bool must take the fallback (Paddle 2.6's from_dlpack predates DLPack's bool code)."""
    spec = _SPECS.get(id(paddle))
    if spec is None:
        def fallback(arr: np.ndarray, name: str | None, dtype_name: str) -> Any:
            return to_paddle(paddle, arr, name, dtype_name)

        spec = _SPECS[id(paddle)] = (paddle.base.core.from_dlpack, paddle.Tensor,
                                     paddle.CPUPlace(), fallback, paddle.unstack,
                                     _views_probe(paddle),
                                     None if _dlpack_trusted(paddle) else True)
    if _paddle_io.static_mode(paddle):
        # paddle.load gives unnamed DenseTensors on the expected place here: on the CPU, the
        # DenseTensor from_dlpack makes of the loaded memory itself (no copy into Paddle's
        # allocator, which made a static-mode load ~2.5x paddle.load's time); no tensor type to
        # wrap it in (None), no batches (no paddle.unstack: it would build a graph op).
        place = paddle.base.framework._current_expected_place_()
        if isinstance(place, paddle.CPUPlace) or place.is_cpu_place():
            return (spec[0], None, spec[2], spec[3], None, None, spec[6])
        return (None,) + spec[1:]  # to_paddle's DenseTensors, copied to the device
    return spec


def _views_probe(paddle: Any) -> Any:
    """_views_rehome's answer (True or None), asked by py_paddle_batch.c the first time a load has
    a batch to split (16 or more small tensors), not before: the probe makes Paddle tensors and
    reads a shape, whose first calls in a process cost ~5-15 ms of Paddle's own set-up, which the
    first load of a small file would otherwise pay and paddle.load does not."""
    answer: list = []

    def views() -> Any:
        if not answer:
            answer.append(True if _views_rehome(paddle) else None)
        return answer[0]
    return views


def _views_rehome(paddle: Any) -> bool:
    """Whether py_paddle_batch.c may make each small tensor of a group a DenseTensor of its own
    over its payload in the read buffer (no copy): Tensor.__new__, span._share_buffer_to(t) (a new
    DenseTensor, with its own in-place version counter), then on t.get_tensor()
    _share_data_with(span_dense._slice(b, e)) and _set_dims(shape).  These are Paddle's private
    methods, so what the load relies on is tried here once, on two parts of one span with a gap
    between them (their places, values and in-place counters); anything else keeps
    paddle.unstack (copies)."""
    try:
        data = np.arange(3 * 64, dtype=np.float32)
        span = paddle.to_tensor(data)
        dense = span.get_tensor()
        out = []
        for b in (0, 128):
            t = paddle.Tensor.__new__(paddle.Tensor)
            span._share_buffer_to(t)
            own = t.get_tensor()
            own._share_data_with(dense._slice(b, b + 64))
            own._set_dims([8, 8])
            if t.data_ptr() != span.data_ptr() + 4 * b:
                return False
            out.append(t)
        del span, dense
        a, b = out
        # What an in-place op does to the counter, without running one: Paddle's first op
        # call costs 10-30 ms of kernel set-up, which the first load of a process would pay.
        b._bump_inplace_version()
        return (list(a.shape) == [8, 8] and a._inplace_version() == 0
                and b._inplace_version() == 1 and a.stop_gradient
                and np.array_equal(a.numpy().ravel(), data[:64])
                and np.array_equal(b.numpy().ravel(), data[128:]))
    except Exception:  # noqa: BLE001 -- another Paddle's private API: use the copying split
        return False


def _dlpack_trusted(paddle: Any) -> bool:
    """Paddle 3 (or a develop build, "0.0.0") exports a DenseTensor's real strides through
    _to_dlpack; Paddle 2.6 gives a transposed view the strides of a contiguous tensor."""
    head = str(getattr(paddle, "__version__", "")).split(".")[0]
    return head.isdigit() and (int(head) >= 3 or paddle.__version__.startswith("0.0.0"))


def paddle_save_spec(paddle: Any) -> tuple:
    """(paddle.Tensor, {paddle dtype: pdckpt dtype number}, DLPack exports trusted): lets the C
    conversion take a plain CPU tensor's memory itself (py_paddle_save.c through one DLPack
    export, py_paddle.c else); anything else still goes through leaf_hook."""
    key = ("save", id(paddle))
    spec = _SPECS.get(key)
    if spec is None:
        dtypes, codes = {}, _native.dtype_codes()
        for name in ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16",
                     "float32", "float64", "complex64", "complex128", "float8_e4m3fn",
                     "float8_e5m2"):
            if hasattr(paddle, name):
                dtypes[getattr(paddle, name)] = codes[name]
        spec = _SPECS[key] = (paddle.Tensor, dtypes, _dlpack_trusted(paddle))
    return spec


