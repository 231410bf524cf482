"""A VM's SSH port: its host forwards a port of SSH_PORTS to port 22 of the guest while the VM
runs, and only then; the rules are the installation's own and leave with it."""

import random
import socket
import subprocess

import pytest

from tests import guest
from tests.conftest import wait_for
from vms import network
from vms.publishing import _chains, port_range, publish_withdraw_all, rules, ssh_command
from vms.services import vm_stop

pytestmark = pytest.mark.libvirt

ANSWER = "hello-from-the-guest"


@pytest.fixture
def published(settings, transactional_db):
    first = random.randrange(40000, 49000, 100)
    settings.SSH_PORTS = f"{first}-{first + 99}"
    yield
    publish_withdraw_all()


def read(address: str, port: int) -> str:
    with socket.create_connection((address, port), timeout=3) as conn:
        return conn.recv(100).decode().strip()


def answers(address: str, port: int) -> bool:
    try:
        return read(address, port) == ANSWER
    except OSError:
        return False


def addresses_of_this_machine(settings) -> list[str]:
    """Where people reach the host: the guests' gateway, and the machine's other addresses."""
    gateway = str(settings.GUEST_SUBNET.network_address + 1)
    others = sorted(
        a for a in network._local_addresses() if not a.startswith("127.") and a != gateway
    )
    return [gateway, *others[:1]]


def test_a_running_vms_port_reaches_its_ssh_port_and_is_withdrawn_when_it_stops(
    published, make_vm, alice, settings
):
    vm = make_vm(alice)
    guest.wait_for_boot(vm)
    vm.refresh_from_db()
    assert vm.ssh_port in port_range()
    assert ssh_command(vm, "vms.example.com") == f"ssh -p {vm.ssh_port} alice@vms.example.com"
    # A stand-in for sshd: busybox answers each connection to port 22 with one line.
    serve = f"while true; do nc -l -p 22 -e /bin/echo {ANSWER}; done"
    guest.run(vm, f"({serve}) >/dev/null 2>&1 & true")
    for address in addresses_of_this_machine(settings):
        wait_for(lambda a=address: answers(a, vm.ssh_port), timeout=30, what=f"{address} to answer")

    vm_stop(vm=vm, user=alice)
    assert f"--dport {vm.ssh_port} " not in rules()
    assert not answers(addresses_of_this_machine(settings)[0], vm.ssh_port)


def test_withdrawing_removes_the_installations_chains(published):
    from vms.publishing import publish_sync

    publish_sync()
    dnat = _chains()[0]
    listed = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True)
    assert f"-N {dnat}" in listed.stdout
    publish_withdraw_all()
    listed = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True)
    assert dnat not in listed.stdout
