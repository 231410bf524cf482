"""Killed workers, a restarted libvirtd, drift made by hand: nothing a user has is lost, and the
reconciler leaves no volume or domain that nothing references.

A worker is killed (the whole cluster, SIGKILL) at a named failpoint; a new one is started, and
within 60 s it has noticed the dead worker's lease run out and repaired the operation.
"""

import os
import subprocess
from datetime import timedelta

import pytest

from operations.models import Operation, OperationState
from snapshots.models import Snapshot
from snapshots.services import snapshot_new_vm, snapshot_restore, snapshot_take
from tests import guest
from tests.conftest import Worker, tasks_inline, wait_for
from vms.models import VM, Image, Layer, VMState, vm_id_of_lock
from vms.reconciler import reconcile
from vms.services import vm_create, vm_create_retry, vm_stop

pytestmark = [pytest.mark.libvirt, pytest.mark.worker]


def finished(operation):
    operation.refresh_from_db()
    return operation.state in (OperationState.SUCCEEDED, OperationState.FAILED)


def run_to_end(operation, timeout=90):
    wait_for(lambda: finished(operation), timeout=timeout, what=f"{operation.kind} to finish")
    assert operation.state == OperationState.SUCCEEDED, operation.error
    return operation


def nothing_unreferenced_is_left(host):
    """Every volume in the pool is a layer or an image file; every domain is a VM's, and every
    VM has one but those whose creation failed (they hold nothing on a host)."""
    volumes = set(host.hypervisor.volume_names(host.pool_name))
    wanted = {layer.volume_name for layer in Layer.objects.filter(host=host)}
    for image in Image.objects.filter(host=host):
        wanted |= {image.kernel_volume, image.initrd_volume}
    assert volumes == wanted
    domains = {
        r.uuid for r in host.hypervisor.domains() if r.metadata.get("pool") == host.pool_name
    }
    holding = VM.objects.filter(host=host).exclude(state=VMState.FAILED)
    assert domains == set(holding.values_list("domain_uuid", flat=True))


@pytest.fixture
def failpoint_dir(tmp_path):
    folder = tmp_path / "failpoints"
    folder.mkdir()
    return folder


# Short leases make the tests quicker; the repair works the same at the default.
LEASE = "8"


@pytest.fixture
def crashing_worker(transactional_db, failpoint_dir, request):
    """A real worker that stops at the failpoint named by the test's `failpoint` mark."""
    name = request.node.get_closest_marker("failpoint").args[0]
    worker = Worker(FAILPOINTS=name, FAILPOINT_DIR=str(failpoint_dir), WORKER_LEASE_SECONDS=LEASE)
    yield worker
    worker.stop()


def booted_vm_with_marker(alice, image, text="kept"):
    created = run_to_end(vm_create(owner=alice, name="box", image=image))
    vm = VM.objects.get(pk=vm_id_of_lock(created.lock))
    vm = VM.objects.select_related("host", "image").get(pk=vm.pk)
    guest.wait_for_boot(vm)
    guest.run(vm, f"echo {text} > /root/marker; sync; echo ok")
    return vm


def restore_of_first_over_second(alice, image):
    """A VM whose marker said "first" when snapshotted and "second" now; a restore requested."""
    vm = booted_vm_with_marker(alice, image, "first")
    snapshot = Snapshot.objects.get(
        pk=run_to_end(snapshot_take(vm=vm, user=alice, name="s")).subject_pk
    )
    guest.run(vm, "echo second > /root/marker; sync; echo ok")
    return vm, snapshot_restore(snapshot=snapshot, user=alice)


def kill_at_failpoint(worker, failpoint_dir, name):
    wait_for(lambda: (failpoint_dir / name).exists(), timeout=60, what=f"failpoint {name}")
    worker.kill()


def repaired_by_a_new_worker(operation):
    """Start a new worker after the old one died; within 60 s it has ended the operation."""
    operation.refresh_from_db()
    assert operation.state == OperationState.RUNNING
    worker = Worker()
    try:
        wait_for(
            lambda: finished(operation) and operation.message == "Failed",
            timeout=60,
            what="a new worker to repair it",
        )
    finally:
        worker.stop()
    assert operation.state == OperationState.FAILED
    assert "stopped before it finished" in operation.error


@pytest.mark.failpoint("snapshot.take.switched")
def test_a_worker_killed_in_the_middle_of_a_take(crashing_worker, failpoint_dir, alice, image):
    vm = booted_vm_with_marker(alice, image)
    take = snapshot_take(vm=vm, user=alice, name="interrupted")
    kill_at_failpoint(crashing_worker, failpoint_dir, "snapshot.take.switched")

    repaired_by_a_new_worker(take)
    with tasks_inline():
        assert take.state == OperationState.FAILED
        assert "The snapshot had been taken; it was recorded." in take.error
        snapshot = Snapshot.objects.get(pk=take.subject_pk)
        assert snapshot.state == "ready"
        vm.refresh_from_db()
        assert vm.state == VMState.RUNNING
        assert guest.run(vm, "cat /root/marker") == "kept"
        nothing_unreferenced_is_left(vm.host)


@pytest.mark.failpoint("snapshot.restore.switched")
def test_a_worker_killed_in_the_middle_of_a_restore(crashing_worker, failpoint_dir, alice, image):
    vm, restore = restore_of_first_over_second(alice, image)
    kill_at_failpoint(crashing_worker, failpoint_dir, "snapshot.restore.switched")

    repaired_by_a_new_worker(restore)
    with tasks_inline():
        assert "it was completed" in restore.error
        vm.refresh_from_db()
        assert vm.state == VMState.RUNNING
        guest.wait_for_boot(vm, boots=2)
        assert guest.run(vm, "cat /root/marker") == "first"
        nothing_unreferenced_is_left(vm.host)


@pytest.mark.failpoint("snapshot.restore.stopped")
def test_a_worker_killed_before_a_restore_switched_the_disk(
    crashing_worker, failpoint_dir, alice, image
):
    vm, restore = restore_of_first_over_second(alice, image)
    kill_at_failpoint(crashing_worker, failpoint_dir, "snapshot.restore.stopped")

    repaired_by_a_new_worker(restore)
    with tasks_inline():
        assert "the VM keeps its disk" in restore.error
        guest.wait_for_boot(vm, boots=2)
        assert guest.run(vm, "cat /root/marker") == "second"
        assert not Snapshot.objects.filter(kind="before_restore").exists()
        nothing_unreferenced_is_left(vm.host)


@pytest.mark.failpoint("vm.create.layer")
def test_a_worker_killed_in_the_middle_of_a_new_vm(crashing_worker, failpoint_dir, alice, image):
    with tasks_inline():  # the worker would stop at the source VM's creation too
        source = booted_vm_with_marker(alice, image)
        snapshot_id = run_to_end(snapshot_take(vm=source, user=alice, name="s")).subject_pk
    snapshot = Snapshot.objects.get(pk=snapshot_id)
    clone = snapshot_new_vm(snapshot=snapshot, user=alice, name="clone")
    kill_at_failpoint(crashing_worker, failpoint_dir, "vm.create.layer")

    repaired_by_a_new_worker(clone)
    with tasks_inline():
        assert "the VM is marked failed, to retry" in clone.error
        failed = VM.objects.get(name="clone")
        assert (failed.state, failed.active_layer) == (VMState.FAILED, None)
        nothing_unreferenced_is_left(source.host)
        # Retried, it starts from the snapshot, and the source VM still has its data.
        run_to_end(vm_create_retry(vm=failed, user=alice))
        again = VM.objects.get(pk=failed.pk)
        guest.wait_for_boot(again)
        assert guest.run(again, "cat /root/marker") == "kept"
        assert guest.run(source, "cat /root/marker") == "kept"


def restart_libvirtd():
    """Stop libvirtd and start it again (the guests keep running meanwhile)."""
    subprocess.run(["pkill", "-x", "libvirtd"], check=False)
    wait_for(
        lambda: subprocess.run(["pgrep", "-x", "libvirtd"], capture_output=True).returncode != 0,
        timeout=30,
        what="libvirtd to stop",
    )
    subprocess.run(["libvirtd", "-d"], check=True)
    wait_for(
        lambda: subprocess.run(["virsh", "-q", "version"], capture_output=True).returncode == 0,
        timeout=30,
        what="libvirtd to answer again",
    )


@pytest.fixture
def patient_worker(transactional_db):
    """A real worker that waits up to five minutes for a guest to power off."""
    worker = Worker(VM_STOP_TIMEOUT="300")
    yield worker
    worker.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="restarting libvirtd needs root")
def test_libvirtd_restarted_during_an_operation_loses_nothing(patient_worker, alice, image):
    vm = booted_vm_with_marker(alice, image)
    guest.run(vm, "killall acpid; echo ignoring the power button")
    stop = vm_stop(vm=vm, user=alice)
    wait_for(
        lambda: Operation.objects.filter(pk=stop.pk, progress__gte=20).exists(),
        timeout=30,
        what="the stop to be waiting for the guest",
    )
    restart_libvirtd()

    wait_for(lambda: finished(stop), timeout=60, what="the stop to end")
    assert stop.state == OperationState.FAILED
    assert stop.error.startswith("The host refused: libvirt is unreachable")
    report = reconcile(grace=timedelta(0))
    assert not [line for line in report.found if "vanished" in line]
    vm.refresh_from_db()
    assert vm.state == VMState.RUNNING  # the guest never stopped
    assert guest.run(vm, "cat /root/marker") == "kept"
    nothing_unreferenced_is_left(vm.host)
