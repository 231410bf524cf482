"""Looking inside snapshots through the pages and the API: what the disk reader finds is shown
(its own tests are in tests/diskread), for the owner only, with refusals as status codes and
sentences; the chain read is the one the database records.

The disks are made once per run without a guest (`tests.diskread.images.build_layers`). The
backing paths written into the overlays point at a folder that does not exist: the reader must
take the chain from the database, never from the files.
"""

from __future__ import annotations

import hashlib
import uuid

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from snapshots import browse
from snapshots.models import Snapshot, SnapshotState
from tests.diskread.images import BIG, DISK, build_layers
from tests.factories import image_row, layer_row, vm_row
from vms.models import Host, LayerCopy, LayerCopyState

# The layers' ids, fixed for the run: the files are built once, the rows in every test.
IDS = {name: uuid.UUID(int=i + 1) for i, name in enumerate(["one", "two", "three", "four"])}
IDS["zeros"] = uuid.UUID(int=20)
IDS["mbr"] = uuid.UUID(int=21)
IDS["dirty"] = uuid.UUID(int=22)


@pytest.fixture(scope="session")
def offline_disks(tmp_path_factory):
    """The layer files, in a pool folder, named by their rows' ids: one (mkfs), two and three on
    one, four on two; and disks that cannot be browsed (all zeros, a partition table, a journal
    to replay)."""
    work = tmp_path_factory.mktemp("browse")
    pool = work / "pool"
    pool.mkdir()
    build_layers(work, pool, lambda name: f"{IDS[name]}.qcow2")
    return pool


@pytest.fixture
def pool_host(db, offline_disks):
    return Host.objects.create(
        name="offline",
        libvirt_uri="test:///default",
        pool_name="offline",
        pool_path=str(offline_disks),
        console_dir=str(offline_disks),
    )


def _snapshot(owner, image, layer, name, parent=None):
    return Snapshot.objects.create(
        owner=owner,
        source_vm=None,
        source_vm_name="box",
        image=image,
        name=name,
        layer=layer,
        parent=parent,
        disk_bytes=DISK,
        state=SnapshotState.READY,
    )


@pytest.fixture
def snaps(pool_host, alice):
    """Alice's snapshots on the offline layers: one; two and three on it; four on two."""
    image = image_row()
    rows = {}
    rows["one"] = layer_row(host=pool_host, id=IDS["one"], virtual_size=DISK)
    for name, parent in [("two", "one"), ("three", "one"), ("four", "two")]:
        rows[name] = layer_row(host=pool_host, parent=rows[parent], id=IDS[name])
    for name in ("zeros", "mbr", "dirty"):
        rows[name] = layer_row(host=pool_host, id=IDS[name])
    found = {"one": _snapshot(alice, image, rows["one"], "one")}
    for name, parent in [("two", "one"), ("three", "one"), ("four", "two")]:
        found[name] = _snapshot(alice, image, rows[name], name, found[parent])
    for name in ("zeros", "mbr", "dirty"):
        found[name] = _snapshot(alice, image, rows[name], name)
    return found


@pytest.fixture
def api(alice):
    client = APIClient()
    client.force_authenticate(alice)
    return client


def files_url(snapshot, path=None, content=False):
    url = f"/api/snapshots/{snapshot.pk}/files/" + ("content/" if content else "")
    return url if path is None else f"{url}?path={path}"


def names(entries):
    return [(e["name"], e["type"]) for e in entries]


# --- Listing and reading ------------------------------------------------------------------------


def test_the_root_folder_lists_exactly_what_was_put_in(api, snaps):
    answer = api.get(files_url(snaps["one"]))
    assert answer.status_code == 200
    body = answer.json()
    assert (body["filesystem"], body["needs_recovery"]) == ("ext4", False)
    assert body["entry"]["type"] == "directory"
    assert names(body["entries"]) == [
        ("empty", "directory"),
        ("etc", "directory"),
        ("home", "directory"),
        ("lost+found", "directory"),
        ("escape", "symlink"),
        ("inside", "symlink"),
    ]
    links = {e["name"]: e["target"] for e in body["entries"] if e["type"] == "symlink"}
    assert links == {"escape": "../../../../etc/passwd", "inside": "etc/hostname"}


def test_a_folder_lists_names_types_sizes_modes_and_times(api, snaps):
    body = api.get(files_url(snaps["one"], "/home/alice")).json()
    entries = {e["name"]: e for e in body["entries"]}
    assert names(body["entries"]) == [
        ("data", "directory"),
        ("big.bin", "file"),
        ("notes.txt", "file"),
    ]
    big = entries["big.bin"]
    assert (big["path"], big["size"], big["mode"], big["uid"]) == (
        "/home/alice/big.bin",
        len(BIG),
        "-rw-r--r--",
        0,
    )
    assert big["modified"].startswith("2026-05-28T")


def test_a_deeper_layer_shows_its_own_changes_and_the_layers_below(api, snaps):
    body = api.get(files_url(snaps["four"], "/home/alice/data")).json()
    assert [e["name"] for e in body["entries"]] == ["file1", "file2", "file3"]
    etc = {e["name"]: e for e in api.get(files_url(snaps["four"], "/etc")).json()["entries"]}
    assert sorted(etc) == ["config.ini", "hostname", "new.txt"]
    assert etc["hostname"]["mode"] == "-rw-------"


def test_a_small_text_file_reads_back_exactly(api, snaps):
    answer = api.get(files_url(snaps["two"], "/etc/config.ini", content=True))
    assert answer.status_code == 200
    assert b"".join(answer.streaming_content) == b"a=1\nb=20\nc=3\n"
    assert answer["Content-Length"] == "13"
    assert 'filename="config.ini"' in answer["Content-Disposition"]


def test_a_large_file_downloads_streamed_with_its_size(api, snaps):
    answer = api.get(files_url(snaps["four"], "/home/alice/big.bin", content=True))
    assert answer.status_code == 200 and answer.streaming
    assert answer["Content-Length"] == str(len(BIG))
    data = b"".join(answer.streaming_content)
    assert hashlib.sha256(data).digest() == hashlib.sha256(BIG).digest()


def test_a_file_entry_describes_the_file(api, snaps):
    body = api.get(files_url(snaps["one"], "/etc/hostname")).json()
    assert body["entries"] is None
    assert (body["entry"]["type"], body["entry"]["size"]) == ("file", 6)


# --- Refusals -------------------------------------------------------------------------------------


def test_a_symlink_pointing_outside_is_shown_but_never_followed(api, snaps):
    answer = api.get(files_url(snaps["one"], "/escape", content=True))
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid"
    assert "never followed" in answer.json()["error"]["message"]


def test_a_symlink_inside_is_not_followed_either(api, snaps):
    answer = api.get(files_url(snaps["one"], "/inside/x"))
    assert answer.status_code == 400
    assert "symbolic link" in answer.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/etc/../etc/hostname", "..", "/./etc", "/etc/\x01"])
def test_a_path_with_dots_or_control_characters_is_refused(api, snaps, path):
    answer = api.get(files_url(snaps["one"]), {"path": path})
    assert answer.status_code == 400
    assert answer.json()["error"]["fields"]["path"]


def test_a_missing_path_is_a_404_in_the_api_shape(api, snaps):
    answer = api.get(files_url(snaps["one"], "/etc/nothing"))
    assert answer.status_code == 404
    assert answer.json() == {
        "error": {"code": "not_found", "message": "No file or folder /etc/nothing here."}
    }


def test_a_folder_or_device_has_no_content_to_download(api, snaps):
    answer = api.get(files_url(snaps["one"], "/etc", content=True))
    assert answer.status_code == 400


def test_another_users_snapshot_is_not_found(snaps, bob):
    client = APIClient()
    client.force_authenticate(bob)
    one, two = snaps["one"], snaps["two"]
    for url in [
        files_url(one),
        files_url(one, "/etc/hostname", content=True),
        f"/api/snapshots/{two.pk}/compare/",
        f"/api/snapshots/{two.pk}/compare/?with={one.pk}",
    ]:
        answer = client.get(url)
        assert answer.status_code == 404, url
        assert answer.json()["error"]["code"] == "not_found"


def test_comparing_with_another_users_snapshot_is_not_found(api, snaps, bob):
    bobs = _snapshot(bob, snaps["one"].image, snaps["one"].layer, "bob's")
    answer = api.get(f"/api/snapshots/{snaps['two'].pk}/compare/?with={bobs.pk}")
    assert answer.status_code == 404


def test_anonymous_callers_are_refused(snaps):
    assert APIClient().get(files_url(snaps["one"])).status_code == 401


@pytest.mark.parametrize(
    ("name", "words"),
    [("zeros", "no ext2, ext3 or ext4 file system"), ("mbr", "MBR partition table")],
)
def test_an_unknown_disk_is_a_409_with_a_sentence(api, snaps, name, words):
    answer = api.get(files_url(snaps[name]))
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "not_browsable"
    assert words in answer.json()["error"]["message"]


def test_a_layer_a_vm_writes_to_is_never_read(api, snaps, alice):
    vm = vm_row(owner=alice, image=snaps["one"].image)
    vm.active_layer = snaps["one"].layer
    vm.save(update_fields=["active_layer"])
    answer = api.get(files_url(snaps["two"]))
    assert answer.status_code == 409
    assert "writing to this disk" in answer.json()["error"]["message"]


def test_a_snapshot_on_another_machine_is_a_409_naming_its_host(api, snaps, pool_host):
    Host.objects.filter(pk=pool_host.pk).update(libvirt_uri="qemu+ssh://root@host2/system")
    answer = api.get(files_url(snaps["two"]))
    assert answer.status_code == 409
    assert "disk is on host offline, another machine" in answer.json()["error"]["message"]


def test_a_copy_on_this_machine_makes_a_remote_snapshot_readable(api, snaps, pool_host):
    here = Host.objects.create(
        name="here",
        libvirt_uri="qemu:///system",
        pool_name="offline",
        pool_path=pool_host.pool_path,
        console_dir=pool_host.console_dir,
    )
    Host.objects.filter(pk=pool_host.pk).update(libvirt_uri="qemu+ssh://root@host2/system")
    for name in ("one", "two"):
        LayerCopy.objects.create(layer=snaps[name].layer, host=here, state=LayerCopyState.READY)
    assert api.get(files_url(snaps["two"])).status_code == 200


def test_a_layer_missing_from_this_machine_is_a_409(api, snaps, pool_host):
    snapshot = snaps["one"]
    snapshot.layer = layer_row(host=pool_host)
    snapshot.save()
    answer = api.get(files_url(snapshot))
    assert answer.status_code == 409
    assert "not on this machine" in answer.json()["error"]["message"]


def test_a_journal_to_replay_is_reported(api, snaps):
    body = api.get(files_url(snaps["dirty"])).json()
    assert body["needs_recovery"] is True


# --- Comparing ------------------------------------------------------------------------------------


def compare(api, new, old=None):
    url = f"/api/snapshots/{new.pk}/compare/" + (f"?with={old.pk}" if old else "")
    answer = api.get(url)
    assert answer.status_code == 200, answer.content
    return answer.json()


def paths(changes):
    return [c["path"] for c in changes]


def test_compare_with_the_one_before_gives_exactly_the_changes(api, snaps):
    body = compare(api, snaps["two"])
    assert body["compared_with"] == str(snaps["one"].pk)
    assert paths(body["added"]) == ["/etc/new.txt", "/opt"]
    assert paths(body["removed"]) == ["/etc/motd"]
    changed = {c["path"]: c for c in body["changed"]}
    assert list(changed) == ["/etc/config.ini"]
    config = changed["/etc/config.ini"]
    assert (config["size_before"], config["size_after"]) == (12, 13)
    assert {"size", "modified", "content"} <= set(config["changes"])
    assert config["diff"] == (
        "--- a/etc/config.ini\n+++ b/etc/config.ini\n@@ -1,3 +1,3 @@\n a=1\n-b=2\n+b=20\n c=3\n"
    )
    added = {c["path"]: c for c in body["added"]}
    assert (added["/etc/new.txt"]["type"], added["/etc/new.txt"]["size_after"]) == ("file", 10)
    assert body["removed"][0]["size_before"] == 8


def test_compare_reads_contents_only_where_the_layers_changed(api, snaps):
    body = compare(api, snaps["two"])
    assert body["bytes_compared"] < 256 * 1024  # big.bin (3 MiB) is never read


def test_compare_the_other_way_round_swaps_added_and_removed(api, snaps):
    body = compare(api, snaps["one"], snaps["two"])
    assert paths(body["added"]) == ["/etc/motd"]
    assert paths(body["removed"]) == ["/etc/new.txt", "/opt"]


def test_siblings_compare_by_the_union_above_their_common_ancestor(api, snaps):
    body = compare(api, snaps["three"], snaps["two"])
    assert paths(body["added"]) == ["/etc/motd"]
    assert paths(body["removed"]) == ["/empty", "/etc/new.txt", "/home/alice/data/file2", "/opt"]
    assert paths(body["changed"]) == ["/etc/config.ini", "/home/alice/notes.txt"]
    notes = body["changed"][1]
    assert "+second line\n" in notes["diff"]


def test_two_layers_apart_add_up_both_layers_changes(api, snaps):
    body = compare(api, snaps["four"], snaps["one"])
    assert paths(body["added"]) == ["/etc/new.txt", "/home/alice/data/file3", "/opt"]
    assert paths(body["removed"]) == ["/etc/motd"]
    changed = {c["path"]: c["changes"] for c in body["changed"]}
    assert changed == {
        "/etc/config.ini": ["size", "modified", "content"],
        "/etc/hostname": ["mode"],
    }


def test_a_change_in_a_folder_whose_entries_did_not_change_is_found(api, snaps):
    # /etc is the same folder in two and four (its entries were read once); /etc/hostname is not.
    body = compare(api, snaps["four"], snaps["two"])
    assert paths(body["added"]) == ["/home/alice/data/file3"]
    assert body["removed"] == []
    assert {c["path"]: c["changes"] for c in body["changed"]} == {"/etc/hostname": ["mode"]}


def test_unrelated_disks_compare_in_full(snaps):
    result = browse.snapshots_compare(old=snaps["dirty"], new=snaps["two"])
    assert result.changed_region_bytes is None  # no common layer: everything may differ
    assert [c.path for c in result.added] == ["/etc/new.txt", "/opt"]
    assert [c.path for c in result.removed] == ["/etc/motd"]
    assert [c.path for c in result.changed] == ["/etc/config.ini"]


def test_a_first_snapshot_needs_another_to_compare_with(api, snaps):
    answer = api.get(f"/api/snapshots/{snaps['one'].pk}/compare/")
    assert answer.status_code == 400
    assert answer.json()["error"]["fields"]["with"]


def test_comparing_with_an_unknown_disk_is_a_409(api, snaps):
    answer = api.get(f"/api/snapshots/{snaps['two'].pk}/compare/?with={snaps['zeros'].pk}")
    assert answer.status_code == 409


# --- Pages ----------------------------------------------------------------------------------------


@pytest.fixture
def web(client, alice):
    client.force_login(alice)
    return client


def test_the_files_page_lists_a_folder_and_links_into_it(web, snaps):
    url = reverse("snapshot_files", args=[snaps["one"].pk])
    page = web.get(url, {"path": "/home/alice"})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-entry="big.bin"' in html and 'data-entry="data"' in html
    assert "?path=/home/alice/data" in html


def test_the_files_page_shows_a_small_text_file(web, snaps):
    page = web.get(reverse("snapshot_files", args=[snaps["two"].pk]), {"path": "/etc/new.txt"})
    assert page.status_code == 200
    assert b"brand new" in page.content


def test_the_download_page_streams_the_file(web, snaps):
    url = reverse("snapshot_file_download", args=[snaps["one"].pk])
    answer = web.get(url, {"path": "/home/alice/big.bin"})
    assert answer["Content-Length"] == str(len(BIG))
    assert b"".join(answer.streaming_content) == BIG


def test_the_files_page_says_why_it_cannot_show_a_path(web, snaps):
    url = reverse("snapshot_files", args=[snaps["one"].pk])
    page = web.get(url, {"path": "/etc/../etc"})
    assert page.status_code == 400
    assert b"may not contain" in page.content
    page = web.get(reverse("snapshot_files", args=[snaps["mbr"].pk]))
    assert page.status_code == 200
    assert b"partition table" in page.content


def test_the_files_page_warns_when_the_journal_was_not_replayed(web, snaps):
    page = web.get(reverse("snapshot_files", args=[snaps["dirty"].pk]))
    assert b'data-testid="needs-recovery"' in page.content


def test_the_compare_page_lists_the_changes_with_a_text_diff(web, snaps):
    page = web.get(reverse("snapshot_compare", args=[snaps["two"].pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-path="/etc/new.txt"' in html and 'data-path="/etc/motd"' in html
    assert "+b=20" in html


def test_the_pages_of_another_users_snapshot_are_not_found(client, snaps, bob):
    client.force_login(bob)
    for name in ("snapshot_files", "snapshot_file_download", "snapshot_compare"):
        assert client.get(reverse(name, args=[snaps["two"].pk])).status_code == 404
