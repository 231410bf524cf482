"""Disk layers: creating them on top of one another, freeing them when nothing needs them, and
merging one into the only layer built on it.

The database records every layer and its parent. A layer is needed while anything refers to it:
a VM writing to it, a snapshot or image made of it, or another layer built on it. Freeing goes
bottom-up, one layer at a time, each under a row lock, so a layer can never be freed while a new
layer is being built on it. Volume calls happen outside database transactions.

A layer that only one other layer builds on (its snapshot was deleted) is merged away, so that
chains stay as short as the snapshots kept: see `layer_merge`.
"""

from __future__ import annotations

import time

from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from core.errors import InvalidState
from core.sizes import size_text
from snapshots.models import Snapshot
from vms import hypervisor
from vms.models import VM, Host, Layer, LayerCopy, LayerCopyState, LayerState


def layer_path(layer: Layer, host: Host | None = None) -> str:
    """The layer's file on `host` (by default the host it was made on)."""
    host = host or layer.host
    return host.hypervisor.volume_info(host.pool_name, layer.volume_name).path


def volume_path(host: Host, volume_name: str) -> str:
    return host.hypervisor.volume_info(host.pool_name, volume_name).path


def layer_create(
    *, host: Host, parent: Layer | None, virtual_size: int, full_copy: bool = False
) -> Layer:
    """A new writable layer on top of `parent` (instant), or with `full_copy` an independent copy
    of everything `parent` holds (costs a read of the whole chain).

    A parent made on another host is first copied to `host`, with the layers under it
    (`layer_chain_seed`)."""
    if parent is not None and host.pk not in layer_hosts(parent):
        layer_chain_seed(parent, host)
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
            info = host.hypervisor.volume_copy(
                host.pool_name,
                parent.volume_name,
                layer.volume_name,
                capacity=layer.virtual_size,
            )
        else:
            info = host.hypervisor.volume_create(
                host.pool_name,
                layer.volume_name,
                capacity=layer.virtual_size,
                backing_path=layer_path(parent, host) if parent else None,
            )
    except BaseException:
        host.hypervisor.volume_delete(host.pool_name, layer.volume_name)
        layer.delete()
        raise
    Layer.objects.filter(pk=layer.pk).update(state=LayerState.READY, allocation=info.allocation)
    layer.state = LayerState.READY
    layer.allocation = info.allocation
    return layer


def layer_freeze(layer: Layer) -> Layer:
    """Record the final size of a layer that no longer takes writes (it became a snapshot's)."""
    host = layer.host
    info = host.hypervisor.volume_info(host.pool_name, layer.volume_name)
    Layer.objects.filter(pk=layer.pk).update(allocation=info.allocation)
    layer.allocation = info.allocation
    return layer


def layer_unwritten(layer: Layer) -> bool:
    """Whether nothing was written into a layer since it was made: it takes on disk what it took
    when empty (a write into a new layer allocates clusters, so its file grows)."""
    host = layer.host
    info = host.hypervisor.volume_info(host.pool_name, layer.volume_name)
    return info.allocation <= layer.allocation


def layer_is_needed(layer: Layer) -> bool:
    """Whether anything refers to the layer: a VM, a snapshot, an image or a child layer."""
    for relation in Layer._meta.related_objects:
        if relation.related_model is LayerCopy:
            continue  # copies on other hosts go with the layer
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
        for copy in LayerCopy.objects.filter(layer=layer).select_related("host"):
            copy.host.hypervisor.volume_delete(copy.host.pool_name, layer.volume_name)
            copy.delete()
        layer.host.hypervisor.volume_delete(layer.host.pool_name, layer.volume_name)
        current = layer.parent_id
        layer.delete()
        freed.append(layer.pk)
    return freed


# --- Merging a layer into the one layer built on it ---------------------------------------------

RUNNING = ("running", "paused")


def _references(layer_model=Layer):
    """The relations that need a layer, other than the layers built on it."""
    return [
        r
        for r in layer_model._meta.related_objects
        if r.related_model is not Layer and r.related_model is not LayerCopy
    ]


def layer_merge_target(layer: Layer) -> Layer | None:
    """The one layer `layer` can be merged into: its only child, when nothing else needs it.

    Layers copied to other hosts are kept as they are: chains there are built on the copies.
    """
    for relation in _references():
        if getattr(layer, relation.get_accessor_name()).exists():
            return None
    children = list(layer.children.all()[:2])
    if len(children) != 1 or children[0].state != LayerState.READY:
        return None
    if LayerCopy.objects.filter(layer__in=[layer, children[0]]).exists():
        return None
    if children[0].host_id != layer.host_id:
        return None
    return children[0]


def layers_awaiting_merge():
    """Layers that something builds on and nothing else needs (checked one by one with
    `layer_merge_target`: only those with a single child merge)."""
    found = Layer.objects.filter(
        state__in=[LayerState.READY, LayerState.DELETING],
        children__isnull=False,
    )
    for relation in _references():
        needing = relation.related_model.objects.filter(**{relation.field.name: OuterRef("pk")})
        found = found.filter(~Exists(needing))
    return found.distinct().select_related("host")


def layer_subtree(layer: Layer) -> list:
    """The ids of a layer and of every layer built on it, at any depth."""
    found, frontier = [layer.pk], [layer.pk]
    while frontier:
        frontier = list(Layer.objects.filter(parent_id__in=frontier).values_list("pk", flat=True))
        found.extend(frontier)
    return found


def layer_vms(layer: Layer):
    """The VMs whose disk chain holds `layer`."""
    return VM.objects.filter(active_layer__in=layer_subtree(layer)).select_related("host")


def layer_owner(layer: Layer):
    """Whose disk data a layer holds: the owner of a VM or a snapshot (of any app above) that
    needs it or a layer built on it; None when nothing owned needs it."""
    subtree = layer_subtree(layer)
    for relation in _references():
        model = relation.related_model
        if not any(f.name == "owner" for f in model._meta.get_fields()):
            continue
        row = model.objects.filter(**{f"{relation.field.name}__in": subtree}).first()
        if row is not None:
            return row.owner
    return None


def layer_merge(layer_id, *, should_stop=None) -> dict:
    """Merge a layer that only one layer builds on into that one, and free it: the chain gets a
    layer shorter, and the disk space the two held twice is freed. What every disk shows stays
    exactly as it was. Safe to call again after a crash: work already done is recognised.

    Three ways, by who has the child open:
    - no running guest: `qemu-img rebase` puts the child onto the layer's parent, copying into it
      what the layer held (and the child did not overwrite);
    - the child is a running guest's top layer: a block pull with the parent as base, the same
      copy done by QEMU while the guest runs;
    - the child is a read-only layer of one running guest's chain: a block commit of the child
      down into the layer, which then takes the child's place (its snapshot, the layers above).
    Anything else (two running guests share the child) keeps the layer until that changes.

    `should_stop()` (housekeeping giving way) stops the disk work at a safe point, raising
    `hypervisor.Interrupted`: the layer is kept as it was, for the next try.
    """
    with transaction.atomic():
        layer = (
            Layer.objects.select_for_update(of=("self",))
            .select_related("host", "parent")
            .filter(pk=layer_id, state__in=[LayerState.READY, LayerState.DELETING])
            .first()
        )
        if layer is None:
            return {"merged": False, "message": "The layer was already merged or freed."}
        child = layer_merge_target(layer)
        if child is None:
            Layer.objects.filter(pk=layer.pk).update(state=LayerState.READY)
            return {"merged": False, "message": "The layer is needed as it is; it was kept."}
        Layer.objects.filter(pk=layer.pk).update(state=LayerState.DELETING)
    host = layer.host
    uri, pool = host.libvirt_uri, host.pool_name
    parent_path = layer_path(layer.parent) if layer.parent else None
    try:
        host.hypervisor.pool_refresh(pool)
        done = _merge_already_done(layer, child, parent_path)
        if done == "pulled":
            return _pulled_into(child, layer)
        if done == "committed":
            return _committed_into(layer, child)
        running = [
            vm
            for vm in layer_vms(child)
            if vm.host.hypervisor.domain_state(vm.domain_uuid) in RUNNING
        ]
        if not running and not hypervisor.uri_is_local(uri):
            reason = f"host {host.name} is another machine; it is merged while its VM runs."
        elif not running:
            host.hypervisor.volume_rebase(
                pool, child.volume_name, parent_path, should_stop=should_stop
            )
            return _pulled_into(child, layer)
        elif len(running) == 1 and running[0].active_layer_id == child.pk:
            host.hypervisor.domain_block_pull(
                running[0].domain_uuid, base_path=parent_path, should_stop=should_stop
            )
            host.hypervisor.pool_refresh(pool)
            return _pulled_into(child, layer)
        else:
            reason = _why_not_commit(child, running)
            if reason is None:
                host.hypervisor.domain_block_commit(
                    running[0].domain_uuid,
                    top_path=layer_path(child),
                    base_path=layer_path(layer),
                    should_stop=should_stop,
                )
                host.hypervisor.pool_refresh(pool)
                return _committed_into(layer, child)
    except BaseException:
        # Whatever a merge cut short did, every disk still shows what it showed: the layer is
        # simply kept, for the next try.
        Layer.objects.filter(pk=layer.pk, state=LayerState.DELETING).update(state=LayerState.READY)
        raise
    Layer.objects.filter(pk=layer.pk).update(state=LayerState.READY)
    return {"merged": False, "message": f"The layer was kept: {reason}"}


def _merge_already_done(layer: Layer, child: Layer, parent_path: str | None) -> str | None:
    """ "pulled" or "committed" when a merge cut short after its disk work left only the database
    to update (the files' backing paths say so); None otherwise."""
    host = layer.host
    info = host.hypervisor.volume_info(host.pool_name, child.volume_name)
    if info.backing_path == parent_path:
        return "pulled"
    above = list(child.children.all()[:2])
    if len(above) == 1:
        info = host.hypervisor.volume_info(host.pool_name, above[0].volume_name)
        if info.backing_path == layer_path(layer):
            return "committed"
    return None


def _why_not_commit(child: Layer, running: list) -> str | None:
    if len(running) > 1:
        return "several running VMs read the layer above it."
    if child.children.count() != 1:
        return "the layer above it has several layers built on it."
    if Snapshot.objects.memory_paired_with(child):
        return "a live snapshot's memory is paired with the layer above it."
    return None


def _shift_depths(layer_ids: list, by: int) -> None:
    Layer.objects.filter(pk__in=layer_ids).update(depth=F("depth") + by)


def _pulled_into(child: Layer, layer: Layer) -> dict:
    """The child now holds what the layer held and sits on the layer's parent: record it, and
    free the layer."""
    host = child.host
    info = host.hypervisor.volume_info(host.pool_name, child.volume_name)
    with transaction.atomic():
        Layer.objects.filter(pk=child.pk).update(parent=layer.parent_id, allocation=info.allocation)
        _shift_depths(layer_subtree(child), -1)
    _free(layer)
    return {"merged": True, "message": "The layer was merged into the one built on it."}


def _committed_into(layer: Layer, child: Layer) -> dict:
    """The layer now holds what the child showed and the layer above the child sits on it: the
    layer takes the child's place (everything that needed the child needs it), and the child is
    freed."""
    host = layer.host
    info = host.hypervisor.volume_info(host.pool_name, layer.volume_name)
    with transaction.atomic():
        for relation in _references():
            relation.related_model.objects.filter(**{relation.field.name: child}).update(
                **{relation.field.name: layer}
            )
        above = list(Layer.objects.filter(parent=child).values_list("pk", flat=True))
        Layer.objects.filter(pk__in=above).update(parent=layer)
        for pk in above:
            _shift_depths(layer_subtree(Layer(pk=pk)), -1)
        Layer.objects.filter(pk=layer.pk).update(
            state=LayerState.READY,
            allocation=info.allocation,
            virtual_size=max(layer.virtual_size, child.virtual_size),
        )
        Layer.objects.filter(pk=child.pk).update(state=LayerState.DELETING)
    _free(child)
    return {"merged": True, "message": "The layer above it was merged down into it."}


def _free(layer: Layer) -> None:
    layer.host.hypervisor.volume_delete(layer.host.pool_name, layer.volume_name)
    Layer.objects.filter(pk=layer.pk).delete()


# --- Layers on several hosts ----------------------------------------------------------------


def layer_hosts(layer: Layer) -> set:
    """The ids of the hosts that hold the layer: the one it was made on, and ready copies."""
    copies = LayerCopy.objects.filter(layer=layer, state=LayerCopyState.READY)
    return {layer.host_id, *copies.values_list("host_id", flat=True)}


def layer_holders(layer: Layer) -> list:
    """The hosts that hold the layer: the one it was made on first, then those with a copy."""
    copies = LayerCopy.objects.filter(layer=layer, state=LayerCopyState.READY)
    return [layer.host] + [copy.host for copy in copies.select_related("host")]


# libvirt refuses a backing chain longer than 200 images; a walk past this is a loop in the rows.
CHAIN_WALK_LIMIT = 1000


def layer_chain(layer: Layer) -> list:
    """The layer and every layer under it, bottom first."""
    chain = []
    while layer is not None:
        if len(chain) >= CHAIN_WALK_LIMIT:
            raise InvalidState(
                f"The disk's chain of layers is longer than {CHAIN_WALK_LIMIT} or loops; "
                "ask an administrator to repair it."
            )
        chain.append(layer)
        layer = Layer.objects.select_related("host").filter(pk=layer.parent_id).first()
    return chain[::-1]


# How long a copy may stay unfinished before another worker takes it over (its worker died).
COPY_STALE_SECONDS = 15 * 60
COPY_POLL_SECONDS = 0.5


def layer_chain_seed(layer: Layer, host: Host, *, on_progress=None) -> int:
    """Make `host` hold the layer and every layer under it: each missing one is streamed from a
    host that holds it, through libvirt (sparse, no temporary file), into the same path of
    `host`'s pool. Returns the number of layers copied. `on_progress(fraction, detail)` hears
    how far it is, `detail` in words ("layer 2 of 3: 12 MiB of 40 MiB").

    Several workers seeding the same layer to the same host copy it once: the others wait.
    """
    chain = layer_chain(layer)
    copied = 0
    for index, part in enumerate(chain):
        counted = f"layer {index + 1} of {len(chain)}"

        def streamed(done: int, total: int, index=index, counted=counted) -> None:
            share = done / total if total else 1.0
            on_progress(
                (index + share) / len(chain),
                f"{counted}: {size_text(done)} of {size_text(total)}",
            )

        if on_progress:
            on_progress(index / len(chain), counted)
        if _layer_copy(part, host, on_bytes=streamed if on_progress else None):
            copied += 1
    return copied


def _layer_copy(layer: Layer, host: Host, *, on_bytes=None) -> bool:
    """Copy one layer to `host` unless it is there. True when this call copied it."""
    if layer.host_id == host.pk:
        return False
    deadline = time.monotonic() + COPY_STALE_SECONDS
    while True:
        with transaction.atomic():
            copy, created = LayerCopy.objects.select_for_update().get_or_create(
                layer=layer, host=host
            )
            if copy.state == LayerCopyState.READY:
                return False
            stale = (timezone.now() - copy.created_at).total_seconds() > COPY_STALE_SECONDS
            if created or stale or time.monotonic() > deadline:
                LayerCopy.objects.filter(pk=copy.pk).update(created_at=timezone.now())
                break
        time.sleep(COPY_POLL_SECONDS)  # another worker is copying it
    if host.pool_path != layer.host.pool_path:
        LayerCopy.objects.filter(pk=copy.pk).delete()
        raise InvalidState(
            f"Hosts {layer.host.name} and {host.name} keep their pools in different folders; "
            "layers move between hosts only when every host uses the same pool folder."
        )
    try:
        source = _reachable_holder(layer, exclude=host)
        source.hypervisor.volume_transfer(
            source.pool_name, host.hypervisor, host.pool_name, layer.volume_name, on_bytes=on_bytes
        )
    except BaseException:
        LayerCopy.objects.filter(pk=copy.pk, state=LayerCopyState.COPYING).delete()
        raise
    LayerCopy.objects.filter(pk=copy.pk).update(state=LayerCopyState.READY)
    return True


def _reachable_holder(layer: Layer, *, exclude: Host) -> Host:
    """A host to copy the layer from: the one it was made on, else any with a ready copy."""
    last_error = None
    for holder in layer_holders(layer):
        if holder.pk == exclude.pk:
            continue
        try:
            holder.hypervisor.version()
            return holder
        except hypervisor.HypervisorError as exc:
            last_error = exc
    raise hypervisor.HypervisorUnavailable(
        f"No host that holds the disk layer answers ({last_error}); try again when "
        f"{layer.host.name} is back."
    )


def volumes_seed(source: Host, host: Host, names: list[str]) -> None:
    """Copy volumes that never change (an image's kernel and initrd) to `host` unless there."""
    if source.pk == host.pk:
        return
    present = set(host.hypervisor.volume_names(host.pool_name))
    for name in names:
        if name not in present:
            source.hypervisor.volume_transfer(
                source.pool_name, host.hypervisor, host.pool_name, name
            )
