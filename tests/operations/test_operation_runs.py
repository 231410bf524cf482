"""How a worker runs an operation: claimed once, ended with a clear outcome, expired if lost."""

from datetime import timedelta

import pytest
from django.utils import timezone

from operations.models import Operation, OperationKind, OperationState
from operations.services import (
    operation_claim,
    operation_run,
    operation_start,
    operations_expire,
)
from tests.factories import vm_row
from vms.models import VMState


@pytest.fixture
def vm(alice):
    return vm_row(owner=alice, state=VMState.RUNNING)


def queued(vm, kind=OperationKind.VM_STOP):
    return operation_start(kind=kind, owner=vm.owner, vm=vm, target_name=vm.name)


def test_a_queued_operation_is_claimed_once(vm):
    operation = queued(vm)
    assert operation_claim(operation.id) is not None
    assert operation_claim(operation.id) is None


def test_a_claimed_operation_gets_a_deadline(vm, settings):
    settings.OPERATION_TIMEOUT = 600
    operation = operation_claim(queued(vm).id)
    assert operation.state == OperationState.RUNNING
    assert timedelta(seconds=590) < operation.deadline - timezone.now() <= timedelta(seconds=600)


def test_a_task_delivered_again_after_the_end_does_nothing(vm):
    operation = queued(vm)
    Operation.objects.filter(pk=operation.pk).update(state=OperationState.SUCCEEDED, message="Done")
    assert operation_run(operation.id) is None
    operation.refresh_from_db()
    assert (operation.state, operation.message) == (OperationState.SUCCEEDED, "Done")


def test_an_operation_on_a_vanished_vm_fails_with_a_sentence(vm):
    operation = queued(vm)
    Operation.objects.filter(pk=operation.pk).update(vm=None)
    operation_run(operation.id)
    operation.refresh_from_db()
    assert operation.state == OperationState.FAILED
    assert operation.error == "The VM no longer exists."


def test_an_unreachable_hypervisor_fails_the_operation_with_its_reason(vm):
    vm.host.libvirt_uri = "qemu+tcp://127.0.0.1:9/system"
    vm.host.save()
    operation = queued(vm)
    operation_run(operation.id)
    operation.refresh_from_db()
    assert operation.state == OperationState.FAILED
    assert operation.error.startswith("The hypervisor refused: libvirt is unreachable")


def test_a_running_operation_past_its_deadline_is_failed_with_the_reason(vm):
    operation = operation_claim(queued(vm).id)
    vm.host.libvirt_uri = "qemu+tcp://127.0.0.1:9/system"
    vm.host.save()
    later = timezone.now() + timedelta(days=1)
    expired = operations_expire(now=later)
    assert [o.pk for o in expired] == [operation.pk]
    operation.refresh_from_db()
    assert operation.state == OperationState.FAILED
    assert "stopped before it finished" in operation.error


def test_a_running_operation_within_its_deadline_is_left_alone(vm):
    operation = operation_claim(queued(vm).id)
    assert operations_expire() == []
    operation.refresh_from_db()
    assert operation.state == OperationState.RUNNING
