"""The REST API's contract: status codes, bodies, permissions, idempotency, throttling."""

import pytest

from accounts.models import Plan
from accounts.services import plan_change
from operations.models import Operation, OperationState
from snapshots.models import Snapshot, SnapshotState
from tests.factories import domain_running, image_row, layer_row, vm_row
from vms.models import VM, VMOperationKind, VMState

MISSING = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def image(db):
    return image_row()


@pytest.fixture
def objects(alice, image, fake_hosts):
    """Alice's VM (running), one of its snapshots, and a finished operation."""
    vm = vm_row(owner=alice, image=image, name="web")
    domain_running(fake_hosts[vm.host.libvirt_uri], vm)
    snapshot = Snapshot.objects.create(
        owner=alice,
        source_vm=vm,
        source_vm_name=vm.name,
        image=image,
        name="golden",
        layer=layer_row(host=image.host, parent=image.layer),
        disk_bytes=vm.disk_bytes,
        state=SnapshotState.READY,
    )
    operation = Operation.objects.create(
        kind=VMOperationKind.CREATE,
        owner=alice,
        lock=vm.lock,
        subject=vm,
        target_name="web",
        state=OperationState.SUCCEEDED,
        progress=100,
    )
    return {"vm": vm.pk, "snapshot": snapshot.pk, "operation": operation.pk}


# (method, path, body, the owner's answer)
OBJECT_ROUTES = [
    ("get", "/api/vms/{vm}/", None, 200),
    ("patch", "/api/vms/{vm}/", {"name": "renamed"}, 200),
    ("delete", "/api/vms/{vm}/", None, 202),
    ("post", "/api/vms/{vm}/stop/", {"force": True}, 202),
    ("post", "/api/vms/{vm}/reboot/", {}, 202),
    ("post", "/api/vms/{vm}/start/", {}, 409),
    ("get", "/api/vms/{vm}/console/", None, 200),
    ("post", "/api/vms/{vm}/console/", {"line": "uname -a"}, 202),
    ("post", "/api/vms/{vm}/snapshots/", {"name": "before upgrade"}, 202),
    ("get", "/api/snapshots/{snapshot}/", None, 200),
    ("patch", "/api/snapshots/{snapshot}/", {"name": "renamed"}, 200),
    ("delete", "/api/snapshots/{snapshot}/", None, 202),
    ("post", "/api/snapshots/{snapshot}/restore/", {}, 202),
    ("post", "/api/snapshots/{snapshot}/vms/", {"name": "clone"}, 202),
    ("get", "/api/operations/{operation}/", None, 200),
]
ROUTE_IDS = [f"{m} {p}" for m, p, _, _ in OBJECT_ROUTES]


def call(client, method, path, body):
    return getattr(client, method)(path, body, format="json")


@pytest.mark.parametrize(("method", "path", "body", "expected"), OBJECT_ROUTES, ids=ROUTE_IDS)
def test_the_owner_gets_the_answer(alice_api, objects, method, path, body, expected):
    response = call(alice_api, method, path.format(**objects), body)
    assert response.status_code == expected, response.json()


@pytest.mark.parametrize(("method", "path", "body", "expected"), OBJECT_ROUTES, ids=ROUTE_IDS)
def test_anonymous_is_asked_to_authenticate(api, objects, method, path, body, expected):
    response = call(api, method, path.format(**objects), body)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize(("method", "path", "body", "expected"), OBJECT_ROUTES, ids=ROUTE_IDS)
def test_another_users_object_is_the_same_404_as_a_missing_one(
    bob_api, objects, method, path, body, expected
):
    theirs = call(bob_api, method, path.format(**objects), body)
    missing = call(
        bob_api, method, path.format(vm=MISSING, snapshot=MISSING, operation=MISSING), body
    )
    assert theirs.status_code == missing.status_code == 404
    assert (
        theirs.json() == missing.json() == {"error": {"code": "not_found", "message": "Not found."}}
    )
    assert Operation.objects.count() == 1  # nothing was started


@pytest.mark.parametrize(
    "path",
    ["/api/vms/", "/api/snapshots/", "/api/operations/", "/api/images/", "/api/plans/", "/api/me/"],
)
def test_lists_need_authentication(api, db, path):
    assert api.get(path).status_code == 401


@pytest.mark.parametrize("path", ["/api/vms/", "/api/snapshots/", "/api/operations/"])
def test_lists_never_show_another_users_objects(bob_api, objects, path):
    response = bob_api.get(path)
    assert response.status_code == 200
    assert response.json()["count"] == 0


def test_lists_are_paginated(alice_api, alice, image):
    for i in range(30):
        vm_row(owner=alice, image=image, name=f"vm-{i:02}")
    body = alice_api.get("/api/vms/?page_size=10&ordering=-name").json()
    assert body["count"] == 30
    assert len(body["results"]) == 10
    assert body["results"][0]["name"] == "vm-29"
    assert "page=2" in body["next"]


def test_snapshots_filter_by_vm(alice_api, objects, alice, image):
    other = vm_row(owner=alice, image=image, name="other")
    body = alice_api.get(f"/api/snapshots/?vm={other.pk}").json()
    assert body["count"] == 0
    body = alice_api.get(f"/api/snapshots/?vm={objects['vm']}").json()
    assert [s["name"] for s in body["results"]] == ["golden"]


def test_create_vm_answers_202_with_the_operation_and_its_location(alice_api, image):
    response = alice_api.post("/api/vms/", {"name": "api-vm", "image": image.slug}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert body["kind"] == "vm.create"
    assert body["state"] == "queued"
    assert response["Location"] == f"/api/operations/{body['id']}/"
    assert body["links"]["vm"] == f"/api/vms/{body['vm']}/"
    assert alice_api.get(response["Location"]).json()["id"] == body["id"]


def test_invalid_input_is_400_with_field_errors(alice_api, image):
    response = alice_api.post(
        "/api/vms/", {"name": "", "image": image.slug, "memory_mib": 1}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {"name", "memory_mib"}


def test_an_unknown_image_is_400_naming_the_field(alice_api, image):
    response = alice_api.post("/api/vms/", {"name": "x", "image": "nope"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "image": ["There is no image 'nope'; GET /api/images/ lists the images offered."]
    }


def test_a_busy_vm_is_409_with_the_running_operation(alice_api, objects):
    first = alice_api.post(f"/api/vms/{objects['vm']}/stop/", {}, format="json").json()
    response = alice_api.post(f"/api/vms/{objects['vm']}/snapshots/", {"name": "s"}, format="json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "busy"
    assert error["message"].startswith("VM is busy: stop vm")
    assert error["operation"]["id"] == first["id"]


def test_over_the_plan_limit_is_403_naming_the_limit(alice_api, alice, objects):
    plan_change(user=alice, plan=Plan.objects.get(slug="hobbyist"))
    response = alice_api.post(f"/api/vms/{objects['vm']}/snapshots/", {"name": "s"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "limit_exceeded",
        "message": "Your Hobbyist plan allows 1 snapshot and you have 1; delete one to make room.",
    }


def test_a_wrong_state_is_409_with_a_sentence(alice_api, objects):
    response = alice_api.post(f"/api/vms/{objects['vm']}/start/", {}, format="json")
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "conflict",
        "message": "VM 'web' is already running.",
    }


def test_restore_onto_a_given_vm_of_the_owner(alice_api, objects, alice, image):
    other = vm_row(owner=alice, image=image, name="other", state=VMState.STOPPED)
    response = alice_api.post(
        f"/api/snapshots/{objects['snapshot']}/restore/", {"vm": str(other.pk)}, format="json"
    )
    assert response.status_code == 202
    assert response.json()["vm"] == str(other.pk)


def test_restore_onto_another_users_vm_is_404(alice_api, objects, bob, image):
    bobs = vm_row(owner=bob, image=image)
    response = alice_api.post(
        f"/api/snapshots/{objects['snapshot']}/restore/", {"vm": str(bobs.pk)}, format="json"
    )
    assert response.status_code == 404


def test_me_shows_the_plan_and_usage(alice_api, objects):
    body = alice_api.get("/api/me/").json()
    assert body["plan"]["slug"] == "developer"
    assert body["usage"] == {"snapshots": 1, "snapshot_bytes": 0, "vms": 1}


def test_a_retry_with_the_same_idempotency_key_gets_the_first_answer(alice_api, image):
    def create():
        return alice_api.post(
            "/api/vms/",
            {"name": "once", "image": image.slug},
            format="json",
            HTTP_IDEMPOTENCY_KEY="create-once",
        )

    first, second = create(), create()
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert second["Idempotent-Replayed"] == "true"
    assert VM.objects.filter(name="once").count() == 1
    assert Operation.objects.get().idempotency_key == "create-once"


def test_the_same_idempotency_key_with_another_body_is_422(alice_api, image):
    alice_api.post(
        "/api/vms/", {"name": "a", "image": image.slug}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    response = alice_api.post(
        "/api/vms/", {"name": "b", "image": image.slug}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert not VM.objects.filter(name="b").exists()


def test_idempotency_keys_are_per_user(alice_api, bob_api, image):
    body = {"name": "same", "image": image.slug}
    assert (
        alice_api.post("/api/vms/", body, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code
        == 202
    )
    assert (
        bob_api.post("/api/vms/", body, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 202
    )
    assert VM.objects.filter(name="same").count() == 2


def test_a_revoked_token_is_refused(api, alice):
    from accounts.services import token_create, token_revoke

    token, key = token_create(user=alice, name="ci")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/vms/").status_code == 200
    token_revoke(token=token)
    response = api.get("/api/vms/")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "This API token is not valid (revoked?)."


def test_the_browser_session_works_for_the_api(client, alice):
    client.force_login(alice)
    assert client.get("/api/me/").status_code == 200


def test_changes_are_throttled_per_user(alice_api, objects, settings):
    settings.API_MUTATION_RATE = "3/min"
    codes = [
        alice_api.patch(f"/api/vms/{objects['vm']}/", {"name": f"n{i}"}, format="json").status_code
        for i in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    assert alice_api.get("/api/vms/").status_code == 200  # reads are not limited


def test_the_schema_and_its_docs_are_served_without_a_cdn(client, db):
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"202", "400", "404", "409"} <= set(paths["/api/vms/{id}/stop/"]["post"]["responses"])
    docs = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in docs
    assert "cdn" not in docs.lower()


def test_an_empty_or_malformed_page_is_refused_with_400(alice_api, objects):
    for page in ("", "0", "x", "last"):
        response = alice_api.get(f"/api/vms/?page={page}")
        assert response.status_code == 400, page
        assert "page" in response.json()["error"]["fields"]


def test_a_form_encoded_body_is_refused_with_415(alice_api, objects):
    response = alice_api.patch(f"/api/vms/{objects['vm']}/", {"name": ""}, format="multipart")
    assert response.status_code == 415


def test_a_number_where_a_name_belongs_is_refused_with_400(alice_api, objects):
    response = alice_api.patch(f"/api/vms/{objects['vm']}/", {"name": 0})
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["name"] == ["Give text (a JSON string)."]


def test_a_snapshot_taken_with_an_idempotency_key_is_answered_again_on_a_retry(alice_api, objects):
    path = f"/api/vms/{objects['vm']}/snapshots/"

    first, again = (
        alice_api.post(path, {"name": "before"}, format="json", HTTP_IDEMPOTENCY_KEY="take-1")
        for _ in range(2)
    )

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert first.json()["snapshot"] is not None
