"""A person sets, switches off and removes a VM's snapshot schedule in a real browser. The VM is a
row of its own (no guest boots, no worker runs): only the pages and the policy row are at stake."""

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone
from playwright.sync_api import expect

from schedules.models import SnapshotPolicy
from schedules.services import policy_set
from tests.browser.conftest import log_in
from tests.factories import vm_row

NO_SCHEDULE = "No schedule: snapshots are taken only when you take them."


def test_a_daily_schedule_saved_on_its_page_shows_on_the_vm_page_with_its_next_run(page, alice):
    vm = vm_row(owner=alice, name="web")
    log_in(page, "alice")
    page.goto(f"/vms/{vm.pk}/")
    card = page.locator("#snapshot-policy")
    expect(card).to_contain_text(NO_SCHEDULE)

    card.get_by_role("link", name="Set a schedule").click()
    expect(page.get_by_role("heading", name="Snapshot schedule of web")).to_be_visible()
    expect(page.get_by_label("Take snapshots on schedule")).to_be_checked()
    page.get_by_label("Schedule", exact=True).fill("daily at 03:30")
    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_label("Keep daily").fill("7")
    page.get_by_label("Keep weekly").fill("4")
    page.get_by_role("button", name="Save schedule").click()

    expect(page).to_have_url(re.compile(rf"/vms/{vm.pk}/$"))
    expect(page.get_by_text("The snapshot policy of web is saved.")).to_be_visible()
    expect(card.locator(".badge")).to_have_text("on")
    expect(card).to_contain_text("daily at 03:30 (Europe/Berlin)")
    expect(card).to_contain_text("keep daily 7 weekly 4")
    expect(card.get_by_role("link", name="Change schedule")).to_be_visible()

    policy = SnapshotPolicy.objects.get(vm=vm)
    assert (policy.owner, policy.enabled, policy.cron) == (alice, True, "30 3 * * *")
    assert (policy.schedule, policy.timezone) == ("daily at 03:30", "Europe/Berlin")
    assert (policy.keep_daily, policy.keep_weekly) == (7, 4)
    others = [policy.keep_last, policy.keep_hourly, policy.keep_monthly, policy.keep_yearly]
    assert others == [0, 0, 0, 0]
    # The next run is 03:30 in Berlin, within a day; the page gives it in the policy's own zone.
    in_berlin = policy.next_run_at.astimezone(ZoneInfo("Europe/Berlin"))
    assert (in_berlin.hour, in_berlin.minute) == (3, 30)
    assert timezone.now() < policy.next_run_at <= timezone.now() + timedelta(days=1)
    shown = in_berlin.strftime("%Y-%m-%d %H:%M")
    expect(page.locator("#policy-next-run")).to_contain_text(f"Next run: {shown} Europe/Berlin")


def test_a_next_run_in_another_zone_than_the_browsers_also_says_the_readers_time(
    browser, live_server, alice
):
    vm = vm_row(owner=alice, name="web")
    policy = policy_set(vm=vm, enabled=True, schedule="daily at 03:30", timezone_name="Asia/Tokyo")
    context = browser.new_context(base_url=live_server.url, timezone_id="America/New_York")
    try:
        page = context.new_page()
        log_in(page, "alice")
        page.goto(f"/vms/{vm.pk}/")
        in_new_york = policy.next_run_at.astimezone(ZoneInfo("America/New_York"))
        next_run = page.locator("#policy-next-run")
        expect(next_run).to_contain_text("03:30 Asia/Tokyo")
        expect(next_run).to_contain_text(f"({in_new_york:%H:%M} your time)")
    finally:
        context.close()


def test_a_next_run_in_the_browsers_own_zone_says_it_once(browser, live_server, alice):
    vm = vm_row(owner=alice, name="web")
    policy_set(vm=vm, enabled=True, schedule="daily at 03:30", timezone_name="Asia/Tokyo")
    context = browser.new_context(base_url=live_server.url, timezone_id="Asia/Tokyo")
    try:
        page = context.new_page()
        log_in(page, "alice")
        page.goto(f"/vms/{vm.pk}/")
        expect(page.locator("#policy-next-run time")).to_have_attribute("data-local", "")
        expect(page.locator("#policy-next-run")).not_to_contain_text("your time")
    finally:
        context.close()


def test_a_schedule_is_switched_off_then_removed_from_the_vm_page(page, alice):
    vm = vm_row(owner=alice, name="web")
    policy = policy_set(
        vm=vm, enabled=True, schedule="weekly on sun at 04:00", timezone_name="UTC", keep_last=3
    )
    log_in(page, "alice")
    page.goto(f"/vms/{vm.pk}/")
    card = page.locator("#snapshot-policy")
    expect(card).to_contain_text("weekly on sun at 04:00 (UTC)")
    expect(page.locator("#policy-next-run")).to_be_visible()

    # Switched off: the schedule is kept, but nothing runs.
    card.get_by_role("link", name="Change schedule").click()
    expect(page.get_by_label("Schedule", exact=True)).to_have_value("weekly on sun at 04:00")
    expect(page.get_by_label("Keep last")).to_have_value("3")
    page.get_by_label("Take snapshots on schedule").uncheck()
    page.get_by_role("button", name="Save schedule").click()

    expect(page.get_by_text("The snapshot policy of web is saved.")).to_be_visible()
    expect(card.locator(".badge")).to_have_text("off")
    expect(card).to_contain_text("weekly on sun at 04:00 (UTC)")
    expect(page.locator("#policy-next-run")).to_have_count(0)
    policy.refresh_from_db()
    assert (policy.enabled, policy.next_run_at, policy.keep_last) == (False, None, 3)

    # Removed: the VM is back to snapshots taken by hand.
    card.get_by_role("link", name="Change schedule").click()
    page.get_by_role("button", name="Remove schedule").click()

    expect(page).to_have_url(re.compile(rf"/vms/{vm.pk}/$"))
    expect(page.get_by_text("web no longer takes snapshots on schedule.")).to_be_visible()
    expect(card).to_contain_text(NO_SCHEDULE)
    expect(card.get_by_role("link", name="Set a schedule")).to_be_visible()
    assert not SnapshotPolicy.objects.filter(vm=vm).exists()
