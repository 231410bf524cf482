"""Each image says what it is: on the new-VM page and in the API."""

import pytest
from rest_framework.test import APIClient

from accounts.services import token_create
from tests.factories import host_row, image_row
from vms.models import Image


@pytest.fixture
def debian(db):
    image = image_row(slug="debian-12")
    Image.objects.filter(pk=image.pk).update(
        name="Debian 12", os_name="Debian 12 (bookworm)", summary="systemd, OpenSSH, sudo"
    )
    image.layer.allocation = 407 * 1024**2
    image.layer.save()
    image.refresh_from_db()
    return image


def test_the_new_vm_page_names_each_images_system_contents_and_size(client, alice, debian):
    client.force_login(alice)
    page = client.get("/vms/new/").content.decode()
    assert "Debian 12 (Debian 12 (bookworm), systemd, OpenSSH, sudo; 407.0\xa0MB)" in page
    listed = page[page.index('data-testid="image-list"') :]
    assert "Debian 12 (bookworm)" in listed and "systemd, OpenSSH, sudo." in listed


def test_the_api_says_what_an_image_is_and_its_size(alice, debian):
    api = APIClient()
    _token, key = token_create(user=alice, name="tests")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    answer = api.get("/api/images/debian-12/").json()
    assert answer["os_name"] == "Debian 12 (bookworm)"
    assert answer["summary"] == "systemd, OpenSSH, sudo"
    assert answer["size_bytes"] == 407 * 1024**2


def test_a_host_without_a_debian_image_offers_only_the_others(client, alice, db):
    image_row(host=host_row(), slug="busybox")
    client.force_login(alice)
    assert "Debian" not in client.get("/vms/new/").content.decode()
