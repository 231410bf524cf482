"""Moving a stopped VM to another host, and the `host` command (rules; the move itself on real
guests is in test_several_hosts)."""

import io

import pytest
from django.core.management import CommandError, call_command

from core.errors import InvalidState, Unavailable
from operations.models import Operation
from tests.factories import host_row, image_row, vm_row
from vms.jobs import vm_move_repair
from vms.models import VM, Host, HostState, VMState
from vms.services import vm_move


@pytest.fixture
def stopped(alice):
    return vm_row(owner=alice, image=image_row(host=host_row(name="a")), state=VMState.STOPPED)


def test_only_a_stopped_vm_moves(alice):
    vm = vm_row(owner=alice, image=image_row(host=host_row(name="a")), state=VMState.RUNNING)
    host_row(name="b")
    with pytest.raises(InvalidState, match="only a stopped VM moves to another host"):
        vm_move(vm=vm, user=alice)
    assert VM.objects.get(pk=vm.pk).host.name == "a"
    assert not Operation.objects.holding(vm.lock).exists()


def test_a_move_takes_its_room_on_the_new_host_at_once(stopped, alice):
    b = host_row(name="b")
    operation = vm_move(vm=stopped, user=alice)
    assert VM.objects.get(pk=stopped.pk).host == b
    assert operation.params == {"from": stopped.host_id, "to": b.pk}
    assert operation.target_name == f"{stopped.name} to b"


def test_a_move_goes_only_to_an_enabled_host_with_room(stopped, alice):
    host_row(name="full", memory_mib=128)
    host_row(name="draining", state=HostState.DRAINING)
    with pytest.raises(Unavailable, match="No host has room"):
        vm_move(vm=stopped, user=alice)
    assert VM.objects.get(pk=stopped.pk).host.name == "a"


def test_a_move_to_the_host_it_is_on_is_refused(stopped, alice):
    with pytest.raises(InvalidState, match="is on a already"):
        vm_move(vm=stopped, user=alice, host=stopped.host)


def test_a_move_whose_worker_died_before_the_disk_moved_is_undone(stopped, alice):
    host_row(name="b")
    operation = vm_move(vm=stopped, user=alice)
    message = vm_move_repair(operation)
    assert message == "The move was undone; the VM stays on a."
    assert VM.objects.get(pk=stopped.pk).host.name == "a"


def test_the_host_command_sets_a_state_and_lists_load(stopped):
    out = io.StringIO()
    call_command("host", "state", "a", "draining", stdout=out)
    assert Host.objects.get(name="a").state == HostState.DRAINING
    call_command("host", "list", stdout=out)
    assert "1 VM(s); memory 256/16384 MiB, vCPUs 1/32, disk 4/1024 GiB" in out.getvalue()
    with pytest.raises(CommandError, match="There is no host 'zz'"):
        call_command("host", "state", "zz", "enabled")


def test_the_host_command_adds_a_host_with_the_capacity_it_has(db, fake_hosts, settings):
    settings.HOST_DISK_RATIO = 1
    fake = fake_hosts["test:///default"]
    fake.memory_mib, fake.default_pool_capacity = 8192, 200 * 1024**3
    out = io.StringIO()
    call_command("host", "add", "extra", "test:///default", "--vcpus", "6", stdout=out)
    host = Host.objects.get(name="extra")
    assert (host.vcpus, host.memory_mib, host.disk_gib) == (6, 8192, 200)
    assert "Host extra added" in out.getvalue()


def test_a_host_added_in_the_admin_gets_its_pools_once_saved(
    client, charlie, django_capture_on_commit_callbacks, fake_hosts
):
    client.force_login(charlie)
    form = {
        "name": "added",
        "libvirt_uri": "test:///default",
        "domain_type": "qemu",
        "pool_name": "admin-added",
        "pool_path": "/nonexistent/admin-added/pool",
        "console_dir": "/nonexistent/admin-added/console",
        "state": HostState.DRAINING,
        "memory_mib": 2048,
        "vcpus": 4,
        "disk_gib": 20,
    }
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post("/admin/vms/host/add/", form, follow=True)
    assert response.status_code == 200
    assert len(callbacks) == 1  # libvirt is called after the save's transaction, not in it
    host = Host.objects.get(name="added")
    assert (host.state, host.memory_mib) == (HostState.DRAINING, 2048)
    fake = fake_hosts["test:///default"]
    assert fake.pools["admin-added"].path == "/nonexistent/admin-added/pool"
    assert fake.pools["admin-added-console"].path == "/nonexistent/admin-added/console"
