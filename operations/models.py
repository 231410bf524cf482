"""Operations: the one record of every long-running action, and the workers that run them."""

import uuid

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q

from core.access import OwnedQuerySet
from operations import registry


class OperationState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    # Never ran (a schedule's run), or housekeeping that gave way: recorded so the user sees why.
    SKIPPED = "skipped", "Skipped"


ACTIVE_STATES = (OperationState.QUEUED, OperationState.RUNNING)


# A housekeeping operation (merging, flattening: work the service does on its own) holds the
# lock of what it works on with this suffix, so a user's operation on the same thing is accepted
# beside it: the user's operation waits for it to give way, and it gives way at its next safe
# point and is tried again later (see `operations.services.housekeeping_wait`).
HOUSEKEEPING_SUFFIX = "/housekeeping"


def housekeeping_lock(lock: str) -> str:
    return f"{lock}{HOUSEKEEPING_SUFFIX}" if lock else ""


def lock_of(lock: str) -> str:
    """The lock a housekeeping lock stands beside (any other lock is itself)."""
    return lock.removesuffix(HOUSEKEEPING_SUFFIX)


class OperationQuerySet(OwnedQuerySet):
    def active(self):
        return self.filter(state__in=ACTIVE_STATES)

    def holding(self, lock: str):
        """The operations that hold (or held) `lock`."""
        return self.filter(lock=lock)

    def about(self, subject):
        """The operations whose subject is `subject` (any model instance)."""
        subject_type = ContentType.objects.get_for_model(subject)
        return self.filter(subject_type=subject_type, subject_id=str(subject.pk))


class Operation(models.Model):
    """A long-running action: what the progress bar, the API's 202 answer, the activity log and
    the admin's repair list all read. It names no app: what it acts on is its `subject` (any
    row, for display and lookups), and what it must have to itself while it is queued or running
    is its `lock`, a key the app that starts it chooses (`"vm:<id>"`).

    At most one operation is active per lock; the database enforces it, so two requests racing
    for one VM cannot both get through.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=32, choices=registry.choices)
    state = models.CharField(
        max_length=16, choices=OperationState.choices, default=OperationState.QUEUED
    )
    progress = models.PositiveSmallIntegerField(default=0)
    message = models.CharField(max_length=255, blank=True, help_text="The step under way.")
    error = models.TextField(blank=True, help_text="Why it failed, in words for its owner.")
    detail = models.TextField(
        blank=True, help_text="What the backend said when it refused: for staff, not the owner."
    )
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
    lock = models.CharField(
        max_length=80,
        blank=True,
        help_text="What it has to itself while queued or running (e.g. 'vm:<id>'); kept after it "
        "ends, to find a VM's operations, and emptied when that VM is deleted.",
    )
    subject_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subject_id = models.CharField(max_length=64, blank=True)
    subject = GenericForeignKey("subject_type", "subject_id")
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
                fields=["lock"],
                condition=Q(state__in=["queued", "running"]) & ~Q(lock=""),
                name="one_active_operation_per_lock",
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
            models.Index(fields=["lock", "-created_at"], name="operation_lock"),
            models.Index(fields=["subject_type", "subject_id"], name="operation_subject"),
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
    def subject_pk(self) -> str | None:
        """The primary key of what it is about, None when nothing (or it was deleted)."""
        return self.subject_id or None

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def duration(self):
        if self.started_at is None:
            return None
        from django.utils import timezone

        return (self.finished_at or timezone.now()) - self.started_at

    @property
    def outcome(self) -> str:
        """How it ended, in a sentence for its owner ("" while it is queued or running)."""
        if self.state == OperationState.SUCCEEDED:
            return registry.done_sentence(self.kind, self.target_name)
        reason = self.error or self.message or "no reason was recorded."
        if self.state == OperationState.FAILED:
            return f"{self.get_kind_display()} failed: {reason}"
        if self.state == OperationState.SKIPPED:
            return f"{self.get_kind_display()} skipped: {reason}"
        return ""


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
