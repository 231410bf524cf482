"""Which host a new VM goes to.

Call `host_place` inside the transaction that creates the VM row: it locks every host that takes
new VMs, so parallel requests place one after the other, and the VM row created before the
transaction ends reserves its memory, vCPUs and disk on the host chosen (usage is the sum over
the host's VMs). A request on another account waits at most for the other's transaction.
"""

from __future__ import annotations

from django.db.models import Count, Sum

from core.errors import Unavailable
from vms.layers import layer_chain
from vms.models import VM, Host, HostState, Layer, LayerCopy, LayerCopyState, VMState

GIB = 1024**3


def host_usage(hosts) -> dict:
    """{host id: {"memory_mib", "vcpus", "disk_bytes", "vms"}} over the hosts' VMs, but those
    being deleted and those whose creation failed (they hold nothing there)."""
    rows = (
        VM.objects.filter(host__in=hosts)
        .exclude(state__in=[VMState.DELETING, VMState.FAILED])
        .values("host")
        .annotate(
            memory_mib=Sum("memory_mib"),
            vcpus=Sum("vcpus"),
            disk_bytes=Sum("disk_bytes"),
            vms=Count("id"),
        )
    )
    usage = {host.pk: {"memory_mib": 0, "vcpus": 0, "disk_bytes": 0, "vms": 0} for host in hosts}
    for row in rows:
        usage[row.pop("host")] = row
    return usage


def chain_bytes_held(layer: Layer | None) -> dict:
    """{host id: bytes of `layer`'s chain that host holds} (a host with none is left out)."""
    if layer is None:
        return {}
    chain = layer_chain(layer)
    held: dict = {}
    for part in chain:
        held[part.host_id] = held.get(part.host_id, 0) + part.allocation + 1
    copies = LayerCopy.objects.filter(layer__in=chain, state=LayerCopyState.READY)
    for host_id, allocation in copies.values_list("host_id", "layer__allocation"):
        held[host_id] = held.get(host_id, 0) + allocation + 1
    return held


def host_place(
    *,
    vcpus: int,
    memory_mib: int,
    disk_bytes: int,
    layer: Layer | None,
    exclude: Host | None = None,
    only: Host | None = None,
) -> Host:
    """The enabled, answering host with room for a VM of this size: among those, the one that
    holds most of `layer`'s chain (no copying), then the least loaded. Call inside the
    transaction that creates the VM. Raises `Unavailable` when no host has room.

    `exclude` leaves a host out (the one a VM moves away from); `only` considers one host."""
    # Which hosts hold the chain only orders the choice: read before the hosts are locked.
    held = chain_bytes_held(layer)
    candidates = Host.objects.select_for_update().filter(state=HostState.ENABLED, reachable=True)
    if exclude is not None:
        candidates = candidates.exclude(pk=exclude.pk)
    if only is not None:
        candidates = candidates.filter(pk=only.pk)
    hosts = list(candidates.order_by("pk"))
    usage = host_usage(hosts)
    fitting = []
    for host in hosts:
        used = usage[host.pk]
        after = (
            (used["memory_mib"] + memory_mib) / max(host.memory_mib, 1),
            (used["vcpus"] + vcpus) / max(host.vcpus, 1),
            (used["disk_bytes"] + disk_bytes) / max(host.disk_gib * GIB, 1),
        )
        if max(after) <= 1:
            fitting.append((-held.get(host.pk, 0), max(after), host.name, host))
    if not fitting:
        raise Unavailable(
            f"No host has room for a VM with {memory_mib} MiB, {vcpus} vCPU(s) and "
            f"{disk_bytes // GIB} GiB of disk right now; try a smaller VM, or later."
        )
    return min(fitting, key=lambda found: found[:3])[3]
