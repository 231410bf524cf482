"""The API benchmark's baseline: hand-written Django views that run the same queries as the API's
snapshot list and operation detail (the same token authentication, count and page) and return
the same JSON, with no framework between. `bench/api.py` checks that the answers are equal."""

from __future__ import annotations

from django.http import Http404, JsonResponse
from django.urls import reverse
from rest_framework import exceptions

from accounts.authentication import ApiTokenAuthentication
from operations.api.serializers import locked_vm_id, subject_snapshot_id
from operations.models import Operation
from snapshots.models import Snapshot

PAGE_SIZE = 25


def _when(value) -> str | None:
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _user(request):
    try:
        found = ApiTokenAuthentication().authenticate(request)
    except exceptions.AuthenticationFailed:
        found = None
    if found is None:
        raise PermissionError
    return found[0]


def _unauthorized() -> JsonResponse:
    return JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)


def _snapshot(s: Snapshot) -> dict:
    return {
        "id": str(s.id),
        "name": s.name,
        "description": s.description,
        "kind": s.kind,
        "kind_label": s.kind_label,
        "consistency": s.consistency,
        "origin": s.origin,
        "state": s.state,
        "vm": str(s.source_vm_id) if s.source_vm_id else None,
        "vm_name": s.source_vm_name,
        "imported_from": s.imported_from,
        "imported_by": s.imported_by.username if s.imported_by else None,
        "image": s.image.slug if s.image else None,
        "parent": str(s.parent_id) if s.parent_id else None,
        "size_bytes": s.size_bytes,
        "disk_bytes": s.disk_bytes,
        "quiesced": s.quiesced,
        "includes_memory": s.includes_memory,
        "memory_bytes": s.memory_bytes,
        "pinned": s.pinned,
        "created_at": _when(s.created_at),
    }


def snapshot_list(request):
    try:
        user = _user(request)
    except PermissionError:
        return _unauthorized()
    snapshots = (
        Snapshot.objects.owned_by(user)
        .select_related("image", "imported_by")
        .order_by("-created_at")
    )
    count = snapshots.count()
    page = list(snapshots[:PAGE_SIZE])
    following = None
    if count > PAGE_SIZE:
        following = request.build_absolute_uri(request.path) + "?page=2"
    return JsonResponse(
        {
            "count": count,
            "next": following,
            "previous": None,
            "results": [_snapshot(s) for s in page],
        }
    )


def operation_detail(request, pk):
    try:
        user = _user(request)
    except PermissionError:
        return _unauthorized()
    operation = Operation.objects.owned_by(user).select_related("subject_type").filter(pk=pk)
    operation = operation.first()
    if operation is None:
        raise Http404
    vm_id, snapshot_id = locked_vm_id(operation), subject_snapshot_id(operation)
    linked_vm = operation.result.get("vm") or vm_id
    linked_snapshot = operation.result.get("snapshot") or snapshot_id
    return JsonResponse(
        {
            "id": str(operation.id),
            "kind": operation.kind,
            "kind_display": operation.get_kind_display(),
            "state": operation.state,
            "progress": operation.progress,
            "message": operation.message,
            "error": operation.error,
            "target_name": operation.target_name,
            "vm": vm_id,
            "snapshot": snapshot_id,
            "result": operation.result,
            "created_at": _when(operation.created_at),
            "started_at": _when(operation.started_at),
            "finished_at": _when(operation.finished_at),
            "links": {
                "self": reverse("api:operation-detail", args=[operation.pk]),
                "vm": reverse("api:vm-detail", args=[linked_vm]) if linked_vm else None,
                "snapshot": (
                    reverse("api:snapshot-detail", args=[linked_snapshot])
                    if linked_snapshot
                    else None
                ),
            },
        }
    )
