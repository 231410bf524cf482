"""Who may see what: objects are restricted to their owner by their querysets.

Every model a user owns has a queryset with `owned_by(user)`; pages and the API fetch objects
through it and `get_owned_or_404`, so another user's object and a made-up id look exactly the
same: not found. Administrators see everything through the Django admin only.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.http import Http404


class OwnedQuerySet(models.QuerySet):
    """A queryset of objects with an `owner`."""

    def owned_by(self, user):
        """What `user` may see of these: their own (models may hide more, e.g. deleted ones)."""
        return self.filter(owner=user)


def get_owned_or_404(queryset, pk):
    """The object `pk` of `queryset` (already restricted with `owned_by`), or 404."""
    try:
        return queryset.get(pk=pk)
    except (queryset.model.DoesNotExist, ValueError, TypeError, ValidationError):
        # A malformed id is as unknown as a missing one, or another user's.
        raise Http404("Not found.") from None
