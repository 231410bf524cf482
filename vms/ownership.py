"""What on a libvirt host is this installation's own.

Several installations (a service, the test suite, the benchmarks) may share one libvirtd. Each
touches only what carries its identity (`core.installation`):

- its domains carry it in their metadata (`domain_metadata`), and the reconciler removes only
  domains that carry it (`domain_is_ours`);
- its storage pools carry a claim, an empty volume named for it (`pool_claim`); a pool claimed by
  another installation is refused when a host is prepared, and its volumes are left alone.
"""

from __future__ import annotations

import uuid

from core.installation import installation_id
from vms import hypervisor
from vms.models import Host

POOL_CLAIM_PREFIX = "installation-"
POOL_CLAIM_SUFFIX = ".claim"


def domain_metadata(**fields: str) -> dict[str, str]:
    """A domain's metadata: `fields` and this installation's identity."""
    return {**fields, "installation": str(installation_id())}


def domain_is_ours(record: hypervisor.DomainRecord, identity: uuid.UUID | None = None) -> bool:
    """Whether the domain was defined by this installation (`identity`, when already read)."""
    return record.metadata.get("installation") == str(identity or installation_id())


def domain_is_unmarked(record: hypervisor.DomainRecord, host: Host) -> bool:
    """A domain in the host's pool defined before domains carried an identity: perhaps ours,
    perhaps another installation's that used the same pool name; never removed."""
    return "installation" not in record.metadata and record.metadata.get("pool") == host.pool_name


def pool_claim_name(identity: uuid.UUID | None = None) -> str:
    return f"{POOL_CLAIM_PREFIX}{(identity or installation_id()).hex}{POOL_CLAIM_SUFFIX}"


def is_pool_claim(volume_name: str) -> bool:
    return volume_name.startswith(POOL_CLAIM_PREFIX) and volume_name.endswith(POOL_CLAIM_SUFFIX)


def pool_claims_of_others(names: list[str] | set[str]) -> list[str]:
    """Among a pool's volume names, the claims of other installations."""
    ours = pool_claim_name()
    return sorted(name for name in names if is_pool_claim(name) and name != ours)


def pool_claim(host: Host) -> None:
    """Mark the host's storage pool as this installation's, or refuse it when another
    installation marked it first: volumes are named by row ids, so two installations in one
    pool would take each other's files for their own."""
    names = host.hypervisor.volume_names(host.pool_name)
    if pool_claims_of_others(names):
        raise hypervisor.HypervisorError(pool_taken_message(host))
    ours = pool_claim_name()
    if ours not in names:
        host.hypervisor.volume_create(host.pool_name, ours, capacity=0, fmt="raw")


def pool_taken_message(host: Host) -> str:
    return (
        f"The storage pool {host.pool_name!r} on host {host.name} belongs to another "
        "installation of the service; give this one a pool of its own (leave STORAGE_POOL unset "
        "to have one named for it)."
    )
