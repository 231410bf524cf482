"""A VM in error (its domain vanished) has a way out: Repair defines it again from its recorded
disk, or Delete removes it. Start and Force off are not offered for it, and say so."""

import pytest
from rest_framework.test import APIClient

from accounts.services import token_create
from core.errors import InvalidState
from operations.models import Operation, OperationState
from tests import guest
from tests.conftest import succeeded
from tests.factories import image_row, vm_row
from vms.models import VM, VMOperationKind, VMState
from vms.reconciler import reconcile
from vms.services import vm_delete, vm_repair, vm_start, vm_stop


@pytest.fixture
def row_image(db):
    return image_row()


@pytest.fixture
def broken(alice, row_image):
    return vm_row(owner=alice, image=row_image, name="broken", state=VMState.ERROR)


def test_a_vm_in_error_cannot_start_and_is_told_to_repair_or_delete(broken, alice):
    with pytest.raises(InvalidState) as caught:
        vm_start(vm=broken, user=alice)
    assert "Repair it (its disk is kept) or delete it." in caught.value.message
    assert not Operation.objects.exists()


def test_a_vm_in_error_cannot_be_forced_off(broken, alice):
    with pytest.raises(InvalidState) as caught:
        vm_stop(vm=broken, user=alice, force=True)
    assert "Repair it" in caught.value.message


def test_repair_of_a_vm_in_error_records_a_queued_operation(broken, alice):
    operation = vm_repair(vm=broken, user=alice)
    assert operation.kind == VMOperationKind.REPAIR
    assert operation.state == OperationState.QUEUED
    assert operation.subject == broken


@pytest.mark.parametrize("state", [VMState.RUNNING, VMState.STOPPED])
def test_repair_is_refused_for_a_vm_that_needs_none(alice, row_image, state):
    vm = vm_row(owner=alice, image=row_image, state=state)
    with pytest.raises(InvalidState) as caught:
        vm_repair(vm=vm, user=alice)
    assert "needs no repair" in caught.value.message
    assert not Operation.objects.exists()


def test_the_page_of_a_vm_in_error_offers_repair_and_delete_only(client, broken, alice):
    client.force_login(alice)
    page = client.get(f"/vms/{broken.pk}/").content.decode()
    assert ">Repair</button>" in page
    assert "defines it again from its recorded disk" in page
    assert 'data-open="delete-vm"' in page
    assert ">Start</button>" not in page
    assert ">Force off</button>" not in page


def test_the_repair_button_records_a_repair(client, broken, alice):
    client.force_login(alice)
    response = client.post(f"/vms/{broken.pk}/repair/", follow=True)
    assert "Repairing broken…" in response.content.decode()
    assert Operation.objects.get().kind == VMOperationKind.REPAIR


def test_the_api_repair_answers_202_with_the_operation(broken, alice):
    api = APIClient()
    _token, key = token_create(user=alice, name="tests")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = api.post(f"/api/vms/{broken.pk}/repair/")
    assert response.status_code == 202, response.content
    assert response.json()["kind"] == "vm.repair"
    assert response.json()["vm"] == str(broken.pk)


def test_the_api_repair_of_a_healthy_vm_is_refused_with_a_sentence(alice, row_image):
    vm = vm_row(owner=alice, image=row_image, state=VMState.RUNNING)
    api = APIClient()
    _token, key = token_create(user=alice, name="tests")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = api.post(f"/api/vms/{vm.pk}/repair/")
    assert response.status_code == 409, response.content
    assert "needs no repair" in response.json()["error"]["message"]


def test_another_users_vm_cannot_be_repaired(broken, bob):
    api = APIClient()
    _token, key = token_create(user=bob, name="tests")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.post(f"/api/vms/{broken.pk}/repair/").status_code == 404
    assert not Operation.objects.exists()


def test_the_admin_repair_action_starts_a_repair_and_skips_healthy_vms(
    client, charlie, broken, alice, row_image
):
    healthy = vm_row(owner=alice, image=row_image, state=VMState.RUNNING)
    client.force_login(charlie)
    response = client.post(
        "/admin/vms/vm/",
        {"action": "repair", "_selected_action": [broken.pk, healthy.pk]},
        follow=True,
    )
    page = response.content.decode()
    assert "Started repairing 1 VM(s)." in page
    assert "needs no repair" in page
    assert Operation.objects.get().subject == broken


def break_domain(vm):
    """Undefine the VM's domain behind the service's back; the reconciler marks it in error."""
    vm.host.hypervisor.domain_undefine(vm.domain_uuid)
    reconcile()
    vm.refresh_from_db()
    assert vm.state == VMState.ERROR


@pytest.mark.libvirt
def test_repair_brings_back_a_vanished_domain_with_the_guests_data(make_vm, alice):
    vm = make_vm(alice)
    guest.wait_for_boot(vm)
    guest.run(vm, "echo survived > /root/note; sync")
    break_domain(vm)

    repair = succeeded(vm_repair(vm=vm, user=alice))
    vm.refresh_from_db()
    assert vm.state == VMState.STOPPED
    assert repair.result == {"state": "stopped"}
    assert vm.host.hypervisor.domain_state(vm.domain_uuid) == "shutoff"

    succeeded(vm_start(vm=vm, user=alice))
    guest.wait_for_boot(vm, boots=2)
    assert guest.run(vm, "cat /root/note") == "survived"
    live_disk = vm.host.hypervisor.domain_disk_path(vm.domain_uuid)
    assert live_disk.endswith(vm.active_layer.volume_name)


@pytest.mark.libvirt
def test_repair_leaves_a_guest_that_still_runs_running(make_vm, alice):
    vm = make_vm(alice)
    VM.objects.filter(pk=vm.pk).update(state=VMState.ERROR)

    repair = succeeded(vm_repair(vm=vm, user=alice))
    vm.refresh_from_db()
    assert vm.state == VMState.RUNNING
    assert repair.result == {"state": "running"}


@pytest.mark.libvirt
def test_repair_of_a_vm_whose_disk_is_gone_fails_saying_to_delete_it(make_vm, alice):
    vm = make_vm(alice)
    break_domain(vm)
    host = vm.host
    host.hypervisor.volume_delete(host.pool_name, vm.active_layer.volume_name)

    repair = vm_repair(vm=vm, user=alice)
    repair.refresh_from_db()
    assert repair.state == OperationState.FAILED
    assert "missing from the storage pool" in repair.error
    assert "delete it instead" in repair.error
    vm.refresh_from_db()
    assert vm.state == VMState.ERROR


@pytest.mark.libvirt
def test_a_vm_in_error_can_be_deleted(make_vm, alice):
    vm = make_vm(alice)
    break_domain(vm)
    layer = vm.active_layer.volume_name

    succeeded(vm_delete(vm=vm, user=alice))
    assert not VM.objects.filter(pk=vm.pk).exists()
    assert layer not in vm.host.hypervisor.volume_names(vm.host.pool_name)
