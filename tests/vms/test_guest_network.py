"""The guests' network: a guest gets its address by DHCP and reaches nothing of the host (but
DHCP and DNS on its gateway), no private or link-local range, no other guest, and cannot send
as another guest. Real guests, real bridges, real filters."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import subprocess
import threading
import time
import uuid
import xml.etree.ElementTree as ET

import pytest
from django.conf import settings

from tests import guest
from vms import hypervisor, network
from vms.models import VM, Host

pytestmark = [pytest.mark.libvirt]

SECRET = "host-secret-7c1e"
# The guest's one network interface, whatever the kernel named it.
NIC = "nic=$(ls /sys/class/net | grep -v '^lo$' | head -n1)"


@contextlib.contextmanager
def listening(address: str = "0.0.0.0"):  # noqa: S104 (every address of the host, on purpose)
    """A TCP server on the host that answers every connection with SECRET; yields its port."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(f"{SECRET}\n".encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        server.close()


@contextlib.contextmanager
def host_address(address: str):
    """An extra address on the host's loopback for the length of a test (`replace`: a run that
    was killed before it could remove it leaves it behind)."""
    subprocess.run(["ip", "address", "replace", f"{address}/32", "dev", "lo"], check=True)
    try:
        yield address
    finally:
        subprocess.run(["ip", "address", "del", f"{address}/32", "dev", "lo"], check=False)


def booted(make_vm, owner, name):
    vm = make_vm(owner, name=name)
    guest.wait_for_boot(vm)
    return vm


def leased(vm, timeout: float = 60) -> str:
    """The guest's IPv4 address once DHCP has given it one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = guest.run(vm, f'{NIC}; ip -4 -o addr show dev "$nic"')
        for word in shown.split():
            if "/" in word and word[0].isdigit():
                return word.split("/")[0]
        time.sleep(1)
    seen = guest.run(vm, "ls /sys/class/net; ip link; ps; dmesg | tail -15")
    pytest.fail(f"The guest got no address in {timeout} s:\n{seen}")


def tcp_read(vm, address: str, port: int) -> str:
    """What a TCP connection from the guest to address:port reads (empty when refused or cut)."""
    return guest.run(vm, f"nc -w 3 {address} {port} </dev/null 2>&1; echo exit=$?", timeout=30)


def dns_answers(vm) -> bool:
    """Whether the gateway's DNS answers the guest (a name it does not know still gets an
    answer: NXDOMAIN)."""
    gateway = network.network_spec().gateway
    out = guest.run(vm, f"nslookup -timeout=3 no-such-name.invalid {gateway} 2>&1", timeout=40)
    return "can't find" in out or "Address" in out.split("Server:")[-1]


@pytest.fixture
def vm(make_vm, alice):
    vm = booted(make_vm, alice, "net")
    leased(vm)
    return vm


def test_a_guest_gets_its_reserved_address_and_route_from_dhcp(vm):
    subnet = settings.GUEST_SUBNET
    address = leased(vm)
    vm.refresh_from_db()
    assert address == vm.ip_address
    assert ipaddress.IPv4Address(address) in subnet
    routes = guest.run(vm, "ip route")
    assert f"default via {network.network_spec().gateway}" in routes


def test_a_guest_gets_dns_from_its_gateway(vm):
    assert dns_answers(vm)


def test_a_guest_reaches_no_port_of_the_host_on_any_of_its_addresses(vm):
    addresses = [network.network_spec().gateway, *network.host_addresses(vm.host)]
    assert len(addresses) >= 2
    with listening() as port:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as probe:
            assert SECRET in probe.recv(100).decode()  # it answers whoever may reach it
        for address in addresses:
            assert SECRET not in tcp_read(vm, address, port), address


def test_a_guest_reaches_no_link_local_or_private_address(vm):
    addresses = ["169.254.169.254", "10.254.0.9", "172.31.254.9", "192.168.254.9", "100.64.254.9"]
    with contextlib.ExitStack() as stack:
        for address in addresses:
            stack.enter_context(host_address(address))
        port = stack.enter_context(listening())
        for address in addresses:
            with socket.create_connection((address, port), timeout=3) as probe:
                assert SECRET in probe.recv(100).decode()  # it answers whoever may reach it
            assert SECRET not in tcp_read(vm, address, port), address


def test_guests_do_not_reach_each_other(make_vm, vm, bob):
    other = booted(make_vm, bob, "neighbour")
    other_address = leased(other)
    guest.run(
        other, "(while true; do echo neighbour-secret | nc -l -p 7001; done) >/dev/null 2>&1 & true"
    )
    assert "neighbour-secret" not in tcp_read(vm, other_address, 7001)
    # The neighbour did listen all along: the host (which guests cannot reach) reaches it.
    with socket.create_connection((other_address, 7001), timeout=5) as probe:
        assert b"neighbour-secret" in probe.recv(100)


def test_a_guest_cannot_send_from_another_guests_address(make_vm, vm, bob):
    other = booted(make_vm, bob, "victim")
    other_address = leased(other)
    assert dns_answers(vm)
    gateway = network.network_spec().gateway
    bits = settings.GUEST_SUBNET.prefixlen
    guest.run(vm, "kill $(pidof udhcpc)")
    guest.run(
        vm,
        f'{NIC}; ip addr flush dev "$nic"; ip addr add {other_address}/{bits} dev "$nic"; '
        f"ip route add default via {gateway}",
    )
    assert not dns_answers(vm)


def test_a_guest_cannot_send_with_another_guests_mac(make_vm, vm, bob):
    other = booted(make_vm, bob, "victim")
    leased(other)
    own_address = leased(vm)
    assert dns_answers(vm)
    gateway = network.network_spec().gateway
    bits = settings.GUEST_SUBNET.prefixlen
    guest.run(vm, "kill $(pidof udhcpc)")
    guest.run(
        vm,
        f'{NIC}; ip link set "$nic" down; ip link set "$nic" address {other.mac_address}; '
        f'ip link set "$nic" up; ip addr add {own_address}/{bits} dev "$nic"; '
        f"ip route add default via {gateway}",
    )
    assert not dns_answers(vm)


def test_every_guest_interface_carries_the_filter_with_its_own_address(vm):
    xml = vm.host.hypervisor.domain_xml_of(vm.domain_uuid, inactive=True)
    spec = network.network_spec()
    assert f"filter='{spec.filter_name}'" in xml or f'filter="{spec.filter_name}"' in xml
    assert vm.ip_address in xml
    assert "type='user'" not in xml


def test_a_host_without_networks_gives_its_guests_a_card_with_the_cable_pulled():
    session = VM(
        host=Host(name="session", libvirt_uri="qemu:///session"), mac_address="52:54:00:00:00:01"
    )
    nic = network.vm_network_attach(session)
    assert nic == {}
    spec = hypervisor.DomainSpec(
        uuid=uuid.uuid4(),
        domain_type="qemu",
        vcpus=1,
        memory_mib=128,
        disk_path="/d",
        mac=session.mac_address,
        kernel_path="/k",
        initrd_path="/i",
        cmdline="",
        console_log="/l",
        **nic,
    )
    (card,) = ET.fromstring(hypervisor.domain_xml(spec)).findall("devices/interface")
    assert card.get("type") == "user"
    assert card.find("link").get("state") == "down"


def test_the_host_check_starts_a_guests_network_that_stopped(host):
    from vms.services import hosts_check

    spec = network.network_spec()
    host.hypervisor.connection.networkLookupByName(spec.name).destroy()
    assert not host.hypervisor.network_active(spec.name)
    hosts_check()
    assert host.hypervisor.network_active(spec.name)


def test_the_host_check_puts_a_new_address_of_the_host_into_the_filter(host, monkeypatch):
    from vms.services import hosts_check

    spec = network.network_spec()
    conn = host.hypervisor.connection
    known = network.host_addresses(host)
    monkeypatch.setattr(network, "host_addresses", lambda host: [*known, "203.0.113.9"])
    hosts_check()
    assert "203.0.113.9" in conn.nwfilterLookupByName(spec.filter_name).XMLDesc(0)
    monkeypatch.undo()
    hosts_check()
    assert "203.0.113.9" not in conn.nwfilterLookupByName(spec.filter_name).XMLDesc(0)


def test_an_unchanged_filter_is_not_defined_again(host, monkeypatch):
    defined = []
    conn = host.hypervisor.connection
    monkeypatch.setattr(
        type(conn), "nwfilterDefineXML", lambda self, xml: defined.append(xml), raising=True
    )
    network.host_network_ensure(host)
    assert defined == []
