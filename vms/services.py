"""Business rules for hosts, images and VMs."""

from pathlib import Path

from vms import hypervisor
from vms.models import Host
from vms.selectors import host_from_settings


def host_ensure_default() -> Host:
    """Register the host the settings describe, and make sure its storage pool runs."""
    wanted = host_from_settings()
    host, _ = Host.objects.update_or_create(
        name=wanted.name,
        defaults={
            "libvirt_uri": wanted.libvirt_uri,
            "domain_type": wanted.domain_type,
            "pool_name": wanted.pool_name,
            "pool_path": wanted.pool_path,
            "console_dir": wanted.console_dir,
        },
    )
    host_prepare(host)
    return host


def host_prepare(host: Host) -> None:
    """Create the host's storage pool and console folder where they are missing."""
    hypervisor.pool_ensure(host.libvirt_uri, host.pool_name, host.pool_path)
    Path(host.console_dir).mkdir(parents=True, exist_ok=True)
