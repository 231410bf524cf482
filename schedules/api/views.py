from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as BadRequest
from rest_framework.response import Response

from core.api.schema import ERRORS_READ, ERRORS_WRITE
from schedules import services
from schedules.api.serializers import PolicySerializer, PolicyWriteSerializer
from schedules.models import SnapshotPolicy
from snapshots.api.views import VMWithSnapshotsViewSet

NO_POLICY = "This VM has no snapshot policy."


# The VM resource as the API serves it: what vms and snapshots give it, and the snapshot policy
# this app adds (`/api/vms/{id}/policy/`). Its description is VMViewSet's.
class VMWithPolicyViewSet(VMWithSnapshotsViewSet):
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
