from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import filters, viewsets

from accounts.access import operations_of
from koding_snapshots.api.common import query_choice, query_uuid
from koding_snapshots.api.schema import ERRORS_LIST, ERRORS_READ
from operations.api.serializers import OperationSerializer
from operations.models import Operation, OperationKind, OperationState


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("state", enum=OperationState.values),
            OpenApiParameter("kind", enum=OperationKind.values),
            OpenApiParameter("vm", str, description="Only operations on this VM (its id)."),
        ],
        responses={200: OperationSerializer(many=True), **ERRORS_LIST},
    ),
    retrieve=extend_schema(responses={200: OperationSerializer, **ERRORS_READ}),
)
class OperationViewSet(viewsets.ReadOnlyModelViewSet):
    """Every long-running action: its state, progress and outcome."""

    serializer_class = OperationSerializer
    lookup_value_regex = "[^/]+"
    filter_backends = [filters.OrderingFilter]
    ordering_fields = ["created_at", "finished_at", "state", "kind"]
    ordering = ["-created_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema is being generated
            return Operation.objects.none()
        queryset = operations_of(self.request.user)
        request = self.request
        if state := query_choice(request, "state", OperationState.values):
            queryset = queryset.filter(state=state)
        if kind := query_choice(request, "kind", OperationKind.values):
            queryset = queryset.filter(kind=kind)
        if vm := query_uuid(request, "vm"):
            queryset = queryset.filter(vm_id=vm)
        return queryset
