from pathlib import Path

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.views import APIView

from core.access import get_owned_or_404
from core.api.schema import ERRORS_LIST, ERRORS_READ, ERRORS_WRITE, IdSchema, error
from operations.api.idempotency import idempotent, key_of
from operations.api.responses import accepted
from operations.api.serializers import OperationSerializer
from snapshots.models import Snapshot
from transfers import quarantine, services
from transfers.api.serializers import ExportSerializer, SnapshotImportSerializer
from transfers.models import Export
from transfers.views import export_file_response

ACCEPTED = {202: OperationSerializer, **ERRORS_WRITE}


@extend_schema_view(
    list=extend_schema(responses={200: ExportSerializer(many=True), **ERRORS_LIST}),
    retrieve=extend_schema(responses={200: ExportSerializer, **ERRORS_READ}),
)
class ExportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your exports of snapshots not expired yet: each a compressed, self-contained qcow2 file."""

    serializer_class = ExportSerializer
    lookup_value_regex = "[^/]+"
    schema = IdSchema()

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema is being generated
            return Export.objects.none()
        return Export.objects.owned_by(self.request.user).current()

    def get_object(self):
        return get_owned_or_404(self.get_queryset(), self.kwargs["pk"])

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "Content-Disposition",
                str,
                OpenApiParameter.HEADER,
                response=[200],
                description='`attachment; filename="<snapshot>.qcow2"`: the name to save the '
                "file under.",
            ),
            OpenApiParameter(
                "Content-Length",
                int,
                OpenApiParameter.HEADER,
                response=[200],
                description="Its size in bytes.",
            ),
        ],
        responses={
            (200, "application/octet-stream"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="The snapshot's whole disk as one compressed, self-contained qcow2 "
                "file, streamed; save it as it comes (`qemu-img info` reads it, the import takes "
                "it back).",
            ),
            **ERRORS_READ,
        },
    )
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        """Download the export's file (until it expires)."""
        return export_file_response(self.get_object())


class SnapshotExportView(APIView):
    """Export a snapshot: a worker writes its whole disk into one compressed qcow2 file to
    download (see the export's `download`, once the operation succeeds)."""

    schema = IdSchema()

    @extend_schema(request=None, responses=ACCEPTED, operation_id="snapshots_export")
    @idempotent
    def post(self, request, id=None):
        snapshot = get_owned_or_404(Snapshot.objects.owned_by(request.user), id)
        _export, operation = services.export_start(
            snapshot=snapshot, user=request.user, idempotency_key=key_of(request)
        )
        return accepted(operation, request)


class SnapshotImportView(APIView):
    """Import a disk image (multipart upload, one file) as a new snapshot of yours. The request
    only stores the file and reads its header; the operation (202) checks the image, measures it
    against what your plan has left, rewrites it and brings it into storage. A refused image
    fails the operation with the reason; what can be known in the request is refused at once
    (400, 403; 409 while another import of yours is under way; 503 while the service is short
    of space for uploads)."""

    parser_classes = [MultiPartParser]

    def initialize_request(self, request, *args, **kwargs):
        # Before anything reads the body: uploads stream into quarantine, not memory.
        self.upload_handler = quarantine.install(request)
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(
        request={"multipart/form-data": SnapshotImportSerializer},
        responses={**ACCEPTED, 503: error("The service is short of space for uploads; retry.")},
        operation_id="snapshots_import",
    )
    def post(self, request):
        try:
            # Signed in, not read yet: a refused upload costs nothing.
            limit = services.snapshot_import_admit(owner=request.user)
            self.upload_handler.plan_limit = limit
            serializer = SnapshotImportSerializer(data=request.data)
            services.upload_check(self.upload_handler)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
            operation = services.snapshot_import(
                owner=request.user,
                requester=request.user,
                upload=Path(data["file"].temporary_file_path()),
                fmt=data["format"],
                name=data["name"],
                file_name=data["file"].name,
                description=data["description"],
                image=data.get("image"),
            )
        finally:
            self.upload_handler.discard()
        return accepted(operation, request)
