"""Business rules for accounts."""

from accounts.models import User


def user_create(*, username: str, password: str, email: str = "", is_staff: bool = False) -> User:
    """A new account, ready to sign in, on the default plan."""
    from snapshots.models import Plan

    user = User(
        username=username,
        email=email,
        is_staff=is_staff,
        is_superuser=is_staff,
        plan=Plan.objects.filter(is_default=True).first(),
    )
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    return user
