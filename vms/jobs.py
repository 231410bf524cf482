"""The jobs of the VM operations: what a worker runs for each (`operations.services.operation_run`
calls the job registered for the operation's kind).

Each job takes its claimed Operation, does the libvirt work outside any database transaction,
reports progress, and records the VM's new state. Jobs re-check the VM against libvirt rather
than trusting the request, so a redelivered or retried operation does nothing twice. Each
kind's repair (`vm_operation_repair`, `vm_move_repair`) finishes or undoes what a job whose
worker died left half-done.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import PurePosixPath

from django.conf import settings

from core.errors import InvalidState, OperationFailed
from operations.failpoints import failpoint, failpoint_until
from operations.models import Operation
from operations.services import (
    Yielded,
    bytes_reporter,
    housekeeping_should_yield,
    operation_report,
    operation_reporter,
)
from vms import hypervisor, layers, network, ownership, publishing
from vms.models import VM, Host, Layer, VMState, vm_id_of_lock


def console_log_path(vm: VM) -> str:
    """Where the VM's host keeps its console log (a file in the host's console pool)."""
    return str(PurePosixPath(vm.host.console_dir) / f"{vm.id}.log")


def guest_hostname(vm: VM) -> str:
    """The VM's name as a host name (RFC 1123: lower-case letters, digits and inner hyphens, at
    most 63 of them); a name with nothing of that kind in it gives `vm-` and its id's start."""
    name = re.sub(r"[^a-z0-9]+", "-", vm.name.lower())[:63].strip("-")
    return name or f"vm-{vm.id.hex[:8]}"


def guest_user_name(user) -> str:
    """The owner's user name as a Linux account name (lower-case letters, digits, `_` and `-`,
    starting with a letter or `_`, at most 32)."""
    name = re.sub(r"[^a-z0-9_-]+", "-", user.username.lower()).strip("-")
    if not re.match(r"[a-z_]", name):
        name = f"u{name}"
    return name[:32]


def guest_cmdline(vm: VM) -> str:
    """The kernel command line: the image's, then who the guest is. An image's first-boot unit
    reads `ks.hostname=`, `ks.user=` (the owner's account, given sudo) and `ks.vm=` (a VM id it
    has not seen means a new VM: new SSH host keys); systemd takes its machine-id from the
    domain's UUID, as it does from the SMBIOS UUID on KVM, so each VM has its own."""
    return (
        f"{vm.image.cmdline} ks.hostname={guest_hostname(vm)} ks.user={guest_user_name(vm.owner)}"
        f" ks.vm={vm.id} systemd.machine_id={vm.domain_uuid.hex}"
    )


def guest_authorized_keys(vm: VM) -> str:
    """The owner's SSH public keys as the guest's boot unit installs them for the owner's
    account: one `type base64` line each (the keys were parsed when added; their comments, free
    text, stay out of the definition)."""
    from accounts.models import SshKey

    lines = []
    for key in SshKey.objects.filter(owner=vm.owner_id).order_by("created_at"):
        key_type, _, rest = key.public_key.partition(" ")
        lines.append(f"{key_type} {rest.split(' ', 1)[0]}")
    # Never empty (libvirt refuses an empty entry): with no key, a comment line, which the
    # guest drops like any line that is not a key, leaving the account without keys.
    return "\n".join(lines or ["# no keys"]) + "\n"


# The identity entry is always this long, so that a guest, which learns an entry's size once at
# boot, reads all of another VM's identity after a fork.
IDENTITY_BYTES = 256


def guest_identity(vm: VM) -> str:
    """Who the guest is, as a running guest of an image with `Image.live_identity` reads it
    again each second from its firmware configuration: a VM forked from a running one resumes
    with its source's name, MAC and keys in memory, and takes these as soon as they differ."""
    text = (
        f"vm={vm.id}\nhostname={guest_hostname(vm)}\nmac={vm.mac_address}\n"
        f"machine_id={vm.domain_uuid.hex}\n"
    )
    return text + "#" * (IDENTITY_BYTES - len(text) - 1) + "\n"


def domain_spec(vm: VM, **nic) -> hypervisor.DomainSpec:
    """The libvirt definition of a VM, made from the database (the source of truth); `nic` is
    its place on the guests' network (`network.vm_network_attach`), none when left out."""
    host, image = vm.host, vm.image
    return hypervisor.DomainSpec(
        uuid=vm.domain_uuid,
        domain_type=host.domain_type,
        vcpus=vm.vcpus,
        memory_mib=vm.memory_mib,
        disk_path=layers.layer_path(vm.active_layer),
        mac=vm.mac_address,
        kernel_path=layers.volume_path(host, image.kernel_volume),
        initrd_path=layers.volume_path(host, image.initrd_volume),
        cmdline=guest_cmdline(vm),
        console_log=console_log_path(vm),
        metadata=ownership.domain_metadata(vm=str(vm.id), host=host.name, pool=host.pool_name),
        # Read at each boot: keys added or deleted reach the guest when it next starts.
        firmware_config={
            "authorized_keys": guest_authorized_keys(vm),
            "identity": guest_identity(vm),
        },
        **nic,
    )


def domain_define(vm: VM) -> None:
    """Define (or redefine) the VM's domain on its host, on the guests' network there."""
    nic = network.vm_network_attach(vm)
    publishing.vm_port(vm)
    vm.host.hypervisor.domain_define(hypervisor.domain_xml(domain_spec(vm, **nic)))


def _vm(operation: Operation) -> VM:
    if vm_id_of_lock(operation.lock) is None:
        raise OperationFailed("The VM no longer exists.")
    vm = VM.objects.select_related(
        "host", "image", "active_layer__host", "source_snapshot__layer__host"
    ).get(pk=vm_id_of_lock(operation.lock))

    return vm


def _set_state(vm: VM, state: str) -> None:
    VM.objects.filter(pk=vm.pk).update(state=state)
    vm.state = state
    publishing.publish_sync()  # its SSH port is forwarded while it runs, and only then


def _domain_state(vm: VM) -> str | None:
    return vm.host.hypervisor.domain_state(vm.domain_uuid)


def vm_create_run(operation: Operation) -> dict:
    """Build the VM's disk as a new layer, define its domain, and boot it (or, from a snapshot
    with memory, resume it)."""
    vm = _vm(operation)
    if vm.state != VMState.CREATING:
        return {"vm": str(vm.id)}  # done by an earlier delivery of this operation
    resumed = vm_build(vm, operation)
    return {"vm": str(vm.id), "resumed": resumed}


def vm_build(vm: VM, operation: Operation, *, report: bool = True) -> bool:
    """Make a VM being created real on its host and running; True when it resumed a snapshot's
    memory rather than booting. A failure leaves it failed, holding nothing on its host."""

    def say(progress: int, message: str) -> None:
        if report:
            operation_report(operation, progress=progress, message=message)

    try:
        parent, full_copy = creation_source(vm, operation)
        disk_to_host(vm, operation, parent)
        say(40, "Creating the disk")
        layer = layers.layer_create(
            host=vm.host, parent=parent, virtual_size=vm.disk_bytes, full_copy=full_copy
        )
        VM.objects.filter(pk=vm.pk).update(
            active_layer=layer, current_snapshot=vm.source_snapshot_id
        )
        vm.active_layer = layer
        failpoint("vm.create.layer")
        say(60, "Defining the VM")
        domain_define(vm)
        resumed = False
        if memory_forkable(vm):
            say(80, "Resuming the snapshot's memory as this VM")
            resumed = memory_fork(vm)
        if not resumed:
            say(80, "Booting")
            vm.host.hypervisor.domain_start(vm.domain_uuid)
    except BaseException:
        creation_failed(vm)
        raise
    _set_state(vm, VMState.RUNNING)
    return resumed


def memory_forkable(vm: VM) -> bool:
    """Whether a new VM resumes the memory of the snapshot it starts from: a snapshot with
    memory of its owner's, whose image's guests take a new identity while running."""
    snapshot = vm.source_snapshot
    return bool(
        snapshot is not None
        and snapshot.includes_memory
        and snapshot.memory_volume
        and snapshot.owner_id == vm.owner_id
        and vm.image.live_identity
    )


def memory_fork(vm: VM) -> bool:
    """Resume the source snapshot's memory as `vm` (defined, on a new layer on the snapshot's),
    programs running; its guest then takes the VM's own identity from its firmware
    configuration. False, with nothing started, when the memory does not fit this VM (another
    size): it boots from the disk then."""
    snapshot = vm.source_snapshot
    host, saved_on = vm.host, snapshot.layer.host
    adapter = host.hypervisor
    copied = saved_on.pk != host.pk and snapshot.memory_volume not in adapter.volume_names(
        host.pool_name
    )
    if copied:
        saved_on.hypervisor.volume_transfer(
            saved_on.pool_name, adapter, host.pool_name, snapshot.memory_volume
        )
    work = adapter.volume_create(host.pool_name, f"{vm.id}.fork", capacity=0, fmt="raw")
    try:
        adapter.domain_fork_memory(
            vm.domain_uuid,
            adapter.volume_info(host.pool_name, snapshot.memory_volume).path,
            saved_disk_path=layers.layer_path(snapshot.layer, host),
            disk_path=layers.layer_path(vm.active_layer),
            work_path=work.path,
        )
    except hypervisor.MemoryMismatch:
        return False
    finally:
        # QEMU has read all of it by now.
        adapter.volume_delete(host.pool_name, f"{vm.id}.fork")
        if copied:
            adapter.volume_delete(host.pool_name, snapshot.memory_volume)
    return True


def disk_to_host(vm: VM, operation: Operation, layer: Layer) -> None:
    """Copy the layers `layer` builds on, and the image's kernel and initrd, to the VM's host
    where it lacks them (streamed from a host that has them)."""
    host = vm.host
    if host.pk not in layers.layer_hosts(layer):
        message = f"Copying the disk to host {host.name}"
        operation_report(operation, progress=10, message=message)
        report = operation_reporter(operation, start=10, span=25, message=message)
        layers.layer_chain_seed(layer, host, on_progress=report)
    image = vm.image
    layers.volumes_seed(image.host, host, [image.kernel_volume, image.initrd_volume])


def creation_source(vm: VM, operation: Operation):
    """The layer a new VM's disk builds on, and whether to copy it instead."""
    if vm.source_snapshot_id is not None:
        snapshot = vm.source_snapshot
        if snapshot.layer is None:
            raise OperationFailed("The snapshot this VM was to start from has been deleted.")
        return snapshot.layer, bool(operation.params.get("full_copy"))
    return vm.image.layer, False


def vm_start_run(operation: Operation) -> dict:
    vm = _vm(operation)
    if _domain_state(vm) == "running":
        _set_state(vm, VMState.RUNNING)
        return {}
    if vm.state != VMState.STOPPED:
        raise InvalidState(f"The VM is {vm.get_state_display().lower()}, so it cannot start.")
    operation_report(operation, progress=30, message="Booting")
    domain_define(vm)
    vm.host.hypervisor.domain_start(vm.domain_uuid)
    _set_state(vm, VMState.RUNNING)
    return {}


def vm_repair_run(operation: Operation) -> dict:
    """Define the VM's domain again from the database: its recorded active layer and settings.

    The disk chain is checked first, layer by layer, so a VM whose disk is really gone is not
    marked healthy. The VM ends stopped, or running when its guest still ran.
    """
    vm = _vm(operation)
    if vm.state != VMState.ERROR:
        return {"state": vm.state}  # done by an earlier delivery of this operation
    operation_report(operation, progress=20, message="Checking the disk")
    layer = vm.active_layer
    if layer is None:
        raise OperationFailed(
            "This VM has no disk recorded, so it cannot be repaired; delete it instead "
            "(its snapshots are kept)."
        )
    while layer is not None:
        try:
            layers.layer_path(layer)
        except hypervisor.VolumeNotFound:
            raise OperationFailed(
                "A layer of this VM's disk is missing from the storage pool, so it cannot be "
                "repaired; delete it instead (its snapshots are kept)."
            ) from None
        layer = layer.parent
    operation_report(operation, progress=60, message="Defining the VM again")
    domain_define(vm)
    vm_sync_state(vm)  # stopped, or running when the guest still ran
    return {"state": vm.state}


def power_off(vm: VM, operation: Operation, *, force: bool) -> bool:
    """Stop the guest: the ACPI power button first (unless `force`), then pull the plug.

    Returns True when the guest had to be forced off.
    """
    host = vm.host
    if _domain_state(vm) in (None, "shutoff"):
        return False
    if not force:
        operation_report(operation, progress=20, message="Asking the guest to power off")
        if host.hypervisor.domain_shutdown(vm.domain_uuid, timeout=settings.VM_STOP_TIMEOUT):
            return False
        operation_report(
            operation,
            progress=70,
            message=f"No power-off after {settings.VM_STOP_TIMEOUT} s; forcing it off",
        )
    host.hypervisor.domain_destroy(vm.domain_uuid)
    return True


def vm_stop_run(operation: Operation) -> dict:
    vm = _vm(operation)
    forced = power_off(vm, operation, force=False)
    _set_state(vm, VMState.STOPPED)
    return {"forced": forced}


def vm_force_stop_run(operation: Operation) -> dict:
    vm = _vm(operation)
    power_off(vm, operation, force=True)
    _set_state(vm, VMState.STOPPED)
    return {"forced": True}


def vm_reboot_run(operation: Operation) -> dict:
    """A clean power cycle: power off (forcing after the timeout), then boot again."""
    vm = _vm(operation)
    forced = power_off(vm, operation, force=False)
    _set_state(vm, VMState.STOPPED)
    operation_report(operation, progress=80, message="Booting")
    domain_define(vm)
    vm.host.hypervisor.domain_start(vm.domain_uuid)
    _set_state(vm, VMState.RUNNING)
    return {"forced": forced}


def creation_failed(vm: VM) -> None:
    """Free what a VM's failed creation had made on its host, and keep the VM, marked failed,
    so that its owner sees why and retries or deletes it. It then holds no room on a host."""
    host = vm.host
    with contextlib.suppress(hypervisor.HypervisorError):
        host.hypervisor.domain_undefine(vm.domain_uuid)
    with contextlib.suppress(hypervisor.HypervisorError):
        network.vm_network_detach(vm)
    layer_id = vm.active_layer_id
    VM.objects.filter(pk=vm.pk).update(active_layer=None, state=VMState.FAILED)
    if layer_id is not None:
        layers.layer_release(layer_id)
    with contextlib.suppress(hypervisor.HypervisorError):
        host.hypervisor.volumes_delete_prefixed(host.console_pool_name, f"{vm.id}.log")


def vm_delete_run(operation: Operation) -> dict:
    vm = _vm(operation)
    operation_report(operation, progress=20, message="Stopping and removing the VM")
    discard(vm)
    return {}


def discard(vm: VM) -> None:
    """Remove a VM from libvirt, free the layers only it needed, and delete its row.

    Its snapshots stay: they own their layers, so the chain under them is kept.
    """
    host = vm.host
    host.hypervisor.domain_undefine(vm.domain_uuid)
    with contextlib.suppress(hypervisor.HypervisorError):
        network.vm_network_detach(vm)
    layer_id = vm.active_layer_id
    VM.objects.filter(pk=vm.pk).update(active_layer=None, state=VMState.DELETING)
    if layer_id is not None:
        layers.layer_release(layer_id)
    with contextlib.suppress(hypervisor.HypervisorError):
        host.hypervisor.volumes_delete_prefixed(host.console_pool_name, f"{vm.id}.log")
    VM.objects.filter(pk=vm.pk).delete()
    publishing.publish_sync()


def vm_flatten_run(operation: Operation) -> dict:
    """Make the VM's disk self-contained: copy its chain into one layer, then free what only
    that chain needed. Keeps chains short; the snapshots keep their own layers."""
    with housekeeping_give_way(operation) as should_stop:
        return _flatten(operation, should_stop)


def _flatten(operation: Operation, should_stop) -> dict:
    vm = _vm(operation)
    old = vm.active_layer
    if old.parent_id is None:
        return {"flattened": False}
    if _domain_state(vm) == "running":
        operation_report(operation, progress=10, message="Copying the chain into the disk")
        vm.host.hypervisor.domain_block_pull(
            vm.domain_uuid,
            on_progress=lambda done: operation_report(
                operation, progress=10 + int(80 * done), message="Copying the chain into the disk"
            ),
            should_stop=should_stop,
        )
        parent_id = old.parent_id
        Layer.objects.filter(pk=old.pk).update(parent=None, depth=1)
        vm.host.hypervisor.pool_refresh(vm.host.pool_name)
    elif hypervisor.uri_is_local(vm.host.libvirt_uri):
        # The same as a block pull, with no guest: the chain's data is copied into the disk's
        # own layer, which then stands alone (stoppable half-way, like a merge's rebase).
        operation_report(operation, progress=10, message="Copying the chain into the disk")
        vm.host.hypervisor.volume_rebase(
            vm.host.pool_name, old.volume_name, None, should_stop=should_stop
        )
        parent_id = old.parent_id
        Layer.objects.filter(pk=old.pk).update(parent=None, depth=1)
    else:
        operation_report(operation, progress=10, message="Copying the disk")
        new = layers.layer_create(
            host=vm.host, parent=old, virtual_size=old.virtual_size, full_copy=True
        )
        VM.objects.filter(pk=vm.pk).update(active_layer=new)
        vm.active_layer = new
        domain_define(vm)
        parent_id = old.pk
    layers.layer_release(parent_id)
    return {"flattened": True}


def vm_move_run(operation: Operation) -> dict:
    """Move a stopped VM to the host `vm_move` chose (already recorded as its host): copy the
    layers under its disk and its image's files there, stream its own layer over, define it
    there, then forget it on the old host. Anything cut short is undone: the VM stays where it
    was."""
    vm = _vm(operation)
    source = Host.objects.get(pk=operation.params["from"])
    if vm.active_layer.host_id == vm.host_id:
        return _move_finish(vm, source)  # the disk moved in an earlier delivery
    try:
        if source.hypervisor.domain_state(vm.domain_uuid) in ("running", "paused"):
            raise InvalidState("The VM was started meanwhile; stop it, then move it.")
        layer = vm.active_layer
        if layer.parent_id is not None:
            disk_to_host(vm, operation, layer.parent)
        else:
            image = vm.image
            layers.volumes_seed(image.host, vm.host, [image.kernel_volume, image.initrd_volume])
        message = "Copying the VM's own disk layer"
        operation_report(operation, progress=40, message=message)
        report = operation_reporter(operation, start=40, span=35, message=message)
        source.hypervisor.volume_transfer(
            source.pool_name,
            vm.host.hypervisor,
            vm.host.pool_name,
            layer.volume_name,
            on_bytes=bytes_reporter(report),
        )
        failpoint("vm.move.copied")
        Layer.objects.filter(pk=layer.pk).update(host=vm.host)
    except BaseException:
        _move_undo(vm, source)
        raise
    vm.active_layer.host = vm.host
    operation_report(operation, progress=80, message=f"Defining the VM on {vm.host.name}")
    return _move_finish(vm, source)


def _move_finish(vm: VM, source: Host) -> dict:
    """The VM's own layer is on its new host: define it there, and remove it from the old one
    (its domain, the old copy of its layer, its console log)."""
    domain_define(vm)
    source.hypervisor.domain_undefine(vm.domain_uuid)
    with contextlib.suppress(hypervisor.HypervisorError):
        network.vm_network_detach(VM(host=source, mac_address=vm.mac_address))
    source.hypervisor.volume_delete(source.pool_name, vm.active_layer.volume_name)
    with contextlib.suppress(hypervisor.HypervisorError):
        source.hypervisor.volumes_delete_prefixed(source.console_pool_name, f"{vm.id}.log")
    return {"from": source.name, "to": vm.host.name}


def _move_undo(vm: VM, source: Host) -> None:
    """The move did not get as far as the VM's own layer: the VM stays on the old host."""
    target = vm.host
    VM.objects.filter(pk=vm.pk).update(host=source)
    vm.host = source
    with contextlib.suppress(hypervisor.HypervisorError):
        target.hypervisor.volume_delete(target.pool_name, vm.active_layer.volume_name)


def vm_move_repair(operation: Operation) -> str:
    """A move whose worker died: finished when the VM's layer already moved, else undone."""
    vm = VM.objects.select_related("host", "image", "active_layer").filter(
        pk=vm_id_of_lock(operation.lock)
    )
    vm = vm.first()
    if vm is None:
        return "Nothing was left to repair."
    source = Host.objects.get(pk=operation.params["from"])
    if vm.host_id == source.pk:
        return vm_sync_state(vm)
    if vm.active_layer.host_id == vm.host_id:
        _move_finish(vm, source)
        vm_sync_state(vm)
        return f"The move to {vm.host.name} was completed."
    _move_undo(vm, source)
    vm_sync_state(vm)
    return f"The move was undone; the VM stays on {source.name}."


def layer_merge_run(operation: Operation) -> dict:
    """Merge a layer that only one layer builds on into that one (see `layers.layer_merge`).
    Housekeeping: it gives way to the owner's operations on the VM (`housekeeping_give_way`)."""
    with housekeeping_give_way(operation) as should_stop:
        operation_report(operation, progress=10, message="Merging a layer into the one built on it")
        return layers.layer_merge(operation.params["layer"], should_stop=should_stop)


@contextlib.contextmanager
def housekeeping_give_way(operation: Operation):
    """Around a housekeeping job: gives it the function that says when to stop (a user's
    operation waits for the VM), refuses to begin when one already waits, and turns a stop at
    a safe point into `Yielded` (the operation is recorded as skipped, the next sweep tries
    again)."""
    should_stop = housekeeping_should_yield(operation)
    if should_stop():
        raise Yielded("Gave way to the owner's operation before it began; tried again later")
    failpoint_until("housekeeping.begun", should_stop)
    try:
        yield should_stop
    except hypervisor.Interrupted:
        raise Yielded("Gave way to the owner's operation; tried again later") from None


def layer_merge_repair(operation: Operation) -> str:
    """A merge cut short: finish it (work already done is recognised), or keep the layer."""
    return layers.layer_merge(operation.params["layer"])["message"]


def vm_operation_repair(operation: Operation) -> str:
    """Bring a VM whose operation died half-way to a consistent state; say what was done."""
    if vm_id_of_lock(operation.lock) is None:
        return "Nothing was left to repair."
    vm = VM.objects.select_related("host", "image", "active_layer").filter(
        pk=vm_id_of_lock(operation.lock)
    )
    vm = vm.first()
    if vm is None:
        return "Nothing was left to repair."
    # Only an operation creating the VM runs while it is being created.
    if vm.state == VMState.CREATING:
        creation_failed(vm)
        return "What the creation had made was removed; the VM is marked failed, to retry."
    if vm.state == VMState.DELETING:
        discard(vm)
        return "The VM's deletion was completed."
    return vm_sync_state(vm)


def vm_sync_state(vm: VM) -> str:
    """Set the VM's recorded state from what libvirt says; say what it is."""
    actual = _domain_state(vm)
    if actual is None:
        _set_state(vm, VMState.ERROR)
        return "The VM's domain is missing from libvirt; the VM was marked as in error."
    state = VMState.RUNNING if actual in ("running", "paused") else VMState.STOPPED
    _set_state(vm, state)
    return f"The VM is {state.label.lower()}."
