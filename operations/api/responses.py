"""The answer to a request that started a long-running action: 202 with the operation."""

from django.urls import reverse
from rest_framework import status
from rest_framework.response import Response

from operations.api.serializers import OperationSerializer


def accepted(operation, request) -> Response:
    body = OperationSerializer(operation, context={"request": request}).data
    location = reverse("api:operation-detail", args=[operation.pk])
    return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": location})
