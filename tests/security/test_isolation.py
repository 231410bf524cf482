"""Tenants stay apart: every page route that takes an object id answers another user's id and
a made-up id with the same 404; lists never show another user's objects."""

import pytest

from accounts.models import ApiToken
from accounts.services import token_create
from operations.models import Operation
from snapshots.models import Snapshot, SnapshotState
from tests.factories import image_row, layer_row, vm_row

MISSING = "00000000-0000-0000-0000-000000000000"

PAGE_ROUTES = [
    ("get", "/vms/{vm}/"),
    ("get", "/vms/{vm}/live/"),
    ("get", "/vms/{vm}/snapshot-dialogs/"),
    ("get", "/vms/{vm}/console/"),
    ("post", "/vms/{vm}/console/"),
    ("post", "/vms/{vm}/start/"),
    ("post", "/vms/{vm}/stop/"),
    ("post", "/vms/{vm}/force-stop/"),
    ("post", "/vms/{vm}/reboot/"),
    ("post", "/vms/{vm}/repair/"),
    ("post", "/vms/{vm}/delete/"),
    ("post", "/vms/{vm}/snapshots/take/"),
    ("post", "/snapshots/{snapshot}/restore/"),
    ("post", "/snapshots/{snapshot}/new-vm/"),
    ("post", "/snapshots/{snapshot}/rename/"),
    ("post", "/snapshots/{snapshot}/delete/"),
]


@pytest.fixture
def bobs(bob):
    image = image_row()
    vm = vm_row(owner=bob, image=image, name="bobs-secret-vm")
    snapshot = Snapshot.objects.create(
        owner=bob,
        source_vm=vm,
        source_vm_name=vm.name,
        image=image,
        name="bobs-secret-snapshot",
        layer=layer_row(host=image.host, parent=image.layer),
        state=SnapshotState.READY,
    )
    return {"vm": vm.pk, "snapshot": snapshot.pk}


@pytest.mark.parametrize(("method", "path"), PAGE_ROUTES, ids=[f"{m} {p}" for m, p in PAGE_ROUTES])
def test_another_users_object_is_the_same_404_as_a_made_up_one(client, alice, bobs, method, path):
    client.force_login(alice)
    data = {"name": "x", "line": "ls"}
    theirs = getattr(client, method)(path.format(**bobs), data)
    made_up = getattr(client, method)(path.format(vm=MISSING, snapshot=MISSING), data)
    assert theirs.status_code == made_up.status_code == 404
    assert theirs.content == made_up.content
    assert Operation.objects.count() == 0
    assert Snapshot.objects.get(pk=bobs["snapshot"]).name == "bobs-secret-snapshot"


def test_a_token_of_another_user_cannot_be_revoked(client, alice, bob):
    token, _key = token_create(user=bob, name="bobs")
    client.force_login(alice)
    assert client.post(f"/account/tokens/{token.pk}/revoke/").status_code == 404
    assert client.post("/account/tokens/999999/revoke/").status_code == 404
    assert ApiToken.objects.filter(pk=token.pk).exists()


@pytest.mark.parametrize(
    "path", ["/", "/snapshots/", "/activity/", "/vms/new/", "/account/tokens/"]
)
def test_lists_never_show_another_users_objects(client, alice, bobs, path):
    Operation.objects.create(
        kind="vm.start", owner_id=Snapshot.objects.get().owner_id, target_name="bobs-secret-op"
    )
    client.force_login(alice)
    page = client.get(path).content.decode()
    assert "bobs-secret" not in page
