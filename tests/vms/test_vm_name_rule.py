"""The one VM-name rule: an owner's VMs have different names. One answer wherever a name is
given: 409 in the API (a conflict with what exists, not bad input), an error beside the name
field on a page."""

import pytest
from rest_framework.test import APIClient

from accounts.services import token_create
from snapshots.models import Snapshot
from tests.factories import vm_row
from tests.vms.test_pages import add_snapshots
from vms.models import VM


@pytest.fixture
def api(alice):
    client = APIClient()
    _token, key = token_create(user=alice, name="tests")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def taken(alice, image):
    return vm_row(owner=alice, image=image, name="taken")


def test_creating_a_vm_under_a_name_in_use_is_409(api, taken, image):
    body = {"name": "taken", "image": image.slug, "memory_mib": 256, "disk_gib": 4}
    response = api.post("/api/vms/", body, format="json")
    assert response.status_code == 409
    assert "You already have a VM named 'taken'" in response.json()["error"]["message"]
    assert VM.objects.count() == 1


def test_renaming_a_vm_to_a_name_in_use_is_409(api, taken, alice, image):
    other = vm_row(owner=alice, image=image, name="other")
    response = api.patch(f"/api/vms/{other.pk}/", {"name": "taken"}, format="json")
    assert response.status_code == 409
    other.refresh_from_db()
    assert other.name == "other"


def test_a_new_vm_from_a_snapshot_under_a_name_in_use_is_409(api, taken):
    add_snapshots(taken, 1)
    snapshot = Snapshot.objects.get()
    response = api.post(f"/api/snapshots/{snapshot.pk}/vms/", {"name": "taken"}, format="json")
    assert response.status_code == 409


def test_the_new_vm_page_shows_a_name_in_use_beside_the_name_field(client, alice, taken, image):
    client.force_login(alice)
    body = {"source": f"image:{image.slug}", "name": "taken", "vcpus": 1, "memory_mib": 256}
    body["disk_gib"] = 4
    response = client.post("/vms/new/", body)
    assert response.status_code == 200
    assert "already have a VM named" in str(response.context["form"].errors.get("name"))
