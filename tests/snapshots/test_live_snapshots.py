"""Live snapshots: the guest's memory kept with its disk, and resumed by a restore of its own VM
without a reboot. Rules first (no libvirt), then one real guest that counts in memory only."""

import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.services import token_create
from core.errors import InvalidState
from operations.models import Operation
from snapshots.models import Snapshot, SnapshotKind, SnapshotState, memory_volume_name
from snapshots.services import snapshot_delete, snapshot_new_vm, snapshot_restore, snapshot_take
from tests import guest
from tests.conftest import succeeded, wait_for
from tests.factories import GIB, layer_row, vm_row
from vms.models import VM, VMState, vm_id_of_lock
from vms.reconciler import volumes_kept
from vms.services import vm_delete


@pytest.fixture
def vm(alice):
    return vm_row(owner=alice, state=VMState.RUNNING, name="web")


@pytest.fixture
def stopped(alice):
    return vm_row(owner=alice, state=VMState.STOPPED, name="idle")


def api_for(user) -> APIClient:
    client = APIClient()
    _token, key = token_create(user=user, name="tests")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def live_snapshot_row(vm, **kwargs) -> Snapshot:
    return Snapshot.objects.create(
        owner=vm.owner,
        source_vm=vm,
        source_vm_name=vm.name,
        image=vm.image,
        name="live",
        layer=layer_row(host=vm.host, parent=vm.image.layer),
        size_bytes=GIB,
        memory_bytes=GIB // 2,
        includes_memory=True,
        disk_bytes=vm.disk_bytes,
        state=SnapshotState.READY,
        **kwargs,
    )


def test_a_memory_snapshot_of_a_running_vm_is_recorded_with_memory(vm):
    operation = snapshot_take(vm=vm, user=vm.owner, name="live", include_memory=True)
    assert operation.subject.includes_memory
    assert operation.subject.memory_volume == f"{operation.subject.pk}.memory"


def test_a_snapshot_has_no_memory_unless_asked(vm):
    operation = snapshot_take(vm=vm, user=vm.owner, name="disk only")
    assert not operation.subject.includes_memory


def test_a_memory_snapshot_of_a_stopped_vm_is_refused_and_records_nothing(stopped):
    with pytest.raises(InvalidState, match="stopped, so it has no memory to keep"):
        snapshot_take(vm=stopped, user=stopped.owner, name="live", include_memory=True)
    assert not Snapshot.objects.exists()
    assert not Operation.objects.exists()


def test_the_api_refuses_a_memory_snapshot_of_a_stopped_vm_with_a_409(stopped, alice):
    response = api_for(alice).post(
        f"/api/vms/{stopped.pk}/snapshots/",
        {"name": "live", "include_memory": True},
        format="json",
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert "start the VM first" in response.json()["error"]["message"]


def test_the_api_takes_a_memory_snapshot_and_shows_it(vm, alice):
    client = api_for(alice)
    response = client.post(
        f"/api/vms/{vm.pk}/snapshots/", {"name": "live", "include_memory": True}, format="json"
    )
    assert response.status_code == 202
    snapshot = Snapshot.objects.get(pk=response.json()["snapshot"])
    assert snapshot.includes_memory
    shown = client.get(f"/api/snapshots/{snapshot.pk}/").json()
    assert (shown["includes_memory"], shown["memory_bytes"]) == (True, 0)


def test_the_api_refuses_include_memory_that_is_not_a_boolean(vm, alice):
    response = api_for(alice).post(
        f"/api/vms/{vm.pk}/snapshots/",
        {"name": "live", "include_memory": "sometimes"},
        format="json",
    )
    assert response.status_code == 400
    assert "include_memory" in response.json()["error"]["fields"]


def test_the_page_says_why_a_memory_snapshot_of_a_stopped_vm_is_refused(client, stopped, alice):
    client.force_login(alice)
    response = client.post(
        reverse("snapshot_take", args=[stopped.pk]), {"name": "live", "include_memory": "on"}
    )
    assert response.status_code == 302
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("no memory to keep" in text for text in texts), texts
    assert not Snapshot.objects.exists()


def test_a_restore_onto_its_own_vm_resumes_the_memory(vm):
    snapshot = live_snapshot_row(vm)
    operation = snapshot_restore(snapshot=snapshot, user=vm.owner)
    assert operation.params["memory"] is True


def test_a_restore_onto_another_vm_puts_back_the_disk_only(vm, alice):
    snapshot = live_snapshot_row(vm)
    other = vm_row(owner=alice, image=vm.image, name="other")
    operation = snapshot_restore(snapshot=snapshot, user=alice, vm=other)
    assert operation.params["memory"] is False


def test_the_api_says_a_restore_onto_another_vm_puts_back_the_disk_only(client):
    schema = client.get("/api/schema/?format=json").json()
    help_text = schema["components"]["schemas"]["SnapshotRestoreRequest"]["properties"]["vm"]
    assert "Only the snapshot's disk is put back" in help_text["description"]


def test_a_snapshots_memory_counts_against_the_plan(vm, alice):
    from snapshots.selectors import usage_for

    live_snapshot_row(vm, kind=SnapshotKind.MANUAL)
    assert usage_for(alice).snapshot_bytes == GIB  # its size: the layer and the memory


def test_deleting_a_snapshot_with_memory_frees_its_memory_file(vm):
    snapshot = live_snapshot_row(vm)
    operation = snapshot_delete(snapshot=snapshot, user=vm.owner)
    assert operation.params["memory"] == {"host": vm.host_id, "volume": snapshot.memory_volume}


def test_the_reconciler_keeps_the_memory_file_of_every_snapshot_with_memory(vm):
    snapshot = live_snapshot_row(vm)
    requested = snapshot_take(vm=vm, user=vm.owner, name="later", include_memory=True).subject
    kept = volumes_kept(vm.host)
    assert memory_volume_name(snapshot.pk) in kept
    assert memory_volume_name(requested.pk) in kept  # from the moment it is asked for


def test_the_admin_shows_whether_a_snapshot_has_memory_and_its_bytes(client, charlie, vm):
    live_snapshot_row(vm)
    client.force_login(charlie)
    page = client.get(reverse("admin:snapshots_snapshot_changelist")).content.decode()
    assert "Includes memory" in page
    assert "Memory bytes" in page


# --- A real guest ---------------------------------------------------------------------------

COUNTER = "{ n=0; while :; do n=$((n+1)); echo TICK $n; sleep 0.5; done & }"
TICK = re.compile(rb"TICK (\d+)\r?\n")


class WorkerDied(BaseException):
    """Stands for a worker killed on the spot: no handler of the job sees it."""


def console_bytes(vm) -> bytes:
    """Everything the guest printed, read through libvirt from whichever host runs it."""
    host = vm.host
    return host.hypervisor.console_read(host.console_pool_name, f"{vm.id}.log", 10**9)[0]


def ticks(vm, since: int = 0) -> list[int]:
    """The counter's values the guest printed, after byte `since` of its console log."""
    return [int(n) for n in TICK.findall(console_bytes(vm)[since:])]


def said(vm, command: str) -> str:
    """What a command printed, without the counter's lines printed meanwhile."""
    lines = guest.run(vm, command).splitlines()
    return "\n".join(line for line in lines if not re.fullmatch(r"TICK \d+", line))


def uptime(vm) -> float:
    return float(re.search(r"UP (\d+\.\d+)", said(vm, "echo UP $(cut -d' ' -f1 /proc/uptime)"))[1])


def boots(vm) -> int:
    from vms.image_build import READY_LINE

    return console_bytes(vm).count(READY_LINE.encode())


def resumed_from(vm, since: int, *, after: int) -> list[int]:
    """The values the counter printed after byte `since`, from where it was set back (the guest
    that ran before the restore may have printed a few more first), once it printed three."""

    def resumed():
        values = ticks(vm, since)
        drops = [i for i in range(1, len(values)) if values[i] < values[i - 1]]
        if drops:
            values = values[drops[-1] :]
        elif values and values[0] > after + 1:
            return None  # only the guest from before the restore so far
        return values if len(values) >= 3 else None

    return wait_for(resumed, timeout=30, what="the counter to go on")


def memory_restore_and_check(vm, snapshot, *, before: int, after: int, up_at_take: float):
    """Restore the snapshot; the counter goes on from its value at the snapshot, same boot."""
    offset = len(console_bytes(vm))
    operation = succeeded(snapshot_restore(snapshot=snapshot, user=vm.owner))
    assert operation.result["memory"] is True
    values = resumed_from(vm, offset, after=after)
    assert before <= values[0] <= after + 1, (before, after, values)
    assert values == list(range(values[0], values[0] + len(values)))
    assert boots(vm) == 1  # no reboot
    assert uptime(vm) >= up_at_take  # the clock of the same boot, not a fresh one
    assert said(vm, "cat /root/marker") == "at-snapshot"  # the disk of that moment
    vm.refresh_from_db()
    assert vm.state == VMState.RUNNING
    assert vm.active_layer.parent_id == snapshot.layer_id
    assert vm.host.hypervisor.domain_disk_path(vm.domain_uuid).endswith(vm.active_layer.volume_name)
    persistent = vm.host.hypervisor.domain_xml_of(vm.domain_uuid, inactive=True)
    assert vm.active_layer.volume_name in persistent
    return operation


@pytest.mark.libvirt
def test_a_live_snapshot_resumes_a_program_that_counts_in_memory(make_vm, alice, monkeypatch):
    vm = make_vm(alice, name="counter")
    guest.wait_for_boot(vm)
    host = vm.host
    guest.run(vm, "echo at-snapshot > /root/marker; sync; echo ok")
    guest.run(vm, COUNTER)
    wait_for(lambda: len(ticks(vm)) >= 3, timeout=30, what="the counter to count")

    up_at_take = uptime(vm)
    before = ticks(vm)[-1]
    take = succeeded(snapshot_take(vm=vm, user=alice, name="live", include_memory=True))
    after = ticks(vm)[-1]
    snapshot = Snapshot.objects.select_related("layer").get(pk=take.subject_pk)
    assert snapshot.includes_memory and snapshot.memory_bytes > 0
    assert snapshot.size_bytes == snapshot.layer.allocation + snapshot.memory_bytes
    volumes = host.hypervisor.volume_names(host.pool_name)
    assert f"{snapshot.pk}.memory" in volumes

    # The counter goes on, and the disk changes.
    guest.run(vm, "echo later > /root/marker; sync; echo ok")
    wait_for(lambda: ticks(vm)[-1] >= after + 6, timeout=30, what="the counter to go on")

    memory_restore_and_check(vm, snapshot, before=before, after=after, up_at_take=up_at_take)
    # Again, after the counter went on from there: the same moment comes back.
    wait_for(lambda: ticks(vm)[-1] >= after + 6, timeout=30, what="the counter to go on")
    memory_restore_and_check(vm, snapshot, before=before, after=after, up_at_take=up_at_take)

    # A worker that dies once the disk has switched, before the memory is resumed: the
    # repair resumes it (nothing has written to the new layer yet).
    from django.utils import timezone

    from operations import services as operation_services
    from snapshots import jobs

    guest.run(vm, "echo before-third > /root/marker; sync; echo ok")
    real_enqueue = operation_services.operation_enqueue
    monkeypatch.setattr(operation_services, "operation_enqueue", lambda operation: None)
    restore = snapshot_restore(snapshot=snapshot, user=alice)
    claimed = operation_services.operation_claim(restore.pk)
    real_resume = jobs.memory_resume
    monkeypatch.setattr(jobs, "memory_resume", lambda *a: (_ for _ in ()).throw(WorkerDied()))
    with pytest.raises(WorkerDied):
        jobs.snapshot_restore_run(claimed)
    monkeypatch.setattr(jobs, "memory_resume", real_resume)
    offset = len(console_bytes(vm))
    later = timezone.now() + timezone.timedelta(minutes=5)
    assert [o.pk for o in operation_services.operations_expire(now=later)] == [restore.pk]
    restore.refresh_from_db()
    assert "The saved memory was resumed." in restore.error
    values = resumed_from(vm, offset, after=after)
    assert before <= values[0] <= after + 1
    assert boots(vm) == 1

    # Undo as ever: the disk from before the last restore comes back, and the guest boots.
    monkeypatch.setattr(operation_services, "operation_enqueue", real_enqueue)
    undo = Snapshot.objects.get(source_vm=vm, kind=SnapshotKind.BEFORE_RESTORE)
    assert not undo.includes_memory
    succeeded(snapshot_restore(snapshot=undo, user=alice))
    guest.wait_for_boot(vm, boots=2)
    assert said(vm, "cat /root/marker") == "before-third"

    # A new VM from a live snapshot resumes it too, as a VM of its own: no boot, the counter
    # goes on from the snapshot's value, on the snapshot's disk.
    new_vm = succeeded(snapshot_new_vm(snapshot=snapshot, user=alice, name="clone"))
    assert new_vm.result["resumed"] is True
    clone = VM.objects.select_related("host", "image").get(pk=vm_id_of_lock(new_vm.lock))
    values = resumed_from(clone, 0, after=after)
    assert before <= values[0] <= after + 1
    assert said(clone, "cat /root/marker") == "at-snapshot"
    assert b"guest ready:" not in console_bytes(clone)

    # Deleting the snapshot frees its memory file.
    succeeded(vm_delete(vm=clone, user=alice))
    succeeded(snapshot_delete(snapshot=snapshot, user=alice))
    volumes = host.hypervisor.volume_names(host.pool_name)
    assert f"{snapshot.pk}.memory" not in volumes
