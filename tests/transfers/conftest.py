import subprocess

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.services import token_create

IMPORT_URL = "/api/snapshots/import/"


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


def pool_volumes(host) -> set[str]:

    return set(host.hypervisor.volume_names(host.pool_name))


def quarantine_files() -> list[str]:
    folder = settings.QUARANTINE_DIR
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def upload(client, path, fmt="qcow2", name="imported"):
    with open(path, "rb") as handle:
        return client.post(
            IMPORT_URL, {"file": handle, "format": fmt, "name": name}, format="multipart"
        )


def run_import(response):
    """Run the import's operation as a worker would (the test's transaction holds it queued)."""
    from operations.models import Operation
    from operations.services import operation_run

    assert response.status_code == 202, response.content
    operation_run(response.json()["id"])
    return Operation.objects.get(pk=response.json()["id"])


def assert_nothing_left(host, volumes_before: set[str]) -> None:
    """Nothing of an import is anywhere: pool, quarantine, snapshot rows, layer rows."""
    from snapshots.models import Snapshot
    from vms.models import Layer

    assert pool_volumes(host) == volumes_before
    assert quarantine_files() == []
    assert not Snapshot.objects.filter(name="imported").exists()
    assert not Layer.objects.exclude(state="ready").exists()


def compressed_qcow2(path, size: str = "64M", *, compression: str = "zstd", byte: int = 0x61):
    """A qcow2 of `size` whose every cluster is compressed and holds one repeated byte: a small
    file that expands to its whole disk."""
    qemu_img("create", "-f", "qcow2", "-o", f"compression_type={compression}", str(path), size)
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", f"write -c -P {byte:#x} 0 {size}", str(path)],
        check=True,
        capture_output=True,
    )
    return path
