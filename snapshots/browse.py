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

Every number the guest wrote is hostile: sizes, block maps, folder records, inode numbers. Each
read takes its length from a limit here, never from the file system alone: a link's target is
read up to `LINK_MAX` bytes, a block map up to `MAX_MAP_BLOCKS` blocks of tree and `MAX_RUNS`
pieces, a folder up to `MAX_DIR_BYTES`, and one request walks at most `LIST_WALK` folder entries
(`COMPARE_WALK` and `COMPARE_BYTES` for one page of a comparison). Folders and comparisons come in
pages of `PAGE_ENTRIES`, each with a cursor to the next. What breaks a rule is `Damaged`, what is
legal but larger than a request may read is `TooLarge`: both are sentences, never a server error.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import datetime
import difflib
import heapq
import io
import os
import re
import stat
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dissect.extfs import extfs as _extfs
from dissect.extfs.c_ext import EXT2, EXT3, EXT4, FILETYPES, c_ext
from dissect.hypervisor.disk import qcow2 as _qcow2
from dissect.util.stream import AlignedStream, RunlistStream

from core.errors import ServiceError
from snapshots.models import SnapshotState
from vms.models import VM, Layer, LayerState

MIB = 1024 * 1024
TEXT_PREVIEW_BYTES = 256 * 1024  # a file shown on a page as text, not only offered for download
DIFF_TEXT_BYTES = 64 * 1024  # files up to this size (both sides) get a text diff
MAX_DIFFS = 200  # text diffs in one page of a comparison
MAX_DIFF_LINES = 2000  # lines of one diff shown
MAX_DIFF_INPUT_LINES = 5000  # lines of one side a diff is computed from (difflib is quadratic)
PATH_MAX = 4096
NAME_MAX = 255
CHUNK = MIB

# Limits of what one request reads from the guest's file system (see the module's docstring).
PAGE_ENTRIES = 500  # entries of a folder, or changes of a comparison, in one page
LINK_MAX = 4096  # bytes of a symbolic link's target read (Linux's PATH_MAX)
MAX_BLOCK_SIZE = 64 * 1024  # the largest ext4 block
MAX_RUNS = 200_000  # pieces of one file's block map
MAX_MAP_BLOCKS = 8192  # extent-tree or indirect blocks read to map one file
MAX_DIR_BYTES = 128 * MIB  # a folder larger than this (about 3 million entries) is not read
MAX_DEPTH = 256  # folders deep a comparison descends
LIST_WALK = 2_000_000  # folder entries one request walks to look up a path and list a folder
COMPARE_WALK = 400_000  # folder entries one page of a comparison reads, both sides together
COMPARE_BYTES = 512 * MIB  # file contents one page of a comparison reads, both sides together

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
    struct.error,
)


class BrowseError(ServiceError):
    """A look inside a snapshot that cannot be answered as asked."""


class NotBrowsable(BrowseError):
    """The snapshot's disk cannot be read here: not ready, not an ext2/3/4 file system, a
    partition table, layers missing from this machine, or damaged data."""


class Damaged(NotBrowsable):
    """The file system breaks its own rules where it was read (a bad superblock, a block map or
    folder record that points outside it, a loop): what the guest wrote cannot be shown."""


class TooLarge(NotBrowsable):
    """Legal, but more than one request reads: a folder of millions of entries, a block map
    of too many pieces."""


class BadCursor(BrowseError):
    """A `cursor` that this service did not hand out."""


class _Exhausted(Exception):
    """A request's budget of folder entries or bytes is spent (see `_Budget`)."""


class _Budget:
    """What one request may still read: folder entries walked, and bytes of file contents."""

    def __init__(self, entries: int, data: int = 0):
        self.entries = entries
        self.data = data

    def walk(self, count: int = 1) -> None:
        self.entries -= count
        if self.entries < 0:
            raise _Exhausted

    def read(self, count: int) -> None:
        self.data -= count
        if self.data < 0:
            raise _Exhausted


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
    target_cut: bool = False  # the link claims a longer target than `LINK_MAX`; not linked

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
        if self.target is None or self.target_cut:
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
        self.budget = _Budget(LIST_WALK)
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
        self.stream.seek(1024)
        sb = self.stream.read(1024)
        if len(sb) < 1024 or sb[56:58] != b"\x53\xef":
            raise NotBrowsable(self._unknown_fs_message())
        _check_superblock(sb, self.stream.size)
        try:
            return _extfs.ExtFS(self.stream)
        except _READ_ERRORS as exc:
            raise Damaged(
                f"The ext file system on this disk is damaged ({_why(exc)}); it cannot be "
                "browsed. Start a VM from the snapshot and check it with fsck."
            ) from exc

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
            raise Damaged(
                "The file system in this snapshot is damaged where this was read "
                f"({_why(exc)}); it cannot be shown. Start a VM from the snapshot and check it "
                "with fsck."
            ) from exc

    def _read_block(self, block: int) -> bytes:
        if not 0 < block < self.fs.block_count:
            raise Damaged(
                f"A block map in this file system points outside it (block {block}); it is "
                "damaged and cannot be shown."
            )
        self.fs.fh.seek(block * self.fs.block_size)
        data = self.fs.fh.read(self.fs.block_size)
        if len(data) != self.fs.block_size:
            raise Damaged("A block of this file system lies past the end of its disk.")
        return data

    def runs(self, node, length: int) -> list[tuple[int | None, int]]:
        """The block map of a file's first `length` bytes, as (first block or None for a hole,
        count) pieces, read within `MAX_MAP_BLOCKS` and `MAX_RUNS` whatever the inode claims."""
        if node.inode.i_flags & _INLINE_FL:
            return []
        need = -(-length // self.fs.block_size)
        if node.inode.i_flags & _EXTENTS_FL:
            runs = _Map(self, need).extents(bytes(node.inode.i_block))
        else:
            runs = _Map(self, need).indirect(bytes(node.inode.i_block))
        return runs

    def contents(self, node, length: int | None = None):
        """A file's contents as a stream of at most `length` bytes (its size by default), mapped
        within the limits of `runs`."""
        size = node.size if length is None else min(length, node.size)
        if node.inode.i_flags & _INLINE_FL or (
            stat.S_IFMT(node.inode.i_mode) == stat.S_IFLNK and node.size < 60
        ):
            buf = io.BytesIO(bytes(node.inode.i_block)[: min(size, 60)])
            buf.size = min(size, 60)
            return buf
        return RunlistStream(self.fs.fh, self.runs(node, size), size, self.fs.block_size)

    def link(self, node) -> tuple[str, bool]:
        """A symbolic link's target, read up to `LINK_MAX` bytes, and whether it claims more."""
        data = self.contents(node, LINK_MAX).read(LINK_MAX)
        return shown(data.decode("utf-8", "surrogateescape")), node.size > LINK_MAX

    def dirents(self, node, budget: _Budget) -> Iterator[tuple[int, str, int, int | None]]:
        """A folder's entries as (offset, name, inode number, type from the entry or None),
        read a piece at a time; every record counts against `budget`."""
        size = node.size
        if size > MAX_DIR_BYTES:
            raise TooLarge(
                f"This folder claims {size:,} bytes of entries, more than the {MAX_DIR_BYTES:,} "
                "read here; start a VM from the snapshot to look inside it."
            )
        with_type = self.fs._dirtype == c_ext.ext2_dir_entry_2
        inodes = self.fs.sb.s_inodes_count
        if node.inode.i_flags & _INLINE_FL:
            # Inline folders keep the parent's number first, then entries in the inode.
            pieces = [(4, bytes(node.inode.i_block)[4 : min(size, 60)])]
            block_size = 56
        else:
            block_size = self.fs.block_size
            pieces = self._dir_pieces(node, size, budget)
        for base, data in pieces:
            for start in range(0, len(data), block_size):
                end = min(start + block_size, len(data))
                position = start
                while position + 8 <= end:
                    inum, rec_len, name_len, kind = struct.unpack_from("<IHBB", data, position)
                    if rec_len in (0, 65535) and block_size == 65536:
                        rec_len = 65536
                    if rec_len < 8 or rec_len % 4 or position + rec_len > end:
                        raise Damaged(
                            "A folder record in this file system is damaged (its length is "
                            f"{rec_len}); the folder cannot be listed."
                        )
                    budget.walk()
                    if not with_type:
                        name_len |= kind << 8
                        kind = 0
                    if inum:
                        if name_len == 0 or name_len > NAME_MAX or 8 + name_len > rec_len:
                            raise Damaged(
                                "A folder record in this file system has a name longer than "
                                "its record; the folder cannot be listed."
                            )
                        raw = data[position + 8 : position + 8 + name_len]
                        if raw not in (b".", b".."):
                            if inum > inodes:
                                raise Damaged(
                                    f"A folder entry in this file system names inode {inum}, "
                                    f"past the {inodes:,} it has; it is damaged."
                                )
                            name = raw.decode("utf-8", "surrogateescape")
                            yield base + position, name, inum, FILETYPES.get(kind)
                    position += rec_len

    def _dir_pieces(self, node, size: int, budget: _Budget) -> Iterator[tuple[int, bytes]]:
        stream = RunlistStream(self.fs.fh, self.runs(node, size), size, self.fs.block_size)
        piece = max(self.fs.block_size, 64 * 1024)
        offset = 0
        while offset < size:
            data = stream.read(min(piece, size - offset))
            if not data:
                return
            yield offset, data
            offset += len(data)

    def _kind(self, inum: int, kind: int | None) -> int:
        if kind is None:
            kind = stat.S_IFMT(self.fs.get_inode(inum).inode.i_mode)
        return kind

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
            for _offset, name, inum, ftype in self._walked(node, parts[:index]):
                if name == part:
                    node = self.fs.get_inode(inum, name, ftype)
                    break
            else:
                raise PathNotFound(f"No file or folder {join_path(parts[: index + 1])} here.")
        return node

    def _walked(self, node, parts: list[str]):
        try:
            yield from self.dirents(node, self.budget)
        except _Exhausted:
            raise TooLarge(
                f"The folder {join_path(parts)} holds more entries than one request reads "
                f"(over {LIST_WALK:,}); start a VM from the snapshot to look inside it."
            ) from None

    def _entry(self, node, parts: list[str]) -> Entry:
        raw = node.inode
        mode = raw.i_mode
        kind = TYPES.get(stat.S_IFMT(mode), "unknown")
        target, cut = None, False
        if kind == "symlink":
            target, cut = self.link(node)
            if cut:
                target += "…"
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
            target_cut=cut,
        )

    def stat(self, path: str | None) -> Entry:
        """The entry at `path` (a symbolic link itself, not what it points to)."""
        parts = split_path(path)
        return self._guard(lambda: self._entry(self._lookup(parts), parts))

    def listdir(
        self, path: str | None, cursor: str | None = None, limit: int = PAGE_ENTRIES
    ) -> Listing:
        """One page of a folder's entries, folders first, then by name: at most `limit`, after
        `cursor` (the `next` of the page before). The folder is walked once and only the page
        is kept, so a folder of any size costs one walk and `limit` entries of memory."""
        parts = split_path(path)
        after = _listing_key(cursor)

        def keyed(node):
            for offset, name, inum, ftype in self._walked(node, parts):
                kind = self._kind(inum, ftype)
                key = (0 if kind == stat.S_IFDIR else 1, _name_bytes(name), offset)
                if after is None or key > after:
                    yield key, name, inum, ftype

        def read():
            node = self._lookup(parts)
            if stat.S_IFMT(node.inode.i_mode) != stat.S_IFDIR:
                raise WrongType(f"{join_path(parts)} is not a folder.")
            page = heapq.nsmallest(limit + 1, keyed(node), key=lambda item: item[0])
            more = len(page) > limit
            page = page[:limit]
            entries = [
                self._entry(self.fs.get_inode(inum, name, ftype), [*parts, name])
                for _key, name, inum, ftype in page
            ]
            return Listing(entries, _listing_cursor(page[-1][0]) if more else None)

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
            return entry, self.contents(node)

        return self._guard(open_)

    def read_text(self, path: str | None, limit: int = TEXT_PREVIEW_BYTES) -> str | None:
        """A small file's contents as text, or None when it is larger than `limit` or not text."""
        entry, stream = self.open_file(path)
        if entry.size > limit:
            return None
        return _as_text(self._guard(lambda: stream.read(min(entry.size, limit))))

    def chunks(self, stream, size: int) -> Iterator[bytes]:
        """A file's contents in pieces of at most `CHUNK` bytes, for a download of any size."""
        left = size
        while left > 0:
            data = stream.read(min(CHUNK, left))
            if not data:
                return
            left -= len(data)
            yield data


@dataclass
class Listing:
    """One page of a folder: its entries, and the cursor of the next page (None: the last)."""

    entries: list[Entry]
    next: str | None = None

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def _name_bytes(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _listing_cursor(key: tuple[int, bytes, int]) -> str:
    rank, name, offset = key
    raw = bytes([rank]) + offset.to_bytes(8, "big") + name
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _listing_key(cursor: str | None) -> tuple[int, bytes, int] | None:
    if cursor is None or cursor == "":
        return None
    raw = _cursor_bytes(cursor)
    if len(raw) < 10 or len(raw) > 9 + NAME_MAX or raw[0] not in (0, 1):
        raise BadCursor(_CURSOR_MESSAGE)
    return raw[0], raw[9:], int.from_bytes(raw[1:9], "big")


CURSOR_MAX = 8192
_CURSOR = re.compile(r"[A-Za-z0-9_-]+")
_CURSOR_MESSAGE = "This cursor was not handed out here; follow the `next` link of a page."


def _cursor_bytes(cursor: str) -> bytes:
    if not isinstance(cursor, str) or len(cursor) > CURSOR_MAX or not _CURSOR.fullmatch(cursor):
        raise BadCursor(_CURSOR_MESSAGE)
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except ValueError:
        raise BadCursor(_CURSOR_MESSAGE) from None


def _why(exc: BaseException) -> str:
    text = str(exc)[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_superblock(sb: bytes, disk_size: int) -> None:
    """Refuse a superblock whose numbers would make the reader allocate or loop beyond reason
    (the reader derives its block size, tables and groups from them)."""

    def u32(at):
        return int.from_bytes(sb[at : at + 4], "little")

    def u16(at):
        return int.from_bytes(sb[at : at + 2], "little")

    inodes, log_block, log_cluster = u32(0), u32(24), u32(28)
    blocks_per_group, inodes_per_group = u32(32), u32(40)
    rev, inode_size, incompat, desc_size = u32(76), u16(88), u32(96), u16(254)
    first_data = u32(20)
    problem = None
    if log_block > 6:
        problem = f"a block size of 1024 << {log_block} bytes"
    else:
        block = 1024 << log_block
        blocks = u32(4) | (u32(336) << 32 if incompat & c_ext.EXT4_FEATURE_INCOMPAT_64BIT else 0)
        if log_cluster != log_block:
            problem = "clusters unlike its blocks"
        elif rev >= 1 and (inode_size < 128 or inode_size > block or inode_size & inode_size - 1):
            problem = f"inodes of {inode_size} bytes"
        elif not 0 < blocks_per_group <= 8 * block or not 0 < inodes_per_group <= 8 * block:
            problem = "groups of an impossible size"
        elif desc_size and (desc_size < 32 or desc_size > 1024 or desc_size & desc_size - 1):
            problem = f"group descriptors of {desc_size} bytes"
        elif blocks == 0 or blocks * block > disk_size or first_data >= blocks:
            problem = f"{blocks:,} blocks of {block} bytes on a disk of {disk_size:,} bytes"
        else:
            groups = (blocks - first_data - 1) // blocks_per_group + 1
            if inodes < 10 or inodes > groups * inodes_per_group:
                problem = f"{inodes:,} inodes in {groups:,} groups"
    if problem:
        raise Damaged(
            f"The ext file system on this disk is damaged: its superblock claims {problem}. "
            "It cannot be browsed; start a VM from the snapshot and check it with fsck."
        )


class _Map:
    """A file's block map read within limits: `need` blocks of it, from at most
    `MAX_MAP_BLOCKS` blocks of tree, in at most `MAX_RUNS` pieces."""

    def __init__(self, disk: Disk, need: int):
        self.disk = disk
        self.need = need
        self.block_size = disk.fs.block_size
        self.runs: list[tuple[int | None, int]] = []
        self.position = 0
        self.reads = 0

    def _tree_block(self, block: int) -> bytes:
        self.reads += 1
        if self.reads > MAX_MAP_BLOCKS:
            raise TooLarge(
                "A file's block map is larger than is read here (over "
                f"{MAX_MAP_BLOCKS:,} blocks of it); start a VM from the snapshot to read it."
            )
        return self.disk._read_block(block)

    def _add(self, block: int | None, count: int) -> None:
        if count <= 0:
            return
        if self.runs:
            last, last_count = self.runs[-1]
            if (last is None and block is None) or (
                last is not None and block is not None and last + last_count == block
            ):
                self.runs[-1] = (last, last_count + count)
                self.position += count
                return
        if len(self.runs) >= MAX_RUNS:
            raise TooLarge(
                f"A file is in more than {MAX_RUNS:,} pieces, more than is read here; start a VM "
                "from the snapshot to read it."
            )
        self.runs.append((block, count))
        self.position += count

    def _finish(self) -> list[tuple[int | None, int]]:
        if self.position < self.need:
            self._add(None, self.need - self.position)
        return self.runs

    def extents(self, root: bytes) -> list[tuple[int | None, int]]:
        """An extent tree, walked in order; each level must be one less deep than its parent,
        so it cannot loop, and every index block read counts against `MAX_MAP_BLOCKS`."""
        per_block = (self.block_size - 12) // 12
        stack = [(root, 0, *self._header(root, None, 4))]
        while stack and self.position < self.need:
            data, index, count, depth = stack[-1]
            if index >= count:
                stack.pop()
                continue
            stack[-1] = (data, index + 1, count, depth)
            at = 12 + 12 * index
            if depth == 0:
                first, length, start_hi, start_lo = struct.unpack_from("<IHHI", data, at)
                unwritten = length > 0x8000
                if unwritten:
                    length -= 0x8000
                if first < self.position:
                    raise Damaged(
                        "A file's extents overlap or are out of order; the file system is "
                        "damaged and the file cannot be read."
                    )
                self._add(None, first - self.position)
                self._add(None if unwritten else (start_hi << 32) | start_lo, length)
            else:
                _first, leaf_lo, leaf_hi, _unused = struct.unpack_from("<IIHH", data, at)
                child = self._tree_block((leaf_hi << 32) | leaf_lo)
                stack.append((child, 0, *self._header(child, depth - 1, per_block)))
        return self._finish()

    @staticmethod
    def _header(data: bytes, depth: int | None, most: int) -> tuple[int, int]:
        magic, entries, _max, found = struct.unpack_from("<HHHH", data, 0)
        if magic != 0xF30A or entries > most or found > 5 or depth not in (None, found):
            raise Damaged(
                "A file's extent tree is damaged (a bad header, or a level that does not go "
                "down); the file cannot be read."
            )
        return entries, found

    def indirect(self, i_block: bytes) -> list[tuple[int | None, int]]:
        """An ext2/3 block map: 12 direct blocks, then single, double and triple indirect
        blocks (a fixed depth, so it cannot loop); a zero pointer is a hole, never read."""
        words = struct.unpack("<15I", i_block)
        for word in words[:12]:
            if self.position >= self.need:
                break
            self._add(word or None, 1)
        for level, pointer in enumerate(words[12:], start=1):
            self._indirect(pointer, level)
        return self._finish()

    def _indirect(self, pointer: int, level: int) -> None:
        per = self.block_size // 4
        if self.position >= self.need:
            return
        if pointer == 0:
            self._add(None, min(per**level, self.need - self.position))
            return
        words = struct.unpack(f"<{per}I", self._tree_block(pointer))
        for word in words:
            if self.position >= self.need:
                return
            if level == 1:
                self._add(word or None, 1)
            else:
                self._indirect(word, level - 1)


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
    def __init__(self, disk: Disk, budget: _Budget):
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


def _compare_cursor(key: tuple[bytes, ...]) -> str:
    raw = b"".join(bytes([len(part)]) + part for part in key)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _compare_key(cursor: str | None) -> tuple[bytes, ...] | None:
    if cursor is None or cursor == "":
        return None
    raw = _cursor_bytes(cursor)
    parts, at = [], 0
    while at < len(raw):
        length = raw[at]
        part = raw[at + 1 : at + 1 + length]
        if length == 0 or len(part) != length:
            raise BadCursor(_CURSOR_MESSAGE)
        parts.append(part)
        at += 1 + length
    if not parts or len(parts) > MAX_DEPTH:
        raise BadCursor(_CURSOR_MESSAGE)
    return tuple(parts)


class _Comparer:
    """A walk of both trees in path order (a folder's entries sorted by name, each folder's
    contents right after it), which stops when the page holds `limit` changes or the request's
    budget is spent, and resumes after the path a cursor names."""

    def __init__(
        self, old: Disk, new: Disk, changed: Ranges | None, diffs: bool, cursor, limit: int
    ):
        self.budget = _Budget(COMPARE_WALK, COMPARE_BYTES)
        self.old, self.new = _Side(old, self.budget), _Side(new, self.budget)
        self.changed = changed
        self.diffs = diffs
        self.after = _compare_key(cursor)
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
            self.result.next = _compare_cursor(self.last)
        except _Exhausted:
            if self.last is None:
                raise TooLarge(
                    "These snapshots hold a folder with more entries than one page of a "
                    f"comparison reads (over {COMPARE_WALK:,}, both sides together); compare "
                    "them inside a VM instead."
                ) from None
            self.result.next = _compare_cursor(self.last)
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
        for name in sorted(old_entries.keys() | new_entries.keys(), key=_name_bytes):
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
        for name in sorted(entries, key=_name_bytes):
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
            if old.inode.i_flags & _INLINE_FL or new.inode.i_flags & _INLINE_FL:
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
    return tuple(_name_bytes(part) for part in parts)


def text_diff(before: bytes, after: bytes, parts: Sequence[str]) -> str | None:
    """A unified diff of two small text files, or None when either is not text (or has more
    lines than a diff is computed from)."""
    old_text, new_text = _as_text(before), _as_text(after)
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
    except BrowseError:
        raise
    except _READ_ERRORS as exc:
        raise Damaged(
            "A file system in these snapshots is damaged where it was compared "
            f"({_why(exc)}); they cannot be compared. Start a VM from each and check it with "
            "fsck."
        ) from exc


def compare_chains(
    old_chain: Sequence[str | Path],
    new_chain: Sequence[str | Path],
    *,
    diffs: bool = True,
    cursor: str | None = None,
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
        return compare_disks(old, new, changed, diffs=diffs, cursor=cursor)


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


def snapshots_compare(*, old, new, diffs: bool = True, cursor: str | None = None) -> Comparison:
    """One page of what differs from snapshot `old` to snapshot `new`: files added, removed and
    changed, after `cursor`."""
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
        return compare_disks(old_disk, new_disk, changed, diffs=diffs, cursor=cursor)
