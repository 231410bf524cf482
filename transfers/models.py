"""Exports: a snapshot flattened into one compressed qcow2 file its owner downloads.

The file is self-contained (no backing file), lives outside every storage pool, counts against
the owner's plan bytes while it exists, and is deleted when it expires.
"""

import uuid
from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.access import OwnedQuerySet


class TransferOperationKind(models.TextChoices):
    """The operations of this app (registered with `operations.registry`)."""

    EXPORT = "transfer.export", "Export snapshot"
    IMPORT = "transfer.import", "Import snapshot"


class ExportState(models.TextChoices):
    CREATING = "creating", "Creating"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class ExportQuerySet(OwnedQuerySet):
    def current(self, now=None):
        """Those not expired yet (an export being made has no expiry yet)."""
        now = now or timezone.now()
        return self.filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))


class Export(models.Model):
    """One download of a snapshot's whole disk, made by a worker, deleted once it expires."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exports"
    )
    # The file stands alone: it outlives the snapshot.
    snapshot = models.ForeignKey(
        "snapshots.Snapshot",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="exports",
    )
    snapshot_name = models.CharField(max_length=64, help_text="The snapshot's name when exported.")
    operation = models.ForeignKey(
        "operations.Operation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="exports",
    )
    state = models.CharField(
        max_length=16, choices=ExportState.choices, default=ExportState.CREATING
    )
    size_bytes = models.BigIntegerField(default=0, help_text="Bytes of the file.")
    virtual_size = models.BigIntegerField(default=0, help_text="Size of the disk it holds.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    objects = ExportQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self):
        return f"{self.snapshot_name} ({self.state})"

    @property
    def file_name(self) -> str:
        """The file's name in the exports folder: derived from the id, never from user input."""
        return f"{self.id}.qcow2"

    @property
    def path(self) -> Path:
        return Path(settings.EXPORT_DIR) / self.file_name

    @property
    def download_name(self) -> str:
        """What the browser saves it as: the snapshot's name, reduced to safe characters."""
        safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in self.snapshot_name)
        return f"{safe.strip('-.') or 'snapshot'}.qcow2"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def downloadable(self) -> bool:
        return self.state == ExportState.READY and not self.is_expired
