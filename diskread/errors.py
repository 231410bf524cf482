"""What the reader raises: a disk, a path or a cursor that cannot be read as asked. Every error
is a sentence (`message`), never a trace of the data that caused it."""

from __future__ import annotations

import struct

from dissect.extfs import extfs as _extfs
from dissect.hypervisor.disk import qcow2 as _qcow2


class ReadError(Exception):
    """A look inside a disk that cannot be answered as asked; `message` says why."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotReadable(ReadError):
    """The disk cannot be read here: not an ext2/3/4 file system, a partition table, layer
    files missing or inconsistent, or damaged data."""


class Damaged(NotReadable):
    """The file system breaks its own rules where it was read (a bad superblock, a block map or
    folder record that points outside it, a loop): what the guest wrote cannot be shown."""


class TooLarge(NotReadable):
    """Legal, but more than one request reads: a folder of millions of entries, a block map
    of too many pieces."""


class BadCursor(ReadError):
    """A `cursor` that this reader did not hand out."""


class BadPath(ReadError):
    """A path that is not allowed (`..`, control characters, too long) or names a symbolic link
    where a folder or file is needed."""


class PathNotFound(ReadError):
    """No such file or folder on the disk."""


class WrongType(ReadError):
    """The path names a folder where a file is needed, a device, or the like."""


# Errors from reading damaged or hostile data: a layer or file system that is not what its
# headers claim. The reader turns them into `Damaged` or `NotReadable`, never lets them out.
READ_ERRORS = (
    _extfs.Error,
    _qcow2.Error,
    EOFError,
    OSError,
    ValueError,
    IndexError,
    KeyError,
    OverflowError,
    NotImplementedError,
    RecursionError,
    struct.error,
)


def why(exc: BaseException) -> str:
    """A short account of a low-level error, for a sentence."""
    text = str(exc)[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
