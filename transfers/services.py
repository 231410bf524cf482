"""Business rules for moving snapshots in and out: export one as a file, import one from a file.

Export: a worker flattens the snapshot's chain of layers (read bottom-up as the database records
it) into one compressed, self-contained qcow2 in the exports folder, outside every storage pool.
The owner downloads it until it expires; while it exists it counts against the plan's bytes.

Import: the upload lands in the quarantine folder and is checked before anything reads it as a
disk: its first bytes must be the declared format's, its qcow2 header must name no backing file,
no external data file and no encryption, `qemu-img info` and `check` (under resource limits)
must agree, and the disk must be within the largest a VM may have. It is then written anew as
a qcow2 of the service's own making, and a worker brings that file into the image's pool through
the storage API as a new root layer of a new snapshot. Quarantine files are deleted whatever
happens.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from core.errors import InvalidState, LimitExceeded
from operations.models import Operation
from operations.services import operation_start
from snapshots.models import Snapshot, SnapshotKind, SnapshotState
from snapshots.selectors import usage_for
from snapshots.services import clean_description, snapshot_limit_check
from transfers import disk_images, quarantine
from transfers.models import Export, ExportState, TransferOperationKind
from vms.models import VM, Image
from vms.services import clean_name, lock_owner

log = logging.getLogger(__name__)


def _bytes_check(owner, adding: int = 0) -> None:
    """Refuse when the owner's snapshots and exports (plus `adding` bytes) pass the plan's bytes.
    Call with the owner locked."""
    usage = usage_for(owner)
    plan = usage.plan
    used = usage.snapshot_bytes
    if used >= plan.max_snapshot_bytes or used + adding > plan.max_snapshot_bytes:
        raise LimitExceeded(
            f"Your snapshots and exports take {filesizeformat(usage.snapshot_bytes)}"
            + (f" and this needs {filesizeformat(adding)} more" if adding else "")
            + f"; your {plan.name} plan allows {filesizeformat(plan.max_snapshot_bytes)}. "
            "Delete a snapshot or wait for an export to expire."
        )


# --- Export ------------------------------------------------------------------------------------


def export_start(
    *, snapshot: Snapshot, user, idempotency_key: str | None = None
) -> tuple[Export, Operation]:
    """Ask for the snapshot's whole disk as one downloadable file: recorded now, made by a
    worker. The file counts against the plan's bytes until it expires."""
    owner = snapshot.owner
    with transaction.atomic():
        lock_owner(owner)
        locked = Snapshot.objects.select_for_update().filter(pk=snapshot.pk).first()
        if locked is None or locked.state != SnapshotState.READY or locked.layer_id is None:
            raise InvalidState("Only a ready snapshot can be exported; try again when it is ready.")
        if Export.objects.filter(snapshot=locked, state=ExportState.CREATING).exists():
            raise InvalidState(
                f"Snapshot {locked.name!r} is being exported already; its download appears "
                "when that finishes."
            )
        _bytes_check(owner)
        export = Export.objects.create(owner=owner, snapshot=locked, snapshot_name=locked.name)
        operation = operation_start(
            kind=TransferOperationKind.EXPORT,
            owner=owner,
            requester=user,
            target_name=locked.name,
            params={"export": str(export.pk)},
            idempotency_key=idempotency_key,
        )
        Operation.objects.filter(pk=operation.pk).update(snapshot=locked)
        operation.snapshot = locked
        Export.objects.filter(pk=export.pk).update(operation=operation)
        export.operation = operation
    return export, operation


def export_delete(*, export: Export) -> None:
    """Delete an export's file and row now (its bytes no longer count)."""
    if export.state == ExportState.CREATING:
        raise InvalidState("The export is still being made; delete it when it is ready.")
    export.path.unlink(missing_ok=True)
    export.delete()


def exports_expire(*, now=None) -> int:
    """Delete the exports whose time is up, and failed ones as old: files first, then rows.
    Also deletes files left in the exports and quarantine folders that nothing accounts for
    (a worker that died mid-way). Returns how many exports were deleted."""
    now = now or timezone.now()
    old = now - timedelta(hours=settings.EXPORT_HOURS)
    expired = Export.objects.filter(expires_at__lte=now) | Export.objects.filter(
        state=ExportState.FAILED, created_at__lte=old
    )
    count = 0
    for export in expired:
        export.path.unlink(missing_ok=True)
        export.path.with_suffix(".part").unlink(missing_ok=True)
        export.delete()
        count += 1
    _sweep_folder(Path(settings.EXPORT_DIR), older_than=old)
    _sweep_folder(Path(settings.QUARANTINE_DIR), older_than=old)
    return count


def _sweep_folder(folder: Path, *, older_than) -> None:
    """Delete files in `folder` last changed before `older_than` that no export or running
    import names."""
    if not folder.is_dir():
        return
    known = {f"{pk}.qcow2" for pk in Export.objects.values_list("pk", flat=True)}
    importing = Operation.objects.active().filter(kind=TransferOperationKind.IMPORT)
    known |= {params.get("file") for params in importing.values_list("params", flat=True)}
    cutoff = older_than.timestamp()
    for entry in os.scandir(folder):
        if entry.is_file() and entry.name not in known and entry.stat().st_mtime < cutoff:
            Path(entry.path).unlink(missing_ok=True)


# --- Import ------------------------------------------------------------------------------------


def too_big_message() -> str:
    return (
        f"The file is larger than the {filesizeformat(settings.IMPORT_MAX_MIB * 1024 * 1024)} "
        "an import may upload."
    )


def import_image_default() -> Image | None:
    """The image an imported disk boots with unless the user chooses: the busybox one."""
    from vms.image_upload import BUSYBOX_SLUG

    images = Image.objects.filter(is_public=True)
    return images.filter(slug=BUSYBOX_SLUG).first() or images.first()


def snapshot_import(
    *,
    owner,
    upload: Path,
    fmt: str,
    name: str,
    image: Image | None = None,
    description: str = "",
    requester=None,
    idempotency_key: str | None = None,
) -> Operation:
    """Check an uploaded disk image (in quarantine) and, if it is safe, make it a new snapshot
    of `owner` booting with `image`'s kernel: recorded now, brought into the pool by a worker.

    Refusals are `ValidationError`s on `file` saying why. The upload is deleted in every case.
    """
    rewritten = quarantine.new_path(".qcow2")
    try:
        name = clean_name(name, what="snapshot name")
        description = clean_description(description)
        image = image or import_image_default()
        if image is None or not image.is_public:
            raise ValidationError({"image": "Choose one of the images offered."})
        with transaction.atomic():
            lock_owner(owner)
            snapshot_limit_check(owner)  # refuse early, before the slow steps
        try:
            disk_images.check_magic(upload, fmt)
            info = disk_images.inspect(upload, fmt, max_virtual_size=VM.MAX_DISK_BYTES)
            disk_images.rewrite(upload, fmt, rewritten)
        except disk_images.RefusedImage as exc:
            raise ValidationError({"file": str(exc)}) from None
        size = rewritten.stat().st_size
        with transaction.atomic():
            lock_owner(owner)
            snapshot_limit_check(owner)
            _bytes_check(owner, adding=size)
            snapshot = Snapshot.objects.create(
                owner=owner,
                source_vm=None,
                source_vm_name="",
                image=image,
                name=name,
                description=description,
                kind=SnapshotKind.IMPORTED,
                disk_bytes=info.virtual_size,
                size_bytes=size,
            )
            operation = operation_start(
                kind=TransferOperationKind.IMPORT,
                owner=owner,
                requester=requester,
                target_name=name,
                params={"file": rewritten.name, "host": image.host_id},
                idempotency_key=idempotency_key,
            )
            Operation.objects.filter(pk=operation.pk).update(snapshot=snapshot)
            operation.snapshot = snapshot
        return operation
    except BaseException:
        rewritten.unlink(missing_ok=True)
        raise
    finally:
        upload.unlink(missing_ok=True)
