"""Hands pdckpt the same object a test hands Paddle: writes a text description of a Python object
(the grammar is in tests/support/tree_tool.c) plus a raw data file, and runs the tree tool, which
builds the value tree with the public C API and saves it."""
import struct
import subprocess
from pathlib import Path

import numpy as np

from conftest import BUILD

TREE_TOOL = Path(BUILD) / "tests" / "pdckpt_tree_tool"


class Obj:
    """An opaque Python object as pdckpt carries it: kind 'R' (REDUCE), 'N' (NEWOBJ) or 'G'."""

    def __init__(self, kind, module, name, args=None, state=None, items=None):
        self.kind, self.module, self.name = kind, module, name
        self.args, self.state, self.items = args, state, items


class Tensor:
    """A tensor with an explicit pdckpt dtype name (e.g. bfloat16 held as uint16 bits)."""

    def __init__(self, array, dtype=None, name=None):
        self.array, self.dtype, self.name = np.asarray(array, order="C"), dtype, name


def _hex(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return b.hex() if b else "-"


class _Writer:
    def __init__(self, share):
        self.tokens, self.data, self.share, self.labels = [], bytearray(), share, {}

    def tensor(self, array, dtype, name):
        array = np.asarray(array, order="C")
        while len(self.data) % 64:
            self.data.append(0)
        offset = len(self.data)
        self.data += array.tobytes()
        self.tokens += ["t", dtype, str(array.ndim), *map(str, array.shape), str(offset),
                        "." if name is None else _hex(name)]

    def paddle_tensor(self, t):
        dtype = str(t.dtype).replace("paddle.", "")
        self.tensor(np.array(t), dtype, t.name)

    def value(self, v):
        if self.share and isinstance(v, (list, dict, tuple, set, str, bytes)) and len(v) > 1:
            if id(v) in self.labels:
                self.tokens += ["@", str(self.labels[id(v)])]
                return
            self.labels[id(v)] = len(self.labels)
            self.tokens += ["=", str(self.labels[id(v)])]
        self._value(v)

    def _value(self, v):
        import paddle
        if v is None:
            self.tokens.append("N")
        elif isinstance(v, bool):
            self.tokens.append("T" if v else "F")
        elif isinstance(v, int):
            self.tokens += ["i", str(v)]
        elif isinstance(v, float):
            self.tokens += ["f", "%016x" % struct.unpack("<Q", struct.pack("<d", v))[0]]
        elif isinstance(v, str):
            self.tokens += ["s", _hex(v)]
        elif isinstance(v, bytes):
            self.tokens += ["b", _hex(v)]
        elif isinstance(v, paddle.Tensor):
            self.paddle_tensor(v)
        elif isinstance(v, np.ndarray):
            self.tensor(v, v.dtype.name, None)
        elif isinstance(v, Tensor):
            self.tensor(v.array, v.dtype or v.array.dtype.name, v.name)
        elif isinstance(v, Obj):
            self.tokens += ["o", v.kind, _hex(v.module), _hex(v.name)]
            for part in (v.args, v.state, v.items):
                if part is None:
                    self.tokens.append("x")
                else:
                    self.value(part)
        elif isinstance(v, dict):
            self.tokens += ["D", str(len(v))]
            for k, x in v.items():
                self.value(k)
                self.value(x)
        elif isinstance(v, (list, tuple, set, frozenset)):
            self.tokens += [{list: "L", tuple: "U"}.get(type(v), "S"), str(len(v))]
            for x in v:
                self.value(x)
        else:
            raise TypeError(f"cannot describe {type(v)}")


def describe(obj, directory, stem, share=False):
    """Writes <stem>.desc and <stem>.data under directory; returns their paths."""
    w = _Writer(share)
    w.value(obj)
    desc, data = Path(directory) / f"{stem}.desc", Path(directory) / f"{stem}.data"
    desc.write_text(" ".join(w.tokens) + "\n")
    data.write_bytes(bytes(w.data))
    return desc, data


def save(obj, out, *, protocol=4, numpy_module="numpy._core", share=False, fmt=None, tool=None):
    """pdckpt saves `obj` to `out`; returns the CompletedProcess (check returncode yourself)."""
    out = Path(out)
    desc, data = describe(obj, out.parent, out.name + ".in", share)
    args = [str(tool or TREE_TOOL), "save", desc, data, out, "--protocol", str(protocol),
            "--numpy-module", numpy_module]
    if fmt:
        args += ["--format", fmt]
    return subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=600)
