"""Snapshots and the plans that limit them.

A snapshot is a read-only disk layer frozen at one moment, with the name its owner gave it. It
belongs to the owner, not to the VM: it outlives the VM and can seed any number of new VMs.
A live snapshot also keeps the running guest's memory, in a file of its own beside the layer.
"""

import uuid

from django.conf import settings
from django.db import models

from core.access import OwnedQuerySet

GIB = 1024**3


class SnapshotOperationKind(models.TextChoices):
    """The operations on snapshots (registered with `operations.registry` by this app)."""

    TAKE = "snapshot.take", "Take snapshot"
    RESTORE = "snapshot.restore", "Restore snapshot"
    NEW_VM = "snapshot.new_vm", "New VM from snapshot"
    DELETE = "snapshot.delete", "Delete snapshot"
    FORK = "snapshot.fork", "Fork VM"


class SnapshotState(models.TextChoices):
    CREATING = "creating", "Creating"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    DELETING = "deleting", "Deleting"


class SnapshotKind(models.TextChoices):
    MANUAL = "manual", "Snapshot"
    SCHEDULED = "scheduled", "Scheduled"
    BEFORE_RESTORE = "before_restore", "Undo point"
    IMPORTED = "imported", "Imported"


class SnapshotQuerySet(OwnedQuerySet):
    def visible(self):
        return self.exclude(state__in=[SnapshotState.DELETING, SnapshotState.FAILED])

    def owned_by(self, user):
        return self.visible().filter(owner=user)

    def counted(self):
        """The snapshots a plan's limits count: the owner's own and the scheduled ones, not the
        automatic "before restore" ones."""
        return self.exclude(kind=SnapshotKind.BEFORE_RESTORE).exclude(state=SnapshotState.FAILED)

    def memory_volume_names(self) -> set[str]:
        """The memory files of every snapshot with memory, from the moment it is requested:
        volumes a host's pool keeps besides layers and image files (names are ids, so other
        hosts' names do no harm)."""
        ids = self.filter(includes_memory=True).values_list("pk", flat=True)
        return {memory_volume_name(pk) for pk in ids}

    def memory_paired_with(self, layer) -> bool:
        """Whether a live snapshot's saved memory names the file of `layer` (which must then
        keep its name)."""
        return self.filter(layer=layer, includes_memory=True).exists()


class Snapshot(models.Model):
    """The whole disk of a VM at one moment, kept as a read-only layer."""

    NAME_MAX = 64
    DESCRIPTION_MAX = 1000

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="snapshots"
    )
    source_vm = models.ForeignKey(
        "vms.VM", null=True, blank=True, on_delete=models.SET_NULL, related_name="snapshots"
    )
    source_vm_name = models.CharField(max_length=64, help_text="The VM's name when taken.")
    image = models.ForeignKey(
        "vms.Image",
        on_delete=models.PROTECT,
        related_name="snapshots",
        help_text="The image whose kernel the disk boots with.",
    )
    name = models.CharField(max_length=NAME_MAX)
    description = models.TextField(blank=True, max_length=DESCRIPTION_MAX)
    kind = models.CharField(
        max_length=16, choices=SnapshotKind.choices, default=SnapshotKind.MANUAL
    )
    layer = models.ForeignKey(
        "vms.Layer", null=True, blank=True, on_delete=models.PROTECT, related_name="snapshots"
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    size_bytes = models.BigIntegerField(
        default=0, help_text="Bytes it takes on disk: its layer, and its memory file if any."
    )
    disk_bytes = models.BigIntegerField(default=0, help_text="Size of the disk it froze.")
    pinned = models.BooleanField(
        default=False, help_text="Kept whatever a snapshot policy's retention says."
    )
    quiesced = models.BooleanField(
        default=False,
        help_text="File systems were frozen by the guest agent (else crash-consistent).",
    )
    includes_memory = models.BooleanField(
        default=False,
        help_text="Also keeps the running guest's memory: restoring it onto its own VM resumes "
        "the programs where they were, without a reboot.",
    )
    memory_bytes = models.BigIntegerField(
        default=0, help_text="Bytes its memory file takes (part of its size)."
    )
    state = models.CharField(
        max_length=16, choices=SnapshotState.choices, default=SnapshotState.CREATING
    )
    imported_from = models.CharField(
        max_length=255, blank=True, help_text="An imported snapshot's file, as it was uploaded."
    )
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who uploaded an imported snapshot's file.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SnapshotQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["owner", "state"]),
            models.Index(fields=["source_vm", "-created_at"]),
        ]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        """Its row on its VM's page, or on the snapshots page once the VM is gone."""
        from django.urls import reverse

        if self.source_vm_id is not None:
            return reverse("vm_detail", args=[self.source_vm_id]) + f"#snapshot-{self.id}"
        return reverse("snapshot_list") + f"#snapshot-{self.id}"

    @property
    def kind_label(self) -> str:
        """What kind of snapshot it is, in the words every page and the API use ("" for one a
        person took)."""
        return "" if self.kind == SnapshotKind.MANUAL else self.get_kind_display()

    @property
    def consistency(self) -> str:
        """What a restore of it gives back: the running programs too, file systems the guest
        had flushed, or the disk as a power cut would leave it."""
        if self.includes_memory:
            return "with memory"
        if self.quiesced:
            return "consistent"
        return "crash-consistent"

    @property
    def origin(self) -> str:
        """Where it came from, in words: the VM it was taken of, or the file it was imported
        from and who imported it (when is its `created_at`)."""
        if self.kind == SnapshotKind.IMPORTED:
            who = f" by {self.imported_by.username}" if self.imported_by_id else ""
            return f"imported from {self.imported_from or 'an uploaded file'}{who}"
        gone = "" if self.source_vm_id else " (deleted since)"
        return f"of {self.source_vm_name}{gone}"

    @property
    def memory_volume(self) -> str:
        """Name of its memory file, a volume in the storage pool of its layer's host."""
        return memory_volume_name(self.id)


def memory_volume_name(snapshot_id) -> str:
    return f"{snapshot_id}.memory"
