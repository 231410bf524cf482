"""Business rules for hosts, images and VMs: what a request may ask for, and recording it.

Every long action becomes an Operation (see `operations.services.operation_start`) that a worker
runs through `vms.jobs`. The VM's state is checked after the operation is recorded, in the
same transaction: the operation is the VM's lock, so the state cannot change in between.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import unicodedata

from django.conf import settings
from django.core.cache import cache as rate_cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.selectors import plan_for
from core.errors import (
    Busy,
    InvalidState,
    LimitExceeded,
    NameTaken,
    RateLimited,
    Unavailable,
)
from operations.models import Operation
from operations.services import operation_start
from vms import hypervisor, layers, network, ownership
from vms.models import VM, Host, HostState, Image, Layer, VMOperationKind, VMState
from vms.placement import host_place
from vms.selectors import default_host, host_from_settings

GIB = 1024**3
NAME_MAX = 64
CONSOLE_LINE_MAX = 512
ANSI_ESCAPE = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|\][^\x07]*\x07|[()][A-Za-z0-9]|[=>])")


def host_ensure_default() -> Host:
    """Register the host the settings describe, and make sure its storage pools run. A host
    registered now gets the capacity its hardware has (see `host_capacity`); an admin's later
    changes to it are kept."""
    wanted = host_from_settings()
    wanted.clean()  # LIBVIRT_URI is held to the rules of any host's URI
    fields = {"libvirt_uri": wanted.libvirt_uri, "domain_type": wanted.domain_type}
    registered = Host.objects.filter(name=wanted.name).exists()
    if settings.STORAGE_POOL or not registered:
        # Without STORAGE_POOL a registered host keeps the pool it has (an installation made
        # before pools were named for it keeps its layers where they are).
        fields |= {
            "pool_name": wanted.pool_name,
            "pool_path": wanted.pool_path,
            "console_dir": wanted.console_dir,
        }
    host, created = Host.objects.update_or_create(name=wanted.name, defaults=fields)
    host_prepare(host)
    if created:
        Host.objects.filter(pk=host.pk).update(**host_capacity(host))
        host.refresh_from_db()
    return host


def host_prepare(host: Host) -> None:
    """Create the host's storage pool, console-log pool and guests' network where they are
    missing (through libvirt, so a remote host is prepared the same way)."""
    host.hypervisor.pool_ensure(host.pool_name, host.pool_path)
    ownership.pool_claim(host)
    host.hypervisor.pool_ensure(host.console_pool_name, host.console_dir)
    network.host_network_ensure(host)


def host_capacity(host: Host) -> dict:
    """What placement may hand out on a host, from its hardware: its memory, HOST_VCPU_RATIO
    vCPUs per CPU, and HOST_DISK_RATIO times the size of the pool's file system."""
    found = host.hypervisor.host_resources()
    disk = host.hypervisor.pool_capacity(host.pool_name)
    return {
        "memory_mib": found["memory_mib"],
        "vcpus": found["cpus"] * settings.HOST_VCPU_RATIO,
        "disk_gib": max(1, disk * settings.HOST_DISK_RATIO // GIB),
    }


def host_add(
    *,
    name: str,
    libvirt_uri: str,
    memory_mib: int | None = None,
    vcpus: int | None = None,
    disk_gib: int | None = None,
    domain_type: str | None = None,
) -> Host:
    """Register another libvirt host, with the same pool and console folders as the others.

    Its pools are made through libvirt; capacity not given is read from the host."""
    template = default_host()  # the pool folders of the hosts already registered
    host = Host(
        name=name,
        libvirt_uri=libvirt_uri,
        domain_type=domain_type or template.domain_type,
        pool_name=template.pool_name,
        pool_path=template.pool_path,
        console_dir=template.console_dir,
    )
    host.full_clean(exclude=["memory_mib", "vcpus", "disk_gib"])
    host_prepare(host)
    found = host_capacity(host)
    host.memory_mib = memory_mib or found["memory_mib"]
    host.vcpus = vcpus or found["vcpus"]
    host.disk_gib = disk_gib or found["disk_gib"]
    host.save()
    return host


def host_probe(host: Host) -> str | None:
    """Ask the host's libvirt whether it answers and its pool runs, changing nothing. Returns
    the problem, or None."""
    try:
        host.hypervisor.version()
        if not host.hypervisor.pool_exists(host.pool_name):
            return f"the storage pool {host.pool_name!r} is missing or stopped"
        if ownership.pool_claims_of_others(host.hypervisor.volume_names(host.pool_name)):
            return ownership.pool_taken_message(host)
        return network.host_network_problem(host)
    except hypervisor.HypervisorError as exc:
        return str(exc)
    return None


def host_check(host: Host) -> str | None:
    """Probe the host (`host_probe`) and record the answer on it (its VMs' pages show it).
    Returns the problem, or None."""
    from django.utils import timezone

    problem = host_probe(host)
    Host.objects.filter(pk=host.pk).update(
        reachable=problem is None, checked_at=timezone.now(), last_error=problem or ""
    )
    host.reachable, host.last_error = problem is None, problem or ""
    return problem


def hosts_check() -> dict:
    """Check every host in service (see `host_check`); {host name: problem or None}. A host
    that answers gets its guests' network made again if it went missing, and its filter
    rewritten if the host's addresses changed."""
    found = {}
    for host in Host.objects.exclude(state=HostState.DISABLED):
        problem = host_check(host)
        if problem in (None, network.network_missing()):
            with contextlib.suppress(hypervisor.HypervisorError):
                network.host_network_ensure(host)
            if problem is not None:
                problem = host_check(host)
        found[host.name] = problem
    return found


def host_unavailable(host: Host) -> Unavailable:
    """The error to show a VM's owner for a call to its host that does not answer (the
    host's address and libvirt's words are for staff: the admin and `manage.py doctor`)."""
    return Unavailable(
        f"Host {host.name} does not answer; this VM's console and actions work again when it "
        "is back."
    )


def clean_name(name: str, *, field: str = "name", what: str = "name") -> str:
    """A display name as the user typed it, trimmed; refused when empty, too long or unprintable."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({field: f"Give a {what}."})
    if len(name) > NAME_MAX:
        raise ValidationError({field: f"Keep the {what} to {NAME_MAX} characters or fewer."})
    # Control characters, and lone surrogates (no database can store them). Private-use and
    # not-yet-assigned code points are the user's business: fonts and newer Unicode show them.
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in name):
        raise ValidationError({field: f"The {what} contains characters that cannot be shown."})
    return name


def vm_name_check(owner, name: str, *, exclude=None) -> None:
    """The one VM-name rule: an owner's VMs have different names. Called before the work and
    again when the database's unique constraint fires (a racing request took the name)."""
    others = VM.objects.filter(owner=owner, name=name)
    if exclude is not None:
        others = others.exclude(pk=exclude.pk)
    if others.exists():
        raise NameTaken(f"You already have a VM named {name!r}; choose another name.")


def lock_owner(owner) -> None:
    """Serialize the limit checks of one account (a row lock on the user).

    FOR NO KEY UPDATE, not FOR UPDATE: rows inserted meanwhile that refer to the user (an
    operation of a parallel request) take a key-share lock on it, which this does not block;
    with FOR UPDATE the two requests could each wait for the other.
    """
    from accounts.models import User

    User.objects.select_for_update(no_key=True).filter(pk=owner.pk).first()


def vm_limit_check(owner) -> None:
    """Refuse when the owner's plan has no room for another VM. Call with the owner locked."""
    plan = plan_for(owner)
    count = VM.objects.visible().filter(owner=owner).count()
    if count >= plan.max_vms:
        raise LimitExceeded(
            f"Your {plan.name} plan allows {plan.max_vms} VM{'s' if plan.max_vms != 1 else ''} "
            f"and you have {count}; delete one to make room."
        )


def vm_validate_size(*, image: Image, vcpus: int, memory_mib: int, disk_gib: int) -> None:
    errors = {}
    if not 1 <= vcpus <= VM.MAX_VCPUS:
        errors["vcpus"] = f"Choose between 1 and {VM.MAX_VCPUS} vCPUs."
    if not VM.MIN_MEMORY_MIB <= memory_mib <= VM.MAX_MEMORY_MIB:
        errors["memory_mib"] = (
            f"Choose between {VM.MIN_MEMORY_MIB} and {VM.MAX_MEMORY_MIB} MiB of memory."
        )
    min_gib = -(-image.min_disk_bytes // GIB)
    max_gib = VM.MAX_DISK_BYTES // GIB
    if not min_gib <= disk_gib <= max_gib:
        errors["disk_gib"] = f"Choose a disk between {min_gib} and {max_gib} GiB for this image."
    if errors:
        raise ValidationError(errors)


def vm_create(
    *,
    owner,
    name: str,
    image: Image,
    vcpus: int = 1,
    memory_mib: int = 256,
    disk_gib: int = 4,
    requester=None,
    idempotency_key: str | None = None,
) -> Operation:
    """Ask for a new VM from an image: recorded now, built and booted by a worker."""
    name = clean_name(name)
    if not image.is_public:
        raise ValidationError({"image": "Choose one of the images offered."})
    vm_validate_size(image=image, vcpus=vcpus, memory_mib=memory_mib, disk_gib=disk_gib)
    vm_name_check(owner, name)
    try:
        with transaction.atomic():
            lock_owner(owner)
            vm_limit_check(owner)
            host = host_place(
                vcpus=vcpus, memory_mib=memory_mib, disk_bytes=disk_gib * GIB, layer=image.layer
            )
            vm = VM.objects.create(
                owner=owner,
                name=name,
                host=host,
                image=image,
                vcpus=vcpus,
                memory_mib=memory_mib,
                disk_bytes=disk_gib * GIB,
            )
            return operation_start(
                kind=VMOperationKind.CREATE,
                owner=owner,
                requester=requester or owner,
                lock=vm.lock,
                subject=vm,
                target_name=name,
                params={"image": image.slug},
                idempotency_key=idempotency_key,
            )
    except IntegrityError:
        vm_name_check(owner, name)
        raise


# The states each action needs, and what to tell the user otherwise. The VM page offers an
# action only in these states (see `vm_can`), so what it shows and what is accepted agree.
_NEEDS = {
    VMOperationKind.START: ({VMState.STOPPED}, "start"),
    VMOperationKind.STOP: ({VMState.RUNNING}, "stop"),
    VMOperationKind.FORCE_STOP: ({VMState.RUNNING}, "force off"),
    VMOperationKind.REBOOT: ({VMState.RUNNING}, "reboot"),
    VMOperationKind.DELETE: (
        {VMState.STOPPED, VMState.RUNNING, VMState.ERROR, VMState.FAILED},
        "delete",
    ),
    VMOperationKind.CREATE: ({VMState.FAILED}, "retry"),
    VMOperationKind.FLATTEN: ({VMState.STOPPED, VMState.RUNNING}, "flatten its disk"),
    VMOperationKind.REPAIR: ({VMState.ERROR}, "repair"),
}


def vm_can(vm: VM, kind: str) -> bool:
    """Whether the VM's state allows an operation of this kind (busy or not)."""
    return vm.state in _NEEDS[kind][0]


def state_problem(vm: VM, verb: str) -> str:
    if verb == "retry" and vm.state != VMState.FAILED:
        return f"VM {vm.name!r} was created; only a VM whose creation failed is retried."
    if vm.state == VMState.RUNNING:
        if verb == "start":
            return f"VM {vm.name!r} is already running."
        if verb == "repair":
            return f"VM {vm.name!r} is running; it needs no repair."
        return ""
    if vm.state == VMState.STOPPED:
        if verb == "repair":
            return f"VM {vm.name!r} is stopped; it needs no repair, start it instead."
        return f"VM {vm.name!r} is stopped; start it first."
    if vm.state == VMState.CREATING:
        return f"VM {vm.name!r} is still being created; try again when it is running."
    if vm.state == VMState.DELETING:
        return f"VM {vm.name!r} is being deleted."
    if vm.state == VMState.FAILED:
        return f"Creating VM {vm.name!r} failed; retry it or delete it."
    return (
        f"VM {vm.name!r} is in error: its definition is missing from the hypervisor. "
        "Repair it (its disk is kept) or delete it."
    )


def vm_act(
    *, vm: VM, kind: str, user, params: dict | None = None, idempotency_key: str | None = None
) -> Operation:
    """Record a lifecycle operation on a VM, if the VM is free and in a state that allows it."""
    allowed, verb = _NEEDS[kind]
    with transaction.atomic():
        operation = operation_start(
            kind=kind,
            owner=vm.owner,
            requester=user,
            lock=vm.lock,
            subject=vm,
            target_name=vm.name,
            params=params,
            idempotency_key=idempotency_key,
        )
        current = VM.objects.get(pk=vm.pk)
        if current.state not in allowed:
            raise InvalidState(
                state_problem(current, verb) or f"VM {vm.name!r} cannot {verb} right now."
            )
        if kind == VMOperationKind.DELETE:
            VM.objects.filter(pk=vm.pk).update(state=VMState.DELETING)
    return operation


def vm_start(*, vm: VM, user, **kwargs) -> Operation:
    return vm_act(vm=vm, kind=VMOperationKind.START, user=user, **kwargs)


def vm_stop(*, vm: VM, user, force: bool = False, **kwargs) -> Operation:
    kind = VMOperationKind.FORCE_STOP if force else VMOperationKind.STOP
    return vm_act(vm=vm, kind=kind, user=user, **kwargs)


def vm_reboot(*, vm: VM, user, **kwargs) -> Operation:
    return vm_act(vm=vm, kind=VMOperationKind.REBOOT, user=user, **kwargs)


def vm_delete(*, vm: VM, user, **kwargs) -> Operation:
    """Delete a VM and the disk layers only it needs; its snapshots are kept."""
    return vm_act(vm=vm, kind=VMOperationKind.DELETE, user=user, **kwargs)


def vm_repair(*, vm: VM, user, **kwargs) -> Operation:
    """Define a VM in error again from its recorded disk (the database is the source of truth
    for the chain); it ends stopped, or running if its guest still ran."""
    return vm_act(vm=vm, kind=VMOperationKind.REPAIR, user=user, **kwargs)


def repair_hopeless(vm: VM) -> str:
    """Why a repair of this VM in error cannot work, when that is known without trying: it has
    no disk recorded, or the last repair failed and nothing happened to the VM since."""
    if vm.active_layer_id is None:
        return "It has no disk recorded."
    last = Operation.objects.filter(lock=vm.lock).order_by("-created_at").first()
    if last is not None and last.kind == VMOperationKind.REPAIR and last.state == "failed":
        return last.error
    return ""


def vm_create_retry(*, vm: VM, user, idempotency_key: str | None = None) -> Operation:
    """Build a VM whose creation failed again, from what it was asked from (its image or
    snapshot, its size), on a host placement chooses now."""
    with transaction.atomic():
        lock_owner(vm.owner)
        first = (
            Operation.objects.filter(lock=vm.lock, kind=VMOperationKind.CREATE)
            .order_by("created_at")
            .first()
        )
        operation = operation_start(
            kind=VMOperationKind.CREATE,
            owner=vm.owner,
            requester=user,
            lock=vm.lock,
            subject=vm,
            target_name=vm.name,
            params=first.params if first else {"image": vm.image.slug},
            idempotency_key=idempotency_key,
        )
        current = VM.objects.select_related("image", "source_snapshot__layer").get(pk=vm.pk)
        if current.state != VMState.FAILED:
            raise InvalidState(state_problem(current, "retry"))
        source = current.source_snapshot
        host = host_place(
            vcpus=current.vcpus,
            memory_mib=current.memory_mib,
            disk_bytes=current.disk_bytes,
            layer=source.layer if source is not None else current.image.layer,
        )
        VM.objects.filter(pk=vm.pk).update(host=host, state=VMState.CREATING)
        return operation


def vm_move(*, vm: VM, user, host: Host | None = None) -> Operation:
    """Move a stopped VM to another host (`host`, or the one placement chooses): its disk chain
    is streamed there through libvirt, and it is defined there and forgotten here. An admin's
    action, e.g. to empty a draining host. The room on the new host is taken at once."""
    with transaction.atomic():
        operation = operation_start(
            kind=VMOperationKind.MOVE,
            owner=vm.owner,
            requester=user,
            lock=vm.lock,
            subject=vm,
            target_name=vm.name,
        )
        current = VM.objects.select_related("host", "active_layer").get(pk=vm.pk)
        if current.state != VMState.STOPPED:
            raise InvalidState(
                f"VM {vm.name!r} is {current.get_state_display().lower()}; only a stopped VM "
                "moves to another host. Stop it first."
            )
        if host is not None and host.pk == current.host_id:
            raise InvalidState(f"VM {vm.name!r} is on {host.name} already.")
        target = host_place(
            vcpus=current.vcpus,
            memory_mib=current.memory_mib,
            disk_bytes=current.disk_bytes,
            layer=current.active_layer,
            exclude=current.host,
            only=host,
        )
        VM.objects.filter(pk=vm.pk).update(host=target)
        params = {"from": current.host_id, "to": target.pk}
        Operation.objects.filter(pk=operation.pk).update(
            params=params, target_name=f"{vm.name} to {target.name}"
        )
        operation.params, operation.target_name = params, f"{vm.name} to {target.name}"
    return operation


def vm_flatten(*, vm: VM, user=None, **kwargs) -> Operation:
    """Copy the VM's disk chain into one layer (in the background), to keep chains short."""
    return vm_act(vm=vm, kind=VMOperationKind.FLATTEN, user=user, **kwargs)


def vms_flatten_deep_chains() -> list[Operation]:
    """Start a flatten for every idle VM whose disk chain is deeper than MAX_CHAIN_DEPTH."""
    from core.errors import ServiceError

    started = []
    deep = VM.objects.filter(
        state__in=[VMState.RUNNING, VMState.STOPPED],
        active_layer__depth__gt=settings.MAX_CHAIN_DEPTH,
    ).select_related("owner")
    for vm in deep:
        try:
            started.append(vm_flatten(vm=vm))
        except ServiceError:
            continue  # busy now; the next run tries again
    return started


def layer_merge_start(layer: Layer) -> Operation | None:
    """Start merging a layer into the only layer built on it, as an operation of the VM whose
    disk chain that changes (so that it never runs beside another operation of that VM).

    None when the layer cannot merge, a merge of it is under way, or its VM is busy: the next
    sweep (`layers_merge_pending`) tries again.
    """
    child = layers.layer_merge_target(layer)
    if child is None:
        return None
    if (
        Operation.objects.active()
        .filter(kind=VMOperationKind.MERGE, params__layer=str(layer.pk))
        .exists()
    ):
        return None
    vms = list(layers.layer_vms(child).select_related("owner")[:2])
    vm = vms[0] if len(vms) == 1 else None
    owner = vm.owner if vm else layers.layer_owner(child)
    if owner is None:
        return None
    try:
        return operation_start(
            kind=VMOperationKind.MERGE,
            owner=owner,
            lock=vm.lock if vm else "",
            subject=vm,
            target_name=vm.name if vm else "Disk layers",
            params={"layer": str(layer.pk)},
        )
    except Busy:
        return None


def layers_merge_pending() -> list[Operation]:
    """Start a merge for every layer that only one layer builds on and nothing else needs."""
    started = []
    for layer in layers.layers_awaiting_merge():
        operation = layer_merge_start(layer)
        if operation is not None:
            started.append(operation)
    return started


def vm_rename(*, vm: VM, name: str) -> VM:
    name = clean_name(name)
    vm_name_check(vm.owner, name, exclude=vm)
    try:
        with transaction.atomic():
            VM.objects.filter(pk=vm.pk).update(name=name)
    except IntegrityError:
        vm_name_check(vm.owner, name, exclude=vm)
        raise
    vm.name = name
    return vm


def console_read(*, vm: VM, max_bytes: int = 32 * 1024) -> str:
    """The last of what the guest printed on its serial console, as plain text, read from its
    host through libvirt. Raises `Unavailable` when the host does not answer (or libvirt
    cannot read the log)."""
    host = vm.host
    try:
        data, size = host.hypervisor.console_read(
            host.console_pool_name, console_log_name(vm), max_bytes
        )
    except hypervisor.HypervisorUnavailable:
        raise host_unavailable(host) from None
    except hypervisor.HypervisorError:
        raise Unavailable(
            f"The console of VM {vm.name!r} cannot be read right now; try again shortly."
        ) from None
    text = data.decode("utf-8", errors="replace")
    if size > max_bytes:
        text = text.split("\n", 1)[-1]  # drop the partial first line
    text = ANSI_ESCAPE.sub("", text).replace("\r", "")
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")


def console_log_name(vm: VM) -> str:
    return f"{vm.id}.log"


def console_send(*, vm: VM, user, line: str) -> None:
    """Type one line into the guest's serial console (done by a worker, in the background)."""
    from django_q.tasks import async_task

    if not VM.objects.filter(pk=vm.pk, state=VMState.RUNNING).exists():
        raise InvalidState(f"VM {vm.name!r} is not running, so its console takes no input.")
    if len(line) > CONSOLE_LINE_MAX:
        raise ValidationError({"line": f"Keep a line to {CONSOLE_LINE_MAX} characters."})
    if any(unicodedata.category(ch) == "Cc" and ch != "\t" for ch in line):
        raise ValidationError({"line": "A line cannot contain control characters."})
    console_input_check(vm)
    console_rate_check(user)
    vm_id = str(vm.id)
    transaction.on_commit(lambda: async_task("vms.tasks.console_send", vm_id, line))


GUEST_INFO_SECONDS = 30
_guest_info: dict = {}
_guest_info_lock = threading.Lock()


def guest_info(vm: VM) -> hypervisor.GuestInfo | None:
    """What the running guest's agent says about it (system, host name, addresses, uptime),
    asked of its host at most every GUEST_INFO_SECONDS; None without an agent answering."""
    if vm.state != VMState.RUNNING or not vm.host.reachable:
        return None
    # Kept in this process (not the shared cache, which may be a database table): a page's
    # polls ask the host at most every GUEST_INFO_SECONDS and write nothing anywhere.
    now = time.monotonic()
    with _guest_info_lock:
        kept = _guest_info.get(vm.pk)
        if kept is not None and now - kept[0] < GUEST_INFO_SECONDS:
            return kept[1]
    try:
        info = vm.host.hypervisor.domain_guest_info(vm.domain_uuid)
    except hypervisor.HypervisorError:
        info = None
    with _guest_info_lock:
        for key in [k for k, (at, _) in _guest_info.items() if now - at >= GUEST_INFO_SECONDS]:
            del _guest_info[key]
        _guest_info[vm.pk] = (now, info)
    return info


def console_input_check(vm: VM) -> None:
    """Whether the guest can take a line now, asked of its host: `Unavailable` when the host
    does not answer, `InvalidState` when the guest is gone from it or not running there."""
    host = vm.host
    try:
        state = host.hypervisor.domain_state(vm.domain_uuid)
    except hypervisor.HypervisorUnavailable:
        raise host_unavailable(host) from None
    except hypervisor.HypervisorError:
        raise Unavailable(
            f"The console of VM {vm.name!r} takes no input right now; try again shortly."
        ) from None
    if state is None:
        raise InvalidState(
            f"VM {vm.name!r} is missing from its host, so its console takes no input. "
            "Repair it from its page, or delete it: its snapshots are kept."
        )
    if state != "running":
        raise InvalidState(f"VM {vm.name!r} is {state} on its host, so its console takes no input.")


def console_rate_check(user) -> None:
    """At most CONSOLE_LINES_PER_MINUTE lines a minute per user, across all their consoles."""
    import time

    limit = settings.CONSOLE_LINES_PER_MINUTE
    key = f"console-lines:{user.pk}:{int(time.time() // 60)}"
    rate_cache.add(key, 0, timeout=120)
    if rate_cache.incr(key) > limit:
        raise RateLimited(
            f"That is more than {limit} console lines a minute; wait a moment and type again."
        )


def image_for_new_vm(slug: str) -> Image:
    image = Image.objects.filter(slug=slug, is_public=True).select_related("host").first()
    if image is None:
        raise ValidationError({"image": f"There is no image {slug!r}."})
    return image
