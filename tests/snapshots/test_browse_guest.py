"""Looking inside snapshots of a real running guest: files written in the guest are listed, read
and compared exactly, through the layers libvirt and the service made."""

import json
import subprocess

import pytest

from snapshots import browse
from snapshots.models import Snapshot
from snapshots.services import snapshot_take
from tests import guest
from tests.conftest import succeeded

pytestmark = pytest.mark.libvirt


def take(vm, name):
    operation = succeeded(snapshot_take(vm=vm, user=vm.owner, name=name))
    return Snapshot.objects.get(pk=operation.result["snapshot"])


def settle(vm):
    # A snapshot of a running guest is crash-consistent and the reader does not replay the
    # journal: freezing the file system for a moment writes the journal back in place (what a
    # guest agent's quiesce does), so the files are where the reader looks.
    guest.run(vm, "sync; fsfreeze -f / && fsfreeze -u /; echo settled")


def test_files_written_in_a_guest_are_listed_read_and_compared(make_vm, alice):
    vm = make_vm(alice, name="browsed")
    guest.wait_for_boot(vm)
    guest.run(
        vm,
        "mkdir -p /root/work/sub && printf 'one\\ntwo\\n' > /root/work/notes.txt && "
        "echo keep > /root/work/sub/keep && echo gone > /root/work/gone && "
        "ln -s ../../../../etc/shadow /root/work/out",
    )
    settle(vm)
    first = take(vm, "first")
    guest.run(
        vm,
        "printf 'one\\nTWO\\n' > /root/work/notes.txt && rm /root/work/gone && "
        "echo fresh > /root/work/sub/fresh && chmod 600 /root/work/sub/keep",
    )
    settle(vm)
    second = take(vm, "second")

    with browse.snapshot_open(first) as disk:
        listing = {e.name: (e.type, e.size) for e in disk.listdir("/root/work")}
        assert listing == {
            "sub": ("directory", listing["sub"][1]),
            "gone": ("file", 5),
            "notes.txt": ("file", 8),
            "out": ("symlink", 22),
        }
        assert disk.read_text("/root/work/notes.txt") == "one\ntwo\n"
        assert disk.stat("/root/work/out").target == "../../../../etc/shadow"
        with pytest.raises(browse.BadPath):
            disk.open_file("/root/work/out")

    result = browse.snapshots_compare(old=first, new=second)
    under_work = [c for c in result.changed if c.path.startswith("/root/work/")]
    assert [c.path for c in result.added] == ["/root/work/sub/fresh"]
    assert [c.path for c in result.removed] == ["/root/work/gone"]
    assert {c.path: "content" in c.changes for c in under_work if c.type == "file"} == {
        "/root/work/notes.txt": True,
        "/root/work/sub/keep": False,
    }
    notes = next(c for c in under_work if c.path == "/root/work/notes.txt")
    assert "-two\n+TWO\n" in notes.diff
    keep = next(c for c in under_work if c.path == "/root/work/sub/keep")
    assert "mode" in keep.changes
    # The two share every layer below the first snapshot's: the region that may differ is what
    # the second's layer holds, data or zeroes (the guest's ext4 zeroes its inode tables in the
    # background: zeroes take no room, so the layer's allocation does not bound them).
    assert result.changed_region_bytes == bytes_in_top_layer(browse.layer_file(second.layer))


def bytes_in_top_layer(path):
    """The guest-visible bytes a qcow2 layer holds itself, as `qemu-img map` reports them."""
    mapped = subprocess.run(
        ["qemu-img", "map", "-U", "-f", "qcow2", "--output=json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return sum(extent["length"] for extent in json.loads(mapped.stdout) if extent["depth"] == 0)
