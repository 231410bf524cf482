"""Business rules for operations and the workers that run them.

The life of an operation: `operation_start` records it (queued) inside the request's
transaction and enqueues its task on commit; `operation_run`, in a worker, claims it with a
conditional update (queued -> running), calls the runner for its kind, and records the end state.
A delivered-again task finds the operation no longer queued and does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from operations.errors import Busy, InvalidState, ServiceError
from operations.models import (
    ACTIVE_STATES,
    Operation,
    OperationKind,
    OperationState,
    WorkerHeartbeat,
)

logger = logging.getLogger(__name__)

# What a worker runs for each kind of operation: a function taking the Operation.
RUNNERS = {
    OperationKind.VM_CREATE: "vms.runners.create",
    OperationKind.VM_START: "vms.runners.start",
    OperationKind.VM_STOP: "vms.runners.stop",
    OperationKind.VM_FORCE_STOP: "vms.runners.force_stop",
    OperationKind.VM_REBOOT: "vms.runners.reboot",
    OperationKind.VM_DELETE: "vms.runners.delete",
    OperationKind.VM_REPAIR: "vms.runners.repair",
    OperationKind.VM_FLATTEN: "snapshots.runners.flatten",
    OperationKind.SNAPSHOT_TAKE: "snapshots.runners.take",
    OperationKind.SNAPSHOT_RESTORE: "snapshots.runners.restore",
    OperationKind.SNAPSHOT_NEW_VM: "vms.runners.create",
    OperationKind.SNAPSHOT_DELETE: "snapshots.runners.delete",
}

# What repairs the half-done work of an operation whose worker died: returns a sentence.
RECOVERERS = {kind: "snapshots.runners.recover" for kind in RUNNERS}

# Periodic tasks, by name: (function, minutes between runs).
SCHEDULES = {
    "worker heartbeat": ("operations.tasks.heartbeat", 1),
    "flatten deep disk chains": ("vms.tasks.flatten_deep_chains", 10),
    "reconcile": ("operations.tasks.reconcile", 5),
}

UNEXPECTED_ERROR = (
    "An unexpected error stopped this operation. Nothing further was changed; "
    "an administrator can find the details in the worker's log."
)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def operation_start(
    *,
    kind: str,
    owner,
    requester=None,
    vm=None,
    target_name: str,
    params: dict | None = None,
    idempotency_key: str | None = None,
) -> Operation:
    """Record a queued operation and enqueue its task when the transaction commits.

    Raises `Busy` when the VM already has an active operation: the database's partial unique
    index decides, so of two racing requests exactly one gets through.
    """
    fields = {
        "kind": kind,
        "owner": owner,
        "requester": requester,
        "vm": vm,
        "target_name": target_name,
        "params": params or {},
        "idempotency_key": idempotency_key,
        "message": "Waiting for a worker",
    }
    for _attempt in range(2):
        try:
            with transaction.atomic():
                operation = Operation.objects.create(**fields)
        except IntegrityError:
            active = Operation.objects.active().filter(vm=vm).first() if vm is not None else None
            if active is not None:
                raise Busy(active) from None
            # The other operation ended between our insert and this read: try once more.
            continue
        operation_enqueue(operation)
        return operation
    raise Busy(None)


def operation_enqueue(operation: Operation) -> None:
    from django_q.tasks import async_task

    operation_id = str(operation.id)
    transaction.on_commit(
        lambda: async_task(
            "operations.tasks.run_operation",
            operation_id,
            task_name=f"{operation.kind} {operation_id}",
            group=operation.kind,
        )
    )


def operation_report(operation: Operation, *, progress: int, message: str) -> None:
    """Record how far a running operation has got (what the progress bar shows)."""
    operation.progress = progress
    operation.message = message
    Operation.objects.filter(pk=operation.pk, state=OperationState.RUNNING).update(
        progress=progress, message=message
    )


def operation_claim(operation_id) -> Operation | None:
    """Take a queued operation for this worker; None if it is not queued (any more)."""
    now = timezone.now()
    claimed = Operation.objects.filter(pk=operation_id, state=OperationState.QUEUED).update(
        state=OperationState.RUNNING,
        started_at=now,
        deadline=now + timedelta(seconds=settings.OPERATION_TIMEOUT),
        worker=worker_name(),
        message="Starting",
    )
    if not claimed:
        return None
    return Operation.objects.select_related("vm", "owner").get(pk=operation_id)


def operation_finish(operation: Operation, *, error: str = "", result: dict | None = None) -> bool:
    """Record the end of a running operation: succeeded, or failed with `error`."""
    fields = {
        "state": OperationState.FAILED if error else OperationState.SUCCEEDED,
        "finished_at": timezone.now(),
        "error": error,
        "message": "Failed" if error else "Done",
    }
    if not error:
        fields["progress"] = 100
    if result is not None:
        fields["result"] = result
    updated = Operation.objects.filter(pk=operation.pk, state=OperationState.RUNNING).update(
        **fields
    )
    for name, value in fields.items():
        setattr(operation, name, value)
    return bool(updated)


def operation_run(operation_id) -> Operation | None:
    """Claim an operation and run it to its end. Idempotent: only a queued one runs."""
    operation = operation_claim(operation_id)
    if operation is None:
        logger.info("Operation %s is not queued; nothing to do.", operation_id)
        return None
    runner = import_string(RUNNERS[operation.kind])
    try:
        result = runner(operation)
    except ServiceError as exc:
        operation_finish(operation, error=exc.message)
    except Exception as exc:
        from vms.hypervisor import HypervisorError

        if isinstance(exc, HypervisorError):
            operation_finish(operation, error=f"The hypervisor refused: {exc}")
        else:
            logger.exception("Operation %s (%s) failed", operation.id, operation.kind)
            operation_finish(operation, error=UNEXPECTED_ERROR)
    else:
        operation_finish(operation, result=result or {})
    return operation


def operations_expire(*, now=None) -> list[Operation]:
    """Fail running operations past their deadline: the worker running them died or hung.

    The first step of the reconciler; what the operation left half-done is for the runner of
    its kind to repair (see `vms.runners.recover`).
    """
    now = now or timezone.now()
    expired = Operation.objects.filter(state=OperationState.RUNNING, deadline__lt=now)
    failed = []
    for operation in expired.select_related("vm", "owner"):
        updated = Operation.objects.filter(pk=operation.pk, state=OperationState.RUNNING).update(
            state=OperationState.FAILED, finished_at=now, message="Failed"
        )
        if not updated:
            continue
        error = (
            f"The worker running this ({operation.worker or 'unknown'}) stopped before it finished."
        )
        recover = RECOVERERS.get(operation.kind)
        if recover:
            try:
                error += " " + import_string(recover)(operation)
            except Exception:
                logger.exception("Recovering after operation %s failed", operation.id)
                error += " Repairing what it left half-done failed too; an admin must look."
        Operation.objects.filter(pk=operation.pk).update(error=error)
        operation.error = error
        operation.state = OperationState.FAILED
        failed.append(operation)
    return failed


def operation_retry(operation: Operation) -> Operation:
    """Queue a failed operation again (an admin's repair). Runners check what is already done,
    so a retry finishes the work rather than doing it twice."""
    try:
        with transaction.atomic():
            updated = Operation.objects.filter(pk=operation.pk, state=OperationState.FAILED).update(
                state=OperationState.QUEUED,
                error="",
                message="Waiting for a worker (retried)",
                progress=0,
                started_at=None,
                finished_at=None,
                deadline=None,
            )
    except IntegrityError:
        raise Busy(Operation.objects.active().filter(vm=operation.vm_id).first()) from None
    if not updated:
        raise InvalidState("Only a failed operation can be retried.")
    operation.refresh_from_db()
    operation_enqueue(operation)
    return operation


def operation_mark_failed(operation: Operation, *, reason: str) -> bool:
    """End a queued or running operation as failed (an admin's repair), then repair what it may
    have left half-done, as for an operation whose worker died."""
    updated = Operation.objects.filter(pk=operation.pk, state__in=ACTIVE_STATES).update(
        state=OperationState.FAILED, finished_at=timezone.now(), message="Failed", error=reason
    )
    if updated and operation.kind in RECOVERERS:
        note = import_string(RECOVERERS[operation.kind])(operation)
        Operation.objects.filter(pk=operation.pk).update(error=f"{reason} {note}")
    return bool(updated)


def heartbeat_record() -> WorkerHeartbeat:
    """Record that the worker running this code is alive now."""
    worker = f"{socket.gethostname()}:{os.getppid()}"
    beat, _ = WorkerHeartbeat.objects.update_or_create(
        worker=worker, defaults={"last_seen": timezone.now()}
    )
    return beat


def schedules_ensure(*, using: str = "default") -> None:
    """Create or update the periodic tasks the task queue's scheduler runs."""
    from django_q.models import Schedule

    for name, (func, minutes) in SCHEDULES.items():
        Schedule.objects.using(using).update_or_create(
            name=name,
            defaults={
                "func": func,
                "schedule_type": Schedule.MINUTES,
                "minutes": minutes,
                "repeats": -1,
            },
        )
