"""Reads of plans, usage and snapshots."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Sum

from accounts.models import Plan
from snapshots.models import Snapshot


def plan_for(user) -> Plan:
    """The user's plan; the default plan when none was chosen."""
    if user.plan_id is not None:
        return user.plan
    plan = Plan.objects.filter(is_default=True).first()
    if plan is None:
        plan = Plan(slug="none", name="No plan", max_snapshots=0, max_snapshot_bytes=0, max_vms=0)
    return plan


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
