"""Forms as a person meets them in a real browser: where they lead, and how they are laid out."""

import re

import pytest
from playwright.sync_api import expect

from sharing.services import invitation_create
from tests.browser.conftest import log_in
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


# Layout, measured in the page rather than compared with screenshots: a field shows its whole
# value, a checkbox sits on its label's line, a button keeps its size, a badge stays on one line.

CUT = "el => el.scrollWidth > el.clientWidth"
MIDDLE_OFFSET = """([box, label]) => {
    const a = box.getBoundingClientRect(), b = label.getBoundingClientRect();
    return Math.abs((a.top + a.bottom) / 2 - (b.top + b.bottom) / 2);
}"""
LINES = """el => {
    const style = getComputedStyle(el);
    const inner = el.getBoundingClientRect().height - parseFloat(style.paddingTop)
        - parseFloat(style.paddingBottom) - parseFloat(style.borderTopWidth)
        - parseFloat(style.borderBottomWidth);
    return Math.round(inner / parseFloat(style.lineHeight));
}"""


def middle_offset(checkbox, label) -> float:
    return checkbox.page.evaluate(
        MIDDLE_OFFSET, [checkbox.element_handle(), label.element_handle()]
    )


@pytest.fixture
def vm_page(page, alice):
    from snapshots.models import Snapshot, SnapshotKind

    vm = vm_row(owner=alice, name="workbench")
    undo = snapshot_row(vm, name="Before restoring Snapshot 2026-12-04 09:41")
    Snapshot.objects.filter(pk=undo.pk).update(kind=SnapshotKind.BEFORE_RESTORE)
    log_in(page, "alice")
    page.goto(f"/vms/{vm.pk}/")
    return page, undo


def test_the_snapshot_name_field_shows_its_whole_default(vm_page):
    page, _ = vm_page
    field = page.get_by_label("Snapshot name")
    assert field.input_value().startswith("Snapshot 20")
    assert not field.evaluate(CUT)


def test_the_include_memory_box_sits_on_its_labels_line(vm_page):
    page, _ = vm_page
    box = page.locator("#include-memory")
    assert middle_offset(box, box.locator("xpath=..")) <= 2


def test_the_undo_point_badge_stays_on_one_line(vm_page):
    page, undo = vm_page
    page.set_viewport_size({"width": 720, "height": 900})  # narrow, all columns still shown
    badge = page.locator(f"#snapshot-{undo.pk}").get_by_text("Undo point", exact=True)
    expect(badge).to_be_visible()
    assert badge.evaluate(LINES) == 1


def test_the_full_copy_box_sits_at_the_start_of_its_label(vm_page):
    page, undo = vm_page
    page.evaluate("id => document.getElementById(id).showModal()", f"newvm-{undo.pk}")
    box = page.locator(f"#newvm-{undo.pk} input[name=full_copy]")
    label = box.locator("xpath=..")
    assert box.bounding_box()["x"] - label.bounding_box()["x"] <= 2
    assert middle_offset(box, label) <= 2


def test_compares_button_keeps_its_size_and_its_choice_is_not_cut(page, alice):
    vm = vm_row(owner=alice)
    older = snapshot_row(vm, name="Snapshot 2026-12-04 09:41")
    newer = snapshot_row(vm, name="Snapshot 2026-12-04 10:15")
    log_in(page, "alice")
    page.goto(f"/snapshots/{newer.pk}/compare/")
    button = page.get_by_role("button", name="Compare")
    assert button.bounding_box()["width"] < 150
    choice = page.get_by_label("Compare with")
    assert older.name in choice.evaluate("el => el.selectedOptions[0].text")
    text_width = choice.evaluate(
        """el => {
            const context = document.createElement("canvas").getContext("2d");
            context.font = getComputedStyle(el).font;
            return context.measureText(el.selectedOptions[0].text).width;
        }"""
    )
    assert text_width + 24 <= choice.evaluate("el => el.clientWidth")  # room for the arrow


def test_the_invitations_table_keeps_apart_from_the_next_field(page, alice):
    snapshot = snapshot_row(vm_row(owner=alice))
    invitation_create(snapshot=snapshot)
    log_in(page, "alice")
    page.goto(f"/snapshots/{snapshot.pk}/share/")
    table = page.get_by_test_id("invitations").locator("table")
    label = page.get_by_test_id("invitations").locator("form label").first
    assert (
        label.bounding_box()["y"] - (table.bounding_box()["y"] + table.bounding_box()["height"])
        >= 8
    )
