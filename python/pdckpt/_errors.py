"""pdckpt's exceptions: one class per library status, each also an instance of the built-in
exception a Python user would expect (a missing file is a FileNotFoundError, a bad file a
ValueError, ...).  The C extension fills the attributes from the library's error record."""

from __future__ import annotations

__all__ = [
    "Error", "ArgumentError", "NoMemoryError", "IoError", "FormatError", "UnsupportedError",
    "NotFoundError", "MismatchError", "LimitError", "MpiError", "CorruptError",
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


class NoMemoryError(Error, MemoryError):
    """An allocation failed (status ``nomem``)."""


class IoError(Error, OSError):
    """The operating system refused a read, write, rename or fsync (status ``io``)."""


class FormatError(Error, ValueError):
    """The bytes are not a valid file of the expected format (status ``format``)."""


class UnsupportedError(Error, NotImplementedError):
    """Valid, but not handled by this build (status ``unsupported``)."""


class NotFoundError(Error, FileNotFoundError):
    """A file, key or variable does not exist (status ``not_found``)."""


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
