from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets

from core.api.common import ChoiceQuery, Ordering, UUIDQuery
from core.api.schema import ERRORS_LIST, ERRORS_READ, IdSchema
from operations import registry
from operations.api.serializers import VM_LOCK, OperationSerializer
from operations.models import Operation, OperationState

STATE = ChoiceQuery("state", OperationState.values, "Only operations in this state.")
KIND = ChoiceQuery("kind", registry.kinds(), "Only operations of this kind.")
VM = UUIDQuery("vm", "Only operations on this VM (its id).")


@extend_schema_view(
    list=extend_schema(
        parameters=[STATE.parameter, KIND.parameter, VM.parameter],
        responses={200: OperationSerializer(many=True), **ERRORS_LIST},
    ),
    retrieve=extend_schema(responses={200: OperationSerializer, **ERRORS_READ}),
)
class OperationViewSet(viewsets.ReadOnlyModelViewSet):
    """Every long-running action: its state, progress and outcome."""

    serializer_class = OperationSerializer
    lookup_value_regex = "[^/]+"
    schema = IdSchema()
    filter_backends = [Ordering]
    ordering_fields = ["created_at", "finished_at", "state", "kind"]
    ordering = ["-created_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema is being generated
            return Operation.objects.none()
        queryset = Operation.objects.owned_by(self.request.user).select_related("subject_type")
        request = self.request
        if state := STATE.read(request):
            queryset = queryset.filter(state=state)
        if kind := KIND.read(request):
            queryset = queryset.filter(kind=kind)
        if vm := VM.read(request):
            queryset = queryset.filter(lock=f"{VM_LOCK}{vm}")
        return queryset
