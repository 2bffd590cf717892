"""pdckpt -- save and load PaddlePaddle checkpoints safely and fast; a drop-in for
``paddle.save`` / ``paddle.load``::

    import pdckpt
    pdckpt.save(model.state_dict(), "model.pdparams")      # was: paddle.save(...)
    model.set_state_dict(pdckpt.load("model.pdparams"))    # was: paddle.load(...)

Every byte is read and written by the pdckpt C library (this package only converts objects):
saves are atomic and durable (a temporary file, fsync, rename), loads never run code from the
file, and tensor data is mapped rather than read -- ``pdckpt.open`` gives NumPy views of the file
and DLPack tensors without copying.  ``import pdckpt`` needs only NumPy; Paddle tensors are
accepted and returned when Paddle is installed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any, Iterator

from . import _native
from ._convert import (NAME_TABLE, OpaqueObject, leaf_hook, make_array, make_opaque,
                       paddle_result)
from ._errors import (BY_STATUS, ArgumentError, CorruptError, Error, FormatError, IoError,
                      LimitError, MismatchError, MpiError, NoMemoryError, NotFoundError,
                      UnsupportedError)

__all__ = [
    "save", "load", "open", "Reader", "Slice", "Tensor", "OpaqueObject", "formats", "format_for_path",
    "Error", "ArgumentError", "NoMemoryError", "IoError", "FormatError", "UnsupportedError",
    "NotFoundError", "MismatchError", "LimitError", "MpiError", "CorruptError", "dygraph",
    "static",
]

__version__ = _native.version
Tensor = _native.Tensor
_native._configure(BY_STATUS, Error, leaf_hook, make_opaque, make_array)

_SAVE_CONFIGS = {"format", "durable", "numpy_module", "skip_non_tensors", "use_binary_format",
                 "pickle_protocol", "max_shard_size", "metadata"}
_LOAD_CONFIGS = {"model_filename", "params_filename", "keep_name_table", "return_numpy",
                 "format", "names", "program", "mmap", "exact_dtypes", "verify"}
_NUMPY_MODULES = {"numpy.core": 0, "numpy._core": 1}
_SAFETENSORS = ("safetensors", "safetensors-sharded")  # formats whose files carry __metadata__
_METADATA = "__metadata__"
_SHARDED_DIRS = ("vars-dir", "safetensors-sharded", "pickle-sharded")


def formats() -> dict[str, tuple[bool, bool]]:
    """``{format name: (can_load, can_save)}`` for this build of the library."""
    return _native.formats()


def format_for_path(path: str | os.PathLike) -> str | None:
    """The format ``save`` picks for `path` from its name (``None``: none, i.e. a pickle)."""
    return _native.format_from_path(os.fspath(path))


def _check_configs(configs: dict, allowed: set, what: str) -> None:
    for key in configs:
        if key not in allowed:
            raise ValueError(f"The additional config ({key}) of `{what}` is not supported.")


def _paddle_module(import_it: bool) -> Any:
    """Paddle if it is (or, with import_it, can be) imported; else None."""
    paddle = sys.modules.get("paddle")
    if paddle is None and import_it and importlib.util.find_spec("paddle") is not None:
        import paddle
    return paddle


# ---- save -------------------------------------------------------------------------------------

def _shard_size(value: Any) -> int:
    """`max_shard_size` in bytes: an int, or a string as huggingface_hub takes it ("5GB")."""
    if isinstance(value, str):
        return _native.parse_size(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_shard_size must be an int or a string like '5GB', not "
                        f"{type(value).__name__}")
    if value <= 0:
        raise ValueError(f"max_shard_size must be positive, not {value}")
    return value


def _with_metadata(obj: Any, metadata: Any) -> dict:
    """`obj` with safetensors' string metadata as its first entry, "__metadata__"."""
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError("metadata must be a dict of str to str (safetensors' __metadata__)")
    if not isinstance(obj, dict):
        raise TypeError(f"metadata= needs a dict of tensors to save, not {type(obj).__name__}")
    if _METADATA in obj:
        raise ValueError(f"both metadata= and a {_METADATA!r} entry were given; pass one")
    return {_METADATA: dict(metadata), **obj}


def _hf_options(obj: Any, path: Any, fmt: str | None, configs: dict) -> tuple[Any, str | None, int]:
    """Applies the Hugging Face configs: max_shard_size (a directory or a name without a known
    suffix becomes a directory of safetensors shards) and metadata (safetensors only)."""
    max_shard = configs.get("max_shard_size")
    max_shard = 0 if max_shard is None else _shard_size(max_shard)
    if max_shard and hasattr(path, "write"):
        raise ValueError("max_shard_size writes several files: pass a directory or file name")
    if max_shard and not hasattr(path, "write") and fmt is None:
        fmt = _native.format_from_path(os.fspath(path))
        if fmt in (None, "vars-dir"):
            fmt = "safetensors-sharded"
    if configs.get("metadata") is not None:
        target = fmt or (None if hasattr(path, "write") else
                         _native.format_from_path(os.fspath(path)))
        if target not in _SAFETENSORS:
            raise ValueError(f"metadata= is stored by safetensors files, not by {target or 'pickle'}")
        obj = _with_metadata(obj, configs["metadata"])
    return obj, fmt, max_shard

def save(obj: Any, path: Any, protocol: int = 4, **configs: Any) -> None:
    """Saves `obj` to `path`, like ``paddle.save``.

    `obj` may nest dicts, lists, tuples and sets of ``paddle.Tensor`` (saved with its ``name``),
    NumPy arrays, numbers, strings, bytes, ``None`` and ``pdckpt.OpaqueObject``.  Tensor bytes are
    written straight from the arrays' and (CPU) tensors' own memory: nothing is copied first.

    `path` is a file name, a directory (a trailing ``/``, or an existing directory: one file per
    variable), or a binary file object (``io.BytesIO``...).  The format follows the name:
    ``.pdparams`` / ``.pdopt`` (and any other name) a pickle as ``paddle.save`` writes it,
    ``.pdiparams`` a combined tensor file, ``.safetensors``, a directory per-variable files; a
    file object gets a pickle.  ``format=`` overrides this ("pickle", "combined", "safetensors",
    "vars-dir", "tensor").

    Configs: ``format``; ``durable`` (default True: fsync before the rename, and the directory
    after it; False skips the syncs); ``numpy_module`` ("numpy.core", the default, readable by
    NumPy 1.x and 2.x, or "numpy._core"); ``skip_non_tensors`` (flat formats drop non-tensor
    values instead of failing); Paddle's ``use_binary_format`` (one tensor as a binary tensor
    stream) and ``pickle_protocol`` (an old name for `protocol`).  Hugging Face:
    ``max_shard_size`` (an int, or "5GB" / "500MB" as huggingface_hub takes it) splits the tensors
    into ``model-00001-of-0000N.safetensors`` shards plus ``model.safetensors.index.json``, laid out
    as huggingface_hub lays them out (a directory or a name without a known suffix gets safetensors
    shards; ``x.pdparams`` gets PaddleNLP's ``x-00001-of-0000N.pdparams``); ``metadata`` (a dict of
    str) is written as safetensors' ``__metadata__``.

    A save to a path is atomic: on any error the previous file is left as it was.  Raises
    ``pdckpt.Error`` (e.g. ``UnsupportedError`` for a value the format cannot hold) and
    ``TypeError`` for objects pdckpt cannot save.
    """
    _check_configs(configs, _SAVE_CONFIGS, "paddle.save")
    protocol = configs.get("pickle_protocol", protocol)
    if not isinstance(protocol, int) or isinstance(protocol, bool) or not 1 < protocol < 5:
        raise ValueError(f"Expected 1<'protocol'<5, but received protocol={protocol}")
    fmt = configs.get("format")
    if configs.get("use_binary_format"):
        fmt = fmt or "tensor"
    obj, fmt, max_shard = _hf_options(obj, path, fmt, configs)
    numpy_module = configs.get("numpy_module", "numpy.core")
    if numpy_module not in _NUMPY_MODULES:
        raise ValueError(f"numpy_module must be one of {sorted(_NUMPY_MODULES)}")
    options = dict(durable=bool(configs.get("durable", True)), protocol=protocol,
                   numpy_module=_NUMPY_MODULES[numpy_module],
                   skip_non_tensors=bool(configs.get("skip_non_tensors", False)),
                   max_shard_size=max_shard)
    if hasattr(path, "write"):
        _native.save(obj, write=path.write, format=fmt or "pickle", **options)
        return
    path = os.fspath(path)
    if not isinstance(path, str):
        path = os.fsdecode(path)
    fmt = fmt or _native.format_from_path(path) or "pickle"
    parent = os.path.dirname(path.rstrip("/") if fmt in _SHARDED_DIRS else path)
    if parent and not os.path.isdir(parent):
        os.makedirs(parent, exist_ok=True)  # paddle.save creates missing directories too
    _native.save(obj, path, format=fmt, **options)


# ---- load -------------------------------------------------------------------------------------

def _memory_source(path: Any) -> bytes | None:
    if isinstance(path, bytes):
        return path
    if isinstance(path, (bytearray, memoryview)):
        return bytes(path)  # arrays will view these bytes: they must not change underneath
    if hasattr(path, "read"):
        data = path.read()
        if not isinstance(data, bytes):
            raise TypeError("pdckpt.load needs a binary file object (read() returned "
                            f"{type(data).__name__})")
        return data
    return None


def _program_for(path: str) -> str | None:
    for suffix in (".pdmodel", ".json"):
        if os.path.isfile(path + suffix):
            return path + suffix
    return None


def _resolve(path: str, model_filename: str | None, params_filename: str | None,
             program: str | None) -> tuple[str, str | None]:
    """Paddle's naming of inference-model files: a prefix ("inference/model" for model.pdmodel
    + model.pdiparams) or a 1.x directory with model_filename / params_filename."""
    if os.path.isdir(path):
        if model_filename is not None or params_filename is not None:
            model = os.path.join(path, model_filename or "__model__")
            program = program or (model if os.path.isfile(model) else None)
        if params_filename is not None:
            return os.path.join(path, params_filename), program
        return path, program
    if not os.path.exists(path) and os.path.isfile(path + ".pdiparams"):
        return path + ".pdiparams", program or _program_for(path)
    return path, program


def _open_tree(path: Any, cfg: dict) -> Any:
    options = dict(format=cfg.get("format"), names=cfg.get("names"),
                   mmap=bool(cfg.get("mmap", True)), verify=bool(cfg.get("verify", False)))
    data = _memory_source(path)
    if data is not None:
        return _native.load(data=data, program=cfg.get("program"), **options)
    path = os.fspath(path)
    if not isinstance(path, str):
        path = os.fsdecode(path)
    target, program = _resolve(path, cfg.get("model_filename"), cfg.get("params_filename"),
                               cfg.get("program"))
    if program is not None:
        kind = "pir-json" if program.endswith(".json") else "program"
        if not _native.formats()[kind][0]:
            raise UnsupportedError(f"{program}: naming the tensors of {target} needs the "
                                   f"'{kind}' format, which this build cannot read yet")
    return _native.load(target, program=program, **options)


def load(path: Any, **configs: Any) -> Any:
    """Loads what ``paddle.save`` (or ``pdckpt.save``) wrote, like ``paddle.load``.

    `path` is a file, a directory of per-variable files, an inference-model prefix
    (``"inference/model"`` for ``model.pdiparams``), ``bytes`` or a binary file object.  The
    format is detected from the bytes; ``format=`` forces one.

    Returns what ``paddle.load`` returns: ``paddle.Tensor``s named as saved when Paddle is
    installed and ``return_numpy`` is False (each is a copy: Paddle tensors own their memory),
    NumPy arrays otherwise.  Arrays are read-only views of the mapped file (no copy); with
    ``mmap=False`` the file is read into private memory and the arrays are writable.  bfloat16/float8 arrays hold
    the raw bits (uint16/uint8, as ``Tensor.numpy()`` gives bfloat16) unless
    ``exact_dtypes=True`` (ml_dtypes types).  Opaque pickled objects come back as
    ``pdckpt.OpaqueObject`` -- nothing from the file is imported or run.

    Configs: Paddle's ``return_numpy``, ``keep_name_table``, ``model_filename`` and
    ``params_filename`` (1.x inference directories); and ``format``, ``names`` (the variable
    names of a combined file, in order), ``program`` (a .pdmodel / model.json naming them),
    ``mmap``, ``exact_dtypes``, ``verify`` (extra semantic checks).
    """
    _check_configs(configs, _LOAD_CONFIGS, "paddle.load")
    return_numpy = bool(configs.get("return_numpy", False))
    exact = bool(configs.get("exact_dtypes", False))
    tree = _open_tree(path, configs)
    info: dict = {}
    try:
        obj = tree.convert(None, lambda data: make_array(data, exact), info)
        if tree.format in _SAFETENSORS and isinstance(obj, dict):
            obj.pop(_METADATA, None)  # strings about the file, not a tensor: Reader.metadata()
    finally:
        tree.close()
    paddle = None if return_numpy else _paddle_module(import_it=True)
    return paddle_result(obj, info, return_numpy, bool(configs.get("keep_name_table", False)),
                         paddle)


# ---- the lazy reader --------------------------------------------------------------------------

class Reader:
    """A checkpoint opened for reading; see :func:`open`.

    Keys are the top-level entries: dict keys, list indexes, or for a single tensor file its
    name.  ``reader[key]`` converts one entry: tensors are read-only NumPy views of the mapped
    file (no copy), a Paddle ``(name, tensor)`` pair its array, containers their contents.
    ``reader.tensor(key)`` is the :class:`pdckpt.Tensor` (metadata, DLPack).  Arrays and tensors
    handed out stay valid after :meth:`close`.
    """

    def __init__(self, tree: Any, exact_dtypes: bool = False) -> None:
        self._tree = tree
        self._exact = exact_dtypes
        keys = tree.keys()
        # safetensors' __metadata__ is not an entry: metadata() returns it.
        self._meta = (keys.index(_METADATA) if tree.format in _SAFETENSORS and _METADATA in keys
                      else None)
        self._pos = [i for i in range(len(keys)) if i != self._meta]
        self._keys = [keys[i] for i in self._pos]
        self._index = {}
        for i in self._pos:
            try:
                self._index.setdefault(keys[i], i)
            except TypeError:
                pass  # an unhashable key (a list): reachable by position through items()

    @property
    def format(self) -> str:
        """The format that was read ("safetensors", "combined", "pickle", ...)."""
        return self._tree.format

    @property
    def closed(self) -> bool:
        return self._tree.closed

    def keys(self) -> list:
        return list(self._keys)

    def __iter__(self) -> Iterator:
        return iter(list(self._keys))

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: Any) -> bool:
        try:
            return key in self._index
        except TypeError:
            return False

    def _position(self, key: Any) -> int:
        try:
            return self._index[key]
        except (KeyError, TypeError):
            raise KeyError(key) from None

    def _convert(self, i: int) -> Any:
        value = self._tree.convert(i, lambda data: make_array(data, self._exact))
        if (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str)
                and self._tree.kind(i) == "tuple" and hasattr(value[1], "dtype")):
            return value[1]  # Paddle's (name, ndarray) form of a tensor
        return value

    def __getitem__(self, key: Any) -> Any:
        return self._convert(self._position(key))

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if key in self else default

    def items(self) -> Iterator[tuple]:
        for key, i in zip(list(self._keys), list(self._pos)):
            yield key, self._convert(i)

    def tensor(self, key: Any) -> Tensor:
        """The entry as a :class:`pdckpt.Tensor` (TypeError if it is not a tensor)."""
        return self._tree.tensor(self._position(key))

    def kind(self, key: Any) -> str:
        """The entry's kind without converting it: "tensor", "dict", "int", "object", ..."""
        return self._tree.kind(self._position(key))

    def metadata(self) -> dict[str, str] | None:
        """safetensors' ``__metadata__`` (a dict of str; for a sharded checkpoint, its first
        shard's), or None when the file has none or is not safetensors."""
        return None if self._meta is None else self._tree.convert(self._meta, make_array)

    def get_slice(self, key: Any) -> "Slice":
        """A lazy slice of a tensor, like safetensors' ``safe_open(...).get_slice(name)``:
        ``reader.get_slice("w")[2:5]`` copies only those rows out of the mapped file."""
        return Slice(self, key)

    def close(self) -> None:
        """Frees the loaded tree.  Arrays and tensors already handed out stay valid."""
        self._tree.close()

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._keys)} entries"
        return f"<pdckpt.Reader {self.format}, {state}>"


class Slice:
    """One tensor of a :class:`Reader`, read only where it is indexed (see
    :meth:`Reader.get_slice`).  Indexing takes anything NumPy basic or advanced indexing takes
    and returns a new, writable array holding just the selected elements; only the pages of the
    mapped file that hold them are read."""

    def __init__(self, reader: Reader, key: Any) -> None:
        self._reader = reader
        self._key = key
        self._tensor = reader.tensor(key)

    def get_shape(self) -> list[int]:
        return list(self._tensor.shape)

    def get_dtype(self) -> str:
        """pdckpt's (NumPy's) dtype name: "float32", "bfloat16", ..."""
        return self._tensor.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._tensor.shape)

    @property
    def dtype(self) -> str:
        return self._tensor.dtype

    def __len__(self) -> int:
        if not self._tensor.shape:
            raise TypeError("len() of a 0-d tensor")
        return self._tensor.shape[0]

    def __getitem__(self, index: Any) -> Any:
        view = self._reader[self._key]  # a view of the mapping: nothing is read yet
        return view[index].copy()

    def __repr__(self) -> str:
        return f"<pdckpt.Slice {self._key!r} {self.dtype} {list(self.shape)}>"


def open(path: Any, *, format: str | None = None, names: list[str] | None = None,
         program: str | None = None, exact_dtypes: bool = False, mmap: bool = True) -> Reader:
    """Opens a checkpoint for lazy reading: the file is mapped and its structure parsed; no tensor
    data is read until an array is used.  `path` is anything :func:`load` accepts."""
    cfg = {"format": format, "names": names, "program": program, "mmap": mmap}
    return Reader(_open_tree(path, cfg), exact_dtypes)


from . import dygraph, static  # noqa: E402  (the seeds' 1.x dygraph and static APIs)
