"""Sharing snapshots: by username or by an invitation code, revoking, and new VMs from a share.

A share lets its recipient do one thing with another user's snapshot: start VMs of their own
from it, through `snapshots.services.snapshot_new_vm` (their plan's VM limit applies; the snapshot
keeps counting against its owner's plan only). A VM started so builds on the snapshot's layer,
which the layers' reference counting keeps alive, so neither revoking nor deleting the snapshot
touches VMs already started: revoking only stops new ones.

Callers fetch the snapshot for its owner (`owned_by`) before sharing it, and a shared snapshot
through `selectors.shared_with` before starting a VM from it; the start checks the share again
with its row locked, so a VM is never started after the revoke that raced it has committed.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from core.errors import InvalidState, ServiceError
from operations.models import Operation
from sharing.models import Invitation, Share
from snapshots.models import Snapshot, SnapshotState
from snapshots.services import snapshot_new_vm

USERNAME_MAX = 150


class UnknownInvitation(ServiceError):
    """No invitation in force has this code (never had one, or it was revoked)."""

    def __init__(self):
        super().__init__(
            "No invitation has this code, or it was revoked; check the code or ask the "
            "snapshot's owner for a new one."
        )


def _shareable(snapshot: Snapshot) -> None:
    if snapshot.state != SnapshotState.READY:
        raise InvalidState(
            f"Snapshot {snapshot.name!r} is not ready; share it when it has been taken."
        )


def share_create(*, snapshot: Snapshot, username: str) -> Share:
    """Share the snapshot with the user called `username`; sharing again renews a revoked
    share and is harmless for one in force."""
    _shareable(snapshot)
    username = (username or "").strip()
    if not username or len(username) > USERNAME_MAX or "\x00" in username:
        raise ValidationError({"username": "Give the username of the person to share with."})
    recipient = get_user_model().objects.filter(username=username, is_active=True).first()
    if recipient is None:
        raise ValidationError({"username": f"No user is called {username!r}; check the spelling."})
    if recipient.pk == snapshot.owner_id:
        raise ValidationError(
            {"username": "That is you: you can start VMs from your own snapshots already."}
        )
    return _grant(snapshot=snapshot, recipient=recipient, invitation=None)


def _grant(*, snapshot: Snapshot, recipient, invitation: Invitation | None) -> Share:
    """Create the share, or renew it (its invitation now the given one)."""
    fields = {"revoked_at": None, "revoked_with_invitation": False, "invitation": invitation}
    try:
        with transaction.atomic():
            share, created = Share.objects.get_or_create(
                snapshot=snapshot,
                recipient=recipient,
                defaults={"owner_id": snapshot.owner_id, **fields},
            )
    except IntegrityError:  # a parallel request created it first
        share, created = Share.objects.get(snapshot=snapshot, recipient=recipient), False
    if not created and not share.is_active:
        Share.objects.filter(pk=share.pk).update(**fields)
        for key, value in fields.items():
            setattr(share, key, value)
    return share


def share_revoke(*, share: Share, now: datetime | None = None) -> bool:
    """End a share: no new VMs from the snapshot for its recipient (theirs keep running), and
    an invitation code does not bring it back. False when it had ended already."""
    updated = Share.objects.filter(pk=share.pk, revoked_at=None).update(
        revoked_at=now or timezone.now(), revoked_with_invitation=False
    )
    return updated == 1


def invitation_create(
    *,
    snapshot: Snapshot,
    max_uses: int | None = None,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> Invitation:
    """A new code that shares the snapshot with whoever redeems it: at most `max_uses` users,
    until `expires_at` (either may be None: no limit)."""
    _shareable(snapshot)
    errors = {}
    if max_uses is not None and not 1 <= max_uses <= Invitation.MAX_USES_MAX:
        errors["max_uses"] = f"Choose a number from 1 to {Invitation.MAX_USES_MAX}, or none."
    if expires_at is not None and expires_at <= (now or timezone.now()):
        errors["expires_at"] = "Choose a time in the future, or none."
    if errors:
        raise ValidationError(errors)
    # 144 random bits: a clash is as good as impossible, and the unique index would catch it.
    return Invitation.objects.create(
        snapshot=snapshot,
        owner_id=snapshot.owner_id,
        code=secrets.token_urlsafe(Invitation.CODE_BYTES),
        max_uses=max_uses,
        expires_at=expires_at,
    )


def invitation_revoke(*, invitation: Invitation, now: datetime | None = None) -> int:
    """Stop the code working and end the shares it made (VMs already started keep running).
    Returns how many shares ended."""
    now = now or timezone.now()
    with transaction.atomic():
        Invitation.objects.filter(pk=invitation.pk, revoked_at=None).update(revoked_at=now)
        return Share.objects.filter(invitation=invitation, revoked_at=None).update(
            revoked_at=now, revoked_with_invitation=True
        )


def invitation_find(code: str) -> Invitation:
    """The invitation in force with this code, or UnknownInvitation."""
    code = (code or "").strip()
    if not code or len(code) > Invitation.CODE_MAX:
        raise UnknownInvitation()
    invitation = (
        Invitation.objects.active()
        .select_related("snapshot", "owner")
        .filter(code=code, snapshot__state=SnapshotState.READY)
        .first()
    )
    if invitation is None:
        raise UnknownInvitation()
    return invitation


def invitation_redeem(*, code: str, user, now: datetime | None = None) -> Share:
    """Share the invitation's snapshot with `user`. Redeeming again (any code of the snapshot)
    gives the same share and uses up nothing; a share its owner revoked stays revoked."""
    now = now or timezone.now()
    invitation = invitation_find(code)
    snapshot = invitation.snapshot
    if snapshot.owner_id == user.pk:
        raise ValidationError(
            {"code": "This invitation is to your own snapshot; give the code to the others."}
        )
    with transaction.atomic():
        # The invitation's row serializes redemptions, so `max_uses` holds under a burst.
        invitation = (
            Invitation.objects.select_for_update(of=("self",))
            .select_related("owner")
            .filter(pk=invitation.pk, revoked_at=None)
            .first()
        )
        if invitation is None:
            raise UnknownInvitation()
        existing = Share.objects.filter(snapshot=snapshot, recipient=user).first()
        if existing is not None and existing.is_active:
            return existing
        if existing is not None and not existing.revoked_with_invitation:
            raise InvalidState(
                f"{invitation.owner.username} has stopped sharing {snapshot.name!r} with you; "
                "ask them to share it again."
            )
        if invitation.expires_at is not None and invitation.expires_at <= now:
            raise InvalidState(
                "This invitation has expired; ask the snapshot's owner for a new code."
            )
        used = Invitation.objects.filter(
            Q(max_uses=None) | Q(uses__lt=F("max_uses")), pk=invitation.pk
        ).update(uses=F("uses") + 1)
        if not used:
            raise InvalidState(
                f"This invitation was for {invitation.max_uses} people and all have joined; "
                "ask the snapshot's owner for a new code."
            )
        return _grant(snapshot=snapshot, recipient=user, invitation=invitation)


def shared_new_vm(
    *,
    snapshot: Snapshot,
    user,
    name: str,
    full_copy: bool = False,
    vcpus: int | None = None,
    memory_mib: int | None = None,
    idempotency_key: str | None = None,
) -> Operation:
    """Start a VM of `user`'s from a snapshot shared with them."""
    with transaction.atomic():
        # Locked, so that a revoke racing this waits for it (or this sees the revoke).
        share = (
            Share.objects.select_for_update()
            .filter(snapshot=snapshot, recipient=user, revoked_at=None)
            .first()
        )
        if share is None:
            raise InvalidState(
                f"{snapshot.name!r} is no longer shared with you; ask its owner to share it again."
            )
        return snapshot_new_vm(
            snapshot=snapshot,
            user=user,
            owner=user,
            name=name,
            full_copy=full_copy,
            vcpus=vcpus,
            memory_mib=memory_mib,
            idempotency_key=idempotency_key,
        )
