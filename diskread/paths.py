"""Paths inside the guest's file system: checked when given, shown safely when read."""

from __future__ import annotations

from collections.abc import Sequence

from diskread.errors import BadPath
from diskread.limits import NAME_MAX, PATH_MAX


def split_path(raw: str | None) -> list[str]:
    """The parts of a path given by a caller, from the root; refused with `BadPath` when it holds
    `.` or `..`, control characters, or is too long."""
    if raw is None or raw == "":
        return []
    if not isinstance(raw, str):
        raise BadPath("Give the path as text, e.g. /etc/hostname.")
    if len(raw) > PATH_MAX:
        raise BadPath(f"A path may be at most {PATH_MAX} characters long.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in raw):
        raise BadPath("A path may not contain control characters.")
    parts = [part for part in raw.split("/") if part]
    for part in parts:
        if part in (".", ".."):
            raise BadPath("A path may not contain '.' or '..': give the full path from /.")
        if len(part.encode("utf-8", "surrogateescape")) > NAME_MAX:
            raise BadPath(f"A file name may be at most {NAME_MAX} bytes long.")
    return parts


def shown(name: str) -> str:
    """A name as it can be shown and sent: bytes that are not UTF-8 (kept by the reader as
    surrogates) become replacement characters. Such a name can be seen, not opened."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def join_path(parts: Sequence[str]) -> str:
    """The path of `parts` from the root, as it can be shown."""
    return shown("/" + "/".join(parts))


def name_bytes(name: str) -> bytes:
    """A name as the file system holds it: the order of folders' entries and of comparisons."""
    return name.encode("utf-8", "surrogateescape")
