"""Sign-up follows SIGNUP (open, invitation, closed), SIGNUP_RATE per address, SIGNUP_PLAN."""

import pytest
from django.test import Client

from accounts.models import User
from tests.factories import snapshot_row, vm_row

PASSWORD = "S3cure-passphrase!"


def sign_up(client, username="dora", **extra):
    form = {
        "username": username,
        "email": f"{username}@example.com",
        "password1": PASSWORD,
        "password2": PASSWORD,
        **extra,
    }
    return client.post("/signup/", form)


@pytest.fixture
def invitation(alice):
    from sharing.services import invitation_create

    snapshot = snapshot_row(vm_row(owner=alice), name="Class image")
    return invitation_create(snapshot=snapshot, max_uses=1)


def test_open_sign_up_creates_an_account_and_logs_in(client, plans, settings):
    settings.SIGNUP = "open"
    response = sign_up(client)
    assert response.status_code == 302
    assert User.objects.filter(username="dora").exists()
    assert client.get("/").wsgi_request.user.username == "dora"


def test_new_accounts_get_the_free_plan_by_default(client, plans):
    sign_up(client)
    assert User.objects.get(username="dora").plan.slug == "free"


def test_new_accounts_get_the_plan_signup_plan_names(client, plans, settings):
    settings.SIGNUP_PLAN = "hobbyist"
    sign_up(client)
    assert User.objects.get(username="dora").plan.slug == "hobbyist"


def test_a_signup_plan_that_does_not_exist_refuses_rather_than_gives_a_larger_one(
    client, plans, settings
):
    settings.SIGNUP_PLAN = "no-such-plan"
    response = sign_up(client)
    assert response.status_code == 200
    assert "Sign-up is not available right now" in response.content.decode()
    assert not User.objects.filter(username="dora").exists()


def test_sign_ups_past_the_rate_from_one_address_are_refused(plans, settings):
    settings.SIGNUP_RATE = "2/hour"
    client = Client(REMOTE_ADDR="203.0.113.5")
    assert sign_up(client, "one").status_code == 302
    client.logout()
    assert sign_up(client, "two").status_code == 302
    client.logout()
    refused = sign_up(client, "three")
    assert refused.status_code == 429
    assert "Too many sign-ups from your address; try again in" in refused.content.decode()
    assert not User.objects.filter(username="three").exists()


def test_the_sign_up_rate_of_one_address_leaves_others_alone(plans, settings):
    settings.SIGNUP_RATE = "1/hour"
    assert sign_up(Client(REMOTE_ADDR="203.0.113.5"), "one").status_code == 302
    assert sign_up(Client(REMOTE_ADDR="198.51.100.7"), "two").status_code == 302


def test_closed_sign_up_says_so_and_creates_nothing(client, plans, settings):
    settings.SIGNUP = "closed"
    page = client.get("/signup/")
    assert "Sign-up is closed" in page.content.decode()
    assert sign_up(client).status_code == 403
    assert not User.objects.filter(username="dora").exists()


def test_closed_sign_up_hides_the_link_on_the_login_page(client, settings):
    settings.SIGNUP = "closed"
    assert 'href="/signup/' not in client.get("/login/").content.decode()
    settings.SIGNUP = "open"
    assert 'href="/signup/' in client.get("/login/").content.decode()


def test_invitation_sign_up_without_a_code_is_refused(client, plans, settings):
    settings.SIGNUP = "invitation"
    response = sign_up(client)
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert not User.objects.filter(username="dora").exists()


def test_invitation_sign_up_with_an_unknown_code_is_refused(client, plans, settings):
    settings.SIGNUP = "invitation"
    response = sign_up(client, invitation_code="made-up")
    assert "No invitation has this code" in response.content.decode()
    assert not User.objects.filter(username="dora").exists()


def test_invitation_sign_up_with_a_valid_code_joins_what_it_shares(client, invitation, settings):
    from sharing.selectors import shared_with

    settings.SIGNUP = "invitation"
    assert sign_up(client, invitation_code=invitation.code).status_code == 302
    dora = User.objects.get(username="dora")
    assert list(shared_with(dora)) == [invitation.snapshot]


def test_a_used_up_invitation_creates_no_account(client, invitation, settings):
    settings.SIGNUP = "invitation"
    assert sign_up(client, "first", invitation_code=invitation.code).status_code == 302
    client.logout()
    response = sign_up(client, "second", invitation_code=invitation.code)
    assert response.status_code == 200
    assert "all have joined" in response.content.decode()
    assert not User.objects.filter(username="second").exists()
