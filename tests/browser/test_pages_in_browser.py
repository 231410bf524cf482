"""A person clicking through the pages in a real browser, with a real worker and real guests."""

import pytest
from playwright.sync_api import expect

from operations.models import Operation
from snapshots.models import Snapshot
from snapshots.services import snapshot_take
from tests.browser.conftest import log_in, sign_up
from tests.conftest import Worker, wait_for
from vms.models import VM, vm_id_of_lock
from vms.services import vm_create

pytestmark = [pytest.mark.libvirt, pytest.mark.worker]

BOOT = 90_000  # ms: creating a VM and booting it under software emulation


def finished(operation):
    operation.refresh_from_db()
    return operation.state in ("succeeded", "failed")


def ready_vm(owner, image, name="workbench"):
    operation = vm_create(owner=owner, name=name, image=image)
    wait_for(lambda: finished(operation), timeout=90, what="the VM to be created")
    assert operation.state == "succeeded", operation.error
    return VM.objects.get(pk=vm_id_of_lock(operation.lock))


def ready_snapshot(vm, name="Golden"):
    operation = snapshot_take(vm=vm, user=vm.owner, name=name)
    wait_for(lambda: finished(operation), timeout=60, what="the snapshot")
    assert operation.state == "succeeded", operation.error
    return Snapshot.objects.get(pk=operation.subject_pk)


def test_sign_up_lands_on_a_dashboard_that_says_what_to_do_first(page, plans):
    sign_up(page)
    expect(page.get_by_text("Welcome, dora! Your account is ready.")).to_be_visible()
    expect(page.get_by_role("heading", name="No VMs yet")).to_be_visible()
    expect(page.get_by_role("link", name="Create your first VM")).to_be_visible()


def test_the_new_vm_form_shows_errors_beside_the_fields(page, plans, image, alice):
    log_in(page, "alice")
    page.goto("/vms/new/")
    page.get_by_label("Name").fill("x")
    page.get_by_label("Memory (MiB)").fill("64")
    page.get_by_role("button", name="Create VM").click()
    field = page.locator(".field.has-error")
    expect(field).to_have_count(1)
    expect(field).to_contain_text("Memory (MiB)")
    expect(field).to_contain_text("greater than or equal to 128")
    assert not VM.objects.exists()


def test_take_snapshot_shows_live_progress_then_the_snapshot(page, live_worker, image, plans):
    sign_up(page)
    page.get_by_role("link", name="Create your first VM").click()
    page.get_by_label("Name").fill("workbench")
    page.get_by_role("button", name="Create VM").click()
    expect(page.get_by_test_id("vm-state")).to_have_text("Running", timeout=BOOT)

    live_worker.stop()  # so the operation visibly waits, then runs, while the page watches
    page.get_by_role("button", name="Take Snapshot").click()
    progress = page.locator(".operation")
    expect(progress).to_contain_text("Take snapshot")
    expect(progress.get_by_role("progressbar")).to_be_visible()
    page.evaluate("window.notReloaded = true")

    worker = Worker()
    try:
        row = page.locator("[data-testid=snapshot-table] tr[data-snapshot]")
        expect(row).to_contain_text("crash-consistent", timeout=60_000)
        expect(progress).to_have_count(0)
        assert page.evaluate("window.notReloaded") is True  # updated in place, not reloaded
    finally:
        worker.stop()
    assert Snapshot.objects.filter(state="ready").count() == 1


def test_restore_asks_for_confirmation_then_restores(page, live_worker, image, alice):
    vm = ready_vm(alice, image)
    snapshot = ready_snapshot(vm)
    log_in(page, "alice")
    page.goto(f"/vms/{vm.pk}/")

    page.locator(f"tr[data-snapshot='{snapshot.name}']").get_by_role(
        "button", name="Restore"
    ).click()
    dialog = page.locator(f"#restore-{snapshot.pk}")
    expect(dialog).to_contain_text("will be replaced by this snapshot")
    expect(dialog).to_contain_text("You can undo it")
    dialog.get_by_role("button", name="Restore snapshot").click()

    expect(page.get_by_text("Restoring 'Golden'")).to_be_visible()
    undo = page.locator("tr[data-snapshot^='Before restoring']")
    expect(undo).to_contain_text("Undo point", timeout=60_000)
    # The undo point is recorded early in the restore: the restore has ended when its progress
    # goes away.
    expect(page.locator(".operation")).to_have_count(0, timeout=60_000)
    expect(page.get_by_test_id("vm-state")).to_have_text("Running")
    restore = Operation.objects.get(kind="snapshot.restore")
    assert restore.state == "succeeded", restore.error


def test_a_new_vm_is_started_from_a_snapshot_in_its_dialog(page, live_worker, image, alice):
    vm = ready_vm(alice, image)
    snapshot = ready_snapshot(vm)
    log_in(page, "alice")
    page.goto("/snapshots/")

    page.locator(f"tr[data-snapshot='{snapshot.name}']").get_by_role(
        "button", name="New VM"
    ).click()
    dialog = page.locator(f"#newvm-{snapshot.pk}")
    dialog.get_by_label("New VM name").fill("classroom-1")
    dialog.get_by_role("button", name="Create VM").click()

    expect(page.get_by_role("heading", name="classroom-1")).to_be_visible()
    expect(page.get_by_test_id("vm-state")).to_have_text("Running", timeout=BOOT)
    clone = VM.objects.get(name="classroom-1")
    assert clone.source_snapshot == snapshot


def test_deleting_a_snapshot_removes_it_after_confirming(page, live_worker, image, alice):
    vm = ready_vm(alice, image)
    snapshot = ready_snapshot(vm, name="Old")
    log_in(page, "alice")
    page.goto(f"/vms/{vm.pk}/")

    row = page.locator("tr[data-snapshot='Old']")
    row.get_by_role("button", name="Delete").click()
    page.locator(f"#delete-{snapshot.pk}").get_by_role("button", name="Delete snapshot").click()

    expect(page.get_by_text("Deleted snapshot 'Old'.")).to_be_visible()
    expect(page.locator("tr[data-snapshot='Old']")).to_have_count(0)
    assert not Snapshot.objects.filter(pk=snapshot.pk).exists()


def test_fork_starts_new_vms_that_the_vm_list_shows_running(page, live_worker, image, alice):
    vm = ready_vm(alice, image)
    log_in(page, "alice")
    page.goto(f"/vms/{vm.pk}/")

    page.get_by_label("Fork into").fill("2")
    page.get_by_role("button", name="Fork", exact=True).click()

    expect(page.get_by_text("Forking workbench into 2 new VMs")).to_be_visible()
    expect(page.get_by_text("Forked (workbench: 2 new VMs)")).to_be_visible(timeout=60_000)
    page.goto("/")
    for name in ("workbench-1", "workbench-2"):
        expect(page.locator("tr", has_text=name)).to_contain_text("Running")
    fork = Operation.objects.get(kind="snapshot.fork")
    assert fork.state == "succeeded", fork.error
    assert VM.objects.filter(source_snapshot_id=fork.subject_pk).count() == 2
