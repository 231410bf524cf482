"""What a request for a VM may ask, and what is recorded when it is accepted (no libvirt)."""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from core.errors import Busy, InvalidState, NameTaken, Unavailable
from operations.models import Operation, OperationState
from tests.factories import domain_running, image_row, vm_row
from vms.models import VM, VMOperationKind, VMState
from vms.services import (
    console_send,
    vm_create,
    vm_delete,
    vm_rename,
    vm_start,
    vm_stop,
)


@pytest.fixture
def image(db):
    return image_row()


def test_create_records_a_creating_vm_and_a_queued_operation(alice, image):
    operation = vm_create(owner=alice, name="web", image=image, memory_mib=512, disk_gib=2)
    vm = VM.objects.get(owner=alice, name="web")
    assert vm.state == VMState.CREATING
    assert (vm.memory_mib, vm.disk_bytes) == (512, 2 * 1024**3)
    assert operation.kind == VMOperationKind.CREATE
    assert operation.state == OperationState.QUEUED
    assert operation.subject == vm


def test_a_name_with_private_use_and_newer_characters_is_kept_as_typed(alice, image):
    name = "web \ue0b0 \U0001fae9"  # an icon font's glyph; an emoji newer than some systems
    vm_create(owner=alice, name=name, image=image)
    assert VM.objects.get(owner=alice).name == name


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"name": "  "}, "name", "Give a name."),
        ({"name": "x" * 65}, "name", "Keep the name to 64 characters or fewer."),
        ({"name": "bad\x00name"}, "name", "cannot be shown"),
        ({"memory_mib": 64}, "memory_mib", "Choose between 128 and 8192 MiB"),
        ({"vcpus": 0}, "vcpus", "Choose between 1 and 8 vCPUs."),
        ({"disk_gib": 0}, "disk_gib", "Choose a disk between 1 and 256 GiB"),
        ({"disk_gib": 10_000}, "disk_gib", "Choose a disk between 1 and 256 GiB"),
    ],
)
def test_create_refuses_bad_input_naming_the_field_and_creates_nothing(
    alice, image, kwargs, field, message
):
    arguments = {"owner": alice, "name": "web", "image": image, **kwargs}
    with pytest.raises(ValidationError) as caught:
        vm_create(**arguments)
    assert message in " ".join(caught.value.message_dict[field])
    assert not VM.objects.exists()
    assert not Operation.objects.exists()


def test_create_refuses_a_name_the_owner_already_uses(alice, image):
    vm_create(owner=alice, name="web", image=image)
    with pytest.raises(NameTaken, match="You already have a VM named 'web'"):
        vm_create(owner=alice, name="web", image=image)
    assert VM.objects.count() == 1


def test_two_owners_may_use_the_same_name(alice, bob, image):
    vm_create(owner=alice, name="web", image=image)
    vm_create(owner=bob, name="web", image=image)
    assert VM.objects.filter(name="web").count() == 2


def test_create_refuses_an_image_that_is_not_offered(alice, image):
    image.is_public = False
    image.save()
    with pytest.raises(ValidationError, match="Choose one of the images offered"):
        vm_create(owner=alice, name="web", image=image)


def test_starting_a_running_vm_is_refused_and_records_nothing(alice, image):
    vm = vm_row(owner=alice, image=image, state=VMState.RUNNING)
    with pytest.raises(InvalidState, match="is already running"):
        vm_start(vm=vm, user=alice)
    assert not Operation.objects.exists()


def test_stopping_a_stopped_vm_is_refused(alice, image):
    vm = vm_row(owner=alice, image=image, state=VMState.STOPPED)
    with pytest.raises(InvalidState, match="is stopped"):
        vm_stop(vm=vm, user=alice)


def test_acting_on_a_vm_being_created_is_refused(alice, image):
    vm = vm_row(owner=alice, image=image, state=VMState.CREATING)
    with pytest.raises(InvalidState, match="still being created"):
        vm_stop(vm=vm, user=alice, force=True)


def test_a_second_action_on_a_busy_vm_is_refused_naming_the_first(alice, image):
    vm = vm_row(owner=alice, image=image, state=VMState.RUNNING)
    vm_stop(vm=vm, user=alice)
    with pytest.raises(Busy, match=r"^VM is busy: stop vm \(queued\)"):
        vm_stop(vm=vm, user=alice, force=True)
    assert Operation.objects.count() == 1


def test_a_vm_is_free_again_once_its_operation_ended(alice, image):
    vm = vm_row(owner=alice, image=image, state=VMState.RUNNING)
    first = vm_stop(vm=vm, user=alice)
    Operation.objects.filter(pk=first.pk).update(state=OperationState.FAILED)
    assert vm_stop(vm=vm, user=alice).state == OperationState.QUEUED


def test_delete_hides_the_vm_at_once(alice, image):
    vm = vm_row(owner=alice, image=image)
    vm_delete(vm=vm, user=alice)
    assert not VM.objects.visible().filter(pk=vm.pk).exists()


def test_rename_refuses_a_name_in_use(alice, image):
    vm_row(owner=alice, image=image, name="one")
    two = vm_row(owner=alice, image=image, name="two")
    with pytest.raises(NameTaken, match="already have a VM named 'one'"):
        vm_rename(vm=two, name="one")
    assert vm_rename(vm=two, name="three").name == "three"


def test_console_input_is_refused_when_the_vm_is_not_running(alice, image):
    vm = vm_row(owner=alice, image=image, state=VMState.STOPPED)
    with pytest.raises(InvalidState, match="not running"):
        console_send(vm=vm, user=alice, line="ls")


def test_console_input_to_a_vm_missing_from_its_host_says_so(alice, image, fake_hosts):
    vm = vm_row(owner=alice, image=image)
    with pytest.raises(InvalidState, match=r"missing from its host, so .*\. Repair it"):
        console_send(vm=vm, user=alice, line="ls")


def test_console_input_to_a_vm_whose_host_does_not_answer_says_so(alice, image, fake_hosts):
    vm = vm_row(owner=alice, image=image)
    domain_running(fake_hosts[vm.host.libvirt_uri], vm)
    fake_hosts[vm.host.libvirt_uri].reachable = False
    with pytest.raises(Unavailable, match=f"Host {vm.host.name} does not answer"):
        console_send(vm=vm, user=alice, line="ls")


def test_console_input_to_a_guest_stopped_behind_the_services_back_says_so(
    alice, image, fake_hosts
):
    vm = vm_row(owner=alice, image=image)
    fake_hosts[vm.host.libvirt_uri].domain_define(f"<domain><uuid>{vm.domain_uuid}</uuid></domain>")
    with pytest.raises(InvalidState, match="is shutoff on its host"):
        console_send(vm=vm, user=alice, line="ls")


def test_console_input_to_a_running_guest_is_accepted(
    alice, image, fake_hosts, django_capture_on_commit_callbacks
):
    vm = vm_row(owner=alice, image=image)
    domain_running(fake_hosts[vm.host.libvirt_uri], vm)
    with django_capture_on_commit_callbacks() as queued:
        console_send(vm=vm, user=alice, line="ls")
    assert len(queued) == 1


@pytest.mark.parametrize(("line", "message"), [("x" * 513, "512"), ("a\x1bb", "control")])
def test_console_input_is_limited_to_one_printable_line(alice, image, line, message):
    vm = vm_row(owner=alice, image=image)
    with pytest.raises(ValidationError, match=message):
        console_send(vm=vm, user=alice, line=line)


@pytest.mark.django_db(transaction=True)
def test_parallel_requests_on_one_vm_start_exactly_one_operation(alice):
    vm = vm_row(owner=alice, state=VMState.RUNNING)
    barrier = threading.Barrier(8)
    outcomes = []

    def request(kind_force):
        barrier.wait()
        try:
            vm_stop(vm=vm, user=alice, force=kind_force)
            outcomes.append("accepted")
        except Busy:
            outcomes.append("busy")
        finally:
            connection.close()

    threads = [threading.Thread(target=request, args=(i % 2 == 0,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["accepted"] + ["busy"] * 7
    assert Operation.objects.holding(vm.lock).count() == 1


def failed_vm(owner, image) -> VM:
    vm = vm_row(owner=owner, image=image, state=VMState.FAILED, name="broken")
    Operation.objects.create(
        kind=VMOperationKind.CREATE,
        owner=owner,
        lock=vm.lock,
        subject=vm,
        target_name=vm.name,
        params={"image": image.slug, "marker": "asked"},
        state=OperationState.FAILED,
        error="The hypervisor refused to create VM “broken”.",
    )
    return vm


def test_retry_builds_a_failed_vm_again_from_what_it_was_asked_from(alice, image):
    from vms.services import vm_create_retry

    vm = failed_vm(alice, image)
    operation = vm_create_retry(vm=vm, user=alice)
    vm.refresh_from_db()
    assert (operation.kind, operation.state) == (VMOperationKind.CREATE, OperationState.QUEUED)
    assert operation.params == {"image": image.slug, "marker": "asked"}
    assert vm.state == VMState.CREATING


def test_retry_is_refused_for_a_vm_that_was_created(alice, image):
    from vms.services import vm_create_retry

    vm = vm_row(owner=alice, image=image, state=VMState.STOPPED)
    with pytest.raises(InvalidState, match="only a VM whose creation failed is retried"):
        vm_create_retry(vm=vm, user=alice)
    assert not Operation.objects.filter(lock=vm.lock).exists()


def test_a_failed_vm_can_be_deleted_but_not_started(alice, image):
    vm = failed_vm(alice, image)
    with pytest.raises(InvalidState, match="Creating VM 'broken' failed; retry it or delete it"):
        vm_start(vm=vm, user=alice)
    assert vm_delete(vm=vm, user=alice).kind == VMOperationKind.DELETE


def test_a_failed_vm_holds_no_room_on_its_host(alice, image):
    from vms.placement import host_usage

    vm = failed_vm(alice, image)
    assert host_usage([vm.host]).get(vm.host.pk, {}).get("vms", 0) == 0
