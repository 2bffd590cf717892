# SPDX-License-Identifier: Apache-2.0
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

import builtins
import importlib.util
import io
import os
import re
import stat
import sys
import warnings
from typing import Any, Iterator

from . import _errors, _native, _paddle_io
import numpy as _np

from ._convert import (NAME_TABLE, OpaqueObject, leaf_hook, make_opaque, numpy_dtype,
                       paddle_save_spec, paddle_spec)
from ._errors import (BY_STATUS, ArgumentError, CorruptError, Error, FormatError, IoError,
                      LimitError, MismatchError, MpiError, NoMemoryError, NotFoundError,
                      UnsupportedError)
from ._errors import ArgumentTypeError

__all__ = [
    "save", "load", "open", "Reader", "Slice", "Tensor", "OpaqueObject", "formats", "format_for_path",
    "Error", "ArgumentError", "NoMemoryError", "IoError", "FormatError", "UnsupportedError",
    "NotFoundError", "MismatchError", "LimitError", "MpiError", "CorruptError", "dygraph",
    "static", "ArgumentTypeError", "stats", "nonfinite", "plot_stats", "trim_memory",
]

__version__ = _native.version
Tensor = _native.Tensor
_native._configure(BY_STATUS, Error, leaf_hook, make_opaque, numpy_dtype, _np.ndarray)

_SAVE_CONFIGS = {"format", "durable", "numpy_module", "skip_non_tensors", "use_binary_format",
                 "pickle_protocol", "allowed_globals", "reinterpret", "max_shard_size",
                 "metadata", "safetensors", "pickle_layout"}
_LOAD_CONFIGS = {"model_filename", "params_filename", "keep_name_table", "return_numpy",
                 "format", "names", "program", "mmap", "exact_dtypes", "verify", "allowed_globals",
                 "reinterpret", "threads", "safetensors", "max_stream_bytes"}
_NUMPY_MODULES = {"numpy.core": 0, "numpy._core": 1}
_SAFETENSORS = ("safetensors", "safetensors-sharded")  # formats whose files carry __metadata__
_METADATA = "__metadata__"
# Formats whose target is a directory (a trailing "/" is then no missing file name).
_DIR_FORMATS = ("vars-dir", "dygraph-dir", "safetensors-sharded", "pickle-sharded")
# What paddle.load reads from a directory or an inference-model prefix (its _legacy_load: a
# save_vars / save_params directory, save_inference_model / jit.save): NumPy arrays, whatever
# return_numpy says.
_LEGACY_NUMPY = ("vars-dir", "combined", "inference")


def formats() -> dict[str, tuple[bool, bool]]:
    """``{format name: (can_load, can_save)}`` for this build of the library."""
    return _native.formats()


def trim_memory() -> None:
    """Hands back the memory of freed large loads that pdckpt keeps for the next load.

    A load of 32 MiB or more reads into a block of its own; when its last tensor is gone, up to
    four such blocks (1/8 of physical memory in all; ``PDCKPT_BLOCK_CACHE=<bytes>`` in the
    environment sets the cap, ``0`` turns it off) are kept so that the next load does not fault
    its memory in again.  The kernel may take their pages back under memory pressure anyway."""
    _native.trim_memory()


def format_for_path(path: str | os.PathLike) -> str | None:
    """The format ``save`` picks for `path` from its name (``None``: none, i.e. a pickle)."""
    return _native.format_from_path(os.fspath(path))


def _check_configs(configs: dict, allowed: set, what: str) -> None:
    for key in configs:
        if key not in allowed:
            raise _errors.make(ArgumentError, None,
                               f"The additional config ({key}) of `{what}` is not supported.")


def _allowed_globals(value: Any) -> list[str] | None:
    """The allowed_globals config: "module.name" strings (a lone str would be its characters)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not all(isinstance(v, str) for v in value):
        raise TypeError("allowed_globals must be a list of 'module.name' strings")
    return list(value)


def _reinterpret_pairs(spec: Any) -> tuple | None:
    """``{"uint16": "bfloat16"}``, ``"uint16=bfloat16"`` or pairs -> ((from, to), ...)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = [spec]
    items = spec.items() if isinstance(spec, dict) else spec
    pairs = []
    for item in items:
        if isinstance(item, str):
            if "=" not in item:
                raise ValueError(f"reinterpret: expected FROM=TO, found {item!r}")
            item = tuple(item.split("=", 1))
        frm, to = item
        pairs.append((str(getattr(frm, "name", frm)), str(getattr(to, "name", to))))
    return tuple(pairs)


_PADDLE_FOUND: list = []


def _paddle_available() -> bool:
    """Paddle is imported, or can be (looked up once, without importing it)."""
    if "paddle" in sys.modules:
        return True
    if not _PADDLE_FOUND:
        _PADDLE_FOUND.append(importlib.util.find_spec("paddle") is not None)
    return _PADDLE_FOUND[0]


def _paddle_module(import_it: bool) -> Any:
    """Paddle if it is (or, with import_it, can be) imported; else None."""
    paddle = sys.modules.get("paddle")
    if paddle is None and import_it and importlib.util.find_spec("paddle") is not None:
        import paddle
    return paddle


# ---- save -------------------------------------------------------------------------------------

def _paddle_object(obj: Any, fmt: str | None, binary: Any) -> tuple[Any, str | None]:
    """Paddle's own objects as paddle.save takes them: use_binary_format's one tensor or
    SelectedRows, a Program's serialised bytes; anything else is saved as it is."""
    if not isinstance(binary, bool):
        raise _errors.make(ArgumentTypeError, None, "use_binary_format must be True or False, "
                           f"not {type(binary).__name__} {binary!r}")
    paddle = _paddle_io.paddle_module()
    if binary:
        value, kind = _paddle_io.binary_value(obj, paddle)
        return value, fmt or kind
    program = _paddle_io.program_bytes(obj, paddle)
    if program is not None:
        return program[0], fmt or program[1]
    return obj, fmt


def _save_path(path: Any, fmt: str | None, sharded: bool = False) -> str:
    """`path` as a str, checked as paddle.save checks it (ValueError where Paddle raises one), its
    missing parent directories made (paddle.save makes them too, before anything else)."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise _errors.make(ArgumentError, None, "path must be a file name (str or os.PathLike) "
                           f"or a binary file object with write(), not {type(path).__name__}")
    path = os.fspath(path)
    if not isinstance(path, str):
        path = os.fsdecode(path)
    if fmt not in _DIR_FORMATS and not sharded and not os.path.basename(path):
        raise _errors.make(ArgumentError, path, "expected dirname/filename, found no file name "
                           "(paddle.save needs one); format='vars-dir' writes a directory of "
                           "one file per variable")
    named = fmt or _native.format_from_path(path)
    parent = os.path.dirname(path.rstrip("/") if named in _DIR_FORMATS or sharded else path)
    if parent and not os.path.isdir(parent):
        os.makedirs(parent, exist_ok=True)
    return path


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

    `path` is a file name, an existing directory (one file per variable; ``format="vars-dir"``
    makes one), or a binary file object (``io.BytesIO``...: written at its position).  The
    format follows the name: ``.pdparams`` / ``.pdopt`` (and any other name) a pickle as
    ``paddle.save`` writes it,
    ``.pdiparams`` a combined tensor file, ``.safetensors``, a directory per-variable files; a
    file object gets a pickle.  ``format=`` overrides this ("pickle", "combined", "safetensors",
    "vars-dir", "tensor").

    Configs: ``format``; ``durable`` (default True: fsync before the rename, and the directory
    after it; False skips the syncs); ``numpy_module`` ("numpy.core", the default, readable by
    NumPy 1.x and 2.x, or "numpy._core"); ``skip_non_tensors`` (flat formats drop non-tensor
    values instead of failing, and a ``UserWarning`` lists what was dropped; safetensors keeps
    them in its metadata unless this is set); ``reinterpret`` (``{"uint16": "bfloat16"}``: retype
    every tensor of the first dtype as the second, same bits -- for arrays that hold another
    type's bits); Paddle's ``use_binary_format`` (one tensor or SelectedRows as a binary stream)
    and ``pickle_protocol`` (an old name for `protocol`); ``allowed_globals`` (classes
    "module.name" beyond pdckpt's pickle allowlist that an ``OpaqueObject`` may name: the file
    will make ``paddle.load`` import and call them, so name only classes you trust).  A static
    ``Program`` is saved as Paddle saves it (its ProgramDesc bytes or PIR JSON, checked by the
    library).  Hugging Face: ``max_shard_size`` (an int, or "5GB" / "500MB" as huggingface_hub
    takes it) splits the tensors into ``model-00001-of-0000N.safetensors`` shards plus
    ``model.safetensors.index.json``, laid out as huggingface_hub lays them out (a directory or a
    name without a known suffix gets safetensors shards; ``x.pdparams`` gets PaddleNLP's
    ``x-00001-of-0000N.pdparams``); ``metadata`` (a dict of str) is written as safetensors'
    ``__metadata__``.  ``safetensors=True`` (Paddle 3's) writes what paddle.save writes with it: a
    flat dict of tensors, no Paddle names.  ``pickle_layout`` ("state-dict" or "generic") forces
    one of paddle.save's two pickle layouts; by default the one paddle.save picks for the same
    objects (a dict of paddle.Tensors: the state-dict layout with its name table; NumPy arrays
    beside them: pickled as it is), except that a dict of NumPy arrays alone gets the name table
    (paddle.load then names each tensor by its key; "generic" writes paddle.save's bytes).

    Dtypes are kept exactly or refused: a pickle cannot give back float8 (Paddle stores and loads
    it as int8) nor a uint16 tensor (paddle.load reads those bits as bfloat16), Paddle's binary
    formats hold no uint16/32/64; such saves raise ``UnsupportedError`` naming the tensor, and
    `reinterpret` says what the bits are instead.

    A save to a path is atomic: on any error the previous file is left as it was.  Raises
    ``pdckpt.Error`` subclasses that are also the builtin classes paddle.save raises (e.g.
    ``ArgumentTypeError``, a TypeError, for objects pdckpt cannot save; ``UnsupportedError``, a
    NotImplementedError, for a value the format cannot hold).
    """
    _check_configs(configs, _SAVE_CONFIGS, "paddle.save")
    if configs.get("safetensors"):
        _check_safetensors_dict(obj)
        configs["skip_non_tensors"] = True  # nothing to skip: no pdckpt.tree, Paddle's bytes
    configs = _safetensors_config(configs)
    if not hasattr(path, "write"):
        path = _save_path(path, configs.get("format"),  # first, as in paddle.save
                          bool(configs.get("max_shard_size")))
    protocol = configs.get("pickle_protocol", protocol)
    if not isinstance(protocol, int) or isinstance(protocol, bool) or not 1 < protocol < 5:
        raise _errors.make(ArgumentError, None,
                           f"Expected 1<'protocol'<5, but received protocol={protocol}")
    fmt = configs.get("format")
    # `obj` stays referenced to the end: a SelectedRows' get_tensor() does not keep it alive
    data, fmt = _paddle_object(obj, fmt, configs.get("use_binary_format", False))
    data, fmt, max_shard = _hf_options(data, path, fmt, configs)
    numpy_module = configs.get("numpy_module", "numpy.core")
    if numpy_module not in _NUMPY_MODULES:
        raise _errors.make(ArgumentError, None,
                           f"numpy_module must be one of {sorted(_NUMPY_MODULES)}")
    paddle = sys.modules.get("paddle")  # a paddle.Tensor to save means Paddle is imported
    options = dict(durable=bool(configs.get("durable", True)), protocol=protocol,
                   paddle=None if paddle is None or _paddle_io.static_mode(paddle)
                   else paddle_save_spec(paddle),
                   numpy_module=_NUMPY_MODULES[numpy_module],
                   skip_non_tensors=bool(configs.get("skip_non_tensors", False)),
                   allowed_globals=_allowed_globals(configs.get("allowed_globals")),
                   reinterpret=_reinterpret_pairs(configs.get("reinterpret")), dropped=[],
                   max_shard_size=max_shard)
    if hasattr(path, "write"):
        if fmt in (None, "pickle"):
            data, options["pickle_layout"] = _pickle_layout(data, paddle, configs)
        _native.save(data, write=path.write, format=fmt or "pickle", **options)
        _warn_dropped(options["dropped"])
        return
    fmt = fmt or _native.format_from_path(path) or "pickle"
    if fmt == "pickle":
        data, options["pickle_layout"] = _pickle_layout(data, paddle, configs)
    _native.save(data, path, format=fmt, **options)
    _warn_dropped(options["dropped"])
    if fmt in ("dygraph-dir", "vars-dir", "tnum"):
        _warn_renamed(data, fmt)


_PICKLE_LAYOUTS = {"state-dict": 1, "generic": 2}


def _pickle_layout(obj: Any, paddle: Any, configs: dict) -> tuple[Any, int]:
    """The pickle_layout config ("state-dict": ndarrays and the name table, as _legacy_save and
    fluid.save_dygraph write; "generic": the object as it is, as _pickle_save), else for an object
    holding paddle.Tensors the layout paddle.save would write for it (paddle.Tensor or NumPy array
    is known here, not in the library's tree).  NumPy arrays alone, and static-graph mode: the
    library's own choice (a dict of arrays gets the name table, so paddle.load names each tensor
    by its key).  In static-graph mode a state dict is pickled as paddle.save pickles it there
    (_legacy_static_save: bare arrays, no name table).  Returns (the object to save, layout)."""
    forced = configs.get("pickle_layout")
    if forced is not None:
        if forced not in _PICKLE_LAYOUTS:
            raise _errors.make(ArgumentError, None, "pickle_layout must be one of "
                               f"{sorted(_PICKLE_LAYOUTS)}, not {forced!r}")
        return obj, _PICKLE_LAYOUTS[forced]
    if _dicts_only(obj, paddle):
        return obj, _paddle_io.PICKLE_STATE_DICT
    if paddle is None:
        return obj, 0
    if _paddle_io.static_mode(paddle):
        static = _paddle_io.static_state_dict(obj, paddle)
        return (obj, 0) if static is None else (static, _paddle_io.PICKLE_GENERIC)
    return obj, _paddle_io.pickle_layout(obj, paddle)


def _dicts_only(obj: Any, paddle: Any) -> bool:
    """A non-empty dict whose values are all dicts holding no Paddle object (a config, nested
    arrays): paddle.save's _is_state_dict says yes, so it writes the state-dict layout (an empty
    name table).  The library alone cannot tell such a tree from a plain pickled dict of dicts
    (jit.save's .pdiparams.info, which `pdckpt convert` must give back as it was), so the
    drop-in decides here, as paddle.save does, with or without Paddle imported."""
    return (isinstance(obj, dict) and len(obj) > 0 and not _paddle_io.static_mode(paddle)
            and all(isinstance(v, dict) for v in obj.values())
            and not (paddle is not None and _paddle_io._holds_paddle(obj, paddle)))


# Names Paddle makes up for tensors nobody named (paddle.to_tensor, an op's output): a format
# that cannot keep them loses nothing worth a warning.
_AUTO_NAME = re.compile(r"(eager_tmp|generated_tensor)_[0-9]+\Z")


def _warn_renamed(obj: Any, fmt: str) -> None:
    """A dygraph-dir names each file by the tensor's Paddle name (as Paddle 1.5 did): structured
    keys do not survive it; a vars-dir or TNUM file keeps the keys and has no room for the Paddle
    names.  Either is said (as the CLI says it), not done silently."""
    if not isinstance(obj, dict):
        return
    renamed = [(k, v.name) for k, v in obj.items()
               if isinstance(k, str) and isinstance(getattr(v, "name", None), str)
               and v.name != k
               and (fmt == "dygraph-dir" or not _AUTO_NAME.match(v.name))]
    if renamed:
        listed = ", ".join(f"{k!r} -> {n!r}" for k, n in renamed[:8])
        more = f" (and {len(renamed) - 8} more)" if len(renamed) > 8 else ""
        if fmt == "dygraph-dir":
            said = f"a dygraph-dir keeps Paddle names, not keys: {listed}{more}"
        else:
            said = f"a {fmt} keeps keys, not Paddle names; not kept: {listed}{more}"
        warnings.warn(f"pdckpt.save: {said}", UserWarning, stacklevel=3)


def _warn_dropped(dropped: list) -> None:
    if dropped:
        listed = _native.display_text(", ".join(f"{path or '<root>'} ({kind})"
                                                for path, kind in dropped))
        warnings.warn(f"pdckpt.save: skip_non_tensors dropped {len(dropped)} value(s): {listed}",
                      UserWarning, stacklevel=3)


# ---- load -------------------------------------------------------------------------------------

def _memory_source(path: Any, max_stream: Any = None) -> bytes | None:
    if isinstance(path, bytes):
        return path
    if isinstance(path, (bytearray, memoryview)):
        return bytes(path)  # arrays will view these bytes: they must not change underneath
    if hasattr(path, "read"):
        return _read_one(path, _stream_cap(max_stream))
    return None


def _stream_cap(value: Any) -> int:
    """How much of an unseekable stream (a pipe, a socket) a load reads: ``max_stream_bytes``,
    by default the machine's physical memory or 64 GiB, whichever is less.  Its size cannot be
    known before it ends, and an endless producer must not make the load allocate without
    bound."""
    if value is None:
        try:
            phys = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            phys = 64 << 30
        return min(phys, 64 << 30)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _errors.make(ArgumentError, None, f"max_stream_bytes must be an int >= 0, "
                           f"not {value!r}")
    return value


def _read_unseekable(stream: Any, cap: int) -> Any:
    """All of a stream that cannot seek, read in pieces up to `cap` bytes (one copy: BytesIO
    hands over its buffer)."""
    out = io.BytesIO()
    while True:
        chunk = stream.read(min(1 << 24, cap + 1 - out.tell()))
        if not isinstance(chunk, bytes):
            return chunk  # a text stream: the caller names the type
        if not chunk:
            return out.getvalue()
        out.write(chunk)
        if out.tell() > cap:
            name = getattr(stream, "name", None)
            shown = name if isinstance(name, str) else (f"<stream fd {name}>"
                                                        if isinstance(name, int) else "<stream>")
            raise _errors.make(LimitError, shown, f"expected at most {cap} bytes from a stream "
                               f"that cannot seek (max_stream_bytes), read {out.tell()} before "
                               "its end: not loaded")


def _refuse_device(stream: Any) -> None:
    """A file object over a character or block device is refused before it is read, as a path
    to one is (src/io/safe_open.c): its reads are no file's and may never end (/dev/zero filled
    memory until the process died)."""
    import stat

    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (AttributeError, OSError, ValueError, TypeError):
        return  # no descriptor (BytesIO, a wrapper): the caller's object
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "character" if stat.S_ISCHR(mode) else "block"
        raise _errors.make(ArgumentError, getattr(stream, "name", None) or "<stream>",
                           f"expected a regular file, a pipe or a socket, found a {kind} "
                           "device: not read (its reads are no checkpoint's and may never end)")
    if stat.S_ISREG(mode) and _on_proc_or_sys(stream.fileno()):
        raise _errors.make(ArgumentError, getattr(stream, "name", None) or "<stream>",
                           "expected a regular file, found a file of /proc or /sys: not read "
                           "(its size is not its length, and a read of /proc/kmsg waits for "
                           "the kernel's next message)")


def _on_proc_or_sys(fd: int) -> bool:
    """Whether `fd` is a file of /proc or /sys (their filesystems' devices), as a path to one is
    refused by the library (src/io/safe_open.c)."""
    try:
        dev = os.fstat(fd).st_dev
        return any(os.path.ismount(m) and os.stat(m).st_dev == dev for m in ("/proc", "/sys"))
    except OSError:
        return False


def _read_one(stream: Any, cap: int) -> bytes:
    """The next object of a binary file object, as pickle.load takes it: the stream is left just
    after it (a pickle's STOP, a tensor or SelectedRows stream's last byte), so objects saved one
    after another load in turn.  Other formats (and unseekable streams) take the rest."""
    _refuse_device(stream)
    seekable = getattr(stream, "seekable", lambda: False)()
    start = stream.tell() if seekable else 0
    data = stream.read() if seekable else _read_unseekable(stream, cap)
    if not isinstance(data, bytes):
        raise _errors.make(ArgumentTypeError, None, "pdckpt.load needs a binary file object "
                           f"(read() returned {type(data).__name__})")
    end = _native.object_length(data) if seekable else None
    if end is None or end >= len(data):
        return data
    stream.seek(start + end)
    return data[:end]


def _resolve(path: str, model_filename: str | None, params_filename: str | None,
             program: str | None) -> tuple[str, str | None]:
    """Paddle's naming of inference-model files: a prefix ("inference/model" for model.pdmodel
    + model.pdiparams), which the registry resolves (pdckpt_resolve: the one place that knows
    the names), or a 1.x directory with model_filename / params_filename."""
    try:
        mode = os.stat(path).st_mode  # one stat: a file (the usual case), a directory, or none
    except (OSError, ValueError):
        mode = None
    if mode is not None and stat.S_ISREG(mode):
        return path, program
    if mode is not None and stat.S_ISDIR(mode):
        if model_filename is not None or params_filename is not None:
            default = "__model__"  # pdckpt:names-ok: Paddle's model_filename default
            model = os.path.join(path, model_filename or default)
            program = program or (model if os.path.isfile(model) else None)
        if params_filename is not None:
            return os.path.join(path, params_filename), program
        return path, program
    if mode is None:  # a prefix; raises NotFoundError (with Paddle's hints) if none
        _, target, found = _native.resolve(path)
        if target != path:  # the parameters file and the program naming it
            return target, program or found
    return path, program


def _jit_info(path: Any, cfg: dict) -> str | None:
    """The ``X.pdiparams.info`` paddle.load (2.x) reads to key a jit.save model's state dict by
    structured name: beside the parameters file a prefix or a directory with params_filename
    names (a directory without it: Paddle looks for "None.info", which is never there)."""
    if isinstance(path, (bytes, bytearray, memoryview)) or hasattr(path, "read"):
        return None  # bytes or a stream: no file beside it
    if cfg.get("format") is not None:
        return None
    path = os.fsdecode(os.fspath(path))
    if os.path.isfile(path) or (os.path.isdir(path) and cfg.get("params_filename") is None):
        return None
    try:
        target, _ = _resolve(path, cfg.get("model_filename"), cfg.get("params_filename"), None)
    except Error:
        return None  # the load itself reports it
    info = target + ".info"  # pdckpt:names-ok: paddle.load's own rule
    return info if os.path.isfile(info) else None


def _structured(obj: Any, info: str) -> Any:
    """Re-keys an inference model's {variable: tensor} by the info's structured names, in the
    same order, as paddle.load does; unchanged when the info does not name every variable (Paddle
    would stop there with an assertion; the variable names still load)."""
    table = load(info, return_numpy=True)
    if not isinstance(obj, dict) or not isinstance(table, dict):
        return obj
    names = [table.get(k).get("structured_name") if isinstance(table.get(k), dict) else None
             for k in obj]
    if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        return obj
    return dict(zip(names, obj.values()))


def _by_variable_names(state: Any, info: str) -> Any:
    """_structured's inverse, for writing: a state dict keyed by the info's structured names (as
    paddle.load(prefix) and pdckpt.load(prefix) give a jit.save model's) re-keyed by the variable
    names its program declares; keys the info does not name, and a state already keyed by
    variable names, are left as they are."""
    table = load(info, return_numpy=True)
    if not isinstance(state, dict) or not isinstance(table, dict):
        return state
    to_var = {e.get("structured_name"): var for var, e in table.items() if isinstance(e, dict)}
    if any(k in table for k in state) or len(to_var) != len(table):
        return state  # variable names already (or an info that is not jit.save's)
    return {to_var.get(k, k): v for k, v in state.items()}


def _threads(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _errors.make(ArgumentError, None, f"threads must be an int >= 0 (0: one per core), "
                           f"not {value!r}")
    return value


def _open_tree(path: Any, cfg: dict, aligned: bool = False) -> Any:
    options = dict(format=cfg.get("format"), names=cfg.get("names"),
                   mmap=bool(cfg.get("mmap", False)), verify=bool(cfg.get("verify", False)),
                   allowed_globals=_allowed_globals(cfg.get("allowed_globals")),
                   reinterpret=_reinterpret_pairs(cfg.get("reinterpret")), aligned=aligned,
                   threads=_threads(cfg.get("threads")))
    data = _memory_source(path, cfg.get("max_stream_bytes"))
    if data is not None:  # immutable bytes: viewing them (no copy) cannot be hurt by anyone
        options["mmap"] = bool(cfg.get("mmap", True))
        return _native.load(data=data, program=cfg.get("program"), **options)
    path = os.fspath(path)
    if not isinstance(path, str):
        path = os.fsdecode(path)
    target, program = _resolve(path, cfg.get("model_filename"), cfg.get("params_filename"),
                               cfg.get("program"))
    if program is not None:
        kind = "pir-json" if _native.format_from_path(program) == "pir-json" else "program"
        if not _native.formats()[kind][0]:
            raise UnsupportedError(f"{program}: naming the tensors of {target} needs the "
                                   f"'{kind}' format, which this build cannot read yet")
    return _native.load(target, program=program, **options)


def _names_its_stream(fn: Any) -> Any:
    """A load or open of a file object reads its bytes into memory, and the library's errors
    then named the source ``<memory>``: they name the file object's file (``stream.name``)
    instead, as a load of its path does (a BytesIO, which has no name, stays ``<memory>``)."""
    import functools

    @functools.wraps(fn)
    def wrapper(path: Any, *args: Any, **kwargs: Any) -> Any:
        name = getattr(path, "name", None) if hasattr(path, "read") else None
        try:
            return fn(path, *args, **kwargs)
        except Error as e:
            if isinstance(name, (str, bytes)) and e.source == "<memory>" and e.args:
                shown = os.fsdecode(name)
                text = str(e.args[0])
                e.source = shown
                if text.startswith("<memory>"):
                    e.args = (shown + text[len("<memory>"):],) + e.args[1:]
            raise
    return wrapper


@_names_its_stream
def load(path: Any, **configs: Any) -> Any:
    """Loads what ``paddle.save`` (or ``pdckpt.save``) wrote, like ``paddle.load``.

    `path` is a file, a directory of per-variable files, an inference-model prefix
    (``"inference/model"`` for ``model.pdiparams``), ``bytes`` or a binary file object.  The
    format is detected from the bytes; ``format=`` forces one.

    Returns what ``paddle.load`` returns: ``paddle.Tensor``s named as saved when Paddle is
    installed and ``return_numpy`` is False, NumPy arrays otherwise.  The file is read (by one
    thread per core for large files; ``threads=`` sets how many) into memory the result owns:
    Paddle tensors take that memory itself, aligned in place, without a second copy (mapped or
    borrowed memory, and dtypes Paddle has no tensor for, are copied).  Nothing another
    program later does to the file (``paddle.save`` truncating and rewriting it in place) can
    change or crash them; ``mmap=True`` maps the file instead (read-only views, no copy) -- then a
    truncation by another writer raises SIGBUS when an array is touched, and an in-place rewrite
    changes the arrays (see docs/RELIABILITY.md).  bfloat16/float8 arrays hold
    the raw bits (uint16/int8, as ``Tensor.numpy()`` gives them) unless
    ``exact_dtypes=True`` (ml_dtypes types).  Opaque pickled objects come back as
    ``pdckpt.OpaqueObject`` -- nothing from the file is imported or run.  In static-graph mode
    (``paddle.enable_static()``) tensors come back as ``core.DenseTensor``, as paddle.load gives
    them there; a SelectedRows file as ``core.SelectedRows``, a program file as a ``Program``.
    A file object is left just after the object read (objects saved one after another load in
    turn).  Every error of a broken file is a ``pdckpt.Error``.

    Configs: Paddle's ``return_numpy``, ``keep_name_table``, ``model_filename`` and
    ``params_filename`` (1.x inference directories); and ``format``, ``names`` (the variable
    names of a combined file, in order), ``program`` (a .pdmodel / model.json naming them),
    ``mmap``, ``threads`` (reading threads, 0: one per core), ``exact_dtypes``, ``verify`` (extra
    semantic checks), ``reinterpret``
    (``{"uint16": "bfloat16"}``: retype tensors after loading, same bits), ``allowed_globals``
    ("module.name" classes a pickle may name beyond pdckpt's allowlist of what Paddle and NumPy
    write: they come back as inert ``OpaqueObject``s; any other global is refused).

    Dtypes are the ones Paddle gives: in a pickle, a uint16 array that paddle.load turns into a
    tensor is bfloat16, and float8 (which Paddle pickles as int8) is int8.
    """
    _check_configs(configs, _LOAD_CONFIGS, "paddle.load")
    configs = _safetensors_config(configs)
    return_numpy = bool(configs.get("return_numpy", False))
    exact = bool(configs.get("exact_dtypes", False))
    data = _memory_source(path, configs.get("max_stream_bytes"))  # a stream: its next object
    dropin = not return_numpy and _paddle_available()
    # a safetensors file's tensors are 8-byte aligned as read, which Paddle takes (its own
    # safetensors load gives it that); moving them to 64-byte places cost a memmove of the file
    aligned = dropin and _safetensors_hint(path if data is None else None, configs) is None
    tree = _open_tree(path if data is None else data, configs, aligned=aligned)
    fmt = tree.format
    where = "<memory>" if data is not None else os.fsdecode(os.fspath(path))
    legacy = (data is None and fmt in _LEGACY_NUMPY and not os.path.isfile(where)
              and all(configs.get(k) is None for k in ("format", "names", "program")))
    if legacy:
        dropin = False  # paddle.load gives NumPy arrays here
    try:
        if fmt in ("program", "pir-json", "selected-rows"):
            obj = _guard_conversion(where, fmt, lambda: tree.convert(None, exact))
        else:
            # paddle.load's rules applied by the one C conversion pass: paddle.Tensors named as
            # saved (DLPack of the memory the load read, aligned in place: no second copy; in
            # static-graph mode Paddle's DenseTensors), or with return_numpy (or no Paddle) the
            # arrays Paddle gives.  Paddle is imported only once the file has loaded.
            paddle = _paddle_module(import_it=True) if dropin else None
            rules = "numpy" if paddle is None else paddle_spec(paddle)
            drop = not configs.get("keep_name_table", False)  # (NumPy out: never converted)
            # consume: each entry made a paddle.Tensor leaves the tree at once (closed below),
            # so its memory serves the tensors made after it (issue 18: W2's peak)
            obj = _guard_conversion(where, fmt,
                                    lambda: tree.convert(None, exact, rules, drop, True))
            if isinstance(obj, dict) and not configs.get("keep_name_table", False):
                obj.pop(NAME_TABLE, None)
        if fmt in _SAFETENSORS and isinstance(obj, dict):
            obj.pop(_METADATA, None)  # strings about the file, not a tensor: Reader.metadata()
    finally:
        tree.close()
    if fmt == "vars-dir" and legacy and isinstance(obj, dict):
        obj = _walk_order(obj, where)
    if fmt in ("inference", "combined"):  # a parameters file named by its program
        info = _jit_info(path, configs)
        return _structured(obj, info) if info else obj
    if fmt not in ("program", "pir-json", "selected-rows"):
        return obj
    paddle = _paddle_module(import_it=True)  # paddle.load gives Paddle's objects for these
    if paddle is None:
        return obj
    if fmt == "selected-rows":
        return _guard_conversion(where, fmt, lambda: _paddle_io.selected_rows(paddle, obj))
    source = data if data is not None else _checked_program_bytes(where, fmt, configs)
    return _guard_conversion(where, fmt, lambda: _paddle_io.program_object(paddle, source, fmt),
                             _PROGRAM_HINT[fmt])


def _safetensors_hint(path: Any, configs: dict) -> str | None:
    """The safetensors format `format=` or the file's name gives, else None."""
    fmt = configs.get("format")
    if fmt is None and isinstance(path, (str, bytes, os.PathLike)):
        fmt = _native.format_from_path(os.fsdecode(os.fspath(path)))
    return fmt if fmt in _SAFETENSORS else None


def _walk_order(obj: dict, directory: str) -> dict:
    """A save_vars directory's variables in the order paddle.load lists them: os.walk's (the
    file system's own order), each named by its path under the directory."""
    order = [os.path.relpath(os.path.join(root, f), directory).replace(os.sep, "/")
             for root, _, files in os.walk(directory) for f in files]
    out = {k: obj[k] for k in order if k in obj}
    out.update((k, v) for k, v in obj.items() if k not in out)
    return out


def _check_safetensors_dict(obj: Any) -> None:
    """paddle.save(..., safetensors=True) takes a flat dict of tensors and writes no Paddle names:
    so does pdckpt then (format="safetensors" keeps names and nesting in its metadata)."""
    if not isinstance(obj, dict):
        raise _errors.make(UnsupportedError, None, "safetensors=True saves a state dict (a dict "
                           f"of tensors), not {type(obj).__name__}; format='safetensors' keeps "
                           "any nesting")
    for key, value in obj.items():
        if not (isinstance(key, str) and hasattr(value, "shape") and hasattr(value, "dtype")):
            raise _errors.make(ArgumentTypeError, None, f"safetensors=True saves only tensors "
                               f"under str keys: {key!r} holds {type(value).__name__}; "
                               "format='safetensors' keeps other values in its metadata")


def _safetensors_config(configs: dict) -> dict:
    """Paddle 3's ``safetensors=True`` (save and load): the safetensors format."""
    if not configs.get("safetensors"):
        configs.pop("safetensors", None)
        return configs
    configs = dict(configs)
    del configs["safetensors"]
    if configs.get("format") not in (None, "safetensors"):
        raise _errors.make(ArgumentError, None, "safetensors=True and format="
                           f"{configs['format']!r} disagree")
    configs["format"] = "safetensors"
    return configs


def _checked_program_bytes(path: str, fmt: str, configs: dict) -> bytes:
    """The program at `path` as Paddle gets it: read once more (Paddle parses bytes, pdckpt's
    tree holds none) and checked again, these very bytes, before Paddle sees them.  Read
    without blocking and only from a regular file: the file may have been swapped since the
    load checked it (a FIFO there would hang the open; a program Paddle crashes on -- an op's
    sub_block past the blocks -- would reach Paddle unchecked)."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise _errors.make(IoError, path, f"open: {e.strerror}") from None
    with builtins.open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _errors.make(ArgumentError, path, "expected a regular file, found something "
                               "else: it was replaced after it was checked")
        os.set_blocking(fd, True)
        data = f.read()
    try:
        _open_tree(data, dict(configs, format=fmt, names=None)).close()
    except Error as e:
        raise _errors.make(type(e), path, "the file changed after it was checked; now: "
                           f"{e.message}") from None
    return data


# A program loaded where parameters were meant is the usual mistake behind a failed conversion.
_PROGRAM_HINT = {
    "program": " (the file is a Paddle program: the model's structure, no weights -- they are in "
               "the .pdiparams or .pdparams saved beside it; Paddle 3 builds a legacy ProgramDesc "
               "program only inside paddle.pir_utils.OldIrGuard())",
    "pir-json": " (the file is a Paddle PIR program: the model's structure, no weights -- they "
                "are in the .pdiparams saved beside it)",
}


def _guard_conversion(where: str, fmt: str, convert: Any, hint: str = "") -> Any:
    """Runs a conversion of loaded values to Python / Paddle objects.  The library has checked
    the file; what still fails here (a string NumPy or Paddle will not take, a shape Paddle
    refuses) is reported as a pdckpt.FormatError, so every error of a load is a pdckpt.Error."""
    try:
        return convert()
    except Error as e:
        if getattr(e, "source", None) or not where:
            raise
        at = getattr(e, "pdckpt_offset", None)  # the value it failed on (Tree.convert)
        err = _errors.make(type(e), where, e.message if at is None else f"offset {at}: {e.message}")
        err.offset = at
        raise err from None  # the conversion's own limits
    except (UnicodeError, ValueError, TypeError, OverflowError, OSError, RuntimeError,
            KeyError, IndexError, AttributeError) as e:
        at, what = getattr(e, "pdckpt_offset", None), getattr(e, "pdckpt_value", None)
        found = f"found {what} that" if what else "found one that"
        err = _errors.make(FormatError, where, ("" if at is None else f"offset {at}: ") +
                           f"expected {fmt} values Python and Paddle can take, {found} cannot be "
                           f"converted to Python objects: {type(e).__name__}: {e}{hint}")
        err.offset = at
        raise err from e


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
        self._listed = None  # (keys, positions), made on first use
        self._lookup = None  # key -> position, made on first use
        # safetensors' __metadata__ is not an entry: metadata() returns it.
        self._meta = None
        if tree.format in _SAFETENSORS:
            keys = tree.keys()
            self._meta = keys.index(_METADATA) if _METADATA in keys else None
        self._n = len(tree) - (self._meta is not None)

    @property
    def _keys(self) -> list:
        return self._entries()[0]

    @property
    def _pos(self) -> Any:
        return self._entries()[1]

    def _entries(self) -> tuple:
        """(keys, positions in the tree): listed when first asked for -- an index-backed tree of
        100,000 entries opens without making 100,000 Python strings (docs/pickles.md)."""
        if self._listed is None:
            keys = self._tree.keys()
            if self._meta is None:
                self._listed = (keys, range(len(keys)))
            else:
                pos = [i for i in range(len(keys)) if i != self._meta]
                self._listed = ([keys[i] for i in pos], pos)
        return self._listed

    @property
    def _index(self) -> dict:
        if self._lookup is None:
            keys, pos = self._entries()
            try:  # the first of equal keys wins (1 and True may both be keys of a pickled dict)
                index = dict(zip(keys, pos))
                fast = len(index) == len(keys)
            except TypeError:  # an unhashable key (a list): reachable by position via items()
                fast = False
            if not fast:
                index = {}
                for key, i in zip(keys, pos):
                    try:
                        index.setdefault(key, i)
                    except TypeError:
                        pass
            self._lookup = index
        return self._lookup

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
        return self._n

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
        value = _guard_conversion(getattr(self, "_where", "<memory>"), self._tree.format,
                                  lambda: self._tree.convert(i, self._exact))
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
        return None if self._meta is None else self._tree.convert(self._meta)

    def get_slice(self, key: Any) -> "Slice":
        """A lazy slice of a tensor, like safetensors' ``safe_open(...).get_slice(name)``:
        ``reader.get_slice("w")[2:5]`` copies only those rows out of the mapped file."""
        return Slice(self, key)

    def close(self) -> None:
        """Frees the loaded tree.  Arrays and tensors already handed out stay valid."""
        if not self._tree.closed:
            self._entries()  # keys() and `in` keep answering after close, as they always did
        self._tree.close()

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self._n} entries"
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


@_names_its_stream
def open(path: Any, *, format: str | None = None, names: list[str] | None = None,
         program: str | None = None, exact_dtypes: bool = False, mmap: bool = True,
         reinterpret: Any = None) -> Reader:
    """Opens a checkpoint for lazy reading: the file is mapped and its structure parsed; no tensor
    data is read until an array is used.  `path` is anything :func:`load` accepts.  The arrays
    are views of the mapping: another program truncating the file in place makes touching them
    raise SIGBUS, and rewriting it in place changes them (pdckpt's own saves never do either:
    they rename a new file over the old).  ``mmap=False`` reads the file instead."""
    cfg = {"format": format, "names": names, "program": program, "mmap": mmap,
           "reinterpret": reinterpret}
    tree = None
    if (mmap and format in (None, "pickle") and names is None and program is None
            and reinterpret is None and isinstance(path, (str, os.PathLike))):
        # a pickle pdckpt saved: its index, entries made on access (docs/pickles.md)
        tree = _native.open_lazy(path)
    reader = Reader(tree if tree is not None else _open_tree(path, cfg), exact_dtypes)
    reader._where = (os.fsdecode(os.fspath(path)) if isinstance(path, (str, os.PathLike))
                     else "<stream>" if hasattr(path, "read") else "<memory>")
    return reader


from . import dygraph, static  # noqa: E402  (the seeds' 1.x dygraph and static APIs)
from ._stats import nonfinite, plot_stats, stats  # noqa: E402
