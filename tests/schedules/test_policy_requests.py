"""Setting a snapshot policy and pinning snapshots through the pages and the API."""

from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from rest_framework.test import APIClient

from schedules.models import SnapshotPolicy
from schedules.services import policy_set
from tests.factories import snapshot_row, vm_row

POLICY = {
    "enabled": True,
    "schedule": "daily at 03:30",
    "timezone": "Europe/Berlin",
    "keep_daily": 7,
    "keep_weekly": 4,
}


@pytest.fixture
def vm(alice):
    return vm_row(owner=alice, name="web")


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.django_db
def test_the_policy_page_saves_a_policy_and_the_vm_page_shows_its_next_run(alice, vm):
    client = signed_in(alice)
    form = {**POLICY, "enabled": "on", "keep_last": 0, "keep_hourly": 0}
    form.update(keep_monthly=0, keep_yearly=0)
    response = client.post(f"/vms/{vm.pk}/policy/", form)
    assert response.status_code == 302

    policy = SnapshotPolicy.objects.get(vm=vm)
    assert (policy.cron, policy.keep_daily, policy.keep_weekly) == ("30 3 * * *", 7, 4)
    page = client.get(f"/vms/{vm.pk}/").content.decode()
    assert "daily at 03:30 (Europe/Berlin)" in page
    assert 'id="policy-next-run"' in page


@pytest.mark.django_db
def test_a_schedule_that_means_nothing_is_shown_beside_the_field(alice, vm):
    form = {**POLICY, "schedule": "every so often", "enabled": "on"}
    form.update(keep_last=0, keep_hourly=0, keep_monthly=0, keep_yearly=0)
    response = signed_in(alice).post(f"/vms/{vm.pk}/policy/", form)
    assert response.status_code == 200
    assert "cron expression" in response.content.decode()
    assert not SnapshotPolicy.objects.exists()


@pytest.mark.django_db
def test_another_users_vm_policy_is_a_404(alice, bob, vm):
    assert signed_in(bob).get(f"/vms/{vm.pk}/policy/").status_code == 404
    assert signed_in(bob).post(f"/vms/{vm.pk}/policy/delete/").status_code == 404
    assert api_as(bob).put(f"/api/vms/{vm.pk}/policy/", POLICY, format="json").status_code == 404


@pytest.mark.django_db
def test_the_api_sets_reads_and_removes_a_policy(alice, vm):
    api = api_as(alice)
    assert api.get(f"/api/vms/{vm.pk}/policy/").status_code == 404

    response = api.put(f"/api/vms/{vm.pk}/policy/", POLICY, format="json")
    assert response.status_code == 200, response.json()
    body = api.get(f"/api/vms/{vm.pk}/policy/").json()
    assert body["cron"] == "30 3 * * *" and body["keep_daily"] == 7
    assert body["next_run_at"] is not None

    assert api.delete(f"/api/vms/{vm.pk}/policy/").status_code == 204
    assert not SnapshotPolicy.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [("schedule", "now and then"), ("timezone", "Mars/Olympus"), ("keep_daily", -1)],
)
def test_the_api_refuses_a_bad_policy_with_400(alice, vm, field, value):
    response = api_as(alice).put(
        f"/api/vms/{vm.pk}/policy/", {**POLICY, field: value}, format="json"
    )
    assert response.status_code == 400
    assert field in str(response.json())
    assert not SnapshotPolicy.objects.exists()


@pytest.mark.django_db
def test_a_snapshot_is_pinned_and_unpinned_from_its_vm_page_and_the_api(alice, vm):
    snapshot = snapshot_row(vm)
    client = signed_in(alice)
    client.post(f"/snapshots/{snapshot.pk}/pin/", {"pinned": "1"})
    snapshot.refresh_from_db()
    assert snapshot.pinned
    assert "Unpin" in client.get(f"/vms/{vm.pk}/").content.decode()

    response = api_as(alice).patch(
        f"/api/snapshots/{snapshot.pk}/", {"pinned": False}, format="json"
    )
    assert response.status_code == 200 and response.json()["pinned"] is False
    snapshot.refresh_from_db()
    assert not snapshot.pinned


@pytest.mark.django_db
def test_another_users_snapshot_cannot_be_pinned(alice, bob, vm):
    snapshot = snapshot_row(vm)
    assert signed_in(bob).post(f"/snapshots/{snapshot.pk}/pin/", {"pinned": "1"}).status_code == 404
    snapshot.refresh_from_db()
    assert not snapshot.pinned


@pytest.mark.django_db
def test_an_admin_adds_a_policy_whose_next_run_is_computed(charlie, alice, vm):
    client = signed_in(charlie)
    form = {"vm": vm.pk, "enabled": "on", "schedule": "hourly", "timezone": "UTC"}
    form.update({field: 0 for field in ("keep_last", "keep_hourly", "keep_daily")})
    form.update({field: 0 for field in ("keep_weekly", "keep_monthly", "keep_yearly")})
    form.update({"runs-TOTAL_FORMS": 0, "runs-INITIAL_FORMS": 0})
    response = client.post("/admin/schedules/snapshotpolicy/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]

    policy = SnapshotPolicy.objects.get(vm=vm)
    assert policy.owner == alice and policy.cron == "0 * * * *"
    assert policy.next_run_at is not None
    assert client.get(f"/admin/schedules/snapshotpolicy/{policy.pk}/change/").status_code == 200


@pytest.mark.django_db
def test_the_admin_shows_a_bad_schedule_beside_the_field(charlie, vm):
    form = {"vm": vm.pk, "enabled": "on", "schedule": "whenever", "timezone": "UTC"}
    form.update({"runs-TOTAL_FORMS": 0, "runs-INITIAL_FORMS": 0, "keep_last": 1})
    response = signed_in(charlie).post("/admin/schedules/snapshotpolicy/add/", form)
    assert response.status_code == 200
    assert "cron expression" in response.content.decode()
    assert not SnapshotPolicy.objects.exists()


@pytest.mark.django_db
def test_the_next_run_is_shown_in_the_policys_own_time_zone(alice, vm):
    policy = policy_set(vm=vm, enabled=True, schedule="daily at 03:30", timezone_name="Asia/Tokyo")
    page = signed_in(alice).get(f"/vms/{vm.pk}/").content.decode()
    iso = policy.next_run_at.astimezone(ZoneInfo("Asia/Tokyo")).isoformat()
    assert f'<time datetime="{iso}" data-zone="Asia/Tokyo">' in page
    start = page.index("<time datetime=")
    assert page[start : page.index("</time>", start)].endswith(" 03:30 Asia/Tokyo"), page[
        start : start + 200
    ]
