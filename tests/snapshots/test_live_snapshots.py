"""Live snapshots: the guest's memory kept with its disk, and resumed by a restore of its own VM
without a reboot. Rules first (no libvirt), then one real guest that counts in memory only."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.services import token_create
from core.errors import InvalidState
from operations.models import Operation
from snapshots.models import Snapshot, SnapshotKind, SnapshotState, memory_volume_name
from snapshots.runners import memory_volumes_kept
from snapshots.services import snapshot_delete, snapshot_restore, snapshot_take
from tests.factories import GIB, layer_row, vm_row
from vms.models import VMState
from vms.reconciler import volumes_kept


@pytest.fixture
def vm(alice):
    return vm_row(owner=alice, state=VMState.RUNNING, name="web")


@pytest.fixture
def stopped(alice):
    return vm_row(owner=alice, state=VMState.STOPPED, name="idle")


def api_for(user) -> APIClient:
    client = APIClient()
    _token, key = token_create(user=user, name="tests")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def live_snapshot_row(vm, **kwargs) -> Snapshot:
    return Snapshot.objects.create(
        owner=vm.owner,
        source_vm=vm,
        source_vm_name=vm.name,
        image=vm.image,
        name="live",
        layer=layer_row(host=vm.host, parent=vm.image.layer),
        size_bytes=GIB,
        memory_bytes=GIB // 2,
        includes_memory=True,
        disk_bytes=vm.disk_bytes,
        state=SnapshotState.READY,
        **kwargs,
    )


def test_a_memory_snapshot_of_a_running_vm_is_recorded_with_memory(vm):
    operation = snapshot_take(vm=vm, user=vm.owner, name="live", include_memory=True)
    assert operation.snapshot.includes_memory
    assert operation.snapshot.memory_volume == f"{operation.snapshot.pk}.memory"


def test_a_snapshot_has_no_memory_unless_asked(vm):
    operation = snapshot_take(vm=vm, user=vm.owner, name="disk only")
    assert not operation.snapshot.includes_memory


def test_a_memory_snapshot_of_a_stopped_vm_is_refused_and_records_nothing(stopped):
    with pytest.raises(InvalidState, match="stopped, so it has no memory to keep"):
        snapshot_take(vm=stopped, user=stopped.owner, name="live", include_memory=True)
    assert not Snapshot.objects.exists()
    assert not Operation.objects.exists()


def test_the_api_refuses_a_memory_snapshot_of_a_stopped_vm_with_a_409(stopped, alice):
    response = api_for(alice).post(
        f"/api/vms/{stopped.pk}/snapshots/",
        {"name": "live", "include_memory": True},
        format="json",
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert "start the VM first" in response.json()["error"]["message"]


def test_the_api_takes_a_memory_snapshot_and_shows_it(vm, alice):
    client = api_for(alice)
    response = client.post(
        f"/api/vms/{vm.pk}/snapshots/", {"name": "live", "include_memory": True}, format="json"
    )
    assert response.status_code == 202
    snapshot = Snapshot.objects.get(pk=response.json()["snapshot"])
    assert snapshot.includes_memory
    shown = client.get(f"/api/snapshots/{snapshot.pk}/").json()
    assert (shown["includes_memory"], shown["memory_bytes"]) == (True, 0)


def test_the_api_refuses_include_memory_that_is_not_a_boolean(vm, alice):
    response = api_for(alice).post(
        f"/api/vms/{vm.pk}/snapshots/",
        {"name": "live", "include_memory": "sometimes"},
        format="json",
    )
    assert response.status_code == 400
    assert "include_memory" in response.json()["error"]["fields"]


def test_the_page_says_why_a_memory_snapshot_of_a_stopped_vm_is_refused(client, stopped, alice):
    client.force_login(alice)
    response = client.post(
        reverse("snapshot_take", args=[stopped.pk]), {"name": "live", "include_memory": "on"}
    )
    assert response.status_code == 302
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("no memory to keep" in text for text in texts), texts
    assert not Snapshot.objects.exists()


def test_a_restore_onto_its_own_vm_resumes_the_memory(vm):
    snapshot = live_snapshot_row(vm)
    operation = snapshot_restore(snapshot=snapshot, user=vm.owner)
    assert operation.params["memory"] is True


def test_a_restore_onto_another_vm_puts_back_the_disk_only(vm, alice):
    snapshot = live_snapshot_row(vm)
    other = vm_row(owner=alice, image=vm.image, name="other")
    operation = snapshot_restore(snapshot=snapshot, user=alice, vm=other)
    assert operation.params["memory"] is False


def test_the_api_says_a_restore_onto_another_vm_puts_back_the_disk_only(client):
    schema = client.get("/api/schema/?format=json").json()
    help_text = schema["components"]["schemas"]["SnapshotRestoreRequest"]["properties"]["vm"]
    assert "Only the snapshot's disk is put back" in help_text["description"]


def test_a_snapshots_memory_counts_against_the_plan(vm, alice):
    from snapshots.selectors import usage_for

    live_snapshot_row(vm, kind=SnapshotKind.MANUAL)
    assert usage_for(alice).snapshot_bytes == GIB  # its size: the layer and the memory


def test_deleting_a_snapshot_with_memory_frees_its_memory_file(vm):
    snapshot = live_snapshot_row(vm)
    operation = snapshot_delete(snapshot=snapshot, user=vm.owner)
    assert operation.params["memory"] == {"host": vm.host_id, "volume": snapshot.memory_volume}


def test_the_reconciler_keeps_the_memory_file_of_every_snapshot_with_memory(vm):
    snapshot = live_snapshot_row(vm)
    requested = snapshot_take(vm=vm, user=vm.owner, name="later", include_memory=True).snapshot
    kept = volumes_kept(vm.host)
    assert memory_volume_name(snapshot.pk) in kept
    assert memory_volume_name(requested.pk) in kept  # from the moment it is asked for
    assert memory_volumes_kept(vm.host) <= kept


def test_the_admin_shows_whether_a_snapshot_has_memory_and_its_bytes(client, charlie, vm):
    live_snapshot_row(vm)
    client.force_login(charlie)
    page = client.get(reverse("admin:snapshots_snapshot_changelist")).content.decode()
    assert "Includes memory" in page
    assert "Memory bytes" in page
