"""Reads of shares: what a user may start VMs from, and what an owner has shared."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery

from sharing.models import Invitation, Share
from snapshots.models import Snapshot, SnapshotState


def shared_with(user) -> QuerySet[Snapshot]:
    """The ready snapshots other users share with `user` (revoked shares left out), newest share
    first, each with `shared_at`: when its share began."""
    share = Share.objects.active().filter(recipient=user, snapshot=OuterRef("pk"))
    return (
        Snapshot.objects.filter(state=SnapshotState.READY)
        .annotate(shared_at=Subquery(share.values("created_at")[:1]))
        .filter(shared_at__isnull=False)
        .exclude(owner=user)
        .select_related("owner", "image")
        .order_by("-shared_at")
    )


def shares_of(snapshot: Snapshot) -> QuerySet[Share]:
    """The snapshot's shares that are in force, newest first."""
    return Share.objects.active().filter(snapshot=snapshot).select_related("recipient")


def invitations_of(snapshot: Snapshot) -> QuerySet[Invitation]:
    """The snapshot's invitations that are not revoked (expired and used-up ones included)."""
    return Invitation.objects.active().filter(snapshot=snapshot)
