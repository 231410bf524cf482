"""Staff see users' SSH keys in the admin, by user; they cannot add one or change a key's text."""

import pytest

from accounts.services import ssh_key_add
from tests.factories import FINGERPRINTS, PUBLIC_KEYS


@pytest.fixture
def staff_client(client, charlie):
    client.force_login(charlie)
    return client


@pytest.fixture
def alices_key(alice):
    return ssh_key_add(owner=alice, title="Laptop", public_key=PUBLIC_KEYS[0])


def test_staff_find_a_users_keys_by_username(staff_client, alices_key, bob):
    ssh_key_add(owner=bob, title="Bob's desk", public_key=PUBLIC_KEYS[1])

    page = staff_client.get("/admin/accounts/sshkey/?q=alice").content.decode()

    assert FINGERPRINTS[0] in page
    assert FINGERPRINTS[1] not in page


def test_a_users_page_lists_their_keys(staff_client, alice, alices_key):
    page = staff_client.get(f"/admin/accounts/user/{alice.pk}/change/").content.decode()
    assert FINGERPRINTS[0] in page


def test_the_key_text_is_shown_but_cannot_be_edited(staff_client, alices_key):
    response = staff_client.get(f"/admin/accounts/sshkey/{alices_key.pk}/change/")

    assert response.status_code == 200
    assert PUBLIC_KEYS[0] in response.content.decode()
    assert 'name="public_key"' not in response.content.decode()


def test_staff_cannot_add_a_key_in_the_admin(staff_client, db):
    assert staff_client.get("/admin/accounts/sshkey/add/").status_code == 403
