"""Pages update live while an operation runs without disturbing the person using them: what
they type stays, an open dialog stays open, and what changed appears when the operation ends,
without a reload; a message about the work is replaced by its result.

The operation is a row the test moves along by hand (no worker, no guest), so the page polls for
as long as the test wants."""

import re
import time

from playwright.sync_api import expect

from operations.models import Operation, OperationState
from snapshots.models import Snapshot, SnapshotKind, SnapshotOperationKind, SnapshotState
from tests.browser.conftest import log_in
from tests.factories import image_row, layer_row, snapshot_row, vm_row
from transfers.models import TransferOperationKind
from vms.models import VMState

POLLS = 4  # poll cycles (one a second) the page must go through without losing anything


def running_take(vm):
    return Operation.objects.create(
        kind=SnapshotOperationKind.TAKE,
        owner=vm.owner,
        lock=vm.lock,
        subject=vm,
        target_name=f"{vm.name}: next",
        state=OperationState.RUNNING,
        progress=40,
        message="Switching the disk",
    )


def count_polls(page, part="/live/"):
    polls = []
    page.on("request", lambda request: part in request.url and polls.append(request.url))
    return polls


def ended(operation, state=OperationState.SUCCEEDED):
    Operation.objects.filter(pk=operation.pk).update(state=state, progress=100)


def wait_for_polls(page, polls, count):
    """Let the page poll `count` more times (waiting through Playwright, which delivers the
    request events meanwhile)."""
    start = len(polls)
    deadline = time.monotonic() + count * 3
    while len(polls) < start + count:
        assert time.monotonic() < deadline, f"The page polled {len(polls) - start} times."
        page.wait_for_timeout(250)


def test_a_snapshot_name_being_typed_survives_live_progress(page, alice):
    vm = vm_row(owner=alice, image=image_row(), state=VMState.RUNNING, name="workbench")
    running_take(vm)
    log_in(page, "alice")
    polls = count_polls(page)
    page.goto(f"/vms/{vm.pk}/")
    expect(page.locator(".operation")).to_contain_text("Take snapshot")

    name = page.get_by_label("Snapshot name")
    name.fill("Before the big upgrade")
    wait_for_polls(page, polls, POLLS)
    expect(name).to_have_value("Before the big upgrade")
    expect(name).to_be_focused()


def test_progress_moves_on_the_page_while_unchanged_polls_bring_nothing(page, alice):
    vm = vm_row(owner=alice, image=image_row(), state=VMState.RUNNING, name="workbench")
    operation = running_take(vm)
    log_in(page, "alice")
    answers = []
    page.on("response", lambda r: "/live/" in r.url and answers.append(r.status))
    page.goto(f"/vms/{vm.pk}/")
    expect(page.locator(".operation")).to_contain_text("40%")

    wait_for_polls(page, answers, POLLS)
    assert set(answers) == {204}, answers  # nothing changed: nothing sent

    Operation.objects.filter(pk=operation.pk).update(progress=70, message="Recording it")
    expect(page.locator(".operation")).to_contain_text("70%", timeout=10_000)
    expect(page.locator(".operation")).to_contain_text("Recording it")
    start = len(answers)
    wait_for_polls(page, answers, POLLS)
    assert answers[start:].count(200) <= 1, answers  # the new progress was sent once

    ended(operation)
    expect(page.locator(".operation")).to_have_count(0, timeout=10_000)
    expect(page.get_by_role("button", name="Take Snapshot")).to_be_enabled()


def test_an_open_dialog_stays_open_through_live_progress_and_its_end(page, alice):
    vm = vm_row(owner=alice, image=image_row(), state=VMState.RUNNING, name="workbench")
    old = snapshot_row(vm, "Golden")
    operation = running_take(vm)
    log_in(page, "alice")
    polls = count_polls(page)
    page.goto(f"/vms/{vm.pk}/")

    page.locator("tr[data-snapshot='Golden']").get_by_role("button", name="Rename").click()
    dialog = page.locator(f"#rename-{old.pk}")
    dialog.get_by_label("Name").fill("Golden master")
    wait_for_polls(page, polls, POLLS)
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Name")).to_have_value("Golden master")

    # The take ends while the dialog is open: the new row appears, the dialog stays.
    new = snapshot_row(vm, "Fresh")
    Operation.objects.filter(pk=operation.pk).update(state=OperationState.SUCCEEDED, progress=100)
    expect(page.locator(".operation")).to_have_count(0, timeout=10_000)
    expect(page.locator("tr[data-snapshot='Fresh']")).to_be_visible()
    expect(page.get_by_role("button", name="Take Snapshot")).to_be_enabled()
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Name")).to_have_value("Golden master")

    # Once it is closed, the new snapshot's dialogs arrive too.
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(f"#newvm-{new.pk}")).to_have_count(1, timeout=10_000)
    page.locator("tr[data-snapshot='Fresh']").get_by_role("button", name="New VM").click()
    expect(page.locator(f"#newvm-{new.pk}")).to_be_visible()


def test_the_console_is_polled_while_the_guest_is_up_only(page, alice):
    image = image_row()
    up = vm_row(owner=alice, image=image, state=VMState.RUNNING, name="up")
    down = vm_row(owner=alice, image=image, state=VMState.STOPPED, name="down")
    log_in(page, "alice")
    requests = []
    page.on("request", lambda request: "/console/" in request.url and requests.append(request.url))

    page.goto(f"/vms/{down.pk}/")
    page.wait_for_timeout(4500)
    assert requests == []

    page.goto(f"/vms/{up.pk}/")
    page.wait_for_timeout(4500)
    assert len(requests) >= 1
    assert all(f"/vms/{up.pk}/console/" in url for url in requests)


def test_the_snapshots_page_shows_an_import_ready_without_a_reload(page, alice):
    image = image_row()
    snapshot = Snapshot.objects.create(
        owner=alice,
        image=image,
        name="from-laptop",
        kind=SnapshotKind.IMPORTED,
        state=SnapshotState.CREATING,
    )
    operation = Operation.objects.create(
        kind=TransferOperationKind.IMPORT,
        owner=alice,
        subject=snapshot,
        target_name=snapshot.name,
        state=OperationState.RUNNING,
    )
    log_in(page, "alice")
    polls = count_polls(page, "/row/")
    page.goto("/snapshots/")
    row = page.locator("tr[data-snapshot='from-laptop']")
    expect(row).to_contain_text("Creating")
    expect(row.get_by_role("button", name="Rename")).to_have_count(0)

    # The worker finishes: the row turns ready, with its actions, and stops asking.
    Snapshot.objects.filter(pk=snapshot.pk).update(
        state=SnapshotState.READY,
        layer=layer_row(host=image.host, parent=image.layer),
        size_bytes=512 * 1024 * 1024,
    )
    ended(operation)
    expect(row.get_by_role("button", name="Rename")).to_be_visible(timeout=10_000)
    expect(row).not_to_contain_text("Creating")
    expect(page.locator("#snapshot-usage-card")).to_contain_text("Space: 512 MiB")
    asked = len(polls)
    page.wait_for_timeout(4500)
    assert len(polls) == asked

    # Its dialog, arrived with the row, opens.
    row.get_by_role("button", name="Rename").click()
    expect(page.locator(f"#rename-{snapshot.pk}")).to_be_visible()


def test_an_open_dialog_on_the_snapshots_page_stays_open_while_a_row_turns_ready(page, alice):
    vm = vm_row(owner=alice, image=image_row(), state=VMState.RUNNING, name="workbench")
    golden = snapshot_row(vm, "Golden")
    importing = Snapshot.objects.create(
        owner=alice,
        image=vm.image,
        name="from-laptop",
        kind=SnapshotKind.IMPORTED,
        state=SnapshotState.CREATING,
    )
    log_in(page, "alice")
    polls = count_polls(page, "/row/")
    page.goto("/snapshots/")
    page.locator("tr[data-snapshot='Golden']").get_by_role("button", name="Rename").click()
    dialog = page.locator(f"#rename-{golden.pk}")
    dialog.get_by_label("Name").fill("Golden master")
    wait_for_polls(page, polls, 2)

    Snapshot.objects.filter(pk=importing.pk).update(
        state=SnapshotState.READY, layer=layer_row(host=vm.host, parent=vm.image.layer)
    )
    row = page.locator("tr[data-snapshot='from-laptop']")
    expect(row.get_by_role("button", name="Rename")).to_have_count(1, timeout=10_000)
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Name")).to_have_value("Golden master")
    expect(dialog.get_by_label("Name")).to_be_focused()


def test_a_progress_message_is_replaced_by_the_result_when_its_operation_ends(page, alice):
    vm = vm_row(owner=alice, image=image_row(), state=VMState.RUNNING, name="workbench")
    log_in(page, "alice")
    polls = count_polls(page, "/message/")
    page.goto(f"/vms/{vm.pk}/")
    page.get_by_label("Snapshot name").fill("Before the upgrade")
    page.get_by_role("button", name="Take Snapshot").click()
    message = page.locator(".messages .message")
    expect(message).to_have_text("Taking snapshot 'Before the upgrade' of workbench…")
    # While the operation waits, the message stays as it was said.
    wait_for_polls(page, polls, 2)
    expect(message).to_have_text("Taking snapshot 'Before the upgrade' of workbench…")

    ended(Operation.objects.get(kind=SnapshotOperationKind.TAKE))
    expect(message).to_have_text("Snapshot taken (workbench: Before the upgrade).", timeout=10_000)
    expect(message).to_have_class("message success")
    expect(message).not_to_have_attribute("hx-get", re.compile(".*"))


def test_a_progress_message_turns_into_the_error_when_its_operation_fails(page, alice):
    vm = vm_row(owner=alice, image=image_row(), state=VMState.RUNNING, name="workbench")
    log_in(page, "alice")
    page.goto(f"/vms/{vm.pk}/")
    page.get_by_label("Snapshot name").fill("Before the upgrade")
    page.get_by_role("button", name="Take Snapshot").click()
    message = page.locator(".messages .message")
    expect(message).to_contain_text("Taking snapshot")

    Operation.objects.filter(kind=SnapshotOperationKind.TAKE).update(
        state=OperationState.FAILED, error="The disk is full; free some space and try again."
    )
    expect(message).to_have_text(
        "Take snapshot failed: The disk is full; free some space and try again.",
        timeout=10_000,
    )
    expect(message).to_have_class("message error")


def test_activity_shows_a_running_operation_end_without_a_reload(page, alice):
    vm = vm_row(owner=alice, image=image_row(), state=VMState.RUNNING, name="workbench")
    operation = running_take(vm)
    log_in(page, "alice")
    polls = count_polls(page, "/activity/")
    page.goto("/activity/")
    row = page.locator("#activity tbody tr").first
    expect(row).to_contain_text("Running")

    ended(operation)
    expect(row).to_contain_text("Succeeded", timeout=10_000)
    asked = len(polls)
    page.wait_for_timeout(4500)
    assert len(polls) == asked
