"""Setting snapshot policies and running them.

One queue schedule (`schedules.tasks.run_due`, every minute) runs every policy that is due. A run
stands for one time slot: the latest one at or before now, so a worker that was down for a day
runs once, not once per missed slot. The (policy, slot) row is unique, and the policy's row is
locked while its next slot is moved on, so two workers never take two snapshots for one slot.

A run prunes first (counting the snapshot it is about to take), then takes the snapshot. When the
plan has no room even then, the run is skipped and says so in the activity log and on the VM page;
pinned snapshots, manual ones and those of other policies are never deleted to make room.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import LimitExceeded, ServiceError
from operations.services import operation_record_skipped
from schedules import cadence, retention
from schedules.models import PolicyRun, PolicyRunOutcome, SnapshotPolicy
from snapshots.models import SnapshotKind, SnapshotOperationKind, SnapshotState
from snapshots.services import snapshot_delete, snapshot_take

log = logging.getLogger(__name__)

KEEP_FIELDS = (
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
)


def policy_set(*, vm, enabled: bool, schedule: str, timezone_name: str, now=None, **keep):
    """Create or change the VM's policy; the next run is computed from now."""
    expression = cadence.cron_for(schedule)
    tz = cadence.zone(timezone_name)
    errors = {}
    for field in KEEP_FIELDS:
        value = keep.get(field, 0)
        if not isinstance(value, int) or not 0 <= value <= SnapshotPolicy.KEEP_MAX:
            errors[field] = f"Choose a number between 0 and {SnapshotPolicy.KEEP_MAX}."
    if errors:
        raise ValidationError(errors)
    now = now or timezone.now()
    policy, _ = SnapshotPolicy.objects.update_or_create(
        vm=vm,
        defaults={
            "owner": vm.owner,
            "enabled": enabled,
            "schedule": " ".join(schedule.split()),
            "cron": expression,
            "timezone": timezone_name,
            "next_run_at": cadence.next_after(expression, tz, now) if enabled else None,
            **{field: keep.get(field, 0) for field in KEEP_FIELDS},
        },
    )
    return policy


def policy_delete(*, policy: SnapshotPolicy) -> None:
    """Stop taking snapshots for the VM. The snapshots it took are kept (and no longer pruned)."""
    policy.delete()


def policies_run_due(now: datetime | None = None) -> list[PolicyRun]:
    """Run every enabled policy whose next run has come; what the worker's schedule calls."""
    now = now or timezone.now()
    runs = []
    due = SnapshotPolicy.objects.filter(enabled=True, next_run_at__lte=now).values_list(
        "pk", flat=True
    )
    for pk in list(due):
        try:
            run = policy_run(pk, now=now)
        except Exception:  # one policy's failure must not stop the others
            log.exception("Snapshot policy %s failed to run", pk)
            continue
        if run is not None:
            runs.append(run)
    return runs


def policy_run(pk, *, now: datetime) -> PolicyRun | None:
    """Run one policy for the slot `now` stands for; None when another worker has it or it is
    not due any more."""
    with transaction.atomic():
        # Only the policy's row: a VM or user row locked by a request must not skip the run.
        policy = (
            SnapshotPolicy.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("vm", "owner")
            .filter(pk=pk, enabled=True, next_run_at__lte=now)
            .first()
        )
        if policy is None:
            return None
        tz = cadence.zone(policy.timezone)
        slot = cadence.latest_at_or_before(policy.cron, tz, now)
        policy.next_run_at = cadence.next_after(policy.cron, tz, now)
        policy.last_run_at = now
        policy.save(update_fields=["next_run_at", "last_run_at", "updated_at"])
        try:
            with transaction.atomic():
                run = PolicyRun.objects.create(policy=policy, slot=slot)
        except IntegrityError:
            return None  # this slot was run already
    run.pruned = policy_prune(policy, upcoming=slot)
    _take(policy, run)
    return run


def _take(policy: SnapshotPolicy, run: PolicyRun) -> None:
    vm = policy.vm
    local = run.slot.astimezone(cadence.zone(policy.timezone))
    name = f"auto {local:%Y-%m-%d %H:%M}"
    try:
        operation = snapshot_take(
            vm=vm,
            user=None,
            name=name,
            description=f"Taken by the VM's snapshot policy ({policy.schedule}).",
            kind=SnapshotKind.SCHEDULED,
        )
    except ServiceError as exc:
        reason = f"Skipped: {_reason(exc)}"
        run.outcome, run.message = PolicyRunOutcome.SKIPPED, reason[:255]
        run.operation = operation_record_skipped(
            kind=SnapshotOperationKind.TAKE,
            owner=vm.owner,
            lock=vm.lock,
            subject=vm,
            target_name=f"{vm.name}: {name}",
            reason=reason,
        )
    else:
        run.outcome, run.operation, run.snapshot_id = (
            PolicyRunOutcome.TAKEN,
            operation,
            operation.subject_pk,
        )
        run.message = f"Taking {name!r}"
    run.save()


def _reason(exc: ServiceError) -> str:
    if isinstance(exc, LimitExceeded):
        return f"plan limit. {exc.message}"
    return exc.message


def policy_prune(policy: SnapshotPolicy, *, upcoming: datetime | None = None) -> int:
    """Delete the policy's scheduled snapshots its retention no longer keeps; `upcoming` counts a
    snapshot about to be taken at that time. Pinned snapshots are never candidates. Returns how
    many were deleted (one in use by an operation is left for the next run)."""
    candidates = {
        run.snapshot_id: (run.snapshot, run.slot)
        for run in PolicyRun.objects.filter(
            policy=policy,
            snapshot__kind=SnapshotKind.SCHEDULED,
            snapshot__pinned=False,
            snapshot__state=SnapshotState.READY,
        ).select_related("snapshot")
    }
    items = [(pk, slot) for pk, (_, slot) in candidates.items()]
    if upcoming is not None:
        items.append(("upcoming", upcoming))
    kept = retention.kept(items, policy.keep, cadence.zone(policy.timezone))
    deleted = 0
    for pk, (snapshot, _) in candidates.items():
        if pk in kept:
            continue
        try:
            snapshot_delete(snapshot=snapshot, user=None)
        except ServiceError as exc:
            log.info("Retention left snapshot %s for now: %s", pk, exc.message)
            continue
        deleted += 1
    return deleted
