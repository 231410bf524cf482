"""The ext2/3/4 file system on a disk: folders list exactly what was put in, a page at a time;
files read back exactly; links are shown, never followed; what cannot be read is a sentence."""

import hashlib

import pytest

from diskread import (
    CHUNK,
    BadCursor,
    BadPath,
    Disk,
    NotReadable,
    PathNotFound,
    WrongType,
)
from tests.diskread.images import BIG


def names(listing):
    return [(e.name, e.type) for e in listing]


def test_the_root_folder_lists_exactly_what_was_put_in_folders_first(chain):
    with Disk(chain("one")) as disk:
        assert names(disk.listdir("/")) == [
            ("empty", "directory"),
            ("etc", "directory"),
            ("home", "directory"),
            ("lost+found", "directory"),
            ("escape", "symlink"),
            ("inside", "symlink"),
        ]


def test_a_disk_says_its_file_system_and_that_its_journal_is_clean(chain):
    with Disk(chain("one")) as disk:
        assert (disk.fs_type, disk.needs_recovery) == ("ext4", False)


def test_a_journal_to_replay_is_reported(chain):
    with Disk(chain("dirty")) as disk:
        assert disk.needs_recovery is True


def test_an_entry_has_its_path_size_mode_owner_and_time(chain):
    with Disk(chain("one")) as disk:
        big = disk.stat("/home/alice/big.bin")
    assert (big.path, big.name, big.type, big.size) == (
        "/home/alice/big.bin",
        "big.bin",
        "file",
        len(BIG),
    )
    assert (big.mode, big.permissions, big.uid, big.gid) == ("-rw-r--r--", 0o644, 0, 0)
    assert big.modified.isoformat().startswith("2026-05-28T")


def test_the_root_is_a_folder_named_slash(chain):
    with Disk(chain("one")) as disk:
        root = disk.stat("/")
    assert (root.path, root.name, root.is_dir) == ("/", "/", True)


def test_a_symbolic_link_is_listed_with_its_target(chain):
    with Disk(chain("one")) as disk:
        links = {e.name: e.target for e in disk.listdir("/") if e.type == "symlink"}
    assert links == {"escape": "../../../../etc/passwd", "inside": "etc/hostname"}


def test_a_small_text_file_reads_back_exactly(chain):
    with Disk(chain("two")) as disk:
        assert disk.read_text("/etc/config.ini") == "a=1\nb=20\nc=3\n"


def test_a_file_larger_than_the_preview_is_not_read_as_text(chain):
    with Disk(chain("one")) as disk:
        assert disk.read_text("/home/alice/big.bin") is None


def test_a_large_file_streams_back_exactly_in_chunks(chain):
    with Disk(chain("four")) as disk:
        entry, stream = disk.open_file("/home/alice/big.bin")
        pieces = list(disk.chunks(stream, entry.size))
    assert all(len(piece) <= CHUNK for piece in pieces) and len(pieces) == 4
    assert hashlib.sha256(b"".join(pieces)).digest() == hashlib.sha256(BIG).digest()


def test_a_symbolic_link_is_never_followed_to_its_contents(chain):
    with Disk(chain("one")) as disk, pytest.raises(BadPath, match="never followed"):
        disk.open_file("/escape")


def test_a_symbolic_link_is_never_followed_as_a_folder(chain):
    with Disk(chain("one")) as disk, pytest.raises(BadPath, match="symbolic link"):
        disk.stat("/inside/x")


def test_a_missing_path_is_not_found(chain):
    with Disk(chain("one")) as disk, pytest.raises(PathNotFound) as refused:
        disk.stat("/etc/nothing")
    assert refused.value.message == "No file or folder /etc/nothing here."


def test_a_path_under_a_file_is_not_found(chain):
    with Disk(chain("one")) as disk, pytest.raises(PathNotFound, match="not a folder"):
        disk.stat("/etc/hostname/x")


def test_a_folder_has_no_contents_to_open(chain):
    with Disk(chain("one")) as disk, pytest.raises(WrongType, match="not a regular file"):
        disk.open_file("/etc")


def test_a_file_cannot_be_listed(chain):
    with Disk(chain("one")) as disk, pytest.raises(WrongType, match="not a folder"):
        disk.listdir("/etc/hostname")


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("zeros", "no ext2, ext3 or ext4 file system to browse. It holds nothing"),
        ("mbr", "starts with an MBR partition table"),
    ],
)
def test_a_disk_without_an_ext_file_system_is_refused_with_what_it_holds(chain, name, words):
    with pytest.raises(NotReadable, match=words):
        Disk(chain(name))


def test_a_folder_comes_a_page_at_a_time_with_a_cursor_to_the_next(chain):
    with Disk(chain("one")) as disk:
        first = disk.listdir("/", limit=4)
        second = disk.listdir("/", first.next, limit=4)
    assert len(first) == 4 and first.next
    assert names(first) + names(second) == names_of_root(chain)
    assert second.next is None


def names_of_root(chain):
    with Disk(chain("one")) as disk:
        return names(disk.listdir("/"))


def test_the_last_page_of_a_folder_has_no_cursor(chain):
    with Disk(chain("one")) as disk:
        assert disk.listdir("/etc").next is None


@pytest.mark.parametrize("cursor", ["not!a!cursor", "AAAA", "x" * 9000])
def test_a_cursor_not_handed_out_is_refused(chain, cursor):
    with Disk(chain("one")) as disk, pytest.raises(BadCursor, match="not handed out"):
        disk.listdir("/", cursor)


def test_a_closed_disk_holds_no_open_files(chain):
    disk = Disk(chain("four"))
    files = list(disk._files)
    disk.close()
    assert len(files) == 3 and all(fh.closed for fh in files)
