"""A snapshot leaves the service as a file and comes back as another user's snapshot, with the
guest's data intact."""

import pytest
from django.conf import settings

from operations.models import Operation
from snapshots.models import Snapshot, SnapshotKind
from snapshots.services import snapshot_new_vm, snapshot_take
from tests import guest
from tests.conftest import succeeded
from tests.transfers.conftest import client_of
from vms.models import VM, vm_id_of_lock

pytestmark = pytest.mark.libvirt


def test_a_file_written_in_alices_guest_is_in_bobs_vm_from_her_exported_snapshot(
    make_vm, alice, bob, tmp_path
):
    vm = make_vm(alice, name="source")
    guest.wait_for_boot(vm)
    guest.run(vm, "echo carried-across > /root/note.txt && sync")
    taken = succeeded(snapshot_take(vm=vm, user=alice, name="golden"))
    snapshot = Snapshot.objects.get(pk=taken.result["snapshot"])
    vm.host.hypervisor.domain_destroy(vm.domain_uuid)  # its work is done

    alice_api = client_of(alice)
    response = alice_api.post(f"/api/snapshots/{snapshot.pk}/exports/")
    assert response.status_code == 202, response.content
    succeeded(Operation.objects.get(pk=response.json()["id"]))
    (export,) = alice_api.get("/api/exports/").json()["results"]
    assert export["state"] == "ready"
    download = alice_api.get(export["download"])
    assert download.status_code == 200
    assert download["Content-Length"] == str(export["size_bytes"])
    exported = tmp_path / "golden.qcow2"
    with exported.open("wb") as handle:
        for chunk in download.streaming_content:
            handle.write(chunk)
    assert exported.read_bytes()[:4] == b"QFI\xfb"

    with exported.open("rb") as handle:
        response = client_of(bob).post(
            "/api/snapshots/import/",
            {"file": handle, "format": "qcow2", "name": "from alice"},
            format="multipart",
        )
    assert response.status_code == 202, response.content
    imported = succeeded(Operation.objects.get(pk=response.json()["id"]))
    copy = Snapshot.objects.get(pk=imported.subject_pk)
    assert (copy.owner, copy.kind, copy.layer.parent) == (bob, SnapshotKind.IMPORTED, None)
    assert list(settings.QUARANTINE_DIR.iterdir()) == []

    started = succeeded(snapshot_new_vm(snapshot=copy, user=bob, name="copy"))
    bobs = VM.objects.select_related("host", "image", "active_layer").get(
        pk=vm_id_of_lock(started.lock)
    )
    guest.wait_for_boot(bobs)
    assert guest.run(bobs, "cat /root/note.txt").strip() == "carried-across"
