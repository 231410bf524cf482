"""Sizes as people read them, in the binary units they enter: "4 GiB", "512 MiB", "1.5 GiB",
"11 bytes". One helper for every page and message, so no two places disagree."""

from __future__ import annotations

UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def size_text(size: int | None) -> str:
    """`size` bytes in the largest binary unit that keeps it at 1 or more, to one decimal that
    is left out when it is zero; "" for an unknown size."""
    if size is None:
        return ""
    size = int(size)
    if abs(size) < 1024:
        return f"{size} byte" if abs(size) == 1 else f"{size} bytes"
    value = float(size)
    for unit in UNITS:
        value /= 1024
        shown = round(value, 1)
        if abs(shown) < 1024 or unit == UNITS[-1]:
            break
    return f"{shown:.1f}".removesuffix(".0") + f" {unit}"
