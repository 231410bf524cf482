"""The API's SSH keys: /api/ssh-keys/ lists and adds, /api/ssh-keys/{id}/ shows and deletes."""

import pytest

from accounts.models import SshKey
from accounts.services import ssh_key_add
from tests.factories import FINGERPRINTS, PUBLIC_KEYS

MISSING = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def alice_key(alice):
    return ssh_key_add(owner=alice, title="Laptop", public_key=PUBLIC_KEYS[0])


def test_adding_a_key_answers_201_with_its_fingerprint(alice_api, alice):
    response = alice_api.post("/api/ssh-keys/", {"public_key": PUBLIC_KEYS[1]})

    assert response.status_code == 201, response.json()
    body = response.json()
    key = SshKey.objects.get(owner=alice)
    assert body == {
        "id": str(key.pk),
        "title": "alice@laptop-2",
        "key_type": "ssh-ed25519",
        "fingerprint": FINGERPRINTS[1],
        "bits": 256,
        "public_key": PUBLIC_KEYS[1],
        "created_at": body["created_at"],
    }


def test_a_title_given_is_kept(alice_api):
    response = alice_api.post("/api/ssh-keys/", {"title": "CI", "public_key": PUBLIC_KEYS[1]})
    assert response.json()["title"] == "CI"


def test_a_bad_key_is_a_400_naming_the_field_and_the_reason(alice_api):
    response = alice_api.post("/api/ssh-keys/", {"public_key": "-----BEGIN OPENSSH PRIVATE KEY"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["fields"]["public_key"][0].startswith("That is a private key")
    assert not SshKey.objects.exists()


def test_a_missing_key_is_a_400(alice_api):
    response = alice_api.post("/api/ssh-keys/", {"title": "Nothing"})
    assert response.status_code == 400
    assert "public_key" in response.json()["error"]["fields"]


def test_a_key_that_is_not_text_is_a_400(alice_api):
    response = alice_api.post("/api/ssh-keys/", {"public_key": 12})
    assert response.status_code == 400
    assert "public_key" in response.json()["error"]["fields"]


def test_the_same_key_twice_is_a_409(alice_api, alice_key):
    response = alice_api.post("/api/ssh-keys/", {"public_key": PUBLIC_KEYS[0]})

    assert response.status_code == 409
    assert response.json()["error"]["message"].startswith("You have already added this key")
    assert SshKey.objects.count() == 1


def test_a_key_over_the_limit_is_a_403(alice_api, alice_key, settings):
    settings.SSH_KEYS_MAX = 1

    response = alice_api.post("/api/ssh-keys/", {"public_key": PUBLIC_KEYS[1]})

    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "limit_exceeded",
        "message": "You can keep up to 1 SSH key; delete one you no longer use to add another.",
    }


def test_the_list_shows_only_your_keys(alice_api, alice_key, bob):
    ssh_key_add(owner=bob, title="Bob's", public_key=PUBLIC_KEYS[1])

    body = alice_api.get("/api/ssh-keys/").json()

    assert body["count"] == 1
    assert body["results"][0]["fingerprint"] == FINGERPRINTS[0]


def test_a_key_is_shown_to_its_owner(alice_api, alice_key):
    response = alice_api.get(f"/api/ssh-keys/{alice_key.pk}/")
    assert response.status_code == 200
    assert response.json()["title"] == "Laptop"


def test_deleting_a_key_answers_204(alice_api, alice_key):
    assert alice_api.delete(f"/api/ssh-keys/{alice_key.pk}/").status_code == 204
    assert not SshKey.objects.exists()


@pytest.mark.parametrize("method", ["get", "delete"])
def test_another_users_key_is_the_same_404_as_a_missing_one(bob_api, alice_key, method):
    theirs = getattr(bob_api, method)(f"/api/ssh-keys/{alice_key.pk}/")
    missing = getattr(bob_api, method)(f"/api/ssh-keys/{MISSING}/")
    malformed = getattr(bob_api, method)("/api/ssh-keys/not-an-id/")

    assert theirs.status_code == missing.status_code == malformed.status_code == 404
    assert theirs.json() == missing.json() == malformed.json()
    assert SshKey.objects.filter(pk=alice_key.pk).exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/ssh-keys/"),
        ("post", "/api/ssh-keys/"),
        ("get", f"/api/ssh-keys/{MISSING}/"),
        ("delete", f"/api/ssh-keys/{MISSING}/"),
    ],
)
def test_anonymous_is_asked_to_authenticate(api, db, method, path):
    response = getattr(api, method)(path, {"public_key": PUBLIC_KEYS[0]}, format="json")
    assert response.status_code == 401


def test_the_schema_documents_the_routes(alice_api):
    paths = alice_api.get("/api/schema/?format=json").json()["paths"]
    assert set(paths["/api/ssh-keys/"]) >= {"get", "post"}
    assert set(paths["/api/ssh-keys/{id}/"]) >= {"get", "delete"}
    post = paths["/api/ssh-keys/"]["post"]
    assert {"201", "400", "403", "409"} <= set(post["responses"])
