"""Accounts: the service's own user model."""

from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """A person who signs in: owns VMs and snapshots, and is held to a plan."""

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
