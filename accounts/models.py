"""Accounts: the service's own user model, the plan it is held to, its API tokens and SSH keys."""

import uuid

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q

from accounts.ssh_keys import KEY_TYPES
from core.access import OwnedQuerySet


class Plan(models.Model):
    """What an account may keep. Koding's plans are the default table; admins edit them."""

    slug = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    max_snapshots = models.PositiveIntegerField(help_text="Snapshots an account may keep.")
    max_snapshot_bytes = models.BigIntegerField(
        help_text="Bytes on disk an account's snapshots may take."
    )
    max_vms = models.PositiveIntegerField(default=5, help_text="VMs an account may have.")
    is_default = models.BooleanField(default=False, help_text="Given to new accounts.")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_plan"
            ),
            models.CheckConstraint(
                condition=Q(max_snapshot_bytes__gte=0), name="plan_bytes_not_negative"
            ),
        ]

    def __str__(self):
        return self.name


class User(AbstractUser):
    """A person who signs in: owns VMs and snapshots, and is held to a plan."""

    plan = models.ForeignKey(
        Plan,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="users",
        help_text="Empty means the default plan.",
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"


class ApiToken(models.Model):
    """A named secret a user creates for API clients; only its hash is kept."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=64)
    prefix = models.CharField(max_length=12, help_text="The first characters, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"


class SshKey(models.Model):
    """A public key of a user's, for SSH into their VMs; `accounts.ssh_keys` checked it."""

    TITLE_MAX = 64

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="ssh_keys")
    title = models.CharField(max_length=TITLE_MAX)
    public_key = models.TextField(help_text="One normalized line: type, base64, comment.")
    key_type = models.CharField(max_length=64, choices=[(t, t) for t in KEY_TYPES])
    fingerprint = models.CharField(max_length=64, help_text="SHA256, as ssh-keygen -l prints it.")
    bits = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OwnedQuerySet.as_manager()

    class Meta:
        verbose_name = "SSH key"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "fingerprint"], name="ssh_key_once_per_owner")
        ]

    def __str__(self):
        return f"{self.title} ({self.fingerprint})"
