"""A person looks inside a snapshot in a real browser: opens its files, goes into a folder, reads
a file, and compares two snapshots. The snapshots are the offline-built disks of
tests/snapshots/test_browse.py (no guest needs to boot for this)."""

from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.snapshots.test_browse import offline_disks, pool_host, snaps  # noqa: F401


def test_browse_into_a_folder_then_compare_two_snapshots(page, snaps):  # noqa: F811
    log_in(page, "alice")
    page.goto("/snapshots/")
    page.locator("tr[data-snapshot='two']").get_by_role("link", name="Files").click()

    table = page.get_by_test_id("file-table")
    expect(table.locator("tr[data-entry='etc']")).to_be_visible()
    table.get_by_role("link", name="home/").click()
    page.get_by_test_id("file-table").get_by_role("link", name="alice/").click()
    page.get_by_test_id("file-table").get_by_role("link", name="data/").click()
    expect(page.get_by_test_id("breadcrumbs")).to_contain_text("home/alice/data")
    rows = page.get_by_test_id("file-table").locator("tr[data-entry]")
    expect(rows).to_have_count(2)
    page.get_by_role("link", name="file1").click()
    expect(page.get_by_test_id("file-text")).to_have_text("1\n")

    page.get_by_role("link", name="Compare").click()
    expect(page.get_by_test_id("added").locator("tr[data-path]")).to_have_count(2)
    expect(page.get_by_test_id("added")).to_contain_text("/etc/new.txt")
    expect(page.get_by_test_id("removed")).to_contain_text("/etc/motd")
    page.get_by_test_id("changed").get_by_text("Text diff").click()
    expect(page.get_by_test_id("changed")).to_contain_text("+b=20")

    page.get_by_label("Compare with").select_option(str(snaps["three"].pk))
    page.get_by_role("button", name="Compare").click()
    expect(page.get_by_test_id("changed")).to_contain_text("/home/alice/notes.txt")
    expect(page.get_by_test_id("added")).to_contain_text("/home/alice/data/file2")
    expect(page.get_by_test_id("removed")).to_contain_text("/etc/motd")
