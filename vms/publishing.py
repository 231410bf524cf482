"""Each VM's SSH server, published on a port of its host: `ssh -p PORT user@host`.

A VM gets a port of SSH_PORTS when it is first defined and keeps it for life (like its address
on the guests' network). While it runs on a host of this machine, the host forwards that port
to port 22 of the guest: connections from outside (PREROUTING) and from the host itself
(OUTPUT) are sent to the guest, let through the forward chain libvirt guards, and leave for the
guest from the network's gateway (the guest needs no route back to the caller).

The rules live in chains of the installation's own (`KS-<installation>-…`), rewritten whole
from the database by `publish_sync` after every change of a VM's life (start, stop, delete,
restore, move) and by the minute's host check, so they always say what the database says and
two installations on one machine never touch each other's. Hosts reached over the network are
not published (their firewall is theirs).
"""

from __future__ import annotations

import ipaddress
import logging
import random
import shutil
import subprocess
import threading

from django.conf import settings
from django.db import IntegrityError

from vms import hypervisor
from vms.models import VM, VMState

logger = logging.getLogger(__name__)

GUEST_SSH_PORT = 22
_sync_lock = threading.Lock()


def port_range() -> range | None:
    """SSH_PORTS as a range ("22000-22999"), or None when publishing is off."""
    text = settings.SSH_PORTS
    if not text:
        return None
    first, _, last = text.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise ValueError(f"SSH_PORTS must be like 22000-22999, not {text!r}.") from None
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"SSH_PORTS must be ports between 1 and 65535, not {text!r}.")
    return range(low, high + 1)


def vm_port(vm: VM) -> int | None:
    """The VM's published port, given on first need from SSH_PORTS and kept for its life;
    None when publishing is off or the range is used up."""
    if vm.ssh_port:
        return vm.ssh_port
    ports = port_range()
    if ports is None:
        return None
    used = set(VM.objects.exclude(ssh_port=None).values_list("ssh_port", flat=True))
    start = random.randrange(len(ports))  # noqa: S311 (spreading, not secrecy)
    for step in range(len(ports)):
        candidate = ports[(start + step) % len(ports)]
        if candidate in used:
            continue
        try:
            updated = VM.objects.filter(pk=vm.pk, ssh_port=None).update(ssh_port=candidate)
        except IntegrityError:
            continue
        if updated:
            vm.ssh_port = candidate
            return candidate
        vm.refresh_from_db(fields=["ssh_port"])
        return vm.ssh_port
    logger.warning("SSH_PORTS %s has no free port left; VM %s is not published.", ports, vm.pk)
    return None


def ssh_command(vm: VM, host_name: str) -> str:
    """What its owner types to reach it, or "" when it is not published."""
    if not (vm.ssh_port and vm.ip_address and published_here(vm)):
        return ""
    return f"ssh -p {vm.ssh_port} {vm.owner.username}@{settings.SSH_HOST or host_name}"


def published_here(vm: VM) -> bool:
    return port_range() is not None and hypervisor.uri_is_local(vm.host.libvirt_uri)


def _chains() -> tuple[str, str, str]:
    from core.installation import installation_short

    prefix = f"KS-{installation_short()}"
    return f"{prefix}-DNAT", f"{prefix}-SNAT", f"{prefix}-FWD"


def _gateway() -> str:
    return str(settings.GUEST_SUBNET.network_address + 1)


def rules() -> str:
    """The installation's chains as `iptables-restore --noflush` input: declaring a chain there
    empties it, so the whole of it is what the database says now."""
    dnat, snat, fwd = _chains()
    nat = [f":{dnat} - [0:0]", f":{snat} - [0:0]"]
    forward = [f":{fwd} - [0:0]"]
    running = VM.objects.filter(state=VMState.RUNNING).exclude(ssh_port=None)
    for vm in running.exclude(ip_address=None).select_related("host").order_by("ssh_port"):
        if not published_here(vm):
            continue
        address = str(ipaddress.IPv4Address(vm.ip_address))
        nat.append(
            f"-A {dnat} -p tcp -m tcp --dport {vm.ssh_port} -m addrtype --dst-type LOCAL "
            f"-j DNAT --to-destination {address}:{GUEST_SSH_PORT}"
        )
        nat.append(
            f"-A {snat} -d {address}/32 -p tcp -m tcp --dport {GUEST_SSH_PORT} "
            f"-m conntrack --ctstate DNAT -j SNAT --to-source {_gateway()}"
        )
        forward.append(
            f"-A {fwd} -d {address}/32 -p tcp -m tcp --dport {GUEST_SSH_PORT} "
            "-m conntrack --ctstate DNAT -j ACCEPT"
        )
    return "\n".join(["*nat", *nat, "COMMIT", "*filter", *forward, "COMMIT", ""])


def _iptables(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True)


def _jump_first(table: str, chain: str, target: str) -> None:
    """`chain` jumps to `target` before anything else (libvirt inserts its own rules at the
    top when its networks start; ours must come before its forward chain's rejections)."""
    listed = _iptables("-t", table, "-S", chain).stdout.splitlines()
    first = listed[1] if len(listed) > 1 else ""
    if first == f"-A {chain} -j {target}":
        return
    while _iptables("-t", table, "-C", chain, "-j", target).returncode == 0:
        _iptables("-t", table, "-D", chain, "-j", target)
    _iptables("-t", table, "-I", chain, "1", "-j", target)


def publishing_problem() -> str | None:
    """Why ports cannot be published on this machine, or None."""
    if port_range() is None:
        return None
    if shutil.which("iptables") is None or shutil.which("iptables-restore") is None:
        return "iptables is not installed, so VMs' SSH ports are not published"
    if _iptables("-t", "nat", "-S", "PREROUTING").returncode != 0:
        return "iptables refuses this process (not root?), so VMs' SSH ports are not published"
    return None


def publish_sync() -> None:
    """Make the host's forwarded ports what the database says (a no-op when publishing is off
    or impossible here; the reason is logged, and `manage.py doctor` reports it)."""
    if port_range() is None:
        return
    problem = publishing_problem()
    if problem:
        logger.warning("%s.", problem)
        return
    with _sync_lock:
        text = rules()
        result = subprocess.run(
            ["iptables-restore", "-w", "5", "--noflush"], input=text, capture_output=True, text=True
        )
        if result.returncode != 0:
            logger.error("Publishing SSH ports failed: %s", result.stderr.strip())
            return
        dnat, snat, fwd = _chains()
        _jump_first("nat", "PREROUTING", dnat)
        _jump_first("nat", "OUTPUT", dnat)
        _jump_first("nat", "POSTROUTING", snat)
        _jump_first("filter", "FORWARD", fwd)


def publish_withdraw_all() -> None:
    """Remove the installation's chains from this machine (its VMs are published no more)."""
    if shutil.which("iptables") is None:
        return
    dnat, snat, fwd = _chains()
    for table, chain, target in (
        ("nat", "PREROUTING", dnat),
        ("nat", "OUTPUT", dnat),
        ("nat", "POSTROUTING", snat),
        ("filter", "FORWARD", fwd),
    ):
        while _iptables("-t", table, "-C", chain, "-j", target).returncode == 0:
            _iptables("-t", table, "-D", chain, "-j", target)
    for table, chain in (("nat", dnat), ("nat", snat), ("filter", fwd)):
        _iptables("-t", table, "-F", chain)
        _iptables("-t", table, "-X", chain)
