from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as BadRequest
from rest_framework.response import Response

from core.access import get_owned_or_404
from core.api.schema import ERRORS_READ, ERRORS_WRITE, IdSchema
from schedules import services
from schedules.api.serializers import PolicySerializer, PolicyWriteSerializer
from schedules.models import SnapshotPolicy
from vms.api.views import VMViewSet
from vms.models import VM

NO_POLICY = "This VM has no snapshot policy."


class VMPolicyViewSet(viewsets.GenericViewSet):
    """What this feature adds to the VM resource: its snapshot policy, `/api/vms/{id}/policy/`
    (registered on the same prefix as the VMs, after them)."""

    queryset = VM.objects.none()
    lookup_value_regex = VMViewSet.lookup_value_regex
    schema = IdSchema()

    def get_object(self):
        queryset = VM.objects.owned_by(self.request.user)
        return get_owned_or_404(queryset, self.kwargs["pk"])

    @extend_schema(methods=["GET"], request=None, responses={200: PolicySerializer, **ERRORS_READ})
    @extend_schema(
        methods=["PUT"],
        request=PolicyWriteSerializer,
        responses={200: PolicySerializer, **ERRORS_WRITE},
    )
    @extend_schema(methods=["DELETE"], request=None, responses={204: None, **ERRORS_WRITE})
    @action(detail=True, methods=["get", "put", "delete"])
    def policy(self, request, pk=None):
        """GET: the VM's snapshot policy. PUT: set or change it (the next run is computed from
        now). DELETE: remove it; the snapshots it took are kept."""
        vm = self.get_object()
        policy = SnapshotPolicy.objects.filter(vm=vm).first()
        if request.method == "PUT":
            serializer = PolicyWriteSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = dict(serializer.validated_data)
            try:
                policy = services.policy_set(
                    vm=vm,
                    enabled=data.pop("enabled"),
                    schedule=data.pop("schedule"),
                    timezone_name=data.pop("timezone"),
                    **data,
                )
            except ValidationError as exc:
                raise BadRequest(exc.message_dict) from None
            return Response(PolicySerializer(policy).data)
        if policy is None:
            raise NotFound(NO_POLICY)
        if request.method == "DELETE":
            services.policy_delete(policy=policy)
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(PolicySerializer(policy).data)
