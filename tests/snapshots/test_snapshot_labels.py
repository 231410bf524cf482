"""A snapshot is described in the same words wherever it is listed: its VM's page and the
Snapshots page render one row template."""

import pytest

from snapshots.models import Snapshot
from tests.factories import snapshot_row, vm_row

pytestmark = pytest.mark.django_db


def row_of(page: str, snapshot: Snapshot) -> str:
    start = page.index(f'id="snapshot-{snapshot.pk}"')
    return page[start : page.index("</tr>", start)]


def rows_on_both_pages(client, vm, snapshot) -> list[str]:
    client.force_login(vm.owner)
    return [
        row_of(client.get(url).content.decode(), snapshot)
        for url in (f"/vms/{vm.pk}/", "/snapshots/")
    ]


def test_a_snapshot_with_memory_says_so_on_both_pages(client, alice):
    vm = vm_row(owner=alice)
    snapshot = snapshot_row(vm, "live")
    Snapshot.objects.filter(pk=snapshot.pk).update(includes_memory=True)
    for row in rows_on_both_pages(client, vm, snapshot):
        assert "with memory" in row
        assert "crash-consistent" not in row


def test_a_pinned_scheduled_snapshot_has_the_same_badges_on_both_pages(client, alice):
    vm = vm_row(owner=alice)
    snapshot = snapshot_row(vm, "nightly")
    Snapshot.objects.filter(pk=snapshot.pk).update(kind="scheduled", pinned=True, quiesced=True)
    for row in rows_on_both_pages(client, vm, snapshot):
        assert "Scheduled" in row and "Pinned" in row and "consistent" in row
        assert "crash-consistent" not in row


def test_an_undo_point_is_called_one_on_both_pages_and_in_the_api(client, alice):
    vm = vm_row(owner=alice)
    snapshot = snapshot_row(vm, "Before restoring x")
    Snapshot.objects.filter(pk=snapshot.pk).update(kind="before_restore")
    for row in rows_on_both_pages(client, vm, snapshot):
        assert "Undo point" in row
    answer = client.get(f"/api/snapshots/{snapshot.pk}/").json()
    assert answer["kind_label"] == "Undo point"


def test_the_files_header_says_what_the_row_says(client, alice):
    vm = vm_row(owner=alice)
    snapshot = snapshot_row(vm, "live")
    Snapshot.objects.filter(pk=snapshot.pk).update(includes_memory=True)
    client.force_login(alice)
    page = client.get(f"/snapshots/{snapshot.pk}/files/").content.decode()
    head = page[page.index('data-testid="snapshot-origin"') :]
    head = head[: head.index("</p>")]
    assert "with memory" in head and "crash-consistent" not in head
    assert f'of <a href="/vms/{vm.pk}/">{vm.name}</a>' in head


def imported(owner, *, vm=None, file="class-base.qcow2", by=None) -> Snapshot:
    vm = vm or vm_row(owner=owner)
    snapshot = snapshot_row(vm, "base")
    Snapshot.objects.filter(pk=snapshot.pk).update(
        kind="imported",
        source_vm=None,
        source_vm_name="",
        imported_from=file,
        imported_by=by or owner,
    )
    snapshot.refresh_from_db()
    return snapshot


def test_an_imported_snapshot_says_which_file_it_came_from_and_who_imported_it(client, alice):
    snapshot = imported(alice)
    client.force_login(alice)
    listed = row_of(client.get("/snapshots/").content.decode(), snapshot)
    assert "class-base.qcow2" in listed and "Imported by alice" in listed
    files = client.get(f"/snapshots/{snapshot.pk}/files/").content.decode()
    assert "from <strong>class-base.qcow2</strong> by alice" in files
    assert "from ;" not in files


def test_the_new_vm_choice_names_an_imported_snapshots_file(client, alice):
    imported(alice)
    client.force_login(alice)
    page = client.get("/vms/new/").content.decode()
    assert "base (imported from class-base.qcow2 by alice)" in page
    assert "(of )" not in page


def test_the_api_says_where_a_snapshot_came_from(client, alice):
    vm = vm_row(owner=alice)
    taken = snapshot_row(vm, "taken")
    snapshot = imported(alice, vm=vm)
    client.force_login(alice)
    assert client.get(f"/api/snapshots/{taken.pk}/").json()["origin"] == f"of {vm.name}"
    answer = client.get(f"/api/snapshots/{snapshot.pk}/").json()
    assert answer["origin"] == "imported from class-base.qcow2 by alice"
    assert answer["imported_from"] == "class-base.qcow2"
    assert answer["imported_by"] == "alice"
    assert answer["consistency"] == "crash-consistent"


def test_the_vm_card_counts_snapshots_as_the_plan_does_and_names_the_undo_point(client, alice):
    vm = vm_row(owner=alice)
    snapshot_row(vm, "one")
    snapshot_row(vm, "two")
    undo = snapshot_row(vm, "Before restoring one")
    Snapshot.objects.filter(pk=undo.pk).update(kind="before_restore")
    client.force_login(alice)
    page = client.get(f"/vms/{vm.pk}/").content.decode()
    card = page[page.index('data-testid="vm-snapshot-count"') :]
    card = card[: card.index("</dd>")]
    assert ">2 " in card and "+ undo point, not counted" in card
    dashboard = client.get("/").content.decode()
    assert "<td>2</td>" in dashboard
