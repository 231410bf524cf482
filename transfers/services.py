"""Business rules for moving snapshots in and out: export one as a file, import one from a file.

Export: a worker flattens the snapshot's chain of layers (read bottom-up as the database records
it) into one compressed, self-contained qcow2 in the exports folder, outside every storage pool.
The owner downloads it until it expires; while it exists it counts against the plan's bytes.

Import: the request only streams the upload into the quarantine folder (one file, within the
upload limit, the plan's room and the folder's free-space floor), reads its header (its first
bytes must be the declared format's; a qcow2 header must name no backing file, no external data
file and no encryption; the disk size it declares must fit a VM and the plan) and records the
import: a snapshot being created and its operation. The worker running the operation does the
costly part, every `qemu-img` run under `prlimit` and IMPORT_TIMEOUT_SECONDS: `qemu-img info`
and `check` must agree, `qemu-img measure` says what the rewrite would write, which must fit
what the plan has left, and the image is written anew as a qcow2 of the service's own making and
brought into the image's pool through the storage API as a new root layer. One import per owner
runs at a time. Quarantine files, and the snapshot of an import that fails, are deleted whatever
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
from django.utils import timezone

from core.errors import Busy, InvalidState, LimitExceeded, ServiceError, Unavailable
from core.sizes import size_text
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
            f"Your snapshots and exports take {size_text(usage.snapshot_bytes)}"
            + (f" and this needs {size_text(adding)} more" if adding else "")
            + f"; your {plan.name} plan allows {size_text(plan.max_snapshot_bytes)}. "
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
            subject=locked,
            target_name=locked.name,
            params={"export": str(export.pk)},
            idempotency_key=idempotency_key,
        )
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
    for params in importing.values_list("params", flat=True):
        known |= {params.get("file"), params.get("rewritten")}
    cutoff = older_than.timestamp()
    for entry in os.scandir(folder):
        if entry.is_file() and entry.name not in known and entry.stat().st_mtime < cutoff:
            Path(entry.path).unlink(missing_ok=True)


# --- Import ------------------------------------------------------------------------------------


class ImportBusy(Busy):
    """The owner has an import queued or running already: imports run one at a time."""

    def __init__(self, operation):
        self.operation = operation
        ServiceError.__init__(
            self,
            f"You are importing {operation.target_name!r} already "
            f"({operation.get_state_display().lower()}); import the next image when it finishes.",
        )


def too_big_message() -> str:
    return (
        f"The file is larger than the {size_text(settings.IMPORT_MAX_MIB * 1024 * 1024)} "
        "an import may upload."
    )


def quarantine_full_message() -> str:
    return (
        "The service is short of space for uploads right now, so the import was refused; "
        "try again later."
    )


def import_image_default() -> Image | None:
    """The image an imported disk boots with unless the user chooses: the busybox one."""
    from vms.image_upload import BUSYBOX_SLUG

    images = Image.objects.filter(is_public=True)
    return images.filter(slug=BUSYBOX_SLUG).first() or images.first()


def import_bytes_left(owner) -> int:
    """What the owner's plan has left: its bytes less what the owner's snapshots and exports
    take (`usage_for`, the one count every plan check uses)."""
    usage = usage_for(owner)
    return max(0, usage.plan.max_snapshot_bytes - usage.snapshot_bytes)


def upload_allowance(bytes_left: int) -> int:
    """The largest upload worth receiving for a plan with `bytes_left`: a disk that fits, plus
    room for a qcow2's own tables."""
    return bytes_left + bytes_left // 64 + 16 * 1024 * 1024


def import_room_check(owner, *, needs: int, what: str) -> None:
    """Refuse an image whose `what` (a sentence's subject, e.g. "The image's disk") is `needs`
    bytes, more than the owner's plan has left."""
    left = import_bytes_left(owner)
    if needs > left:
        plan = usage_for(owner).plan
        raise LimitExceeded(
            f"{what} is {size_text(needs)}, more than the {size_text(left)} your "
            f"{plan.name} plan has left; delete a snapshot (or wait for an export to expire) "
            "to make room, or import a smaller disk."
        )


def _import_busy_check(owner) -> None:
    active = (
        Operation.objects.active()
        .filter(owner=owner, kind=TransferOperationKind.IMPORT)
        .order_by("created_at")
        .first()
    )
    if active is not None:
        raise ImportBusy(active)


def snapshot_import_admit(*, owner) -> int:
    """Whether `owner` may upload an image now, asked before the request's body is read: the
    quarantine has room, no import of theirs is under way, and the plan has room for a snapshot.
    Returns the largest upload worth receiving (see `upload_allowance`)."""
    if not quarantine.has_room():
        raise Unavailable(quarantine_full_message())
    _import_busy_check(owner)
    snapshot_limit_check(owner)
    return upload_allowance(import_bytes_left(owner))


def upload_check(handler: quarantine.QuarantineUploadHandler) -> None:
    """Refuse a request whose upload the quarantine stopped, saying why."""
    if handler.files > 1:
        raise ValidationError(
            {"file": f"Send one file per import; this request carried {handler.files} files."}
        )
    if handler.low_space:
        raise Unavailable(quarantine_full_message())
    if handler.too_big:
        raise ValidationError({"file": too_big_message()})
    if handler.over_plan:
        raise LimitExceeded(
            f"The file is larger than the {size_text(handler.plan_limit or 0)} your plan "
            "has room for; delete a snapshot (or wait for an export to expire) to make room, or "
            "import a smaller disk."
        )


def file_name_shown(name: str) -> str:
    """An uploaded file's name as pages show it: its last part, printable characters only,
    shortened to what a snapshot keeps."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    limit = Snapshot._meta.get_field("imported_from").max_length
    return name if len(name) <= limit else name[: limit - 1] + "…"


def snapshot_import(
    *,
    owner,
    upload: Path,
    fmt: str,
    name: str,
    image: Image | None = None,
    description: str = "",
    file_name: str = "",
    requester=None,
    idempotency_key: str | None = None,
) -> Operation:
    """Record the import of an uploaded disk image (in quarantine) as a new snapshot of `owner`
    booting with `image`'s kernel; the worker running the returned operation checks the image,
    rewrites it and brings it into the pool (`transfers.jobs.import_run`).

    Only the file's header is read here. Refusals are `ValidationError`s on `file`, or
    `LimitExceeded` / `ImportBusy`, saying why. `upload` is deleted in every case; the
    operation keeps a name of its own for the file; `file_name`, the name the person's file had,
    is kept (shortened, printable) only to say where the snapshot came from.
    """
    kept = None
    try:
        name = clean_name(name, what="snapshot name")
        description = clean_description(description)
        image = image or import_image_default()
        if image is None or not image.is_public:
            raise ValidationError({"image": "Choose one of the images offered."})
        try:
            disk_images.check_magic(upload, fmt)
        except disk_images.RefusedImage as exc:
            raise ValidationError({"file": str(exc)}) from None
        declared = disk_images.declared_size(upload, fmt)
        if declared > VM.MAX_DISK_BYTES:
            raise ValidationError(
                {
                    "file": f"The image's disk is {size_text(declared)}; the largest disk a "
                    f"VM may have is {size_text(VM.MAX_DISK_BYTES)}."
                }
            )
        kept = quarantine.keep(upload)
        with transaction.atomic():
            lock_owner(owner)
            _import_busy_check(owner)
            snapshot_limit_check(owner)
            import_room_check(owner, needs=declared, what="The image's disk")
            snapshot = Snapshot.objects.create(
                owner=owner,
                source_vm=None,
                source_vm_name="",
                image=image,
                name=name,
                description=description,
                kind=SnapshotKind.IMPORTED,
                imported_from=file_name_shown(file_name),
                imported_by=requester or owner,
                disk_bytes=declared,
                size_bytes=0,  # counted once the worker knows it (see `import_recorded`)
            )
            operation = operation_start(
                kind=TransferOperationKind.IMPORT,
                owner=owner,
                requester=requester,
                subject=snapshot,
                target_name=name,
                params={
                    "file": kept.name,
                    "rewritten": kept.with_suffix(".qcow2").name,
                    "format": fmt,
                    "host": image.host_id,
                },
                idempotency_key=idempotency_key,
            )
        return operation
    except BaseException:
        if kept is not None:
            kept.unlink(missing_ok=True)
        raise
    finally:
        upload.unlink(missing_ok=True)


def import_recorded(*, snapshot: Snapshot, size: int, virtual_size: int) -> None:
    """Count the rewritten image's `size` against the owner's plan (refused when it no longer
    fits: something else may have used the room since the import was asked for)."""
    owner = snapshot.owner
    with transaction.atomic():
        lock_owner(owner)
        import_room_check(owner, needs=size, what="The rewritten image")
        Snapshot.objects.filter(pk=snapshot.pk).update(size_bytes=size, disk_bytes=virtual_size)
