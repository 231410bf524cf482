"""The reconciler: compares the database with libvirt and the storage pools, and repairs drift.

Run by the task queue's scheduler every few minutes and by `manage.py reconcile`. It

- fails operations whose worker died (past their deadline), repairing what they left half-done,
  and sends again operations that waited too long in the queue (their task was lost);
- marks VMs whose domain vanished, and corrects recorded states that drifted (a guest that
  powered itself off);
- finishes layers left half-created or half-deleted, and frees layers nothing refers to;
- reports domains and volumes that no row accounts for, and removes them once they have been
  seen for a grace period and are provably unreferenced (no layer row, and no volume built on
  them). It looks only at what carries this installation's identity (`vms.ownership`): its own
  domains, and pools no other installation has claimed.

It never frees a layer that a VM, a snapshot, an image or another layer refers to: freeing goes
through `vms.layers.layer_release`, which checks exactly that under a row lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from core.installation import installation_id
from operations.models import Operation
from operations.services import operations_expire, operations_resend
from snapshots.models import Snapshot
from vms import hypervisor, layers, ownership, publishing
from vms.models import (
    VM,
    Host,
    HostState,
    Image,
    Layer,
    LayerState,
    OrphanSighting,
    ReconcileRun,
    VMState,
    vm_id_of_lock,
)

logger = logging.getLogger(__name__)


def volumes_kept(host: Host) -> set[str]:
    """The volumes of `host`'s pool that are neither layers nor image files but still needed:
    the snapshots' memory files."""
    return Snapshot.objects.memory_volume_names()


@dataclass
class Report:
    found: list[str] = field(default_factory=list)
    healthy: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.found.append(line)
        logger.warning("reconcile: %s", line)

    def text(self) -> str:
        lines = [f"Found and handled {len(self.found)} problem(s)."]
        lines += [f"- {line}" for line in self.found]
        lines += [f"  {line}" for line in self.healthy]
        return "\n".join(lines)


def reconcile(*, now=None, grace: timedelta | None = None) -> Report:
    """One pass over every host. Returns (and records) what it found and did."""
    now = now or timezone.now()
    grace = grace if grace is not None else timedelta(minutes=settings.RECONCILE_GRACE_MINUTES)
    started = timezone.now()
    report = Report()
    _operations(report, now, grace)
    for host in Host.objects.exclude(state=HostState.DISABLED):
        try:
            _host(report, host, now, grace)
        except hypervisor.HypervisorError as exc:
            report.add(f"Host {host.name}: libvirt did not answer ({exc}); checked next time.")
    publishing.publish_sync()  # states it corrected change what is published
    ReconcileRun.objects.create(
        started_at=started,
        finished_at=timezone.now(),
        summary=report.text(),
        problems=len(report.found),
    )
    records_prune(now=now)
    return report


def records_prune(*, now=None) -> dict[str, int]:
    """Delete the reconciler's own records once older than RECORD_RETENTION_DAYS: its reports,
    and sightings of things that have been gone that long."""
    old = (now or timezone.now()) - timedelta(days=settings.RECORD_RETENTION_DAYS)
    return {
        "reconcile runs": ReconcileRun.objects.filter(started_at__lt=old).delete()[0],
        "orphan sightings": OrphanSighting.objects.filter(first_seen__lt=old).delete()[0],
    }


def _operations(report: Report, now, grace: timedelta) -> None:
    for operation in operations_expire(now=now):
        report.add(f"Operation {operation.kind} on {operation.target_name!r}: {operation.error}")
    operations_resend(
        before=now - grace,
        on_sent=lambda operation: report.add(
            f"Operation {operation.kind} on {operation.target_name!r} waited since "
            f"{operation.created_at:%H:%M:%S} for a worker; it was sent again."
        ),
    )


def _host(report: Report, host: Host, now, grace: timedelta) -> None:
    # Only this installation's domains, and those from before domains carried an installation
    # (compared with the VMs, never removed); another installation's are not looked at.
    mine = installation_id()  # read once, not once a domain
    records = {
        record.uuid: record
        for record in host.hypervisor.domains()
        if ownership.domain_is_ours(record, mine) or ownership.domain_is_unmarked(record, host)
    }
    locks = Operation.objects.active().values_list("lock", flat=True)
    busy = {vm_id_of_lock(lock) for lock in locks} - {None}
    vms = list(VM.objects.filter(host=host).select_related("host"))
    known_domains = {vm.domain_uuid for vm in vms}

    for vm in vms:
        if vm.pk in busy or vm.state in (VMState.CREATING, VMState.DELETING, VMState.FAILED):
            continue
        record = records.get(vm.domain_uuid)
        if record is None:
            if vm.state != VMState.ERROR:
                VM.objects.filter(pk=vm.pk).update(state=VMState.ERROR)
                report.add(f"VM {vm.name!r} ({vm.owner}): its domain vanished; marked as error.")
            continue
        actual = VMState.RUNNING if record.active else VMState.STOPPED
        if vm.state != actual:
            VM.objects.filter(pk=vm.pk).update(state=actual)
            report.add(f"VM {vm.name!r}: recorded {vm.state}, really {actual}; corrected.")
        else:
            report.healthy.append(f"VM {vm.name!r}: {actual}, as recorded.")

    for domain_uuid, record in records.items():
        if domain_uuid in known_domains or not ownership.domain_is_ours(record, mine):
            continue
        if _seen_long_enough(host, OrphanSighting.Kind.DOMAIN, record.name, now, grace):
            host.hypervisor.domain_undefine(domain_uuid)
            _forget_sighting(host, OrphanSighting.Kind.DOMAIN, record.name)
            report.add(f"Domain {record.name}: belonged to no VM; removed.")
        else:
            report.add(f"Domain {record.name}: belongs to no VM; removed if still so later.")

    _layers(report, host, now, grace)
    _volumes(report, host, now, grace)


def _layers(report: Report, host: Host, now, grace: timedelta) -> None:
    old = Q(host=host, created_at__lt=now - grace)
    stuck = Layer.objects.filter(old, state__in=[LayerState.CREATING, LayerState.DELETING])
    unreferenced = Layer.objects.filter(
        old,
        state=LayerState.READY,
        children__isnull=True,
        active_for__isnull=True,
        images__isnull=True,
        snapshots__isnull=True,
    )
    for layer in [*stuck, *unreferenced]:
        if layers.layer_is_needed(layer):
            continue
        # A layer half-created by a worker that died is freed like any other unneeded one.
        Layer.objects.filter(pk=layer.pk, state=LayerState.CREATING).update(
            state=LayerState.DELETING
        )
        freed = layers.layer_release(layer.pk)
        if freed:
            report.add(f"Layer {layer.pk}: nothing needed it; freed ({len(freed)} layer(s)).")


def _volumes(report: Report, host: Host, now, grace: timedelta) -> None:
    pool = host.pool_name
    names = set(host.hypervisor.volume_names(pool))
    if ownership.pool_claims_of_others(names):
        taken = ownership.pool_taken_message(host)
        report.add(f"Host {host.name}: {taken} Its volumes are left alone.")
        return
    names = {name for name in names if not ownership.is_pool_claim(name)}
    known = {layer.volume_name for layer in Layer.objects.filter(host=host).only("id")}
    # Copies of layers made elsewhere, and every image's kernel and initrd (copied to the hosts
    # that run its VMs; names are ids, so other hosts' names do no harm).
    known |= {f"{pk}.qcow2" for pk in host.layer_copies.values_list("layer_id", flat=True)}
    for kernel, initrd in Image.objects.values_list("kernel_volume", "initrd_volume"):
        known |= {kernel, initrd}
    known |= volumes_kept(host)
    for layer in Layer.objects.filter(host=host, state=LayerState.READY).only("id"):
        if layer.volume_name not in names:
            report.add(f"Layer {layer.pk}: its volume is missing from pool {pool}! Left as is.")
    strangers = names - known
    if not strangers:
        return
    parent_of = {}
    for name in names:
        info = host.hypervisor.volume_info(pool, name)
        if info.backing_path:
            parent_of[name] = info.backing_path.rsplit("/", 1)[-1]
    # Whatever a known layer is built on, directly or not, is needed, whatever the rows say.
    needed = set()
    for name in known:
        while name in parent_of and parent_of[name] not in needed:
            name = parent_of[name]
            needed.add(name)
    for name in sorted(strangers & needed):
        report.add(f"Volume {name}: no layer row, but a layer is built on it; kept.")
    candidates = strangers - needed
    expired = {
        name
        for name in candidates
        if _seen_long_enough(host, OrphanSighting.Kind.VOLUME, name, now, grace)
    }
    # A volume goes only together with every volume built on it.
    removable = set(expired)
    changed = True
    while changed:
        changed = False
        for name in list(removable):
            children = {child for child, parent in parent_of.items() if parent == name}
            if not children <= removable:
                removable.discard(name)
                changed = True
    for name in sorted(removable):
        host.hypervisor.volume_delete(pool, name)
        _forget_sighting(host, OrphanSighting.Kind.VOLUME, name)
        report.add(f"Volume {name}: belonged to nothing; removed.")
    for name in sorted(candidates - removable):
        report.add(f"Volume {name}: belongs to nothing; removed if still so later.")


def _seen_long_enough(host: Host, kind: str, name: str, now, grace: timedelta) -> bool:
    sighting, _ = OrphanSighting.objects.get_or_create(
        host=host, kind=kind, name=name, defaults={"first_seen": now}
    )
    return now - sighting.first_seen >= grace


def _forget_sighting(host: Host, kind: str, name: str) -> None:
    OrphanSighting.objects.filter(host=host, kind=kind, name=name).delete()
