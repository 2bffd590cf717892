# SPDX-License-Identifier: Apache-2.0
"""What ``paddle.save`` / ``paddle.load`` do with Paddle's own objects beyond tensors in
containers: the graph mode (a static-graph load gives ``core.DenseTensor``, as Paddle's does), the
binary formats of ``use_binary_format`` (a tensor stream, a SelectedRows stream), ``Program``
objects, and Paddle's checks of what may be saved.  Every byte still goes through the C library:
Paddle is asked only to build its objects from arrays, and to serialise a Program, which it alone
can describe (the library then checks and writes those bytes).

Static-graph mode matters because some tensor methods are not safe there: ``detach()`` on a
tensor made in dygraph mode kills the process after ``paddle.enable_static()``, so nothing here
calls them in that mode.
"""

from __future__ import annotations

import collections
import os
import sys
import tempfile
from typing import Any

import numpy as np

from ._errors import ArgumentError, ArgumentTypeError, UnsupportedError, make


def paddle_module() -> Any:
    """Paddle if it is imported (a Paddle object in hand means it is)."""
    return sys.modules.get("paddle")


def static_mode(paddle: Any) -> bool:
    """Paddle's static-graph mode is on (``paddle.enable_static()``)."""
    return paddle is not None and not paddle.in_dynamic_mode()


def _core(paddle: Any) -> Any:
    return paddle.base.core if paddle is not None else None


def _type_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


# ---- saving -----------------------------------------------------------------------------------

def dtype_name(t: Any) -> str:
    """'float32', 'bfloat16', ... of a paddle.Tensor or a DenseTensor."""
    dtype = t.dtype if hasattr(t, "dtype") else t._dtype()
    return str(dtype).rsplit(".", 1)[-1]


def check_initialized(t: Any, what: str) -> None:
    if not t._is_initialized():
        raise make(ArgumentError, None, f"the {what} to save holds no data (it was never set or "
                   "initialised); paddle.save refuses it too")


def dense_array(d: Any) -> tuple[np.ndarray, str]:
    """A DenseTensor's data and dtype name: an array over the tensor's own memory (DLPack) where
    Paddle shares it, else np.array(tensor), the copy Paddle itself pickles."""
    check_initialized(d, "DenseTensor")
    name = dtype_name(d)
    return _dense_view(d, name), name


class _Capsule:
    """A DLPack capsule in the protocol np.from_dlpack takes (a CPU tensor's)."""

    __slots__ = ("capsule",)

    def __init__(self, capsule: Any) -> None:
        self.capsule = capsule

    def __dlpack__(self, stream: Any = None, **_: Any) -> Any:
        return self.capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)  # kDLCPU


def _dense_view(d: Any, name: str) -> np.ndarray:
    """The DenseTensor's CPU memory itself (the array keeps it alive; the save writes from it
    before returning), checked to be the dense array np.array would copy; a copy otherwise
    (device memory, dtypes NumPy has no DLPack type for, a Paddle that refuses)."""
    try:
        if d._place().is_cpu_place():
            arr = np.from_dlpack(_Capsule(d._to_dlpack()))
            if (arr.dtype.name == name and arr.shape == tuple(d.shape())
                    and arr.flags.c_contiguous):
                return arr
    except (BufferError, TypeError, ValueError, RuntimeError, AttributeError):
        pass
    return np.asarray(d)


def refuse_object(obj: Any, paddle: Any) -> None:
    """Raises for the Paddle objects paddle.save refuses, in Paddle's exception classes."""
    core = _core(paddle)
    if isinstance(obj, paddle.nn.Layer):
        raise make(ArgumentTypeError, None, f"cannot save objects of type {_type_name(obj)}: "
                   "paddle.save does not save Layer objects; save layer.state_dict()")
    if isinstance(obj, core.SelectedRows):
        raise make(UnsupportedError, None, "a SelectedRows is saved on its own with "
                   "use_binary_format=True, not inside a pickle (paddle.save refuses it too)")
    if isinstance(obj, (paddle.base.framework.Variable, paddle.pir.Value)):
        raise make(ArgumentTypeError, None, f"cannot save objects of type {_type_name(obj)}: a "
                   "static-graph variable holds no data; save its value (e.g. "
                   "paddle.static.global_scope().find_var(name).get_tensor())")


def binary_value(obj: Any, paddle: Any) -> tuple[Any, str]:
    """What ``use_binary_format=True`` writes for `obj`, and the format: one tensor stream (a
    paddle.Tensor, DenseTensor or NumPy array) or a SelectedRows stream."""
    if isinstance(obj, np.ndarray):
        return obj, "tensor"
    core = _core(paddle)
    if core is not None and isinstance(obj, core.SelectedRows):
        check_initialized(obj.get_tensor(), "SelectedRows' tensor")
        rows = np.asarray(obj.rows(), dtype=np.int64)
        return {"rows": rows, "height": int(obj.height()), "value": obj.get_tensor()}, \
            "selected-rows"
    if core is not None and isinstance(obj, dense_type(paddle)):
        check_initialized(obj, "DenseTensor")
        return obj, "tensor"
    if paddle is not None and isinstance(obj, paddle.Tensor):
        if 0 not in obj.shape:  # an empty tensor holds no allocation; paddle.save writes it
            check_initialized(obj, "Tensor")
        return obj, "tensor"
    raise make(UnsupportedError, None, "use_binary_format=True writes one tensor (paddle.Tensor, "
               f"DenseTensor, SelectedRows or NumPy array), found {_type_name(obj)}")


def program_bytes(obj: Any, paddle: Any) -> tuple[bytes, str] | None:
    """The serialised form of a Program (legacy ProgramDesc or PIR JSON), or None for anything
    else.  Paddle writes a PIR program only to a path: a private temporary file gives the bytes."""
    if paddle is None:
        return None
    if isinstance(obj, paddle.base.framework.Program):
        obj.desc.flush()
        return obj.desc.serialize_to_string(), "program"
    if isinstance(obj, paddle.pir.Program):
        with tempfile.TemporaryDirectory(prefix="pdckpt-") as tmp:
            path = os.path.join(tmp, "program.json")
            paddle.base.core.serialize_pir_program(obj, path)
            with open(path, "rb") as f:
                return f.read(), "pir-json"
    return None


def dense_type(paddle: Any) -> Any:
    """core.DenseTensor (Paddle 3), core.LoDTensor (Paddle 2.6)."""
    core = _core(paddle)
    return getattr(core, "DenseTensor", None) or getattr(core, "LoDTensor")


def _holds_paddle(obj: Any, paddle: Any) -> bool:
    """paddle.save's _contain_x with its Paddle-object test: a Tensor, DenseTensor, Layer,
    Program or SelectedRows here or inside dicts, lists and tuples (NumPy arrays do not count)."""
    if isinstance(obj, (paddle.Tensor, dense_type(paddle), _core(paddle).SelectedRows,
                        paddle.nn.Layer, paddle.base.framework.Program)):
        return True
    if type(obj) in (dict, collections.OrderedDict):
        return any(_holds_paddle(v, paddle) for v in obj.values())
    if type(obj) in (list, tuple):
        return any(_holds_paddle(v, paddle) for v in obj)
    return False


PICKLE_STATE_DICT, PICKLE_GENERIC = 1, 2  # pdckpt_pickle_layout


def pickle_layout(obj: Any, paddle: Any) -> int:
    """For an object holding Paddle tensors, the layout paddle.save (dygraph mode) picks by its
    _is_state_dict: a dict whose values are all paddle.Tensors / DenseTensors or dicts holding no
    Paddle object takes the state-dict layout (_legacy_save: ndarrays and a name table); anything
    else -- a NumPy array beside the tensors, one inside a state dict's nested dict -- is pickled
    as it is.  An object of NumPy arrays alone: 0, the library's choice (a dict of arrays gets the
    name table, whether or not Paddle happens to be imported)."""
    if not _holds_paddle(obj, paddle):
        return 0  # NumPy arrays only: the library's choice (a dict of arrays: a state dict)
    if not isinstance(obj, dict):
        return PICKLE_GENERIC
    tensors = (paddle.Tensor, dense_type(paddle))
    for value in obj.values():
        if isinstance(value, dict):
            if paddle is not None and any(_holds_paddle(v, paddle) for v in value.values()):
                return PICKLE_GENERIC
        elif not (tensors and isinstance(value, tensors)):
            return PICKLE_GENERIC
    return PICKLE_STATE_DICT


class StaticArray:
    """A tensor's array as _legacy_static_save pickles it: unnamed (no (name, ndarray) tuple, no
    name table), its dtype kept (bfloat16 bits are uint16)."""

    __slots__ = ("array", "dtype_name")

    def __init__(self, array: np.ndarray, dtype_name: str) -> None:
        self.array, self.dtype_name = array, dtype_name


def static_state_dict(obj: Any, paddle: Any) -> Any:
    """paddle.save of a state dict in static-graph mode (_legacy_static_save): each top-level
    paddle.Tensor / DenseTensor becomes its bare array, the dict is pickled as it is; None when
    `obj` is no state dict (paddle.save then pickles it generically, or fails)."""
    if pickle_layout(obj, paddle) != PICKLE_STATE_DICT:
        return None
    out = {}
    for key, value in obj.items():
        if isinstance(value, paddle.Tensor):
            check_initialized(value, "Tensor")
            value = StaticArray(np.asarray(value.numpy()), dtype_name(value))
        elif isinstance(value, dense_type(paddle)):
            value = StaticArray(*dense_array(value))
        out[key] = value
    return out


# ---- loading ----------------------------------------------------------------------------------

def _c_order(arr: np.ndarray) -> np.ndarray:
    """`arr` in C order, its shape kept: np.ascontiguousarray makes a 0-d array 1-d, and the
    DenseTensor would then have shape [1] where paddle.load's has []."""
    return arr if arr.flags.c_contiguous else np.array(arr, order="C")


def dense_tensor(paddle: Any, arr: np.ndarray) -> Any:
    """A core.DenseTensor with a copy of `arr`: paddle.load's result in static-graph mode."""
    t = dense_type(paddle)()
    t.set(_c_order(arr), paddle.base.framework._current_expected_place_())
    return t


def selected_rows(paddle: Any, value: dict) -> Any:
    """A core.SelectedRows from the library's {"rows", "height", "value"} dict."""
    sr = _core(paddle).SelectedRows([int(r) for r in value["rows"]], int(value["height"]))
    sr.get_tensor().set(_c_order(value["value"]),
                        paddle.base.framework._current_expected_place_())
    return sr


def program_object(paddle: Any, data: bytes, fmt: str) -> Any:
    """The Program paddle.load gives for a saved program.  The library has read and checked the
    bytes first; Paddle then builds its object from them."""
    if fmt == "program":
        return paddle.base.framework.Program.parse_from_string(data)
    program = paddle.pir.Program()
    with tempfile.TemporaryDirectory(prefix="pdckpt-") as tmp:
        path = os.path.join(tmp, "program.json")
        with open(path, "wb") as f:
            f.write(data)
        paddle.base.core.deserialize_pir_program(path, program)
    return program
