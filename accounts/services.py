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


TOKEN_PREFIX = "ks_"  # noqa: S105 (a marker in front of every token, not a secret)


def token_hash(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()


def token_create(*, user: User, name: str):
    """A new API token for `user`. Returns (token, key): the key is shown once, never stored."""
    import secrets

    from django.core.exceptions import ValidationError

    from accounts.models import ApiToken

    name = (name or "").strip()
    if not name or len(name) > 64:
        raise ValidationError({"name": "Give the token a name of up to 64 characters."})
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=key[:10], key_hash=token_hash(key))
    return token, key


def token_revoke(*, token) -> None:
    token.delete()
