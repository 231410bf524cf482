"""The tree pages (a VM's, and all of a user's) and the API's tree: only the owner sees them, and
they take as many queries for 200 snapshots as for 5."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from snapshots.models import Snapshot, SnapshotKind, SnapshotState
from tests.factories import snapshot_row, vm_row

pytestmark = pytest.mark.django_db


def chain_of(vm, count, *, kind=SnapshotKind.SCHEDULED):
    """`count` ready snapshots of the VM, each on the one before; the VM builds on the last."""
    parent = vm.current_snapshot
    start = timezone.now() - timedelta(days=count)
    for i in range(count):
        parent = Snapshot.objects.create(
            owner=vm.owner,
            source_vm=vm,
            source_vm_name=vm.name,
            image=vm.image,
            name=f"auto-{i}",
            kind=kind,
            parent=parent,
            state=SnapshotState.READY,
        )
        Snapshot.objects.filter(pk=parent.pk).update(created_at=start + timedelta(days=i))
    vm.current_snapshot = parent
    vm.save(update_fields=["current_snapshot"])
    return parent


@pytest.fixture
def vm(alice):
    vm = vm_row(owner=alice, name="web")
    base = snapshot_row(vm, "base")
    vm.current_snapshot = base
    vm.save(update_fields=["current_snapshot"])
    return vm


def queries_for(client, url):
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_vm_page_links_its_tree(client, alice, vm):
    client.force_login(alice)
    assert f'href="/vms/{vm.pk}/tree/"' in client.get(f"/vms/{vm.pk}/").content.decode()


def test_the_tree_shows_you_are_here_after_the_current_snapshot(client, alice, vm):
    client.force_login(alice)
    page = client.get(f"/vms/{vm.pk}/tree/").content.decode()
    assert page.index('data-snapshot="base"') < page.index('data-testid="you-are-here"')


def test_the_tree_has_each_snapshots_actions(client, alice, vm):
    child = snapshot_row(vm, "child")
    Snapshot.objects.filter(pk=child.pk).update(parent=vm.current_snapshot)
    client.force_login(alice)
    page = client.get(f"/vms/{vm.pk}/tree/").content.decode()
    assert f'data-open="restore-{child.pk}"' in page
    assert f'id="restore-{child.pk}"' in page  # the restore dialog of the Snapshots page
    assert f'href="/vms/new/?snapshot={child.pk}"' in page
    assert f'href="/snapshots/{child.pk}/files/"' in page
    assert f'href="/snapshots/{child.pk}/compare/"' in page


def test_the_tree_marks_kinds_with_the_kind_badge(client, alice, vm):
    Snapshot.objects.filter(pk=vm.current_snapshot_id).update(pinned=True, includes_memory=True)
    client.force_login(alice)
    page = client.get(f"/vms/{vm.pk}/tree/").content.decode()
    assert '<span class="badge kind" title="No schedule deletes it">Pinned</span>' in page
    assert "with memory" in page


def test_the_tree_collapses_a_run_of_scheduled_snapshots(client, alice, vm):
    chain_of(vm, 14)
    client.force_login(alice)
    page = client.get(f"/vms/{vm.pk}/tree/").content.decode()
    assert "14 scheduled snapshots, " in page
    assert '<details class="tree-run"' in page


def test_another_users_vm_tree_is_not_found(client, bob, vm):
    client.force_login(bob)
    assert client.get(f"/vms/{vm.pk}/tree/").status_code == 404


def test_the_tree_takes_as_many_queries_for_200_snapshots_as_for_5(client, alice, vm):
    client.force_login(alice)
    url = f"/vms/{vm.pk}/tree/"
    chain_of(vm, 4)
    few = queries_for(client, url)
    chain_of(vm, 195)
    assert Snapshot.objects.filter(source_vm=vm).count() == 200
    assert queries_for(client, url) == few


def test_the_snapshots_page_links_its_tree(client, alice, vm):
    client.force_login(alice)
    assert 'href="/snapshots/tree/"' in client.get("/snapshots/").content.decode()


def test_the_snapshots_tree_shows_only_the_users_snapshots(client, alice, bob, vm):
    snapshot_row(vm_row(owner=bob, image=vm.image), "bobs")
    client.force_login(alice)
    page = client.get("/snapshots/tree/").content.decode()
    assert 'data-snapshot="base"' in page
    assert 'data-snapshot="bobs"' not in page


def test_the_snapshots_tree_takes_as_many_queries_for_200_snapshots_as_for_5(client, alice, vm):
    client.force_login(alice)
    chain_of(vm, 4)
    few = queries_for(client, "/snapshots/tree/")
    chain_of(vm, 195)
    assert queries_for(client, "/snapshots/tree/") == few


def test_the_api_gives_the_tree(client, alice, vm):
    child = snapshot_row(vm, "child")
    Snapshot.objects.filter(pk=child.pk).update(parent=vm.current_snapshot)
    client.force_login(alice)
    body = client.get(f"/api/vms/{vm.pk}/snapshots/tree/").json()
    assert body["roots"] == [str(vm.current_snapshot_id)]
    assert body["current_snapshot"] == str(vm.current_snapshot_id)
    base, taken_on_it = body["snapshots"]
    assert (base["name"], base["children"]) == ("base", [str(child.pk)])
    assert (taken_on_it["name"], taken_on_it["children"]) == ("child", [])


def test_the_api_tree_of_another_users_vm_is_not_found(client, bob, vm):
    client.force_login(bob)
    assert client.get(f"/api/vms/{vm.pk}/snapshots/tree/").status_code == 404


def test_the_api_tree_takes_as_many_queries_for_200_snapshots_as_for_5(client, alice, vm):
    client.force_login(alice)
    url = f"/api/vms/{vm.pk}/snapshots/tree/"
    chain_of(vm, 4)
    few = queries_for(client, url)
    chain_of(vm, 195)
    assert queries_for(client, url) == few


def test_the_snapshots_tree_roots_a_deleted_vms_and_an_imported_snapshot(client, alice, vm):
    base = vm.current_snapshot
    gone = vm_row(owner=alice, image=vm.image, name="gone")
    orphan = snapshot_row(gone, "of-gone")
    imported = snapshot_row(vm, "imported")
    Snapshot.objects.filter(pk=orphan.pk).update(parent=base)
    Snapshot.objects.filter(pk=imported.pk).update(
        parent=base, kind=SnapshotKind.IMPORTED, source_vm=None
    )
    gone.delete()
    client.force_login(alice)
    page = client.get("/snapshots/tree/").content.decode()
    for snapshot in (base, orphan, imported):
        line = page[: page.index(f'id="tree-{snapshot.pk}"')]
        assert line[line.rindex("<li") :].startswith('<li class="tree-line" style="--depth: 0">')
    assert f'data-open="restore-{orphan.pk}"' not in page  # its VM is gone
