"""A disk as a chain of qcow2 layer files, opened read-only bottom-up, and where two chains may
differ.

The caller names every layer file, bottom first. The backing-file names written inside the
layers are never used: each layer is handed the one below it explicitly, and a layer that names
no backing file may only be the bottom one.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Sequence
from pathlib import Path

from dissect.hypervisor.disk import qcow2 as _qcow2
from dissect.util.stream import AlignedStream

from diskread.errors import READ_ERRORS, NotReadable


class _ZeroPadded(AlignedStream):
    """The disk below a layer, as long as the layer's disk: a layer may be larger than its
    backing layer (a disk grown after it was made), and what lies past the end reads as zeros,
    as in QEMU."""

    def __init__(self, inner, size: int, align: int):
        super().__init__(size, align)
        self.inner = inner
        self.inner_size = inner.size

    def _read(self, offset: int, length: int) -> bytes:
        data = b""
        if offset < self.inner_size:
            self.inner.seek(offset)
            data = self.inner.read(min(length, self.inner_size - offset))
        return data + b"\x00" * (length - len(data))


def open_layer(path: Path):
    """A layer file, opened read-only; a symbolic link in its place is refused."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.fdopen(os.open(path, flags), "rb")


def _qcow2_of(fh) -> _qcow2.QCow2:
    try:
        # No backing or data file is opened here: the caller passes the layer below itself.
        image = _qcow2.QCow2(fh, allow_no_backing_file=True, allow_no_data_file=True)
    except (*READ_ERRORS, _qcow2.InvalidHeaderError) as exc:
        raise NotReadable(f"A layer of this disk is not a readable qcow2 image ({exc}).") from exc
    if image.needs_data_file:
        raise NotReadable("A layer of this disk keeps its data in an external file; not read.")
    return image


def open_chain(paths: Sequence[Path], files: list):
    """The disk the layer files `paths` (bottom first) make, as one stream. Each file opened is
    added to `files`, which the caller closes, also when this raises."""
    stream = None
    for path in paths:
        try:
            fh = open_layer(path)
        except FileNotFoundError:
            raise NotReadable(
                "A layer of this snapshot is not on this machine: its disk lives on another "
                "host, or is being freed."
            ) from None
        except OSError as exc:
            raise NotReadable(f"A layer of this snapshot cannot be opened ({exc}).") from exc
        files.append(fh)
        image = _qcow2_of(fh)
        if image.needs_backing_file:
            if stream is None:
                raise NotReadable(
                    "The bottom layer of this disk names a backing file the database does "
                    "not record; it is not read."
                )
            below = stream
            if below.size != image.size:
                below = _ZeroPadded(stream, image.size, image.cluster_size)
            image.backing_file = below
        elif stream is not None:
            raise NotReadable(
                "A layer of this disk has no backing file although the database records "
                "one; the chain is inconsistent."
            )
        stream = image.open()
    return stream


# --- Which parts of a disk two chains may differ in ----------------------------------------------


class Ranges:
    """Byte ranges of the guest's disk, merged and sorted, for "does this touch them?"."""

    def __init__(self, ranges: Sequence[tuple[int, int]] = ()):
        merged: list[list[int]] = []
        for start, end in sorted(ranges):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self.starts = [s for s, _ in merged]
        self.ends = [e for _, e in merged]

    @property
    def total(self) -> int:
        return sum(e - s for s, e in zip(self.starts, self.ends, strict=True))

    def overlap(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of [start, end) that lie in these ranges."""
        found = []
        index = bisect.bisect_right(self.ends, start)
        while index < len(self.starts) and self.starts[index] < end:
            found.append((max(start, self.starts[index]), min(end, self.ends[index])))
            index += 1
        return found

    def touches(self, start: int, end: int) -> bool:
        index = bisect.bisect_right(self.ends, start)
        return index < len(self.starts) and self.starts[index] < end


def layer_ranges(path: str | Path) -> list[tuple[int, int]]:
    """The byte ranges of the guest's disk that this layer holds (data, zeroes or compressed),
    read from its L1/L2 tables: where it may differ from the layer below it. A file that cannot
    be opened raises `OSError`."""
    with open_layer(Path(path)) as fh:
        image = _qcow2_of(fh)
        cluster = image.cluster_size
        per_table = image.l2_size
        entry_words = image._l2_entry_size // 8
        found = []
        try:
            for l1_index, l1_entry in enumerate(image.l1_table):
                table_offset = l1_entry & _qcow2.c_qcow2.L1E_OFFSET_MASK
                if not table_offset:
                    continue
                words = _qcow2.L2Table(image, table_offset)._table
                base = l1_index * per_table * cluster
                for index in range(per_table):
                    word = index * entry_words
                    if words[word] or (entry_words > 1 and words[word + 1]):
                        start = base + index * cluster
                        found.append((start, start + cluster))
        except READ_ERRORS as exc:
            raise NotReadable(f"A layer's cluster tables cannot be read ({exc}).") from exc
        return found


def changed_ranges(
    old_chain: Sequence[str | Path], new_chain: Sequence[str | Path], common: int
) -> Ranges | None:
    """Where two disks may differ: what the layers above their first `common` layers (shared,
    bottom-up) hold. None when they share nothing: then anything may differ."""
    if common == 0:
        return None
    ranges: list[tuple[int, int]] = []
    for path in [*old_chain[common:], *new_chain[common:]]:
        ranges.extend(layer_ranges(path))
    return Ranges(ranges)


def common_layers(old_chain: Sequence[str | Path], new_chain: Sequence[str | Path]) -> int:
    """How many layer files, from the bottom, two chains share (their common ancestor)."""
    common = 0
    for a, b in zip(old_chain, new_chain, strict=False):
        if Path(a) != Path(b):
            break
        common += 1
    return common
