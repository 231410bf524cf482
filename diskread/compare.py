"""Comparing two disks: the files added, removed and changed, a page at a time.

Both trees are walked in path order. Comparing two disks of one chain is cheap: only the
clusters allocated in the layers between them (or, for siblings, in either side above their
common ancestor) can differ. Every entry's metadata is compared, but file contents only where a
file's blocks touch those clusters (`diskread.qcow2.changed_ranges`).
"""

from __future__ import annotations

import difflib
import stat
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dissect.extfs.c_ext import c_ext

from diskread.cursors import compare_cursor, compare_key
from diskread.errors import READ_ERRORS, Damaged, ReadError, TooLarge, why
from diskread.filesystem import (
    EXTENTS_FL,
    INLINE_FL,
    TYPES,
    Budget,
    Disk,
    Exhausted,
    as_text,
)
from diskread.limits import (
    CHUNK,
    COMPARE_BYTES,
    COMPARE_WALK,
    DIFF_TEXT_BYTES,
    MAX_DEPTH,
    MAX_DIFF_INPUT_LINES,
    MAX_DIFF_LINES,
    MAX_DIFFS,
    PAGE_ENTRIES,
    PATH_MAX,
)
from diskread.paths import join_path, name_bytes, split_path
from diskread.qcow2 import Ranges, changed_ranges, common_layers


@dataclass(frozen=True)
class Change:
    """A path added, removed or changed from one disk to the other."""

    path: str
    status: str  # "added", "removed" or "changed"
    type: str
    size_before: int | None
    size_after: int | None
    changes: tuple[str, ...] = ()
    diff: str | None = None


@dataclass
class Comparison:
    """One page of what differs from the `old` disk to the `new` one, by path: at most
    `PAGE_ENTRIES` changes, in path order, and the cursor of the next page (None: the last)."""

    added: list[Change] = field(default_factory=list)
    removed: list[Change] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    entries_compared: int = 0
    bytes_compared: int = 0
    changed_region_bytes: int | None = None
    needs_recovery: bool = False
    next: str | None = None

    @property
    def count(self) -> int:
        return len(self.added) + len(self.removed) + len(self.changed)


_TABLE_PIECE = 64 * 1024  # a multiple of every inode size, so no record straddles two pieces
_TABLE_PIECES_KEPT = 512


class _Side:
    def __init__(self, disk: Disk, budget: Budget):
        self.disk = disk
        self.fs = disk.fs
        self.budget = budget
        self.inode_size = disk.fs.sb.s_inode_size
        self.per_group = disk.fs.sb.s_inodes_per_group
        self.pieces: dict[int, bytes] = {}

    def inode_offset(self, inum: int) -> int:
        group, index = divmod(inum - 1, self.per_group)
        desc = self.fs._read_group_desc(group)
        table = desc.bg_inode_table_lo
        if self.fs._group_desc_struct == c_ext.ext4_group_desc:
            table |= desc.bg_inode_table_hi << 32
        return table * self.fs.block_size + index * self.inode_size

    def listing(self, node) -> dict[str, tuple[int, int | None]]:
        """A folder's entries by name, as (inode number, type from the entry), read within the
        comparison's budget."""
        return {
            name: (inum, kind) for _offset, name, inum, kind in self.disk.dirents(node, self.budget)
        }

    def node(self, name: str, entry: tuple[int, int | None]):
        return self.fs.get_inode(entry[0], name, entry[1])

    def raw(self, inum: int) -> bytes:
        """The inode's record as it is on disk (cheaper than parsing it). The inode tables are
        read a piece at a time and kept for a while: a comparison reads them all, both sides."""
        piece, within = divmod(self.inode_offset(inum), _TABLE_PIECE)
        data = self.pieces.get(piece)
        if data is None:
            if len(self.pieces) >= _TABLE_PIECES_KEPT:
                self.pieces.clear()
            self.fs.fh.seek(piece * _TABLE_PIECE)
            data = self.pieces[piece] = self.fs.fh.read(_TABLE_PIECE)
        record = data[within : within + self.inode_size]
        if len(record) != self.inode_size:
            raise Damaged(f"Inode {inum} of this file system lies past the end of its disk.")
        return record


def _masked(raw: bytes) -> bytes:
    # Leaves out what changes on a mere read or says nothing of the file: the access time (and
    # its extra bits) and the checksums.
    return raw[:8] + raw[12:124] + raw[126:130] + raw[132:140] + raw[144:]


def _fast_runs(raw: bytes) -> list[tuple[int | None, int]] | None:
    """A file's block map read from its raw inode, when it lies wholly in the inode: [] for
    inline data and fast symlinks, the extents for an extent tree of depth 0; None otherwise
    (index blocks or an ext2/3 block map live elsewhere, so the inode alone does not say)."""
    flags = int.from_bytes(raw[32:36], "little")
    size = int.from_bytes(raw[4:8], "little") | int.from_bytes(raw[108:112], "little") << 32
    kind = stat.S_IFMT(int.from_bytes(raw[0:2], "little"))
    if flags & INLINE_FL or (kind == stat.S_IFLNK and size < 60 and not flags & EXTENTS_FL):
        return []
    if not flags & EXTENTS_FL:
        return None
    block = raw[40:100]
    magic, entries, _max, depth = struct.unpack_from("<HHHH", block, 0)
    if magic != 0xF30A or depth != 0 or entries > 4:
        return None
    runs: list[tuple[int | None, int]] = []
    position = 0
    for index in range(entries):
        first, length, start_hi, start_lo = struct.unpack_from("<IHHI", block, 12 + 12 * index)
        if first != position:
            runs.append((None, first - position))
        if length > 0x8000:  # not yet written: reads as zeros
            runs.append((None, length - 0x8000))
            position = first + length - 0x8000
            continue
        runs.append(((start_hi << 32) | start_lo, length))
        position = first + length
    return runs


def _touched(runs, block_size: int, changed: Ranges | None, size: int) -> list[tuple[int, int]]:
    """The byte ranges of a file (offsets in the file) whose blocks lie in `changed`."""
    if changed is None:
        return [(0, size)] if size else []
    found = []
    offset = 0
    for block, count in runs:
        length = count * block_size
        if block is not None:
            disk = block * block_size
            for start, end in changed.overlap(disk, disk + length):
                lo, hi = offset + start - disk, min(size, offset + end - disk)
                if lo < hi:
                    found.append((lo, hi))
        offset += length
        if offset >= size:
            break
    return found


class _PageFull(Exception):
    """One page of a comparison holds as many changes as it may."""


class _Comparer:
    """A walk of both trees in path order (a folder's entries sorted by name, each folder's
    contents right after it), which stops when the page holds `limit` changes or the request's
    budget is spent, and resumes after the path a cursor names."""

    def __init__(
        self, old: Disk, new: Disk, changed: Ranges | None, diffs: bool, cursor, limit: int
    ):
        self.budget = Budget(COMPARE_WALK, COMPARE_BYTES)
        self.old, self.new = _Side(old, self.budget), _Side(new, self.budget)
        self.changed = changed
        self.diffs = diffs
        self.after = compare_key(cursor)
        self.limit = limit
        self.last: tuple[bytes, ...] | None = None  # the last entry done, whole or but its folder
        self.diff_count = 0
        self.result = Comparison(
            changed_region_bytes=changed.total if changed is not None else None,
            needs_recovery=old.needs_recovery or new.needs_recovery,
        )
        self.seen: set[tuple[int, int]] = set()

    def same_record(self, old_inum: int, new_inum: int) -> bool:
        """Whether two inodes hold the same metadata and block map (their raw records equal
        but for the access time and checksums): then only their blocks can make them differ."""
        return _masked(self.old.raw(old_inum)) == _masked(self.new.raw(new_inum))

    def run(self) -> Comparison:
        try:
            self.compare_dirs(self.old.fs.root, self.new.fs.root, [], self.same_record(2, 2))
        except _PageFull:
            self.result.next = compare_cursor(self.last)
        except Exhausted:
            if self.last is None:
                raise TooLarge(
                    "These snapshots hold a folder with more entries than one page of a "
                    f"comparison reads (over {COMPARE_WALK:,}, both sides together); compare "
                    "them inside a VM instead."
                ) from None
            self.result.next = compare_cursor(self.last)
        for changes in (self.result.added, self.result.removed, self.result.changed):
            changes.sort(key=lambda c: _key(split_path(c.path)))
        return self.result

    # --- Where the walk is ------------------------------------------------------------------------

    def place(self, parts: list[str]) -> str:
        """ "do" an entry past the cursor, "enter" a folder on the way to it, "skip" the rest."""
        key = _key(parts)
        if len(key) > MAX_DEPTH or sum(map(len, key)) + len(key) > PATH_MAX:
            raise TooLarge(
                f"These snapshots hold folders nested deeper than is compared here (over "
                f"{MAX_DEPTH} levels or {PATH_MAX} bytes of path); compare them inside a VM."
            )
        if self.after is None:
            return "do"
        if key > self.after:
            self.after = None  # the walk is in path order: everything from here on is past it
            return "do"
        return "enter" if self.after[: len(key)] == key else "skip"

    def record(self, into: list, change: Change) -> None:
        if self.result.count >= self.limit:
            raise _PageFull
        into.append(change)

    def done(self, parts: list[str]) -> None:
        self.last = _key(parts)
        self.result.entries_compared += 1

    # --- The walk ---------------------------------------------------------------------------------

    def compare_dirs(self, old_dir, new_dir, parts: list[str], same: bool) -> None:
        key = (old_dir.inum, new_dir.inum)
        if key in self.seen:  # a damaged file system with a folder linked twice
            return
        self.seen.add(key)
        old_entries = self.old.listing(old_dir)
        runs = _fast_runs(self.old.raw(old_dir.inum)) if same else None
        if runs is None or _touched(runs, self.old.fs.block_size, self.changed, old_dir.size):
            new_entries = self.new.listing(new_dir)
        else:  # the same entries, pointing at the same inodes: read those on the new side
            new_entries = old_entries
        for name in sorted(old_entries.keys() | new_entries.keys(), key=name_bytes):
            child = [*parts, name]
            place = self.place(child)
            if place == "skip":
                continue
            old = self.old.node(name, old_entries[name]) if name in old_entries else None
            new = self.new.node(name, new_entries[name]) if name in new_entries else None
            if place == "enter":
                self.enter(old, new, child)
            elif new is None:
                self.gone(old, child, self.result.removed, self.old, after=False)
            elif old is None:
                self.gone(new, child, self.result.added, self.new, after=True)
            else:
                self.compare_entries(old, new, child)

    def enter(self, old, new, parts: list[str]) -> None:
        """Go down to where the cursor points, through an entry already done."""
        old_dir = old is not None and stat.S_IFMT(old.inode.i_mode) == stat.S_IFDIR
        new_dir = new is not None and stat.S_IFMT(new.inode.i_mode) == stat.S_IFDIR
        if old_dir and new_dir:
            self.compare_dirs(old, new, parts, self.same_record(old.inum, new.inum))
        elif old_dir:
            self.gone_children(old, parts, self.result.removed, self.old, after=False)
        elif new_dir:
            self.gone_children(new, parts, self.result.added, self.new, after=True)

    def gone(self, node, parts, into: list, side: _Side, *, after: bool) -> None:
        """Record `node` and everything under it as added (after) or removed."""
        kind = stat.S_IFMT(node.inode.i_mode)
        size = node.size
        self.record(
            into,
            Change(
                path=join_path(parts),
                status="added" if after else "removed",
                type=TYPES.get(kind, "unknown"),
                size_before=None if after else size,
                size_after=size if after else None,
            ),
        )
        self.done(parts)
        if kind == stat.S_IFDIR:
            self.gone_children(node, parts, into, side, after=after)

    def gone_children(self, node, parts, into: list, side: _Side, *, after: bool) -> None:
        key = (node.inum, -1 if after else -2)
        if key in self.seen:
            return
        self.seen.add(key)
        entries = side.listing(node)
        for name in sorted(entries, key=name_bytes):
            child = [*parts, name]
            place = self.place(child)
            if place == "skip":
                continue
            found = side.node(name, entries[name])
            if place == "do":
                self.gone(found, child, into, side, after=after)
            elif stat.S_IFMT(found.inode.i_mode) == stat.S_IFDIR:
                self.gone_children(found, child, into, side, after=after)

    def compare_entries(self, old, new, parts: list[str]) -> None:
        if self.same_record(old.inum, new.inum):
            self.compare_same_records(old, new, parts)
            return
        o, n = old.inode, new.inode
        old_kind, new_kind = stat.S_IFMT(o.i_mode), stat.S_IFMT(n.i_mode)
        changes: list[str] = []
        if old_kind != new_kind:
            changes.append("type")
        else:
            if stat.S_IMODE(o.i_mode) != stat.S_IMODE(n.i_mode):
                changes.append("mode")
            if (o.i_uid, o.i_uid_high, o.i_gid, o.i_gid_high) != (
                n.i_uid,
                n.i_uid_high,
                n.i_gid,
                n.i_gid_high,
            ):
                changes.append("owner")
            if old.size != new.size:
                changes.append("size")
            if old.mtime_ns != new.mtime_ns:
                changes.append("modified")
            if old_kind == stat.S_IFLNK and self.old.disk.link(old) != self.new.disk.link(new):
                changes.append("target")
            if old_kind == stat.S_IFREG:
                differs = self.content_differs(old, new, None)
                if differs is None:
                    changes.append("content_not_compared")
                elif differs:
                    changes.append("content")
        if changes:
            self.record(self.result.changed, self.change(old, new, parts, tuple(changes)))
        self.done(parts)
        if old_kind == new_kind == stat.S_IFDIR:
            self.compare_dirs(old, new, parts, False)
        elif old_kind == stat.S_IFDIR:
            self.gone_children(old, parts, self.result.removed, self.old, after=False)
        elif new_kind == stat.S_IFDIR:
            self.gone_children(new, parts, self.result.added, self.new, after=True)

    def compare_same_records(self, old, new, parts: list[str]) -> None:
        """Two entries whose inodes are alike: only their blocks (contents, a folder's entries,
        a long link's target) can differ, and only where the layers changed."""
        raw = self.old.raw(old.inum)
        kind = stat.S_IFMT(int.from_bytes(raw[0:2], "little"))
        change = None
        if kind == stat.S_IFREG:
            size = int.from_bytes(raw[4:8], "little") | int.from_bytes(raw[108:112], "little") << 32
            differs = self.content_differs(old, new, _fast_runs(raw), size)
            if differs is None or differs:
                what = "content" if differs else "content_not_compared"
                change = self.change(old, new, parts, (what,))
        elif (
            kind == stat.S_IFLNK
            and _fast_runs(raw) != []
            and self.old.disk.link(old) != self.new.disk.link(new)
        ):
            change = self.change(old, new, parts, ("target",))
        if change is not None:
            self.record(self.result.changed, change)
        self.done(parts)
        if kind == stat.S_IFDIR:
            self.compare_dirs(old, new, parts, True)

    def content_differs(
        self, old, new, same_runs: list | None, size: int | None = None
    ) -> bool | None:
        """Whether two files' contents differ; None when more would have to be read than one
        page may. `same_runs`: the block map both are known to share (their inodes are alike,
        and `size` theirs), else None."""
        size = old.size if size is None else size
        if same_runs is None and new.size != size:
            return True
        if same_runs is None:
            if old.inode.i_flags & INLINE_FL or new.inode.i_flags & INLINE_FL:
                self.budget.read(120)
                return self.old.disk.contents(old).read(60) != self.new.disk.contents(new).read(60)
            old_runs = new_runs = None
            if 2 * size <= COMPARE_BYTES:  # a larger file is not read whole anyway
                old_runs, new_runs = self.old.disk.runs(old, size), self.new.disk.runs(new, size)
        else:
            old_runs = new_runs = same_runs
        if old_runs is not None and old_runs == new_runs:
            spans = _touched(old_runs, self.old.fs.block_size, self.changed, size)
        else:
            spans = [(0, size)] if size else []
        if not spans:
            return False
        if 2 * sum(end - start for start, end in spans) > COMPARE_BYTES:
            return None
        old_stream, new_stream = (
            self.old.disk.contents(old, size),
            self.new.disk.contents(new, size),
        )
        for start, end in spans:
            position = start
            while position < end:
                length = min(CHUNK, end - position)
                self.budget.read(2 * length)
                old_stream.seek(position)
                new_stream.seek(position)
                self.result.bytes_compared += length
                if old_stream.read(length) != new_stream.read(length):
                    return True
                position += length
        return False

    def change(self, old, new, parts, changes: tuple[str, ...]) -> Change:
        kind = TYPES.get(stat.S_IFMT(new.inode.i_mode), "unknown")
        diff = None
        if (
            self.diffs
            and "content" in changes
            and self.diff_count < MAX_DIFFS
            and old.size <= DIFF_TEXT_BYTES
            and new.size <= DIFF_TEXT_BYTES
        ):
            self.diff_count += 1
            before = self.old.disk.contents(old, DIFF_TEXT_BYTES).read(DIFF_TEXT_BYTES)
            after = self.new.disk.contents(new, DIFF_TEXT_BYTES).read(DIFF_TEXT_BYTES)
            diff = text_diff(before, after, parts)
        return Change(
            path=join_path(parts),
            status="changed",
            type=kind,
            size_before=old.size,
            size_after=new.size,
            changes=changes,
            diff=diff,
        )


def _key(parts: Sequence[str]) -> tuple[bytes, ...]:
    return tuple(name_bytes(part) for part in parts)


def text_diff(before: bytes, after: bytes, parts: Sequence[str]) -> str | None:
    """A unified diff of two small text files, or None when either is not text (or has more
    lines than a diff is computed from)."""
    old_text, new_text = as_text(before), as_text(after)
    if old_text is None or new_text is None:
        return None
    old_lines = old_text.splitlines(keepends=True)
    new_lines = new_text.splitlines(keepends=True)
    if max(len(old_lines), len(new_lines)) > MAX_DIFF_INPUT_LINES:
        return None
    name = join_path(parts)
    lines = difflib.unified_diff(old_lines, new_lines, fromfile=f"a{name}", tofile=f"b{name}")
    out = []
    for index, line in enumerate(lines):
        if index >= MAX_DIFF_LINES:
            out.append("… (diff cut short)\n")
            break
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def compare_disks(
    old: Disk,
    new: Disk,
    changed: Ranges | None,
    *,
    diffs: bool = True,
    cursor: str | None = None,
    limit: int = PAGE_ENTRIES,
) -> Comparison:
    """One page of what differs from `old` to `new`, after `cursor` (the `next` of the page
    before). `changed` bounds where the disks may differ (None: anywhere); contents are read
    only there."""
    comparer = _Comparer(old, new, changed, diffs, cursor, limit)
    try:
        return comparer.run()
    except ReadError:
        raise
    except READ_ERRORS as exc:
        raise Damaged(
            "A file system in these snapshots is damaged where it was compared "
            f"({why(exc)}); they cannot be compared. Start a VM from each and check it with "
            "fsck."
        ) from exc


def compare_chains(
    old_chain: Sequence[str | Path],
    new_chain: Sequence[str | Path],
    *,
    common: int | None = None,
    diffs: bool = True,
    cursor: str | None = None,
    limit: int = PAGE_ENTRIES,
) -> Comparison:
    """One page of what differs between two disks given as their layer files, bottom-up.
    `common`: how many layers both start with (their common ancestor); by default the files
    both chains start with. Contents are read only where the layers above those may differ."""
    if common is None:
        common = common_layers(old_chain, new_chain)
    changed = changed_ranges(old_chain, new_chain, common)
    with Disk(old_chain) as old, Disk(new_chain) as new:
        return compare_disks(old, new, changed, diffs=diffs, cursor=cursor, limit=limit)
