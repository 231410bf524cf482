"""A snapshot policy on a real running guest: each run takes a real snapshot, retention deletes
the ones it no longer keeps and their layers merge away, so the disk chain stays as deep as the
snapshots kept, and the newest kept one restores the guest's data.

The clock is given to the runs (one a minute), the disks and the guest are real."""

from datetime import UTC, datetime, timedelta

import pytest

from schedules.models import PolicyRun, PolicyRunOutcome
from schedules.services import policies_run_due, policy_set
from snapshots.models import Snapshot, SnapshotKind, SnapshotState
from snapshots.services import snapshot_restore
from tests import guest
from tests.conftest import succeeded
from vms.services import layers_merge_pending

pytestmark = pytest.mark.libvirt

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_a_policy_every_minute_snapshots_a_running_guest_and_keeps_the_newest(make_vm, alice):
    vm = make_vm(alice, name="scheduled")
    guest.wait_for_boot(vm)
    policy_set(
        vm=vm,
        enabled=True,
        schedule="* * * * *",
        timezone_name="UTC",
        keep_last=2,
        now=START - timedelta(seconds=30),
    )

    image_depth = vm.image.layer.depth
    depths = []
    for minute in range(6):
        guest.run(vm, f"echo v{minute} > /root/marker; sync; echo written")
        (run,) = policies_run_due(now=START + timedelta(minutes=minute, seconds=1))
        assert run.outcome == PolicyRunOutcome.TAKEN
        succeeded(run.operation)
        layers_merge_pending()  # what the worker's schedule does every few minutes
        vm.refresh_from_db()
        depths.append(vm.active_layer.depth - image_depth)

    # Above the image: the two snapshots kept and the layer the guest writes to. Without merging
    # the chain would grow by one layer a run: 2, 3, ... 7.
    assert depths == [2, 3, 3, 3, 3, 3]
    chain = vm.host.hypervisor.domain_disk_chain(vm.domain_uuid)
    assert len(chain) == image_depth + 3

    kept = Snapshot.objects.filter(source_vm=vm, kind=SnapshotKind.SCHEDULED)
    assert set(kept.values_list("state", flat=True)) == {SnapshotState.READY}
    slots = {run.slot for run in PolicyRun.objects.filter(snapshot__in=kept)}
    assert slots == {START + timedelta(minutes=4), START + timedelta(minutes=5)}
    assert PolicyRun.objects.filter(policy__vm=vm).count() == 6

    guest.run(vm, "echo after > /root/marker; sync; echo written")
    newest = kept.order_by("-created_at").first()
    succeeded(snapshot_restore(snapshot=newest, user=alice))
    guest.wait_for_boot(vm, boots=2)
    assert guest.run(vm, "cat /root/marker") == "v5"
