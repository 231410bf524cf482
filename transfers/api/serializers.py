from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from snapshots.models import Snapshot
from transfers.disk_images import FORMATS
from transfers.models import Export
from vms.api.serializers import IMAGES_LIST, ImageSlugField


class ExportSerializer(serializers.ModelSerializer):
    snapshot = serializers.UUIDField(source="snapshot_id", read_only=True, allow_null=True)
    operation = serializers.UUIDField(source="operation_id", read_only=True, allow_null=True)
    download = serializers.SerializerMethodField()

    class Meta:
        model = Export
        fields = [
            "id",
            "snapshot",
            "snapshot_name",
            "state",
            "size_bytes",
            "virtual_size",
            "error",
            "created_at",
            "expires_at",
            "operation",
            "download",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_download(self, export) -> str | None:
        """Where to download the file, while it can be."""
        if not export.downloadable:
            return None
        return reverse("api:export-download", args=[export.pk])


class ExportStartedSerializer(serializers.Serializer):
    """The export asked for and the operation making it."""

    export = ExportSerializer()
    operation = serializers.DictField()


class SnapshotImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="The disk image: qcow2 or raw.")
    format = serializers.ChoiceField(choices=FORMATS, help_text="What the file is; it is checked.")
    name = serializers.CharField(max_length=Snapshot.NAME_MAX)
    description = serializers.CharField(
        max_length=Snapshot.DESCRIPTION_MAX, required=False, allow_blank=True, default=""
    )
    image = ImageSlugField(
        required=False,
        help_text="The image whose kernel the disk boots with: an image's slug; see GET "
        f"{IMAGES_LIST}. The busybox one unless given.",
    )
