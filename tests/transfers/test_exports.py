"""Rules of exports: who may see them, how long they last, and what they cost of the plan."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.errors import LimitExceeded
from snapshots.selectors import usage_for
from tests.factories import image_row, snapshot_row, vm_row
from transfers.models import Export, ExportState
from transfers.services import export_start, exports_expire

GIB = 1024**3


@pytest.fixture
def snapshot(alice):
    return snapshot_row(vm_row(owner=alice, image=image_row()), name="golden")


def ready_export(snapshot, *, size=1000, expires_in=timedelta(hours=1)):
    export = Export.objects.create(
        owner=snapshot.owner,
        snapshot=snapshot,
        snapshot_name=snapshot.name,
        state=ExportState.READY,
        size_bytes=size,
        expires_at=timezone.now() + expires_in,
    )
    export.path.parent.mkdir(parents=True, exist_ok=True)
    with export.path.open("wb") as handle:
        handle.write(b"q" * min(size, 10**6))
        handle.truncate(size)  # sparse beyond the first MB
    return export


def test_expiry_deletes_the_file_and_the_row(snapshot):
    export = ready_export(snapshot)
    kept = ready_export(snapshot, expires_in=timedelta(hours=3))

    deleted = exports_expire(now=timezone.now() + timedelta(hours=2))

    assert deleted == 1
    assert not export.path.exists()
    assert not Export.objects.filter(pk=export.pk).exists()
    assert kept.path.exists()


def test_an_expired_export_is_not_downloaded_before_it_is_swept(alice_api, snapshot):
    export = ready_export(snapshot)
    Export.objects.filter(pk=export.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert alice_api.get(f"/api/exports/{export.pk}/download/").status_code == 404
    assert alice_api.get(f"/api/exports/{export.pk}/").status_code == 404


def test_the_download_is_the_file_streamed_as_an_attachment(alice_api, snapshot):
    export = ready_export(snapshot, size=5000)

    response = alice_api.get(f"/api/exports/{export.pk}/download/")

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Length"] == "5000"
    assert response["Content-Disposition"] == 'attachment; filename="golden.qcow2"'
    assert b"".join(response.streaming_content) == export.path.read_bytes()


def test_another_users_export_is_not_found(bob_api, client, bob, snapshot):
    export = ready_export(snapshot)

    assert bob_api.get(f"/api/exports/{export.pk}/").status_code == 404
    assert bob_api.get(f"/api/exports/{export.pk}/download/").status_code == 404
    assert bob_api.get("/api/exports/").json()["results"] == []
    client.force_login(bob)
    assert client.get(f"/exports/{export.pk}/download/").status_code == 404


def test_another_users_snapshot_cannot_be_exported(bob_api, snapshot):
    response = bob_api.post(f"/api/snapshots/{snapshot.pk}/exports/")

    assert response.status_code == 404
    assert not Export.objects.exists()


def test_exporting_answers_with_the_operation(alice_api, snapshot):
    response = alice_api.post(f"/api/snapshots/{snapshot.pk}/exports/")

    assert response.status_code == 202
    assert response.json()["kind"] == "transfer.export"
    export = Export.objects.get()
    assert (export.snapshot, export.state) == (snapshot, ExportState.CREATING)


def test_export_bytes_count_against_the_plan(alice, snapshot):
    before = usage_for(alice).snapshot_bytes

    ready_export(snapshot, size=3000)

    assert usage_for(alice).snapshot_bytes == before + 3000


def test_an_expired_export_no_longer_counts(alice, snapshot):
    before = usage_for(alice).snapshot_bytes
    export = ready_export(snapshot, size=3000)
    Export.objects.filter(pk=export.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert usage_for(alice).snapshot_bytes == before


def test_no_export_is_made_when_the_plan_has_no_room(alice, snapshot):
    plan = usage_for(alice).plan
    ready_export(snapshot, size=plan.max_snapshot_bytes)

    with pytest.raises(LimitExceeded, match="exports"):
        export_start(snapshot=snapshot, user=alice)
    assert Export.objects.count() == 1


def test_the_snapshot_page_offers_export_and_the_download(client, alice, snapshot):
    export = ready_export(snapshot)
    client.force_login(alice)

    page = client.get(f"/snapshots/{snapshot.pk}/exports/").content.decode()

    assert f'action="/snapshots/{snapshot.pk}/export/"' in page
    assert f'href="/exports/{export.pk}/download/"' in page
    listing = client.get("/snapshots/").content.decode()
    assert f'href="/snapshots/{snapshot.pk}/exports/"' in listing
    assert 'href="/snapshots/import/"' in listing
