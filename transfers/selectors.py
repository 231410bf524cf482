"""Reads of exports. Nothing here changes a row or touches a file."""

from __future__ import annotations

from django.db.models import Sum

from transfers.models import Export, ExportState


def export_bytes_for(user) -> int:
    """Bytes the user's export files take now: they count against the plan while they exist."""
    files = Export.objects.filter(owner=user).current().exclude(state=ExportState.FAILED)
    return files.aggregate(total=Sum("size_bytes"))["total"] or 0


def exports_of(user, snapshot=None):
    """The user's exports not expired yet, newest first (of one snapshot, when given)."""
    exports = Export.objects.owned_by(user).current()
    if snapshot is not None:
        exports = exports.filter(snapshot=snapshot)
    return exports
