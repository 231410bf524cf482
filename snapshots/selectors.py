"""Reads of snapshots and of how much of the plan they use. Nothing here changes a row or
talks to libvirt; the services do that."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Sum

from accounts.models import Plan
from accounts.selectors import plan_for
from snapshots.models import Snapshot


@dataclass(frozen=True)
class Usage:
    plan: Plan
    snapshots: int
    snapshot_bytes: int

    @property
    def snapshots_percent(self) -> int:
        return _percent(self.snapshots, self.plan.max_snapshots)

    @property
    def bytes_percent(self) -> int:
        return _percent(self.snapshot_bytes, self.plan.max_snapshot_bytes)


def _percent(used: int, limit: int) -> int:
    if limit <= 0:
        return 100
    return min(100, round(100 * used / limit))


def usage_for(user) -> Usage:
    """How much of the plan's snapshot allowance the user's snapshots take."""
    counted = Snapshot.objects.filter(owner=user).counted()
    return Usage(
        plan=plan_for(user),
        snapshots=counted.count(),
        snapshot_bytes=counted.aggregate(total=Sum("size_bytes"))["total"] or 0,
    )
