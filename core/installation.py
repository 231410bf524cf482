"""This installation's identity (`core.models.Installation`), made on first need and kept."""

from __future__ import annotations

import uuid

from django.db import IntegrityError, transaction

_known: uuid.UUID | None = None


def installation_id() -> uuid.UUID:
    """The identity of the installation whose database this process uses.

    Made with the database (its migration) or on first need. Should the row ever vanish (a test
    database flushed between tests), it is made again with the identity this process already
    handed out, so what it made on the hosts stays its own."""
    global _known
    from core.models import Installation

    row = Installation.objects.filter(key=1).first()
    if row is None:
        try:
            with transaction.atomic():
                row = Installation.objects.create(key=1, uuid=_known or uuid.uuid4())
        except IntegrityError:  # another process made it first
            row = Installation.objects.get(key=1)
    _known = row.uuid
    return row.uuid


def installation_short() -> str:
    """The first eight hex digits of the identity: enough to tell installations on one host
    apart in the names of what they make there."""
    return installation_id().hex[:8]
