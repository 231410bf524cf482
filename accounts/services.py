"""Business rules for accounts."""

import unicodedata

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import Plan, SshKey, User
from accounts.ssh_keys import SshKeyError, parse_public_key
from core.errors import LimitExceeded, NameTaken

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


def ssh_key_add(*, owner: User, title: str, public_key: str) -> SshKey:
    """Keep a public key of `owner`'s, checked and normalized; titled after its comment when no
    title is given. The same key twice, or more than SSH_KEYS_MAX keys, is refused."""
    try:
        parsed = parse_public_key(public_key)
    except SshKeyError as exc:
        raise ValidationError({"public_key": exc.message}) from None
    title = _ssh_key_title(title, default=parsed.comment)
    try:
        with transaction.atomic():
            # One account's additions one at a time, so a burst cannot pass the limit.
            User.objects.select_for_update(no_key=True).filter(pk=owner.pk).first()
            _ssh_key_check_new(owner, parsed.fingerprint)
            return SshKey.objects.create(
                owner=owner,
                title=title,
                public_key=parsed.text,
                key_type=parsed.key_type,
                fingerprint=parsed.fingerprint,
                bits=parsed.bits,
            )
    except IntegrityError:
        # A parallel request added the same key first: the unique constraint caught it.
        _ssh_key_check_new(owner, parsed.fingerprint)
        raise


def _ssh_key_check_new(owner: User, fingerprint: str) -> None:
    same = SshKey.objects.filter(owner=owner, fingerprint=fingerprint).first()
    if same is not None:
        raise NameTaken(
            f"You have already added this key, as {same.title!r}; delete that one first to add "
            "it again.",
            field="public_key",
        )
    limit = settings.SSH_KEYS_MAX
    if SshKey.objects.filter(owner=owner).count() >= limit:
        raise LimitExceeded(
            f"You can keep up to {limit} SSH key{'s' if limit != 1 else ''}; delete one you no "
            "longer use to add another."
        )


def _ssh_key_title(title: str, *, default: str) -> str:
    title = (title or "").strip()
    if not title:
        title = default[: SshKey.TITLE_MAX].strip()
    if not title:
        raise ValidationError(
            {"title": "Give the key a title, such as the computer it is from (it has no comment)."}
        )
    if len(title) > SshKey.TITLE_MAX:
        raise ValidationError(
            {"title": f"Keep the title to {SshKey.TITLE_MAX} characters or fewer."}
        )
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in title):
        raise ValidationError({"title": "The title contains characters that cannot be shown."})
    return title


def ssh_key_delete(*, key: SshKey) -> None:
    """Forget a key: VMs created from now on no longer let it in."""
    key.delete()
