"""Sharing a snapshot, by username and by invitation code, through the services, the pages and
the API. alice owns the snapshot (the teacher), bob is shared with (a student), charlie has no
share (an administrator, who like anyone sees other people's things in the admin only)."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Plan
from accounts.services import plan_change
from core.errors import InvalidState, LimitExceeded
from sharing import services
from sharing.models import Invitation, Share
from sharing.selectors import shared_with
from snapshots.models import SnapshotOperationKind
from snapshots.selectors import usage_for
from tests.factories import snapshot_row, vm_row
from vms.models import VM, vm_id_of_lock

pytestmark = pytest.mark.django_db


@pytest.fixture
def snapshot(alice):
    return snapshot_row(vm_row(owner=alice, name="class-template"), name="lesson 1")


@pytest.fixture
def code(snapshot):
    return services.invitation_create(snapshot=snapshot).code


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


# Services: who gets a share and when


def test_sharing_by_username_lets_the_user_see_the_snapshot(snapshot, bob, charlie):
    services.share_create(snapshot=snapshot, username="bob")
    assert list(shared_with(bob)) == [snapshot]
    assert list(shared_with(charlie)) == []


def test_an_unknown_username_is_refused_with_a_sentence(snapshot):
    with pytest.raises(ValidationError) as refused:
        services.share_create(snapshot=snapshot, username="nobody")
    assert "No user is called 'nobody'" in refused.value.message_dict["username"][0]


def test_sharing_with_oneself_is_refused(snapshot, alice):
    with pytest.raises(ValidationError):
        services.share_create(snapshot=snapshot, username="alice")


def test_redeeming_a_code_shares_the_snapshot(snapshot, code, bob):
    share = services.invitation_redeem(code=code, user=bob)
    assert share.snapshot == snapshot and share.recipient == bob
    assert list(shared_with(bob)) == [snapshot]


def test_one_code_serves_a_whole_class(snapshot, code, bob, charlie):
    services.invitation_redeem(code=code, user=bob)
    services.invitation_redeem(code=code, user=charlie)
    assert Share.objects.active().filter(snapshot=snapshot).count() == 2
    assert Invitation.objects.get(code=code).uses == 2


def test_redeeming_twice_gives_the_same_share_and_uses_nothing(code, bob):
    first = services.invitation_redeem(code=code, user=bob)
    again = services.invitation_redeem(code=f"  {code} ", user=bob)
    assert again.pk == first.pk
    assert Invitation.objects.get(code=code).uses == 1


def test_codes_are_random_and_unguessable(snapshot):
    codes = {services.invitation_create(snapshot=snapshot).code for _ in range(20)}
    assert len(codes) == 20
    assert all(len(code) >= 24 for code in codes)


def test_an_unknown_code_is_refused_with_a_sentence(code, bob):
    with pytest.raises(services.UnknownInvitation) as refused:
        services.invitation_redeem(code="not-a-code", user=bob)
    assert "ask the snapshot's owner for a new one" in refused.value.message


def test_the_owner_cannot_redeem_their_own_code(code, alice):
    with pytest.raises(ValidationError):
        services.invitation_redeem(code=code, user=alice)


def test_an_expired_code_is_refused(snapshot, bob):
    now = timezone.now()
    invitation = services.invitation_create(snapshot=snapshot, expires_at=now + timedelta(hours=1))
    with pytest.raises(InvalidState, match="expired"):
        services.invitation_redeem(code=invitation.code, user=bob, now=now + timedelta(hours=2))


def test_a_code_for_one_person_takes_only_one(snapshot, bob, charlie):
    invitation = services.invitation_create(snapshot=snapshot, max_uses=1)
    services.invitation_redeem(code=invitation.code, user=bob)
    with pytest.raises(InvalidState, match="all have joined"):
        services.invitation_redeem(code=invitation.code, user=charlie)


def test_revoking_an_invitation_stops_the_code_and_ends_its_shares(snapshot, code, bob):
    services.invitation_redeem(code=code, user=bob)
    ended = services.invitation_revoke(invitation=Invitation.objects.get(code=code))
    assert ended == 1
    assert list(shared_with(bob)) == []
    with pytest.raises(services.UnknownInvitation):
        services.invitation_redeem(code=code, user=bob)


def test_a_new_code_renews_a_share_its_old_invitation_ended(snapshot, code, bob):
    services.invitation_redeem(code=code, user=bob)
    services.invitation_revoke(invitation=Invitation.objects.get(code=code))
    new_code = services.invitation_create(snapshot=snapshot).code
    services.invitation_redeem(code=new_code, user=bob)
    assert list(shared_with(bob)) == [snapshot]


def test_a_code_does_not_bring_back_a_share_the_owner_revoked(snapshot, code, bob):
    share = services.invitation_redeem(code=code, user=bob)
    services.share_revoke(share=share)
    with pytest.raises(InvalidState, match="stopped sharing"):
        services.invitation_redeem(code=code, user=bob)
    assert list(shared_with(bob)) == []


def test_sharing_by_username_again_renews_a_revoked_share(snapshot, bob):
    share = services.share_create(snapshot=snapshot, username="bob")
    services.share_revoke(share=share)
    assert services.share_create(snapshot=snapshot, username="bob").pk == share.pk
    assert list(shared_with(bob)) == [snapshot]


def test_a_deleted_snapshot_is_no_longer_shared(snapshot, bob):
    from snapshots.services import snapshot_delete

    services.share_create(snapshot=snapshot, username="bob")
    snapshot_delete(snapshot=snapshot, user=snapshot.owner)
    assert list(shared_with(bob)) == []


# New VMs from a shared snapshot


def test_the_recipient_starts_a_vm_of_their_own_on_the_snapshot(snapshot, bob):
    services.share_create(snapshot=snapshot, username="bob")
    operation = services.shared_new_vm(snapshot=snapshot, user=bob, name="my-copy")
    vm = VM.objects.get(pk=vm_id_of_lock(operation.lock))
    assert (vm.owner, vm.source_snapshot) == (bob, snapshot)
    assert operation.owner == bob and operation.kind == SnapshotOperationKind.NEW_VM


def test_a_deleted_shared_snapshot_leaves_the_recipients_vm_pointing_at_none_of_the_owners(
    snapshot, bob
):
    from snapshots.services import snapshot_delete

    older = snapshot_row(snapshot.source_vm, name="older")
    snapshot.parent = older
    snapshot.save(update_fields=["parent"])
    services.share_create(snapshot=snapshot, username="bob")
    operation = services.shared_new_vm(snapshot=snapshot, user=bob, name="my-copy")
    vm = VM.objects.get(pk=vm_id_of_lock(operation.lock))
    VM.objects.filter(pk__in=[vm.pk, snapshot.source_vm_id]).update(current_snapshot=snapshot)
    type(operation).objects.filter(pk=operation.pk).update(state="succeeded")  # the VM is built

    snapshot_delete(snapshot=snapshot, user=snapshot.owner)

    vm.refresh_from_db()
    assert (vm.current_snapshot_id, vm.source_snapshot_id) == (None, None)
    # The owner's own VM follows the older snapshot, as before.
    assert VM.objects.get(pk=snapshot.source_vm_id).current_snapshot_id == older.pk


def test_after_revoking_no_new_vm_is_started(snapshot, bob):
    share = services.share_create(snapshot=snapshot, username="bob")
    services.share_revoke(share=share)
    with pytest.raises(InvalidState, match="no longer shared"):
        services.shared_new_vm(snapshot=snapshot, user=bob, name="late")
    assert not VM.objects.filter(owner=bob).exists()


def test_the_recipients_vms_count_against_the_recipients_plan(snapshot, bob):
    plan_change(user=bob, plan=Plan.objects.get(slug="free"))  # one VM
    services.share_create(snapshot=snapshot, username="bob")
    vm_row(owner=bob, image=snapshot.image, name="already")
    with pytest.raises(LimitExceeded, match="Free plan allows 1 VM"):
        services.shared_new_vm(snapshot=snapshot, user=bob, name="one-too-many")


def test_a_shared_snapshot_counts_against_its_owner_only(snapshot, alice, bob):
    services.share_create(snapshot=snapshot, username="bob")
    assert usage_for(alice).snapshots == 1
    assert usage_for(bob).snapshots == 0


# Pages


def test_the_owner_shares_by_username_on_the_share_page(snapshot, alice, bob):
    client = signed_in(alice)
    response = client.post(f"/snapshots/{snapshot.pk}/share/", {"username": "bob"})
    assert response.status_code == 302
    page = client.get(f"/snapshots/{snapshot.pk}/share/").content.decode()
    assert 'data-recipient="bob"' in page


def test_an_unknown_username_is_shown_beside_the_field(snapshot, alice):
    response = signed_in(alice).post(f"/snapshots/{snapshot.pk}/share/", {"username": "nobody"})
    assert response.status_code == 200
    assert "No user is called" in response.content.decode()
    assert not Share.objects.exists()


def test_the_share_page_shows_an_invitation_link(snapshot, alice):
    client = signed_in(alice)
    client.post(f"/snapshots/{snapshot.pk}/share/invitations/", {"max_uses": 30})
    invitation = Invitation.objects.get(snapshot=snapshot)
    page = client.get(f"/snapshots/{snapshot.pk}/share/").content.decode()
    assert f"/shared/join/{invitation.code}/" in page
    assert invitation.max_uses == 30


def test_the_join_link_redeems_for_the_signed_in_user(snapshot, code, bob):
    client = signed_in(bob)
    assert "Join" in client.get(f"/shared/join/{code}/").content.decode()
    assert Share.objects.count() == 0  # looking is not joining
    assert client.post(f"/shared/join/{code}/").status_code == 302
    page = client.get("/shared/").content.decode()
    assert 'data-snapshot="lesson 1"' in page


def test_the_join_link_asks_to_sign_in_first(code):
    response = Client().get(f"/shared/join/{code}/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_bad_code_on_the_join_page_says_so(bob):
    response = signed_in(bob).get("/shared/join/made-up-code/")
    assert response.status_code == 404
    assert "No invitation has this code" in response.content.decode()


def test_a_code_typed_on_the_shared_page_joins(snapshot, code, bob):
    client = signed_in(bob)
    client.post("/shared/join/", {"code": code})
    assert list(shared_with(bob)) == [snapshot]


def test_the_recipient_starts_a_vm_from_the_shared_page(snapshot, bob):
    services.share_create(snapshot=snapshot, username="bob")
    response = signed_in(bob).post(f"/shared/{snapshot.pk}/new-vm/", {"name": "mine"})
    vm = VM.objects.get(owner=bob, name="mine")
    assert response.status_code == 302 and response["Location"] == f"/vms/{vm.pk}/"


def test_a_stranger_gets_404_on_the_share_pages(snapshot, code, alice, bob):
    share = services.share_create(snapshot=snapshot, username="bob")
    invitation = Invitation.objects.get(code=code)
    client = signed_in(bob)  # shared with, yet not the owner
    assert client.get(f"/snapshots/{snapshot.pk}/share/").status_code == 404
    assert client.post(f"/snapshots/{snapshot.pk}/share/", {"username": "bob"}).status_code == 404
    assert client.post(f"/snapshots/{snapshot.pk}/share/invitations/", {}).status_code == 404
    assert client.post(f"/shares/{share.pk}/revoke/").status_code == 404
    assert client.post(f"/invitations/{invitation.pk}/revoke/").status_code == 404


def test_without_a_share_the_new_vm_page_is_a_404(snapshot, charlie):
    assert signed_in(charlie).get(f"/shared/{snapshot.pk}/new-vm/").status_code == 404


# The recipient's only right is new VMs: every other page of the snapshot stays the owner's and
# answers 404, as for anyone it is not shared with (it is not theirs to see).
OWNER_ONLY_PAGES = [
    ("post", "/snapshots/{id}/restore/", {}),
    ("post", "/snapshots/{id}/rename/", {"name": "mine now"}),
    ("post", "/snapshots/{id}/delete/", {}),
    ("post", "/snapshots/{id}/pin/", {"pinned": "1"}),
    ("post", "/snapshots/{id}/new-vm/", {"name": "via-owner-route"}),
    ("get", "/snapshots/{id}/files/", None),
    ("get", "/snapshots/{id}/compare/", None),
]


@pytest.mark.parametrize(("method", "path", "data"), OWNER_ONLY_PAGES)
def test_the_recipient_gets_404_on_the_owners_pages(snapshot, bob, method, path, data):
    services.share_create(snapshot=snapshot, username="bob")
    client = signed_in(bob)
    response = getattr(client, method)(path.format(id=snapshot.pk), data)
    assert response.status_code == 404
    snapshot.refresh_from_db()
    assert snapshot.name == "lesson 1" and not snapshot.pinned


def test_revoking_on_the_page_hides_the_snapshot_from_the_recipient(snapshot, alice, bob):
    share = services.share_create(snapshot=snapshot, username="bob")
    signed_in(alice).post(f"/shares/{share.pk}/revoke/")
    assert signed_in(bob).get(f"/shared/{snapshot.pk}/new-vm/").status_code == 404
    assert 'data-snapshot="lesson 1"' not in signed_in(bob).get("/shared/").content.decode()


def test_revoking_an_invitation_on_the_page_ends_its_shares(snapshot, code, alice, bob):
    services.invitation_redeem(code=code, user=bob)
    invitation = Invitation.objects.get(code=code)
    signed_in(alice).post(f"/invitations/{invitation.pk}/revoke/")
    assert list(shared_with(bob)) == []
    assert signed_in(bob).get(f"/shared/join/{code}/").status_code == 404


def test_the_nav_links_to_shared_with_me(bob):
    assert 'href="/shared/"' in signed_in(bob).get("/shared/").content.decode()


# API


def test_the_api_shares_lists_and_revokes(snapshot, alice, bob):
    api = api_as(alice)
    created = api.post(f"/api/snapshots/{snapshot.pk}/shares/", {"username": "bob"})
    assert created.status_code == 201, created.json()
    listed = api.get(f"/api/snapshots/{snapshot.pk}/shares/").json()["results"]
    assert [share["username"] for share in listed] == ["bob"]

    share_id = created.json()["id"]
    assert api.delete(f"/api/snapshots/{snapshot.pk}/shares/{share_id}/").status_code == 204
    assert api.get(f"/api/snapshots/{snapshot.pk}/shares/").json()["results"] == []
    assert api.delete(f"/api/snapshots/{snapshot.pk}/shares/{share_id}/").status_code == 404


def test_an_unknown_username_is_400_naming_the_field(snapshot, alice):
    response = api_as(alice).post(f"/api/snapshots/{snapshot.pk}/shares/", {"username": "x"})
    assert response.status_code == 400
    assert "No user is called" in response.json()["error"]["fields"]["username"][0]


def test_the_api_creates_redeems_and_revokes_an_invitation(snapshot, alice, bob):
    owner, student = api_as(alice), api_as(bob)
    created = owner.post(f"/api/snapshots/{snapshot.pk}/invitations/", {"max_uses": 30})
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["url"] == f"/shared/join/{body['code']}/" and body["max_uses"] == 30

    redeemed = student.post("/api/invitations/redeem/", {"code": body["code"]})
    assert redeemed.status_code == 200, redeemed.json()
    assert redeemed.json()["id"] == str(snapshot.pk) and redeemed.json()["owner"] == "alice"
    again = student.post("/api/invitations/redeem/", {"code": body["code"]})
    assert again.status_code == 200

    path = f"/api/snapshots/{snapshot.pk}/invitations/{body['id']}/"
    assert owner.delete(path).status_code == 204
    assert student.get("/api/shared-snapshots/").json()["results"] == []


def test_a_bad_code_is_404_with_a_sentence(bob):
    response = api_as(bob).post("/api/invitations/redeem/", {"code": "no-such-code"})
    assert response.status_code == 404
    assert "No invitation has this code" in response.json()["error"]["message"]


def test_a_malformed_code_is_400(bob):
    response = api_as(bob).post("/api/invitations/redeem/", {"code": "not a code!"})
    assert response.status_code == 400
    assert "code" in response.json()["error"]["fields"]


def test_an_invitation_in_the_past_is_400(snapshot, alice):
    response = api_as(alice).post(
        f"/api/snapshots/{snapshot.pk}/invitations/", {"expires_at": "2001-01-01T00:00:00Z"}
    )
    assert response.status_code == 400
    assert "expires_at" in response.json()["error"]["fields"]


def test_the_api_lists_shared_snapshots_and_starts_a_vm(snapshot, bob):
    services.share_create(snapshot=snapshot, username="bob")
    api = api_as(bob)
    listed = api.get("/api/shared-snapshots/").json()["results"]
    assert [(s["id"], s["owner"]) for s in listed] == [(str(snapshot.pk), "alice")]

    response = api.post(f"/api/shared-snapshots/{snapshot.pk}/vms/", {"name": "mine"})
    assert response.status_code == 202, response.json()
    assert VM.objects.get(pk=response.json()["vm"]).owner == bob


def test_a_vm_name_the_recipient_has_is_409(snapshot, bob):
    services.share_create(snapshot=snapshot, username="bob")
    vm_row(owner=bob, image=snapshot.image, name="mine")
    response = api_as(bob).post(f"/api/shared-snapshots/{snapshot.pk}/vms/", {"name": "mine"})
    assert response.status_code == 409


def test_bad_sizes_are_400(snapshot, bob):
    services.share_create(snapshot=snapshot, username="bob")
    response = api_as(bob).post(
        f"/api/shared-snapshots/{snapshot.pk}/vms/", {"name": "big", "vcpus": 999}
    )
    assert response.status_code == 400
    assert "vcpus" in response.json()["error"]["fields"]


def test_a_stranger_gets_404_on_the_snapshot_and_its_shares(snapshot, code, bob, charlie):
    share = services.share_create(snapshot=snapshot, username="bob")
    invitation = Invitation.objects.get(code=code)
    api = api_as(charlie)
    snap = f"/api/snapshots/{snapshot.pk}"
    assert api.get(f"{snap}/").status_code == 404
    assert api.get(f"{snap}/shares/").status_code == 404
    assert api.post(f"{snap}/shares/", {"username": "charlie"}).status_code == 404
    assert api.delete(f"{snap}/shares/{share.pk}/").status_code == 404
    assert api.get(f"{snap}/invitations/").status_code == 404
    assert api.post(f"{snap}/invitations/", {}).status_code == 404
    assert api.delete(f"{snap}/invitations/{invitation.pk}/").status_code == 404
    assert api.get(f"/api/shared-snapshots/{snapshot.pk}/").status_code == 404
    assert api.post(f"/api/shared-snapshots/{snapshot.pk}/vms/", {"name": "x"}).status_code == 404
    assert Share.objects.active().count() == 1


def test_only_the_owner_lists_the_shares(snapshot, alice, bob):
    services.share_create(snapshot=snapshot, username="bob")
    assert api_as(alice).get(f"/api/snapshots/{snapshot.pk}/shares/").status_code == 200
    assert api_as(bob).get(f"/api/snapshots/{snapshot.pk}/shares/").status_code == 404


OWNER_ONLY_API = [
    ("get", "/api/snapshots/{id}/", None),
    ("patch", "/api/snapshots/{id}/", {"name": "mine now"}),
    ("delete", "/api/snapshots/{id}/", None),
    ("post", "/api/snapshots/{id}/restore/", {}),
    ("post", "/api/snapshots/{id}/vms/", {"name": "via-owner-route"}),
    ("get", "/api/snapshots/{id}/files/", None),
    ("post", "/api/snapshots/{id}/shares/", {"username": "charlie"}),
    ("post", "/api/snapshots/{id}/invitations/", {}),
]


@pytest.mark.parametrize(("method", "path", "body"), OWNER_ONLY_API)
def test_the_recipient_gets_404_on_the_owners_api(snapshot, bob, charlie, method, path, body):
    services.share_create(snapshot=snapshot, username="bob")
    response = getattr(api_as(bob), method)(path.format(id=snapshot.pk), body, format="json")
    assert response.status_code == 404
    assert not Share.objects.filter(recipient=charlie).exists()


def test_a_revoked_share_is_404_again_in_the_api(snapshot, bob):
    share = services.share_create(snapshot=snapshot, username="bob")
    services.share_revoke(share=share)
    api = api_as(bob)
    assert api.get(f"/api/shared-snapshots/{snapshot.pk}/").status_code == 404
    response = api.post(f"/api/shared-snapshots/{snapshot.pk}/vms/", {"name": "late"})
    assert response.status_code == 404
    assert not VM.objects.filter(owner=bob).exists()


def test_the_schema_describes_the_sharing_endpoints(client, db):
    paths = client.get("/api/schema/?format=json").json()["paths"]
    assert {"get", "post"} <= set(paths["/api/snapshots/{id}/shares/"])
    assert "delete" in paths["/api/snapshots/{id}/shares/{share_id}/"]
    assert "delete" in paths["/api/snapshots/{id}/invitations/{invitation_id}/"]
    assert "post" in paths["/api/invitations/redeem/"]
    assert "get" in paths["/api/shared-snapshots/"]
    assert "202" in paths["/api/shared-snapshots/{id}/vms/"]["post"]["responses"]
