"""One worker process killed in the middle of an operation: its cluster lives on, notices the
lease run out and repairs the operation within seconds."""

import os
import signal

import pytest

from operations.models import Operation, OperationState
from tests import guest
from tests.conftest import Worker, wait_for
from vms.models import VM, VMState, vm_id_of_lock
from vms.services import vm_create, vm_stop

pytestmark = [pytest.mark.libvirt, pytest.mark.worker]


@pytest.fixture
def slow_stop_worker(transactional_db):
    """A real worker that waits up to five minutes for a guest to power off."""
    started = Worker(VM_STOP_TIMEOUT="300", WORKER_LEASE_SECONDS="8")
    yield started
    started.stop()


def finished(operation):
    operation.refresh_from_db()
    return (
        operation if operation.state in (OperationState.SUCCEEDED, OperationState.FAILED) else None
    )


def test_a_worker_process_killed_mid_operation_is_repaired_by_its_cluster(
    slow_stop_worker, alice, image
):
    created = vm_create(owner=alice, name="box", image=image)
    wait_for(lambda: finished(created), timeout=60, what="the VM to be created")
    assert created.state == OperationState.SUCCEEDED, created.error
    vm = VM.objects.select_related("host").get(pk=vm_id_of_lock(created.lock))
    guest.wait_for_boot(vm)
    # A guest that ignores the power button keeps the stop waiting.
    guest.run(vm, "killall acpid; echo ignored")

    stop = vm_stop(vm=vm, user=alice)
    wait_for(
        lambda: Operation.objects.filter(pk=stop.pk, progress__gte=20).exists(),
        timeout=30,
        what="the stop to be under way",
    )
    stop.refresh_from_db()
    assert stop.state == OperationState.RUNNING
    os.kill(int(stop.worker.rsplit("/", 1)[1]), signal.SIGKILL)  # that one process only

    wait_for(
        lambda: finished(stop) and stop.message == "Failed",
        timeout=60,
        what="the cluster to repair the stop",
    )
    assert stop.state == OperationState.FAILED
    assert "stopped before it finished" in stop.error
    assert "The VM is running." in stop.error
    vm.refresh_from_db()
    assert vm.state == VMState.RUNNING
    assert vm.host.hypervisor.domain_state(vm.domain_uuid) == "running"
    # The VM is free for the next operation.
    assert vm_stop(vm=vm, user=alice, force=True).state == OperationState.QUEUED
