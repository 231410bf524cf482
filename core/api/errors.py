"""One error body everywhere in the API:

    {"error": {"code": "busy", "message": "VM is busy: …", "fields": {…}, "operation": {…}}}

`fields` comes with validation errors (400), `operation` with a busy VM (409).
"""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import (
    Busy,
    InvalidState,
    LimitExceeded,
    RateLimited,
    ServiceError,
    Unavailable,
)

NOT_FOUND = "Not found."


def error_body(code: str, message: str, **extra) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


def _fields(detail) -> dict:
    if isinstance(detail, dict):
        return {
            key: [str(item) for item in value] if isinstance(value, list) else [str(value)]
            for key, value in detail.items()
        }
    return {"non_field_errors": [str(item) for item in detail]}


def exception_handler(exc, context):
    """The API's answer to every error, in one shape (`operations.api.errors` adds the
    operation a "busy" answer names)."""
    if isinstance(exc, Busy):
        return Response(error_body("busy", exc.message, operation=None), status=409)
    if isinstance(exc, RateLimited):
        return Response(error_body("throttled", exc.message), status=429)
    if isinstance(exc, LimitExceeded):
        return Response(error_body("limit_exceeded", exc.message), status=403)
    if isinstance(exc, Unavailable):
        return Response(error_body("unavailable", exc.message), status=503)
    if isinstance(exc, (InvalidState, ServiceError)):
        return Response(error_body("conflict", exc.message), status=409)
    if isinstance(exc, DjangoValidationError):
        fields = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        message = " ".join(" ".join(v) for v in fields.values())
        return Response(error_body("invalid", message, fields=fields), status=400)
    if isinstance(exc, (Http404, exceptions.NotFound)):
        return Response(error_body("not_found", NOT_FOUND), status=404)
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a real bug: Django's 500 handling takes over
    if isinstance(exc, exceptions.ValidationError):
        fields = _fields(exc.detail)
        message = "Some fields are not valid: " + ", ".join(sorted(fields)) + "."
        response.data = error_body("invalid", message, fields=fields)
    else:
        code = getattr(exc, "default_code", "error")
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        response.data = error_body(code, str(detail))
    return response
