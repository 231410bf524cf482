"""Each guest is told who it is on its kernel command line: its host name (the VM's name), its
owner's account and the VM's id."""

import pytest

from tests.factories import vm_row
from vms.jobs import guest_cmdline, guest_hostname, guest_user_name


@pytest.mark.parametrize(
    ("name", "hostname"),
    [
        ("web", "web"),
        ("Alice's Web 1", "alice-s-web-1"),
        ("  --db.primary--  ", "db-primary"),
        ("x" * 61 + " yz", "x" * 61 + "-y"),
    ],
)
def test_the_guests_host_name_is_the_vms_name_made_valid(alice, name, hostname):
    assert guest_hostname(vm_row(owner=alice, name=name)) == hostname


def test_a_vm_name_with_nothing_a_host_name_can_hold_gives_one_from_its_id(alice):
    vm = vm_row(owner=alice, name="☃ ☃")
    assert guest_hostname(vm) == f"vm-{vm.id.hex[:8]}"


@pytest.mark.parametrize(
    ("username", "account"),
    [("alice", "alice"), ("Bob.Smith@example.com", "bob-smith-example-com"), ("42", "u42")],
)
def test_the_owners_account_name_is_their_user_name_made_valid(username, account):
    class Owner:
        pass

    owner = Owner()
    owner.username = username
    assert guest_user_name(owner) == account


def test_the_kernel_command_line_tells_the_guest_its_name_owner_and_vm(alice):
    vm = vm_row(owner=alice, name="web")
    words = guest_cmdline(vm).split()
    assert words[0] == "console=ttyS0"
    assert {"ks.hostname=web", "ks.user=alice", f"ks.vm={vm.id}"} <= set(words)
    assert f"systemd.machine_id={vm.domain_uuid.hex}" in words


def test_a_guest_is_handed_its_owners_keys_as_type_and_data_only(db, alice):
    from accounts.services import ssh_key_add
    from tests.factories import vm_row
    from vms.jobs import guest_authorized_keys

    vm = vm_row(owner=alice)
    assert guest_authorized_keys(vm) == "# no keys\n"  # never empty: libvirt refuses that
    key = (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl "
        "alice's <laptop>"
    )
    ssh_key_add(owner=alice, title="laptop", public_key=key)
    assert guest_authorized_keys(vm) == key.rsplit(" ", 2)[0] + "\n"
