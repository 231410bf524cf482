"""The ext2/3/4 file system on a disk: folders, files and links, read within limits.

`Disk` opens a chain of qcow2 layer files (`diskread.qcow2`) and the file system on top with
`dissect.extfs`. Every number the file system holds is taken as a claim: block maps, folder
records and link targets are read here, by this module's own walkers, up to the limits in
`diskread.limits`, and a claim that breaks the file system's rules is `Damaged`.
"""

from __future__ import annotations

import contextlib
import datetime
import heapq
import io
import stat
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from dissect.extfs import extfs as _extfs
from dissect.extfs.c_ext import EXT2, EXT3, EXT4, FILETYPES, c_ext
from dissect.util.stream import RunlistStream

from diskread.cursors import listing_cursor, listing_key
from diskread.errors import (
    READ_ERRORS,
    BadPath,
    Damaged,
    NotReadable,
    PathNotFound,
    ReadError,
    TooLarge,
    WrongType,
    why,
)
from diskread.limits import (
    CHUNK,
    LINK_MAX,
    LIST_WALK,
    MAX_DIR_BYTES,
    MAX_MAP_BLOCKS,
    MAX_RUNS,
    NAME_MAX,
    PAGE_ENTRIES,
    TEXT_PREVIEW_BYTES,
)
from diskread.paths import join_path, name_bytes, shown, split_path
from diskread.qcow2 import open_chain

RECOVER = c_ext.EXT3_FEATURE_INCOMPAT_RECOVER
EXTENTS_FL = c_ext.EXT4_EXTENTS_FL
INLINE_FL = c_ext.EXT4_INLINE_DATA_FL

TYPES = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "directory",
    stat.S_IFLNK: "symlink",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "char_device",
    stat.S_IFBLK: "block_device",
}


class Exhausted(Exception):
    """A request's budget of folder entries or bytes is spent (see `Budget`)."""


class Budget:
    """What one request may still read: folder entries walked, and bytes of file contents."""

    def __init__(self, entries: int, data: int = 0):
        self.entries = entries
        self.data = data

    def walk(self, count: int = 1) -> None:
        self.entries -= count
        if self.entries < 0:
            raise Exhausted

    def read(self, count: int) -> None:
        self.data -= count
        if self.data < 0:
            raise Exhausted


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


class Disk:
    """A disk given as its qcow2 layer files (bottom first), opened read-only, with the ext2/3/4
    file system on it.

    Use as a context manager, or call `close()`: it holds one open file per layer.
    """

    def __init__(self, paths: Sequence[str | Path]):
        if not paths:
            raise NotReadable("This snapshot has no disk layers to read.")
        self._files = []
        try:
            self.stream = open_chain([Path(p) for p in paths], self._files)
            self.fs = self._open_fs()
        except BaseException:
            self.close()
            raise
        self.budget = Budget(LIST_WALK)
        self.needs_recovery = bool(self.fs.sb.s_feature_incompat & RECOVER)
        self.fs_type = {EXT2: "ext2", EXT3: "ext3", EXT4: "ext4"}.get(self.fs.type, "ext")
        self.label = self.fs.volume_name

    def _open_fs(self):
        self.stream.seek(1024)
        sb = self.stream.read(1024)
        if len(sb) < 1024 or sb[56:58] != b"\x53\xef":
            raise NotReadable(self._unknown_fs_message())
        check_superblock(sb, self.stream.size)
        try:
            return _extfs.ExtFS(self.stream)
        except READ_ERRORS as exc:
            raise Damaged(
                f"The ext file system on this disk is damaged ({why(exc)}); it cannot be "
                "browsed. Start a VM from the snapshot and check it with fsck."
            ) from exc

    def _unknown_fs_message(self) -> str:
        try:
            self.stream.seek(0)
            head = self.stream.read(0x10048)
        except READ_ERRORS:
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
        except ReadError:
            raise
        except READ_ERRORS as exc:
            raise Damaged(
                "The file system in this snapshot is damaged where this was read "
                f"({why(exc)}); it cannot be shown. Start a VM from the snapshot and check it "
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
        if node.inode.i_flags & INLINE_FL:
            return []
        need = -(-length // self.fs.block_size)
        if node.inode.i_flags & EXTENTS_FL:
            runs = _Map(self, need).extents(bytes(node.inode.i_block))
        else:
            runs = _Map(self, need).indirect(bytes(node.inode.i_block))
        return runs

    def contents(self, node, length: int | None = None):
        """A file's contents as a stream of at most `length` bytes (its size by default), mapped
        within the limits of `runs`."""
        size = node.size if length is None else min(length, node.size)
        if node.inode.i_flags & INLINE_FL or (
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

    def dirents(self, node, budget: Budget) -> Iterator[tuple[int, str, int, int | None]]:
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
        if node.inode.i_flags & INLINE_FL:
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

    def _dir_pieces(self, node, size: int, budget: Budget) -> Iterator[tuple[int, bytes]]:
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
        except Exhausted:
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
        after = listing_key(cursor)

        def keyed(node):
            for offset, name, inum, ftype in self._walked(node, parts):
                kind = self._kind(inum, ftype)
                key = (0 if kind == stat.S_IFDIR else 1, name_bytes(name), offset)
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
            return Listing(entries, listing_cursor(page[-1][0]) if more else None)

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
        return as_text(self._guard(lambda: stream.read(min(entry.size, limit))))

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


def check_superblock(sb: bytes, disk_size: int) -> None:
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


def as_text(data: bytes) -> str | None:
    """`data` as text, or None when it is not UTF-8 text."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
