"""Shared pieces of the OpenAPI description: the error body and the answers every action gives."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

ID_PARAMETER = OpenApiParameter(
    "id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The object's `id`."
)


class IdSchema(AutoSchema):
    """For viewsets whose lookup takes any string (so a malformed id is the same 404 as a
    missing one): the schema still says what an id is, a UUID."""

    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        if "{id}" in self.path:
            return [ID_PARAMETER, *parameters]
        return parameters


ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        "error": inline_serializer(
            name="ErrorDetail",
            fields={
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "fields": serializers.DictField(
                    child=serializers.ListField(child=serializers.CharField()), required=False
                ),
                "operation": serializers.DictField(required=False, allow_null=True),
            },
        )
    },
)


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(response=ErrorSerializer, description=description)


ERRORS_READ = {
    401: error("Not signed in, or the token is not valid."),
    404: error("No such object among yours (another user's is the same 404)."),
}
ERRORS_LIST = {
    **ERRORS_READ,
    400: error("A filter or page parameter is not valid; `fields` says which."),
}
ERRORS_WRITE = {
    **ERRORS_READ,
    400: error("Invalid input; `fields` says which and why."),
    403: error("Over a limit of your plan; the message names it."),
    409: error(
        "The VM is busy (the running `operation` is included), in the wrong state, or the name "
        "is taken by another of your VMs."
    ),
    422: error("The Idempotency-Key was already used for a different request."),
    429: error("Too many changes in a short time; retry later."),
}
