"""What a worker does for each snapshot operation. Called by `operations.services.operation_run`.

Taking a snapshot makes a new empty layer on top of the VM's active layer and switches the disk
onto it (for a running guest, an external disk-only snapshot in libvirt; the guest pauses for
milliseconds): the old active layer, no longer written to, becomes the snapshot's. Restoring
makes a new empty layer on top of the snapshot's layer and points the VM's disk at it. Neither
copies data, so neither costs more for a bigger disk.

A snapshot with memory also saves the running guest's memory into a file of its own (a volume
named by the snapshot's id, in the pool of its layer), while the guest runs, switching the disk
at the moment the memory is complete. libvirt 9.0 cannot revert such a snapshot, so the restore
is done here: the memory is resumed onto a new empty layer on the snapshot's layer, the very
disk it was saved with, never any other.
"""

from __future__ import annotations

from django.db import transaction

from core.errors import OperationFailed
from operations.failpoints import failpoint
from operations.models import Operation
from operations.services import operation_report
from snapshots.models import (
    Snapshot,
    SnapshotKind,
    SnapshotOperationKind,
    SnapshotState,
)
from snapshots.services import snapshot_forget
from vms import hypervisor, layers
from vms.jobs import creation_failed, domain_define, vm_build, vm_operation_repair, vm_sync_state
from vms.models import VM, Host, Layer, VMState, vm_id_of_lock
from vms.services import layers_merge_pending

AGENT_UNANSWERED = (
    "The guest agent did not answer in time, so the file systems were not frozen: the "
    "snapshot is crash-consistent."
)


def _vm(operation: Operation) -> VM:
    if vm_id_of_lock(operation.lock) is None:
        raise OperationFailed("The VM no longer exists.")
    return VM.objects.select_related("host", "image", "active_layer__host").get(
        pk=vm_id_of_lock(operation.lock)
    )


def _running(vm: VM) -> bool:
    return vm.host.hypervisor.domain_state(vm.domain_uuid) == "running"


def snapshot_take_run(operation: Operation) -> dict:
    vm = _vm(operation)
    snapshot = Snapshot.objects.filter(pk=operation.subject_pk).first()
    if snapshot is None:
        raise OperationFailed("The snapshot was deleted before it could be taken.")
    if snapshot.state != SnapshotState.CREATING:
        return {"snapshot": str(snapshot.pk)}  # done by an earlier delivery
    memory = snapshot.memory_volume if snapshot.includes_memory else None
    try:
        frozen, quiesced = switch_to_new_layer(vm, operation, memory_volume=memory)
    except BaseException:
        snapshot.delete()
        if memory:
            memory_free(vm.host, memory)
        raise
    memory_bytes = memory_size(vm.host, memory) if memory else 0
    with transaction.atomic():
        Snapshot.objects.filter(pk=snapshot.pk).update(
            layer=frozen,
            parent=vm.current_snapshot_id,
            quiesced=quiesced,
            memory_bytes=memory_bytes,
            size_bytes=frozen.allocation + memory_bytes,
            state=SnapshotState.READY,
        )
        VM.objects.filter(pk=vm.pk).update(current_snapshot=snapshot)
    result = {"snapshot": str(snapshot.pk), "quiesced": quiesced, "memory_bytes": memory_bytes}
    if operation.params.get("agent_unanswered"):
        result["consistency"] = AGENT_UNANSWERED
    return result


def snapshot_fork_run(operation: Operation) -> dict:
    """Take the snapshot with memory, then resume each new VM from it (`vms.jobs.vm_build`:
    a new layer on the snapshot's, then its memory restored as that VM). A new VM that fails
    is left failed with its reason, holding nothing on its host; the others run. The result
    names the new VMs that run (`vms`, their ids)."""
    taken = snapshot_take_run(operation)
    children = list(
        VM.objects.select_related(
            "host", "image", "owner", "active_layer__host", "source_snapshot__layer__host"
        )
        .filter(pk__in=operation.params.get("children", []))
        .order_by("name")
    )
    started, failed = [], []
    for index, child in enumerate(children):
        if child.state != VMState.CREATING:
            started.append(str(child.pk))  # done by an earlier delivery
            continue
        operation_report(
            operation,
            progress=80 + 19 * index // max(len(children), 1),
            message=f"Resuming {child.name} ({index + 1} of {len(children)})",
        )
        try:
            vm_build(child, operation, report=False)
        except (hypervisor.HypervisorError, OperationFailed) as exc:
            failed.append(f"{child.name}: {exc}")
            continue
        started.append(str(child.pk))
    if failed:
        raise OperationFailed(
            f"{len(started)} of {len(children)} new VMs started; " + "; ".join(failed)
        )
    return {**taken, "vms": started}


def _repair_fork(operation: Operation, vm: VM | None) -> str:
    """A fork cut short: its snapshot is recorded or dropped as a take's would be, and each new
    VM that had not started is removed, with what it had made on its host."""
    said = _repair_take(operation, vm) if operation.started_at else ""
    if operation.started_at is None:
        Snapshot.objects.filter(pk=operation.subject_pk, state=SnapshotState.CREATING).delete()
    removed = 0
    for child in VM.objects.select_related("host").filter(
        pk__in=operation.params.get("children", []), state=VMState.CREATING
    ):
        creation_failed(child)
        VM.objects.filter(pk=child.pk).delete()
        removed += 1
    plural = "s" if removed != 1 else ""
    return f"{said} {removed} new VM{plural} that had not started removed.".strip()


def memory_free(host: Host, volume: str) -> None:
    """Delete a memory file (already gone is fine)."""
    host.hypervisor.volume_delete(host.pool_name, volume)


def memory_size(host: Host, volume: str) -> int:
    return host.hypervisor.volume_info(host.pool_name, volume).allocation


def switch_to_new_layer(
    vm: VM, operation: Operation, *, memory_volume: str | None = None
) -> tuple[Layer, bool]:
    """Put a new empty layer on top of the VM's disk and make it the one written to; with
    `memory_volume`, save the running guest's memory into that new volume at the same moment.

    Returns the old active layer (now read-only, with its final size recorded) and whether
    the guest's file systems were quiesced.
    """
    old = vm.active_layer
    operation_report(operation, progress=20, message="Preparing a new disk layer")
    new = layers.layer_create(host=vm.host, parent=old, virtual_size=old.virtual_size)
    quiesced = False
    running = _running(vm)
    try:
        if memory_volume and not running:
            raise OperationFailed(
                f"VM {vm.name!r} stopped before its memory could be kept; the snapshot was not "
                "taken. Start it and take the snapshot again, or take one without memory."
            )
        if memory_volume:
            # Made through the storage API, so that the pool knows it (and a remote host works);
            # libvirt then writes the memory into it.
            memory = vm.host.hypervisor.volume_create(
                vm.host.pool_name, memory_volume, capacity=0, fmt="raw"
            )
            operation_report(operation, progress=40, message="Saving the memory and the disk")
            vm.host.hypervisor.domain_snapshot_disk(
                vm.domain_uuid,
                layers.layer_path(new),
                quiesce=False,
                memory_path=memory.path,
            )
            failpoint("snapshot.take.switched")
        elif running:
            adapter = vm.host.hypervisor
            quiesced = adapter.domain_agent_connected(vm.domain_uuid)
            if quiesced and not adapter.domain_agent_answers(vm.domain_uuid):
                # Never ask a hung agent to freeze: it would do so whenever it woke up.
                quiesced = False
                operation.params = {**operation.params, "agent_unanswered": True}
                Operation.objects.filter(pk=operation.pk).update(params=operation.params)
                operation_report(operation, progress=45, message=AGENT_UNANSWERED)
            operation_report(
                operation,
                progress=50,
                message="Freezing the disk" + (" (file systems quiesced)" if quiesced else ""),
            )
            try:
                vm.host.hypervisor.domain_snapshot_disk(
                    vm.domain_uuid, layers.layer_path(new), quiesce=quiesced
                )
            except hypervisor.HypervisorError:
                if not quiesced:
                    raise
                # The agent did not freeze the file systems in time (it hung, or the guest is
                # too busy): the snapshot is taken crash-consistent, and says so.
                quiesced = False
                operation.params = {**operation.params, "agent_unanswered": True}
                Operation.objects.filter(pk=operation.pk).update(params=operation.params)
                operation_report(operation, progress=55, message=AGENT_UNANSWERED)
                vm.host.hypervisor.domain_snapshot_disk(
                    vm.domain_uuid, layers.layer_path(new), quiesce=False
                )
            failpoint("snapshot.take.switched")
    except BaseException:
        layers.layer_release(new.pk)
        raise
    VM.objects.filter(pk=vm.pk).update(active_layer=new)
    vm.active_layer = new
    operation_report(operation, progress=80, message="Recording the snapshot")
    if not running or memory_volume:
        # A stopped VM boots from the new layer next time. (For a running one, libvirt has
        # already written the new layer into the persistent definition too; after a memory
        # snapshot it is written again, to be sure of it.)
        domain_define(vm)
    return layers.layer_freeze(old), quiesced


def snapshot_restore_run(operation: Operation) -> dict:
    vm = _vm(operation)
    snapshot = (
        Snapshot.objects.select_related("layer__host").filter(pk=operation.subject_pk).first()
    )
    if snapshot is None or snapshot.layer is None:
        raise OperationFailed("The snapshot was deleted before it could be restored.")
    # Decided with the request: only onto the VM the memory was saved from.
    memory = bool(operation.params.get("memory")) and snapshot.includes_memory
    was_running = _running(vm)
    Operation.objects.filter(pk=operation.pk).update(
        params={**operation.params, "was_running": was_running}
    )
    if was_running:
        # With memory, the running guest is set aside for the saved one: nothing boots.
        operation_report(
            operation,
            progress=10,
            message="Setting the running guest aside for the saved one"
            if memory
            else "Stopping the VM",
        )
        vm.host.hypervisor.domain_destroy(vm.domain_uuid)
    operation_report(operation, progress=30, message="Keeping the current disk for undo")
    old = vm.active_layer
    with transaction.atomic():
        undo = Snapshot.objects.create(
            owner=vm.owner,
            source_vm=vm,
            source_vm_name=vm.name,
            image=vm.image,
            name=f"Before restoring {snapshot.name}"[: Snapshot.NAME_MAX],
            description="Taken automatically by a restore; restore it to undo that restore.",
            kind=SnapshotKind.BEFORE_RESTORE,
            layer=old,
            parent_id=vm.current_snapshot_id,
            disk_bytes=vm.disk_bytes,
            state=SnapshotState.READY,
        )
    failpoint("snapshot.restore.stopped")
    operation_report(operation, progress=50, message=f"Putting back {snapshot.name}")
    new = layers.layer_create(
        host=vm.host, parent=snapshot.layer, virtual_size=max(vm.disk_bytes, snapshot.disk_bytes)
    )
    with transaction.atomic():
        # Recorded with the switch itself, so that a repair knows whether it happened.
        VM.objects.filter(pk=vm.pk).update(active_layer=new, current_snapshot=snapshot)
        Operation.objects.filter(pk=operation.pk).update(
            params={**operation.params, "was_running": was_running, "new_layer": str(new.pk)}
        )
    vm.active_layer = new
    domain_define(vm)
    failpoint("snapshot.restore.switched")
    frozen = layers.layer_freeze(old)
    Snapshot.objects.filter(pk=undo.pk).update(size_bytes=frozen.allocation)
    _drop_older_undo_snapshots(vm, keep=undo)
    if memory:
        operation_report(operation, progress=85, message="Resuming the saved memory")
        memory_resume(vm, snapshot, new)
    elif was_running:
        operation_report(operation, progress=85, message="Booting")
        vm.host.hypervisor.domain_start(vm.domain_uuid)
    vm_sync_state(vm)
    return {"undo_snapshot": str(undo.pk), "memory": memory}


def memory_resume(vm: VM, snapshot: Snapshot, new: Layer) -> None:
    """Resume the guest from the snapshot's memory on `new`, a layer built on the snapshot's.

    The domain's persistent definition already names `new` (`domain_define`), so a later boot
    uses it too; the running guest gets the definition saved with its memory, its disk moved
    from the snapshot's layer to `new`.
    """
    host = vm.host
    # The memory file stays on the host the snapshot was taken on; a VM moved since resumes from
    # a copy on its new host, deleted once read (QEMU has it all in memory then).
    saved_on = snapshot.layer.host
    copied = saved_on.pk != host.pk and snapshot.memory_volume not in host.hypervisor.volume_names(
        host.pool_name
    )
    if copied:
        saved_on.hypervisor.volume_transfer(
            saved_on.pool_name, host.hypervisor, host.pool_name, snapshot.memory_volume
        )
    try:
        host.hypervisor.domain_restore_memory(
            vm.domain_uuid,
            host.hypervisor.volume_info(host.pool_name, snapshot.memory_volume).path,
            saved_disk_path=layers.layer_path(snapshot.layer, host),
            disk_path=layers.layer_path(new),
        )
    finally:
        if copied:
            memory_free(host, snapshot.memory_volume)


def _drop_older_undo_snapshots(vm: VM, *, keep: Snapshot) -> None:
    """A VM keeps one automatic "before restore" snapshot: the latest."""
    older = Snapshot.objects.filter(source_vm=vm, kind=SnapshotKind.BEFORE_RESTORE).exclude(
        pk=keep.pk
    )
    for snapshot in older:
        if Operation.objects.active().about(snapshot).exists():
            continue
        layer_id = snapshot.layer_id
        snapshot_forget(snapshot)
        if layer_id:
            layers.layer_release(layer_id)


def snapshot_delete_run(operation: Operation) -> dict:
    """Free the deleted snapshot's memory file, and its layer and those under it where nothing
    needs them."""
    memory = operation.params.get("memory")
    if memory:
        host = Host.objects.filter(pk=memory["host"]).first()
        if host is not None:
            memory_free(host, memory["volume"])
    layer_id = operation.params.get("layer")
    freed = layers.layer_release(layer_id) if layer_id else []
    # A layer that only one layer builds on now is merged into it: the chain gets shorter.
    merging = layers_merge_pending()
    return {"freed_layers": len(freed), "freed_memory": bool(memory), "merges": len(merging)}


def snapshot_operation_repair(operation: Operation) -> str:
    """Resolve a snapshot operation whose worker died half-way; say what was done."""
    vm = VM.objects.select_related("host", "image", "active_layer").filter(
        pk=vm_id_of_lock(operation.lock)
    )
    vm = vm.first()
    if operation.started_at is None and operation.kind in (
        SnapshotOperationKind.TAKE,
        SnapshotOperationKind.RESTORE,
    ):
        # Failed while queued (an admin's "mark failed"): no worker touched anything yet.
        if operation.kind == SnapshotOperationKind.TAKE:
            Snapshot.objects.filter(pk=operation.subject_pk, state=SnapshotState.CREATING).delete()
            return "It had not started; the snapshot was not taken."
        return "It had not started; the VM keeps its disk."
    if operation.kind == SnapshotOperationKind.TAKE:
        return _repair_take(operation, vm)
    if operation.kind == SnapshotOperationKind.FORK:
        return _repair_fork(operation, vm)
    if operation.kind == SnapshotOperationKind.RESTORE and vm is not None:
        return _repair_restore(operation, vm)
    if operation.kind == SnapshotOperationKind.DELETE:
        snapshot_delete_run(operation)
        return "The snapshot's disk space was freed where nothing needed it."
    return vm_operation_repair(operation)


def _repair_take(operation: Operation, vm: VM | None) -> str:
    snapshot = Snapshot.objects.filter(pk=operation.subject_pk).first()
    if snapshot is None or snapshot.state != SnapshotState.CREATING:
        return vm_sync_state(vm) if vm else "Nothing was left to repair."
    if vm is None:
        snapshot.delete()
        return "The snapshot was not taken."
    live_path = None
    if _running(vm):
        live_path = vm.host.hypervisor.domain_disk_path(vm.domain_uuid)
    # Did the disk already switch onto a new layer built on the active one? Then roll forward.
    switched = (
        Layer.objects.filter(parent=vm.active_layer)
        .filter(created_at__gte=operation.started_at)
        .order_by("-created_at")
        .first()
    )
    if switched is not None and live_path and live_path.endswith(switched.volume_name):
        old = vm.active_layer
        VM.objects.filter(pk=vm.pk).update(active_layer=switched, current_snapshot=snapshot)
        vm.active_layer = switched
        domain_define(vm)
        frozen = layers.layer_freeze(old)
        # The disk switches only once the memory is complete, so a switched disk means a whole
        # memory file.
        memory_bytes = 0
        if snapshot.includes_memory:
            try:
                memory_bytes = memory_size(vm.host, snapshot.memory_volume)
            except hypervisor.VolumeNotFound:
                snapshot.includes_memory = False
        Snapshot.objects.filter(pk=snapshot.pk).update(
            layer=frozen,
            parent=vm.current_snapshot_id,  # as recorded before the roll forward
            includes_memory=snapshot.includes_memory,
            memory_bytes=memory_bytes,
            size_bytes=frozen.allocation + memory_bytes,
            state=SnapshotState.READY,
        )
        vm_sync_state(vm)
        return "The snapshot had been taken; it was recorded."
    snapshot.delete()
    if snapshot.includes_memory:
        memory_free(vm.host, snapshot.memory_volume)
    if switched is not None:
        layers.layer_release(switched.pk)
    return "The snapshot was not taken; nothing of it was kept. " + vm_sync_state(vm)


def _repair_restore(operation: Operation, vm: VM) -> str:
    restored = str(vm.active_layer_id) == operation.params.get("new_layer")
    if restored:
        domain_define(vm)
        message = "The restore had switched the disk; it was completed."
        if operation.params.get("memory") and not _running(vm):
            message += " " + _repair_memory_resume(operation, vm)
    else:
        # The disk was not switched: an undo snapshot of the unchanged disk is not needed.
        Snapshot.objects.filter(
            source_vm=vm,
            kind=SnapshotKind.BEFORE_RESTORE,
            layer=vm.active_layer,
            created_at__gte=operation.started_at,
        ).delete()
        message = "The restore had not switched the disk; the VM keeps its disk."
    if operation.params.get("was_running") and not _running(vm):
        vm.host.hypervisor.domain_start(vm.domain_uuid)
    return f"{message} {vm_sync_state(vm)}"


def _repair_memory_resume(operation: Operation, vm: VM) -> str:
    """Finish a restore with memory whose disk had switched but whose guest was not resumed.

    The memory is resumed only onto a disk nothing has written to since the restore made it:
    otherwise the guest's memory and its disk would disagree. Then the VM boots instead.
    """
    snapshot = (
        Snapshot.objects.select_related("layer__host").filter(pk=operation.subject_pk).first()
    )
    usable = snapshot is not None and snapshot.layer is not None
    if usable and layers.layer_unwritten(vm.active_layer):
        memory_resume(vm, snapshot, vm.active_layer)
        return "The saved memory was resumed."
    vm.host.hypervisor.domain_start(vm.domain_uuid)
    return (
        "The VM booted from the snapshot's disk (its saved memory could not be resumed); "
        "restore the snapshot again to resume its programs."
    )
