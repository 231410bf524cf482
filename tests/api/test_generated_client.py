"""A client generated from the schema of a fresh database (openapi-python-client, as an API
client's author would) asks for an image added after it was generated, and gets its VM."""

import importlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from accounts.services import token_create
from operations.models import Operation
from vms.models import VM, Image

GENERATOR = Path(sys.executable).parent / "openapi-python-client"


@pytest.fixture
def generated(transactional_db, tmp_path, monkeypatch):
    """The Python client generated from the schema of a database without a single image."""
    assert not Image.objects.exists()
    response = APIClient().get("/api/schema/?format=json")
    assert response.status_code == 200
    (tmp_path / "schema.json").write_text(json.dumps(response.json()))
    package = f"ksapi_{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [
            *(GENERATOR, "generate", "--meta", "none"),
            *("--path", tmp_path / "schema.json", "--output-path", tmp_path / package),
        ],
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{GENERATOR.parent}:{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module(package)


@pytest.mark.libvirt
def test_a_client_generated_on_a_fresh_database_creates_a_vm_from_an_image_added_afterwards(
    generated, image, live_server, alice, sync_tasks
):
    # `image` registers the busybox image after the client was generated, as an admin would.
    _token, key = token_create(user=alice, name="generated client")
    client = generated.AuthenticatedClient(base_url=live_server.url, token=key)
    vms_create = importlib.import_module(f"{generated.__name__}.api.vms.vms_create")
    operations_retrieve = importlib.import_module(
        f"{generated.__name__}.api.operations.operations_retrieve"
    )
    request = importlib.import_module(f"{generated.__name__}.models.vm_create_request")

    accepted = vms_create.sync_detailed(
        client=client, body=request.VMCreateRequest(name="class-base", image=image.slug)
    )

    assert accepted.status_code == 202, accepted.content
    operation = accepted.parsed
    deadline = time.monotonic() + 120
    while str(operation.state) not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        operation = operations_retrieve.sync(client=client, id=operation.id)
    assert str(operation.state) == "succeeded", Operation.objects.get(pk=operation.id).detail
    vm = VM.objects.get(owner=alice, name="class-base")
    assert (vm.image, vm.state) == (image, "running")
