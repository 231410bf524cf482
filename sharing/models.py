"""Shares: a snapshot's owner lets other users start VMs from it (a teacher's class image).

A share gives its recipient one thing: new VMs of their own from the snapshot. The snapshot stays
the owner's (it counts against the owner's plan only, and only the owner restores, renames,
browses or deletes it). An invitation is a code the owner hands out; each signed-in user who
redeems it gets a share. Revoked shares and invitations are kept, marked, so that a code cannot
bring back a share its owner took away.
"""

import uuid

from django.conf import settings
from django.db import models

from core.access import OwnedQuerySet


class ShareQuerySet(OwnedQuerySet):
    def active(self):
        return self.filter(revoked_at=None)


class Share(models.Model):
    """One user may start VMs from one snapshot of another user."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    snapshot = models.ForeignKey(
        "snapshots.Snapshot", on_delete=models.CASCADE, related_name="shares"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="shares_given",
        help_text="The snapshot's owner.",
    )
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="shares_received"
    )
    invitation = models.ForeignKey(
        "sharing.Invitation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="shares",
        help_text="The invitation it was redeemed from; none when shared by username.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_with_invitation = models.BooleanField(
        default=False,
        help_text="Ended because its invitation was revoked: a newer invitation may renew it. "
        "A share the owner revoked by itself is renewed only by sharing again by username.",
    )

    objects = ShareQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["snapshot", "recipient"], name="one_share_per_snapshot_and_recipient"
            )
        ]
        indexes = [models.Index(fields=["recipient", "revoked_at"])]

    def __str__(self):
        return f"{self.snapshot} → {self.recipient}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class InvitationQuerySet(OwnedQuerySet):
    def active(self):
        return self.filter(revoked_at=None)


class Invitation(models.Model):
    """A code that shares a snapshot with every signed-in user who redeems it."""

    CODE_BYTES = 18  # 24 URL-safe characters, 144 random bits
    CODE_MAX = 64
    MAX_USES_MAX = 10_000

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    snapshot = models.ForeignKey(
        "snapshots.Snapshot", on_delete=models.CASCADE, related_name="invitations"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="invitations"
    )
    code = models.CharField(max_length=CODE_MAX, unique=True, editable=False)
    max_uses = models.PositiveIntegerField(
        null=True, blank=True, help_text="How many users may redeem it; empty for any number."
    )
    uses = models.PositiveIntegerField(default=0, help_text="Users who have redeemed it.")
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.snapshot}: {self.code[:6]}…"

    def get_absolute_url(self):
        from django.urls import reverse

        return reverse("share_join", args=[self.code])

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
