import subprocess

import pytest
from rest_framework.test import APIClient

from accounts.services import token_create


@pytest.fixture(autouse=True)
def transfer_folders(settings, tmp_path):
    """Exports and quarantine of this test's own."""
    settings.EXPORT_DIR = tmp_path / "exports"
    settings.QUARANTINE_DIR = tmp_path / "quarantine"
    return settings


def client_of(user) -> APIClient:
    client = APIClient()
    _token, key = token_create(user=user, name="tests")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def alice_api(alice):
    return client_of(alice)


@pytest.fixture
def bob_api(bob):
    return client_of(bob)


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def qemu_io(path, command: str) -> None:
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", command, str(path)], check=True, capture_output=True
    )
