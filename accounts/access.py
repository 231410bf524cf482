"""Who may see what: the one place that restricts objects to their owner.

Pages and the API fetch every VM, snapshot and operation through these functions, so another
user's object and a made-up id look exactly the same: not found. Administrators see everything
through the Django admin only.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404

from operations.models import Operation
from snapshots.models import Snapshot
from vms.models import VM


def vms_of(user):
    return VM.objects.visible().filter(owner=user)


def snapshots_of(user):
    return Snapshot.objects.visible().filter(owner=user)


def operations_of(user):
    return Operation.objects.filter(owner=user)


def _get(queryset, pk):
    try:
        return queryset.get(pk=pk)
    except (queryset.model.DoesNotExist, ValueError, TypeError, ValidationError):
        # A malformed id is as unknown as a missing one, or another user's.
        raise Http404("Not found.") from None


def vm_for(user, pk, queryset=None) -> VM:
    return _get(queryset if queryset is not None else vms_of(user), pk)


def snapshot_for(user, pk, queryset=None) -> Snapshot:
    return _get(queryset if queryset is not None else snapshots_of(user), pk)


def operation_for(user, pk) -> Operation:
    return _get(operations_of(user), pk)
