"""The SSH keys page: a user's keys listed with their fingerprints, added with a form that says
beside the field what is wrong, deleted after a confirmation; another user's key is a 404."""

import pytest

from accounts.models import SshKey
from accounts.services import ssh_key_add
from tests.factories import FINGERPRINTS, PUBLIC_KEYS

PAGE = "/account/ssh-keys/"


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def test_it_needs_a_signed_in_user(client, db):
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response.url.startswith("/login/")


def test_the_page_is_linked_from_every_page(alice_client):
    assert f'href="{PAGE}"' in alice_client.get("/").content.decode()


def test_it_lists_the_users_keys_with_title_type_and_fingerprint(alice_client, alice, bob):
    ssh_key_add(owner=alice, title="Laptop", public_key=PUBLIC_KEYS[0])
    ssh_key_add(owner=bob, title="Bob's desk", public_key=PUBLIC_KEYS[1])

    page = alice_client.get(PAGE).content.decode()

    assert "Laptop" in page
    assert "ssh-ed25519" in page
    assert FINGERPRINTS[0] in page
    assert "Bob&#x27;s desk" not in page
    assert FINGERPRINTS[1] not in page


def test_adding_a_key_lists_it(alice_client, alice):
    response = alice_client.post(PAGE, {"title": "", "public_key": PUBLIC_KEYS[0]}, follow=True)

    assert response.redirect_chain == [(PAGE, 302)]
    assert SshKey.objects.get(owner=alice).title == "alice@laptop-1"
    assert FINGERPRINTS[0] in response.content.decode()


def test_a_refused_key_is_explained_beside_the_key_field(alice_client):
    response = alice_client.post(PAGE, {"title": "Old", "public_key": "ssh-dss AAAAB3NzaC1kc3M="})

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors["public_key"][0].startswith("DSA keys are no longer accepted by OpenSSH")
    assert "DSA keys are no longer accepted" in response.content.decode()
    assert not SshKey.objects.exists()


def test_a_refused_title_is_explained_beside_the_title_field(alice_client):
    bare = " ".join(PUBLIC_KEYS[0].split()[:2])
    response = alice_client.post(PAGE, {"title": "", "public_key": bare})
    assert "Give the key a title" in response.context["form"].errors["title"][0]


def test_the_same_key_twice_is_explained_beside_the_key_field(alice_client, alice):
    ssh_key_add(owner=alice, title="Laptop", public_key=PUBLIC_KEYS[0])
    response = alice_client.post(PAGE, {"title": "Again", "public_key": PUBLIC_KEYS[0]})
    assert "already added this key" in response.context["form"].errors["public_key"][0]


def test_a_key_over_the_limit_is_explained_above_the_form(alice_client, alice, settings):
    settings.SSH_KEYS_MAX = 1
    ssh_key_add(owner=alice, title="Laptop", public_key=PUBLIC_KEYS[0])

    response = alice_client.post(PAGE, {"title": "Desk", "public_key": PUBLIC_KEYS[1]})

    assert response.context["form"].non_field_errors() == [
        "You can keep up to 1 SSH key; delete one you no longer use to add another."
    ]
    assert SshKey.objects.count() == 1


def test_each_key_has_a_delete_confirmation(alice_client, alice):
    key = ssh_key_add(owner=alice, title="Laptop", public_key=PUBLIC_KEYS[0])
    page = alice_client.get(PAGE).content.decode()
    assert f'data-open="delete-ssh-key-{key.pk}"' in page
    assert f'<dialog id="delete-ssh-key-{key.pk}">' in page
    assert f'action="/account/ssh-keys/{key.pk}/delete/"' in page


def test_deleting_a_key_removes_it(alice_client, alice):
    key = ssh_key_add(owner=alice, title="Laptop", public_key=PUBLIC_KEYS[0])

    response = alice_client.post(f"/account/ssh-keys/{key.pk}/delete/", follow=True)

    assert response.redirect_chain == [(PAGE, 302)]
    assert not SshKey.objects.exists()
    assert "SSH key &#x27;Laptop&#x27; deleted." in response.content.decode()


def test_deleting_needs_a_post(alice_client, alice):
    key = ssh_key_add(owner=alice, title="Laptop", public_key=PUBLIC_KEYS[0])
    assert alice_client.get(f"/account/ssh-keys/{key.pk}/delete/").status_code == 405
    assert SshKey.objects.exists()


def test_another_users_key_is_a_404(alice_client, bob):
    key = ssh_key_add(owner=bob, title="Bob's", public_key=PUBLIC_KEYS[0])
    assert alice_client.post(f"/account/ssh-keys/{key.pk}/delete/").status_code == 404
    assert SshKey.objects.filter(pk=key.pk).exists()
