"""Accounts: the service's own user model."""

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A person who signs in: owns VMs and snapshots, and is held to a plan."""

    plan = models.ForeignKey(
        "snapshots.Plan",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="users",
        help_text="Empty means the default plan.",
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
