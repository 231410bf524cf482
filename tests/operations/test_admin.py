"""Django admin: every model listed without N+1 queries, and the repair actions work."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Plan, User
from operations.models import Operation, OperationState, housekeeping_lock
from snapshots.models import Snapshot, SnapshotState
from tests.factories import image_row, layer_row, vm_row
from vms.models import VMOperationKind, VMState

CHANGELISTS = [
    "/admin/accounts/user/",
    "/admin/accounts/apitoken/",
    "/admin/accounts/plan/",
    "/admin/vms/host/",
    "/admin/vms/image/",
    "/admin/vms/layer/",
    "/admin/vms/vm/",
    "/admin/snapshots/snapshot/",
    "/admin/operations/operation/",
    "/admin/vms/reconcilerun/",
    "/admin/vms/orphansighting/",
    "/admin/operations/workerheartbeat/",
    "/admin/operations/idempotentrequest/",
]


def fill(owner, count):
    image = image_row(slug=f"img-{owner.pk}-{count}")
    for i in range(count):
        vm = vm_row(owner=owner, image=image, name=f"vm-{count}-{i}")
        Snapshot.objects.create(
            owner=owner,
            source_vm=vm,
            source_vm_name=vm.name,
            image=image,
            name=f"s{i}",
            layer=layer_row(host=image.host),
            state=SnapshotState.READY,
        )
        Operation.objects.create(
            kind=VMOperationKind.START,
            owner=owner,
            lock=vm.lock,
            subject=vm,
            target_name=vm.name,
            state=OperationState.SUCCEEDED,
        )


def queries(client, url):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(captured)


@pytest.mark.parametrize("url", CHANGELISTS)
def test_every_changelist_renders(client, charlie, alice, url):
    fill(alice, 2)
    client.force_login(charlie)
    assert client.get(url).status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "/admin/vms/vm/",
        "/admin/snapshots/snapshot/",
        "/admin/operations/operation/",
        "/admin/vms/layer/",
        "/admin/accounts/user/",
    ],
)
def test_changelist_queries_do_not_grow_with_rows(client, charlie, alice, bob, url):
    client.force_login(charlie)
    fill(alice, 2)
    few = queries(client, url)
    fill(bob, 40)
    assert queries(client, url) == few


def act(client, url, action, queryset_ids, **extra):
    data = {"action": action, "_selected_action": [str(pk) for pk in queryset_ids], **extra}
    return client.post(url, data, follow=True)


def test_retry_queues_a_failed_operation_again(client, charlie, alice):
    vm = vm_row(owner=alice, state=VMState.RUNNING)
    failed = Operation.objects.create(
        kind=VMOperationKind.STOP,
        owner=alice,
        lock=vm.lock,
        subject=vm,
        target_name=vm.name,
        state=OperationState.FAILED,
        error="boom",
    )
    client.force_login(charlie)
    act(client, "/admin/operations/operation/", "retry", [failed.pk])
    failed.refresh_from_db()
    assert (failed.state, failed.error) == (OperationState.QUEUED, "")


def test_retry_is_refused_while_the_vm_is_busy(client, charlie, alice):
    vm = vm_row(owner=alice, state=VMState.RUNNING)
    Operation.objects.create(
        kind=VMOperationKind.STOP, owner=alice, lock=vm.lock, subject=vm, target_name="x"
    )
    failed = Operation.objects.create(
        kind=VMOperationKind.STOP,
        owner=alice,
        lock=vm.lock,
        subject=vm,
        target_name=vm.name,
        state=OperationState.FAILED,
    )
    client.force_login(charlie)
    page = act(client, "/admin/operations/operation/", "retry", [failed.pk]).content.decode()
    assert "VM is busy" in page
    failed.refresh_from_db()
    assert failed.state == OperationState.FAILED


def test_mark_failed_ends_an_operation_with_the_admins_name(client, charlie, alice):
    vm = vm_row(owner=alice, state=VMState.RUNNING)
    stuck = Operation.objects.create(
        kind=VMOperationKind.REBOOT, owner=alice, lock=vm.lock, subject=vm, target_name="x"
    )
    client.force_login(charlie)
    act(client, "/admin/operations/operation/", "mark_failed", [stuck.pk])
    stuck.refresh_from_db()
    assert stuck.state == OperationState.FAILED
    assert stuck.error.startswith("Marked failed by charlie.")


def test_mark_failed_on_a_queued_take_drops_its_snapshot(client, charlie, alice):
    from snapshots.services import snapshot_take

    vm = vm_row(owner=alice, state=VMState.RUNNING)
    take = snapshot_take(vm=vm, user=alice, name="never taken")  # no worker: stays queued
    client.force_login(charlie)
    response = act(client, "/admin/operations/operation/", "mark_failed", [take.pk])
    assert response.status_code == 200
    take.refresh_from_db()
    assert take.state == OperationState.FAILED
    assert "It had not started; the snapshot was not taken." in take.error
    assert not Snapshot.objects.filter(owner=alice).exists()  # nothing left in "creating"


def test_mark_failed_on_a_queued_restore_leaves_the_disk(client, charlie, alice):
    from snapshots.services import snapshot_restore

    vm = vm_row(owner=alice, state=VMState.RUNNING)
    snapshot = Snapshot.objects.create(
        owner=alice,
        source_vm=vm,
        source_vm_name=vm.name,
        image=vm.image,
        name="s",
        layer=layer_row(host=vm.host, parent=vm.active_layer),
        state=SnapshotState.READY,
    )
    restore = snapshot_restore(snapshot=snapshot, user=alice)
    client.force_login(charlie)
    act(client, "/admin/operations/operation/", "mark_failed", [restore.pk])
    restore.refresh_from_db()
    assert restore.state == OperationState.FAILED
    assert "It had not started; the VM keeps its disk." in restore.error


def test_flatten_starts_an_operation(client, charlie, alice):
    vm = vm_row(owner=alice, state=VMState.RUNNING)
    client.force_login(charlie)
    act(client, "/admin/vms/vm/", "flatten", [vm.pk])
    # Flattening is housekeeping: it holds the VM's housekeeping lock, never the VM's own.
    flattening = Operation.objects.holding(housekeeping_lock(vm.lock)).get()
    assert flattening.kind == VMOperationKind.FLATTEN


def test_change_plan_asks_which_then_moves_the_users(client, charlie, alice, bob):
    client.force_login(charlie)
    page = act(client, "/admin/accounts/user/", "change_plan", [alice.pk, bob.pk])
    assert "Move users to another plan" in page.content.decode()
    professional = Plan.objects.get(slug="professional")
    act(
        client,
        "/admin/accounts/user/",
        "change_plan",
        [alice.pk, bob.pk],
        apply="1",
        plan=str(professional.pk),
    )
    assert set(User.objects.filter(plan=professional).values_list("username", flat=True)) == {
        "alice",
        "bob",
    }


def test_operations_cannot_be_hand_edited(client, charlie, alice):
    operation = Operation.objects.create(kind=VMOperationKind.START, owner=alice, target_name="x")
    client.force_login(charlie)
    page = client.get(f"/admin/operations/operation/{operation.pk}/change/").content.decode()
    assert 'name="state"' not in page
