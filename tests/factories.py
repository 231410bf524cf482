"""Rows for rule tests that never reach libvirt (no volumes behind them)."""

from __future__ import annotations

import itertools

from snapshots.models import Snapshot, SnapshotState
from vms.models import VM, Host, Image, Layer, LayerState, VMState

GIB = 1024**3
_n = itertools.count(1)

# Public keys made with ssh-keygen for the tests (their private halves were thrown away), and the
# fingerprints `ssh-keygen -lf` printed for them.
PUBLIC_KEYS = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOYgoX86G2o6WutWOtbVGR7pBv7L1moiiuf8rPrlEefd"
    " alice@laptop-1",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDFTjEt/85zawRuywsjRlWzFwRka0nFfxOset/YVVMTE"
    " alice@laptop-2",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIATcX2yC+AC8hlRPOiJtRHbzIcBy+7ZcwWL0V1fy0BoY"
    " alice@laptop-3",
]
FINGERPRINTS = [
    "SHA256:+ccCJXKYoTD8FKF6IkW1V6gDZiqUb30CJ1Ydwckn2Ns",
    "SHA256:B+MzdR35GXen2cYLrZvGDZajGjjuG1Gj4VOoRCBL5UM",
    "SHA256:Tcg6fbNmefajtnR/fvoSpWrIofwyZD2twDPuRghs8Ts",
]


def host_row(**kwargs) -> Host:
    defaults = {
        "name": f"host-{next(_n)}",
        "libvirt_uri": "test:///default",
        "pool_name": "nowhere",
        "pool_path": "/nonexistent/pool",
        "console_dir": "/nonexistent/console",
    }
    defaults.update(kwargs)
    return Host.objects.create(**defaults)


def layer_row(*, host: Host, parent: Layer | None = None, **kwargs) -> Layer:
    defaults = {
        "host": host,
        "parent": parent,
        "depth": parent.depth + 1 if parent else 1,
        "virtual_size": GIB,
        "state": LayerState.READY,
    }
    defaults.update(kwargs)
    return Layer.objects.create(**defaults)


def image_row(*, host: Host | None = None, slug: str = "busybox") -> Image:
    host = host or host_row()
    return Image.objects.create(
        slug=slug,
        name=slug.title(),
        host=host,
        layer=layer_row(host=host),
        kernel_volume="k",
        initrd_volume="i",
        cmdline="console=ttyS0",
        min_disk_bytes=GIB // 2,
    )


def vm_row(*, owner, image: Image | None = None, state: str = VMState.RUNNING, **kwargs) -> VM:
    image = image or image_row()
    defaults = {
        "name": f"vm-{next(_n)}",
        "host": image.host,
        "image": image,
        "disk_bytes": 4 * GIB,
        "state": state,
    }
    defaults.update(kwargs)
    vm = VM.objects.create(owner=owner, **defaults)
    vm.active_layer = layer_row(host=image.host, parent=image.layer)
    vm.save(update_fields=["active_layer"])
    return vm


def snapshot_row(vm: VM, name: str = "snap") -> Snapshot:
    """A ready snapshot of the VM, on a layer of its own (no volume behind it)."""
    return Snapshot.objects.create(
        owner=vm.owner,
        source_vm=vm,
        source_vm_name=vm.name,
        image=vm.image,
        name=name,
        layer=layer_row(host=vm.host, parent=vm.image.layer),
        state=SnapshotState.READY,
    )


def domain_running(fake, vm: VM) -> None:
    """A running guest for `vm` on a `FakeHypervisor` (`fake_hosts`), as far as its state goes."""
    fake.domain_define(f"<domain><uuid>{vm.domain_uuid}</uuid></domain>")
    fake.domain_start(vm.domain_uuid)
