"""The page a person was sent to log in from (`next`) survives the links between log-in and
sign-up both ways and is where sign-up lands; a `next` that leaves the site is dropped."""

import re
from html import unescape
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from accounts.models import User
from tests.accounts.test_signup import sign_up
from tests.factories import snapshot_row, vm_row

JOIN = "/shared/join/some-code/"
ELSEWHERE = "https://evil.example/steal"


@pytest.fixture
def invitation(alice):
    from sharing.services import invitation_create

    return invitation_create(snapshot=snapshot_row(vm_row(owner=alice), name="Class image"))


@pytest.fixture(autouse=True)
def open_signup(settings):
    settings.SIGNUP = "open"


def page(client, url):
    return client.get(url).content.decode()


def next_of_link(html: str, path: str) -> str | None:
    """The `next` that the page's link to `path` carries (None for a link without one)."""
    hrefs = [unescape(h) for h in re.findall(r'href="([^"]*)"', html)]
    links = [h for h in hrefs if urlsplit(h).path == path]
    assert links, f"no link to {path}"
    return parse_qs(urlsplit(links[0]).query).get("next", [None])[0]


def test_an_invitation_link_opened_logged_out_sends_to_log_in_with_next(client, db):
    response = client.get(JOIN)
    assert response.status_code == 302
    assert parse_qs(urlsplit(response["Location"]).query)["next"] == [JOIN]


def test_the_log_in_page_links_to_sign_up_with_next(client, db):
    html = page(client, f"/login/?next={quote(JOIN)}")
    assert next_of_link(html, "/signup/") == JOIN


def test_the_sign_up_page_links_to_log_in_with_next(client, db):
    html = page(client, f"/signup/?next={quote(JOIN)}")
    assert next_of_link(html, "/login/") == JOIN


def test_the_closed_sign_up_page_links_to_log_in_with_next(client, db, settings):
    settings.SIGNUP = "closed"
    html = page(client, f"/signup/?next={quote(JOIN)}")
    assert "Sign-up is closed" in html
    assert next_of_link(html, "/login/") == JOIN


def test_the_sign_up_form_carries_next(client, db):
    html = page(client, f"/signup/?next={quote(JOIN)}")
    assert f'name="next" value="{JOIN}"' in html


def test_sign_up_lands_on_next(client, plans):
    response = sign_up(client, next=JOIN)
    assert response.status_code == 302
    assert response["Location"] == JOIN


def test_sign_up_without_next_lands_on_the_dashboard(client, plans):
    response = sign_up(client)
    assert response["Location"] == "/"


@pytest.mark.parametrize(
    "unsafe", [ELSEWHERE, "//evil.example/", "/\\evil.example/", "javascript:alert(1)"]
)
def test_sign_up_refuses_a_next_that_leaves_the_site(client, plans, unsafe):
    response = sign_up(client, next=unsafe)
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert User.objects.filter(username="dora").exists()


def test_the_sign_up_page_drops_a_next_that_leaves_the_site(client, db):
    html = page(client, f"/signup/?next={quote(ELSEWHERE)}")
    assert "evil.example" not in html


def test_the_log_in_page_drops_a_next_that_leaves_the_site(client, db):
    html = page(client, f"/login/?next={quote(ELSEWHERE)}")
    assert "evil.example" not in html


def test_a_logged_in_visitor_of_sign_up_goes_on_to_next(client, alice):
    client.force_login(alice)
    response = client.get(f"/signup/?next={quote(JOIN)}")
    assert response["Location"] == JOIN


def test_invitation_sign_up_from_an_invitation_link_fills_in_its_code(client, invitation, settings):
    settings.SIGNUP = "invitation"
    link = f"/shared/join/{invitation.code}/"
    html = page(client, f"/signup/?next={quote(link)}")
    assert f'value="{invitation.code}"' in html


def test_invitation_sign_up_from_an_invitation_link_lands_on_it(client, invitation, settings):
    settings.SIGNUP = "invitation"
    link = f"/shared/join/{invitation.code}/"
    response = sign_up(client, next=link, invitation_code=invitation.code)
    assert response["Location"] == link
    landed = client.get(link)
    assert landed.status_code == 200
    assert "Class image" in landed.content.decode()
