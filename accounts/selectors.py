"""Reads of accounts: which plan a user is on, their SSH keys. Nothing here changes a row."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Plan, SshKey


def plan_for(user) -> Plan:
    """The user's plan; the default plan when none was chosen."""
    if user.plan_id is not None:
        return user.plan
    plan = Plan.objects.filter(is_default=True).first()
    if plan is None:
        plan = Plan(slug="none", name="No plan", max_snapshots=0, max_snapshot_bytes=0, max_vms=0)
    return plan


def ssh_keys_of(user) -> QuerySet[SshKey]:
    """The user's SSH keys, newest first."""
    return SshKey.objects.owned_by(user)
