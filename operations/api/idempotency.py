"""`Idempotency-Key` on POSTs: a retried request gets the first answer, and nothing runs twice.

The first request with a key records a pending row (unique per user and key); its answer is
stored when it is ready. A retry with the same key and the same method, path and body gets that
answer again; the same key with a different request is refused with 422; a retry that arrives
while the first is still being answered gets 409.
"""

from __future__ import annotations

import hashlib
import json
from functools import wraps

from django.db import IntegrityError, transaction
from rest_framework.response import Response

from core.api.errors import error_body
from operations.models import IdempotentRequest

HEADER = "Idempotency-Key"
MAX_KEY = 255


def key_of(request) -> str | None:
    """The request's Idempotency-Key, recorded on the operation it starts."""
    return request.headers.get(HEADER) or None


def _fingerprint(request) -> str:
    try:
        body = json.dumps(request.data, sort_keys=True, default=str)
    except (TypeError, ValueError):
        body = repr(request.data)
    raw = f"{request.method} {request.path}\n{body}"
    return hashlib.sha256(raw.encode()).hexdigest()


def idempotent(view_method):
    """Decorate a POST handler of a DRF view to honour the Idempotency-Key header."""

    @wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if not key:
            return view_method(self, request, *args, **kwargs)
        if len(key) > MAX_KEY:
            return Response(
                error_body("invalid", f"Keep the {HEADER} header to {MAX_KEY} characters."),
                status=400,
            )
        fingerprint = _fingerprint(request)
        try:
            with transaction.atomic():
                record = IdempotentRequest.objects.create(
                    owner=request.user, key=key, fingerprint=fingerprint
                )
        except IntegrityError:
            return _replay(request, key, fingerprint)
        try:
            response = view_method(self, request, *args, **kwargs)
        except Exception as exc:
            response = self.handle_exception(exc)
        if response.status_code >= 500:
            record.delete()  # let a retry try again
            return response
        IdempotentRequest.objects.filter(pk=record.pk).update(
            status_code=response.status_code,
            body=response.data,
            location=response.get("Location", ""),
        )
        return response

    return wrapper


def _replay(request, key, fingerprint):
    record = IdempotentRequest.objects.filter(owner=request.user, key=key).first()
    if record is None:
        return Response(error_body("conflict", "Retry the request."), status=409)
    if record.fingerprint != fingerprint:
        return Response(
            error_body(
                "idempotency_key_reused",
                f"This {HEADER} was used for a different request; use a new key.",
            ),
            status=422,
        )
    if record.status_code is None:
        return Response(
            error_body("conflict", "The first request with this key is still being answered."),
            status=409,
        )
    headers = {"Idempotent-Replayed": "true"}
    if record.location:
        headers["Location"] = record.location
    return Response(record.body, status=record.status_code, headers=headers)
