"""Housekeeping (merging, flattening: what the service does on its own) never stands in a user's
way: a user's action beside it is accepted and runs once it gives way; it never starts in front
of one; it gives way at a safe point and is tried again later."""

import pytest
from rest_framework.test import APIClient

from core.errors import Busy
from operations import services
from operations.models import Operation, OperationState, housekeeping_lock
from operations.services import housekeeping_should_yield, operation_start
from snapshots.services import snapshot_take
from tests.factories import host_row, image_row, layer_row, vm_row
from vms import layers
from vms.jobs import layer_merge_run
from vms.models import Layer, LayerState, VMOperationKind, VMState
from vms.services import layer_merge_start, vm_stop

pytestmark = pytest.mark.django_db


@pytest.fixture
def vm(alice):
    return vm_row(owner=alice, image=image_row(), state=VMState.RUNNING)


def merge(vm, **fields):
    operation = operation_start(
        kind=VMOperationKind.MERGE,
        owner=vm.owner,
        lock=vm.lock,
        subject=vm,
        target_name=vm.name,
        params={"layer": "0"},
    )
    Operation.objects.filter(pk=operation.pk).update(**fields)
    operation.refresh_from_db()
    return operation


def vm_on_a_deleted_snapshots_layer(owner, **host_fields):
    """A VM whose disk builds on a layer nothing else needs (its snapshot was deleted): the one
    merge the sweep starts. Returns the VM, that layer and the VM's own layer."""
    image = image_row(host=host_row(**host_fields))
    deleted = layer_row(host=image.host, parent=image.layer)
    top = layer_row(host=image.host, parent=deleted)
    vm = vm_row(owner=owner, image=image)
    vm.active_layer = top
    vm.save(update_fields=["active_layer"])
    assert layers.layer_merge_target(deleted) == top
    return vm, deleted, top


def test_housekeeping_holds_the_vms_housekeeping_lock_not_the_vms(vm):
    assert merge(vm).lock == housekeeping_lock(vm.lock)


def test_a_users_action_beside_running_housekeeping_is_accepted(vm, alice):
    merge(vm, state=OperationState.RUNNING)
    taken = snapshot_take(vm=vm, user=alice, name="now")
    assert taken.state == OperationState.QUEUED
    assert taken.message == "Waiting for merge disk layers to stop"


def test_the_api_answers_202_beside_housekeeping(vm, alice):
    merge(vm, state=OperationState.RUNNING)
    client = APIClient()
    client.force_authenticate(alice)
    answer = client.post(f"/api/vms/{vm.pk}/snapshots/", {"name": "now"}, format="json")
    assert answer.status_code == 202, answer.content


def test_a_users_own_operation_in_progress_still_refuses_another(vm, alice):
    snapshot_take(vm=vm, user=alice, name="first")
    with pytest.raises(Busy):
        vm_stop(vm=vm, user=alice)


def test_housekeeping_does_not_start_while_a_users_operation_is_queued(vm, alice):
    snapshot_take(vm=vm, user=alice, name="first")
    with pytest.raises(Busy):
        merge(vm)


def test_a_merge_the_sweep_would_start_waits_for_the_users_operation(alice):
    vm, deleted, _top = vm_on_a_deleted_snapshots_layer(alice)
    snapshot_take(vm=vm, user=alice, name="first")
    assert layer_merge_start(deleted) is None
    Operation.objects.all().update(state=OperationState.SUCCEEDED)
    assert layer_merge_start(deleted) is not None  # once the user's operation ended


def test_housekeeping_is_told_to_give_way_when_a_users_operation_arrives(vm, alice, monkeypatch):
    monkeypatch.setattr(services, "HOUSEKEEPING_POLL_SECONDS", 0)
    should_yield = housekeeping_should_yield(merge(vm, state=OperationState.RUNNING))
    assert not should_yield()
    snapshot_take(vm=vm, user=alice, name="now")
    assert should_yield()


def test_a_merge_that_gives_way_is_skipped_and_leaves_its_layer(alice, fake_hosts):
    vm, deleted, top = vm_on_a_deleted_snapshots_layer(alice, libvirt_uri="qemu:///system")
    operation = layer_merge_start(deleted)
    snapshot_take(vm=vm, user=alice, name="now")  # arrives before the merge's worker
    Operation.objects.filter(pk=operation.pk).update(state=OperationState.RUNNING)
    with pytest.raises(services.Yielded):
        layer_merge_run(operation)
    assert Layer.objects.get(pk=deleted.pk).state == LayerState.READY
    assert layers.layer_merge_target(deleted) == top  # still to merge, by the next sweep


def test_the_worker_records_housekeeping_that_gave_way_as_skipped(vm, alice, monkeypatch):
    operation = merge(vm)
    snapshot_take(vm=vm, user=alice, name="now")
    services.operation_run(operation.pk)
    operation.refresh_from_db()
    assert operation.state == OperationState.SKIPPED
    assert "Gave way to the owner's operation" in operation.message


def test_a_users_operation_waits_for_running_housekeeping_to_end(vm, alice, monkeypatch):
    housekeeping = merge(vm, state=OperationState.RUNNING)
    taken = snapshot_take(vm=vm, user=alice, name="now")
    Operation.objects.filter(pk=taken.pk).update(state=OperationState.RUNNING)
    waits = []

    def sleep(seconds):  # the housekeeping gives way while the user's operation waits
        waits.append(Operation.objects.get(pk=taken.pk).message)
        Operation.objects.filter(pk=housekeeping.pk).update(state=OperationState.SKIPPED)

    monkeypatch.setattr(services.time, "sleep", sleep)
    services.housekeeping_wait(taken)
    assert waits == ["Waiting for merge disk layers to stop"]


def test_the_vm_api_names_housekeeping_and_not_busy(vm, alice):
    merge(vm, state=OperationState.RUNNING)
    client = APIClient()
    client.force_authenticate(alice)
    body = client.get(f"/api/vms/{vm.pk}/").json()
    assert body["housekeeping"] == "merge disk layers"
    assert client.get("/api/vms/").json()["results"][0]["housekeeping"] == "merge disk layers"


def test_the_vm_page_shows_housekeeping_as_a_quiet_line(vm, alice, client):
    merge(vm, state=OperationState.RUNNING)
    client.force_login(alice)
    page = client.get(f"/vms/{vm.pk}/").content.decode()
    assert 'data-testid="vm-housekeeping"' in page
    assert "Tidying up disk layers in the background" in page
    assert 'class="progress' not in page
