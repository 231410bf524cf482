"""Snapshot policies: when a VM's snapshots take themselves, and which of them are kept."""

import uuid

from django.conf import settings
from django.db import models

from core.access import OwnedQuerySet
from schedules.retention import Keep


class SnapshotPolicy(models.Model):
    """One per VM, set by its owner. The worker's one schedule runs every due policy."""

    KEEP_MAX = 1000

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    vm = models.OneToOneField("vms.VM", on_delete=models.CASCADE, related_name="snapshot_policy")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="snapshot_policies"
    )
    enabled = models.BooleanField(default=True)
    schedule = models.CharField(
        max_length=100,
        help_text='"hourly", "daily at 03:30", "weekly on sun at 03:30" or a cron expression.',
    )
    cron = models.CharField(max_length=100, editable=False, help_text="What the schedule means.")
    timezone = models.CharField(max_length=64, default="UTC")
    keep_last = models.PositiveIntegerField(default=0)
    keep_hourly = models.PositiveIntegerField(default=0)
    keep_daily = models.PositiveIntegerField(default=0)
    keep_weekly = models.PositiveIntegerField(default=0)
    keep_monthly = models.PositiveIntegerField(default=0)
    keep_yearly = models.PositiveIntegerField(default=0)
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OwnedQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "snapshot policies"

    def __str__(self):
        return f"{self.vm.name}: {self.schedule}"

    @property
    def keep(self) -> Keep:
        return Keep(
            last=self.keep_last,
            hourly=self.keep_hourly,
            daily=self.keep_daily,
            weekly=self.keep_weekly,
            monthly=self.keep_monthly,
            yearly=self.keep_yearly,
        )


class PolicyRunOutcome(models.TextChoices):
    TAKEN = "taken", "Snapshot taken"
    SKIPPED = "skipped", "Skipped"


class PolicyRun(models.Model):
    """One time slot of a policy, run once: the unique (policy, slot) pair is what keeps two
    workers from taking two snapshots for it."""

    policy = models.ForeignKey(SnapshotPolicy, on_delete=models.CASCADE, related_name="runs")
    slot = models.DateTimeField(help_text="The scheduled time this run stands for.")
    outcome = models.CharField(max_length=16, choices=PolicyRunOutcome.choices, blank=True)
    message = models.CharField(max_length=255, blank=True)
    pruned = models.PositiveIntegerField(default=0, help_text="Snapshots retention deleted.")
    snapshot = models.ForeignKey(
        "snapshots.Snapshot",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="policy_runs",
    )
    operation = models.ForeignKey(
        "operations.Operation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="policy_runs",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-slot"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "slot"], name="one_run_per_policy_slot")
        ]

    def __str__(self):
        return f"{self.policy} @ {self.slot:%Y-%m-%d %H:%M}"
