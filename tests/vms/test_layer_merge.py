"""Merging a layer into the only layer built on it: chains get shorter, space is freed, and every
disk shows exactly what it showed. Real qcow2 layers in the test pool; the running-guest cases
boot a real guest."""

import hashlib
import subprocess
import tempfile
from pathlib import Path

import pytest

from accounts.models import Plan
from accounts.services import plan_change
from snapshots.models import Snapshot
from snapshots.services import snapshot_delete, snapshot_restore, snapshot_take
from tests import guest
from tests.conftest import succeeded
from tests.factories import layer_row, vm_row
from vms import layers
from vms.models import Layer, VMState
from vms.services import layers_merge_pending

pytestmark = pytest.mark.libvirt

MIB = 1024**2


def new_layer(host, parent=None):
    return layers.layer_create(host=host, parent=parent, virtual_size=16 * MIB)


def write(layer, offset, pattern, length=64 * 1024):
    path = layers.layer_path(layer)
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", f"write -P {pattern} {offset} {length}", path],
        check=True,
        capture_output=True,
    )


def shown(layer):
    """A digest of what the disk ending in `layer` shows the guest, byte for byte."""
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "disk.raw"
        source = layers.layer_path(layer)
        subprocess.run(
            ["qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", source, raw],
            check=True,
            capture_output=True,
        )
        return hashlib.sha256(raw.read_bytes()).hexdigest()


def volumes(host):
    return set(host.hypervisor.volume_names(host.pool_name))


def test_a_layer_only_one_layer_builds_on_merges_into_it_and_the_disks_show_the_same(host):
    base = new_layer(host)
    write(base, 0, 0x11, 256 * 1024)
    middle = new_layer(host, base)
    write(middle, 64 * 1024, 0x22)
    write(middle, 192 * 1024, 0x33)
    child = new_layer(host, middle)
    write(child, 192 * 1024, 0x44)
    top = new_layer(host, child)
    write(top, 0, 0x55)
    before = {"child": shown(child), "top": shown(top)}

    result = layers.layer_merge(middle.pk)

    assert result["merged"] is True
    assert not Layer.objects.filter(pk=middle.pk).exists()
    assert middle.volume_name not in volumes(host)
    child.refresh_from_db()
    top.refresh_from_db()
    assert (child.parent_id, child.depth, top.depth) == (base.pk, 2, 3)
    info = host.hypervisor.volume_info(host.pool_name, child.volume_name)
    assert info.backing_path == layers.layer_path(base)
    assert {"child": shown(child), "top": shown(top)} == before


def test_a_layer_two_layers_build_on_is_kept_until_one_of_them_is_gone(host):
    base = new_layer(host)
    middle = new_layer(host, base)
    write(middle, 0, 0x22)
    first, second = new_layer(host, middle), new_layer(host, middle)
    write(second, 0, 0x33)
    before = shown(second)

    assert layers.layer_merge(middle.pk)["merged"] is False
    assert Layer.objects.get(pk=middle.pk).state == "ready"

    layers.layer_release(first.pk)
    assert layers.layer_merge(middle.pk)["merged"] is True
    assert shown(Layer.objects.get(pk=second.pk)) == before


def test_a_layer_a_snapshot_or_an_image_needs_is_never_merged(host, alice):
    vm = vm_row(owner=alice, state=VMState.STOPPED)  # on the image's layer, its only child
    snapshot_layer = layer_row(host=host)
    layer_row(host=host, parent=snapshot_layer)
    Snapshot.objects.create(
        owner=alice, source_vm=vm, image=vm.image, name="kept", layer=snapshot_layer, state="ready"
    )

    for needed in (snapshot_layer, vm.image.layer):
        assert layers.layer_merge_target(needed) is None
        assert layers.layer_merge(needed.pk)["merged"] is False
        assert needed not in layers.layers_awaiting_merge()


def test_a_merge_cut_short_after_its_disk_work_is_finished_by_the_next_try(host):
    base = new_layer(host)
    middle = new_layer(host, base)
    write(middle, 0, 0x22)
    child = new_layer(host, middle)
    before = shown(child)
    # The worker died right after the rebase, before the database knew.
    host.hypervisor.volume_rebase(host.pool_name, child.volume_name, layers.layer_path(base))
    Layer.objects.filter(pk=middle.pk).update(state="deleting")

    assert layers.layer_merge(middle.pk)["merged"] is True
    assert Layer.objects.get(pk=child.pk).parent_id == base.pk
    assert middle.volume_name not in volumes(host)
    assert shown(Layer.objects.get(pk=child.pk)) == before


def test_deleting_snapshots_of_a_running_guest_merges_their_layers_while_it_runs(make_vm, alice):
    plan_change(user=alice, plan=Plan.objects.get(slug="professional"))  # 5 snapshots
    vm = make_vm(alice, name="merged")
    guest.wait_for_boot(vm)
    image_depth = vm.image.layer.depth
    taken = {}
    for value in ("v1", "v2", "v3", "v4"):
        guest.run(vm, f"echo {value} > /root/marker; sync; echo written")
        operation = succeeded(snapshot_take(vm=vm, user=alice, name=value))
        taken[value] = Snapshot.objects.get(pk=operation.result["snapshot"])
    guest.run(vm, "echo v5 > /root/marker; sync; echo written")
    vm.refresh_from_db()
    assert vm.active_layer.depth == image_depth + 5

    # v2's layer has one layer on it, v3's, which the running guest reads: v3's is committed
    # down into it (the layer above, v4's, is read-only too) and takes its place.
    succeeded(snapshot_delete(snapshot=taken["v2"], user=alice))
    layers_merge_pending()
    assert Snapshot.objects.get(pk=taken["v3"].pk).layer_id == taken["v2"].layer_id
    # v4's layer has one layer on it, the one the guest writes to: pulled up into that.
    succeeded(snapshot_delete(snapshot=taken["v4"], user=alice))
    layers_merge_pending()

    vm.refresh_from_db()
    assert vm.active_layer.depth == image_depth + 3
    chain = vm.host.hypervisor.domain_disk_chain(vm.domain_uuid)
    assert len(chain) == image_depth + 3
    assert guest.run(vm, "cat /root/marker") == "v5"
    assert guest.run(vm, "echo v6 > /root/marker; sync; cat /root/marker") == "v6"

    succeeded(snapshot_restore(snapshot=taken["v3"], user=alice))
    guest.wait_for_boot(vm, boots=2)
    assert guest.run(vm, "cat /root/marker") == "v3"
