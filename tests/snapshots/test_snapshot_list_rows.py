"""The Snapshots page keeps a row whose snapshot is being made live: the row asks for itself
again until the snapshot is ready, then asks no more; only its owner's rows are answered."""

import pytest

from snapshots.models import Snapshot, SnapshotKind, SnapshotState
from tests.factories import image_row, layer_row


@pytest.fixture
def importing(alice):
    """An imported snapshot its worker is still checking."""
    image = image_row()
    return Snapshot.objects.create(
        owner=alice,
        image=image,
        name="from-laptop",
        kind=SnapshotKind.IMPORTED,
        state=SnapshotState.CREATING,
    )


def made(snapshot):
    snapshot.layer = layer_row(host=snapshot.image.host, parent=snapshot.image.layer)
    snapshot.state = SnapshotState.READY
    snapshot.save()


def row_of(client, snapshot):
    return client.get(f"/snapshots/{snapshot.pk}/row/", HTTP_HX_REQUEST="true")


def test_the_row_of_a_snapshot_being_made_asks_for_itself_again(client, alice, importing):
    client.force_login(alice)
    page = client.get("/snapshots/").content.decode()
    assert f'hx-get="/snapshots/{importing.pk}/row/" hx-trigger="every 2s"' in page
    assert f'hx-get="/snapshots/{importing.pk}/row/"' in row_of(client, importing).content.decode()


def test_the_row_of_a_ready_snapshot_asks_nothing(client, alice, importing):
    made(importing)
    client.force_login(alice)
    assert "/row/" not in client.get("/snapshots/").content.decode()


def test_a_row_asked_for_once_its_snapshot_is_ready_has_its_actions(client, alice, importing):
    made(importing)
    client.force_login(alice)
    row = row_of(client, importing).content.decode()
    assert "hx-get" not in row
    assert f'data-open="rename-{importing.pk}"' in row
    assert f'id="rename-{importing.pk}"' in row
    # Its pin form goes back to the Snapshots page, not to the row's own address.
    assert '<input type="hidden" name="next" value="/snapshots/">' in row


def test_a_row_asked_for_once_its_snapshot_is_ready_brings_the_plans_usage(
    client, alice, importing
):
    client.force_login(alice)
    assert 'id="snapshot-usage-card"' not in row_of(client, importing).content.decode()
    made(importing)
    row = row_of(client, importing).content.decode()
    assert '<section class="card" id="snapshot-usage-card" hx-swap-oob="true">' in row


def test_a_row_asked_for_once_its_snapshot_is_gone_is_only_the_plans_usage(
    client, alice, importing
):
    url = f"/snapshots/{importing.pk}/row/"
    importing.delete()  # what a failed import does
    client.force_login(alice)
    response = client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert "<tr" not in body
    assert 'id="snapshot-usage-card" hx-swap-oob="true"' in body


def test_another_users_snapshot_row_is_not_shown(client, bob, importing):
    client.force_login(bob)
    body = row_of(client, importing).content.decode()
    assert "from-laptop" not in body
    assert "<tr" not in body


def test_an_anonymous_row_request_is_sent_to_log_in(client, importing):
    response = row_of(client, importing)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
