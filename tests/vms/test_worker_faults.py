"""A worker killed in the middle of an operation leaves something the reconciler can resolve."""

from datetime import timedelta

import pytest

from operations.models import Operation, OperationState
from operations.services import operations_expire
from tests import guest
from tests.conftest import Worker, wait_for
from vms import hypervisor
from vms.models import VM, VMState
from vms.services import vm_create, vm_stop

pytestmark = [pytest.mark.libvirt, pytest.mark.worker]


@pytest.fixture
def slow_stop_worker(transactional_db):
    """A real worker that waits up to five minutes for a guest to power off."""
    started = Worker(VM_STOP_TIMEOUT="300")
    yield started
    started.stop()


def finished(operation):
    operation.refresh_from_db()
    return (
        operation if operation.state in (OperationState.SUCCEEDED, OperationState.FAILED) else None
    )


def test_a_worker_killed_mid_operation_leaves_it_for_the_reconciler(slow_stop_worker, alice, image):
    created = vm_create(owner=alice, name="box", image=image)
    wait_for(lambda: finished(created), timeout=60, what="the VM to be created")
    assert created.state == OperationState.SUCCEEDED, created.error
    vm = VM.objects.select_related("host").get(pk=created.vm_id)
    guest.wait_for_boot(vm)
    # A guest that ignores the power button keeps the stop waiting.
    guest.run(vm, "killall acpid; echo ignored")

    stop = vm_stop(vm=vm, user=alice)
    wait_for(
        lambda: Operation.objects.filter(pk=stop.pk, progress__gte=20).exists(),
        timeout=30,
        what="the stop to be under way",
    )
    slow_stop_worker.kill()

    stop.refresh_from_db()
    assert stop.state == OperationState.RUNNING
    assert stop.deadline is not None and stop.worker

    expired = operations_expire(now=stop.deadline + timedelta(seconds=1))
    assert [o.pk for o in expired] == [stop.pk]
    stop.refresh_from_db()
    assert stop.state == OperationState.FAILED
    assert "stopped before it finished" in stop.error
    assert "The VM is running." in stop.error
    vm.refresh_from_db()
    assert vm.state == VMState.RUNNING
    assert hypervisor.domain_state(vm.host.libvirt_uri, vm.domain_uuid) == "running"
    # The VM is free for the next operation.
    assert vm_stop(vm=vm, user=alice, force=True).state == OperationState.QUEUED
