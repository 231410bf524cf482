"""Business rules for snapshots: take, restore, new VM from a snapshot, rename, delete.

Each long action is an Operation on the VM it changes (one at a time per VM), run by a worker
through `snapshots.jobs`. Limits are checked with the owner's row locked, so a burst of
parallel requests can never take more than the plan allows.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import InvalidState, LimitExceeded
from core.sizes import size_text
from operations.models import Operation
from operations.services import operation_start, operation_subject_set
from snapshots.models import Snapshot, SnapshotKind, SnapshotOperationKind, SnapshotState
from snapshots.selectors import usage_for
from vms.models import VM, Layer, VMState
from vms.placement import host_place
from vms.services import (
    GIB,
    clean_name,
    lock_owner,
    vm_limit_check,
    vm_name_check,
    vm_validate_size,
)


def clean_description(description: str | None) -> str:
    description = (description or "").strip()
    if len(description) > Snapshot.DESCRIPTION_MAX:
        raise ValidationError(
            {"description": f"Keep the description to {Snapshot.DESCRIPTION_MAX} characters."}
        )
    if "\x00" in description:
        raise ValidationError({"description": "The description contains a NUL character."})
    return description


def snapshot_limit_check(owner) -> None:
    """Refuse when the owner's plan has no room for another snapshot. Call with the owner locked."""
    usage = usage_for(owner)
    plan = usage.plan
    if usage.snapshots >= plan.max_snapshots:
        if plan.max_snapshots == 0:
            raise LimitExceeded(
                f"Your {plan.name} plan does not include snapshots; "
                "ask an administrator for a plan that does."
            )
        raise LimitExceeded(
            f"Your {plan.name} plan allows {plan.max_snapshots} snapshot"
            f"{'s' if plan.max_snapshots != 1 else ''} and you have {usage.snapshots}; "
            "delete one to make room."
        )
    if usage.snapshot_bytes >= plan.max_snapshot_bytes:
        raise LimitExceeded(
            f"Your snapshots take {size_text(usage.snapshot_bytes)}, the most your "
            f"{plan.name} plan allows ({size_text(plan.max_snapshot_bytes)}); "
            "delete one to make room."
        )


def snapshot_take(
    *,
    vm: VM,
    user,
    name: str,
    description: str = "",
    idempotency_key: str | None = None,
    kind: str = SnapshotKind.MANUAL,
    include_memory: bool = False,
) -> Operation:
    """Freeze the VM's whole disk now, running or not. Recorded now, done by a worker.
    `kind` says who asked: the user (manual) or the VM's snapshot policy (scheduled).
    With `include_memory` (a running VM only) the guest's memory is kept too, so that a restore
    of this VM resumes its programs where they were instead of booting."""
    name = clean_name(name, what="snapshot name")
    description = clean_description(description)
    with transaction.atomic():
        lock_owner(vm.owner)
        operation = operation_start(
            kind=SnapshotOperationKind.TAKE,
            owner=vm.owner,
            requester=user,
            lock=vm.lock,
            target_name=f"{vm.name}: {name}",
            idempotency_key=idempotency_key,
        )
        current = VM.objects.get(pk=vm.pk)
        if current.state not in (VMState.RUNNING, VMState.STOPPED):
            raise InvalidState(
                f"VM {vm.name!r} is {current.get_state_display().lower()}; "
                "a snapshot needs a VM that is running or stopped."
            )
        if include_memory and current.state != VMState.RUNNING:
            raise InvalidState(
                f"VM {vm.name!r} is {current.get_state_display().lower()}, so it has no memory "
                "to keep; take a snapshot without memory, or start the VM first."
            )
        _snapshot_record(vm, operation, name, description, kind=kind, include_memory=include_memory)
    return operation


def _snapshot_record(vm: VM, operation, name, description, *, kind, include_memory) -> Snapshot:
    """Record the snapshot an operation is about to take of `vm`, once the plan has room for
    it (called with the owner locked)."""
    snapshot_limit_check(vm.owner)
    snapshot = Snapshot.objects.create(
        owner=vm.owner,
        source_vm=vm,
        source_vm_name=vm.name,
        image_id=vm.image_id,
        name=name,
        description=description,
        kind=kind,
        disk_bytes=vm.disk_bytes,
        includes_memory=bool(include_memory),
    )
    operation_subject_set(operation, snapshot)
    return snapshot


def _ready(snapshot: Snapshot) -> Snapshot:
    """Lock the snapshot's row and make sure it can be used."""
    locked = Snapshot.objects.select_for_update().filter(pk=snapshot.pk).first()
    if locked is None or locked.state == SnapshotState.DELETING:
        raise InvalidState("This snapshot has been deleted.")
    if locked.state == SnapshotState.CREATING:
        raise InvalidState(
            f"Snapshot {locked.name!r} is still being created; try again when it is ready."
        )
    if locked.state != SnapshotState.READY:
        raise InvalidState(f"Snapshot {locked.name!r} failed and cannot be used; delete it.")
    return locked


def snapshot_restore(
    *, snapshot: Snapshot, user, vm: VM | None = None, idempotency_key: str | None = None
) -> Operation:
    """Put the VM's disk back to the snapshot. Undoable: the current disk is kept first as an
    automatic "before restore" snapshot. A running VM is running again afterwards.

    A snapshot with memory restored onto its own VM resumes the guest as it was at the
    snapshot, programs running, without a reboot (even if the VM was stopped). Onto another
    VM only its disk is put back and that VM boots: memory is only ever paired with the disk
    it was saved with, in the VM it was saved from."""
    vm = vm or snapshot.source_vm
    if vm is None:
        raise InvalidState(
            f"The VM snapshot {snapshot.name!r} was taken of no longer exists; "
            "start a new VM from the snapshot instead."
        )
    if vm.owner_id != snapshot.owner_id:
        raise InvalidState("A snapshot can only be restored onto a VM of its owner.")
    if vm.image_id != snapshot.image_id:
        raise InvalidState(
            f"Snapshot {snapshot.name!r} was taken of a VM with another image than "
            f"{vm.name!r}; start a new VM from it instead."
        )
    with transaction.atomic():
        snapshot = _ready(snapshot)
        memory = snapshot.includes_memory and snapshot.source_vm_id == vm.pk
        operation = operation_start(
            kind=SnapshotOperationKind.RESTORE,
            owner=vm.owner,
            requester=user,
            lock=vm.lock,
            subject=snapshot,
            target_name=f"{vm.name}: {snapshot.name}",
            params={"snapshot": str(snapshot.pk), "memory": memory},
            idempotency_key=idempotency_key,
        )
        current = VM.objects.get(pk=vm.pk)
        if current.state not in (VMState.RUNNING, VMState.STOPPED):
            raise InvalidState(
                f"VM {vm.name!r} is {current.get_state_display().lower()}; "
                "a restore needs a VM that is running or stopped."
            )
    return operation


def snapshot_new_vm(
    *,
    snapshot: Snapshot,
    user,
    name: str,
    full_copy: bool = False,
    vcpus: int | None = None,
    memory_mib: int | None = None,
    idempotency_key: str | None = None,
    owner=None,
) -> Operation:
    """Start a new VM whose disk begins as the snapshot's: a new layer on it (instant), or with
    `full_copy` an independent copy of the whole disk.

    The VM is the snapshot owner's, or `owner`'s: an app above that lets other users start VMs
    from a snapshot passes the user it has checked may (their plan's VM limit applies)."""
    owner = owner or snapshot.owner
    name = clean_name(name)
    source = snapshot.source_vm
    vcpus = vcpus or (source.vcpus if source else 1)
    memory_mib = memory_mib or (source.memory_mib if source else 256)
    disk_gib = max(1, -(-snapshot.disk_bytes // GIB))
    vm_validate_size(image=snapshot.image, vcpus=vcpus, memory_mib=memory_mib, disk_gib=disk_gib)
    vm_name_check(owner, name)
    try:
        with transaction.atomic():
            snapshot = _ready(snapshot)
            lock_owner(owner)
            vm_limit_check(owner)
            host = host_place(
                vcpus=vcpus,
                memory_mib=memory_mib,
                disk_bytes=max(snapshot.disk_bytes, GIB),
                layer=snapshot.layer,
            )
            vm = VM.objects.create(
                owner=owner,
                name=name,
                host=host,
                image=snapshot.image,
                vcpus=vcpus,
                memory_mib=memory_mib,
                disk_bytes=max(snapshot.disk_bytes, GIB),
                source_snapshot=snapshot,
            )
            operation = operation_start(
                kind=SnapshotOperationKind.NEW_VM,
                owner=owner,
                requester=user,
                lock=vm.lock,
                subject=snapshot,
                target_name=f"{name} from {snapshot.name}",
                params={"snapshot": str(snapshot.pk), "full_copy": bool(full_copy)},
                idempotency_key=idempotency_key,
            )
            return operation
    except IntegrityError:
        vm_name_check(owner, name)
        raise


FORK_MAX = 10


def fork_names(vm: VM, count: int) -> list[str]:
    """Names for `count` forks of `vm` that its owner has not used: <name>-1, <name>-2, …"""
    taken = set(VM.objects.filter(owner=vm.owner_id).values_list("name", flat=True))
    base = vm.name[: VM._meta.get_field("name").max_length - 4]
    names, number = [], 1
    while len(names) < count:
        if f"{base}-{number}" not in taken:
            names.append(f"{base}-{number}")
        number += 1
    return names


def vm_fork(*, vm: VM, user, count: int = 1, idempotency_key: str | None = None) -> Operation:
    """Fork a running VM: a snapshot with memory of it, and `count` new VMs (1 to FORK_MAX)
    that resume from it where the VM was, programs running, each under a name, address, MAC,
    machine-id and SSH host keys of its own. The VM itself goes on running. One operation on
    the VM; the new VMs and the snapshot count against the plan from the request on."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= FORK_MAX:
        raise ValidationError({"count": f"Choose between 1 and {FORK_MAX} new VMs."})
    if not vm.image.live_identity:
        raise InvalidState(
            f"The guests of {vm.image.name} cannot take a new identity while running, so "
            f"{vm.name!r} cannot be forked; take a snapshot with memory and start new VMs from "
            "it (they boot from its disk)."
        )
    name = f"Fork {timezone.now():%Y-%m-%d %H:%M:%S}"
    with transaction.atomic():
        lock_owner(vm.owner)
        operation = operation_start(
            kind=SnapshotOperationKind.FORK,
            owner=vm.owner,
            requester=user,
            lock=vm.lock,
            target_name=f"{vm.name}: {count} new VM{'s' if count != 1 else ''}",
            idempotency_key=idempotency_key,
        )
        current = VM.objects.select_related("active_layer").get(pk=vm.pk)
        if current.state != VMState.RUNNING:
            raise InvalidState(
                f"VM {vm.name!r} is {current.get_state_display().lower()}; only a running VM "
                "can be forked."
            )
        plural = "s" if count != 1 else ""
        snapshot = _snapshot_record(
            vm,
            operation,
            name,
            f"Taken by a fork of {vm.name} into {count} new VM{plural}.",
            kind=SnapshotKind.MANUAL,
            include_memory=True,
        )
        children = []
        for child_name in fork_names(vm, count):
            vm_limit_check(vm.owner)
            host = host_place(
                vcpus=vm.vcpus,
                memory_mib=vm.memory_mib,
                disk_bytes=vm.disk_bytes,
                layer=current.active_layer,
            )
            children.append(
                VM.objects.create(
                    owner=vm.owner,
                    name=child_name,
                    host=host,
                    image_id=vm.image_id,
                    vcpus=vm.vcpus,
                    memory_mib=vm.memory_mib,
                    disk_bytes=vm.disk_bytes,
                    source_snapshot=snapshot,
                )
            )
        operation.params = {"snapshot": str(snapshot.pk), "children": [str(c.pk) for c in children]}
        Operation.objects.filter(pk=operation.pk).update(params=operation.params)
    return operation


def snapshot_rename(
    *, snapshot: Snapshot, name: str | None = None, description: str | None = None
) -> Snapshot:
    """Change what the user calls a snapshot (display only)."""
    fields = {}
    if name is not None:
        fields["name"] = clean_name(name, what="snapshot name")
    if description is not None:
        fields["description"] = clean_description(description)
    if fields:
        Snapshot.objects.filter(pk=snapshot.pk).update(**fields)
        for key, value in fields.items():
            setattr(snapshot, key, value)
    return snapshot


def snapshot_pin(*, snapshot: Snapshot, pinned: bool) -> Snapshot:
    """Pin a snapshot (a snapshot policy's retention never deletes it) or unpin it."""
    Snapshot.objects.filter(pk=snapshot.pk).update(pinned=pinned)
    snapshot.pinned = pinned
    return snapshot


def snapshot_delete(*, snapshot: Snapshot, user, idempotency_key: str | None = None) -> Operation:
    """Remove a snapshot from the user's view at once; its layer is freed in the background
    when no disk builds on it any more (a VM or another snapshot may still need it), and its
    memory file, which nothing else uses, with it."""
    with transaction.atomic():
        locked = Snapshot.objects.select_for_update().filter(pk=snapshot.pk).first()
        if locked is None or locked.state == SnapshotState.DELETING:
            raise InvalidState("This snapshot has already been deleted.")
        if locked.state == SnapshotState.CREATING:
            raise InvalidState(
                f"Snapshot {locked.name!r} is still being created; delete it when it is ready."
            )
        in_use = Operation.objects.active().about(locked).first()
        if in_use is not None:
            raise InvalidState(
                f"Snapshot {locked.name!r} is in use ({in_use.get_kind_display().lower()}); "
                "try again when that finishes."
            )
        operation = operation_start(
            kind=SnapshotOperationKind.DELETE,
            owner=locked.owner,
            requester=user,
            target_name=locked.name,
            params={
                "layer": str(locked.layer_id) if locked.layer_id else None,
                "memory": memory_file(locked),
            },
            idempotency_key=idempotency_key,
        )
        snapshot_forget(locked)
    return operation


def memory_file(snapshot: Snapshot) -> dict | None:
    """Where a snapshot's memory file is (its host and volume), for freeing it; None without."""
    if not snapshot.includes_memory:
        return None
    if snapshot.layer_id is not None:
        host_id = Layer.objects.filter(pk=snapshot.layer_id).values_list("host_id", flat=True)
    else:
        host_id = VM.objects.filter(pk=snapshot.source_vm_id).values_list("host_id", flat=True)
    host_id = host_id.first()
    if host_id is None:
        return None
    return {"host": host_id, "volume": snapshot.memory_volume}


def snapshot_forget(snapshot: Snapshot) -> None:
    """Delete a snapshot's row; its owner's snapshots and VMs that followed it now follow its
    parent, and those of other users (started from it while it was shared) follow none: they
    never point at another of its owner's snapshots. The layer stays for
    `vms.layers.layer_release` to free once nothing needs it."""
    owner = snapshot.owner_id
    Snapshot.objects.filter(parent=snapshot, owner=owner).update(parent=snapshot.parent_id)
    Snapshot.objects.filter(parent=snapshot).exclude(owner=owner).update(parent=None)
    VM.objects.filter(current_snapshot=snapshot, owner=owner).update(
        current_snapshot=snapshot.parent_id
    )
    VM.objects.filter(current_snapshot=snapshot).exclude(owner=owner).update(current_snapshot=None)
    snapshot.delete()
