"""How a worker runs an operation: claimed once, ended with a clear outcome, expired if lost."""

import dataclasses
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from operations import registry, services
from operations.models import Operation, OperationState
from operations.services import (
    operation_claim,
    operation_run,
    operation_start,
    operations_expire,
    operations_resend,
)
from tests.factories import vm_row
from vms.models import VMOperationKind, VMState


@pytest.fixture
def vm(alice):
    return vm_row(owner=alice, state=VMState.RUNNING)


def queued(vm, kind=VMOperationKind.STOP):
    return operation_start(kind=kind, owner=vm.owner, lock=vm.lock, subject=vm, target_name=vm.name)


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
    Operation.objects.filter(pk=operation.pk).update(lock="")
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
    # The owner reads the host's name; its URI is for staff (the worker's log).
    assert operation.error.startswith(
        f"The host refused: libvirt at host {vm.host.name} does not answer"
    )
    assert "127.0.0.1:9" not in operation.error


def test_a_running_operation_past_its_deadline_is_failed_with_the_reason(vm):
    operation = operation_claim(queued(vm).id)
    vm.host.libvirt_uri = "qemu+tcp://127.0.0.1:9/system"
    vm.host.save()
    later = timezone.now() + timedelta(days=1)
    expired = operations_expire(now=later)
    assert [o.pk for o in expired] == [operation.pk]
    operation.refresh_from_db()
    assert operation.state == OperationState.FAILED
    assert "did not finish it in time" in operation.error


def test_a_running_operation_within_its_deadline_is_left_alone(vm):
    operation = operation_claim(queued(vm).id)
    assert operations_expire() == []
    operation.refresh_from_db()
    assert operation.state == OperationState.RUNNING


def test_a_claimed_operation_gets_a_lease(vm, settings):
    settings.WORKER_LEASE_SECONDS = 20
    operation = operation_claim(queued(vm).id)
    left = operation.lease_expires_at - timezone.now()
    assert timedelta(seconds=15) < left <= timedelta(seconds=20)


def test_an_operation_whose_lease_ran_out_is_failed_as_a_dead_worker(vm):
    operation = operation_claim(queued(vm).id)
    vm.host.libvirt_uri = "qemu+tcp://127.0.0.1:9/system"
    vm.host.save()
    Operation.objects.filter(pk=operation.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert [o.pk for o in operations_expire()] == [operation.pk]
    operation.refresh_from_db()
    assert operation.state == OperationState.FAILED
    assert "stopped before it finished" in operation.error


def test_a_long_operation_keeps_its_lease_while_its_worker_lives(
    transactional_db, alice, settings, monkeypatch
):
    """A step longer than the lease (a slow full copy) is not taken for a dead worker."""
    settings.WORKER_LEASE_SECONDS = 4
    vm = vm_row(owner=alice, state=VMState.RUNNING)
    swept_meanwhile = []

    def slow_job(operation):
        for _ in range(4):  # 8 s: twice the lease
            time.sleep(2)
            swept_meanwhile.extend(operations_expire())
        return {}

    stop = registry.registered(VMOperationKind.STOP)
    monkeypatch.setitem(registry._TYPES, stop.kind, dataclasses.replace(stop, job=slow_job))
    operation = queued(vm)
    operation_run(operation.id)
    operation.refresh_from_db()
    assert swept_meanwhile == []
    assert operation.state == OperationState.SUCCEEDED


def test_a_stopping_worker_claims_nothing_and_the_operation_stays_queued(vm, tmp_path, monkeypatch):
    stop_file = tmp_path / "stopping"
    stop_file.touch()
    monkeypatch.setenv(services.STOP_FILE_ENV, str(stop_file))
    operation = queued(vm)
    assert operation_run(operation.id) is None
    operation.refresh_from_db()
    assert operation.state == OperationState.QUEUED


def test_queued_operations_are_sent_again_and_still_run_once(vm, monkeypatch):
    sent = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda *args, **kw: sent.append(args[1]))
    operation = queued(vm)
    assert operations_resend() == 1
    assert sent == [str(operation.id)]
    assert operation_claim(operation.id) is not None
    assert operation_claim(operation.id) is None  # the first delivery's claim finds it taken


def test_a_backends_refusal_reaches_the_owner_in_words_and_staff_in_its_own(vm, monkeypatch):
    from core.errors import BackendRefused

    class Refused(BackendRefused):
        who = "The hypervisor"

    def job(operation):
        raise Refused("internal error: qemu-img: Could not open '/var/x/y': No such file")

    stop = registry.registered(VMOperationKind.STOP)
    monkeypatch.setitem(registry._TYPES, stop.kind, dataclasses.replace(stop, job=job))
    operation = queued(vm)
    services.operation_run(operation.id)
    operation.refresh_from_db()
    assert operation.error.startswith(f"The hypervisor refused to stop VM “{vm.name}”.")
    assert "qemu-img" not in operation.error
    assert operation.detail == (
        "The hypervisor refused: internal error: qemu-img: Could not open '/var/x/y': No such file"
    )
