"""An import is bounded before it costs anything: one file per request, one import per owner at a
time, no upload while the quarantine is short of space, no rewrite larger than the owner's plan
has left, and no `qemu-img` run past its time. Nothing of a refused import is kept."""

import os
import stat

import pytest

from accounts.models import Plan
from snapshots.models import Snapshot, SnapshotState
from tests.transfers.conftest import (
    IMPORT_URL,
    assert_nothing_left,
    compressed_qcow2,
    pool_volumes,
    quarantine_files,
    run_import,
    upload,
)
from transfers import quarantine

pytestmark = pytest.mark.libvirt

MiB = 1024**2


def plan_bytes(user, n: int) -> None:
    Plan.objects.filter(pk=user.plan_id).update(max_snapshot_bytes=n)


def test_a_compressed_disk_larger_than_the_plan_has_left_is_refused_in_the_request(
    alice_api, alice, image, tmp_path
):
    bomb = compressed_qcow2(tmp_path / "bomb.qcow2", "64M")
    plan_bytes(alice, 16 * MiB)
    before = pool_volumes(image.host)

    response = upload(alice_api, bomb)

    assert response.status_code == 403, response.content
    message = response.json()["error"]["message"]
    assert "64 MiB, more than the 16 MiB your" in message
    assert "delete a snapshot" in message
    assert_nothing_left(image.host, before)


@pytest.mark.parametrize("compression", ["zstd", "zlib"])
def test_a_compressed_image_that_expands_past_what_the_plan_has_left_is_refused_by_the_worker(
    alice_api, alice, image, tmp_path, compression
):
    # Its disk fits the plan exactly; written out, with its tables, it does not.
    bomb = compressed_qcow2(tmp_path / "bomb.qcow2", "64M", compression=compression)
    assert bomb.stat().st_size < MiB
    plan_bytes(alice, 64 * MiB)
    before = pool_volumes(image.host)

    operation = run_import(upload(alice_api, bomb))

    assert operation.state == "failed"
    assert "Uncompressed and rewritten, the image is 64.3 MiB" in operation.error
    assert "more than the 64 MiB your" in operation.error
    assert_nothing_left(image.host, before)


def test_an_upload_larger_than_the_plan_has_room_for_is_stopped(alice_api, alice, image, tmp_path):
    plan_bytes(alice, MiB)
    raw = tmp_path / "disk.raw"
    raw.write_bytes(b"\0" * 24 * MiB)
    before = pool_volumes(image.host)

    response = upload(alice_api, raw, "raw")

    assert response.status_code == 403, response.content
    assert "your plan has room for" in response.json()["error"]["message"]
    assert_nothing_left(image.host, before)


def test_a_request_with_two_files_is_refused(alice_api, image, tmp_path):
    first = compressed_qcow2(tmp_path / "first.qcow2", "8M")
    second = compressed_qcow2(tmp_path / "second.qcow2", "8M")
    before = pool_volumes(image.host)

    with first.open("rb") as one, second.open("rb") as two:
        response = alice_api.post(
            IMPORT_URL,
            {"file": one, "other": two, "format": "qcow2", "name": "imported"},
            format="multipart",
        )

    assert response.status_code == 400, response.content
    assert (
        "Send one file per import; this request carried 2 files."
        in (response.json()["error"]["message"])
    )
    assert_nothing_left(image.host, before)


def test_the_import_page_refuses_two_files_under_one_name(client, alice, image, tmp_path):
    first = compressed_qcow2(tmp_path / "first.qcow2", "8M")
    second = compressed_qcow2(tmp_path / "second.qcow2", "8M")
    client.force_login(alice)
    before = pool_volumes(image.host)

    with first.open("rb") as one, second.open("rb") as two:
        response = client.post(
            "/snapshots/import/", {"file": [one, two], "format": "qcow2", "name": "imported"}
        )

    assert response.status_code == 400
    assert "Send one file per import" in response.content.decode()
    assert_nothing_left(image.host, before)


def test_a_second_import_while_one_is_queued_is_refused(alice_api, image, tmp_path):
    disk = compressed_qcow2(tmp_path / "disk.qcow2", "8M")
    first = upload(alice_api, disk, name="first")
    assert first.status_code == 202, first.content
    kept = quarantine_files()

    response = upload(alice_api, disk, name="second")

    assert response.status_code == 409, response.content
    body = response.json()["error"]
    assert body["message"] == (
        "You are importing 'first' already (queued); import the next image when it finishes."
    )
    assert body["operation"]["id"] == first.json()["id"]
    assert quarantine_files() == kept  # the first's upload only
    assert not Snapshot.objects.filter(name="second").exists()


def test_another_users_import_does_not_hold_up_yours(alice_api, bob_api, image, tmp_path):
    disk = compressed_qcow2(tmp_path / "disk.qcow2", "8M")
    assert upload(alice_api, disk, name="alices").status_code == 202

    assert upload(bob_api, disk, name="bobs").status_code == 202


def test_uploads_are_refused_while_the_quarantine_is_short_of_space(
    alice_api, image, settings, tmp_path
):
    settings.IMPORT_MIN_FREE_MIB = 1024**4  # an exbibyte: no disk has it free
    disk = compressed_qcow2(tmp_path / "disk.qcow2", "8M")
    before = pool_volumes(image.host)

    response = upload(alice_api, disk)

    assert response.status_code == 503, response.content
    assert response.json()["error"]["message"] == (
        "The service is short of space for uploads right now, so the import was refused; "
        "try again later."
    )
    assert_nothing_left(image.host, before)


def test_an_upload_is_stopped_when_space_runs_low_while_it_streams(
    alice_api, image, monkeypatch, tmp_path
):
    answers = iter([10**15])  # plenty when asked before the body is read, then none

    monkeypatch.setattr(quarantine, "free_bytes", lambda: next(answers, 0))
    raw = tmp_path / "disk.raw"
    raw.write_bytes(b"\0" * 4 * MiB)
    before = pool_volumes(image.host)

    response = upload(alice_api, raw, "raw")

    assert response.status_code == 503, response.content
    assert "short of space for uploads" in response.json()["error"]["message"]
    assert_nothing_left(image.host, before)


def test_the_import_page_says_the_quarantine_is_short_of_space(client, alice, image, settings):
    settings.IMPORT_MIN_FREE_MIB = 1024**4
    client.force_login(alice)

    response = client.post("/snapshots/import/", {"format": "qcow2", "name": "imported"})

    assert response.status_code == 503
    assert "short of space for uploads" in response.content.decode()


def test_a_qemu_img_that_runs_past_its_timeout_fails_the_import_cleanly(
    alice_api, image, settings, monkeypatch, tmp_path
):
    disk = compressed_qcow2(tmp_path / "disk.qcow2", "8M")
    hanging = tmp_path / "bin" / "qemu-img"
    hanging.parent.mkdir()
    hanging.write_text("#!/bin/sh\nexec sleep 60\n")
    hanging.chmod(hanging.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{hanging.parent}:{os.environ['PATH']}")
    settings.IMPORT_TIMEOUT_SECONDS = 1
    before = pool_volumes(image.host)

    operation = run_import(upload(alice_api, disk))

    assert operation.state == "failed"
    assert operation.error == (
        "Reading the image took longer than the 1 s allowed, so the import was stopped; check "
        "that the file is a sound disk image and try again."
    )
    assert operation.duration.total_seconds() < 10
    assert_nothing_left(image.host, before)


def test_a_compressed_image_within_the_plan_becomes_a_snapshot(alice_api, alice, image, tmp_path):
    disk = compressed_qcow2(tmp_path / "disk.qcow2", "64M", compression="zstd")
    plan_bytes(alice, 128 * MiB)
    before = pool_volumes(image.host)

    operation = run_import(upload(alice_api, disk))

    assert operation.state == "succeeded", operation.error
    snapshot = Snapshot.objects.get(pk=operation.subject_pk)
    assert snapshot.state == SnapshotState.READY
    assert snapshot.disk_bytes == 64 * MiB
    assert snapshot.size_bytes > 64 * MiB  # counted as written out, not as uploaded
    assert pool_volumes(image.host) - before == {snapshot.layer.volume_name}
    assert quarantine_files() == []
