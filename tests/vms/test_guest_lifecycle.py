"""Real VMs on libvirtd and QEMU: created from the built image, booted, driven, stopped, deleted."""

import pytest

from operations.models import OperationState
from tests import guest
from vms.models import VM, VMState
from vms.services import vm_delete, vm_reboot, vm_start, vm_stop

pytestmark = pytest.mark.libvirt


def test_a_new_vm_boots_to_a_shell_on_its_console(make_vm, alice):
    vm = make_vm(alice)
    assert vm.state == VMState.RUNNING
    guest.wait_for_boot(vm)
    assert guest.run(vm, "echo $((6 * 7))") == "42"


def test_the_guest_is_told_its_own_name_and_gets_the_disk_size_asked_for(make_vm, alice):
    vm = make_vm(alice, disk_gib=3)
    guest.wait_for_boot(vm)
    assert guest.run(vm, "hostname") == "box"
    blocks = int(guest.run(vm, "df -k / | tail -1 | awk '{print $2}'"))
    assert 2.5 * 1024**2 < blocks <= 3 * 1024**2


def test_stop_powers_the_guest_off_and_start_boots_it_with_its_data(make_vm, alice):
    vm = make_vm(alice)
    guest.wait_for_boot(vm)
    guest.run(vm, "echo kept > /root/note; sync")

    stop = vm_stop(vm=vm, user=alice)
    stop.refresh_from_db()
    assert stop.state == OperationState.SUCCEEDED, stop.error
    assert stop.result == {"forced": False}  # the guest obeyed the ACPI power button
    assert vm.host.hypervisor.domain_state(vm.domain_uuid) == "shutoff"

    vm.refresh_from_db()
    start = vm_start(vm=vm, user=alice)
    start.refresh_from_db()
    assert start.state == OperationState.SUCCEEDED, start.error
    guest.wait_for_boot(vm, boots=2)
    assert guest.run(vm, "cat /root/note") == "kept"


def test_reboot_brings_the_guest_back(make_vm, alice):
    vm = make_vm(alice)
    guest.wait_for_boot(vm)
    operation = vm_reboot(vm=vm, user=alice)
    operation.refresh_from_db()
    assert operation.state == OperationState.SUCCEEDED, operation.error
    guest.wait_for_boot(vm, boots=2)
    assert VM.objects.get(pk=vm.pk).state == VMState.RUNNING


def test_delete_leaves_no_domain_and_no_volume_behind(make_vm, alice, image):
    vm = make_vm(alice)
    host = vm.host
    volumes_before = set(host.hypervisor.volume_names(host.pool_name))
    assert vm.active_layer.volume_name in volumes_before

    operation = vm_delete(vm=vm, user=alice)
    operation.refresh_from_db()
    assert operation.state == OperationState.SUCCEEDED, operation.error
    assert not VM.objects.filter(pk=vm.pk).exists()
    assert host.hypervisor.domain_state(vm.domain_uuid) is None
    volumes_after = set(host.hypervisor.volume_names(host.pool_name))
    assert volumes_after == volumes_before - {vm.active_layer.volume_name}
    # The image's own volumes stay for the next VM.
    assert image.layer.volume_name in volumes_after
