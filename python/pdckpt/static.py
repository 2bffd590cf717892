# SPDX-License-Identifier: Apache-2.0
"""The seeds' static-graph APIs over pdckpt: a *program file* (``__model__`` / ``*.pdmodel`` /
PIR ``*.json``) names and checks the variables, and the C library writes and reads the files
byte-compatibly with Paddle's ``save_persistables`` / ``load_persistables`` /
``serialize_persistables`` and inference models' ``.pdiparams``.

Values come from a ``state`` dict (name -> array or ``paddle.Tensor``) or, when ``executor`` is a
Paddle ``Executor`` and no state is given, from Paddle's global scope, as Paddle does.
"""

from __future__ import annotations

import os
from typing import Any

from . import _native

__all__ = ["save_persistables", "load_persistables", "save_inference_params", "persistables"]

# An inference model's file names: its program (.pdmodel, else PIR .json) and parameters
# (.pdiparams), the first suffix of each format in the registry, exported by the C library.
_PROGRAMS = (_native.SUFFIXES["program"][0], _native.SUFFIXES["pir-json"][0])
_PARAMS = _native.SUFFIXES["combined"][0]


def persistables(main_program: str | os.PathLike) -> list[str]:
    """The variables a static save of this program holds, in file order (Paddle's rule)."""
    return _native.program_persistables(os.fspath(main_program))


def _scope_state(names: list[str]) -> dict:
    import numpy as np
    import paddle

    scope = paddle.static.global_scope()
    state = {}
    for name in names:
        var = scope.find_var(name)
        if var is None:
            shown = _native.display_text(name)  # a name from the program file
            raise ValueError(f"variable '{shown}' of the program is not in Paddle's global scope")
        state[name] = np.array(var.get_tensor())
    return state


def save_persistables(executor: Any, dirname: str | os.PathLike | None,
                      main_program: str | os.PathLike, filename: str | None = None, *,
                      state: dict | None = None, durable: bool = True) -> bytes | None:
    """Paddle's ``save_persistables(executor, dirname, main_program, filename)``.

    ``filename=None``: one file per variable in `dirname`; a `filename`: one combined file
    ``dirname/filename``; ``dirname=None`` (and no filename): returns the bytes
    (``serialize_persistables``).  Every variable is checked against the program's declaration.
    """
    program = os.fspath(main_program)
    if state is None:
        if executor is None:
            raise ValueError("pass state= (name -> array) or a Paddle Executor")
        state = _scope_state(persistables(program))
    if dirname is None and filename is not None:
        raise ValueError("filename needs a dirname (dirname=None saves to memory)")
    target = None if dirname is None else os.fspath(dirname)
    return _native.save_persistables(state, program, target, filename, durable)


def load_persistables(executor: Any, dirname: str | os.PathLike | bytes,
                      main_program: str | os.PathLike, filename: str | None = None) -> dict:
    """Paddle's ``load_persistables``: returns {name: NumPy array} in the program's order (bytes from
    ``save_persistables(..., None, ...)`` are accepted as `dirname`).  With a Paddle
    ``Executor``, the values are also set into its global scope, as Paddle does."""
    from . import load

    program = os.fspath(main_program)
    if isinstance(dirname, (bytes, bytearray, memoryview)):
        state = load(bytes(dirname), program=program, format="combined", return_numpy=True)
    else:
        source = os.fspath(dirname) if filename is None else os.path.join(dirname, filename)
        state = load(source, program=program, return_numpy=True)
    if executor is not None and hasattr(executor, "run"):
        import paddle

        scope = paddle.static.global_scope()
        for name, value in state.items():
            scope.var(name).get_tensor().set(value, paddle.CPUPlace())
    return state


def save_inference_params(path_prefix: str | os.PathLike, state: dict, *,
                          durable: bool = True) -> str:
    """New weights for an inference model: writes ``<prefix>.pdiparams`` (atomically) in the
    order and with the checks its program (``<prefix>.pdmodel`` or PIR ``<prefix>.json``)
    gives, so Paddle's ``load_inference_model`` runs it.  A state keyed by the structured names
    of the ``<prefix>.pdiparams.info`` beside it (what ``load(prefix)`` gives for a Paddle 2.x
    ``jit.save`` model) is matched to the program by that info.  Returns the written path."""
    from . import _by_variable_names

    prefix = os.fspath(path_prefix)
    program = next((prefix + s for s in _PROGRAMS if os.path.isfile(prefix + s)), None)
    if program is None:
        raise FileNotFoundError(" / ".join(prefix + s for s in _PROGRAMS)
                                + ": no program for the prefix")
    info = prefix + _PARAMS + ".info"  # pdckpt:names-ok: jit.save's name beside the parameters
    if os.path.isfile(info):
        state = _by_variable_names(state, info)
    _native.save_persistables(state, program, None, prefix + _PARAMS, durable)
    return prefix + _PARAMS
