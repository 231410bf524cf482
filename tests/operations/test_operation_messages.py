"""A message about work in progress is replaced by the result: the page asks
/activity/<id>/message/ about the operation every 2 s, is told to keep the message while the
operation is queued or running, and gets the result once it has ended; only its owner may ask."""

import pytest

from operations.models import Operation, OperationState
from snapshots.models import SnapshotOperationKind
from tests.factories import image_row, vm_row
from vms.models import VMOperationKind


@pytest.fixture
def take(alice):
    vm = vm_row(owner=alice, image=image_row(), name="web-1")
    return Operation.objects.create(
        kind=SnapshotOperationKind.TAKE,
        owner=alice,
        lock=vm.lock,
        subject=vm,
        target_name="web-1: nightly",
        state=OperationState.RUNNING,
        progress=40,
        message="Switching the disk",
    )


def message_of(client, operation):
    return client.get(f"/activity/{operation.pk}/message/", HTTP_HX_REQUEST="true")


def ended(operation, state, **fields):
    Operation.objects.filter(pk=operation.pk).update(state=state, **fields)


def test_a_running_operations_message_stays_as_it_is(client, alice, take):
    client.force_login(alice)
    response = message_of(client, take)
    assert response.status_code == 204
    assert response.content == b""


def test_a_queued_operations_message_stays_as_it_is(client, alice, take):
    ended(take, OperationState.QUEUED)
    client.force_login(alice)
    assert message_of(client, take).status_code == 204


def test_a_succeeded_operations_message_says_it_is_done_and_asks_no_more(client, alice, take):
    ended(take, OperationState.SUCCEEDED, progress=100)
    client.force_login(alice)
    body = message_of(client, take).content.decode()
    assert "Snapshot taken (web-1: nightly)." in body
    assert 'class="message success"' in body
    assert "hx-get" not in body


def test_a_failed_operations_message_is_an_error_with_its_reason(client, alice, take):
    ended(take, OperationState.FAILED, error="The disk is full; free some space and try again.")
    client.force_login(alice)
    body = message_of(client, take).content.decode()
    assert "Take snapshot failed: The disk is full; free some space and try again." in body
    assert 'class="message error"' in body
    assert "hx-get" not in body


def test_a_skipped_operations_message_says_why_it_never_ran(client, alice, take):
    ended(take, OperationState.SKIPPED, message="The VM was stopped.")
    client.force_login(alice)
    body = message_of(client, take).content.decode()
    assert "Take snapshot skipped: The VM was stopped." in body
    assert "hx-get" not in body


def test_each_kind_of_operation_says_in_its_own_words_that_it_is_done(alice):
    start = Operation(kind=VMOperationKind.START, owner=alice, target_name="web-1")
    start.state = OperationState.SUCCEEDED
    assert start.outcome == "VM web-1 is running."


def test_another_users_operation_is_not_found(client, bob, take):
    client.force_login(bob)
    response = message_of(client, take)
    assert response.status_code == 404
    assert "web-1" not in response.content.decode()


def test_an_anonymous_request_is_sent_to_log_in(client, take):
    response = message_of(client, take)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_a_progress_message_on_the_next_page_asks_about_its_operation(client, alice):
    vm = vm_row(owner=alice, image=image_row(), name="web-1")
    client.force_login(alice)
    response = client.post(f"/vms/{vm.pk}/snapshots/take/", {"name": "nightly"}, follow=True)
    operation = Operation.objects.get()
    body = response.content.decode()
    assert "Taking snapshot &#x27;nightly&#x27; of web-1…" in body
    assert f'hx-get="/activity/{operation.pk}/message/" hx-trigger="every 2s"' in body


def test_a_refusal_is_a_plain_message_that_asks_nothing(client, alice):
    vm = vm_row(owner=alice, image=image_row(), name="web-1")
    client.force_login(alice)
    response = client.post(f"/vms/{vm.pk}/start/", follow=True)
    body = response.content.decode()
    assert "is already running" in body
    assert "/message/" not in body
