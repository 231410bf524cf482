"""Drift made by hand is found and repaired or reported, without false alarms on healthy VMs."""

from datetime import timedelta

import pytest
from django.utils import timezone

from operations.models import Operation, OperationState
from operations.services import operation_claim
from snapshots.models import Snapshot
from tests import guest
from tests.conftest import wait_for
from vms.models import VM, Layer, ReconcileRun, VMOperationKind, VMState
from vms.reconciler import reconcile
from vms.services import console_send

pytestmark = pytest.mark.libvirt

NO_GRACE = timedelta(0)


def test_a_healthy_vm_raises_no_alarm(make_vm, alice):
    vm = make_vm(alice)
    report = reconcile(grace=NO_GRACE)
    assert not [line for line in report.found if vm.name in line or str(vm.domain_uuid) in line]
    vm.refresh_from_db()
    assert vm.state == VMState.RUNNING
    assert ReconcileRun.objects.get().summary == report.text()


def test_a_domain_undefined_behind_the_services_back_marks_the_vm(make_vm, alice):
    vm = make_vm(alice)
    vm.host.hypervisor.domain_undefine(vm.domain_uuid)
    report = reconcile(grace=NO_GRACE)
    vm.refresh_from_db()
    assert vm.state == VMState.ERROR
    assert any("its domain vanished" in line for line in report.found)


def test_a_guest_that_powered_itself_off_is_recorded_as_stopped(make_vm, alice):
    vm = make_vm(alice)
    guest.wait_for_boot(vm)
    console_send(vm=vm, user=alice, line="poweroff")
    wait_for(
        lambda: vm.host.hypervisor.domain_state(vm.domain_uuid) == "shutoff",
        timeout=60,
        what="the guest to power off",
    )
    report = reconcile(grace=NO_GRACE)
    vm.refresh_from_db()
    assert vm.state == VMState.STOPPED
    assert f"VM {vm.name!r}: recorded running, really stopped; corrected." in report.found


def test_a_stray_volume_is_reported_then_removed_after_the_grace_period(host, image):
    host.hypervisor.volume_create(host.pool_name, "stray.qcow2", capacity=2**20)
    first = reconcile(grace=timedelta(minutes=10))
    assert "Volume stray.qcow2: belongs to nothing; removed if still so later." in first.found
    assert "stray.qcow2" in host.hypervisor.volume_names(host.pool_name)

    later = reconcile(now=timezone.now() + timedelta(minutes=11), grace=timedelta(minutes=10))
    assert "Volume stray.qcow2: belonged to nothing; removed." in later.found
    assert "stray.qcow2" not in host.hypervisor.volume_names(host.pool_name)


def test_an_unknown_volume_a_layer_builds_on_is_kept(host, image, alice):
    pool = host.pool_name
    base = host.hypervisor.volume_create(pool, "unrecorded-base.qcow2", capacity=2**20)
    layer = Layer.objects.create(host=host, virtual_size=2**20, state="ready")
    host.hypervisor.volume_create(pool, layer.volume_name, capacity=2**20, backing_path=base.path)
    Snapshot.objects.create(
        owner=alice, source_vm_name="gone", image=image, name="kept", layer=layer, state="ready"
    )
    report = reconcile(grace=NO_GRACE)
    names = host.hypervisor.volume_names(pool)
    assert "unrecorded-base.qcow2" in names
    assert layer.volume_name in names
    assert (
        "Volume unrecorded-base.qcow2: no layer row, but a layer is built on it; kept."
        in report.found
    )


def test_an_orphan_domain_is_removed_after_the_grace_period(make_vm, alice):
    vm = make_vm(alice)
    VM.objects.filter(pk=vm.pk).delete()  # the row goes behind the service's back
    report = reconcile(grace=NO_GRACE)
    assert f"Domain ks-{vm.domain_uuid}: belonged to no VM; removed." in report.found
    assert vm.host.hypervisor.domain_state(vm.domain_uuid) is None


def test_an_operation_stuck_past_its_deadline_is_failed(make_vm, alice):
    vm = make_vm(alice)
    # Recorded, not enqueued: no task runs it.
    stuck = Operation.objects.create(
        kind=VMOperationKind.REBOOT, owner=alice, lock=vm.lock, subject=vm, target_name=vm.name
    )
    claimed = operation_claim(stuck.pk)
    assert claimed is not None
    report = reconcile(now=claimed.deadline + timedelta(seconds=1), grace=timedelta(days=1))
    stuck.refresh_from_db()
    assert stuck.state == OperationState.FAILED
    assert any("did not finish it in time" in line for line in report.found)


def test_the_reconcile_command_prints_its_summary(host, image):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("reconcile", "--grace-minutes", "0", stdout=out)
    assert out.getvalue().startswith("Found and handled")
