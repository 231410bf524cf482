"""Registering guest images: upload the built files into a host's pool and record them."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from django.db import transaction

from vms import guest_image, hypervisor
from vms.models import Host, Image, Layer, LayerState

BUSYBOX_SLUG = "busybox"


def image_build_busybox(*, host: Host, slug: str = BUSYBOX_SLUG) -> Image:
    """Build the small busybox guest from Debian packages and register it on `host`."""
    with tempfile.TemporaryDirectory(prefix="ks-image-") as tmp:
        files = guest_image.build(Path(tmp))
        return image_register(
            host=host,
            slug=slug,
            name="Debian kernel + busybox",
            description=(
                f"A tiny Linux guest: Debian's {files.kernel_version} kernel with a busybox "
                "userland and a root shell on the serial console."
            ),
            files=files,
        )


def image_register(
    *, host: Host, slug: str, name: str, description: str, files: guest_image.GuestImageFiles
) -> Image:
    """Upload an image's kernel, initrd and root disk through libvirt and record them."""
    uri, pool = host.libvirt_uri, host.pool_name
    layer_id = uuid.uuid4()
    kernel_volume = f"{layer_id}.vmlinuz"
    initrd_volume = f"{layer_id}.initrd"
    layer_volume = f"{layer_id}.qcow2"
    uploaded = []
    try:
        for volume, source in (
            (kernel_volume, files.kernel),
            (initrd_volume, files.initrd),
            (layer_volume, files.root_disk),
        ):
            hypervisor.volume_upload(uri, pool, volume, str(source))
            uploaded.append(volume)
        info = hypervisor.volume_info(uri, pool, layer_volume)
        with transaction.atomic():
            layer = Layer.objects.create(
                id=layer_id,
                host=host,
                virtual_size=info.capacity,
                allocation=info.allocation,
                state=LayerState.READY,
            )
            Image.objects.filter(slug=slug).update(
                slug=f"{slug}-old-{layer_id.hex[:8]}", is_public=False
            )
            return Image.objects.create(
                slug=slug,
                name=name,
                description=description,
                host=host,
                layer=layer,
                kernel_volume=kernel_volume,
                initrd_volume=initrd_volume,
                cmdline=guest_image.CMDLINE,
                min_disk_bytes=info.capacity,
            )
    except BaseException:
        for volume in uploaded:
            hypervisor.volume_delete(uri, pool, volume)
        raise
