"""SSH keys as a person manages them in a real browser: add one, find its fingerprint, delete it."""

from playwright.sync_api import expect

from accounts.models import SshKey
from tests.browser.conftest import log_in
from tests.factories import FINGERPRINTS, PUBLIC_KEYS


def test_a_key_is_added_listed_with_its_fingerprint_and_deleted_after_confirming(page, alice):
    log_in(page, "alice")
    page.get_by_role("link", name="SSH keys").click()
    expect(page.get_by_role("heading", name="SSH keys")).to_be_visible()

    # A refusal first: it stands beside the key's field, and what was typed stays.
    page.get_by_label("Key").fill("ssh-dss AAAAB3NzaC1kc3M= old@box")
    page.get_by_role("button", name="Add key").click()
    field = page.locator(".field.has-error")
    expect(field).to_contain_text("DSA keys are no longer accepted by OpenSSH")
    expect(page.get_by_label("Key")).to_have_value("ssh-dss AAAAB3NzaC1kc3M= old@box")

    page.get_by_label("Title").fill("Laptop")
    page.get_by_label("Key").fill(PUBLIC_KEYS[0])
    page.get_by_role("button", name="Add key").click()
    row = page.get_by_role("row", name="Laptop")
    expect(row).to_contain_text(FINGERPRINTS[0])
    expect(row).to_contain_text("ssh-ed25519")

    # Cancel keeps the key; confirming deletes it.
    row.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Delete “Laptop”?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert SshKey.objects.filter(owner=alice).count() == 1

    row.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete key").click()
    expect(page.get_by_text("SSH key 'Laptop' deleted.")).to_be_visible()
    expect(page.get_by_text(FINGERPRINTS[0])).to_have_count(0)
    expect(page.get_by_text("No SSH keys yet.")).to_be_visible()
    assert not SshKey.objects.filter(owner=alice).exists()
