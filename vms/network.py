"""The guests' network on each host, and each VM's address on it.

Every host that can (a privileged libvirtd) gets one network of the service's own: NAT to the
outside world (or none, with GUEST_INTERNET off), DHCP on GUEST_SUBNET, isolated ports, and an
nwfilter on every guest interface that refuses the host, the private and special ranges and
spoofing. Each VM gets an address of the subnet, unique in the installation (so it keeps it
when it moves), which the network's DHCP hands to its MAC and the filter lets it send from.
"""

from __future__ import annotations

import ipaddress
import json
import random
import socket
import subprocess
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError

from vms import hypervisor
from vms.models import VM, Host


def network_spec() -> hypervisor.NetworkSpec:
    """The guests' network as the settings describe it: the gateway is the subnet's first
    address, DHCP hands out the rest."""
    subnet = settings.GUEST_SUBNET
    return hypervisor.NetworkSpec(
        name=settings.GUEST_NETWORK,
        gateway=str(subnet.network_address + 1),
        netmask=str(subnet.netmask),
        dhcp_start=str(subnet.network_address + 2),
        dhcp_end=str(subnet.broadcast_address - 1),
        internet=settings.GUEST_INTERNET,
    )


def host_has_network(host: Host) -> bool:
    """Whether the host's guests are on the guests' network; elsewhere (an unprivileged
    libvirtd, or GUEST_NETWORK set empty) their network card has its cable pulled."""
    return bool(settings.GUEST_NETWORK) and hypervisor.uri_has_networks(host.libvirt_uri)


def host_addresses(host: Host) -> list[str]:
    """The host's own IPv4 addresses that are not already in a blocked range: every address of
    this machine's interfaces for a local host, and what the host's name resolves to."""
    found: set[str] = set()
    if hypervisor.uri_is_local(host.libvirt_uri):
        found.update(_local_addresses())
    name = urlsplit(host.libvirt_uri).hostname
    if name:
        found.update(_resolve(name))
    blocked = [ipaddress.IPv4Network(block) for block in hypervisor.BLOCKED_RANGES]
    return sorted(
        address
        for address in found
        if not any(ipaddress.IPv4Address(address) in block for block in blocked)
    )


def _local_addresses() -> set[str]:
    result = subprocess.run(
        ["ip", "-json", "-4", "address", "show"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return set()
    return {
        info["local"]
        for link in json.loads(result.stdout or "[]")
        for info in link.get("addr_info", [])
        if info.get("family") == "inet" and "local" in info
    }


def _resolve(name: str) -> set[str]:
    try:
        return {item[4][0] for item in socket.getaddrinfo(name, None, socket.AF_INET)}
    except OSError:
        return set()


def host_network_ensure(host: Host) -> None:
    """Make the guests' network and its filter on the host (a no-op where it cannot have one)."""
    if host_has_network(host):
        host.hypervisor.network_ensure(network_spec(), host_addresses=host_addresses(host))


def host_network_problem(host: Host) -> str | None:
    """What is wrong with the host's guest network, for health checks; None when it runs."""
    if not host_has_network(host):
        return None
    if not host.hypervisor.network_active(settings.GUEST_NETWORK):
        return network_missing()
    return None


def network_missing() -> str:
    return f"the guests' network {settings.GUEST_NETWORK!r} is missing or stopped"


def vm_address(vm: VM, leased: dict[str, str] | None = None) -> str:
    """The VM's address on the guests' network, given on first need and kept for its life.

    Free addresses are tried from a random point of the subnet; the unique constraint settles a
    race between two workers. An address reserved or still leased to another MAC (`leased`,
    address to MAC, on the VM's host: a deleted VM's lease outlives it, and another installation
    sharing the host's network reserves its own) is not free: DHCP would hand the new guest some
    other address, one its filter does not let it send from."""
    if vm.ip_address:
        return vm.ip_address
    subnet = settings.GUEST_SUBNET
    first, last = int(subnet.network_address) + 2, int(subnet.broadcast_address) - 1
    used = set(VM.objects.exclude(ip_address=None).values_list("ip_address", flat=True))
    mac = vm.mac_address.lower()
    used |= {address for address, owner in (leased or {}).items() if owner.lower() != mac}
    size = last - first + 1
    start = random.randrange(size)  # noqa: S311 (spreading, not secrecy)
    for step in range(size):
        candidate = str(ipaddress.IPv4Address(first + (start + step) % size))
        if candidate in used:
            continue
        try:
            updated = VM.objects.filter(pk=vm.pk, ip_address=None).update(ip_address=candidate)
        except IntegrityError:
            continue
        if updated:
            vm.ip_address = candidate
            return candidate
        vm.refresh_from_db(fields=["ip_address"])
        return vm.ip_address
    raise hypervisor.HypervisorError(
        f"The guests' subnet {subnet} has no free address left: set a larger GUEST_SUBNET."
    )


def vm_network_attach(vm: VM) -> dict:
    """Reserve the VM's address on its host's network; the domain definition's network fields
    (empty where the host has no network)."""
    if not host_has_network(vm.host):
        return {}
    spec = network_spec()
    taken = {}
    if not vm.ip_address:
        # Another installation on the same libvirtd hands out addresses on the same network.
        reserved = vm.host.hypervisor.network_reservations(spec.name)
        taken = {address: mac for mac, address in reserved.items()}
        taken |= vm.host.hypervisor.network_leases(spec.name)
    address = vm_address(vm, taken)
    vm.host.hypervisor.network_reserve(spec.name, mac=vm.mac_address, address=address)
    return {"network": spec.name, "network_filter": spec.filter_name, "ip_address": address}


def vm_network_detach(vm: VM) -> None:
    """Forget the VM's DHCP reservation on its host (its address is freed with its row)."""
    if host_has_network(vm.host):
        vm.host.hypervisor.network_release(settings.GUEST_NETWORK, mac=vm.mac_address)
