"""What a snapshot request may ask, and the plan limits (no libvirt: rules only)."""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from accounts.models import Plan
from accounts.services import plan_change
from core.errors import Busy, InvalidState, LimitExceeded, NameTaken
from operations.models import Operation, OperationState
from snapshots.models import Snapshot, SnapshotKind, SnapshotOperationKind, SnapshotState
from snapshots.selectors import usage_for
from snapshots.services import (
    snapshot_delete,
    snapshot_new_vm,
    snapshot_rename,
    snapshot_restore,
    snapshot_take,
)
from tests.factories import GIB, image_row, layer_row, vm_row
from vms.models import VM, VMState, vm_id_of_lock


@pytest.fixture
def vm(alice):
    return vm_row(owner=alice, state=VMState.RUNNING, name="web")


def snapshot_row(vm, *, name="snap", state=SnapshotState.READY, size=GIB, **kwargs):
    return Snapshot.objects.create(
        owner=vm.owner,
        source_vm=vm,
        source_vm_name=vm.name,
        image=vm.image,
        name=name,
        layer=layer_row(host=vm.host, parent=vm.image.layer),
        size_bytes=size,
        disk_bytes=vm.disk_bytes,
        state=state,
        **kwargs,
    )


def test_new_accounts_get_the_default_plan(alice):
    assert alice.plan.slug == "developer"
    assert (alice.plan.max_snapshots, alice.plan.max_vms) == (3, 5)


def test_the_seeded_plans_are_kodings(plans):
    table = {p.slug: p.max_snapshots for p in Plan.objects.all()}
    assert table == {"free": 0, "hobbyist": 1, "developer": 3, "professional": 5}


def test_take_records_a_creating_snapshot_and_a_queued_operation(vm):
    operation = snapshot_take(vm=vm, user=vm.owner, name="Before upgrade", description="ok")
    assert operation.kind == SnapshotOperationKind.TAKE
    assert operation.state == OperationState.QUEUED
    snapshot = operation.subject
    assert (snapshot.name, snapshot.state, snapshot.source_vm) == (
        "Before upgrade",
        SnapshotState.CREATING,
        vm,
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "Give a snapshot name."), ("x" * 65, "64 characters"), ("a\x00b", "cannot be shown")],
)
def test_take_refuses_a_bad_name_and_records_nothing(vm, name, message):
    with pytest.raises(ValidationError, match=message):
        snapshot_take(vm=vm, user=vm.owner, name=name)
    assert not Snapshot.objects.exists()
    assert not Operation.objects.exists()


def test_take_refuses_an_overlong_description(vm):
    with pytest.raises(ValidationError, match="1000 characters"):
        snapshot_take(vm=vm, user=vm.owner, name="s", description="d" * 1001)


def test_take_on_a_busy_vm_is_refused_and_records_nothing(vm):
    snapshot_take(vm=vm, user=vm.owner, name="one")
    with pytest.raises(Busy, match="VM is busy: take snapshot"):
        snapshot_take(vm=vm, user=vm.owner, name="two")
    assert Snapshot.objects.count() == 1


def test_take_on_a_vm_being_created_is_refused(alice):
    creating = vm_row(owner=alice, state=VMState.CREATING)
    with pytest.raises(InvalidState, match="needs a VM that is running or stopped"):
        snapshot_take(vm=creating, user=alice, name="s")
    assert not Snapshot.objects.exists()


def test_the_plan_count_limit_names_the_plan_and_how_to_make_room(vm):
    plan_change(user=vm.owner, plan=Plan.objects.get(slug="hobbyist"))
    snapshot_row(vm)
    with pytest.raises(LimitExceeded) as caught:
        snapshot_take(vm=vm, user=vm.owner, name="second")
    assert str(caught.value) == (
        "Your Hobbyist plan allows 1 snapshot and you have 1; delete one to make room."
    )
    assert Snapshot.objects.count() == 1
    assert not Operation.objects.exists()


def test_the_plan_byte_limit_names_the_sizes(vm):
    plan_change(user=vm.owner, plan=Plan.objects.get(slug="hobbyist"))
    Plan.objects.filter(slug="hobbyist").update(max_snapshots=10)
    vm.owner.plan.refresh_from_db()
    snapshot_row(vm, size=10 * GIB)
    with pytest.raises(LimitExceeded, match=r"take 10 GiB, the most your Hobbyist plan allows"):
        snapshot_take(vm=vm, user=vm.owner, name="second")


def test_a_plan_without_snapshots_says_so(vm):
    plan_change(user=vm.owner, plan=Plan.objects.get(slug="free"))
    with pytest.raises(LimitExceeded, match="Free plan does not include snapshots"):
        snapshot_take(vm=vm, user=vm.owner, name="s")


def test_automatic_before_restore_snapshots_do_not_count(vm):
    snapshot_row(vm, kind=SnapshotKind.BEFORE_RESTORE)
    snapshot_row(vm)
    assert usage_for(vm.owner).snapshots == 1


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_parallel_takes_never_exceeds_the_plan(plans, alice):
    plan_change(user=alice, plan=Plan.objects.get(slug="developer"))  # 3 snapshots
    image = image_row()
    vms = [vm_row(owner=alice, image=image, name=f"vm{i}") for i in range(6)]
    barrier = threading.Barrier(len(vms))
    outcomes = []

    def request(vm):
        barrier.wait()
        try:
            snapshot_take(vm=vm, user=alice, name="burst")
            outcomes.append("taken")
        except LimitExceeded:
            outcomes.append("limit")
        finally:
            connection.close()

    threads = [threading.Thread(target=request, args=(vm,)) for vm in vms]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["limit"] * 3 + ["taken"] * 3
    assert Snapshot.objects.filter(owner=alice).count() == 3


def test_restore_onto_another_users_vm_is_refused(vm, bob):
    snapshot = snapshot_row(vm)
    bobs = vm_row(owner=bob, image=vm.image)
    with pytest.raises(InvalidState, match="only be restored onto a VM of its owner"):
        snapshot_restore(snapshot=snapshot, user=vm.owner, vm=bobs)
    assert not Operation.objects.exists()


def test_restore_of_a_snapshot_still_being_created_is_refused(vm):
    snapshot = snapshot_row(vm, state=SnapshotState.CREATING)
    with pytest.raises(InvalidState, match="still being created"):
        snapshot_restore(snapshot=snapshot, user=vm.owner)


def test_restore_of_a_snapshot_whose_vm_is_gone_points_to_new_vm(vm):
    snapshot = snapshot_row(vm)
    Snapshot.objects.filter(pk=snapshot.pk).update(source_vm=None)
    snapshot.refresh_from_db()
    with pytest.raises(InvalidState, match="start a new VM from the snapshot instead"):
        snapshot_restore(snapshot=snapshot, user=vm.owner)


def test_restore_onto_a_vm_of_another_image_is_refused(vm):
    snapshot = snapshot_row(vm)
    other = vm_row(owner=vm.owner, image=image_row(slug="other"))
    with pytest.raises(InvalidState, match="another image"):
        snapshot_restore(snapshot=snapshot, user=vm.owner, vm=other)


def test_new_vm_from_a_snapshot_records_a_creating_vm_that_remembers_its_source(vm):
    snapshot = snapshot_row(vm)
    operation = snapshot_new_vm(snapshot=snapshot, user=vm.owner, name="clone", full_copy=True)
    clone = VM.objects.get(pk=vm_id_of_lock(operation.lock))
    assert (clone.state, clone.source_snapshot, clone.image) == (
        VMState.CREATING,
        snapshot,
        vm.image,
    )
    assert operation.params["full_copy"] is True


def test_new_vm_from_a_snapshot_refuses_a_name_in_use(vm):
    snapshot = snapshot_row(vm)
    with pytest.raises(NameTaken, match="already have a VM named 'web'"):
        snapshot_new_vm(snapshot=snapshot, user=vm.owner, name="web")


def test_new_vm_respects_the_plans_vm_limit(vm):
    plan_change(user=vm.owner, plan=Plan.objects.get(slug="free"))  # 1 VM
    snapshot = snapshot_row(vm)
    with pytest.raises(LimitExceeded, match="Free plan allows 1 VM and you have 1"):
        snapshot_new_vm(snapshot=snapshot, user=vm.owner, name="clone")


def test_rename_changes_only_the_display_name(vm):
    snapshot = snapshot_row(vm)
    snapshot_rename(snapshot=snapshot, name="  Golden image  ", description="for class")
    snapshot.refresh_from_db()
    assert (snapshot.name, snapshot.description) == ("Golden image", "for class")


def test_delete_removes_the_snapshot_from_view_at_once(vm):
    snapshot = snapshot_row(vm)
    operation = snapshot_delete(snapshot=snapshot, user=vm.owner)
    assert not Snapshot.objects.filter(pk=snapshot.pk).exists()
    assert operation.params["layer"] == str(snapshot.layer_id)


def test_delete_keeps_the_family_tree(vm):
    grandparent = snapshot_row(vm, name="a")
    parent = snapshot_row(vm, name="b", parent=grandparent)
    child = snapshot_row(vm, name="c", parent=parent)
    snapshot_delete(snapshot=parent, user=vm.owner)
    child.refresh_from_db()
    assert child.parent == grandparent


def test_delete_of_a_snapshot_in_use_is_refused(vm):
    snapshot = snapshot_row(vm)
    snapshot_restore(snapshot=snapshot, user=vm.owner)
    with pytest.raises(InvalidState, match=r"is in use \(restore snapshot\)"):
        snapshot_delete(snapshot=snapshot, user=vm.owner)
    assert Snapshot.objects.filter(pk=snapshot.pk).exists()


def test_a_snapshots_url_is_its_row_on_its_vms_page(client, vm, alice):
    snapshot = snapshot_row(vm, name="Golden")
    url = snapshot.get_absolute_url()
    path, _, anchor = url.partition("#")
    assert path == f"/vms/{vm.pk}/"
    client.force_login(alice)
    response = client.get(path)
    assert response.status_code == 200
    assert f'id="{anchor}"' in response.content.decode()


def test_the_url_of_a_snapshot_whose_vm_is_gone_is_its_row_on_the_snapshots_page(client, vm, alice):
    snapshot = snapshot_row(vm, name="Kept")
    Snapshot.objects.filter(pk=snapshot.pk).update(source_vm=None)
    snapshot.refresh_from_db()
    path, _, anchor = snapshot.get_absolute_url().partition("#")
    assert path == "/snapshots/"
    client.force_login(alice)
    response = client.get(path)
    assert response.status_code == 200
    assert f'id="{anchor}"' in response.content.decode()


def test_the_admins_view_on_site_link_leads_to_the_snapshot(client, vm, charlie):
    from django.contrib.contenttypes.models import ContentType

    snapshot = snapshot_row(vm)
    content_type = ContentType.objects.get_for_model(Snapshot)
    client.force_login(charlie)
    change = client.get(f"/admin/snapshots/snapshot/{snapshot.pk}/change/")
    shortcut = f"/admin/r/{content_type.pk}/{snapshot.pk}/"
    assert shortcut in change.content.decode()
    response = client.get(shortcut)
    assert response.status_code == 302
    assert response["Location"].endswith(snapshot.get_absolute_url())
