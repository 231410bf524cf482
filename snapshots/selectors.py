"""Reads of snapshots and of how much of the plan they use. Nothing here changes a row or
talks to libvirt; the services do that."""

from __future__ import annotations

from collections.abc import Callable
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


# Functions of the apps above that say how many more bytes of the plan a user's files of theirs
# take (an exported snapshot waiting for its download): (user) -> bytes.
_BYTE_COUNTERS: list[Callable[..., int]] = []


def usage_bytes_register(counter: Callable[..., int]) -> None:
    """Count what `counter(user)` returns against the user's plan bytes (once, however often
    called)."""
    if counter not in _BYTE_COUNTERS:
        _BYTE_COUNTERS.append(counter)


def usage_for(user) -> Usage:
    """How much of the plan's snapshot allowance the user's snapshots (and the files the apps
    above count with them) take."""
    counted = Snapshot.objects.filter(owner=user).counted()
    snapshot_bytes = counted.aggregate(total=Sum("size_bytes"))["total"] or 0
    return Usage(
        plan=plan_for(user),
        snapshots=counted.count(),
        snapshot_bytes=snapshot_bytes + sum(counter(user) for counter in _BYTE_COUNTERS),
    )


def tree_snapshots(user, *, vm=None) -> list[Snapshot]:
    """The user's snapshots a tree draws (those of `vm` only, when given), in one query."""
    snapshots = Snapshot.objects.owned_by(user).select_related("source_vm", "image", "imported_by")
    if vm is not None:
        snapshots = snapshots.filter(source_vm=vm)
    return list(snapshots)
