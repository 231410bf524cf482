from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.access import get_owned_or_404
from core.api.common import ChoiceQuery, Ordering
from core.api.schema import ERRORS_LIST, ERRORS_READ, ERRORS_WRITE, IdSchema, error
from operations.api.idempotency import idempotent, key_of
from operations.api.responses import accepted
from operations.api.serializers import OperationSerializer
from snapshots import services as snapshot_services
from snapshots.api.serializers import SnapshotCreateSerializer
from vms import services
from vms.api.serializers import (
    ConsoleInputSerializer,
    ConsoleOutputSerializer,
    ConsoleSentSerializer,
    ImageSerializer,
    VMCreateSerializer,
    VMForkSerializer,
    VMSerializer,
    VMStopSerializer,
    VMUpdateSerializer,
)
from vms.models import VM, Image, VMState

ACCEPTED = {202: OperationSerializer, **ERRORS_WRITE}
STATE = ChoiceQuery("state", VMState.values, "Only VMs in this state.")


@extend_schema_view(
    list=extend_schema(
        parameters=[STATE.parameter],
        responses={200: VMSerializer(many=True), **ERRORS_LIST},
    ),
    retrieve=extend_schema(responses={200: VMSerializer, **ERRORS_READ}),
)
class VMViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Your VMs. Changes that take time answer 202 with the operation that carries them out."""

    serializer_class = VMSerializer
    lookup_value_regex = "[^/]+"  # any id reaches the view, which answers 404 in the API's shape
    schema = IdSchema()
    filter_backends = [Ordering]
    ordering_fields = ["name", "created_at", "state"]
    ordering = ["name"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema is being generated
            return VM.objects.none()
        queryset = VM.objects.owned_by(self.request.user).select_related("image", "host", "owner")
        if state := STATE.read(self.request):
            queryset = queryset.filter(state=state)
        return queryset

    def get_object(self):
        return get_owned_or_404(self.get_queryset(), self.kwargs["pk"])

    @extend_schema(request=VMCreateSerializer, responses=ACCEPTED)
    @idempotent
    def create(self, request):
        """Create a VM from an image and boot it."""
        data = _valid(VMCreateSerializer, request)
        operation = services.vm_create(
            owner=request.user,
            name=data["name"],
            image=data["image"],
            vcpus=data["vcpus"],
            memory_mib=data["memory_mib"],
            disk_gib=data["disk_gib"],
            requester=request.user,
            idempotency_key=key_of(request),
        )
        return accepted(operation, request)

    @extend_schema(request=VMUpdateSerializer, responses={200: VMSerializer, **ERRORS_WRITE})
    def partial_update(self, request, pk=None):
        """Rename a VM (a body without `name` changes nothing)."""
        vm = self.get_object()
        data = _valid(VMUpdateSerializer, request)
        if "name" in data:
            services.vm_rename(vm=vm, name=data["name"])
        return Response(VMSerializer(vm).data)

    @extend_schema(request=None, responses=ACCEPTED)
    def destroy(self, request, pk=None):
        """Delete a VM and its own disk layers; its snapshots are kept."""
        return accepted(services.vm_delete(vm=self.get_object(), user=request.user), request)

    @extend_schema(request=None, responses=ACCEPTED)
    @action(detail=True, methods=["post"])
    @idempotent
    def start(self, request, pk=None):
        """Boot a stopped VM."""
        return accepted(
            services.vm_start(
                vm=self.get_object(), user=request.user, idempotency_key=key_of(request)
            ),
            request,
        )

    @extend_schema(request=VMStopSerializer, responses=ACCEPTED)
    @action(detail=True, methods=["post"])
    @idempotent
    def stop(self, request, pk=None):
        """Stop a running VM: the power button, then forced off after a timeout (or at once
        with `force`)."""
        vm = self.get_object()
        data = _valid(VMStopSerializer, request)
        operation = services.vm_stop(
            vm=vm, user=request.user, force=data["force"], idempotency_key=key_of(request)
        )
        return accepted(operation, request)

    @extend_schema(request=None, responses=ACCEPTED)
    @action(detail=True, methods=["post"])
    @idempotent
    def reboot(self, request, pk=None):
        """Power the VM off and on again."""
        return accepted(
            services.vm_reboot(
                vm=self.get_object(), user=request.user, idempotency_key=key_of(request)
            ),
            request,
        )

    @extend_schema(request=None, responses=ACCEPTED)
    @action(detail=True, methods=["post"])
    @idempotent
    def repair(self, request, pk=None):
        """Define a VM in error again from its recorded disk, which is kept as it is. It ends
        stopped (running if its guest still ran); start it then."""
        return accepted(
            services.vm_repair(
                vm=self.get_object(), user=request.user, idempotency_key=key_of(request)
            ),
            request,
        )

    @extend_schema(request=None, responses=ACCEPTED)
    @action(detail=True, methods=["post"])
    @idempotent
    def retry(self, request, pk=None):
        """Build a VM whose creation failed (state `failed`) again, from the image or snapshot it
        was asked from, on a host chosen now. The failed create's `error` says why it failed."""
        return accepted(
            services.vm_create_retry(
                vm=self.get_object(), user=request.user, idempotency_key=key_of(request)
            ),
            request,
        )

    @extend_schema(
        methods=["GET"], request=None, responses={200: ConsoleOutputSerializer, **ERRORS_READ}
    )
    @extend_schema(
        methods=["POST"],
        request=ConsoleInputSerializer,
        responses={
            202: ConsoleSentSerializer,
            **ERRORS_WRITE,
            409: error("The guest cannot take input: not running, or missing from its host."),
            503: error("The VM's host does not answer; retry once it is back."),
        },
    )
    @action(detail=True, methods=["get", "post"])
    def console(self, request, pk=None):
        """GET: what the guest printed recently. POST: type a line into its console."""
        vm = self.get_object()
        if request.method == "GET":
            return Response({"output": services.console_read(vm=vm)})
        data = _valid(ConsoleInputSerializer, request)
        services.console_send(vm=vm, user=request.user, line=data["line"])
        return Response({"detail": "The line is being typed in."}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=VMForkSerializer, responses=ACCEPTED)
    @action(detail=True, methods=["post"])
    @idempotent
    def fork(self, request, pk=None):
        """Fork a running VM: a snapshot with its memory, and `count` new VMs that resume from it
        where the VM was, programs running, each with its own name, MAC, DHCP address,
        machine-id and SSH host keys. The VM itself goes on running. The new VMs are listed
        among yours at once (state `creating`); the operation's `result.vms` names the ids of
        those that started."""
        vm = self.get_object()
        data = _valid(VMForkSerializer, request)
        operation = snapshot_services.vm_fork(
            vm=vm, user=request.user, count=data["count"], idempotency_key=key_of(request)
        )
        return accepted(operation, request)

    @extend_schema(request=SnapshotCreateSerializer, responses=ACCEPTED)
    @action(detail=True, methods=["post"], url_path="snapshots")
    @idempotent
    def take_snapshot(self, request, pk=None):
        """Take a snapshot of the VM's whole disk, running or stopped."""
        vm = self.get_object()
        data = _valid(SnapshotCreateSerializer, request)
        operation = snapshot_services.snapshot_take(
            vm=vm,
            user=request.user,
            name=data["name"],
            description=data["description"],
            include_memory=data["include_memory"],
            idempotency_key=key_of(request),
        )
        return accepted(operation, request)


@extend_schema_view(
    list=extend_schema(responses={200: ImageSerializer(many=True), **ERRORS_LIST}),
    retrieve=extend_schema(responses={200: ImageSerializer, **ERRORS_READ}),
)
class ImageViewSet(viewsets.ReadOnlyModelViewSet):
    """The images new VMs can start from."""

    serializer_class = ImageSerializer
    lookup_field = "slug"
    queryset = Image.objects.filter(is_public=True).select_related("layer")


def _valid(serializer_class, request):
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
