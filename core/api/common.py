"""Pagination, filters, throttling and input fields shared by the API's views.

Each query parameter and input field here is declared once: the same object validates the request
and describes itself in the OpenAPI schema, so the schema cannot promise more than the server takes.
"""

import re
import unicodedata
import uuid
from collections.abc import Sequence

from django.conf import settings
from django.core.validators import RegexValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import filters, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.throttling import UserRateThrottle

from core.client_address import client_address

_WHOLE_NUMBER = re.compile(r"[0-9]+")


class Pagination(PageNumberPagination):
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not _WHOLE_NUMBER.fullmatch(raw) or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError(
                {"page_size": [f"Give a whole number from 1 to {self.max_page_size}."]}
            )
        return int(raw)

    def get_page_number(self, request, paginator):
        raw = request.query_params.get(self.page_query_param)
        if raw is None:
            return 1
        if not _WHOLE_NUMBER.fullmatch(raw) or int(raw) < 1:
            raise ValidationError({"page": ["Give a whole number from 1 up."]})
        return int(raw)

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.page_query_param,
                "in": "query",
                "required": False,
                "description": "Which page (a page past the last answers 404).",
                "schema": {"type": "integer", "minimum": 1},
            },
            {
                "name": self.page_size_query_param,
                "in": "query",
                "required": False,
                "description": "How many results a page holds.",
                "schema": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": self.max_page_size,
                    "default": self.page_size,
                },
            },
        ]


class Ordering(filters.OrderingFilter):
    """`?ordering=` with one of the view's `ordering_fields`, `-` in front for descending; any
    other value is refused with 400 rather than ignored."""

    def choices(self, view) -> list[str]:
        return [value for name in view.ordering_fields for value in (name, f"-{name}")]

    def get_ordering(self, request, queryset, view):
        raw = request.query_params.get(self.ordering_param)
        if raw is None:
            return self.get_default_ordering(view)
        choices = self.choices(view)
        if raw not in choices:
            raise ValidationError({self.ordering_param: [f"Choose one of: {', '.join(choices)}."]})
        return [raw]

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.ordering_param,
                "in": "query",
                "required": False,
                "description": "Sort by this field; `-` in front for descending.",
                "schema": {"type": "string", "enum": self.choices(view)},
            }
        ]


class ChoiceQuery:
    """A query-string filter whose value must be one of `choices`."""

    def __init__(self, name: str, choices: Sequence[str], description: str):
        self.name = name
        self.choices = list(choices)
        self.parameter = OpenApiParameter(name, str, enum=self.choices, description=description)

    def read(self, request) -> str | None:
        return query_choice(request, self.name, self.choices)


class UUIDQuery:
    """A query-string filter whose value must be an object's id (a UUID)."""

    def __init__(self, name: str, description: str):
        self.name = name
        self.parameter = OpenApiParameter(name, OpenApiTypes.UUID, description=description)

    def read(self, request) -> uuid.UUID | None:
        return query_uuid(request, self.name)


def query_choice(request, name: str, choices) -> str | None:
    """A filter from the query string, refused with 400 when it is not one of `choices`."""
    value = request.query_params.get(name)
    if value is None:
        return None
    if value not in choices:
        raise ValidationError({name: [f"Choose one of: {', '.join(choices)}."]})
    return value


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def query_uuid(request, name: str) -> uuid.UUID | None:
    """An id from the query string, in the UUID form the schema's `format: uuid` names (not the
    other spellings `uuid.UUID` would also take), refused with 400 otherwise."""
    value = request.query_params.get(name)
    if value is None:
        return None
    if not _UUID.fullmatch(value):
        raise ValidationError({name: ["Give an id, as in the `id` of the object."]})
    return uuid.UUID(value)


class FullMatchValidator(RegexValidator):
    """A RegexValidator that must match the whole value, as a JSON Schema `pattern` anchored with
    `^…$` does (Python's `$` would also match before a final newline)."""

    def __call__(self, value):
        if not self.regex.fullmatch(str(value)):
            raise serializers.ValidationError(self.message, code=self.code)


def _ranges(chars: str) -> str:
    return "".join(f"\\u{ord(ch):04x}" for ch in chars)


# C0 and C1 control characters, which names refuse; spelled for both Python and JSON Schema.
CONTROL = "\\u0000-\\u001f\\u007f-\\u009f"
CONTROL_BUT_TAB = "\\u0000-\\u0008\\u000a-\\u001f\\u007f-\\u009f"
# What str.strip() removes besides controls: a name of only these is empty.
SPACES = _ranges(
    ch for ch in map(chr, range(0x10000)) if ch.isspace() and unicodedata.category(ch) != "Cc"
)
NAME_PATTERN = f"^[^{CONTROL}]*[^{CONTROL}{SPACES}][^{CONTROL}]*$"


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF's CharField turns a number into its digits, which the
    schema (type: string) does not allow."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("Give text (a JSON string).", code="invalid")
        return super().to_internal_value(data)


class NameField(StrictCharField):
    """A display name: up to `max_length` characters, no control characters, not only spaces:
    exactly what the services' `clean_name` takes."""

    def __init__(self, *, max_length: int, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(max_length=max_length, **kwargs)
        self.validators.append(
            FullMatchValidator(
                NAME_PATTERN,
                message="Use printable characters, and at least one that is not a space.",
            )
        )


class TextField(StrictCharField):
    """Free text up to `max_length` characters; no NUL, which DRF refuses in any CharField."""

    def __init__(self, *, max_length: int, forbid: str = "\\u0000", **kwargs):
        super().__init__(max_length=max_length, **kwargs)
        self.validators.append(
            FullMatchValidator(f"^[^{forbid}]*$", message="Leave out control characters.")
        )


class MutationThrottle(UserRateThrottle):
    """Limits how fast one user can change things (reads are not limited)."""

    scope = "mutation"

    def get_rate(self):
        return settings.API_MUTATION_RATE

    def get_ident(self, request):
        # Anonymous requests are counted by address, read as the login lockout reads it.
        return client_address(request) or "unknown"

    def allow_request(self, request, view):
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        return super().allow_request(request, view)
