"""Disk layers: creating them on top of one another, and freeing them when nothing needs them.

The database records every layer and its parent. A layer is needed while anything refers to it:
a VM writing to it, a snapshot or image made of it, or another layer built on it. Freeing goes
bottom-up, one layer at a time, each under a row lock, so a layer can never be freed while a new
layer is being built on it. Volume calls happen outside database transactions.
"""

from __future__ import annotations

from django.db import transaction

from core.errors import InvalidState
from vms import hypervisor
from vms.models import Host, Layer, LayerState


def layer_path(layer: Layer) -> str:
    host = layer.host
    return hypervisor.volume_info(host.libvirt_uri, host.pool_name, layer.volume_name).path


def volume_path(host: Host, volume_name: str) -> str:
    return hypervisor.volume_info(host.libvirt_uri, host.pool_name, volume_name).path


def layer_create(
    *, host: Host, parent: Layer | None, virtual_size: int, full_copy: bool = False
) -> Layer:
    """A new writable layer on top of `parent` (instant), or with `full_copy` an independent copy
    of everything `parent` holds (costs a read of the whole chain)."""
    with transaction.atomic():
        if parent is not None:
            parent = Layer.objects.select_for_update().get(pk=parent.pk)
            if parent.state != LayerState.READY:
                raise InvalidState("The disk this builds on is being deleted.")
        layer = Layer.objects.create(
            host=host,
            parent=None if full_copy else parent,
            depth=1 if (full_copy or parent is None) else parent.depth + 1,
            virtual_size=max(virtual_size, parent.virtual_size if parent else 0),
        )
    try:
        if full_copy:
            info = hypervisor.volume_copy(
                host.libvirt_uri,
                host.pool_name,
                parent.volume_name,
                layer.volume_name,
                capacity=layer.virtual_size,
            )
        else:
            info = hypervisor.volume_create(
                host.libvirt_uri,
                host.pool_name,
                layer.volume_name,
                capacity=layer.virtual_size,
                backing_path=layer_path(parent) if parent else None,
            )
    except BaseException:
        hypervisor.volume_delete(host.libvirt_uri, host.pool_name, layer.volume_name)
        layer.delete()
        raise
    Layer.objects.filter(pk=layer.pk).update(state=LayerState.READY, allocation=info.allocation)
    layer.state = LayerState.READY
    layer.allocation = info.allocation
    return layer


def layer_freeze(layer: Layer) -> Layer:
    """Record the final size of a layer that no longer takes writes (it became a snapshot's)."""
    host = layer.host
    info = hypervisor.volume_info(host.libvirt_uri, host.pool_name, layer.volume_name)
    Layer.objects.filter(pk=layer.pk).update(allocation=info.allocation)
    layer.allocation = info.allocation
    return layer


def layer_unwritten(layer: Layer) -> bool:
    """Whether nothing was written into a layer since it was made: it takes on disk what it took
    when empty (a write into a new layer allocates clusters, so its file grows)."""
    host = layer.host
    info = hypervisor.volume_info(host.libvirt_uri, host.pool_name, layer.volume_name)
    return info.allocation <= layer.allocation


def layer_is_needed(layer: Layer) -> bool:
    """Whether anything refers to the layer: a VM, a snapshot, an image or a child layer."""
    for relation in Layer._meta.related_objects:
        if getattr(layer, relation.get_accessor_name()).exists():
            return True
    return False


def layer_release(layer_id) -> list:
    """Free the layer if nothing needs it, then its parent the same way, and so on up.

    Returns the ids of the layers freed. Safe to call again after a crash: a layer left marked
    as deleting is picked up where it stopped.
    """
    freed = []
    current = layer_id
    while current is not None:
        with transaction.atomic():
            layer = (
                Layer.objects.select_for_update()
                .select_related("host")
                .filter(pk=current, state__in=[LayerState.READY, LayerState.DELETING])
                .first()
            )
            if layer is None or layer_is_needed(layer):
                return freed
            Layer.objects.filter(pk=layer.pk).update(state=LayerState.DELETING)
        hypervisor.volume_delete(layer.host.libvirt_uri, layer.host.pool_name, layer.volume_name)
        current = layer.parent_id
        layer.delete()
        freed.append(layer.pk)
    return freed
