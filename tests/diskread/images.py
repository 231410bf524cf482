"""Disk images with known contents, built without a guest, for the reader's tests and the app's.

`mkfs.ext4 -d` makes a bottom layer from a folder; each next layer is the one below changed with
`debugfs` and written as a qcow2 overlay holding only the clusters that differ (so a comparison
really is bounded by the layers). The backing paths written into the overlays point at a folder
that does not exist: the reader must take the chain from its caller, never from the files.

Hostile disks are the same small tree with lies written into it: sizes, a folder of 100,000
entries (written as raw folder blocks, all naming one file, and turned into a folder with
`debugfs`: `mkfs.ext4 -d` would take minutes to link that many names one by one), a superblock,
a folder record and an extent tree that break the rules.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

MIB = 1024**2
GIB = 1024**3
DISK = 64 * MIB
CLUSTER = 64 * 1024
T0 = 1_780_000_000  # 2026-05-28, the files' times
BIG = random.Random(17).randbytes(3 * MIB + 123)

# Where a layer's file goes in a pool folder, by its name in these builders.
FileName = Callable[[str], str]


def run(*argv, **kwargs):
    return subprocess.run(
        [str(a) for a in argv], check=True, capture_output=True, text=True, **kwargs
    )


def tool_env() -> dict:
    env = dict(os.environ)
    env["E2FSPROGS_FAKE_TIME"] = str(T0)
    env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin"
    return env


def make_tree(root: Path, files: dict[str, bytes | str], links: dict[str, str]) -> None:
    """A folder with `files` (contents; a name ending in / is a folder) and symbolic `links`."""
    for name, content in files.items():
        path = root / name.lstrip("/")
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    for name, target in links.items():
        path = root / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
    for path in sorted(root.rglob("*"), reverse=True):
        os.utime(path, (T0, T0), follow_symlinks=False)


def make_base(root: Path, raw: Path, qcow2: Path, size: int = DISK) -> None:
    run("mkfs.ext4", "-q", "-F", "-E", "root_owner=0:0", "-d", root, raw, f"{size // 1024}k",
        env=tool_env())  # fmt: skip
    run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow2)


def debugfs(raw: Path, commands: list[str], work: Path) -> None:
    script = work / "debugfs.cmds"
    script.write_text("\n".join(commands) + "\n")
    run("debugfs", "-w", "-f", script, raw, env=tool_env(), cwd=work)


def make_overlay(backing_qcow2: Path, backing_raw: Path, changed_raw: Path, out: Path) -> int:
    """`out`: a qcow2 layer on `backing_qcow2` holding only the clusters in which `changed_raw`
    differs from `backing_raw`. Returns how many clusters it holds."""
    run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", backing_qcow2, out)
    chunks = out.parent / f"{out.name}.chunks"
    chunks.mkdir()
    commands = []
    with backing_raw.open("rb") as before, changed_raw.open("rb") as after:
        offset = 0
        while data := after.read(CLUSTER):
            if before.read(CLUSTER) != data:
                chunk = chunks / str(offset)
                chunk.write_bytes(data)
                commands += ["-c", f"write -q -s {chunk} {offset} {len(data)}"]
            offset += len(data)
    for start in range(0, len(commands), 400):  # qemu-io takes many commands, not unbounded
        run("qemu-io", "-f", "qcow2", *commands[start : start + 400], out)
    shutil.rmtree(chunks)
    return len(commands) // 2


# --- Layers with known contents -------------------------------------------------------------------

V1_FILES = {
    "/etc/hostname": "alpha\n",
    "/etc/motd": "welcome\n",
    "/etc/config.ini": "a=1\nb=2\nc=3\n",
    "/home/alice/notes.txt": "first line\n",
    "/home/alice/big.bin": BIG,
    "/home/alice/data/file1": "1\n",
    "/home/alice/data/file2": "2\n",
    "/empty/": "",
}
V1_LINKS = {"/inside": "etc/hostname", "/escape": "../../../../etc/passwd"}

# Each layer of `build_layers` and the one it is built on.
PARENTS = {"one": None, "two": "one", "three": "one", "four": "two"}


def build_layers(work: Path, pool: Path, file_name: FileName) -> None:
    """Layer files in `pool`: one (mkfs of V1_FILES and V1_LINKS); two and three on one; four on
    two; and disks that cannot be browsed: `zeros` (empty), `mbr` (a partition table) and
    `dirty` (a journal to replay, unrelated to the others).

    two: /etc/new.txt added, /etc/motd removed, /etc/config.ini rewritten, /opt made.
    three: /home/alice/notes.txt rewritten, /home/alice/data/file2 and /empty removed.
    four: /home/alice/data/file3 added, /etc/hostname's mode 0600."""

    def layer(name):
        return pool / file_name(name)

    make_tree(work / "v1", V1_FILES, V1_LINKS)
    make_base(work / "v1", work / "one.raw", layer("one"))

    (work / "new.txt").write_text("brand new\n")
    (work / "config.ini").write_text("a=1\nb=20\nc=3\n")
    shutil.copy(work / "one.raw", work / "two.raw")
    debugfs(
        work / "two.raw",
        [
            "write new.txt /etc/new.txt",
            f"set_inode_field /etc/new.txt mtime {T0 + 100}",
            "rm /etc/motd",
            "rm /etc/config.ini",
            "write config.ini /etc/config.ini",
            f"set_inode_field /etc/config.ini mtime {T0 + 100}",
            "mkdir /opt",
            f"set_inode_field /opt mtime {T0 + 100}",
        ],
        work,
    )
    make_overlay(layer("one"), work / "one.raw", work / "two.raw", layer("two"))

    (work / "notes.txt").write_text("first line\nsecond line\n")
    shutil.copy(work / "one.raw", work / "three.raw")
    debugfs(
        work / "three.raw",
        [
            "rm /home/alice/notes.txt",
            "write notes.txt /home/alice/notes.txt",
            f"set_inode_field /home/alice/notes.txt mtime {T0 + 200}",
            "rm /home/alice/data/file2",
            "rmdir /empty",
        ],
        work,
    )
    make_overlay(layer("one"), work / "one.raw", work / "three.raw", layer("three"))

    (work / "file3").write_text("3\n")
    shutil.copy(work / "two.raw", work / "four.raw")
    debugfs(
        work / "four.raw",
        [
            "write file3 /home/alice/data/file3",
            f"set_inode_field /home/alice/data/file3 mtime {T0 + 300}",
            "set_inode_field /etc/hostname mode 0100600",
        ],
        work,
    )
    make_overlay(layer("two"), work / "two.raw", work / "four.raw", layer("four"))
    bogus = "/nonexistent/elsewhere/base.qcow2"
    for name in ("two", "three", "four"):
        run("qemu-img", "rebase", "-u", "-F", "qcow2", "-b", bogus, layer(name))

    run("qemu-img", "create", "-q", "-f", "qcow2", layer("zeros"), "16M")
    run("qemu-img", "create", "-q", "-f", "qcow2", layer("mbr"), "16M")
    run("qemu-io", "-f", "qcow2", "-c", "write -q -P 0x55 510 1", "-c",
        "write -q -P 0xaa 511 1", "-c", "write -q -P 0x83 450 1", layer("mbr"))  # fmt: skip
    shutil.copy(work / "one.raw", work / "dirty.raw")
    debugfs(work / "dirty.raw", ["feature needs_recovery"], work)
    run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", work / "dirty.raw", layer("dirty"))


# --- Hostile layers -------------------------------------------------------------------------------

CLAIM = 256 * GIB  # what the hostile inodes claim to hold
ENTRIES = 100_000
HOSTILE_FILES = {"/etc/hostname": "hostile\n", "/target": "one file, many names\n"}
HOSTILE_LINKS = {"/slowlink": "x" * 100, "/fastlink": "etc/hostname"}
HOSTILE = ["plain", "hostile", "superblock", "badinode", "loop"]


def _debugfs(raw: Path, *commands: str) -> None:
    script = raw.parent / f"{raw.name}.cmds"
    script.write_text("\n".join(commands) + "\n")
    run("debugfs", "-w", "-f", script, raw, env=tool_env())


def _query(raw: Path, command: str) -> str:
    return run("debugfs", "-R", command, raw, env=tool_env()).stdout


def _inode(raw: Path, path: str) -> int:
    return int(re.search(r"Inode: (\d+)", _query(raw, f"stat {path}")).group(1))


def _block(raw: Path, path: str, logical: int = 0) -> int:
    return int(_query(raw, f"bmap {path} {logical}").split()[-1])


def folder_blocks(target: int, count: int, block: int = 4096) -> bytes:
    """Raw ext4 folder blocks: `.` and `..`, then `count` names (f0000000, ...) for `target`."""
    records = [(2, b"."), (2, b"..")] + [(target, b"f%07d" % i) for i in range(count)]
    out, current = bytearray(), bytearray()
    for inum, name in records:
        length = (8 + len(name) + 3) & ~3
        if len(current) + length > block:
            _stretch(current, block)
            out += current
            current = bytearray()
        current += struct.pack("<IHBB", inum, length, len(name), 1) + name.ljust(length - 8, b"\0")
    _stretch(current, block)
    return bytes(out + current)


def _stretch(block_data: bytearray, block: int) -> None:
    """Make the last record of a folder block reach the block's end, as ext4 requires."""
    offset = last = 0
    while offset < len(block_data):
        last = offset
        offset += struct.unpack_from("<H", block_data, offset + 4)[0]
    grow = block - len(block_data)
    length = struct.unpack_from("<H", block_data, last + 4)[0] + grow
    struct.pack_into("<H", block_data, last + 4, length)
    block_data += b"\0" * grow


def build_hostile_layers(work: Path, pool: Path, file_name: FileName) -> None:
    """Layer files in `pool`, each a disk of its own: `plain` (a small tree), `hostile` (the
    same, with links and a file claiming 256 GiB and a folder /huge of 100,000 entries),
    `superblock` (a superblock claiming 1 TiB blocks), `badinode` (a folder record naming an
    inode past the last) and `loop` (a file whose extent tree points back at itself)."""

    def qcow2(raw: Path, name: str) -> None:
        run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, pool / file_name(name))

    make_tree(work / "tree", HOSTILE_FILES, HOSTILE_LINKS)
    plain = work / "plain.raw"
    run("mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "root_owner=0:0", "-d", work / "tree", plain,
        f"{DISK // 1024}k", env=tool_env())  # fmt: skip
    qcow2(plain, "plain")

    hostile = work / "hostile.raw"
    shutil.copy(plain, hostile)
    (work / "folder.bin").write_bytes(folder_blocks(_inode(hostile, "/target"), ENTRIES))
    (work / "huge.bin").write_bytes(b"start\n")
    _debugfs(
        hostile,
        f"write {work / 'folder.bin'} /huge",
        "sif /huge mode 040755",
        "sif /huge links_count 2",
        f"write {work / 'huge.bin'} /huge.bin",
        f"sif /huge.bin size {CLAIM}",
        f"sif /slowlink size {CLAIM}",
        f"sif /fastlink size {CLAIM}",
    )
    qcow2(hostile, "hostile")

    superblock = work / "superblock.raw"
    shutil.copy(plain, superblock)
    with superblock.open("r+b") as fh:  # s_log_block_size: 1024 << 30 bytes a block
        fh.seek(1024 + 24)
        fh.write(struct.pack("<II", 30, 30))
    qcow2(superblock, "superblock")

    badinode = work / "badinode.raw"
    shutil.copy(plain, badinode)
    at = _block(badinode, "/etc") * 4096
    with badinode.open("r+b") as fh:
        fh.seek(at)
        data = fh.read(4096)
        fh.seek(at + data.index(b"hostname") - 8)
        fh.write(struct.pack("<I", 0xFFFFFF00))
    qcow2(badinode, "badinode")

    loop = work / "loop.raw"
    shutil.copy(plain, loop)
    block = _block(loop, "/target")
    where = _query(loop, "imap /target")
    table, offset = re.search(r"block (\d+), offset (0x[0-9a-f]+)", where).groups()
    # The file's one block becomes an index node (depth 1) pointing at itself; the inode's root
    # (depth 2) points at it: a reader that trusts depths walks it forever.
    node = struct.pack("<HHHHI", 0xF30A, 1, 340, 1, 0) + struct.pack("<IIHH", 0, block, 0, 0)
    root = struct.pack("<HHHHI", 0xF30A, 1, 4, 2, 0) + struct.pack("<IIHH", 0, block, 0, 0)
    with loop.open("r+b") as fh:
        fh.seek(block * 4096)
        fh.write(node)
        fh.seek(int(table) * 4096 + int(offset, 16) + 40)
        fh.write(root.ljust(60, b"\0"))
    qcow2(loop, "loop")
