"""Looking inside snapshots whose file system a hostile guest wrote: every size, block map, folder
record and inode number is a lie until checked. Each read is bounded, folders and comparisons come
a page at a time, and damage is a sentence with a 4xx, never a server error, a hang or a
`MemoryError`.

The disks are built once per module without a guest, as in `test_browse`: `mkfs.ext4 -d` of a
folder, then `debugfs` and byte patches. The folder of 100,000 entries is written as raw folder
blocks (all naming one file) and turned into a folder with `debugfs`: `mkfs.ext4 -d` would take
minutes to link that many names one by one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from snapshots import browse
from tests.factories import image_row, layer_row
from tests.snapshots.test_browse import DISK, _run, _snapshot, _tool_env, make_tree
from vms.models import Host

GIB = 1024**3
CLAIM = 256 * GIB  # what the hostile inodes claim to hold
ENTRIES = 100_000
FILES = {"/etc/hostname": "hostile\n", "/target": "one file, many names\n"}
LINKS = {"/slowlink": "x" * 100, "/fastlink": "etc/hostname"}
IDS = {
    name: uuid.UUID(int=100 + i)
    for i, name in enumerate(["plain", "hostile", "superblock", "badinode", "loop"])
}


def _debugfs(raw: Path, *commands: str) -> None:
    script = raw.parent / f"{raw.name}.cmds"
    script.write_text("\n".join(commands) + "\n")
    _run("debugfs", "-w", "-f", script, raw, env=_tool_env())


def _query(raw: Path, command: str) -> str:
    return _run("debugfs", "-R", command, raw, env=_tool_env()).stdout


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


def _qcow2(raw: Path, pool: Path, name: str) -> None:
    _run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, pool / f"{IDS[name]}.qcow2")


@pytest.fixture(scope="module")
def hostile_disks(tmp_path_factory):
    """Layer files in a pool folder: `plain` (a small tree), `hostile` (the same, with links
    and a file claiming 256 GiB and a folder of 100,000 entries), `superblock` (a superblock
    claiming 1 TiB blocks), `badinode` (a folder record naming an inode past the last) and
    `loop` (a file whose extent tree points back at itself)."""
    work = tmp_path_factory.mktemp("hostile")
    pool = work / "pool"
    pool.mkdir()
    make_tree(work / "tree", FILES, LINKS)
    plain = work / "plain.raw"
    _run("mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "root_owner=0:0", "-d", work / "tree", plain,
         f"{DISK // 1024}k", env=_tool_env())  # fmt: skip
    _qcow2(plain, pool, "plain")

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
    _qcow2(hostile, pool, "hostile")

    superblock = work / "superblock.raw"
    shutil.copy(plain, superblock)
    with superblock.open("r+b") as fh:  # s_log_block_size: 1024 << 30 bytes a block
        fh.seek(1024 + 24)
        fh.write(struct.pack("<II", 30, 30))
    _qcow2(superblock, pool, "superblock")

    badinode = work / "badinode.raw"
    shutil.copy(plain, badinode)
    at = _block(badinode, "/etc") * 4096
    with badinode.open("r+b") as fh:
        fh.seek(at)
        data = fh.read(4096)
        fh.seek(at + data.index(b"hostname") - 8)
        fh.write(struct.pack("<I", 0xFFFFFF00))
    _qcow2(badinode, pool, "badinode")

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
    _qcow2(loop, pool, "loop")
    return pool


@pytest.fixture
def hostile(db, hostile_disks, alice):
    """Alice's snapshots on the hostile layers, by name."""
    host = Host.objects.create(
        name="offline",
        libvirt_uri="test:///default",
        pool_name="offline",
        pool_path=str(hostile_disks),
        console_dir=str(hostile_disks),
    )
    image = image_row()
    return {
        name: _snapshot(alice, image, layer_row(host=host, id=IDS[name], virtual_size=DISK), name)
        for name in IDS
    }


@pytest.fixture
def api(alice):
    client = APIClient()
    client.force_authenticate(alice)
    return client


@pytest.fixture
def web(client, alice):
    client.force_login(alice)
    return client


def files(api, snapshot, path="/", **query):
    return api.get(f"/api/snapshots/{snapshot.pk}/files/", {"path": path, **query})


def compare(api, new, old, **query):
    return api.get(f"/api/snapshots/{new.pk}/compare/", {"with": str(old.pk), **query})


def _follow(api, link):
    return api.get(link.removeprefix("http://testserver"))


# --- Links and files that claim 256 GiB -----------------------------------------------------------


def test_a_symlink_claiming_256_gib_is_listed_with_a_bounded_target(api, hostile):
    answer = files(api, hostile["hostile"])
    assert answer.status_code == 200, answer.content
    links = {e["name"]: e for e in answer.json()["entries"] if e["type"] == "symlink"}
    assert links["slowlink"]["size"] == CLAIM
    assert links["slowlink"]["target"].startswith("x" * 100)
    assert len(links["slowlink"]["target"]) <= browse.LINK_MAX + 1
    assert links["slowlink"]["target"].endswith("…")


def test_a_fast_symlink_claiming_256_gib_is_shown_bounded(api, hostile):
    # Its target stays in the inode, but a size of 256 GiB makes the inode a block map: the
    # "blocks" (the target's bytes) lie outside the disk and read as nothing.
    answer = files(api, hostile["hostile"], "/fastlink")
    assert answer.status_code == 200, answer.content
    assert answer.json()["entry"]["size"] == CLAIM
    assert len(answer.json()["entry"]["target"]) <= browse.LINK_MAX + 1


def test_the_page_of_a_symlink_claiming_256_gib_shows_its_bounded_target(web, hostile):
    url = reverse("snapshot_files", args=[hostile["hostile"].pk])
    page = web.get(url, {"path": "/slowlink"})
    assert page.status_code == 200
    assert "x" * 100 in page.content.decode()


def test_a_file_claiming_256_gib_is_not_previewed_and_downloads_in_bounded_chunks(api, hostile):
    answer = files(api, hostile["hostile"], "/huge.bin")
    assert answer.json()["entry"]["size"] == CLAIM
    url = f"/api/snapshots/{hostile['hostile'].pk}/files/content/?path=/huge.bin"
    download = api.get(url)
    assert download["Content-Length"] == str(CLAIM)
    chunks = iter(download.streaming_content)
    first = next(chunks)
    assert first.startswith(b"start\n") and len(first) <= browse.CHUNK
    assert len(next(chunks)) <= browse.CHUNK
    download.close()


# --- A folder of 100,000 entries ------------------------------------------------------------------


def test_a_folder_of_100000_entries_lists_one_page_and_a_next_link(api, hostile):
    answer = files(api, hostile["hostile"], "/huge")
    assert answer.status_code == 200
    body = answer.json()
    assert len(body["entries"]) == browse.PAGE_ENTRIES
    assert [e["name"] for e in body["entries"][:2]] == ["f0000000", "f0000001"]
    assert "cursor=" in body["next"]


def test_the_next_page_of_a_folder_continues_where_the_first_ended(api, hostile):
    first = files(api, hostile["hostile"], "/huge").json()
    second = _follow(api, first["next"]).json()
    names = [e["name"] for e in first["entries"] + second["entries"]]
    assert names == [f"f{i:07d}" for i in range(2 * browse.PAGE_ENTRIES)]
    assert second["next"] and second["next"] != first["next"]


def test_the_last_page_of_a_folder_has_no_next_link(api, hostile):
    answer = files(api, hostile["hostile"], "/etc")
    assert answer.json()["next"] is None


def test_the_files_page_of_a_huge_folder_shows_one_page_and_a_more_link(web, hostile):
    url = reverse("snapshot_files", args=[hostile["hostile"].pk])
    html = web.get(url, {"path": "/huge"}).content.decode()
    assert html.count("data-entry=") == browse.PAGE_ENTRIES
    more = re.search(r'data-testid="more".*?href="([^"]+)"', html).group(1).replace("&amp;", "&")
    following = web.get(more).content.decode()
    assert 'data-entry="f0000500"' in following and 'data-entry="f0000499"' not in following


def test_a_cursor_not_handed_out_is_a_400(api, hostile):
    answer = files(api, hostile["hostile"], "/huge", cursor="not!a!cursor")
    assert answer.status_code == 400
    assert answer.json()["error"]["fields"]["cursor"]


# --- Comparing with a huge folder -----------------------------------------------------------------


def test_a_compare_with_a_huge_folder_is_one_page_and_a_next_link(api, hostile):
    answer = compare(api, hostile["hostile"], hostile["plain"])
    assert answer.status_code == 200, answer.content
    body = answer.json()
    added = [c["path"] for c in body["added"]]
    assert len(added) + len(body["removed"]) + len(body["changed"]) == browse.PAGE_ENTRIES
    assert added[:3] == ["/huge", "/huge/f0000000", "/huge/f0000001"]
    assert body["next"]


def test_the_next_page_of_a_compare_continues_where_the_first_ended(api, hostile):
    first = compare(api, hostile["hostile"], hostile["plain"]).json()
    second = _follow(api, first["next"]).json()
    last = first["added"][-1]["path"]
    following = second["added"][0]["path"]
    assert following == f"/huge/f{int(last[-7:]) + 1:07d}"


def test_the_compare_page_of_a_huge_folder_has_a_more_link(web, hostile):
    url = reverse("snapshot_compare", args=[hostile["hostile"].pk])
    html = web.get(url, {"with": hostile["plain"].pk}).content.decode()
    assert html.count("data-path=") == browse.PAGE_ENTRIES
    assert 'data-testid="more"' in html


# --- Damage ---------------------------------------------------------------------------------------


def test_a_superblock_claiming_huge_blocks_is_a_422_with_a_sentence(api, hostile):
    answer = files(api, hostile["superblock"])
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "damaged"
    assert "superblock" in answer.json()["error"]["message"]


def test_a_folder_record_naming_a_bad_inode_is_a_422_with_a_sentence(api, hostile):
    answer = files(api, hostile["badinode"], "/etc")
    assert answer.status_code == 422
    assert "inode" in answer.json()["error"]["message"]


def test_an_extent_tree_that_loops_is_a_422_not_a_hang(api, hostile):
    answer = api.get(f"/api/snapshots/{hostile['loop'].pk}/files/content/?path=/target")
    assert answer.status_code == 422
    assert "extent tree" in answer.json()["error"]["message"]


def test_the_files_page_of_a_damaged_disk_says_so(web, hostile):
    page = web.get(reverse("snapshot_files", args=[hostile["superblock"].pk]))
    assert page.status_code == 422
    assert b'data-testid="browse-error"' in page.content and b"superblock" in page.content


# --- Memory ---------------------------------------------------------------------------------------

# Run in a child process whose address space is capped a few hundred MiB above what Python and
# Django take: an unbounded read (the 256 GiB link, the whole folder, the whole file) raises
# MemoryError there, and the child says which.
_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    import django
    django.setup()
    from snapshots import browse

    pool, ids, headroom = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    used = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (used + headroom, used + headroom))
    disk = lambda name: browse.Disk([f"{pool}/{ids[name]}.qcow2"])
    answers = {}

    def attempt(what, action):
        try:
            action()
            answers[what] = "ok"
        except browse.BrowseError as exc:
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
            browse.compare_disks(old, new, None)

    attempt("reads", reads)
    attempt("compare", comparison)
    for name, path in [("superblock", "/"), ("badinode", "/etc/x"), ("loop", "/target")]:
        attempt(name, lambda: disk(name).open_file(path))
    print(json.dumps(answers))
    """
)
HEADROOM = 256 * 1024**2


def test_the_reader_stays_within_256_mib_on_hostile_disks(hostile_disks):
    ids = json.dumps({name: str(value) for name, value in IDS.items()})
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(hostile_disks), ids, str(HEADROOM)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "koding_snapshots.settings"},
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
