from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.decorators import action, api_view
from rest_framework.response import Response

from accounts.models import Plan
from core.access import get_owned_or_404
from core.api.common import ChoiceQuery, Ordering, UUIDQuery
from core.api.schema import ERRORS_LIST, ERRORS_READ, ERRORS_WRITE, IdSchema
from operations.api.idempotency import idempotent, key_of
from operations.api.responses import accepted
from operations.api.serializers import OperationSerializer
from snapshots import services
from snapshots.api.serializers import (
    MeSerializer,
    PlanSerializer,
    SnapshotNewVMSerializer,
    SnapshotRestoreSerializer,
    SnapshotSerializer,
    SnapshotTreeSerializer,
    SnapshotUpdateSerializer,
)
from snapshots.models import Snapshot, SnapshotKind, SnapshotState
from snapshots.selectors import tree_snapshots, usage_for
from snapshots.tree import snapshot_tree, tree_order
from vms.models import VM

ACCEPTED = {202: OperationSerializer, **ERRORS_WRITE}
SOURCE_VM = UUIDQuery("vm", "Only snapshots of this VM (its id).")
KIND = ChoiceQuery("kind", SnapshotKind.values, "Only snapshots of this kind.")
STATE = ChoiceQuery("state", SnapshotState.values, "Only snapshots in this state.")


@extend_schema_view(
    list=extend_schema(
        parameters=[SOURCE_VM.parameter, KIND.parameter, STATE.parameter],
        responses={200: SnapshotSerializer(many=True), **ERRORS_LIST},
    ),
    retrieve=extend_schema(responses={200: SnapshotSerializer, **ERRORS_READ}),
)
class SnapshotViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your snapshots, those of deleted VMs included."""

    serializer_class = SnapshotSerializer
    lookup_value_regex = "[^/]+"
    schema = IdSchema()
    filter_backends = [Ordering]
    ordering_fields = ["created_at", "name", "size_bytes"]
    ordering = ["-created_at"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema is being generated
            return Snapshot.objects.none()
        queryset = Snapshot.objects.owned_by(self.request.user).select_related(
            "image", "imported_by"
        )
        request = self.request
        if vm := SOURCE_VM.read(request):
            queryset = queryset.filter(source_vm_id=vm)
        if kind := KIND.read(request):
            queryset = queryset.filter(kind=kind)
        if state := STATE.read(request):
            queryset = queryset.filter(state=state)
        return queryset

    def get_object(self):
        return get_owned_or_404(self.get_queryset(), self.kwargs["pk"])

    @extend_schema(
        request=SnapshotUpdateSerializer, responses={200: SnapshotSerializer, **ERRORS_WRITE}
    )
    def partial_update(self, request, pk=None):
        """Rename a snapshot, change its description, or pin or unpin it."""
        snapshot = self.get_object()
        serializer = SnapshotUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        if "pinned" in data:
            services.snapshot_pin(snapshot=snapshot, pinned=data.pop("pinned"))
        services.snapshot_rename(snapshot=snapshot, **data)
        return Response(SnapshotSerializer(snapshot).data)

    @extend_schema(request=None, responses=ACCEPTED)
    def destroy(self, request, pk=None):
        """Delete a snapshot; its space is freed once no disk builds on it."""
        operation = services.snapshot_delete(snapshot=self.get_object(), user=request.user)
        return accepted(operation, request)

    @extend_schema(request=SnapshotRestoreSerializer, responses=ACCEPTED)
    @action(detail=True, methods=["post"])
    @idempotent
    def restore(self, request, pk=None):
        """Put a VM's disk back to this snapshot (its own VM, or another VM of yours). The
        current disk is kept first as a "before restore" snapshot, so it can be undone."""
        snapshot = self.get_object()
        serializer = SnapshotRestoreSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        target = serializer.validated_data.get("vm")
        vm = get_owned_or_404(VM.objects.owned_by(request.user), target) if target else None
        operation = services.snapshot_restore(
            snapshot=snapshot, user=request.user, vm=vm, idempotency_key=key_of(request)
        )
        return accepted(operation, request)

    @extend_schema(request=SnapshotNewVMSerializer, responses=ACCEPTED)
    @action(detail=True, methods=["post"], url_path="vms")
    @idempotent
    def new_vm(self, request, pk=None):
        """Start a new VM from this snapshot."""
        snapshot = self.get_object()
        serializer = SnapshotNewVMSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        operation = services.snapshot_new_vm(
            snapshot=snapshot,
            user=request.user,
            idempotency_key=key_of(request),
            **serializer.validated_data,
        )
        return accepted(operation, request)


class VMSnapshotTreeViewSet(viewsets.GenericViewSet):
    """What snapshots add to the VM resource: its snapshots as a tree,
    `/api/vms/{id}/snapshots/tree/` (registered on the same prefix as the VMs, after them)."""

    queryset = VM.objects.none()
    lookup_value_regex = "[^/]+"
    schema = IdSchema()

    @extend_schema(request=None, responses={200: SnapshotTreeSerializer, **ERRORS_READ})
    @action(detail=True, methods=["get"], url_path="snapshots/tree")
    def snapshot_tree(self, request, pk=None):
        """The VM's snapshots as a tree by parent: each lists the snapshots taken on it. A
        snapshot whose parent is not the VM's (it was started from another VM's) is a root."""
        vm = get_owned_or_404(VM.objects.owned_by(request.user), pk)
        roots = snapshot_tree(tree_snapshots(request.user, vm=vm))
        snapshots = []
        for node in tree_order(roots):
            node.snapshot.tree_children = [child.snapshot.pk for child in node.children]
            snapshots.append(node.snapshot)
        tree = {
            "current_snapshot": vm.current_snapshot_id,
            "roots": [root.snapshot.pk for root in roots],
            "snapshots": snapshots,
        }
        return Response(SnapshotTreeSerializer(tree).data)


@extend_schema_view(
    list=extend_schema(responses={200: PlanSerializer(many=True), **ERRORS_LIST}),
    retrieve=extend_schema(responses={200: PlanSerializer, **ERRORS_READ}),
)
class PlanViewSet(viewsets.ReadOnlyModelViewSet):
    """The plans and their limits."""

    serializer_class = PlanSerializer
    queryset = Plan.objects.all()
    lookup_field = "slug"


@extend_schema(responses={200: MeSerializer, **ERRORS_READ})
@api_view(["GET"])
def me(request):
    """Your account: its plan, and how much of it you use."""
    from vms.models import VM

    usage = usage_for(request.user)
    return Response(
        {
            "username": request.user.username,
            "email": request.user.email,
            "plan": PlanSerializer(usage.plan).data,
            "usage": {
                "snapshots": usage.snapshots,
                "snapshot_bytes": usage.snapshot_bytes,
                "vms": VM.objects.visible().filter(owner=request.user).count(),
            },
        }
    )
