"""Looking inside snapshots whose file system a hostile guest wrote, through the pages and the
API: bounded targets and downloads, folders and comparisons a page at a time with a next link or
a More link, and damage as a sentence with a 4xx, never a server error. The reader's own bounds
(and its memory under a cap) are tested in tests/diskread/test_hostile.py.

The disks are built once per module without a guest (`tests.diskread.images`).
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from diskread import CHUNK, LINK_MAX, PAGE_ENTRIES
from tests.diskread.images import CLAIM, DISK, HOSTILE, build_hostile_layers
from tests.factories import image_row, layer_row
from tests.snapshots.test_browse import _snapshot
from vms.models import Host

IDS = {name: uuid.UUID(int=100 + i) for i, name in enumerate(HOSTILE)}


@pytest.fixture(scope="module")
def hostile_disks(tmp_path_factory):
    """The hostile layer files in a pool folder, named by their rows' ids."""
    work = tmp_path_factory.mktemp("hostile")
    pool = work / "pool"
    pool.mkdir()
    build_hostile_layers(work, pool, lambda name: f"{IDS[name]}.qcow2")
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
    assert len(links["slowlink"]["target"]) <= LINK_MAX + 1
    assert links["slowlink"]["target"].endswith("…")


def test_a_fast_symlink_claiming_256_gib_is_shown_bounded(api, hostile):
    # Its target stays in the inode, but a size of 256 GiB makes the inode a block map: the
    # "blocks" (the target's bytes) lie outside the disk and read as nothing.
    answer = files(api, hostile["hostile"], "/fastlink")
    assert answer.status_code == 200, answer.content
    assert answer.json()["entry"]["size"] == CLAIM
    assert len(answer.json()["entry"]["target"]) <= LINK_MAX + 1


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
    assert first.startswith(b"start\n") and len(first) <= CHUNK
    assert len(next(chunks)) <= CHUNK
    download.close()


# --- A folder of 100,000 entries ------------------------------------------------------------------


def test_a_folder_of_100000_entries_lists_one_page_and_a_next_link(api, hostile):
    answer = files(api, hostile["hostile"], "/huge")
    assert answer.status_code == 200
    body = answer.json()
    assert len(body["entries"]) == PAGE_ENTRIES
    assert [e["name"] for e in body["entries"][:2]] == ["f0000000", "f0000001"]
    assert "cursor=" in body["next"]


def test_the_next_page_of_a_folder_continues_where_the_first_ended(api, hostile):
    first = files(api, hostile["hostile"], "/huge").json()
    second = _follow(api, first["next"]).json()
    names = [e["name"] for e in first["entries"] + second["entries"]]
    assert names == [f"f{i:07d}" for i in range(2 * PAGE_ENTRIES)]
    assert second["next"] and second["next"] != first["next"]


def test_the_last_page_of_a_folder_has_no_next_link(api, hostile):
    answer = files(api, hostile["hostile"], "/etc")
    assert answer.json()["next"] is None


def test_the_files_page_of_a_huge_folder_shows_one_page_and_a_more_link(web, hostile):
    url = reverse("snapshot_files", args=[hostile["hostile"].pk])
    html = web.get(url, {"path": "/huge"}).content.decode()
    assert html.count("data-entry=") == PAGE_ENTRIES
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
    assert len(added) + len(body["removed"]) + len(body["changed"]) == PAGE_ENTRIES
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
    assert html.count("data-path=") == PAGE_ENTRIES
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
