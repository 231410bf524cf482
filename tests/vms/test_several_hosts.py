"""Several hosts, on real guests: host A is this machine's libvirtd, host B a second libvirtd
(`second_libvirtd`) that sees the same pool path but its own files there. New VMs are placed on
both; a snapshot taken on A seeds a VM on B, its layers streamed through libvirt; B's console works;
and B going down leaves A working while B's VMs say so."""

from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import token_create
from core.health import run_checks
from operations.models import WorkerHeartbeat
from snapshots.models import Snapshot
from snapshots.services import snapshot_new_vm, snapshot_restore, snapshot_take
from tests import guest
from tests.conftest import succeeded, wait_for
from vms import hypervisor, image_build
from vms.models import VM, Host, HostState, LayerCopy, vm_id_of_lock
from vms.services import (
    console_read,
    host_prepare,
    hosts_check,
    vm_move,
    vm_start,
    vm_stop,
)

pytestmark = pytest.mark.libvirt


@pytest.fixture(scope="session")
def daemon_b(second_libvirtd, test_pool):
    """Host B's libvirtd, shadowing this run's pool folder."""
    daemon = second_libvirtd(Path(test_pool["pool_path"]).parent)
    daemon.mkdir(test_pool["console_dir"])  # B's virtlogd (an unprivileged user) writes there
    return daemon


@pytest.fixture
def host_b(host, daemon_b, test_pool):
    """Host B, registered like any other host: same pool name and folders, another URI."""
    if not daemon_b.running():
        daemon_b.start()
    config = {**test_pool, "libvirt_uri": daemon_b.uri}
    host_b = Host(name="b", **config)
    host_prepare(host_b)
    host_b.save()
    yield host_b
    if not daemon_b.running():
        daemon_b.start()
    on_b, pool = hypervisor.Hypervisor(daemon_b.uri), test_pool["pool_name"]
    for record in on_b.domains():
        on_b.domain_undefine(record.uuid)
    on_b.pool_refresh(pool)
    for _ in range(10):  # layers built on others first
        names = on_b.volume_names(pool)
        if not names:
            break
        backing = {on_b.volume_info(pool, n).backing_path for n in names}
        for name in names:
            if not any(b and b.endswith("/" + name) for b in backing):
                on_b.volume_delete(pool, name)


def chain_files(vm: VM) -> list[str]:
    """The files of the running guest's disk as its QEMU has them open, top first."""
    return vm.host.hypervisor.domain_disk_chain(vm.domain_uuid)


def test_new_vms_are_placed_on_both_hosts_and_boot_there(make_vm, alice, host, host_b, image):
    Host.objects.filter(pk=host.pk).update(memory_mib=256)  # room for one small VM on A
    first = make_vm(alice, name="first", memory_mib=256)
    second = make_vm(alice, name="second", memory_mib=256)

    assert (first.host.name, second.host.name) == (host.name, "b")
    # B got the image's layer, kernel and initrd through libvirt, into its own files.
    assert LayerCopy.objects.filter(layer=image.layer, host=host_b, state="ready").exists()
    for vm in (first, second):
        guest.wait_for_boot(vm)
    assert guest.run(second, "hostname") == "second"
    assert guest.run(first, "hostname") == "first"


def test_a_snapshot_taken_on_one_host_seeds_a_vm_on_the_other(
    make_vm, alice, host, host_b, daemon_b, test_pool
):
    vm_a = make_vm(alice, name="prepared")
    assert vm_a.host == host
    guest.wait_for_boot(vm_a)
    guest.run(vm_a, "echo made-on-host-a > /root/work; sync; echo done")
    taken = succeeded(snapshot_take(vm=vm_a, user=alice, name="ready"))
    snapshot = Snapshot.objects.get(pk=taken.result["snapshot"])

    Host.objects.filter(pk=host.pk).update(state=HostState.DRAINING)  # A takes no new VMs
    started = succeeded(snapshot_new_vm(snapshot=snapshot, user=alice, name="copy"))
    vm_b = VM.objects.select_related("host", "image", "active_layer").get(
        pk=vm_id_of_lock(started.lock)
    )

    assert vm_b.host == host_b
    assert vm_b.active_layer.parent_id == snapshot.layer_id
    guest.wait_for_boot(vm_b)
    assert guest.run(vm_b, "cat /root/work") == "made-on-host-a"
    # Every file of B's chain is in B's own folder, none of A's is read: the snapshot's layer
    # and the image's are copies, under the same names.
    private_pool = Path(daemon_b.outside(test_pool["pool_path"]))
    copied = {p.name for p in private_pool.iterdir()}
    chain = chain_files(vm_b)
    assert len(chain) == 3
    assert {Path(path).name for path in chain} <= copied
    assert {str(Path(path).parent) for path in chain} == {test_pool["pool_path"]}
    # The guest on A still has its own disk: writing on B changed nothing there.
    guest.run(vm_b, "echo changed-on-b > /root/work; sync; echo done")
    assert guest.run(vm_a, "cat /root/work") == "made-on-host-a"


def test_a_host_that_stops_answering_leaves_the_other_working(
    make_vm, alice, host, host_b, daemon_b, client
):
    Host.objects.filter(pk=host.pk).update(memory_mib=256)
    vm_a = make_vm(alice, name="on-a", memory_mib=256)
    vm_b = make_vm(alice, name="on-b", memory_mib=256)
    assert (vm_a.host.name, vm_b.host.name) == (host.name, "b")
    guest.wait_for_boot(vm_a)

    daemon_b.stop()

    found = hosts_check()
    assert found[host.name] is None and "does not answer" in found["b"]
    problem = Host.objects.get(pk=host_b.pk)
    assert not problem.reachable and "does not answer" in problem.last_error
    health = {check.name: check for check in run_checks()}
    assert health[f"host {host.name}"].ok and not health["host b"].ok
    # The service runs on without B: degraded, not failing (a load balancer keeps it).
    WorkerHeartbeat.objects.create(worker="w1", last_seen=timezone.now())
    healthz = client.get("/healthz")
    assert healthz.status_code == 200 and healthz.json()["status"] == "degraded"
    # B's VM says so: on its page, in the API, and an operation on it fails with the reason.
    client.force_login(alice)
    page = client.get(vm_b.get_absolute_url())
    assert page.status_code == 200 and "Host b does not answer" in page.content.decode()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token_create(user=alice, name='t')[1]}")
    detail = api.get(f"/api/vms/{vm_b.pk}/").json()
    assert (detail["host"], detail["host_reachable"]) == ("b", False)
    console = api.get(f"/api/vms/{vm_b.pk}/console/")
    assert console.status_code == 503
    assert "Host b does not answer" in console.json()["error"]["message"]
    stop = vm_stop(vm=vm_b, user=alice)
    stop.refresh_from_db()
    assert stop.state == "failed" and "does not answer" in stop.error
    # A goes on: its guest answers, and a snapshot of it is taken.
    assert guest.run(vm_a, "echo still-here") == "still-here"
    succeeded(snapshot_take(vm=vm_a, user=alice, name="while b is down"))

    daemon_b.start()
    assert hosts_check()["b"] is None


def test_a_stopped_vm_moves_to_the_other_host_with_its_disk(
    make_vm, alice, host, host_b, test_pool
):
    vm = make_vm(alice, name="mover")
    guest.wait_for_boot(vm)
    guest.run(vm, "echo before-the-move > /root/work; sync; echo done")
    succeeded(snapshot_take(vm=vm, user=alice, name="kept"))
    succeeded(vm_stop(vm=vm, user=alice))
    own_layer = VM.objects.get(pk=vm.pk).active_layer

    moved = succeeded(vm_move(vm=vm, user=None))
    assert moved.result == {"from": host.name, "to": "b"}

    vm = VM.objects.select_related("host", "image", "active_layer").get(pk=vm.pk)
    assert (vm.host, vm.active_layer.host, vm.state) == (host_b, host_b, "stopped")
    assert host.hypervisor.domain_state(vm.domain_uuid) is None
    assert own_layer.volume_name not in host.hypervisor.volume_names(host.pool_name)
    succeeded(vm_start(vm=vm, user=alice))
    guest.wait_for_boot(vm)
    assert guest.run(vm, "cat /root/work") == "before-the-move"


def test_a_live_snapshot_resumes_on_the_host_its_vm_moved_to(
    make_vm, alice, host, host_b, settings
):
    """A memory state resumes only on the same network card connection (a tap saves its
    offloads in the state): the second host here is unprivileged, without a guests' network,
    so both hosts run their guests with the cable pulled."""
    from tests.snapshots.test_live_snapshots import COUNTER, resumed_from, said, ticks

    settings.GUEST_NETWORK = ""
    vm = make_vm(alice, name="counter")
    guest.wait_for_boot(vm)
    guest.run(vm, "echo at-snapshot > /root/marker; sync; echo ok")
    guest.run(vm, COUNTER)
    wait_for(lambda: len(ticks(vm)) >= 3, timeout=30, what="the counter to count")
    before = ticks(vm)[-1]
    take = succeeded(snapshot_take(vm=vm, user=alice, name="live", include_memory=True))
    after = ticks(vm)[-1]
    snapshot = Snapshot.objects.get(pk=take.subject_pk)
    succeeded(vm_stop(vm=vm, user=alice, force=True))
    succeeded(vm_move(vm=vm, user=None))
    vm = VM.objects.select_related("host", "image", "active_layer").get(pk=vm.pk)
    assert vm.host == host_b

    restore = succeeded(snapshot_restore(snapshot=snapshot, user=alice))

    assert restore.result["memory"] is True
    values = resumed_from(vm, 0, after=after)
    assert before <= values[0] <= after + 1, (before, after, values)
    assert image_build.READY_LINE not in console_read(vm=vm, max_bytes=10**7)  # no boot on B
    assert said(vm, "cat /root/marker") == "at-snapshot"
    # B read a copy of the memory file and deleted it; A keeps the snapshot's own.
    memory = snapshot.memory_volume
    assert memory not in host_b.hypervisor.volume_names(host_b.pool_name)
    assert memory in host.hypervisor.volume_names(host.pool_name)
