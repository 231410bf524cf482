"""The Debian 12 image on a real guest: personal on its first boot (one boot for the module)."""

import time

import pytest

from tests import guest
from tests.conftest import SESSION_NOTES, wait_for

pytestmark = pytest.mark.libvirt

BOOT_TIMEOUT = 240  # about 25 s under software emulation; more on a busy machine


@pytest.fixture
def vm(make_debian_vm, alice):
    created = make_debian_vm(alice, name="Alice's Web 1")
    started = time.monotonic()
    guest.wait_for_boot(created, timeout=BOOT_TIMEOUT)
    ready = time.monotonic() - started
    guest.run(created, "true")
    SESSION_NOTES.append(
        f"Debian guest: up {ready:.1f} s after start, its shell answering at "
        f"{time.monotonic() - started:.1f} s"
    )
    return created


# One test, one boot: what a Debian VM is once it is up.
def test_a_debian_vm_boots_to_a_shell_named_after_it_with_its_owner_a_sudoer_and_an_agent(vm):
    assert guest.run(vm, "id -un") == "root"
    assert guest.run(vm, "hostname") == "alice-s-web-1"
    assert guest.run(vm, "cat /etc/hostname") == "alice-s-web-1"
    assert guest.run(vm, "id -un alice; getent passwd alice | cut -d: -f6") == "alice\n/home/alice"
    # Password-less sudo, as alice herself.
    assert guest.run(vm, "su -s /bin/sh -c 'sudo -n id -un' alice") == "root"
    assert guest.run(vm, "cat /etc/os-release | grep ^VERSION_ID") == 'VERSION_ID="12"'
    # The root file system grew from the image's 2 GiB to the VM's 4 GiB disk.
    blocks = int(guest.run(vm, "df --output=size -k / | tail -1"))
    assert blocks > 3 * 1024 * 1024
    # Every VM makes its own SSH host keys; sshd runs with them.
    assert (
        guest.run(vm, "ls /etc/ssh/ssh_host_ed25519_key.pub") == "/etc/ssh/ssh_host_ed25519_key.pub"
    )
    assert guest.run(vm, "systemctl is-active ssh") == "active"
    assert guest.run(vm, "cat /etc/machine-id") == vm.domain_uuid.hex
    # systemd-networkd takes the address DHCP hands this VM, whatever its card is called.
    vm.refresh_from_db()
    assigned = guest.run(
        vm,
        f"for i in $(seq 60); do ip -4 -o addr show scope global | grep -q 'inet {vm.ip_address}/'"
        " && break; sleep 1; done; ip -4 -o addr show scope global | awk '{print $2, $4}'",
        timeout=90,
    )
    nic, address = assigned.split()
    assert nic.startswith("en") and address.startswith(f"{vm.ip_address}/")
    wait_for(
        lambda: vm.host.hypervisor.domain_agent_connected(vm.domain_uuid),
        timeout=60,
        what="the guest agent",
    )
