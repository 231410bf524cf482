"""Import and export in the browser, with a real worker and the test pool: the upload's progress
while the file goes, the imported snapshot turning ready; an export made and downloaded."""

import os
import re
import subprocess
import time

import pytest
from playwright.sync_api import expect

from operations.models import Operation
from snapshots.models import Snapshot, SnapshotState
from tests.browser.conftest import log_in
from tests.transfers.conftest import client_of, upload

pytestmark = [pytest.mark.libvirt, pytest.mark.worker]

MiB = 1024**2


@pytest.fixture
def disk_file(tmp_path):
    """A small qcow2 disk with 4 MiB of data that does not compress, so the upload takes a
    moment on a throttled link."""
    path = tmp_path / "class-base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    (tmp_path / "data").write_bytes(os.urandom(4 * MiB))
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", f"write -s {tmp_path / 'data'} 0 4M", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def throttle_uploads(page, bytes_per_second: int) -> None:
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": bytes_per_second,
        },
    )


def test_an_import_shows_the_uploads_progress_then_its_snapshot_turns_ready(
    page, alice, image, live_worker, disk_file
):
    log_in(page, "alice")
    page.goto("/snapshots/import/")
    page.get_by_label("Disk image").set_input_files(str(disk_file))
    page.get_by_label("Snapshot name").fill("class base")
    throttle_uploads(page, 1 * MiB)

    page.get_by_role("button", name="Import").click()

    status = page.locator("[data-upload-text]")
    expect(status).to_have_text(re.compile(r"^Uploading: [1-9]\d?% \(.+ of 4\.\d MiB\)$"))
    expect(page.get_by_role("button", name="Import")).to_be_disabled()
    expect(page).to_have_url(re.compile(r"/snapshots/$"), timeout=60_000)
    # The message follows the import's operation, and the row gets its actions once ready.
    expect(page.get_by_text("Snapshot class base is imported.")).to_be_visible(timeout=60_000)
    row = page.locator("tr", has_text="class base")
    expect(row.get_by_role("button", name="New VM")).to_be_visible(timeout=60_000)
    snapshot = Snapshot.objects.get(owner=alice, name="class base")
    assert (snapshot.state, snapshot.imported_from) == (SnapshotState.READY, "class-base.qcow2")


def test_a_refused_upload_shows_the_reason_on_the_page(page, alice, image, tmp_path):
    garbage = tmp_path / "garbage.qcow2"
    garbage.write_bytes(b"not a disk" * 1000)
    log_in(page, "alice")
    page.goto("/snapshots/import/")
    page.get_by_label("Disk image").set_input_files(str(garbage))
    page.get_by_label("Snapshot name").fill("mine")

    page.get_by_role("button", name="Import").click()

    expect(page.get_by_text("not a qcow2 image")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/snapshots/import/$"))


def test_an_export_is_made_and_downloaded_as_the_same_disk(
    page, alice, image, live_worker, disk_file, tmp_path
):
    response = upload(client_of(alice), disk_file, name="class base")
    assert response.status_code == 202, response.content
    operation = Operation.objects.get(pk=response.json()["id"])
    deadline = time.monotonic() + 60
    while operation.state not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        operation.refresh_from_db()
    assert operation.state == "succeeded", operation.error
    snapshot = Snapshot.objects.get(owner=alice, name="class base")
    log_in(page, "alice")
    page.goto(f"/snapshots/{snapshot.pk}/exports/")

    page.get_by_test_id("export").click()

    expect(page.get_by_test_id("export-state")).to_have_text("Ready", timeout=60_000)
    expect(page.locator("#exports")).to_contain_text("(64 MiB disk)")
    with page.expect_download() as downloading:
        page.get_by_role("link", name="Download").click()
    saved = tmp_path / "downloaded.qcow2"
    downloading.value.save_as(saved)
    assert saved.read_bytes()[:4] == b"QFI\xfb"
    info = subprocess.run(
        ["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(disk_file), str(saved)],
        capture_output=True,
        text=True,
    )
    assert info.returncode == 0, info.stdout + info.stderr  # the same disk, byte for byte
