"""Snapshots of a real Debian guest: its /etc and package database come back on restore, and a
VM started from its snapshot is a new machine (name, machine-id, SSH host keys) with its data.

One test, so the module boots Debian three times in all: the source, its clone, the restore."""

import pytest

from snapshots.models import Snapshot
from snapshots.services import snapshot_new_vm, snapshot_restore, snapshot_take
from tests import guest
from tests.conftest import succeeded
from vms.models import VM, vm_id_of_lock

pytestmark = pytest.mark.libvirt

BOOT_TIMEOUT = 240
HOST_KEY = "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f2"
HELD = "dpkg-query -W -f='${Status}' sudo"


def booted(vm, boots=1):
    guest.wait_for_boot(vm, boots=boots, timeout=BOOT_TIMEOUT)
    return vm


def identity(vm):
    return guest.run(vm, "hostname"), guest.run(vm, "cat /etc/machine-id"), guest.run(vm, HOST_KEY)


def test_restore_brings_back_etc_and_packages_and_a_clone_is_a_new_machine(make_debian_vm, alice):
    source = booted(make_debian_vm(alice, name="source"))
    guest.run(source, "echo first > /etc/koding-marker; apt-mark hold sudo; sync")
    assert guest.run(source, HELD) == "hold ok installed"
    before = identity(source)
    operation = succeeded(snapshot_take(vm=source, user=alice, name="configured"))
    snapshot = Snapshot.objects.get(pk=operation.result["snapshot"])

    # A VM from the snapshot: the data, but a name, machine-id and host keys of its own.
    operation = succeeded(snapshot_new_vm(snapshot=snapshot, user=alice, name="clone"))
    clone = booted(VM.objects.select_related("host", "image").get(pk=vm_id_of_lock(operation.lock)))
    assert guest.run(clone, "cat /etc/koding-marker") == "first"
    name, machine_id, host_key = identity(clone)
    assert (name, machine_id) == ("clone", clone.domain_uuid.hex)
    assert before[0] == "source" and machine_id != before[1] and host_key != before[2]
    assert guest.run(clone, "id -un alice") == "alice"

    # The source changed after the snapshot, then restored: /etc and dpkg's database as they were.
    guest.run(source, "echo second > /etc/koding-marker; apt-mark unhold sudo; sync")
    succeeded(snapshot_restore(snapshot=snapshot, user=alice))
    booted(source, boots=2)
    assert guest.run(source, "cat /etc/koding-marker") == "first"
    assert guest.run(source, HELD) == "hold ok installed"
    assert identity(source) == before  # still the same machine
