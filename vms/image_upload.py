"""Registering guest images: upload the built files into a host's pool and record them."""

from __future__ import annotations

import json
import subprocess
import tempfile
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction

from vms import image_build, image_debian
from vms.models import Host, Image, Layer, LayerState

BUSYBOX_SLUG = "busybox"
DEBIAN_SLUG = "debian-12"


def image_build_busybox(*, host: Host, slug: str = BUSYBOX_SLUG) -> Image:
    """Build the small busybox guest from Debian packages and register it on `host`."""
    with tempfile.TemporaryDirectory(prefix="ks-image-") as tmp:
        files = image_build.build(Path(tmp))
        return image_register(
            host=host,
            slug=slug,
            name="Debian kernel + busybox",
            description=(
                f"A tiny Linux guest: Debian's {files.kernel_version} kernel with a busybox "
                "userland and a root shell on the serial console."
            ),
            os_name="Busybox on a Debian kernel",
            summary="busybox userland, root shell on the serial console, DHCP",
            files=files,
            live_identity=True,
        )


def image_cache_dir() -> Path:
    """Where built images are kept between builds (and between test runs)."""
    return settings.STORAGE_DIR / "image-cache"


def image_build_debian(*, host: Host, slug: str = DEBIAN_SLUG) -> tuple[Image, dict]:
    """Build the Debian 12 guest from Debian's packages (or take the build of the same recipe
    kept from before) and register it on `host`; returns it with what its build recorded."""
    files, build = image_debian.build_cached(image_cache_dir())
    image = image_register(
        host=host,
        slug=slug,
        name="Debian 12",
        description=(
            f"Debian 12 (bookworm) with Debian's {files.kernel_version} kernel. Its host name "
            "is the VM's name, its owner has an account with sudo, and a VM started from a "
            "snapshot makes its own machine-id and SSH host keys. The serial console logs in "
            "as root."
        ),
        os_name=image_debian.OS_NAME,
        summary=image_debian.SUMMARY,
        files=files,
        cmdline=image_debian.CMDLINE,
        live_identity=True,
    )
    return image, build


class UnsafeImage(ValueError):
    """A disk image that could make QEMU read files it should not."""


def inspect_qcow2(path: str) -> dict:
    """What `qemu-img info` says of a qcow2 file the service did not make itself, refused if it
    points outside itself: a backing file or an external data file would let a guest read a
    file of the host's."""
    result = subprocess.run(
        ["qemu-img", "info", "--output=json", "-f", "qcow2", path],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise UnsafeImage(f"Not a readable qcow2 image: {result.stderr.strip()}")
    info = json.loads(result.stdout)
    if info.get("format") != "qcow2":
        raise UnsafeImage(f"Expected a qcow2 image, found {info.get('format')!r}.")
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise UnsafeImage("The image names a backing file; only self-contained images are taken.")
    data = info.get("format-specific", {}).get("data", {})
    if data.get("data-file") or data.get("data-file-raw"):
        raise UnsafeImage("The image keeps its data in an external file; that is refused.")
    return info


def image_register(
    *,
    host: Host,
    slug: str,
    name: str,
    description: str,
    files: image_build.GuestImageFiles,
    os_name: str = "",
    summary: str = "",
    cmdline: str = image_build.CMDLINE,
    live_identity: bool = False,
) -> Image:
    """Upload an image's kernel, initrd and root disk through libvirt and record them."""
    layer_id = image_upload(host=host, files=files)
    try:
        return image_record(
            host=host,
            layer_id=layer_id,
            slug=slug,
            name=name,
            description=description,
            os_name=os_name,
            summary=summary,
            cmdline=cmdline,
            live_identity=live_identity,
        )
    except BaseException:
        for volume in image_volumes(layer_id):
            host.hypervisor.volume_delete(host.pool_name, volume)
        raise


def image_volumes(layer_id: uuid.UUID) -> tuple[str, str, str]:
    """The names of an image's kernel, initrd and root disk volumes."""
    return f"{layer_id}.vmlinuz", f"{layer_id}.initrd", f"{layer_id}.qcow2"


def image_upload(*, host: Host, files: image_build.GuestImageFiles) -> uuid.UUID:
    """Upload an image's files into the host's pool; returns the id naming its volumes."""
    inspect_qcow2(str(files.root_disk))
    adapter, pool = host.hypervisor, host.pool_name
    layer_id = uuid.uuid4()
    uploaded = []
    try:
        for volume, source in zip(
            image_volumes(layer_id), (files.kernel, files.initrd, files.root_disk), strict=True
        ):
            adapter.volume_upload(pool, volume, str(source))
            uploaded.append(volume)
    except BaseException:
        for volume in uploaded:
            adapter.volume_delete(pool, volume)
        raise
    return layer_id


def image_record(
    *,
    host: Host,
    layer_id: uuid.UUID,
    slug: str,
    name: str,
    description: str,
    os_name: str = "",
    summary: str = "",
    cmdline: str = image_build.CMDLINE,
    live_identity: bool = False,
) -> Image:
    """Record an uploaded image (see `image_upload`) as the current one under `slug`."""
    kernel_volume, initrd_volume, layer_volume = image_volumes(layer_id)
    info = host.hypervisor.volume_info(host.pool_name, layer_volume)
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
            os_name=os_name,
            summary=summary,
            host=host,
            layer=layer,
            kernel_volume=kernel_volume,
            initrd_volume=initrd_volume,
            cmdline=cmdline,
            live_identity=live_identity,
            min_disk_bytes=info.capacity,
        )
