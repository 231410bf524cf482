import pytest
from rest_framework.test import APIClient

from accounts.services import token_create


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def alice_api(alice):
    client = APIClient()
    _token, key = token_create(user=alice, name="tests")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def bob_api(bob):
    client = APIClient()
    _token, key = token_create(user=bob, name="tests")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client
