"""Forms as a person meets them in a real browser: where they lead, and how they are laid out."""

import re

import pytest
from playwright.sync_api import expect

from sharing.services import invitation_create
from tests.factories import snapshot_row, vm_row


@pytest.mark.parametrize("signup", ["open", "invitation"])
def test_a_newcomer_signs_up_from_an_invitation_link_and_lands_on_it(page, alice, settings, signup):
    settings.SIGNUP = signup  # with "invitation" the link's code is filled in for them
    snapshot = snapshot_row(vm_row(owner=alice), name="Class image")
    link = f"/shared/join/{invitation_create(snapshot=snapshot).code}/"

    page.goto(link)
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Username").fill("dora")
    page.get_by_label("Email address").fill("dora@example.com")
    page.get_by_label("Password", exact=True).fill("S3cure-passphrase!")
    page.get_by_label("Password confirmation").fill("S3cure-passphrase!")
    page.get_by_role("button", name="Sign up").click()

    expect(page).to_have_url(re.compile(re.escape(link) + "$"))
    expect(page.get_by_role("heading", name="Join “Class image”")).to_be_visible()
    page.get_by_role("button", name="Join").click()
    expect(page.get_by_text("alice shares 'Class image' with you")).to_be_visible()
