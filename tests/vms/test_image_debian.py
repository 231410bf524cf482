"""The Debian 12 image on a real guest: personal on its first boot (one boot for the module)."""

import subprocess
import time

import pytest

from accounts.services import ssh_key_add
from snapshots.models import Snapshot
from snapshots.services import snapshot_take, vm_fork
from tests import guest
from tests.conftest import SESSION_NOTES, succeeded, wait_for
from tests.snapshots.test_live_snapshots import console_bytes
from tests.vms.test_publishing import published  # noqa: F401 (a fixture)
from vms.models import VM
from vms.services import guest_info

pytestmark = pytest.mark.libvirt

BOOT_TIMEOUT = 240  # about 25 s under software emulation; more on a busy machine


@pytest.fixture
def key_file(alice, tmp_path):
    """A key pair of alice's; its public half is on her SSH keys page before her VM exists."""
    private = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice@laptop", "-f", str(private)],
        check=True,
    )
    ssh_key_add(owner=alice, title="laptop", public_key=(tmp_path / "id_ed25519.pub").read_text())
    return private


@pytest.fixture
def vm(make_debian_vm, alice, key_file, published):  # noqa: F811 (the fixture imported above)
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
def test_a_debian_vm_boots_to_a_shell_named_after_it_with_its_owner_a_sudoer_and_an_agent(
    vm, key_file, settings
):
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
    # Its owner gets in over SSH with her key, through the port its host publishes for it.
    wait_for(
        lambda: ssh(vm, key_file, settings, "true").returncode == 0,
        timeout=120,
        what="sshd to let alice in through the published port",
    )
    answer = ssh(vm, key_file, settings, "hostname; sudo -n id -un")
    assert answer.stdout.split() == ["alice-s-web-1", "root"], answer.stderr
    # Its agent answers: a take freezes the file systems, and the VM card says what it runs.
    wait_for(
        lambda: vm.host.hypervisor.domain_agent_connected(vm.domain_uuid),
        timeout=60,
        what="the guest agent",
    )
    snapshot = Snapshot.objects.get(
        pk=succeeded(snapshot_take(vm=vm, user=vm.owner, name="consistent")).subject_pk
    )
    assert (snapshot.quiesced, snapshot.consistency) == (True, "consistent")
    info = guest_info(vm)
    assert info.os_name.startswith("Debian GNU/Linux 12")
    assert info.hostname == "alice-s-web-1"
    assert vm.ip_address in info.addresses
    assert info.uptime_seconds > 0
    # An agent that hangs is given up on: the take goes on, crash-consistent, and says so.
    guest.run(vm, "kill -STOP $(pidof qemu-ga); echo stopped")
    operation = succeeded(snapshot_take(vm=vm, user=vm.owner, name="agent hung"))
    assert Snapshot.objects.get(pk=operation.subject_pk).consistency == "crash-consistent"
    assert "did not answer in time" in operation.result["consistency"]
    # The agent wakes up: it was never asked to freeze, so the guest still writes.
    guest.run(vm, "kill -CONT $(pidof qemu-ga); echo resumed")
    wait_for(lambda: vm.host.hypervisor.domain_agent_answers(vm.domain_uuid), timeout=30)
    assert guest.run(vm, "touch /root/after-agent && echo written", timeout=60) == "written"

    # Forked, it goes on in a new VM under that VM's identity: host name, machine-id, SSH host
    # keys, MAC and address; its owner gets in with her key, and its agent answers.
    fingerprint = "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f2"
    source_key = guest.run(vm, fingerprint)
    fork = succeeded(vm_fork(vm=vm, user=vm.owner, count=1))
    child = VM.objects.select_related("host", "image", "owner").get(pk=fork.params["children"][0])
    assert child.name == "Alice's Web 1-1"
    wait_for(
        lambda: b"as a new VM: alice-s-web-1-1" in console_bytes(child),
        timeout=60,
        what="the fork to take its identity",
    )
    assert guest.run(child, "hostname; cat /etc/machine-id").split() == [
        "alice-s-web-1-1",
        child.domain_uuid.hex,
    ]
    assert guest.run(child, fingerprint) != source_key
    assert guest.run(vm, fingerprint) == source_key
    child.refresh_from_db()
    assigned = guest.run(
        child,
        "for i in $(seq 60); do ip -4 -o addr show scope global"
        f" | grep -q 'inet {child.ip_address}/' && break; sleep 1; done;"
        " ip -4 -o addr show scope global | awk '{print $4}'",
        timeout=90,
    )
    assert assigned.startswith(f"{child.ip_address}/"), assigned
    wait_for(
        lambda: ssh(child, key_file, settings, "true").returncode == 0,
        timeout=120,
        what="sshd of the fork to let alice in",
    )
    assert ssh(child, key_file, settings, "hostname").stdout.strip() == "alice-s-web-1-1"
    wait_for(lambda: guest_info(child) is not None, timeout=60, what="the fork's agent")
    assert guest_info(child).hostname == "alice-s-web-1-1"


def ssh(vm, key_file, settings, command: str) -> subprocess.CompletedProcess:
    """`command` run over SSH as the owner, through the port the host publishes for the VM."""
    gateway = str(settings.GUEST_SUBNET.network_address + 1)
    return subprocess.run(
        [
            "ssh",
            "-p",
            str(vm.ssh_port),
            "-i",
            str(key_file),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=5",
            f"alice@{gateway}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
