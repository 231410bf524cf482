"""Reads of accounts: which plan a user is on. Nothing here changes a row."""

from __future__ import annotations

from accounts.models import Plan


def plan_for(user) -> Plan:
    """The user's plan; the default plan when none was chosen."""
    if user.plan_id is not None:
        return user.plan
    plan = Plan.objects.filter(is_default=True).first()
    if plan is None:
        plan = Plan(slug="none", name="No plan", max_snapshots=0, max_snapshot_bytes=0, max_vms=0)
    return plan
