"""Looking inside a snapshot: list its root file system, read a file, compare two snapshots.

Nothing is booted or mounted. The snapshot's qcow2 layers are opened read-only in this process,
bottom-up, from the paths the database records (`Layer` rows and their host's pool folder), and
the ext2/3/4 file system on top is read with pure-Python readers (`dissect.hypervisor`,
`dissect.extfs`). The backing-file names written inside the layers are never used: each layer is
handed the one below it explicitly. Only a snapshot's own layers are read; they are immutable,
unlike a running VM's active layer.

What the guest wrote is data, never a path on this machine: symbolic links are shown with their
target and never followed, and paths given by a user are checked before they are looked up.

A snapshot of a running guest is crash-consistent and the reader does not replay the ext4
journal: `Disk.needs_recovery` says when the journal still holds changes, and the pages say so.

Comparing two snapshots of one chain is cheap: only the clusters allocated in the layers between
them (or, for siblings, in either side above their common ancestor) can differ. Every entry's
metadata is compared, but file contents only where a file's blocks touch those clusters.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime
import difflib
import os
import stat
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dissect.extfs import extfs as _extfs
from dissect.extfs.c_ext import EXT2, EXT3, EXT4, FILETYPES, c_ext
from dissect.hypervisor.disk import qcow2 as _qcow2
from dissect.util.stream import AlignedStream

from core.errors import ServiceError
from snapshots.models import SnapshotState
from vms.models import VM, Layer, LayerState

TEXT_PREVIEW_BYTES = 256 * 1024  # a file shown on a page as text, not only offered for download
DIFF_TEXT_BYTES = 64 * 1024  # files up to this size (both sides) get a text diff
MAX_DIFFS = 200  # text diffs in one comparison
MAX_DIFF_LINES = 2000
PATH_MAX = 4096
NAME_MAX = 255
CHUNK = 1024 * 1024

_RECOVER = c_ext.EXT3_FEATURE_INCOMPAT_RECOVER
_EXTENTS_FL = c_ext.EXT4_EXTENTS_FL
_INLINE_FL = c_ext.EXT4_INLINE_DATA_FL

TYPES = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "directory",
    stat.S_IFLNK: "symlink",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "char_device",
    stat.S_IFBLK: "block_device",
}

# Errors from reading damaged or hostile data: a layer or file system that is not what its
# headers claim. They become a sentence for the user (`NotBrowsable`), never a server error.
_READ_ERRORS = (
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
)


class BrowseError(ServiceError):
    """A look inside a snapshot that cannot be answered as asked."""


class NotBrowsable(BrowseError):
    """The snapshot's disk cannot be read here: not ready, not an ext2/3/4 file system, a
    partition table, layers missing from this machine, or damaged data."""


class BadPath(BrowseError):
    """A path that is not allowed (`..`, control characters, too long) or names a symbolic link
    where a folder or file is needed."""


class PathNotFound(BrowseError):
    """No such file or folder in the snapshot."""


class WrongType(BrowseError):
    """The path names a folder where a file is needed, a device, or the like."""


@dataclass(frozen=True)
class Entry:
    """One file, folder or link of the guest's file system, as `ls -l` would show it."""

    path: str
    name: str
    type: str
    size: int
    mode: str
    permissions: int
    uid: int
    gid: int
    modified: datetime.datetime
    inode: int
    target: str | None = None

    @property
    def is_dir(self) -> bool:
        return self.type == "directory"

    @property
    def is_file(self) -> bool:
        return self.type == "file"

    @property
    def target_path(self) -> str | None:
        """Where a symbolic link points inside the guest's file system, or None when it climbs
        out of it (more `..` than folders above it)."""
        if self.target is None:
            return None
        base = [] if self.target.startswith("/") else split_path(self.path)[:-1]
        parts = list(base)
        for part in self.target.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    return None
                parts.pop()
            else:
                parts.append(part)
        return join_path(parts)


# --- Paths ---------------------------------------------------------------------------------------


def split_path(raw: str | None) -> list[str]:
    """The parts of a path given by a user, from the root; refused with `BadPath` when it holds
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
    return shown("/" + "/".join(parts))


# --- Layers --------------------------------------------------------------------------------------


class _ZeroPadded(AlignedStream):
    """The disk below a layer, as long as the layer's disk: a layer may be larger than its
    backing layer (a disk grown when a VM was made), and what lies past the end reads as zeros,
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


def _open_layer(path: Path):
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.fdopen(os.open(path, flags), "rb")


def _qcow2_of(fh) -> _qcow2.QCow2:
    try:
        # No backing or data file is opened here: the caller passes the layer below itself.
        image = _qcow2.QCow2(fh, allow_no_backing_file=True, allow_no_data_file=True)
    except (*_READ_ERRORS, _qcow2.InvalidHeaderError) as exc:
        raise NotBrowsable(f"A layer of this disk is not a readable qcow2 image ({exc}).") from exc
    if image.needs_data_file:
        raise NotBrowsable("A layer of this disk keeps its data in an external file; not read.")
    return image


class Disk:
    """A snapshot's disk, opened read-only, with the file system on it.

    Use as a context manager, or call `close()`: it holds one open file per layer.
    """

    def __init__(self, paths: Sequence[str | Path]):
        if not paths:
            raise NotBrowsable("This snapshot has no disk layers to read.")
        self._files = []
        try:
            self.stream = self._open_chain([Path(p) for p in paths])
            self.fs = self._open_fs()
        except BaseException:
            self.close()
            raise
        self.needs_recovery = bool(self.fs.sb.s_feature_incompat & _RECOVER)
        self.fs_type = {EXT2: "ext2", EXT3: "ext3", EXT4: "ext4"}.get(self.fs.type, "ext")
        self.label = self.fs.volume_name

    def _open_chain(self, paths: list[Path]):
        stream = None
        for path in paths:
            try:
                fh = _open_layer(path)
            except FileNotFoundError:
                raise NotBrowsable(
                    "A layer of this snapshot is not on this machine: its disk lives on another "
                    "host, or is being freed."
                ) from None
            except OSError as exc:
                raise NotBrowsable(f"A layer of this snapshot cannot be opened ({exc}).") from exc
            self._files.append(fh)
            image = _qcow2_of(fh)
            if image.needs_backing_file:
                if stream is None:
                    raise NotBrowsable(
                        "The bottom layer of this disk names a backing file the database does "
                        "not record; it is not read."
                    )
                below = stream
                if below.size != image.size:
                    below = _ZeroPadded(stream, image.size, image.cluster_size)
                image.backing_file = below
            elif stream is not None:
                raise NotBrowsable(
                    "A layer of this disk has no backing file although the database records "
                    "one; the chain is inconsistent."
                )
            stream = image.open()
        return stream

    def _open_fs(self):
        try:
            return _extfs.ExtFS(self.stream)
        except _READ_ERRORS as exc:
            raise NotBrowsable(self._unknown_fs_message()) from exc

    def _unknown_fs_message(self) -> str:
        try:
            self.stream.seek(0)
            head = self.stream.read(0x10048)
        except _READ_ERRORS:
            head = b""
        found = None
        if head[512:520] == b"EFI PART":
            found = "a GPT partition table"
        elif len(head) >= 512 and head[510:512] == b"\x55\xaa":
            found = "an MBR partition table"
        elif head[:4] == b"XFSB":
            found = "an XFS file system"
        elif head[0x10040:0x10048] == b"_BHRfS_M":
            found = "a Btrfs file system"
        elif head[:6] == b"LUKS\xba\xbe":
            found = "an encrypted (LUKS) volume"
        elif not head.strip(b"\x00"):
            found = "nothing (the start of the disk is empty)"
        if found and "partition" in found:
            return (
                f"This disk starts with {found}; only a disk that is one ext2, ext3 or ext4 file "
                "system can be browsed. Start a VM from the snapshot to look inside it."
            )
        what = f"It holds {found}." if found else "Its file system is of an unknown kind."
        return (
            f"This disk has no ext2, ext3 or ext4 file system to browse. {what} Start a VM "
            "from the snapshot to look inside it."
        )

    def close(self) -> None:
        for fh in self._files:
            with contextlib.suppress(OSError):
                fh.close()
        self._files = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- Reading ---------------------------------------------------------------------------------

    def _guard(self, action):
        try:
            return action()
        except BrowseError:
            raise
        except _READ_ERRORS as exc:
            raise NotBrowsable(
                "The file system in this snapshot is damaged where this was read "
                f"({type(exc).__name__}); it cannot be shown."
            ) from exc

    def _children(self, node) -> Iterator:
        for child in node.iterdir():
            if child.filename in (".", ".."):
                continue
            yield child

    def _lookup(self, parts: list[str]):
        node = self.fs.root
        for index, part in enumerate(parts):
            kind = stat.S_IFMT(node.inode.i_mode)
            if kind != stat.S_IFDIR:
                where = join_path(parts[:index])
                if kind == stat.S_IFLNK:
                    raise BadPath(
                        f"{where} is a symbolic link; links are shown, never followed. "
                        "Open the folder it points to instead."
                    )
                raise PathNotFound(f"{where} is not a folder.")
            for child in self._children(node):
                if child.filename == part:
                    node = child
                    break
            else:
                raise PathNotFound(f"No file or folder {join_path(parts[: index + 1])} here.")
        return node

    def _entry(self, node, parts: list[str]) -> Entry:
        raw = node.inode
        mode = raw.i_mode
        kind = TYPES.get(stat.S_IFMT(mode), "unknown")
        target = None
        if kind == "symlink":
            target = shown(node.link)
        return Entry(
            path=join_path(parts),
            name=shown(parts[-1]) if parts else "/",
            type=kind,
            size=node.size,
            mode=stat.filemode(mode),
            permissions=stat.S_IMODE(mode),
            uid=raw.i_uid | (raw.i_uid_high << 16),
            gid=raw.i_gid | (raw.i_gid_high << 16),
            modified=datetime.datetime.fromtimestamp(node.mtime_ns / 1e9, tz=datetime.UTC),
            inode=node.inum,
            target=target,
        )

    def stat(self, path: str | None) -> Entry:
        """The entry at `path` (a symbolic link itself, not what it points to)."""
        parts = split_path(path)
        return self._guard(lambda: self._entry(self._lookup(parts), parts))

    def listdir(self, path: str | None) -> list[Entry]:
        """The folder's entries, folders first, then by name."""
        parts = split_path(path)

        def read():
            node = self._lookup(parts)
            if stat.S_IFMT(node.inode.i_mode) != stat.S_IFDIR:
                raise WrongType(f"{join_path(parts)} is not a folder.")
            entries = [self._entry(c, [*parts, c.filename]) for c in self._children(node)]
            entries.sort(key=lambda e: (not e.is_dir, e.name))
            return entries

        return self._guard(read)

    def open_file(self, path: str | None):
        """`(entry, stream)` of a regular file; anything else is refused."""
        parts = split_path(path)

        def open_():
            node = self._lookup(parts)
            entry = self._entry(node, parts)
            if entry.type == "symlink":
                raise BadPath(
                    f"{entry.path} is a symbolic link (to {entry.target}); links are shown, "
                    "never followed."
                )
            if entry.type != "file":
                raise WrongType(f"{entry.path} is not a regular file, so it has no contents.")
            return entry, node.open()

        return self._guard(open_)

    def read_text(self, path: str | None, limit: int = TEXT_PREVIEW_BYTES) -> str | None:
        """A small file's contents as text, or None when it is larger than `limit` or not text."""
        entry, stream = self.open_file(path)
        if entry.size > limit:
            return None
        return _as_text(self._guard(lambda: stream.read(entry.size)))

    def chunks(self, stream, size: int) -> Iterator[bytes]:
        """A file's contents in pieces, for a download of any size."""
        left = size
        while left > 0:
            data = stream.read(min(CHUNK, left))
            if not data:
                return
            left -= len(data)
            yield data


def _as_text(data: bytes) -> str | None:
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


# --- Which parts of a disk two snapshots may differ in -------------------------------------------


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
    read from its L1/L2 tables: where it may differ from the layer below it."""
    with _open_layer(Path(path)) as fh:
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
        except _READ_ERRORS as exc:
            raise NotBrowsable(f"A layer's cluster tables cannot be read ({exc}).") from exc
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


# --- Comparing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """A path added, removed or changed between two snapshots."""

    path: str
    status: str  # "added", "removed" or "changed"
    type: str
    size_before: int | None
    size_after: int | None
    changes: tuple[str, ...] = ()
    diff: str | None = None


@dataclass
class Comparison:
    """What differs from the `old` disk to the `new` one, by path."""

    added: list[Change] = field(default_factory=list)
    removed: list[Change] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    entries_compared: int = 0
    bytes_compared: int = 0
    changed_region_bytes: int | None = None
    needs_recovery: bool = False

    @property
    def count(self) -> int:
        return len(self.added) + len(self.removed) + len(self.changed)


_TABLE_PIECE = 64 * 1024  # a multiple of every inode size, so no record straddles two pieces
_TABLE_PIECES_KEPT = 512


class _Side:
    def __init__(self, disk: Disk):
        self.disk = disk
        self.fs = disk.fs
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

    def listing(self, node) -> dict:
        """A folder's entries by name, parsed straight from its blocks (as the reader's own
        `iterdir` does, without building a structure per entry)."""
        data = node.open().read(node.size)
        with_type = self.fs._dirtype == c_ext.ext2_dir_entry_2
        limit = self.fs.sb.s_inodes_count
        found = {}
        offset = 0
        while offset < len(data) - 12:
            inum, rec_len, name_len = struct.unpack_from("<IHH", data, offset)
            if rec_len == 0:
                break
            file_type = None
            if with_type:
                file_type = FILETYPES.get(name_len >> 8)
                name_len &= 0xFF
            if 0 < inum < limit:
                name = data[offset + 8 : offset + 8 + name_len].decode(errors="surrogateescape")
                if name not in (".", ".."):
                    found[name] = self.fs.get_inode(inum, name, file_type)
            offset += rec_len
        return found

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
        return data[within : within + self.inode_size]


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
    if flags & _INLINE_FL or (kind == stat.S_IFLNK and size < 60 and not flags & _EXTENTS_FL):
        return []
    if not flags & _EXTENTS_FL:
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


def _runs(node) -> list[tuple[int | None, int]]:
    if node.inode.i_flags & _INLINE_FL:
        return []
    return [tuple(run) for run in node.dataruns()]


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


class _Comparer:
    def __init__(self, old: Disk, new: Disk, changed: Ranges | None, diffs: bool):
        self.old, self.new = _Side(old), _Side(new)
        self.changed = changed
        self.diffs = diffs
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
        root = self.old.fs.root
        self.compare_dirs(root, self.new.fs.root, [], self.same_record(2, 2))
        for changes in (self.result.added, self.result.removed, self.result.changed):
            changes.sort(key=lambda c: c.path)
        return self.result

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
            get = self.new.fs.get_inode
            new_entries = {name: get(n.inum, name, n._filetype) for name, n in old_entries.items()}
        for name in sorted(old_entries.keys() | new_entries.keys()):
            old, new = old_entries.get(name), new_entries.get(name)
            child = [*parts, name]
            if new is None:
                self.gone(old, child, self.result.removed, self.old, after=False)
            elif old is None:
                self.gone(new, child, self.result.added, self.new, after=True)
            else:
                self.compare_entries(old, new, child)

    def gone(self, node, parts, into: list, side: _Side, *, after: bool) -> None:
        """Record `node` and everything under it as added (after) or removed."""
        kind = stat.S_IFMT(node.inode.i_mode)
        size = node.size
        into.append(
            Change(
                path=join_path(parts),
                status="added" if after else "removed",
                type=TYPES.get(kind, "unknown"),
                size_before=None if after else size,
                size_after=size if after else None,
            )
        )
        self.result.entries_compared += 1
        if kind == stat.S_IFDIR and (node.inum, -1 if after else -2) not in self.seen:
            self.seen.add((node.inum, -1 if after else -2))
            for name, child in sorted(side.listing(node).items()):
                self.gone(child, [*parts, name], into, side, after=after)

    def compare_entries(self, old, new, parts: list[str]) -> None:
        self.result.entries_compared += 1
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
            if old_kind == stat.S_IFLNK and old.link != new.link:
                changes.append("target")
            if old_kind == stat.S_IFREG and self.content_differs(old, new, None):
                changes.append("content")
        if changes:
            self.result.changed.append(self.change(old, new, parts, tuple(changes)))
        if old_kind == new_kind == stat.S_IFDIR:
            self.compare_dirs(old, new, parts, False)
        elif old_kind != new_kind:
            if old_kind == stat.S_IFDIR:
                for name, child in sorted(self.old.listing(old).items()):
                    self.gone(child, [*parts, name], self.result.removed, self.old, after=False)
            if new_kind == stat.S_IFDIR:
                for name, child in sorted(self.new.listing(new).items()):
                    self.gone(child, [*parts, name], self.result.added, self.new, after=True)

    def compare_same_records(self, old, new, parts: list[str]) -> None:
        """Two entries whose inodes are alike: only their blocks (contents, a folder's entries,
        a long link's target) can differ, and only where the layers changed."""
        raw = self.old.raw(old.inum)
        kind = stat.S_IFMT(int.from_bytes(raw[0:2], "little"))
        if kind == stat.S_IFDIR:
            self.compare_dirs(old, new, parts, True)
        elif kind == stat.S_IFREG:
            size = int.from_bytes(raw[4:8], "little") | int.from_bytes(raw[108:112], "little") << 32
            if self.content_differs(old, new, _fast_runs(raw), size):
                self.result.changed.append(self.change(old, new, parts, ("content",)))
        elif kind == stat.S_IFLNK and _fast_runs(raw) != [] and old.link != new.link:
            self.result.changed.append(self.change(old, new, parts, ("target",)))

    def content_differs(self, old, new, same_runs: list | None, size: int | None = None) -> bool:
        """Whether two files' contents differ. `same_runs`: the block map both are known to
        share (their inodes are alike, and `size` theirs), else None."""
        size = old.size if size is None else size
        if same_runs is None and new.size != size:
            return True
        if same_runs is None:
            if old.inode.i_flags & _INLINE_FL or new.inode.i_flags & _INLINE_FL:
                return old.open().read(size) != new.open().read(size)
            old_runs, new_runs = _runs(old), _runs(new)
        else:
            old_runs = new_runs = same_runs
        if old_runs == new_runs:
            spans = _touched(old_runs, self.old.fs.block_size, self.changed, size)
        else:
            spans = [(0, size)] if size else []
        if not spans:
            return False
        old_stream, new_stream = old.open(), new.open()
        for start, end in spans:
            position = start
            while position < end:
                length = min(CHUNK, end - position)
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
            and len([c for c in self.result.changed if c.diff is not None]) < MAX_DIFFS
            and old.size <= DIFF_TEXT_BYTES
            and new.size <= DIFF_TEXT_BYTES
        ):
            diff = text_diff(old.open().read(old.size), new.open().read(new.size), parts)
        return Change(
            path=join_path(parts),
            status="changed",
            type=kind,
            size_before=old.size,
            size_after=new.size,
            changes=changes,
            diff=diff,
        )


def text_diff(before: bytes, after: bytes, parts: Sequence[str]) -> str | None:
    """A unified diff of two small text files, or None when either is not text."""
    old_text, new_text = _as_text(before), _as_text(after)
    if old_text is None or new_text is None:
        return None
    name = join_path(parts)
    lines = difflib.unified_diff(
        old_text.splitlines(keepends=True),
        new_text.splitlines(keepends=True),
        fromfile=f"a{name}",
        tofile=f"b{name}",
    )
    out = []
    for index, line in enumerate(lines):
        if index >= MAX_DIFF_LINES:
            out.append("… (diff cut short)\n")
            break
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def compare_disks(old: Disk, new: Disk, changed: Ranges | None, *, diffs: bool = True):
    """What differs from `old` to `new`. `changed` bounds where the disks may differ (None:
    anywhere); contents are read only there."""
    comparer = _Comparer(old, new, changed, diffs)
    try:
        return comparer.run()
    except BrowseError:
        raise
    except _READ_ERRORS as exc:
        raise NotBrowsable(
            "A file system in these snapshots is damaged where it was compared "
            f"({type(exc).__name__}); they cannot be compared."
        ) from exc


def compare_chains(
    old_chain: Sequence[str | Path], new_chain: Sequence[str | Path], *, diffs: bool = True
) -> Comparison:
    """Compare two disks given as their layer files, bottom-up. Layers that both chains start
    with (the same files) are their common ancestor."""
    common = 0
    for a, b in zip(old_chain, new_chain, strict=False):
        if Path(a) != Path(b):
            break
        common += 1
    changed = changed_ranges(old_chain, new_chain, common)
    with Disk(old_chain) as old, Disk(new_chain) as new:
        return compare_disks(old, new, changed, diffs=diffs)


# --- Snapshots: their layers, as the database records them ----------------------------------------


def snapshot_chain(snapshot) -> list[Layer]:
    """The layers of a snapshot's disk, bottom-up, refused unless every one is immutable: the
    snapshot is ready and no VM writes to any of them."""
    if snapshot.state != SnapshotState.READY or snapshot.layer_id is None:
        raise NotBrowsable("This snapshot is not ready yet; try again when it is.")
    chain = []
    layer = Layer.objects.select_related("host").get(pk=snapshot.layer_id)
    while layer is not None:
        if layer.state != LayerState.READY:
            raise NotBrowsable("A layer of this snapshot is being changed; try again shortly.")
        chain.append(layer)
        if len(chain) > 1000:
            raise NotBrowsable("This snapshot's chain of layers loops; it cannot be read.")
        layer = (
            Layer.objects.select_related("host").get(pk=layer.parent_id)
            if layer.parent_id
            else None
        )
    chain.reverse()
    if VM.objects.filter(active_layer__in=[layer.pk for layer in chain]).exists():
        raise NotBrowsable("A VM is writing to this disk, so it cannot be read as a snapshot.")
    return chain


def layer_file(layer: Layer) -> Path:
    """Where a layer's file is on this machine: the pool folder of a host here that holds it
    (the one it was made on, or one with a copy), and the name derived from its id."""
    from vms.hypervisor import uri_is_local
    from vms.layers import layer_holders

    for host in layer_holders(layer):
        if uri_is_local(host.libvirt_uri):
            return Path(host.pool_path) / layer.volume_name
    raise NotBrowsable(
        f"This snapshot's disk is on host {layer.host.name}, another machine; files are read "
        "only from disks on the machine that serves these pages."
    )


def snapshot_open(snapshot) -> Disk:
    """The snapshot's disk, opened read-only (close it, or use it as a context manager)."""
    return Disk([layer_file(layer) for layer in snapshot_chain(snapshot)])


def snapshots_compare(*, old, new, diffs: bool = True) -> Comparison:
    """What differs from snapshot `old` to snapshot `new`: files added, removed and changed."""
    old_chain, new_chain = snapshot_chain(old), snapshot_chain(new)
    common = 0
    for a, b in zip(old_chain, new_chain, strict=False):
        if a.pk != b.pk:
            break
        common += 1
    old_files = [layer_file(layer) for layer in old_chain]
    new_files = [layer_file(layer) for layer in new_chain]
    try:
        changed = changed_ranges(old_files, new_files, common)
    except OSError:
        raise NotBrowsable(
            "A layer of these snapshots is not on this machine; they cannot be compared here."
        ) from None
    with Disk(old_files) as old_disk, Disk(new_files) as new_disk:
        return compare_disks(old_disk, new_disk, changed, diffs=diffs)
