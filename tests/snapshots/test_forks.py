"""Forking a running VM: a live snapshot and new VMs that resume from it, programs running, each
under an identity of its own. Rules first (a fake host), then real guests that count in memory."""

import re
import time

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from core.errors import InvalidState, LimitExceeded
from operations.models import Operation
from snapshots.models import Snapshot, SnapshotState
from snapshots.services import FORK_MAX, snapshot_new_vm, vm_fork
from tests import guest
from tests.conftest import succeeded, wait_for
from tests.factories import vm_row
from tests.snapshots.test_live_snapshots import COUNTER, console_bytes, live_snapshot_row, ticks
from vms import network
from vms.models import VM, VMState, vm_id_of_lock


@pytest.fixture
def vm(alice):
    vm = vm_row(owner=alice, state=VMState.RUNNING, name="web")
    vm.image.live_identity = True
    vm.image.save(update_fields=["live_identity"])
    return vm


def test_a_fork_records_a_snapshot_with_memory_and_its_new_vms(vm):
    operation = vm_fork(vm=vm, user=vm.owner, count=3)
    snapshot = operation.subject
    assert snapshot.includes_memory and snapshot.state == SnapshotState.CREATING
    children = VM.objects.filter(pk__in=operation.params["children"]).order_by("name")
    assert [c.name for c in children] == ["web-1", "web-2", "web-3"]
    assert {c.state for c in children} == {VMState.CREATING}
    assert {c.source_snapshot_id for c in children} == {snapshot.pk}
    assert {(c.vcpus, c.memory_mib) for c in children} == {(vm.vcpus, vm.memory_mib)}


def test_fork_names_skip_the_names_the_owner_already_uses(vm, alice):
    vm_row(owner=alice, name="web-1", image=vm.image)
    operation = vm_fork(vm=vm, user=alice, count=2)
    names = VM.objects.filter(pk__in=operation.params["children"]).values_list("name", flat=True)
    assert sorted(names) == ["web-2", "web-3"]


@pytest.mark.parametrize("count", [0, FORK_MAX + 1, "2", True])
def test_a_fork_asks_for_1_to_10_new_vms(vm, count):
    with pytest.raises(ValidationError, match="between 1 and 10"):
        vm_fork(vm=vm, user=vm.owner, count=count)
    assert not Operation.objects.exists()


def test_a_stopped_vm_cannot_be_forked_and_nothing_is_recorded(vm):
    VM.objects.filter(pk=vm.pk).update(state=VMState.STOPPED)
    with pytest.raises(InvalidState, match="only a running VM can be forked"):
        vm_fork(vm=vm, user=vm.owner, count=1)
    assert not Snapshot.objects.exists()
    assert VM.objects.count() == 1


def test_each_new_vm_of_a_fork_counts_against_the_plan(vm, alice):
    alice.plan.max_vms = 3
    alice.plan.save()
    with pytest.raises(LimitExceeded, match="allows 3 VMs"):
        vm_fork(vm=vm, user=alice, count=3)
    assert VM.objects.count() == 1
    assert not Snapshot.objects.exists()
    vm_fork(vm=vm, user=alice, count=2)
    assert VM.objects.count() == 3


def test_an_image_whose_guests_keep_their_identity_cannot_be_forked(vm):
    vm.image.live_identity = False
    vm.image.save(update_fields=["live_identity"])
    with pytest.raises(InvalidState, match="cannot take a new identity while running"):
        vm_fork(vm=vm, user=vm.owner, count=1)


def test_the_api_forks_a_running_vm_with_a_202(vm, alice):
    from tests.snapshots.test_live_snapshots import api_for

    response = api_for(alice).post(f"/api/vms/{vm.pk}/fork/", {"count": 2}, format="json")
    assert response.status_code == 202, response.json()
    operation = Operation.objects.get(pk=response.json()["id"])
    assert len(operation.params["children"]) == 2


def test_the_api_refuses_a_fork_of_eleven_with_a_400(vm, alice):
    from tests.snapshots.test_live_snapshots import api_for

    response = api_for(alice).post(f"/api/vms/{vm.pk}/fork/", {"count": 11}, format="json")
    assert response.status_code == 400
    assert "count" in response.json()["error"]["fields"]


def test_another_users_vm_cannot_be_forked_through_the_api(vm, bob):
    from tests.snapshots.test_live_snapshots import api_for

    response = api_for(bob).post(f"/api/vms/{vm.pk}/fork/", {"count": 1}, format="json")
    assert response.status_code == 404
    assert not Snapshot.objects.exists()


def test_a_new_vm_from_another_users_live_snapshot_boots_rather_than_resumes(vm, bob):
    from vms.jobs import memory_forkable

    snapshot = live_snapshot_row(vm)
    operation = snapshot_new_vm(snapshot=snapshot, user=bob, name="theirs", owner=bob)
    mine = VM.objects.get(pk=vm_id_of_lock(operation.lock))
    assert not memory_forkable(mine)
    ours = snapshot_new_vm(snapshot=snapshot, user=vm.owner, name="ours")
    assert memory_forkable(VM.objects.get(pk=vm_id_of_lock(ours.lock)))


def test_a_fork_cut_short_by_a_dead_worker_leaves_no_new_vm_half_made(vm, fake_hosts):
    from django.utils import timezone

    from operations import services as operation_services

    fake_hosts[vm.host.libvirt_uri].pool_ensure(vm.host.pool_name, vm.host.pool_path)
    operation = vm_fork(vm=vm, user=vm.owner, count=2)
    operation_services.operation_claim(operation.pk)
    later = timezone.now() + timezone.timedelta(minutes=5)
    assert [o.pk for o in operation_services.operations_expire(now=later)] == [operation.pk]
    operation.refresh_from_db()
    assert "2 new VMs that had not started removed" in operation.error
    assert list(VM.objects.values_list("name", flat=True)) == ["web"]
    assert not Snapshot.objects.exists()  # never taken: nothing of it kept


def test_the_vm_page_forks_and_says_so(client, vm, alice):
    client.force_login(alice)
    page = client.get(reverse("vm_detail", args=[vm.pk])).content.decode()
    assert 'data-testid="fork-form"' in page
    response = client.post(reverse("vm_fork", args=[vm.pk]), {"count": "2"}, follow=True)
    assert "Forking web into 2 new VMs" in response.content.decode()
    assert VM.objects.filter(owner=alice).count() == 3


def test_the_vm_page_says_why_a_fork_of_eleven_is_refused(client, vm, alice):
    client.force_login(alice)
    response = client.post(reverse("vm_fork", args=[vm.pk]), {"count": "11"}, follow=True)
    assert "Choose between 1 and 10 new VMs." in response.content.decode()
    assert not Snapshot.objects.exists()


def test_the_vm_page_offers_no_fork_for_an_image_whose_guests_keep_their_identity(
    client, vm, alice
):
    vm.image.live_identity = False
    vm.image.save(update_fields=["live_identity"])
    client.force_login(alice)
    page = client.get(reverse("vm_detail", args=[vm.pk])).content.decode()
    assert 'data-testid="fork-form"' not in page


def test_another_users_vm_cannot_be_forked_from_the_page(client, vm, bob):
    client.force_login(bob)
    assert client.post(reverse("vm_fork", args=[vm.pk]), {"count": "1"}).status_code == 404
    assert not Snapshot.objects.exists()


# --- Real guests ----------------------------------------------------------------------------


def address_of(vm) -> str:
    """The guest's IPv4 address, once DHCP has given it the one reserved for it."""
    command = 'ip -4 -o addr show dev "$(cat /run/nic)"'
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", guest.run(vm, command))
        if found:
            return found[0]
        time.sleep(1)
    pytest.fail(f"{vm.name} got no address")


def counted_on(vm, *, before: int, after: int) -> list[int]:
    """The counter's values in a forked guest once it printed three: it went on from its value
    at the snapshot, one by one."""
    values = wait_for(
        lambda: ticks(vm) if len(ticks(vm)) >= 3 else None, timeout=60, what="a fork to count"
    )
    assert before <= values[0] <= after + 1, (before, after, values)
    assert values == list(range(values[0], values[0] + len(values)))
    return values


@pytest.mark.libvirt
def test_two_forks_go_on_counting_from_the_snapshot_each_as_a_vm_of_its_own(make_vm, alice):
    vm = make_vm(alice, name="counter")
    if not network.host_has_network(vm.host):
        pytest.skip("this machine gives guests no network")
    guest.wait_for_boot(vm)
    source_address = address_of(vm)
    guest.run(vm, COUNTER)
    wait_for(lambda: len(ticks(vm)) >= 3, timeout=30, what="the counter to count")

    before = ticks(vm)[-1]
    fork = succeeded(vm_fork(vm=vm, user=alice, count=2))
    after = ticks(vm)[-1]
    children = list(
        VM.objects.select_related("host", "image", "owner")
        .filter(pk__in=fork.params["children"])
        .order_by("name")
    )
    assert [c.name for c in children] == ["counter-1", "counter-2"]
    assert fork.result["vms"] == [str(c.pk) for c in children]
    assert {child.state for child in children} == {VMState.RUNNING}

    # Both count on from the snapshot's value at once, without a boot of their own.
    for child in children:
        counted_on(child, before=before, after=after)
        assert b"guest ready:" not in console_bytes(child)
    # Each is a VM of its own: its own host name, MAC and DHCP address.
    addresses = set()
    for child in children:
        wait_for(
            lambda child=child: f"as a new VM: {child.name}".encode() in console_bytes(child),
            timeout=30,
            what="the fork to take its identity",
        )
        assert guest.run(child, "hostname").splitlines()[-1] == child.name
        assert guest.run(child, 'cat "/sys/class/net/$(cat /run/nic)/address"').endswith(
            child.mac_address
        )
        addresses.add(address_of(child))
        child.refresh_from_db()
        assert child.ip_address in addresses
    assert len(addresses) == 2 and source_address not in addresses

    # The source was not touched: it goes on counting from its own value, under its own name.
    wait_for(lambda: ticks(vm)[-1] >= after + 4, timeout=30, what="the source to go on")
    assert guest.run(vm, "hostname").splitlines()[-1] == "counter"
    assert address_of(vm) == source_address
    assert Snapshot.objects.get(pk=fork.subject_pk).state == SnapshotState.READY
