"""The schema a client is generated from is the same whatever rows the database holds: rows an
admin adds (images, hosts, plans) are named by strings with their shape, never listed."""

import pytest
from rest_framework.test import APIClient

from accounts.models import Plan
from tests.factories import host_row, image_row


def schema() -> dict:
    response = APIClient().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_is_the_same_on_an_empty_and_a_seeded_database(db):
    empty = schema()
    image_row(slug="debian")
    image_row(host=host_row(name="second"), slug="alpine")
    Plan.objects.create(slug="school", name="School", max_snapshots=3, max_snapshot_bytes=10**9)

    assert schema() == empty


def test_an_image_is_a_slug_pointing_at_the_list_of_images(db):
    image_row(slug="debian")

    field = schema()["components"]["schemas"]["VMCreateRequest"]["properties"]["image"]

    assert "enum" not in field
    assert field["pattern"] == "^[-a-zA-Z0-9_]+$"
    assert field["maxLength"] == 64
    assert "GET /api/images/" in field["description"]


@pytest.fixture
def alice_images(alice_api):
    image_row(slug="busybox")
    return alice_api


def test_an_unknown_image_is_refused_with_400_naming_the_list_of_images(alice_images):
    response = alice_images.post("/api/vms/", {"name": "web", "image": "nope"}, format="json")

    assert response.status_code == 400
    assert "GET /api/images/" in response.json()["error"]["fields"]["image"][0]


def test_the_export_download_is_declared_as_a_qcow2_file_of_bytes(db):
    download = schema()["paths"]["/api/exports/{id}/download/"]["get"]["responses"]["200"]

    assert download["content"] == {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
    }
    assert "qcow2" in download["description"]
    assert "Content-Disposition" in download["headers"]
