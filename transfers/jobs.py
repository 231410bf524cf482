"""What a worker does for exports and imports. Called by `operations.services.operation_run`."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import OperationFailed
from core.sizes import size_text
from operations.models import Operation
from operations.services import bytes_reporter, operation_report, operation_reporter
from snapshots.browse import layer_file, snapshot_chain
from snapshots.models import Snapshot, SnapshotState
from transfers import disk_images, quarantine, services
from transfers.models import Export, ExportState, TransferOperationKind
from vms import hypervisor
from vms.models import VM, Host, Layer, LayerState


def export_run(operation: Operation) -> dict:
    export = Export.objects.filter(pk=operation.params.get("export")).first()
    if export is None:
        raise OperationFailed("The export was deleted before it was made.")
    if export.state != ExportState.CREATING:
        return {"export": str(export.pk)}  # done by an earlier delivery
    try:
        snapshot = Snapshot.objects.filter(pk=export.snapshot_id).first()
        if snapshot is None:
            raise OperationFailed("The snapshot was deleted before it could be exported.")
        chain = snapshot_chain(snapshot)
        host = chain[-1].host
        if not hypervisor.uri_is_local(host.libvirt_uri):
            raise OperationFailed(
                f"The snapshot's disk is on {host.name}, another machine; it can only be "
                "exported there."
            )
        operation_report(operation, progress=10, message="Writing the disk into one file")
        folder = export.path.parent
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        part = export.path.with_suffix(".part")
        try:
            report = operation_reporter(
                operation, start=10, span=78, message="Writing the disk into one file"
            )
            disk_images.export_chain(
                [str(layer_file(layer)) for layer in chain],
                part,
                on_progress=lambda done: report(done, f"{int(done * 100)}%"),
            )
        except RuntimeError as exc:
            raise OperationFailed(f"The export could not be written: {exc}") from None
        part.replace(export.path)
        size = export.path.stat().st_size
        operation_report(operation, progress=90, message=f"Ready for download ({size_text(size)})")
        now = timezone.now()
        Export.objects.filter(pk=export.pk).update(
            state=ExportState.READY,
            size_bytes=size,
            virtual_size=disk_images.virtual_size(export.path),
            expires_at=now + timedelta(hours=settings.EXPORT_HOURS),
        )
    except BaseException as exc:
        _export_failed(export, getattr(exc, "message", "The export could not be made."))
        raise
    return {"export": str(export.pk), "size_bytes": size}


def _export_failed(export: Export, error: str) -> None:
    export.path.with_suffix(".part").unlink(missing_ok=True)
    export.path.unlink(missing_ok=True)
    Export.objects.filter(pk=export.pk, state=ExportState.CREATING).update(
        state=ExportState.FAILED, error=error, size_bytes=0
    )


def import_run(operation: Operation) -> dict:
    """Check the uploaded image (in quarantine), measure it against what the owner's plan has
    left, rewrite it as a qcow2 of the service's own making and bring that into the pool as a
    new root layer, made the snapshot's. Every `qemu-img` run on the upload is bounded (see
    `_limits`). The quarantine files are deleted, and the snapshot of a failed import too,
    whatever happens."""
    upload = quarantine.folder() / operation.params["file"]
    rewritten = quarantine.folder() / operation.params.get("rewritten", "missing")
    try:
        snapshot = Snapshot.objects.select_related("owner").filter(pk=operation.subject_pk).first()
        if snapshot is None:
            raise OperationFailed("The snapshot was deleted before it was imported.")
        if snapshot.state != SnapshotState.CREATING:
            return {"snapshot": str(snapshot.pk)}  # done by an earlier delivery
        try:
            _rewrite(operation, snapshot, upload, rewritten)
            layer = _upload(operation, rewritten)
        except BaseException:
            snapshot.delete()
            raise
        Snapshot.objects.filter(pk=snapshot.pk).update(
            layer=layer, size_bytes=layer.allocation, state=SnapshotState.READY
        )
    finally:
        upload.unlink(missing_ok=True)
        rewritten.unlink(missing_ok=True)
    return {"snapshot": str(snapshot.pk), "layer": str(layer.pk)}


def _limits(file_size: int = 0) -> disk_images.Limits:
    """The bounds of one `qemu-img` run on an upload: it may write `file_size` bytes into a
    file (0: none), and run IMPORT_TIMEOUT_SECONDS."""
    return disk_images.Limits(
        memory=disk_images.CONVERT_MEMORY,
        file_size=file_size,
        seconds=settings.IMPORT_TIMEOUT_SECONDS,
    )


def _rewrite(operation: Operation, snapshot: Snapshot, upload, rewritten) -> None:
    """Check the upload and write it anew into `rewritten`, refusing (with a sentence for the
    user) an image that is unsafe, or larger than the owner's plan has left, before the rewrite
    writes a byte."""
    if not upload.is_file():
        raise OperationFailed("The uploaded image is gone; upload it again.")
    fmt = operation.params["format"]
    owner = snapshot.owner
    operation_report(operation, progress=5, message="Checking the image")
    try:
        disk_images.check_magic(upload, fmt)
        info = disk_images.inspect(
            upload, fmt, max_virtual_size=VM.MAX_DISK_BYTES, limits=_limits()
        )
        services.import_room_check(owner, needs=info.virtual_size, what="The image's disk")
        operation_report(operation, progress=15, message="Measuring the image")
        required = disk_images.measure(upload, fmt, limits=_limits())
        services.import_room_check(
            owner, needs=required, what="Uncompressed and rewritten, the image"
        )
        margin = max(16 * 1024**2, required // 64)
        if not quarantine.has_room(required + margin):
            raise OperationFailed(services.quarantine_full_message())
        operation_report(operation, progress=20, message="Rewriting the image")
        disk_images.rewrite(upload, fmt, rewritten, limits=_limits(file_size=required + margin))
    except disk_images.RefusedImage as exc:
        raise OperationFailed(str(exc)) from None
    finally:
        upload.unlink(missing_ok=True)  # done with: from here on only the rewrite is read
    services.import_recorded(
        snapshot=snapshot,
        size=rewritten.stat().st_size,
        virtual_size=disk_images.virtual_size(rewritten),
    )


def _upload(operation: Operation, path) -> Layer:
    if not path.is_file():
        raise OperationFailed("The uploaded image is gone; upload it again.")
    host = Host.objects.get(pk=operation.params["host"])
    pool = host.pool_name
    message = "Copying the disk into storage"
    operation_report(operation, progress=30, message=message)
    report = operation_reporter(operation, start=30, span=60, message=message)
    # Recorded first (creating), so that the reconciler takes the volume for one of ours.
    layer = Layer.objects.create(
        id=uuid.uuid4(), host=host, virtual_size=disk_images.virtual_size(path)
    )
    Operation.objects.filter(pk=operation.pk).update(
        params={**operation.params, "layer": str(layer.pk)}
    )
    try:
        info = host.hypervisor.volume_upload(
            pool,
            layer.volume_name,
            str(path),
            on_bytes=bytes_reporter(report),
        )
        if info.backing_path:  # the file was written by the service: it never names one
            raise OperationFailed("The imported disk names a backing file; it was refused.")
    except BaseException:
        host.hypervisor.volume_delete(pool, layer.volume_name)
        layer.delete()
        raise
    with transaction.atomic():
        Layer.objects.filter(pk=layer.pk).update(
            state=LayerState.READY, allocation=info.allocation, virtual_size=info.capacity
        )
    layer.refresh_from_db()
    return layer


def transfer_operation_repair(operation: Operation) -> str:
    """Resolve an export or import whose worker died half-way; say what was done."""
    if operation.kind == TransferOperationKind.EXPORT:
        export = Export.objects.filter(pk=operation.params.get("export")).first()
        if export is not None and export.state == ExportState.CREATING:
            _export_failed(export, "The export was cut short; export the snapshot again.")
        return "The export was not made; nothing of it was kept."
    for name in ("file", "rewritten"):
        (quarantine.folder() / operation.params.get(name, "missing")).unlink(missing_ok=True)
    snapshot = Snapshot.objects.filter(
        pk=operation.subject_pk, state=SnapshotState.CREATING
    ).first()
    layer_id = operation.params.get("layer")
    if snapshot is None:
        return "Nothing was left to repair."
    snapshot.delete()
    layer = Layer.objects.select_related("host").filter(pk=layer_id).first() if layer_id else None
    if layer is not None and not layer.snapshots.exists():
        layer.host.hypervisor.volume_delete(layer.host.pool_name, layer.volume_name)
        layer.delete()
    return "The import was not finished; nothing of it was kept. Upload the image again."
