"""A person reads a VM's snapshot tree in a real browser: where its disk is, a run of scheduled
snapshots opened, and a snapshot's files one click away. Snapshots are rows: no guest boots."""

import re
from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import expect

from snapshots.models import Snapshot, SnapshotKind
from tests.browser.conftest import log_in
from tests.factories import snapshot_row, vm_row


def taken_on(parent, name, *, kind=SnapshotKind.MANUAL, days_ago=0):
    snapshot = snapshot_row(parent.source_vm, name)
    Snapshot.objects.filter(pk=snapshot.pk).update(
        parent=parent, kind=kind, created_at=timezone.now() - timedelta(days=days_ago)
    )
    snapshot.refresh_from_db()
    return snapshot


def test_the_tree_shows_the_disk_a_collapsed_run_and_each_snapshots_files(page, alice):
    vm = vm_row(owner=alice, name="web")
    base = snapshot_row(vm, "base")
    Snapshot.objects.filter(pk=base.pk).update(created_at=timezone.now() - timedelta(days=30))
    parent = base
    for day in range(5):
        parent = taken_on(parent, f"nightly-{day}", kind=SnapshotKind.SCHEDULED, days_ago=20 - day)
    upgraded = taken_on(parent, "upgraded", days_ago=10)
    restored_branch = taken_on(base, "experiment", days_ago=5)  # after restoring base
    vm.current_snapshot = restored_branch
    vm.save(update_fields=["current_snapshot"])

    log_in(page, "alice")
    page.goto(f"/vms/{vm.pk}/")
    page.get_by_test_id("snapshot-tree-link").click()
    expect(page.get_by_role("heading", name="Snapshots of web")).to_be_visible()
    tree = page.get_by_test_id("snapshot-tree").first
    for name in ("base", "upgraded", "experiment"):
        expect(tree.locator(f'[data-snapshot="{name}"]')).to_be_visible()

    here = page.get_by_test_id("you-are-here")
    expect(here).to_have_text(re.compile("You are here"))
    # "You are here" comes right after the snapshot the disk builds on.
    lines = page.locator("ol.tree > li.tree-line")
    texts = lines.all_inner_texts()
    at = next(i for i, text in enumerate(texts) if "You are here" in text)
    assert "experiment" in texts[at - 1]

    run = page.get_by_test_id("scheduled-run")
    expect(run.locator("summary")).to_contain_text("5 scheduled snapshots, ")
    expect(run.locator('[data-snapshot="nightly-2"]')).to_be_hidden()
    run.locator("summary").click()
    expect(run.locator('[data-snapshot="nightly-2"]')).to_be_visible()

    tree.locator(f"#tree-{upgraded.pk}").get_by_role("link", name="Files").click()
    expect(page).to_have_url(re.compile(rf"/snapshots/{upgraded.pk}/files/"))


def test_a_snapshot_of_the_tree_opens_the_restore_dialog(page, alice):
    vm = vm_row(owner=alice, name="web")
    base = snapshot_row(vm, "base")
    log_in(page, "alice")
    page.goto(f"/vms/{vm.pk}/tree/")
    page.locator(f"#tree-{base.pk}").get_by_role("button", name="Restore").click()
    dialog = page.locator(f"#restore-{base.pk}")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Restore snapshot")).to_be_visible()
