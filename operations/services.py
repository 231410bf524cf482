"""Business rules for operations and the workers that run them.

The life of an operation: `operation_start` records it (queued) inside the request's
transaction and enqueues its task on commit; `operation_run`, in a worker, claims it with a
conditional update (queued -> running), calls the job of its kind, and records the end state.
A delivered-again task finds the operation no longer queued and does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import BackendRefused, Busy, InvalidState, ServiceError, public_error
from core.sizes import size_text
from operations import registry
from operations.models import (
    ACTIVE_STATES,
    Operation,
    OperationState,
    WorkerHeartbeat,
    housekeeping_lock,
    lock_of,
)

logger = logging.getLogger(__name__)

# Periodic tasks, by name: (function, minutes between runs). Apps add theirs with
# `periodic_task_register` in their AppConfig.ready.
PERIODIC_TASKS = {
    "worker heartbeat": ("operations.tasks.heartbeat", 1),
    "prune old records": ("operations.tasks.prune", 60),
}


def periodic_task_register(name: str, func: str, *, minutes: int) -> None:
    PERIODIC_TASKS[name] = (func, minutes)


# Set by `manage.py worker` for the processes of its task-queue cluster: the cluster's name, and
# a file whose existence means "the cluster is stopping: claim nothing new".
CLUSTER_ENV = "KODING_WORKER_CLUSTER"
STOP_FILE_ENV = "KODING_WORKER_STOP_FILE"

UNEXPECTED_ERROR = (
    "An unexpected error stopped this operation. Nothing further was changed; "
    "an administrator can find the details in the worker's log."
)


def worker_name() -> str:
    """Who runs an operation: `host:pid` of the cluster, then the worker process's pid."""
    cluster = os.environ.get(CLUSTER_ENV) or socket.gethostname()
    return f"{cluster}/{os.getpid()}"


def worker_stopping() -> bool:
    """Whether this process's cluster was asked to stop (it then starts nothing new)."""
    stop_file = os.environ.get(STOP_FILE_ENV)
    return bool(stop_file) and Path(stop_file).exists()


def lease_end(now=None):
    return (now or timezone.now()) + timedelta(seconds=settings.WORKER_LEASE_SECONDS)


# How often housekeeping looks for a user's operation to give way to, and a waiting user's
# operation for housekeeping to end.
HOUSEKEEPING_POLL_SECONDS = 0.25


class Yielded(Exception):
    """Housekeeping stopped at a safe point to give way to a user's operation."""


def operation_start(
    *,
    kind: str,
    owner,
    requester=None,
    lock: str = "",
    subject=None,
    target_name: str,
    params: dict | None = None,
    idempotency_key: str | None = None,
) -> Operation:
    """Record a queued operation and enqueue its task when the transaction commits.

    Raises `Busy` when another active operation holds `lock`: the database's partial unique
    index decides, so of two racing requests exactly one gets through. A housekeeping kind holds
    `lock` as its housekeeping lock, and is refused (`Busy`) while a user's operation holds
    `lock`: housekeeping never starts in front of one.
    """
    if lock and registry.is_housekeeping(kind):
        waiting = Operation.objects.active().holding(lock).first()
        if waiting is not None:
            raise Busy(waiting)
        lock = housekeeping_lock(lock)
    message = "Waiting for a worker"
    if lock and not registry.is_housekeeping(kind):
        beside = Operation.objects.active().holding(housekeeping_lock(lock)).first()
        if beside is not None:
            message = f"Waiting for {beside.get_kind_display().lower()} to stop"
    fields = {
        "kind": kind,
        "owner": owner,
        "requester": requester,
        "lock": lock,
        "target_name": target_name,
        "params": params or {},
        "idempotency_key": idempotency_key,
        "message": message,
    }
    if subject is not None:  # a generic relation set to None would store a NULL id
        fields["subject"] = subject
    for _attempt in range(2):
        try:
            with transaction.atomic():
                operation = Operation.objects.create(**fields)
        except IntegrityError:
            active = Operation.objects.active().holding(lock).first() if lock else None
            if active is not None:
                raise Busy(active) from None
            # The other operation ended between our insert and this read: try once more.
            continue
        operation_enqueue(operation)
        return operation
    raise Busy(None)


def operation_record_skipped(
    *, kind: str, owner, lock: str = "", subject=None, target_name: str, reason: str
):
    """Record an operation that was due but did not run (a scheduled snapshot the plan had no
    room for), so that the activity log says so. It is never queued."""
    now = timezone.now()
    return Operation.objects.create(
        kind=kind,
        owner=owner,
        lock=lock,
        **({"subject": subject} if subject is not None else {}),
        target_name=target_name[:200],
        state=OperationState.SKIPPED,
        message=reason[:255],
        finished_at=now,
    )


# The queue's one task: run the job of the operation it names (`operations.tasks`).
RUN_TASK = "operations.tasks.run_operation"


def operation_send(operation_id, kind: str, *, why: str = "") -> None:
    """Put the task that runs an operation on the queue, now (the one place that does)."""
    from django_q.tasks import async_task

    name = f"{kind} {operation_id}" + (f" ({why})" if why else "")
    async_task(RUN_TASK, str(operation_id), task_name=name, group=kind)


def operation_enqueue(operation: Operation) -> None:
    """Send the operation's task once the transaction that recorded it commits."""
    operation_id, kind = operation.id, operation.kind
    transaction.on_commit(lambda: operation_send(operation_id, kind))


def operation_subject_set(operation: Operation, subject) -> None:
    """Make `subject` what the operation is about (a row made after the operation was)."""
    subject_type = ContentType.objects.get_for_model(subject)
    Operation.objects.filter(pk=operation.pk).update(
        subject_type=subject_type, subject_id=str(subject.pk)
    )
    operation.subject = subject


def operations_forget(subject, *, lock: str = "") -> None:
    """A row the operations named is being deleted: they keep their record (target_name says
    what it was) and lose the link to it, and, with `lock`, the lock it gave them."""
    Operation.objects.about(subject).update(subject_type=None, subject_id="")
    if lock:
        Operation.objects.filter(lock__in=[lock, housekeeping_lock(lock)]).update(lock="")


def operation_report(operation: Operation, *, progress: int, message: str) -> None:
    """Record how far a running operation has got (what the progress bar shows)."""
    operation.progress = progress
    operation.message = message
    Operation.objects.filter(pk=operation.pk, state=OperationState.RUNNING).update(
        progress=progress, message=message
    )


# A long copy's progress is written to its operation at most this often (and when it ends).
REPORT_SECONDS = 0.5


def operation_reporter(operation: Operation, *, start: int, span: int, message: str):
    """A progress callback for a long copy, `report(fraction, detail)`: the operation's bar moves
    from `start` over `span` points and its message reads "<message>: <detail>", written at most
    every REPORT_SECONDS and always when the copy is whole."""
    last = 0.0

    def report(fraction: float, detail: str) -> None:
        nonlocal last
        now = time.monotonic()
        if fraction < 1 and now - last < REPORT_SECONDS:
            return
        last = now
        operation_report(
            operation, progress=start + int(span * fraction), message=f"{message}: {detail}"
        )

    return report


def bytes_reporter(report):
    """An `on_bytes(done, total)` callback for a stream that tells `report` (an
    `operation_reporter`'s) how many of its bytes have gone, in words."""
    return lambda done, total: report(
        done / total if total else 1.0, f"{size_text(done)} of {size_text(total)}"
    )


def operation_claim(operation_id) -> Operation | None:
    """Take a queued operation for this worker; None if it is not queued (any more), or if this
    worker is stopping (the operation stays queued for the next worker: see `operations_resend`).
    """
    if worker_stopping():
        logger.info("Stopping: operation %s is left queued for the next worker.", operation_id)
        return None
    now = timezone.now()
    claimed = Operation.objects.filter(pk=operation_id, state=OperationState.QUEUED).update(
        state=OperationState.RUNNING,
        started_at=now,
        deadline=now + timedelta(seconds=settings.OPERATION_TIMEOUT),
        lease_expires_at=lease_end(now),
        worker=worker_name(),
        message="Starting",
    )
    if not claimed:
        return None
    return Operation.objects.select_related("owner").get(pk=operation_id)


def operation_finish(operation: Operation, *, error: str = "", result: dict | None = None) -> bool:
    """Record the end of a running operation: succeeded, or failed with `error`.

    The error is recorded as its owner may read it: host URIs and addresses become the host's
    name (`core.errors.public_error`); the words as they were go to the log, for staff."""
    shown = public_error(error)
    if shown != error:
        logger.warning("Operation %s (%s) failed: %s", operation.pk, operation.kind, error)
    error = shown
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
    job = registry.registered(operation.kind).job
    try:
        with lease_kept(operation):
            if operation.lock and not registry.is_housekeeping(operation.kind):
                housekeeping_wait(operation)
            result = job(operation)
    except Yielded as exc:
        operation_finish_yielded(operation, str(exc))
    except ServiceError as exc:
        operation_finish(operation, error=exc.message)
    except BackendRefused as exc:
        if exc.plain:
            operation_finish(operation, error=f"{exc.who} refused: {exc}")
        else:
            Operation.objects.filter(pk=operation.pk).update(detail=f"{exc.who} refused: {exc}")
            operation_finish(operation, error=refused_in_words(operation, exc))
    except Exception:
        logger.exception("Operation %s (%s) failed", operation.id, operation.kind)
        operation_finish(operation, error=UNEXPECTED_ERROR)
    else:
        operation_finish(operation, result=result or {})
    return operation


def refused_in_words(operation: Operation, exc: BackendRefused) -> str:
    """What a person is told when a backend refused their operation: what failed and what
    they can do; the backend's own words are the operation's `detail`, for staff."""
    label = operation.get_kind_display()
    return (
        f"{exc.who} refused to {label[:1].lower()}{label[1:]} "
        f"“{operation.target_name}”. Nothing else was changed; try again, and if it fails again, "
        "an administrator can see the exact reason."
    )


def housekeeping_wait(operation: Operation) -> None:
    """Before a user's operation runs: wait for housekeeping running on what it locks to give
    way (it looks every HOUSEKEEPING_POLL_SECONDS and stops at its next safe point)."""
    beside = Operation.objects.filter(
        lock=housekeeping_lock(operation.lock), state=OperationState.RUNNING
    )
    running = beside.first()
    if running is None:
        return
    operation_report(
        operation, progress=0, message=f"Waiting for {running.get_kind_display().lower()} to stop"
    )
    started = time.monotonic()
    while beside.exists():
        time.sleep(HOUSEKEEPING_POLL_SECONDS)
    logger.info(
        "Operation %s waited %.1f s for %s to give way",
        operation.pk,
        time.monotonic() - started,
        running.kind,
    )
    operation_report(operation, progress=0, message="Starting")


def housekeeping_should_yield(operation: Operation):
    """For a housekeeping job: a function telling whether a user's operation now waits for what
    it works on (queued or running), asking the database at most every
    HOUSEKEEPING_POLL_SECONDS. Housekeeping then stops at a safe point (`raise Yielded`)."""
    lock = lock_of(operation.lock)
    last, answer = 0.0, False

    def should_yield() -> bool:
        nonlocal last, answer
        if not lock or answer:
            return answer
        now = time.monotonic()
        if now - last >= HOUSEKEEPING_POLL_SECONDS:
            last = now
            answer = Operation.objects.active().holding(lock).exists()
        return answer

    return should_yield


def operation_finish_yielded(operation: Operation, why: str) -> None:
    """Record housekeeping that gave way: skipped (it left everything as it was), to be tried
    again by the next sweep."""
    fields = {
        "state": OperationState.SKIPPED,
        "finished_at": timezone.now(),
        "message": why or "Gave way to the owner's operation; tried again later",
    }
    Operation.objects.filter(pk=operation.pk, state=OperationState.RUNNING).update(**fields)
    for name, value in fields.items():
        setattr(operation, name, value)


@contextlib.contextmanager
def lease_kept(operation: Operation):
    """Renew the operation's lease every quarter lease while the block runs.

    A thread does it, so a slow step (a full copy of a big disk) keeps the lease as long as the
    process lives; when the process dies, renewals stop and the lease runs out within
    WORKER_LEASE_SECONDS. The deadline still catches a worker that lives but hangs.
    """
    done = threading.Event()
    interval = settings.WORKER_LEASE_SECONDS / 4

    def renew():
        try:
            while not done.wait(interval):
                try:
                    Operation.objects.filter(pk=operation.pk, state=OperationState.RUNNING).update(
                        lease_expires_at=lease_end()
                    )
                except Exception:
                    # A database that blinks costs one renewal, not the operation.
                    logger.warning("Could not renew the lease of %s", operation.pk, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    keeper = threading.Thread(target=renew, name=f"lease {operation.pk}", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        done.set()
        keeper.join()


def operations_expire(*, now=None) -> list[Operation]:
    """Fail running operations whose worker died (lease run out) or hung (past the deadline),
    and repair what each left half-done.

    Cheap when there is nothing to do (one indexed query), so a live worker runs it every few
    seconds (`manage.py worker`); the reconciler runs it too. The repair is the one registered
    with the operation's kind (e.g. `snapshots.jobs.snapshot_operation_repair`).
    """
    now = now or timezone.now()
    expired = Operation.objects.filter(
        Q(lease_expires_at__lt=now) | Q(deadline__lt=now), state=OperationState.RUNNING
    )
    failed = []
    for operation in expired.select_related("owner"):
        worker = operation.worker or "unknown"
        if operation.deadline and operation.deadline < now:
            error = f"The worker running this ({worker}) did not finish it in time."
        else:
            error = f"The worker running this ({worker}) stopped before it finished."
        # Failed at once, with its reason; "Repairing" until the repair below has run.
        updated = Operation.objects.filter(pk=operation.pk, state=OperationState.RUNNING).update(
            state=OperationState.FAILED,
            finished_at=now,
            message="Repairing what it left half-done",
            error=error,
        )
        if not updated:
            continue
        repair = registry.registered(operation.kind).repair
        if repair:
            try:
                error += " " + repair(operation)
            except Exception:
                logger.exception("Recovering after operation %s failed", operation.id)
                error += " Repairing what it left half-done failed too; an admin must look."
        error = public_error(error)
        Operation.objects.filter(pk=operation.pk).update(error=error, message="Failed")
        operation.error = error
        operation.state = OperationState.FAILED
        failed.append(operation)
    return failed


def operations_resend(*, before=None, on_sent=None) -> int:
    """Enqueue again the tasks of operations still queued (created before `before`).

    A task can be lost while its operation waits: a worker that was stopped or killed after
    taking the task but before claiming the operation. Sending it again is harmless: only one
    delivery can claim a queued operation; the others end at once. `on_sent(operation)` hears
    of each one sent (the reconciler reports them).
    """
    waiting = Operation.objects.filter(state=OperationState.QUEUED)
    if before is not None:
        waiting = waiting.filter(created_at__lt=before)
    count = 0
    for operation in waiting:
        operation_send(operation.pk, operation.kind, why="sent again")
        if on_sent is not None:
            on_sent(operation)
        count += 1
    return count


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
                lease_expires_at=None,
            )
    except IntegrityError:
        raise Busy(Operation.objects.active().holding(operation.lock).first()) from None
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
    if updated:
        note = registry.registered(operation.kind).repair(operation)
        Operation.objects.filter(pk=operation.pk).update(error=public_error(f"{reason} {note}"))
    return bool(updated)


def heartbeat_record() -> WorkerHeartbeat:
    """Record that the worker running this code is alive now."""
    worker = f"{socket.gethostname()}:{os.getppid()}"
    beat, _ = WorkerHeartbeat.objects.update_or_create(
        worker=worker, defaults={"last_seen": timezone.now()}
    )
    return beat


def records_prune(*, now=None) -> dict[str, int]:
    """Delete the records that only grow once they are older than their retention: heartbeats
    of workers gone quiet, failed task records (after RECORD_RETENTION_DAYS) and idempotency
    records (after IDEMPOTENCY_KEY_HOURS). Operations are the users' history and are kept."""
    from django_q.models import Task

    from operations.models import IdempotentRequest

    now = now or timezone.now()
    old = now - timedelta(days=settings.RECORD_RETENTION_DAYS)
    pruned = {
        "worker heartbeats": WorkerHeartbeat.objects.filter(last_seen__lt=old).delete()[0],
        "task records": Task.objects.filter(stopped__lt=old).delete()[0],
        "idempotency records": IdempotentRequest.objects.filter(
            created_at__lt=now - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
        ).delete()[0],
    }
    return pruned


def periodic_tasks_ensure(*, using: str = "default") -> None:
    """Create or update the periodic tasks the task queue's scheduler runs."""
    from django_q.models import Schedule

    for name, (func, minutes) in PERIODIC_TASKS.items():
        Schedule.objects.using(using).update_or_create(
            name=name,
            defaults={
                "func": func,
                "schedule_type": Schedule.MINUTES,
                "minutes": minutes,
                "repeats": -1,
            },
        )
