"""Operations: the one record of every long-running action, and the workers that run them."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.access import OwnedQuerySet
from operations import registry


class OperationState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"  # never ran: recorded so the user sees why (a schedule's run)


ACTIVE_STATES = (OperationState.QUEUED, OperationState.RUNNING)


class OperationQuerySet(OwnedQuerySet):
    def active(self):
        return self.filter(state__in=ACTIVE_STATES)


class Operation(models.Model):
    """A long-running action on a VM or snapshot: what the progress bar, the API's 202 answer,
    the activity log and the admin's repair list all read.

    At most one operation is active (queued or running) per VM; the database enforces it, so two
    requests racing for one VM cannot both get through.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=32, choices=registry.choices)
    state = models.CharField(
        max_length=16, choices=OperationState.choices, default=OperationState.QUEUED
    )
    progress = models.PositiveSmallIntegerField(default=0)
    message = models.CharField(max_length=255, blank=True, help_text="The step under way.")
    error = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="operations"
    )
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="requested_operations",
    )
    vm = models.ForeignKey(
        "vms.VM", null=True, blank=True, on_delete=models.SET_NULL, related_name="operations"
    )
    snapshot = models.ForeignKey(
        "snapshots.Snapshot",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="operations",
    )
    target_name = models.CharField(max_length=200, help_text="What it acted on, for the record.")
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    # NULL, not "", when absent: the per-owner uniqueness applies only to keys actually given.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    worker = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(
        null=True, blank=True, help_text="When a running operation is presumed hung."
    )
    lease_expires_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The worker running it renews this every few seconds; once it has passed, the "
        "worker is presumed dead.",
    )

    objects = OperationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["vm"],
                condition=Q(state__in=["queued", "running"]),
                name="one_active_operation_per_vm",
            ),
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="idempotency_key_unique_per_owner",
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="progress_at_most_100"),
        ]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            # What the worker's frequent sweep for dead workers reads.
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(state="running"),
                name="running_operation_lease",
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.target_name} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def duration(self):
        if self.started_at is None:
            return None
        from django.utils import timezone

        return (self.finished_at or timezone.now()) - self.started_at


class WorkerHeartbeat(models.Model):
    """The last time a task-queue worker ran the heartbeat task: proof that tasks get done."""

    worker = models.CharField(max_length=200, unique=True)
    last_seen = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-last_seen"]

    def __str__(self):
        return f"{self.worker} at {self.last_seen:%Y-%m-%d %H:%M:%S}"


class IdempotentRequest(models.Model):
    """The first answer to a POST sent with an Idempotency-Key, replayed for a retry of it."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="idempotent_requests"
    )
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="Hash of method, path and body.")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    body = models.JSONField(null=True, blank=True)
    location = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="idempotent_request_unique_key")
        ]

    def __str__(self):
        return f"{self.owner_id}:{self.key}"


class OrphanSighting(models.Model):
    """Something in libvirt that no row accounts for, and since when: the reconciler removes it
    only after a grace period, so work that is being set up right now is never mistaken for it."""

    class Kind(models.TextChoices):
        DOMAIN = "domain", "Domain"
        VOLUME = "volume", "Volume"

    host = models.ForeignKey("vms.Host", on_delete=models.CASCADE, related_name="orphans")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    name = models.CharField(max_length=255)
    first_seen = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["host", "kind", "name"], name="orphan_sighting_unique")
        ]

    def __str__(self):
        return f"{self.kind} {self.name}"


class ReconcileRun(models.Model):
    """What one run of the reconciler found and did."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    summary = models.TextField()
    problems = models.PositiveIntegerField(default=0, help_text="Findings that needed action.")

    class Meta:
        ordering = ["-started_at"]

    def __str__(self):
        return f"Reconcile at {self.started_at:%Y-%m-%d %H:%M:%S} ({self.problems} found)"
