"""The values the hypervisor adapter takes and returns, and what can be told from a URI alone."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

METADATA_NS = "https://koding-snapshots.invalid/xmlns/vm/1"
METADATA_PREFIX = "ks"
DISK_TARGET = "vda"


@dataclass(frozen=True)
class VolumeInfo:
    name: str
    path: str
    capacity: int
    allocation: int
    backing_path: str | None


@dataclass(frozen=True)
class GuestInfo:
    """What a running guest's agent says about it."""

    os_name: str  # e.g. "Debian GNU/Linux 12 (bookworm)"
    hostname: str
    addresses: tuple[str, ...]  # its IPv4 addresses but loopback
    uptime_seconds: float | None


@dataclass(frozen=True)
class NetworkSpec:
    """The network a host's guests live on: NAT (or none) to the outside, DHCP, isolated ports."""

    name: str
    gateway: str
    netmask: str
    dhcp_start: str
    dhcp_end: str
    internet: bool

    @property
    def filter_name(self) -> str:
        return f"{self.name}-guest"


@dataclass(frozen=True)
class DomainSpec:
    """Everything a domain definition is made of. No user-supplied text reaches libvirt."""

    uuid: uuid.UUID
    domain_type: str
    vcpus: int
    memory_mib: int
    disk_path: str
    mac: str
    kernel_path: str
    initrd_path: str
    cmdline: str
    console_log: str
    metadata: dict[str, str] = field(default_factory=dict)
    # The guests' network, its filter and this guest's address on it; no network, no interface.
    network: str | None = None
    network_filter: str | None = None
    ip_address: str | None = None
    # What the guest reads from QEMU's firmware configuration device at boot, by name under
    # opt/ (e.g. its owner's SSH public keys): checked data, read by the image's boot unit.
    firmware_config: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return domain_name(self.uuid)


@dataclass(frozen=True)
class DomainRecord:
    uuid: uuid.UUID
    name: str
    active: bool
    metadata: dict[str, str]


def domain_name(domain_uuid: uuid.UUID) -> str:
    return f"ks-{domain_uuid}"


def uri_has_networks(uri: str) -> bool:
    """Whether the libvirtd behind `uri` can make bridges and firewall rules (a privileged one,
    `.../system`).

    An unprivileged (session) libvirtd cannot: its guests get no network at all, rather than
    QEMU's user-mode network, which would hand them the host's loopback."""
    return uri.split("?", 1)[0].rstrip("/").endswith("/system")


def uri_is_local(uri: str) -> bool:
    """Whether a libvirt URI names this machine (no host part: qemu:///system, qemu:///session)."""
    return "://" in uri and uri.split("://", 1)[1].split("/", 1)[0] in ("", "localhost")
