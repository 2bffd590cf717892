# SPDX-License-Identifier: Apache-2.0
"""pdckpt's exceptions: one class per library status, each also an instance of the built-in
exception a Python user would expect (a missing file is a FileNotFoundError, a bad file a
ValueError, ...) and of the one ``paddle.save`` / ``paddle.load`` raise in the same case (a missing
path is a ValueError there), so code written for Paddle catches them.  The C extension fills the
attributes from the library's error record; :func:`make` builds one in Python."""

from __future__ import annotations

__all__ = [
    "Error", "ArgumentError", "NoMemoryError", "IoError", "FormatError", "UnsupportedError",
    "NotFoundError", "MismatchError", "LimitError", "MpiError", "CorruptError", "ArgumentTypeError",
]


class Error(Exception):
    """An error reported by the pdckpt library.

    ``str(e)`` is the library's line ``"<source>: offset <n>: <what was expected, what was
    found>"``.  Attributes:

    * ``status`` -- the library's status number (``pdckpt_status``), ``status_name`` its name
    * ``message`` -- the message alone, without source and offset
    * ``source`` -- the file, ``"<memory>"``, or ``None``
    * ``offset`` -- the byte offset into ``source``, or ``None``
    * ``errno`` -- the errno of a failed system call, or ``None``
    """

    status: int = 0
    status_name: str = "ok"
    message: str = ""
    source: str | None = None
    offset: int | None = None
    errno: int | None = None


class ArgumentError(Error, ValueError):
    """The call was given something invalid (status ``argument``)."""


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of the wrong type (status ``argument``); a TypeError, as Paddle raises there
    (``use_binary_format='False'``, an object that cannot be saved)."""


class NoMemoryError(Error, MemoryError):
    """An allocation failed (status ``nomem``)."""


class IoError(Error, OSError):
    """The operating system refused a read, write, rename or fsync (status ``io``)."""


class FormatError(Error, ValueError):
    """The bytes are not a valid file of the expected format (status ``format``)."""


class UnsupportedError(Error, NotImplementedError):
    """Valid, but not handled by this build (status ``unsupported``)."""


class NotFoundError(Error, FileNotFoundError, ValueError):
    """A file, key or variable does not exist (status ``not_found``); also a ValueError, which is
    what ``paddle.load`` raises for a path that does not exist."""


class MismatchError(Error, ValueError):
    """Two things that must agree do not, e.g. a program and its parameters (``mismatch``)."""


class LimitError(Error, ValueError):
    """A configured limit (size, depth, memo) would be exceeded (status ``limit``)."""


class MpiError(Error):
    """An MPI call failed, or another rank reported an error (status ``mpi``)."""


class CorruptError(FormatError):
    """A checksum does not match the data (status ``corrupt``)."""


# Status numbers are pinned in include/pdckpt.h (pdckpt_status).
BY_STATUS = {
    1: ArgumentError, 2: NoMemoryError, 3: IoError, 4: FormatError, 5: UnsupportedError,
    6: NotFoundError, 7: MismatchError, 8: LimitError, 9: MpiError, 10: CorruptError,
}


def make(cls: type, source: str | None, message: str, status: int | None = None) -> Error:
    """An exception of `cls` worded and filled like the ones the library raises."""
    from . import _native

    if status is None:
        exact = [k for k, v in BY_STATUS.items() if v is cls]
        status = exact[0] if exact else next(k for k, v in BY_STATUS.items() if issubclass(cls, v))
    # names from files are quoted in messages: display-safe, as the library's own messages
    message = _native.display_text(message)
    e = cls(f"{_native.display_text(source)}: {message}" if source else message)
    e.status, e.status_name, e.message = status, _native.status_names()[status], message
    e.source, e.offset, e.errno = source, None, None
    return e
