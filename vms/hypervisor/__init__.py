"""The hypervisor adapter: the one package of the project that imports `libvirt`, and none of
Django.

`Hypervisor(uri)` is one libvirt host; its methods are the work done there (storage pools and
volumes, the guests' network, domains, consoles). What needs no host (the specs and records it
takes and returns, the XML it builds, what a URI says by itself, the errors) is module-level.
`fake.FakeHypervisor` keeps the same promises in memory, for rule tests; `tests/hypervisor/`
holds both to one contract. The Django side reaches a host's adapter as `Host.hypervisor`.
"""

from vms.hypervisor.adapter import (
    CHECK_INTERVAL,
    CONNECT_TIMEOUT,
    CONSOLE_HOLD_SECONDS,
    TRANSFER_CHUNK,
    Hypervisor,
    connect,
)
from vms.hypervisor.definitions import (
    BLOCKED_RANGES,
    DNSMASQ_NS,
    domain_xml,
    guest_filter_xml,
    network_xml,
)
from vms.hypervisor.errors import (
    DomainNotFound,
    HypervisorError,
    HypervisorUnavailable,
    Interrupted,
    InvalidDomainState,
    MemoryMismatch,
    PoolNotFound,
    VolumeNotFound,
)
from vms.hypervisor.specs import (
    DISK_TARGET,
    METADATA_NS,
    METADATA_PREFIX,
    DomainRecord,
    DomainSpec,
    GuestInfo,
    NetworkSpec,
    VolumeInfo,
    domain_name,
    uri_has_networks,
    uri_is_local,
)

__all__ = [
    "BLOCKED_RANGES",
    "CHECK_INTERVAL",
    "CONNECT_TIMEOUT",
    "CONSOLE_HOLD_SECONDS",
    "DISK_TARGET",
    "DNSMASQ_NS",
    "METADATA_NS",
    "METADATA_PREFIX",
    "TRANSFER_CHUNK",
    "DomainNotFound",
    "DomainRecord",
    "DomainSpec",
    "GuestInfo",
    "Hypervisor",
    "HypervisorError",
    "HypervisorUnavailable",
    "Interrupted",
    "InvalidDomainState",
    "MemoryMismatch",
    "NetworkSpec",
    "PoolNotFound",
    "VolumeInfo",
    "VolumeNotFound",
    "connect",
    "domain_name",
    "domain_xml",
    "guest_filter_xml",
    "network_xml",
    "uri_has_networks",
    "uri_is_local",
]
