"""The opaque cursors of paged folders and comparisons: where the next page starts."""

from __future__ import annotations

import base64
import re

from diskread.errors import BadCursor
from diskread.limits import CURSOR_MAX, MAX_DEPTH, NAME_MAX

_CURSOR = re.compile(r"[A-Za-z0-9_-]+")
_MESSAGE = "This cursor was not handed out here; follow the `next` link of a page."


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> bytes:
    if not isinstance(cursor, str) or len(cursor) > CURSOR_MAX or not _CURSOR.fullmatch(cursor):
        raise BadCursor(_MESSAGE)
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except ValueError:
        raise BadCursor(_MESSAGE) from None


def listing_cursor(key: tuple[int, bytes, int]) -> str:
    """The cursor after a folder's entry: (0 for a folder else 1, its name, its offset)."""
    rank, name, offset = key
    return _encode(bytes([rank]) + offset.to_bytes(8, "big") + name)


def listing_key(cursor: str | None) -> tuple[int, bytes, int] | None:
    """The folder's entry a `listing_cursor` names; None for no cursor (the first page)."""
    if cursor is None or cursor == "":
        return None
    raw = _decode(cursor)
    if len(raw) < 10 or len(raw) > 9 + NAME_MAX or raw[0] not in (0, 1):
        raise BadCursor(_MESSAGE)
    return raw[0], raw[9:], int.from_bytes(raw[1:9], "big")


def compare_cursor(key: tuple[bytes, ...]) -> str:
    """The cursor after a path of a comparison, given as its names."""
    return _encode(b"".join(bytes([len(part)]) + part for part in key))


def compare_key(cursor: str | None) -> tuple[bytes, ...] | None:
    """The path a `compare_cursor` names; None for no cursor (the first page)."""
    if cursor is None or cursor == "":
        return None
    raw = _decode(cursor)
    parts, at = [], 0
    while at < len(raw):
        length = raw[at]
        part = raw[at + 1 : at + 1 + length]
        if length == 0 or len(part) != length:
            raise BadCursor(_MESSAGE)
        parts.append(part)
        at += 1 + length
    if not parts or len(parts) > MAX_DEPTH:
        raise BadCursor(_MESSAGE)
    return tuple(parts)
