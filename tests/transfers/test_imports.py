"""Importing a disk image: hostile files are refused by name and none of their bytes reaches the
storage pool; a sound one becomes a snapshot of its uploader. What the header shows is refused in
the request; the rest by the worker running the import's operation."""

import pytest

from accounts.models import Plan
from operations.models import Operation
from snapshots.models import Snapshot, SnapshotKind, SnapshotState
from tests.conftest import succeeded
from tests.transfers.conftest import (
    assert_nothing_left,
    pool_volumes,
    qemu_img,
    qemu_io,
    quarantine_files,
    run_import,
    upload,
)

pytestmark = pytest.mark.libvirt


def assert_refused(client, host, path, fmt, *, says):
    before = pool_volumes(host)
    response = upload(client, path, fmt)
    assert response.status_code == 400, response.content
    message = response.json()["error"]["fields"]["file"][0]
    assert says in message
    assert pool_volumes(host) == before
    assert quarantine_files() == []
    assert not Snapshot.objects.filter(name="imported").exists()


def test_a_qcow2_with_a_backing_file_is_refused(alice_api, image, tmp_path):
    qemu_img("create", "-f", "qcow2", str(tmp_path / "base.qcow2"), "64M")
    top = tmp_path / "top.qcow2"
    qemu_img("create", "-f", "qcow2", "-b", str(tmp_path / "base.qcow2"), "-F", "qcow2", str(top))
    assert_refused(alice_api, image.host, top, "qcow2", says="backing file")


def test_a_qcow2_whose_data_lives_in_a_host_file_is_refused(alice_api, image, tmp_path):
    host_file = tmp_path / "host-secret"
    sneaky = tmp_path / "sneaky.qcow2"
    # Creating the image empties its data file: write the "host's secret" afterwards.
    qemu_img(
        "create", "-f", "qcow2", "-o", f"data_file={host_file},data_file_raw=on", str(sneaky), "1M"
    )
    host_file.write_text("root:secret\n")
    assert_refused(alice_api, image.host, sneaky, "qcow2", says="external file")
    assert host_file.read_text() == "root:secret\n"


def test_a_one_pebibyte_disk_is_refused(alice_api, image, tmp_path):
    huge = tmp_path / "huge.qcow2"
    qemu_img("create", "-f", "qcow2", str(huge), "1P")
    assert_refused(alice_api, image.host, huge, "qcow2", says="the largest disk a VM may have")


def test_a_vmdk_is_refused_by_name(alice_api, image, tmp_path):
    vmdk = tmp_path / "disk.vmdk"
    qemu_img("create", "-f", "vmdk", str(vmdk), "64M")
    assert_refused(alice_api, image.host, vmdk, "qcow2", says="VMDK")


def test_garbage_declared_as_qcow2_is_refused(alice_api, image, tmp_path):
    garbage = tmp_path / "garbage.qcow2"
    garbage.write_bytes(bytes(range(256)) * 256)
    assert_refused(alice_api, image.host, garbage, "qcow2", says="not a qcow2 image")


def assert_refused_by_the_worker(client, host, path, fmt, *, says):
    before = pool_volumes(host)
    operation = run_import(upload(client, path, fmt))
    assert operation.state == "failed"
    assert says in operation.error
    assert_nothing_left(host, before)
    return operation


def test_a_truncated_qcow2_is_refused_by_the_worker(alice_api, image, tmp_path):
    cut = tmp_path / "cut.qcow2"
    qemu_img("create", "-f", "qcow2", str(cut), "64M")
    qemu_io(cut, "write -P 0x61 0 4M")
    with open(cut, "r+b") as handle:
        handle.truncate(1024 * 1024)
    assert_refused_by_the_worker(alice_api, image.host, cut, "qcow2", says="damaged")


def test_a_qcow2_declared_as_raw_is_refused(alice_api, image, tmp_path):
    disk = tmp_path / "disk.img"
    qemu_img("create", "-f", "qcow2", str(disk), "64M")
    assert_refused(alice_api, image.host, disk, "raw", says="qcow2 image, not a raw disk")


def test_a_sound_raw_disk_becomes_a_snapshot_of_its_uploader(
    transactional_db, sync_tasks, alice, image, tmp_path
):
    from tests.transfers.conftest import client_of

    raw = tmp_path / "disk.raw"
    with open(raw, "wb") as handle:
        handle.truncate(64 * 1024 * 1024)
        handle.seek(1024 * 1024)
        handle.write(b"hello from a raw disk" * 100)
    before = pool_volumes(image.host)

    response = upload(client_of(alice), raw, "raw", name="from raw")

    assert response.status_code == 202, response.content
    operation = succeeded(_operation(response))
    snapshot = Snapshot.objects.get(pk=operation.subject_pk)
    assert (snapshot.owner, snapshot.kind, snapshot.state) == (
        alice,
        SnapshotKind.IMPORTED,
        SnapshotState.READY,
    )
    assert snapshot.disk_bytes == 64 * 1024 * 1024
    assert (snapshot.imported_from, snapshot.imported_by) == ("disk.raw", alice)
    assert snapshot.layer.parent is None
    assert pool_volumes(image.host) - before == {snapshot.layer.volume_name}
    info = image.host.hypervisor.volume_info(image.host.pool_name, snapshot.layer.volume_name)
    assert info.backing_path is None
    assert quarantine_files() == []


def test_an_import_over_the_plans_snapshot_count_is_refused(alice_api, alice, image, tmp_path):
    Plan.objects.filter(pk=alice.plan_id).update(max_snapshots=0)
    raw = tmp_path / "disk.raw"
    raw.write_bytes(b"\0" * 1024**2)
    before = pool_volumes(image.host)

    response = upload(alice_api, raw, "raw")

    assert response.status_code == 403
    assert "plan" in response.json()["error"]["message"]
    assert pool_volumes(image.host) == before
    assert quarantine_files() == []


def _operation(response):
    return Operation.objects.get(pk=response.json()["id"])


def test_the_import_page_says_why_a_file_is_refused(client, alice, image, tmp_path):
    garbage = tmp_path / "garbage.qcow2"
    garbage.write_bytes(b"not a disk" * 1000)
    client.force_login(alice)
    assert b'enctype="multipart/form-data"' in client.get("/snapshots/import/").content

    with garbage.open("rb") as handle:
        response = client.post(
            "/snapshots/import/", {"file": handle, "format": "qcow2", "name": "mine"}
        )

    assert response.status_code == 400
    assert "not a qcow2 image" in response.content.decode()
    assert quarantine_files() == []


@pytest.mark.parametrize(
    ("uploaded", "shown"),
    [
        ("C:\\Users\\ann\\base.qcow2", "base.qcow2"),
        ("../../etc/base.qcow2", "base.qcow2"),
        ("bell\x07\x1b[31m.qcow2", "bell[31m.qcow2"),
        ("x" * 300 + ".qcow2", "x" * 254 + "…"),
    ],
)
def test_an_imported_files_name_is_kept_as_pages_can_show_it(uploaded, shown):
    from transfers.services import file_name_shown

    assert file_name_shown(uploaded) == shown
