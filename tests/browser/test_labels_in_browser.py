"""A snapshot is described in the same words on every page a person opens it from."""

from playwright.sync_api import expect

from snapshots.models import Snapshot
from tests.browser.conftest import log_in
from tests.factories import snapshot_row, vm_row


def test_a_live_snapshot_says_with_memory_on_the_vm_page_the_snapshots_page_and_its_files(
    page, alice
):
    vm = vm_row(owner=alice, name="web-1")
    snapshot = snapshot_row(vm, "live one")
    Snapshot.objects.filter(pk=snapshot.pk).update(includes_memory=True)
    log_in(page, "alice")

    for url in (f"/vms/{vm.pk}/", "/snapshots/"):
        page.goto(url)
        row = page.locator(f"#snapshot-{snapshot.pk}")
        expect(row.get_by_test_id("consistency")).to_have_text("with memory")
    page.locator(f"#snapshot-{snapshot.pk}").get_by_role("link", name="Files").click()
    head = page.get_by_test_id("snapshot-origin")
    expect(head.get_by_test_id("consistency")).to_have_text("with memory")
    expect(head).to_contain_text("of web-1")


def test_an_imported_snapshot_names_its_file_and_importer_on_the_snapshots_page_and_its_files(
    page, alice
):
    vm = vm_row(owner=alice)
    snapshot = snapshot_row(vm, "class base")
    Snapshot.objects.filter(pk=snapshot.pk).update(
        kind="imported", source_vm=None, imported_from="class-base.qcow2", imported_by=alice
    )
    log_in(page, "alice")

    page.goto("/snapshots/")
    row = page.locator(f"#snapshot-{snapshot.pk}")
    expect(row).to_contain_text("from class-base.qcow2")
    expect(row.locator(".badge.kind")).to_have_text("Imported")
    row.get_by_role("link", name="Files").click()
    expect(page.get_by_test_id("snapshot-origin")).to_contain_text("from class-base.qcow2 by alice")
