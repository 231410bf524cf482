"""Business rules for accounts."""

from accounts.models import Plan, User

GIB = 1024**3

# Koding's plan table (the first migrations seed it): slug, name, snapshots, bytes, VMs, default.
KODING_PLANS = [
    ("free", "Free", 0, 0, 1, False),
    ("hobbyist", "Hobbyist", 1, 10 * GIB, 2, False),
    ("developer", "Developer", 3, 30 * GIB, 5, True),
    ("professional", "Professional", 5, 50 * GIB, 10, False),
]


def plans_ensure_koding() -> list[Plan]:
    """Koding's plans, created where missing (existing ones keep what admins changed)."""
    plans = []
    for position, (slug, name, snapshots, size, vms, default) in enumerate(KODING_PLANS):
        plan, _ = Plan.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "max_snapshots": snapshots,
                "max_snapshot_bytes": size,
                "max_vms": vms,
                "is_default": default,
                "position": position,
            },
        )
        plans.append(plan)
    return plans


def user_create(
    *,
    username: str,
    password: str,
    email: str = "",
    is_staff: bool = False,
    plan: Plan | None = None,
) -> User:
    """A new account, ready to sign in, on `plan` (the default plan when not given)."""
    user = User(
        username=username,
        email=email,
        is_staff=is_staff,
        is_superuser=is_staff,
        plan=plan or Plan.objects.filter(is_default=True).first(),
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


def plan_change(*, user, plan) -> None:
    """Move an account to another plan (what it keeps beyond the new limits stays)."""
    User.objects.filter(pk=user.pk).update(plan=plan)
    user.plan = plan
