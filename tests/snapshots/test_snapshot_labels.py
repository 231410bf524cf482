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
        assert "Scheduled" in row and "Pinned" in row and "quiesced" in row
