"""Snapshots of real guests: data written inside, frozen, changed, restored, cloned, read back."""

import pytest

from snapshots.models import Snapshot, SnapshotKind
from snapshots.services import (
    snapshot_delete,
    snapshot_new_vm,
    snapshot_restore,
    snapshot_take,
)
from tests import guest
from tests.conftest import succeeded
from vms.models import VM, Layer, VMState, vm_id_of_lock
from vms.services import vm_delete, vm_flatten, vm_reboot, vm_start, vm_stop

pytestmark = pytest.mark.libvirt


def write(vm, text):
    guest.run(vm, f"echo {text} > /root/marker; sync; echo written")


def marker(vm):
    return guest.run(vm, "cat /root/marker")


def take(vm, name="snap"):
    operation = succeeded(snapshot_take(vm=vm, user=vm.owner, name=name))
    return Snapshot.objects.get(pk=operation.result["snapshot"])


def new_vm(snapshot, name, **kwargs):
    operation = succeeded(
        snapshot_new_vm(snapshot=snapshot, user=snapshot.owner, name=name, **kwargs)
    )
    vm = VM.objects.select_related("host", "image", "active_layer").get(
        pk=vm_id_of_lock(operation.lock)
    )
    guest.wait_for_boot(vm)
    return vm


@pytest.fixture
def vm(make_vm, alice):
    created = make_vm(alice, name="source")
    guest.wait_for_boot(created)
    return created


def test_a_snapshot_of_a_running_guest_leaves_it_running(vm):
    uptime_before = float(guest.run(vm, "cut -d' ' -f1 /proc/uptime"))
    take(vm)
    uptime_after = float(guest.run(vm, "cut -d' ' -f1 /proc/uptime"))
    assert uptime_after > uptime_before  # same boot, still counting
    assert vm.host.hypervisor.domain_state(vm.domain_uuid) == "running"


def test_the_snapshot_layer_is_the_old_disk_and_the_vm_writes_to_a_new_one(vm):
    old_layer = vm.active_layer
    snapshot = take(vm)
    vm.refresh_from_db()
    assert snapshot.layer == old_layer
    assert vm.active_layer.parent == old_layer
    assert vm.current_snapshot == snapshot
    live_disk = vm.host.hypervisor.domain_disk_path(vm.domain_uuid)
    assert live_disk.endswith(vm.active_layer.volume_name)
    assert snapshot.size_bytes > 0


def test_restore_brings_back_the_snapshot_and_can_be_undone(vm):
    write(vm, "first")
    snapshot = take(vm)
    write(vm, "second")

    restore = succeeded(snapshot_restore(snapshot=snapshot, user=vm.owner))
    guest.wait_for_boot(vm, boots=2)
    assert marker(vm) == "first"
    assert VM.objects.get(pk=vm.pk).state == VMState.RUNNING

    undo = Snapshot.objects.get(pk=restore.result["undo_snapshot"])
    assert undo.kind == SnapshotKind.BEFORE_RESTORE
    succeeded(snapshot_restore(snapshot=undo, user=vm.owner))
    guest.wait_for_boot(vm, boots=3)
    assert marker(vm) == "second"


def test_a_new_vm_from_a_snapshot_starts_with_its_data_and_goes_its_own_way(vm):
    write(vm, "first")
    snapshot = take(vm)

    clone = new_vm(snapshot, "clone")
    assert clone.domain_uuid != vm.domain_uuid
    assert clone.mac_address != vm.mac_address
    assert marker(clone) == "first"
    write(clone, "changed-in-clone")

    assert marker(vm) == "first"
    second = new_vm(snapshot, "second-clone")
    assert marker(second) == "first"


def test_snapshots_outlive_their_vm_and_still_seed_new_vms(vm):
    write(vm, "kept")
    snapshot = take(vm)
    succeeded(vm_delete(vm=vm, user=vm.owner))
    snapshot.refresh_from_db()
    assert snapshot.source_vm is None
    assert snapshot.source_vm_name == "source"

    reborn = new_vm(snapshot, "reborn")
    assert marker(reborn) == "kept"


def test_deleting_a_snapshot_the_disk_builds_on_merges_its_layer_into_the_disk_and_keeps_the_data(
    vm,
):
    write(vm, "one")
    snapshot = take(vm)
    guest.run(vm, "echo two > /root/second; sync; echo ok")
    layer = snapshot.layer

    succeeded(snapshot_delete(snapshot=snapshot, user=vm.owner))
    assert not Snapshot.objects.filter(pk=snapshot.pk).exists()
    # Only the running guest's disk built on it: pulled up into that disk while it runs.
    assert not Layer.objects.filter(pk=layer.pk).exists()
    vm.refresh_from_db()
    assert vm.active_layer.parent_id == layer.parent_id

    succeeded(vm_reboot(vm=vm, user=vm.owner))
    guest.wait_for_boot(vm, boots=2)
    assert marker(vm) == "one"
    assert guest.run(vm, "cat /root/second") == "two"


def test_a_stopped_vm_is_snapshotted_and_restored_without_starting_it(vm):
    write(vm, "before")
    succeeded(vm_stop(vm=vm, user=vm.owner))
    snapshot = take(vm)
    assert vm.host.hypervisor.domain_state(vm.domain_uuid) == "shutoff"
    succeeded(snapshot_restore(snapshot=snapshot, user=vm.owner))
    assert VM.objects.get(pk=vm.pk).state == VMState.STOPPED
    assert vm.host.hypervisor.domain_state(vm.domain_uuid) == "shutoff"


def test_a_full_copy_needs_neither_the_snapshot_nor_its_vm(vm):
    write(vm, "copied")
    snapshot = take(vm)
    copy = new_vm(snapshot, "copy", full_copy=True)
    assert copy.active_layer.parent is None

    succeeded(vm_delete(vm=vm, user=vm.owner))
    succeeded(snapshot_delete(snapshot=snapshot, user=vm.owner))
    assert not Layer.objects.filter(pk=snapshot.layer_id).exists()  # nothing needed it any more

    succeeded(vm_reboot(vm=copy, user=copy.owner))
    guest.wait_for_boot(copy, boots=2)
    assert marker(copy) == "copied"


def test_flattening_a_running_vm_keeps_its_data_and_its_snapshots(vm):
    write(vm, "one")
    first = take(vm, "first")
    guest.run(vm, "echo two > /root/second; sync; echo ok")
    take(vm, "second")
    vm.refresh_from_db()
    assert vm.active_layer.depth == 4  # image, first, second, active

    succeeded(vm_flatten(vm=vm, user=vm.owner))
    vm.refresh_from_db()
    assert vm.active_layer.parent is None
    info = vm.host.hypervisor.volume_info(vm.host.pool_name, vm.active_layer.volume_name)
    assert info.backing_path is None
    assert marker(vm) == "one"  # still running, reading from the one layer
    succeeded(vm_reboot(vm=vm, user=vm.owner))
    guest.wait_for_boot(vm, boots=2)
    assert guest.run(vm, "cat /root/marker /root/second") == "one\ntwo"
    # The snapshots keep their own layers and still seed VMs.
    assert marker(new_vm(first, "from-first")) == "one"


def test_flattening_a_stopped_vm_copies_its_disk_into_one_layer(vm):
    write(vm, "kept")
    take(vm)
    succeeded(vm_stop(vm=vm, user=vm.owner))
    succeeded(vm_flatten(vm=vm, user=vm.owner))
    vm.refresh_from_db()
    assert vm.active_layer.parent is None
    succeeded(vm_start(vm=vm, user=vm.owner))
    guest.wait_for_boot(vm, boots=2)
    assert marker(vm) == "kept"
