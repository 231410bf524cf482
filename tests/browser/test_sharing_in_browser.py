"""A person shares a snapshot in a real browser, by username and by an invitation another person
redeems in a browser of their own. The snapshot is a row of its own: no guest boots."""

import re

from playwright.sync_api import expect

from sharing.models import Share
from tests.browser.conftest import log_in
from tests.factories import snapshot_row, vm_row


def test_a_snapshot_shared_by_username_shows_in_the_recipients_shared_with_me(
    browser, live_server, page, alice, bob
):
    snapshot = snapshot_row(vm_row(owner=alice, name="web"), "Golden")
    log_in(page, "alice")
    page.goto(f"/snapshots/{snapshot.pk}/share/")
    page.get_by_label("Username").fill("bob")
    page.get_by_role("button", name="Share", exact=True).click()
    expect(page.get_by_text("bob can now start VMs from 'Golden'.")).to_be_visible()
    expect(page.locator('[data-recipient="bob"]')).to_contain_text("by username")

    context = browser.new_context(base_url=live_server.url)
    try:
        bobs = context.new_page()
        log_in(bobs, "bob")
        bobs.get_by_role("link", name="Shared with me").click()
        row = bobs.locator('[data-snapshot="Golden"]')
        expect(row).to_contain_text("alice")
        expect(row.get_by_role("link", name="New VM")).to_be_visible()
    finally:
        context.close()


def test_an_invitation_created_by_one_person_is_redeemed_by_another_in_their_own_browser(
    browser, live_server, page, alice, bob
):
    snapshot = snapshot_row(vm_row(owner=alice, name="web"), "Course image")
    log_in(page, "alice")
    page.goto(f"/snapshots/{snapshot.pk}/share/")
    page.get_by_role("button", name="Create invitation").click()
    expect(
        page.get_by_text("Invitation created: give its link or code to your class.")
    ).to_be_visible()
    link = page.get_by_test_id("invitation-link").get_attribute("href")
    assert re.fullmatch(r"/shared/join/[^/]+/", link)

    context = browser.new_context(base_url=live_server.url)
    try:
        bobs = context.new_page()
        log_in(bobs, "bob")
        bobs.goto(link)
        expect(bobs.get_by_role("heading", name="Join “Course image”")).to_be_visible()
        bobs.get_by_role("button", name="Join").click()
        expect(bobs).to_have_url(re.compile(r"/shared/$"))
        expect(bobs.locator('[data-snapshot="Course image"]')).to_contain_text("alice")
    finally:
        context.close()

    assert Share.objects.filter(snapshot=snapshot, recipient=bob).exists()
    page.reload()
    expect(page.locator('[data-recipient="bob"]')).to_contain_text("invitation")
