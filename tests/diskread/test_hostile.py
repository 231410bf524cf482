"""Disks whose file system a hostile guest wrote: every size, block map, folder record and inode
number is a lie until checked. Each read is bounded, folders and comparisons come a page at a
time, and damage is `Damaged` with a sentence, never another exception, a hang or a
`MemoryError`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from diskread import (
    CHUNK,
    LINK_MAX,
    PAGE_ENTRIES,
    Damaged,
    Disk,
    TooLarge,
    compare_disks,
)
from tests.diskread.images import CLAIM, HOSTILE


def test_a_symlink_claiming_256_gib_is_listed_with_a_bounded_target(hostile):
    with Disk(hostile("hostile")) as disk:
        entry = disk.stat("/slowlink")
    assert entry.size == CLAIM
    assert entry.target.startswith("x" * 100) and entry.target.endswith("…")
    assert len(entry.target) <= LINK_MAX + 1 and entry.target_cut


def test_a_fast_symlink_claiming_256_gib_is_shown_bounded(hostile):
    # Its target stays in the inode, but a size of 256 GiB makes the inode a block map: the
    # "blocks" (the target's bytes) lie outside the disk and read as nothing.
    with Disk(hostile("hostile")) as disk:
        entry = disk.stat("/fastlink")
    assert entry.size == CLAIM and len(entry.target) <= LINK_MAX + 1


def test_a_file_claiming_256_gib_is_not_read_as_text(hostile):
    with Disk(hostile("hostile")) as disk:
        assert disk.read_text("/huge.bin") is None


def test_a_file_claiming_256_gib_streams_in_bounded_chunks(hostile):
    with Disk(hostile("hostile")) as disk:
        entry, stream = disk.open_file("/huge.bin")
        chunks = disk.chunks(stream, entry.size)
        first, second = next(chunks), next(chunks)
    assert first.startswith(b"start\n") and len(first) <= CHUNK
    assert len(second) <= CHUNK


def test_a_folder_of_100000_entries_lists_one_page_and_a_cursor(hostile):
    with Disk(hostile("hostile")) as disk:
        page = disk.listdir("/huge")
    assert len(page) == PAGE_ENTRIES
    assert [e.name for e in page.entries[:2]] == ["f0000000", "f0000001"]
    assert page.next


def test_the_next_page_of_a_folder_continues_where_the_first_ended(hostile):
    with Disk(hostile("hostile")) as disk:
        first = disk.listdir("/huge")
        second = disk.listdir("/huge", first.next)
    names = [e.name for e in first.entries + second.entries]
    assert names == [f"f{i:07d}" for i in range(2 * PAGE_ENTRIES)]
    assert second.next and second.next != first.next


def test_a_folder_walk_longer_than_one_request_reads_is_too_large(hostile, monkeypatch):
    monkeypatch.setattr("diskread.filesystem.LIST_WALK", 1000)
    with Disk(hostile("hostile")) as disk, pytest.raises(TooLarge, match="more entries"):
        disk.listdir("/huge")


def test_a_compare_with_a_huge_folder_is_one_page_and_a_cursor(hostile):
    with Disk(hostile("plain")) as old, Disk(hostile("hostile")) as new:
        result = compare_disks(old, new, None)
    added = [c.path for c in result.added]
    assert result.count == PAGE_ENTRIES
    assert added[:3] == ["/huge", "/huge/f0000000", "/huge/f0000001"]
    assert result.next


def test_the_next_page_of_a_compare_continues_where_the_first_ended(hostile):
    with Disk(hostile("plain")) as old, Disk(hostile("hostile")) as new:
        first = compare_disks(old, new, None)
        second = compare_disks(old, new, None, cursor=first.next)
    last = first.added[-1].path
    assert second.added[0].path == f"/huge/f{int(last[-7:]) + 1:07d}"


def test_a_superblock_claiming_huge_blocks_is_damaged(hostile):
    with pytest.raises(Damaged, match="its superblock claims a block size of 1024 << 30"):
        Disk(hostile("superblock"))


def test_a_folder_record_naming_an_inode_past_the_last_is_damaged(hostile):
    with Disk(hostile("badinode")) as disk, pytest.raises(Damaged, match="names inode"):
        disk.listdir("/etc")


def test_an_extent_tree_that_loops_is_damaged_not_a_hang(hostile):
    with Disk(hostile("loop")) as disk, pytest.raises(Damaged, match="extent tree"):
        disk.open_file("/target")


# Run in a child process whose address space is capped a few hundred MiB above what Python and
# the reader take: an unbounded read (the 256 GiB link, the whole folder, the whole file) raises
# MemoryError there, and the child says which.
_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    import diskread

    pool, names, headroom = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    used = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (used + headroom, used + headroom))
    disk = lambda name: diskread.Disk([f"{pool}/{name}.qcow2"])
    answers = {}

    def attempt(what, action):
        try:
            action()
            answers[what] = "ok"
        except diskread.ReadError as exc:
            answers[what] = type(exc).__name__
        except MemoryError:
            answers[what] = "MemoryError"

    def reads():
        with disk("hostile") as d:
            d.stat("/slowlink"), d.stat("/fastlink"), d.listdir("/")
            d.listdir("/huge"), d.read_text("/huge.bin")
            entry, stream = d.open_file("/huge.bin")
            for _, _chunk in zip(range(3), d.chunks(stream, entry.size)):
                pass

    def comparison():
        with disk("plain") as old, disk("hostile") as new:
            diskread.compare_disks(old, new, None)

    attempt("reads", reads)
    attempt("compare", comparison)
    for name, path in [("superblock", "/"), ("badinode", "/etc/x"), ("loop", "/target")]:
        attempt(name, lambda: disk(name).open_file(path))
    print(json.dumps(answers))
    """
)
HEADROOM = 256 * 1024**2


def test_the_reader_stays_within_256_mib_on_hostile_disks(hostile_pool):
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(hostile_pool), json.dumps(HOSTILE), str(HEADROOM)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert answers == {
        "reads": "ok",
        "compare": "ok",
        "superblock": "Damaged",
        "badinode": "Damaged",
        "loop": "Damaged",
    }
