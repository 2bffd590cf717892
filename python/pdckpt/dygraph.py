# SPDX-License-Identifier: Apache-2.0
"""The seeds' 1.x dygraph APIs over pdckpt, writing and reading what Paddle 1.5-1.8 wrote:

* ``save_persistables(model_dict, dirname, optimizers)`` / ``load_persistables(dirname)``
  (Paddle 1.5): a directory with one binary tensor file per parameter (named by the parameter's
  Paddle name, a ``/`` making subdirectories) and ``optimizers/<name>`` pickles;
* ``save_dygraph(state_dict, model_path)`` / ``load_dygraph(model_path)`` (Paddle 1.7/1.8):
  ``<model_path>.pdparams`` / ``.pdopt`` protocol-2 pickles (1.6's binary "TNUM" files load too).
"""

from __future__ import annotations

import os
from typing import Any

from . import _native

__all__ = ["save_persistables", "load_persistables", "save_dygraph", "load_dygraph"]

_OPT_DIR = "optimizers/"
# What fluid.save_dygraph names its two pickles: the registry's pickle suffixes (parameters, then
# optimizer state), exported by the C library rather than spelled here.
_PARAMS, _OPT = _native.SUFFIXES["pickle"][:2]


def _name_of(key: str, value: Any) -> str:
    name = getattr(value, "name", None)  # paddle.Tensor / Parameter carry their Paddle name
    return name if isinstance(name, str) and name else key


def save_persistables(model_dict: dict, dirname: str | os.PathLike = "save_dir",
                      optimizers: dict | None = None, *, durable: bool = True) -> None:
    """Paddle 1.5's ``fluid.dygraph.save_persistables``.  `optimizers` maps a name to what is
    pickled under ``optimizers/<name>`` (a ``pdckpt.OpaqueObject`` LearningRateDecay read from an
    old checkpoint, or any value pdckpt can pickle).  The directory is replaced atomically."""
    root = {}
    for key, value in model_dict.items():
        root[_name_of(key, value)] = value
    for name, value in (optimizers or {}).items():
        root[_OPT_DIR + name] = value
    _native.save(root, os.fspath(dirname), format="dygraph-dir", durable=durable)


def load_persistables(dirname: str | os.PathLike = "save_dir", *,
                      return_numpy: bool = False) -> tuple[dict, dict]:
    """Paddle 1.5's ``fluid.dygraph.load_persistables``: ``(params, optimizers)``, params keyed
    by variable name (Paddle tensors named so, or NumPy arrays with `return_numpy`)."""
    from . import load

    tree = load(os.fspath(dirname), format="dygraph-dir", return_numpy=return_numpy)
    params = {k: v for k, v in tree.items() if not k.startswith(_OPT_DIR)}
    optimizers = {k[len(_OPT_DIR):]: v for k, v in tree.items() if k.startswith(_OPT_DIR)}
    return params, optimizers


def _prefix(model_path: str | os.PathLike) -> str:
    path = os.fspath(model_path)
    for suffix in (_PARAMS, _OPT):
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path


def _optimizer_like(state_dict: dict) -> str | None:
    """None when `state_dict` is what ``Optimizer.state_dict()`` builds (every tensor keyed by its
    own Paddle name; LR_Scheduler, master_weights and other non-tensor entries as they are); else
    the first key that is not."""
    import numpy as np

    for key, value in state_dict.items():
        if isinstance(value, np.ndarray):
            return key
        name = getattr(value, "name", None)
        if hasattr(value, "shape") and isinstance(name, str) and name != key:
            return key
    return None


def save_dygraph(state_dict: dict, model_path: str | os.PathLike) -> str:
    """Paddle 1.7/1.8's ``fluid.save_dygraph``: a layer's state goes to ``<model_path>.pdparams``,
    an optimizer's (no parameters in it) to ``.pdopt``, as protocol-2 pickles.  Returns the path.

    A dict with no Parameter that is not an optimizer's state -- typically the parameters
    ``load_dygraph`` returned -- is refused (ValueError): Paddle 2.x would write it as ``.pdopt``,
    which the optimizer's save then silently overwrites, and Paddle 1.8 fails on it with an
    AttributeError (a NumPy array has no ``.name``)."""
    from . import save

    paddle = __import__("sys").modules.get("paddle")
    is_params = paddle is not None and any(
        isinstance(v, paddle.base.framework.EagerParamBase) for v in state_dict.values())
    if not is_params:
        odd = _optimizer_like(state_dict)
        if odd is not None:
            raise ValueError(
                f"save_dygraph({os.fspath(model_path)!r}): the dict holds no Parameter, so it "
                f"would be saved as an optimizer's {_OPT}, but entry {odd!r} is not optimizer "
                "state (a NumPy array, or a tensor whose Paddle name differs from its key: "
                "parameters as load_dygraph returns them); the optimizer's save_dygraph would "
                "then overwrite them.  Save a layer's parameters with "
                f"pdckpt.save(state, prefix + {_PARAMS!r}, protocol=2), or pass layer.state_dict()")
    path = _prefix(model_path) + (_PARAMS if is_params else _OPT)
    save(state_dict, path, protocol=2, pickle_layout="state-dict")  # fluid.save_dygraph's
    return path


def load_dygraph(model_path: str | os.PathLike, *, keep_name_table: bool = False,
                 return_numpy: bool = False) -> tuple[dict, dict | None]:
    """Paddle 1.7/1.8's ``fluid.load_dygraph``: ``(params, optimizer state or None)``."""
    from . import load

    prefix = _prefix(model_path)
    params = load(prefix + _PARAMS, keep_name_table=keep_name_table, return_numpy=return_numpy)
    opt = None
    if os.path.isfile(prefix + _OPT):
        opt = load(prefix + _OPT, keep_name_table=keep_name_table, return_numpy=return_numpy)
    return params, opt
