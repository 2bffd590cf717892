# SPDX-License-Identifier: Apache-2.0
"""Hands pdckpt the same object a test hands Paddle: writes a text description of a Python object
(the grammar is in tests/support/tree_tool.c) plus a raw data file, and runs the tree tool, which
builds the value tree with the public C API and saves it."""
import collections
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
    def __init__(self, share, data_file, ordered_dict_objects=True):
        self.tokens, self.data, self.share, self.labels = [], data_file, share, {}
        self.ordered_dict_objects = ordered_dict_objects

    def tensor(self, array, dtype, name):
        array = np.asarray(array, order="C")
        offset = (self.data.tell() + 63) // 64 * 64
        self.data.write(bytes(offset - self.data.tell()))
        self.data.write(memoryview(array.reshape(-1).view(np.uint8)) if array.size else b"")
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
        elif type(v) is collections.OrderedDict and self.ordered_dict_objects and self.tokens:
            # What a pickle holds: OrderedDict.__reduce__ = (cls, (), None, None, iter(items)).
            state = v.__dict__ if getattr(v, "__dict__", None) else None
            self._value(Obj("R", "collections", "OrderedDict", (), state, dict(v)))
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


def describe(obj, directory, stem, share=False, ordered_dict_objects=True):
    """Writes <stem>.desc and <stem>.data under directory; returns their paths.  An OrderedDict
    is described as the object it is in a pickle, or (ordered_dict_objects=False) as a dict; at the
    root always as a dict (there the tests save state dicts, which Paddle turns into dicts)."""
    desc, data = Path(directory) / f"{stem}.desc", Path(directory) / f"{stem}.data"
    with open(data, "wb") as f:
        w = _Writer(share, f, ordered_dict_objects)
        w.value(obj)
    desc.write_text(" ".join(w.tokens) + "\n")
    return desc, data


def _allow(names):
    return [a for name in names for a in ("--allow-global", name)]


def save(obj, out, *, protocol=4, numpy_module="numpy._core", share=False, fmt=None, tool=None,
         ordered_dict_objects=True, allow=()):
    """pdckpt saves `obj` to `out`; returns the CompletedProcess (check returncode yourself).
    `allow`: "module.name" globals beyond pdckpt's allowlist that objects may name."""
    out = Path(out)
    desc, data = describe(obj, out.parent, out.name + ".in", share, ordered_dict_objects)
    args = [str(tool or TREE_TOOL), "save", desc, data, out, "--protocol", str(protocol),
            "--numpy-module", numpy_module, *_allow(allow)]
    if fmt:
        args += ["--format", fmt]
    return _run(args)


def _run(args):
    return subprocess.run(list(map(str, args)), capture_output=True, text=True, timeout=600)


def save_dygraph(params, opt, prefix, *, numpy_module="numpy._core", tool=None):
    """pdckpt_save_dygraph(params, opt, prefix): <prefix>.pdparams + <prefix>.pdopt."""
    prefix = Path(prefix)
    data = prefix.parent / (prefix.name + ".in.data")
    with open(data, "wb") as f:
        descs = []
        for stem, obj in (("params", params), ("opt", opt)):
            if obj is None:
                descs.append("-")
                continue
            w = _Writer(False, f)
            w.value(obj)
            desc = prefix.parent / f"{prefix.name}.in.{stem}.desc"
            desc.write_text(" ".join(w.tokens) + "\n")
            descs.append(desc)
    return _run([tool or TREE_TOOL, "dygraph", *descs, data, prefix, "--numpy-module", numpy_module])


def save_persistables(model, optimizers, dirname, *, tool=None, allow=()):
    """pdckpt_dygraph_save_persistables(model, dirname, optimizers)."""
    dirname = Path(dirname)
    data = dirname.parent / (dirname.name + ".in.data")
    with open(data, "wb") as f:
        descs = []
        for stem, obj in (("model", model), ("opts", optimizers)):
            if obj is None:
                descs.append("-")
                continue
            w = _Writer(False, f)
            w.value(obj)
            desc = dirname.parent / f"{dirname.name}.in.{stem}.desc"
            desc.write_text(" ".join(w.tokens) + "\n")
            descs.append(desc)
    return _run([tool or TREE_TOOL, "persistables", *descs, data, dirname, *_allow(allow)])
