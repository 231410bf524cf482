"""Who may create an account, how often, and on which plan.

SIGNUP says who: anyone ("open"), someone holding an invitation code ("invitation"), or no one
("closed"). SIGNUP_RATE caps attempts per client address, counted in the shared cache like the
API's throttles. SIGNUP_PLAN names the plan a newcomer gets.

Invitation codes belong to the sharing app, a layer above this one: it registers how a code is
checked and redeemed (`invitations_register`) in its AppConfig.ready, so this module never
imports it. A newcomer who signs up with a code joins what it shares, in the same transaction
as the account: a code that cannot be redeemed creates no account.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework.throttling import SimpleRateThrottle

from accounts.models import Plan, User
from accounts.services import user_create
from core.client_address import client_address
from core.errors import ServiceError

logger = logging.getLogger(__name__)

OPEN, INVITATION, CLOSED = "open", "invitation", "closed"


@dataclass(frozen=True)
class Invitations:
    """How codes are handled: `check(code)` raises ServiceError for a code not in force;
    `redeem(code, user)` gives the new user what the code shares (or raises); `code_in(url)`
    is the code an invitation link carries ("" for any other address)."""

    check: Callable[[str], object]
    redeem: Callable[[str, User], object]
    code_in: Callable[[str], str]


_invitations: Invitations | None = None


def invitations_register(*, check, redeem, code_in=lambda url: "") -> None:
    global _invitations
    _invitations = Invitations(check=check, redeem=redeem, code_in=code_in)


def invitation_code_in(url: str) -> str:
    """The invitation code in `url` when it is an invitation link (a newcomer sent to sign up
    from one need not type it), else ""."""
    if not url or _invitations is None:
        return ""
    return _invitations.code_in(url)


def signup_mode() -> str:
    return settings.SIGNUP


class SignupClosed(ServiceError):
    def __init__(self):
        super().__init__(
            "Sign-up is closed on this site; ask an administrator to create an account for you."
        )


class SignupThrottle(SimpleRateThrottle):
    """Sign-up attempts per client address (SIGNUP_RATE), in the cache every process shares."""

    scope = "signup"

    def get_rate(self):
        return settings.SIGNUP_RATE

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": client_address(request)}


def signup_allowed(request) -> int | None:
    """Count a sign-up attempt from the request's address; None when it may go on, else the
    seconds to wait."""
    throttle = SignupThrottle()
    if throttle.allow_request(request, None):
        return None
    return max(1, int(throttle.wait() or 1))


def invitation_check(code: str) -> None:
    """Raise ServiceError unless `code` is an invitation in force (only in invitation mode)."""
    if signup_mode() != INVITATION:
        return
    if _invitations is None:
        raise ServiceError(
            "Sign-up needs an invitation, but this site cannot check invitation codes; ask an "
            "administrator to create an account for you."
        )
    if not (code or "").strip():
        raise ServiceError("Type the invitation code you were given.")
    _invitations.check(code.strip())


def signup_plan() -> Plan:
    """The plan SIGNUP_PLAN names; refused (and logged) when there is no such plan, rather than
    handing out a larger one."""
    plan = Plan.objects.filter(slug=settings.SIGNUP_PLAN).first()
    if plan is None:
        logger.error("SIGNUP_PLAN names the plan %r, which does not exist.", settings.SIGNUP_PLAN)
        raise ServiceError(
            "Sign-up is not available right now (the plan for new accounts is missing); "
            "try again later or ask an administrator."
        )
    return plan


def signup_create(*, username: str, email: str, password: str, invitation_code: str = "") -> User:
    """A new account on the sign-up plan, after the rules of SIGNUP; with its invitation
    redeemed in invitation mode (both or neither)."""
    mode = signup_mode()
    if mode == CLOSED:
        raise SignupClosed()
    try:
        invitation_check(invitation_code)
    except ServiceError as exc:
        raise ValidationError({"invitation_code": exc.message}) from None
    plan = signup_plan()
    with transaction.atomic():
        user = user_create(username=username, email=email, password=password, plan=plan)
        if mode == INVITATION:
            try:
                _invitations.redeem(invitation_code.strip(), user)
            except ServiceError as exc:  # used up or expired meanwhile: no account either
                raise ValidationError({"invitation_code": exc.message}) from None
    return user
