"""A failure reaches the person where they look: on the page of what failed, in plain words,
with what they can do next."""

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.factories import snapshot_row, vm_row
from vms.models import VM, VMState

pytestmark = [pytest.mark.libvirt, pytest.mark.worker]


def test_a_failed_create_stays_on_its_page_with_the_reason_and_can_be_deleted(
    page, live_worker, image, alice
):
    # A snapshot whose layer's file is gone from the pool: a VM from it cannot be built.
    broken = snapshot_row(vm_row(owner=alice, image=image, name="old"), name="Broken base")
    log_in(page, "alice")
    page.goto(f"/vms/new/?snapshot={broken.pk}")
    page.get_by_label("Name").fill("from-broken")
    page.get_by_role("button", name="Create VM").click()

    failed = page.get_by_test_id("vm-create-failed")
    expect(failed).to_contain_text("Creating this VM failed:", timeout=60_000)
    expect(failed).to_contain_text("try again, and if it fails again")
    expect(page.get_by_test_id("vm-state")).to_have_text("Failed")
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    assert "libvirt" not in failed.inner_text().lower()  # the backend's words are for staff
    vm = VM.objects.get(name="from-broken")
    assert (vm.state, vm.active_layer) == (VMState.FAILED, None)

    page.get_by_role("button", name="Delete").click()
    page.locator("#delete-vm").get_by_role("button", name="Delete VM").click()
    expect(page.get_by_role("heading", name="Your VMs")).to_be_visible()
    expect(page.get_by_role("link", name="from-broken")).to_have_count(0, timeout=30_000)
